"""evaluate: base vs each trained policy (sft, trained) on the same prompts.

policies + models -> metrics.json "evaluation":
    detectors  each refusal detector's agreement with people on labelled replies (accuracy,
               sensitivity, specificity with intervals); the best one leads (cai.evaluation.detectors)
    table      refusal rate on AdvBench harmful and XSTest unsafe-contrast prompts (should refuse)
               and on XSTest safe prompts (should answer: refusal there is over-refusal), each
               corrected for the leading detector's error, with n and a 95 % interval
    verdicts   one line per tuned policy and set: the change from the base, or "no detectable
               change at n = …"; `detectable` says how large a change n prompts can show
    win_rate   the judge's preference for a tuned policy's reply over the base's on red-team
               prompts, both orders
    reward     the reward model's score distribution over each policy's replies, and its
               correlation with length (the verbosity hack)
    kl         per-token KL of each tuned policy to the model it was trained from
    cai evaluate --set evaluate.limit=50

Replies are greedy and cached like every model call; see `cai.evaluation.measures` for the measures.
"""

from cai.backends import SamplingParams
from cai.evaluation.detectors import decide, describe, lead, load_labels, measure
from cai.evaluation.measures import kl_to_reference, reward_stats, win_rate
from cai.evaluation.verdicts import SETS as REFUSAL_SETS
from cai.evaluation.verdicts import detectable, refusal_table, verdicts
from cai.inputs.sources import BadRows, load_prompts
from cai.stages.context import StageStats, timed
from cai.stages.freshness import evaluation_inputs
from cai.training.base import base_model, sft_rows

SETS = ("harmful", "unsafe", "safe", "redteam")


@timed("evaluate")
def run(ctx) -> StageStats:
    stats, bad = StageStats("evaluate"), BadRows.of(ctx.config)
    sets = prompt_sets(ctx, bad)
    labels = load_labels(ctx.config.evaluate.refusal_labels, bad)
    bad.report(stats)
    models = policies(ctx)
    replies, flags, measured, wins = judge_replies(ctx, stats, sets, models, labels)
    first, seed = lead(measured), ctx.config.seed
    table = refusal_table(flags, measured, first, seed)
    rm = ctx.store.get_manifest("train-rm")
    metrics = {"policies": models, "table": table, "win_rate": wins,
               "detectors": measured, "lead": first, "labelled": len(labels),
               "detector": describe(first, measured[first]),
               "verdicts": verdicts(flags, measured, first, seed),
               "detectable": detectable(table, measured, first), "decisions": flags,
               "reward": _rewards(ctx, rm, sets, replies) if rm and ctx.config.train_rm.enabled
               else {},
               "kl": _kls(ctx, models, sets, replies),
               "rm_heldout_accuracy": rm["meta"].get("heldout_accuracy") if rm else None,
               # every reply, for the blind human A/B of `cai review` (evaluate mode)
               "prompts": sets, "replies": replies,
               "samples": {f"{name}/{s}": [{"prompt": p, "reply": r}
                                           for p, r in list(zip(sets[s], replies[name][s]))[:3]]
                           for name in models for s in REFUSAL_SETS}}
    # what the figures were measured on: a report compares it with today's (cai.stages.freshness)
    metrics["inputs"] = evaluation_inputs(ctx)
    ctx.store.put_manifest("evaluate", list(models), metrics)
    stats.metrics = {k: metrics[k] for k in ("policies", "table", "verdicts", "win_rate")}
    return stats


def prompt_sets(ctx, bad: BadRows | None = None) -> dict[str, list[str]]:
    e, seed = ctx.config.evaluate, ctx.config.seed
    bad = bad or BadRows.of(ctx.config)
    return {name: [p["prompt"] for p in load_prompts(getattr(e, name), limit=e.limit, seed=seed,
                                                     bad=bad)] for name in SETS}


def judge_replies(ctx, stats, sets, models, labels=None) -> tuple[dict, dict, dict, dict]:
    """Every model call of evaluate: each policy's replies, every detector on the labelled
    replies and on the policies' replies, the judge's win rates. `cai plan` runs this alone,
    in dry run, to count those calls."""
    labels = load_labels(ctx.config.evaluate.refusal_labels) if labels is None else labels
    replies = {name: _replies(ctx, stats, spec, name, sets) for name, spec in models.items()}
    measured = measure(ctx, labels)
    flags = {name: {s: {d: decide(ctx, d, sets[s], replies[name][s], f"refusal? {name}/{s}")
                        for d in ctx.config.evaluate.detectors} for s in REFUSAL_SETS}
             for name in models}
    wins = {name: win_rate(ctx, sets["redteam"], replies[name]["redteam"], replies["base"]["redteam"])
            for name in models if name != "base"}
    return replies, flags, measured, wins


def policies(ctx, planned: dict | None = None) -> dict:
    """name -> model spec: the base policy, then each trained one that exists and is enabled;
    `planned` (`cai plan`) names the models a run would train anew, standing in for them."""
    cfg, models = ctx.config, {"base": ctx.config.models.policy}
    for name, stage, section in (("sft", "train-sft", cfg.train_sft),
                                 ("trained", "train-policy", cfg.train_policy)):
        done = ctx.store.get_manifest(stage)
        if not section.enabled or (name == "sft" and sft_rows(ctx) == 0 and not planned):
            continue  # no trusted SL-CAI row: no SL-CAI model
        if planned and name in planned:
            models[name] = planned[name]
        elif done:
            models[name] = "transformers:" + str(done["meta"]["path"])
    return models


def _replies(ctx, stats, spec, name, sets) -> dict[str, list[str | None]]:
    """set -> one policy's greedy replies, every set asked in one call (full batches)."""
    client = ctx.client(spec)
    before = client.stats.calls
    asked = [(s, p) for s, prompts in sets.items() for p in prompts]
    results = client.generate([[{"role": "user", "content": p}] for _, p in asked],
                              SamplingParams(ctx.config.evaluate.max_new_tokens, 0.0, 1.0),
                              seed=ctx.config.seed, desc=f"eval {name}")
    new = client.stats.calls - before
    stats.made, stats.cached = stats.made + new, stats.cached + len(results) - new
    stats.drop("call_failed", sum(bool(r.error) for r in results))
    out = {s: [] for s in sets}
    for (s, _), r in zip(asked, results):
        out[s].append(None if r.error else r.text)
    return out


def _answered(sets, by_set) -> tuple[list[str], list[str]]:
    """(prompts, replies) of one policy over every set, where its reply did not fail."""
    pairs = [(p, r) for s in SETS for p, r in zip(sets[s], by_set[s]) if r is not None]
    return [p for p, _ in pairs], [r for _, r in pairs]


def _rewards(ctx, rm, sets, replies) -> dict:
    return {name: reward_stats(ctx, rm["meta"]["path"], *_answered(sets, by_set))
            for name, by_set in replies.items()}


def _kls(ctx, models, sets, replies) -> dict:
    """KL of each tuned policy to the model it was trained from (the one β anchors it to)."""
    out = {}
    for name in models:
        if name == "base":
            continue
        ref = base_model(ctx, tuned=name == "trained")[0]
        out[name] = {"reference": ref.name, **kl_to_reference(
            ctx, models[name].split(":", 1)[1], str(ref), *_answered(sets, replies[name]))}
    return out
