"""Reward-model ensembles vs single reward models, side by side on the same held-out human pairs.

    python bench/ensemble.py --run-dir outputs/default --members 5 --k 3     # after `cai run`

Trains `--members` reward models in the run directory (`train_rm.ensemble`: the run's own
reward model is member 1, the others differ in seed and batch order; the data stages are all
reused), then scores, on the run's held-out human pairs (`calibration.heldout`): each member
alone (single reward models over `--members` seeds: mean and standard deviation of their
accuracy), and each window of `--k` consecutive members as an ensemble under every aggregate
(mean, min, mean − std), so single and ensemble accuracy come with their spread over seeds.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from cai.config.run import load_config
from cai.runs.runner import run_stages
from cai.store.core import ReadOnlyStore
from cai.training.ensemble import ensemble_report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default="outputs/default")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--config", default=None)
    a = ap.parse_args()
    cfg = load_config(a.config, [f"run_dir={a.run_dir}", f"train_rm.ensemble={a.members}"])
    m = run_stages(cfg, ["train-rm"], echo=lambda line: print(line, file=sys.stderr))
    with ReadOnlyStore(a.run_dir) as store:
        paths = store.get_manifest("train-rm-ensemble")["meta"]["paths"]
    scores = [json.loads((Path(p) / "cai-model.json").read_text())["heldout_scores"] for p in paths]
    n = len(scores[0])
    singles = [ensemble_report([s], "mean", 0.0)["accuracy"] for s in scores]
    print(f"held-out human pairs: {n}; reward models: {len(scores)} (train-rm took "
          f"{m['stages']['train-rm']['seconds']:.0f} s, {m['stages']['train-rm']['made']} trained)")
    print(f"{'what':<28} {'n':>3} {'mean acc.':>10} {'sd':>6}  each")
    print(f"{'single reward model':<28} {len(singles):>3} {statistics.fmean(singles):>10.4f} "
          f"{statistics.pstdev(singles):>6.4f}  {', '.join(f'{x:.3f}' for x in singles)}")
    windows = [scores[i:i + a.k] for i in range(len(scores) - a.k + 1)]
    for how in ("mean", "min", "mean_minus_std"):
        reports = [ensemble_report(w, how, 1.0) for w in windows]
        accs = [r["accuracy"] for r in reports]
        print(f"{f'ensemble of {a.k}, {how}':<28} {len(accs):>3} {statistics.fmean(accs):>10.4f} "
              f"{statistics.pstdev(accs):>6.4f}  {', '.join(f'{x:.3f}' for x in accs)}")
    spreads = [ensemble_report(w, "mean", 1.0)["mean_spread"] for w in windows]
    print(f"members' mean spread (std of scores per reply), per window: "
          f"{', '.join(f'{x:.3f}' for x in spreads)}")


if __name__ == "__main__":
    main()
