"""pairs: critique outcomes and judge comparisons become preference pairs, side by side.

chain records + comparison records -> preference pair records
    cai pairs --set pairs.min_margin=0.3 --set pairs.kinds=[comparison]

Kind 'critique-revision': a chain makes a pair (final revision ≻ original) when the judge found
a violation in some round and the revision differs materially from the original. It carries no
preference probability: the judge was asked whether the original violates a principle, not
which of the two is better, so its `p_chosen` and `margin` are empty and the judge's highest
P(violates) is kept under its own name, `p_violates`. Kind 'comparison': a comparison makes a
pair (the preferred response ≻ the other) when its ensemble margin |2p − 1| exceeds
`pairs.min_margin`; its probability is the comparison's. Every pair carries p_chosen, margin,
its kind and its provenance (principles and versions, critiques or per-order probabilities,
models, seed). No model calls.
"""

from ..context import StageStats, timed
from ..filters import similarity
from ..hashing import content_hash
from ..probability import margin
from .common import load_records, require_manifest, save_records


@timed("pairs")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("pairs")
    records = []
    if "critique-revision" in cfg.pairs.kinds:
        for chain in load_records(ctx, require_manifest(ctx, "critique")["ids"]):
            reason = _why_no_pair(chain, cfg.pairs.min_change)
            if reason:
                stats.drop(reason)
                continue
            records.append(make_pair(chain, cfg))
    if "comparison" in cfg.pairs.kinds:
        for cmp_id, cmp in zip(*_comparisons(ctx)):
            if cmp["p"] is None:
                stats.drop(cmp["failed"] or "comparison_failed")
            elif margin(cmp["p"]) <= cfg.pairs.min_margin:
                stats.drop("margin_too_small")
            else:
                records.append(comparison_pair(cmp_id, cmp, cfg))
    save_records(ctx, stats, records)
    ctx.store.put_manifest("pairs", [r[0] for r in records], {})
    kinds = [r[2]["kind"] for r in records]
    stats.metrics = {"pairs": len(records), **{k: kinds.count(k) for k in cfg.pairs.kinds}}
    return stats


def _comparisons(ctx):
    ids = require_manifest(ctx, "label")["ids"]
    return ids, load_records(ctx, ids)


def _why_no_pair(chain, min_change) -> str | None:
    if chain.get("failed") and not chain["rounds"]:
        return chain["failed"]
    if not any(r["violates"] for r in chain["rounds"]):
        return "no_violation_found"
    if chain["final_id"] == chain["response_id"]:
        return "no_usable_revision"
    if 1 - similarity(chain["final"], chain["original"]) < min_change:
        return "revision_too_close"
    return None


def make_pair(chain, cfg) -> tuple:
    pid = "pair-" + content_hash("critique-revision", chain["final_id"], chain["response_id"])
    # P(original violates) can be the revision's own violation probability in a later round;
    # it is not P(revision ≻ original), so it is no preference probability and not called one.
    p_violates = max(r["p_violates"] for r in chain["rounds"] if r["violates"])
    return (pid, "pair", {
        "kind": "critique-revision", "source": "ai",
        "prompt_id": chain["prompt_id"], "prompt": chain["prompt"],
        "chosen": chain["final"], "rejected": chain["original"],
        "chosen_id": chain["final_id"], "rejected_id": chain["response_id"],
        "p_chosen": None, "margin": None, "p_violates": p_violates,
        "provenance": {
            "rounds": [{k: r.get(k) for k in ("round", "principle", "principle_version",
                                               "critique", "p_violates", "violates",
                                               "revision_status")} for r in chain["rounds"]],
            "policy": cfg.models.policy, "judge": cfg.models.judge, "seed": cfg.seed}})


def comparison_pair(cmp_id: str, cmp: dict, cfg) -> tuple:
    first_wins = cmp["p"] > 0.5
    chosen, rejected = ("first", "second") if first_wins else ("second", "first")
    p = cmp["p"] if first_wins else 1 - cmp["p"]
    pid = "pair-" + content_hash("comparison", cmp[chosen + "_id"], cmp[rejected + "_id"], cmp_id)
    return (pid, "pair", {
        "kind": "comparison", "source": "ai",
        "prompt_id": cmp["prompt_id"], "prompt": cmp["prompt"],
        "chosen": cmp[chosen], "rejected": cmp[rejected],
        "chosen_id": cmp[chosen + "_id"], "rejected_id": cmp[rejected + "_id"],
        "p_chosen": p, "margin": margin(p),
        "provenance": {
            "comparison": cmp_id, "candidates": cmp["kind"], "method": cmp["method"],
            # the per-principle p's below are P(first ≻ second), as the judge was asked
            "first_id": cmp["first_id"], "p_first": cmp["p"], "order_gap": cmp["gap"],
            "principles": [{k: x.get(k) for k in ("id", "version", "p_order1", "p_order2", "p",
                                                  "error", "votes", "reasoning") if k in x}
                           for x in cmp["principles"]],
            "policy": cfg.models.policy, "judge": cmp["judge"], "seed": cfg.seed}})
