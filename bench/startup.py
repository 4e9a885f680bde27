"""Start-up: how long the commands a user types often take when there is nothing to compute.

    python bench/startup.py [--tmp DIR] [--repeat 5]

Builds once a small run of the embedded default (2 prompts, one training step each, the string
refusal detector; a few minutes on 2 CPU cores) in a run directory of its own, then times, each
`--repeat` times in a fresh process, `cai --help`, `cai history`, `cai plan` and an unchanged
`cai run` (every stage reused, no model call), beside `python -c pass` and `python -c "import
torch"` on the same machine, and names the heavy libraries each command imported. Target: under
1 s each (issue 30), where `import torch` alone takes about a second.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "datasets", "trl", "sklearn", "scipy", "matplotlib", "pandas")
SMALL = ["prompts.limit=2", "calibration.limit=24", "calibration.heldout=8",
         "calibration.judge_pairs=8", "evaluate.limit=2", "evaluate.detectors=[string]",
         "train_sft.max_steps=1", "train_rm.max_steps=1", "train_policy.max_steps=1"]
PROBE = ("import atexit, json, sys, runpy\n"
         "atexit.register(lambda: print('HEAVY ' + json.dumps(sorted(m for m in {heavy} if m in "
         "sys.modules)), file=sys.stderr))\n"
         "sys.argv = ['cai'] + {args}\n"
         "from cai.cli import main\nmain()\n")


def cai_args(run_dir, *command) -> list[str]:
    sets = [x for s in SMALL for x in ("--set", s)]
    return [*command, "--run-dir", str(run_dir), *sets] if command[0] != "--help" else ["--help"]


def timed(argv: list[str]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv[-6:])}: exit {out.returncode}\n{out.stderr[-2000:]}")
    heavy = [json.loads(line[6:]) for line in out.stderr.splitlines() if line.startswith("HEAVY ")]
    return seconds, heavy[0] if heavy else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", default=None, help="where the run directory goes")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    run_dir = Path(a.tmp or tempfile.mkdtemp(prefix="cai-startup-")) / "run"
    build = [sys.executable, "-m", "cai.cli", *cai_args(run_dir, "run")]
    if not (run_dir / "metrics.json").exists():
        start = time.perf_counter()
        subprocess.run(build, check=True, capture_output=True)
        print(f"built {run_dir} in {time.perf_counter() - start:.0f} s")
    rows = [("python -c pass", [sys.executable, "-c", "pass"]),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"])]
    for name, command in (("cai --help", ("--help",)), ("cai history", ("history",)),
                          ("cai plan", ("plan",)), ("cai run (unchanged)", ("run",))):
        code = PROBE.format(heavy=HEAVY, args=cai_args(run_dir, *command))
        rows.append((name, [sys.executable, "-c", code]))
    print(f"{'command':<26} {'median s':>9} {'min s':>7}  heavy libraries imported")
    for name, argv in rows:
        times, heavy = [], []
        for _ in range(a.repeat):
            seconds, heavy = timed(argv)
            times.append(seconds)
        print(f"{name:<26} {statistics.median(times):9.2f} {min(times):7.2f}  "
              f"{', '.join(heavy) if heavy else '-'}")


if __name__ == "__main__":
    main()
