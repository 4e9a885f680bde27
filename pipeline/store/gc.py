"""`cai gc`: remove what no kept run references. Deleting the run directory is the only other
way to lose work, so this is explicit and reports what it removed.

Kept: everything the last `keep_runs` finished runs (default: all runs) and the current
manifests reference: their records (and, through each critique chain, its critique and
revision records), the model calls those runs used (stamped on every hit), their exported
dataset and trained models, and the evaluation results kept in the store (reward scores, KL).
Everything else goes; `cai run` remakes it if ever needed again.
"""

import shutil
from pathlib import Path

from cai.store.summaries import manifest_ids


def collect_garbage(store, keep_runs: int | None = None) -> dict:
    finished = [r for r in store.list_runs() if r["status"] == "finished"]
    kept_runs = finished[-keep_runs:] if keep_runs else finished
    snapshots = [r["summary"].get("manifests", {}) for r in kept_runs] + [manifest_ids(store)]
    # An id list no run names (a stage killed mid-way, a manifest a stage rewrote in one run)
    # goes; those of runs not kept stay, ids only, so `cai diff` can say what gc took.
    everyone = [(r["summary"] or {}).get("manifests", {}) for r in store.list_runs()] + snapshots
    store.delete_lists_except(_lists(everyone))
    keep_ids = store.listed_record_ids(_lists(snapshots)) | {
        i for snap in snapshots for ref in snap.values() if not isinstance(ref, str) for i in ref}
    for chain in store.get_records([i for i in keep_ids if i.startswith("chain-")]).values():
        for r in chain["rounds"]:
            keep_ids.update(x for x in (r.get("critique_id"), r.get("revision_id")) if x)
    removed = {"calls": 0, "records": 0, "models": 0, "caches": 0}
    if kept_runs and keep_runs:
        removed["calls"] = store.delete_calls_before(kept_runs[0]["id"], _reused(kept_runs))
    stale = [rid for rid, _ in store.all_record_ids() if rid not in keep_ids]
    removed["records"] = store.delete_records(stale)
    # Runs recorded before snapshots named their models cannot say which they used: keep all.
    knows_models = all("train-policy" in snap for snap in snapshots)
    for art in store.list_artifacts() if knows_models else []:
        if art["input_hash"] in keep_ids:
            continue
        if art["name"] == "dataset":
            pass  # one directory, rewritten by every export: only the row goes
        elif not art["path"]:  # a result kept in the store alone (evaluation scores): no files
            removed["caches"] += 1
        elif Path(art["path"]).is_dir():
            shutil.rmtree(art["path"], ignore_errors=True)  # a model directory
            removed["models"] += 1
        store.delete_artifact(art["name"], art["input_hash"])
    store.vacuum()
    return removed


def _lists(snapshots: list[dict]) -> set:
    return {ref for snap in snapshots for ref in snap.values() if isinstance(ref, str)}


def _reused(kept_runs: list[dict]) -> dict:
    """stage -> the oldest run whose outputs of that stage a kept run reused whole (a skipped
    stage stamps no call, so that run's calls of that stage are still in use)."""
    out = {}
    for run in kept_runs:
        for stage, since in run["summary"].get("reused", {}).items():
            out[stage] = min(since, out.get(stage, since))
    return out


def collect_shared(config, max_mb: float) -> str:
    """`cai gc --shared MB`: the shared call cache trimmed to `max_mb`, least recently used
    calls first, and compacted."""
    from cai.errors import CaiError
    from cai.store.shared_calls import SharedCalls, shared_cache_path
    path = shared_cache_path(config.models.shared_cache)
    if path is None or not path.exists():
        return f"no shared call cache ({config.models.shared_cache}): nothing to do"
    cache = SharedCalls(path, max_mb)
    if cache.db is None:
        raise CaiError(f"{path}: the shared call cache cannot be opened")
    try:
        before = path.stat().st_size
        removed = cache.trim(max_mb * 2**20)
        cache.vacuum()
        return (f"{path}: removed {removed} calls, {cache.count()} kept; "
                f"{before / 2**20:.1f} MB -> {path.stat().st_size / 2**20:.1f} MB")
    finally:
        cache.close()
