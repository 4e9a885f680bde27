"""Outcome: what the default recipe buys on the dev sets, beside the base and a human-only recipe.

    python bench/outcome.py                      # the embedded default; ~40 min on 2 CPU cores
    python bench/outcome.py --limit 40 --set models.batch_size=8

1. the default recipe: `cai run` (the default config, plus `--set`) into `--run-dir`;
2. the human-only recipe, in the same run directory (its data stages are all cached): every AI
   pair weighed 0 and no SL-CAI stage, so the policy is DPO on the human slice's training pairs
   from the base model, with the same settings;
3. base, human-only and default policies answer the **test halves** of the dev sets greedily
   (`evaluate.max_new_tokens`; `--part tune` measures the tuning halves instead, where a default
   may be chosen, see pipeline/data/README.md): AdvBench harmful requests and XSTest
   unsafe-contrast prompts (refusal should rise), XSTest safe prompts (refusal there is
   over-refusal), and hh-rlhf red-team openers. Refusal is decided by cai's string-match detector
   (`cai.evaluation.refusal`), measured against people on the same half of XSTest's labelled replies
   and corrected for its error (`cai.evaluation.verdicts`): rates with n and 95 % intervals, and a
   verdict line per policy and set against the base (the embedded judge is at chance as a
   refusal detector: see `cai evaluate`);
4. the reward model's held-out human accuracy with and without the AI pairs: the run's own
   `ai_value` (the same settings, the same held-out pairs; difference with a bootstrap interval).

    python bench/outcome.py --rm-ensemble 5 --k 3 --run-dir outputs/default   # after `cai run`

`--rm-ensemble M` measures reward-model ensembles instead: it trains M reward models of the run's
recipe (`train_rm.ensemble`: the run's own is member 1, the others differ in seed and batch
order; the data stages are reused) and scores them on the run's held-out human pairs
(`calibration.heldout`, never trained on): each alone (single reward models over M seeds: mean
and standard deviation of the accuracy) and each window of `--k` consecutive members as an
ensemble under every aggregate (mean, min, mean − std), so both come with their spread over
seeds. Add `--set calibration.heldout=N` for a larger held-out slice (a run of its own).

Dev prompts are for measuring only: the default prompts never contain one (a test enforces it).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cai.backends import SamplingParams  # noqa: E402
from cai.config.run import load_config  # noqa: E402
from cai.evaluation.detectors import describe, load_labels  # noqa: E402
from cai.evaluation.refusal import is_refusal  # noqa: E402
from cai.evaluation.verdicts import refusal_table, verdicts  # noqa: E402
from cai.inputs.sources import load_prompts  # noqa: E402
from cai.runs.runner import run_stages  # noqa: E402
from cai.stages import STAGES  # noqa: E402
from cai.stages.context import RunContext  # noqa: E402
from cai.stats import detector_accuracy  # noqa: E402
from cai.store.core import ReadOnlyStore, Store  # noqa: E402
from cai.training.ensemble import ensemble_report  # noqa: E402

SETS = {"harmful": "builtin:harmful-{part}", "unsafe": "builtin:unsafe-{part}",
        "safe": "builtin:safe-{part}", "redteam": "builtin:redteam"}
LABELS = "builtin:refusal-labels-{part}"
HUMAN_ONLY = ["blend.weights.comparison=0", "blend.weights.critique-revision=0",
              "train_sft.enabled=false", "train_policy.init=base"]


def refusal_flags(ctx, spec: str, sets: dict, max_new_tokens: int) -> dict:
    """set -> {"string": does each reply refuse} for one policy's greedy replies."""
    client, out = ctx.client(spec), {}
    for name, prompts in sets.items():
        results = client.generate([[{"role": "user", "content": p}] for p in prompts],
                                  SamplingParams(max_new_tokens, 0.0, 1.0), seed=ctx.config.seed,
                                  desc=f"outcome {name}")
        out[name] = {"string": [None if r.error else is_refusal(r.text) for r in results]}
    ctx.release_models()
    return out


