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

from .history import manifest_ids


def collect_garbage(store, keep_runs: int | None = None) -> dict:
    finished = [r for r in store.list_runs() if r["status"] == "finished"]
    kept_runs = finished[-keep_runs:] if keep_runs else finished
    snapshots = [r["summary"].get("manifests", {}) for r in kept_runs] + [manifest_ids(store)]
    keep_ids = {i for snap in snapshots for ids in snap.values() for i in ids}
    for chain in store.get_records([i for i in keep_ids if i.startswith("chain-")]).values():
        for r in chain["rounds"]:
            keep_ids.update(x for x in (r.get("critique_id"), r.get("revision_id")) if x)
    removed = {"calls": 0, "records": 0, "models": 0, "caches": 0}
    if kept_runs and keep_runs:
        removed["calls"] = store.delete_calls_before(_oldest_used(kept_runs))
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


def _oldest_used(kept_runs: list[dict]) -> int:
    """The oldest run whose calls a kept run used: itself, or one whose stage outputs it reused
    whole (a skipped stage stamps no call; `pipeline.stage_reuse`)."""
    reused = [r for run in kept_runs for r in run["summary"].get("reused", {}).values()]
    return min([kept_runs[0]["id"], *reused])
