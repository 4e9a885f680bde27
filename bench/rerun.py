"""Rerun cost: model calls and wall time of `cai run` after edits, beside the ideal.

    python bench/rerun.py            # ~10 minutes on 2 CPU cores; prints a table

A tiny randomly initialised model (SmolLM2 tokenizer, 2 layers) plays policy and judge, so the
numbers measure cai's invalidation and caching, not a model. A 16-principle constitution (the
default 15 plus one), 100 prompts x 2 samples = 200 records, 2 critique rounds, data stages only
(generate -> export). For each change the ideal is computed from the records themselves: every
round judged under the touched principle, and every later round handed a different text by it,
must be redone (critique, verdict, and a revision where the verdict says "violates"), plus one
content-free calibration call per touched principle still in use. The full run's ideal is read
off its records the same way (`ideal_full`), never off the call counter. Target: every rerun
<= 1.1 x ideal calls; unchanged rerun 0 calls and < 3 s for 1k records.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
STAGES = ["generate", "critique", "label", "calibrate", "pairs", "blend", "export"]
EXTRA = {"id": "bench-extra", "critique": "Identify anything in the response that is rude.",
         "revision": "Rewrite the response to be polite.", "weight": 1.0,
         "comparison": "Which response is more polite?", "tags": ["harmlessness"]}


def write_constitution(path: Path, data: dict):
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(cfg):
    from cai.runs.runner import run_stages
    start = time.perf_counter()
    m = run_stages(cfg, STAGES, echo=lambda s: None)
    return sum(s["model_calls"] for s in m["stages"].values()), time.perf_counter() - start


def chains(run_dir: Path) -> dict:
    from cai.store.core import Store
    with Store(run_dir, lock=False) as store:
        ids = store.get_manifest("critique")["ids"]
        return {c["response_id"]: c for c in store.get_records(ids).values()}


def _output(entry: dict | None):
    """What a round hands to the next: its kept revision, or nothing (the text stays)."""
    if entry and entry.get("revision_status") == "kept":
        return entry["revision_id"]
    return None


def ideal_full(after: dict, requests: int) -> int:
    """The calls a first run needs, read off its records: a generation per request; per round
    recorded, the critique answers asked (retries included), a verdict, and a revision where it
    violates; the critique answers of a chain that failed; and one content-free calibration
    call per principle a verdict was asked under."""
    calls, principles = requests, set()
    for chain in after.values():
        for r in chain["rounds"]:
            calls += r["critique_attempts"] + 1 + r["violates"]
            principles.add(r["principle"])
        calls += chain.get("failed_attempts", 0)
    return calls + len(principles)


def ideal(after: dict, touched: set, before: dict) -> tuple[int, int]:
    """(records touched, calls that must be made) for a change of the `touched` principles.

    A round must be redone when it is judged under a touched principle (before or after the
    change), or when an earlier redone round handed it a different text. Each redone round
    costs its critique answers (retries included), a verdict, plus a revision where the verdict
    says "violates"; each
    touched principle that is still in use costs one content-free calibration call.
    """
    records = calls = 0
    for rid, chain in after.items():
        old = before.get(rid, {}).get("rounds", [])
        dirty, redone = rid not in before, 0
        for i, r in enumerate(chain["rounds"]):
            was = old[i] if i < len(old) else None
            if dirty or r["principle"] in touched or (was and was["principle"] in touched):
                redone += 1
                calls += r["critique_attempts"] + 1 + (1 if r["violates"] else 0)
                dirty = dirty or _output(r) != _output(was)
        records += bool(redone)
    in_use = {r["principle"] for c in after.values() for r in c["rounds"]}
    return records, calls + len(touched & in_use)


def main():
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    from cai.backends.tiny import tiny_model
    from cai.config.run import load_config
    from cai.log import quiet_libraries
    quiet_libraries()
    tmp = Path(tempfile.mkdtemp(prefix="cai-bench-"))
    model = f"transformers:{tiny_model(tmp / 'tiny')}"
    base = yaml.safe_load((ROOT / "principles.yaml").read_text())
    base["principles"].append(EXTRA)
    constitution = tmp / "principles.yaml"
    prompts = tmp / "prompts.jsonl"
    from cai.inputs.sources import load_prompts
    rows = [p for s in ("builtin:redteam", "builtin:helpful", "builtin:harmful", "builtin:safe")
            for p in load_prompts(s)]
    prompts.write_text("".join(json.dumps(p) + "\n" for p in rows))

    def config(run_dir, limit, samples):
        return load_config(None, [
            f"run_dir={run_dir}", f"constitution={constitution}", f"models.policy={model}",
            f"models.judge={model}", "models.batch_size=32", f"prompts.source={prompts}",
            f"prompts.limit={limit}", f"generate.samples={samples}", "generate.max_new_tokens=16",
            "critique.critique_max_new_tokens=12", "critique.revision_max_new_tokens=16",
            "critique.temperature=1.0",  # a random tiny model says nothing when greedy
            # Critique invalidation is what is measured: comparisons (bench/label.py) are off.
            "calibration.heldout=16", "label.enabled=false", "pairs.kinds=[critique-revision]",
            "models.shared_cache=off"])  # calls are what is counted: none from other runs

    cfg = config(tmp / "run", 100, 2)
    results = []
    write_constitution(constitution, base)
    calls, secs = run(cfg)
    results.append(("full run (200 records)", calls, secs, 200, ideal_full(chains(tmp / "run"), 200)))
    calls, secs = run(cfg)
    results.append(("unchanged rerun", calls, secs, 0, 0))

    before = chains(tmp / "run")
    used = {}
    for c in before.values():
        for r in c["rounds"]:
            used[r["principle"]] = used.get(r["principle"], 0) + 1
    target = max(used, key=used.get)  # edit the most used principle: the hardest case
    edited = json.loads(json.dumps(base))
    for p in edited["principles"]:
        if p["id"] == target:
            p["critique"] += " Be specific."
    write_constitution(constitution, edited)
    calls, secs = run(cfg)
    n, want = ideal(chains(tmp / "run"), {target}, before)
    results.append((f"edit '{target}' text", calls, secs, n, want))

    added = json.loads(json.dumps(edited))
    added["principles"].append({**EXTRA, "id": "bench-added", "critique": "Is it kind?"})
    write_constitution(constitution, added)
    before = chains(tmp / "run")
    calls, secs = run(cfg)
    n, want = ideal(chains(tmp / "run"), {"bench-added"}, before)
    results.append(("add a principle", calls, secs, n, want))

    removed = json.loads(json.dumps(added))
    removed["principles"] = [p for p in removed["principles"] if p["id"] != "bench-extra"]
    write_constitution(constitution, removed)
    before = chains(tmp / "run")
    calls, secs = run(cfg)
    n, want = ideal(chains(tmp / "run"), {"bench-extra"}, before)
    results.append(("remove a principle", calls, secs, n, want))

    print(f"{'change':<28} {'calls':>7} {'ideal':>7} {'ratio':>6} {'records':>8} {'seconds':>8}")
    for name, calls, secs, n, want in results:
        ratio = f"{calls / want:.2f}" if want else ("ok" if calls == 0 else "-")
        print(f"{name:<28} {calls:>7} {want:>7} {ratio:>6} {n:>8} {secs:>8.1f}")

    big = config(tmp / "big", 390, 3)  # 1,170 records
    write_constitution(constitution, base)
    big_calls, big_secs = run(big)
    calls, secs = run(big)
    print(f"\n1,170 records: full run {big_calls} calls in {big_secs:.0f} s; "
          f"unchanged rerun {calls} calls in {secs:.2f} s (in-process, no interpreter start)")


if __name__ == "__main__":
    main()
