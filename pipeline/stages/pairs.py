"""pairs: critique outcomes and judge comparisons become preference pairs, each with its weight.

chain records + comparison records + the calibration fit -> preference pair records
    cai pairs --set pairs.min_margin=0.3 --set pairs.kinds=[comparison]

Kind 'critique-revision': a chain makes a pair (final revision ≻ original) when the judge found
a violation in some round and the revision differs materially from the original. Kind
'comparison': a comparison of two policy samples makes a pair (the preferred one ≻ the other)
when the judge's own ensemble margin |2p − 1| exceeds `pairs.min_margin`.

What a pair means and counts for comes from the human slice (`cai.feedback.trust`): `p_chosen` is
the calibrated P(chosen ≻ rejected) — for a critique-revision pair, from the judge comparing
the original and its revision in both orders (the label stage asks it for every revision) —
and `weight` = trust of the principles behind it × its calibrated confidence |2p − 1|. A judge
at chance earns trust 0, so its pairs weigh 0. With `calibration.use_trust: false` pairs keep
the judge's raw probability and weigh 1. The raw answers stay in the provenance. No model
calls.
"""

from collections import Counter

from cai.errors import CaiError
from cai.feedback.filters import similarity
from cai.feedback.probability import margin
from cai.feedback.trust import worth
from cai.hashing import content_hash
from cai.inputs.control_tokens import control_strings
from cai.stages.calibrate import current_fit
from cai.stages.common import grouped, manifest_records, save_records
from cai.stages.context import StageStats, timed
from cai.stages.reads import Reads

# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
READS = Reads(config=("seed", "pairs", "calibration.use_trust", "models.policy", "models.judge"),
              stages=("calibrate", "label", "critique"))


@timed("pairs")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("pairs")
    fit_id, report = current_fit(ctx)
    weigh = _Weigher(report, fit_id, cfg.calibration.use_trust)
    out, kinds, effective = ctx.store.manifest_writer("pairs"), Counter(), 0.0
    # Critique-revision pairs first, then comparison pairs, each in their manifest's order (as
    # one pass over whole lists made them): two passes, so the list is what it always was.
    passes = [(_revision_pairs, by_prompt(ctx))] if "critique-revision" in cfg.pairs.kinds else []
    if "comparison" in cfg.pairs.kinds:
        passes.append((_comparison_pairs, (([], chunk) for chunk in manifest_records(ctx, "label"))))
    for make, chunks in passes:
        for chains, comparisons in chunks:
            records = make(cfg, stats, weigh, chains, comparisons)
            for _, _, pair in records:
                _flag_control_strings(pair)
            save_records(ctx, stats, records, out)
            kinds.update(r[2]["kind"] for r in records)
            effective += sum(r[2]["weight"] for r in records)
    out.finish({"fit": fit_id})
    stats.metrics = {"pairs": out.count, **{k: kinds[k] for k in cfg.pairs.kinds},
                     "effective": round(effective, 3)}
    return stats


def by_prompt(ctx):
    """(chains, comparisons) of a chunk of whole prompts: both manifests list prompts in the
    order of the responses (`label.candidates`), so they are read side by side."""
    comparisons = _prompt_groups(manifest_records(ctx, "label"))
    ahead = next(comparisons, None)
    for chains in grouped(manifest_records(ctx, "critique"), key=lambda x: x[1]["prompt_id"]):
        mine, prompts = [], {c["prompt_id"] for _, c in chains}
        while ahead is not None and ahead[0][1]["prompt_id"] in prompts:
            mine += ahead
            ahead = next(comparisons, None)
        yield chains, mine
    if ahead is not None:
        raise CaiError(f"{ctx.run_dir}: the label stage compared responses the critique stage "
                       "did not critique; run `cai label` (or `cai run`) first")


def _prompt_groups(chunks):
    """One prompt's comparisons at a time."""
    for chunk in grouped(chunks, key=lambda x: x[1]["prompt_id"]):
        group = []
        for item in chunk:
            if group and item[1]["prompt_id"] != group[-1][1]["prompt_id"]:
                yield group
                group = []
            group.append(item)
        if group:
            yield group


def _revision_pairs(cfg, stats, weigh, chains, comparisons) -> list[tuple]:
    """Final revision ≻ original per chain that has one, as sure as the calibrated judge
    comparing them (its comparison, of the same prompts, is among `comparisons`)."""
    revision_of = {(c["first_id"], c["second_id"]): (i, c) for i, c in comparisons
                   if c["kind"] == "revision"}
    records = []
    for _, chain in chains:
        reason = _why_no_pair(chain, cfg.pairs.min_change)
        if reason:
            stats.drop(reason)
            continue
        records.append(make_pair(chain, cfg, weigh,
                                 revision_of.get((chain["response_id"], chain["final_id"]))))
    return records


def _comparison_pairs(cfg, stats, weigh, _chains, comparisons) -> list[tuple]:
    """The preferred sample ≻ the other, where the judge's margin is wide enough."""
    records = []
    for cmp_id, cmp in comparisons:
        if cmp["kind"] != "samples":
            continue
        if cmp["p"] is None:
            stats.drop(cmp["failed"] or "comparison_failed")
        elif margin(cmp["p"]) <= cfg.pairs.min_margin:
            stats.drop("margin_too_small")
        else:
            records.append(comparison_pair(cmp_id, cmp, cfg, weigh))
    return records


