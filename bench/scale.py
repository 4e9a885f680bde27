"""Scale: the data stages (generate → export) at 10k, 100k, 1M records, with a model that costs
nothing, so what is measured is cai itself.

    python bench/scale.py --records 10000 100000 1000000   # each pass in a fresh process

Per size: a JSONL of records/2 prompts (`generate.samples` 2, so `records` responses), the
deterministic fake backend of the tests (answers are hashes of the request: no model time),
every other setting the default. Printed per size: wall seconds, model calls, pipeline overhead
per call (wall / calls: the fake backend answers in microseconds), peak RSS of the process,
store size on disk, the unchanged rerun's wall seconds (every call cached, every record
reused) and a rerun's after a knob no data stage reads (`evaluate.limit`: every data stage is
still skipped whole, issue #26), and a rerun's after one principle edit (the `dangerous-help`
comparison question reworded, as in the README's example: what that principle judged is
asked again). Targets (issues #14, #29): cost linear in records, ≤ 1 ms per call, memory flat
(peak RSS at 1M ≤ 1.5x at 100k), unchanged rerun of 1M records ≤ 60 s.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def one(records: int, run_dir: Path, extra: list[str] = ()) -> dict:
    """Run the data stages once in this process; its numbers as a dict."""
    from fakes import FakeBackend

    from cai import backends
    from cai.config.run import load_config
    from cai.log import quiet_libraries
    from cai.runs.runner import run_stages
    from cai.stages import DATA_STAGES
    quiet_libraries()
    backends.BACKENDS["fake"] = lambda model, config: FakeBackend(model)
    prompts = run_dir.parent / f"prompts-{records}.jsonl"
    if not prompts.exists():
        with open(prompts, "w") as f:
            for i in range(records // 2):
                f.write(json.dumps({"id": f"s{i}", "prompt": f"Scale prompt number {i}: how do I "
                                    f"do thing {i % 977} safely?", "kind": "red-team"}) + "\n")
    cfg = load_config(None, [f"run_dir={run_dir}", "models.policy=fake:policy",
                             f"constitution={run_dir.parent / 'principles.yaml'}",
                             "models.judge=fake:judge", f"prompts.source={prompts}",
                             f"prompts.limit={records // 2}", "models.shared_cache=off",
                             "models.batch_size=64", *extra])
    start = time.perf_counter()
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    seconds = time.perf_counter() - start
    calls = sum(s.get("model_calls", 0) for s in metrics["stages"].values())
    return {"seconds": seconds, "calls": calls,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _in_process(records: int, run_dir: Path, *extra: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(records), "--run-dir",
                          str(run_dir), *[f"--set={x}" for x in extra]],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


EDIT = ("Which of these assistant responses is less harmful?",
        "Which of these assistant responses is less dangerous or harmful?")


def _edit_principle(path: Path):
    text = path.read_text()
    assert EDIT[0] in text, f"{path}: the principle the bench edits has changed"
    path.write_text(text.replace(EDIT[0], EDIT[1]))


def _size_mb(run_dir: Path) -> float:
    return sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file()) / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help="where the run directories go (a 1M-record store is ~25 GB)")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, Path(args.run_dir), args.set)))
        return
    os.environ.setdefault("CAI_CALL_CACHE", "off")
    print(f"{'records':>9} {'calls':>9} {'seconds':>9} {'ms/call':>8} {'peak MB':>8} "
          f"{'store MB':>9} {'rerun s':>8} {'knob s':>7} {'edit s':>7} {'edit calls':>10} "
          f"{'edit MB':>8}")
    with tempfile.TemporaryDirectory(prefix="cai-scale-", dir=args.tmp) as tmp:
        for n in args.records:
            run_dir = Path(tmp) / f"{n}" / "run"
            run_dir.parent.mkdir()
            shutil.copy(ROOT / "principles.yaml", run_dir.parent / "principles.yaml")
            first = _in_process(n, run_dir)
            size = _size_mb(run_dir)
            rerun = _in_process(n, run_dir)
            # a knob no data stage reads: every data stage is still skipped whole
            knob = _in_process(n, run_dir, "evaluate.limit=50")
            _edit_principle(run_dir.parent / "principles.yaml")
            edit = _in_process(n, run_dir)
            print(f"{n:>9,} {first['calls']:>9,} {first['seconds']:>9.1f} "
                  f"{1000 * first['seconds'] / max(first['calls'], 1):>8.3f} "
                  f"{first['rss_mb']:>8.0f} {size:>9.1f} {rerun['seconds']:>8.1f} "
                  f"{knob['seconds']:>7.1f} {edit['seconds']:>7.1f} {edit['calls']:>10,} "
                  f"{edit['rss_mb']:>8.0f}", flush=True)
            shutil.rmtree(run_dir.parent)


if __name__ == "__main__":
    main()