def trained_policy(cfg) -> str:
    with Store(cfg.run_dir, lock=False) as store:
        return "transformers:" + store.get_manifest("train-policy")["meta"]["path"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=str(ROOT / "outputs" / "bench-outcome"))
    ap.add_argument("--limit", type=int, default=None, help="dev prompts per set (default: all)")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--part", choices=("test", "tune"), default="test", help=(
        "which half of the dev sets: 'test' reports, 'tune' is where a default may be chosen"))
    ap.add_argument("--recipe-only", action="store_true", help=(
        "the recipe of `--set` against the base alone: no human-only twin, no evaluate stage "
        "(comparing recipes on the tuning half)"))
    ap.add_argument("--rm-ensemble", type=int, default=0, metavar="M", help=(
        "train M reward models of the run's recipe and compare single vs ensemble accuracy"))
    ap.add_argument("--k", type=int, default=3, help="members per ensemble (--rm-ensemble)")
    args = ap.parse_args()
    base_sets = [f"run_dir={args.run_dir}", *args.sets]
    if args.rm_ensemble:
        return rm_ensembles(load_config(None, base_sets + [f"train_rm.ensemble={args.rm_ensemble}"]),
                            args.k)
    cfg, names = load_config(None, base_sets), list(STAGES)
    default = run_stages(cfg, names[:names.index("evaluate")] if args.recipe_only else names,
                         echo=print)
    policies = {"base": cfg.models.policy, "default": trained_policy(cfg)}
    if not args.recipe_only:
        # Only blend onwards can differ; evaluate is left out (the dev sets are measured below).
        run_stages(load_config(None, base_sets + HUMAN_ONLY),
                   names[names.index("blend"):names.index("evaluate")], echo=print)
        policies = {"base": policies["base"], "human-only": trained_policy(cfg),
                    "default": policies["default"]}
    sets = {k: [p["prompt"] for p in load_prompts(src.format(part=args.part), limit=args.limit,
                                                   seed=cfg.seed)] for k, src in SETS.items()}
    with RunContext(cfg) as ctx:
        flags = {name: refusal_flags(ctx, spec, sets, cfg.evaluate.max_new_tokens)
                 for name, spec in policies.items()}
    labels = load_labels(LABELS.format(part=args.part))
    measured = {"string": detector_accuracy([(is_refusal(x["reply"]), x["refused"])
                                             for x in labels])}
    rates = refusal_table(flags, measured, "string", cfg.seed)
    lines = [v["line"] for v in verdicts(
        {k: {s: f for s, f in v.items() if s != "redteam"} for k, v in flags.items()},
        measured, "string", cfg.seed)]
    result = {"policies": policies, "part": args.part, "detector": measured,
              "refusal": rates, "verdicts": lines, "ai_value": default.get("ai_value")}
    print(json.dumps(result, indent=1))
    print(f"\nrefusal decided by {describe('string', measured['string'])}; corrected for its "
          "error, 95 % intervals\n")
    print(table(rates, default.get("ai_value")))
    print("\n".join(["", *lines]))


def rm_ensembles(cfg, k: int):
    """Single reward models vs ensembles of k on the run's held-out human pairs (module doc)."""
    names = list(STAGES)
    m = run_stages(cfg, names[:names.index("train-rm") + 1], echo=lambda line: print(line, file=sys.stderr))
    with ReadOnlyStore(cfg.run_dir) as store:
        paths = store.get_manifest("train-rm-ensemble")["meta"]["paths"]
    scores = [json.loads((Path(p) / "cai-model.json").read_text())["heldout_scores"] for p in paths]
    singles = [ensemble_report([s], "mean", 0.0)["accuracy"] for s in scores]
    print(f"held-out human pairs: {len(scores[0])}; reward models: {len(scores)} (train-rm took "
          f"{m['stages']['train-rm']['seconds']:.0f} s, {m['stages']['train-rm']['made']} trained)")
    print(f"{'what':<30} {'n':>3} {'mean acc.':>10} {'sd':>6}  each")
    rows = [("single reward model", singles)]
    windows = [scores[i:i + k] for i in range(len(scores) - k + 1)]
    for how in ("mean", "min", "mean_minus_std"):
        rows.append((f"ensemble of {k}, {how}", [ensemble_report(w, how, 1.0)["accuracy"] for w in windows]))
    for what, accs in rows:
        print(f"{what:<30} {len(accs):>3} {statistics.fmean(accs):>10.4f} "
              f"{statistics.pstdev(accs):>6.4f}  {', '.join(f'{x:.3f}' for x in accs)}")
    spreads = [ensemble_report(w, "mean", 1.0)["mean_spread"] for w in windows]
    print(f"members' mean spread (std of scores per reply), per window: "
          f"{', '.join(f'{x:.3f}' for x in spreads)}")


def table(rates: dict, ai_value: dict | None) -> str:
    lines = ["| policy | harmful refused | unsafe contrast refused | safe refused (over-refusal) "
             "| red-team refused |", "|---|---|---|---|---|"]
    for name, r in rates.items():
        cells = [f"{r[s]['rate']:.3f} [{r[s]['ci95'][0]:.3f}, {r[s]['ci95'][1]:.3f}] "
                 f"n={r[s]['n']}" for s in SETS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if ai_value:
        lines += ["", f"reward model, held-out human accuracy (n = {ai_value['n']}): with AI pairs "
                      f"{ai_value['accuracy']}, human pairs alone {ai_value['accuracy_human_only']} "
                      f"(difference {ai_value['difference']:+.3f}, 95 % interval "
                      f"{ai_value['ci95']}); ROC-AUC {ai_value['auc']} vs "
                      f"{ai_value['auc_human_only']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