def _flag_control_strings(pair: dict):
    """Provenance names the texts that carried chat control strings: every backend fed them to
    the model as plain text (cai.inputs.control_tokens), and a reviewer may want to see them."""
    fields = [f for f in ("prompt", "chosen", "rejected") if control_strings(pair[f])]
    if fields:
        pair["provenance"]["control_strings"] = fields


class _Weigher:
    """What a comparison means (calibrated P(first ≻ second)) and counts for (trust × margin)."""

    def __init__(self, report, fit_id: str, use_trust: bool):
        self.report, self.use_trust = report, use_trust
        self.tag = {"fit": fit_id, "use_trust": use_trust}  # part of every pair's name

    def __call__(self, cmp: dict | None) -> dict:
        """{p_first (P(first ≻ second)), p_raw, trust} of a comparison (None: not compared)."""
        if cmp is None or cmp["p"] is None:
            return {"p_first": None, "p_raw": None, "trust": 0.0 if self.use_trust else 1.0}
        if not self.use_trust:
            return {"p_first": cmp["p"], "p_raw": cmp["p"], "trust": 1.0}
        p, trust = worth(self.report, cmp["principles"])
        return {"p_first": p, "p_raw": cmp["p"], "trust": trust}


def _weight(pair_margin: float | None, trust: float, use_trust: bool) -> float:
    if not use_trust:
        return 1.0
    return 0.0 if pair_margin is None else round(trust * pair_margin, 6)


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


def make_pair(chain, cfg, weigh, found) -> tuple:
    """Final revision ≻ original, as sure as the calibrated judge comparing them is."""
    cmp_id, cmp = found if found else (None, None)
    w = weigh(cmp)
    p = None if w["p_first"] is None else 1 - w["p_first"]  # first = original, second = revision
    m = None if p is None else max(0.0, 2 * p - 1)  # 0 where the judge prefers the original
    pid = "pair-" + content_hash("critique-revision", chain["final_id"], chain["response_id"],
                                 cmp_id, weigh.tag)
    return (pid, "pair", {
        "kind": "critique-revision", "source": "ai",
        "prompt_id": chain["prompt_id"], "prompt": chain["prompt"],
        "chosen": chain["final"], "rejected": chain["original"],
        "chosen_id": chain["final_id"], "rejected_id": chain["response_id"],
        "p_chosen": p, "margin": m, "weight": _weight(m, w["trust"], weigh.use_trust),
        "p_violates": max(r["p_violates"] for r in chain["rounds"] if r["violates"]),
        "provenance": {
            "rounds": [{k: r.get(k) for k in ("round", "principle", "principle_version",
                                               "critique", "p_violates", "violates",
                                               "revision_status")} for r in chain["rounds"]],
            "comparison": cmp_id, "p_raw": None if w["p_raw"] is None else 1 - w["p_raw"],
            "trust": w["trust"], **weigh.tag,
            "policy": cfg.models.policy, "judge": cfg.models.judge, "seed": cfg.seed}})


def principles_of(pair: dict) -> list[str]:
    """The principles behind a pair: its critique rounds' or its comparison's (`cai diff`, the
    export's AI split)."""
    prov = pair.get("provenance", {})
    return sorted({r["principle"] for r in prov.get("rounds", [])}
                  | {x["id"] for x in prov.get("principles", [])})


def comparison_pair(cmp_id: str, cmp: dict, cfg, weigh) -> tuple:
    w = weigh(cmp)
    p_first = w["p_first"] if w["p_first"] is not None else cmp["p"]
    first_wins = p_first > 0.5
    chosen, rejected = ("first", "second") if first_wins else ("second", "first")
    p = p_first if first_wins else 1 - p_first
    pid = "pair-" + content_hash("comparison", cmp[chosen + "_id"], cmp[rejected + "_id"], cmp_id,
                                 weigh.tag)
    return (pid, "pair", {
        "kind": "comparison", "source": "ai",
        "prompt_id": cmp["prompt_id"], "prompt": cmp["prompt"],
        "chosen": cmp[chosen], "rejected": cmp[rejected],
        "chosen_id": cmp[chosen + "_id"], "rejected_id": cmp[rejected + "_id"],
        "p_chosen": p, "margin": margin(p),
        "weight": _weight(margin(p), w["trust"], weigh.use_trust),
        "provenance": {
            "comparison": cmp_id, "candidates": cmp["kind"], "method": cmp["method"],
            # the per-principle p's below are the judge's raw P(first ≻ second), as asked
            "first_id": cmp["first_id"], "p_first": cmp["p"], "order_gap": cmp["gap"],
            "p_first_calibrated": w["p_first"], "trust": w["trust"], **weigh.tag,
            "principles": [{k: x.get(k) for k in ("id", "version", "mode", "p_order1", "p_order2",
                                                  "p", "p_violates", "error", "votes", "reasoning")
                            if k in x}
                           for x in cmp["principles"]],
            "policy": cfg.models.policy, "judge": cmp["judge"], "seed": cfg.seed}})
