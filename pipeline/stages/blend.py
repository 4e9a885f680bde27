"""blend: AI preference pairs + a human calibration slice, and the judge's agreement with humans.

pair records + human slice (JSONL prompt/chosen/rejected) -> training set and held-out set
    cai blend --set blend.human_share=0.5

The slice is split once (seeded): `blend.heldout` pairs never enter training; the judge
labels them in both answer orders and its agreement with the human labels is measured there
(the same pairs later score the reward model). Human pairs join the training set so they make
up `blend.human_share` of it (at least `blend.min_human`).
"""

from constitution import assign_principle

from ..context import StageStats, timed
from ..hashing import content_hash
from ..judge import compare_both_orders
from ..sources import load_human_pairs
from .common import load_records, require_manifest, save_records


@timed("blend")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("blend")
    b = cfg.blend
    ai_ids = require_manifest(ctx, "pairs")["ids"]
    ai = load_records(ctx, ai_ids)
    heldout, pool = split_human(load_human_pairs(b.human_source), b.heldout, cfg.seed)
    n_human = min(len(pool), max(b.min_human, round(b.human_share / (1 - b.human_share) * len(ai))))
    human = [_human_record(h, "train") for h in pool[:n_human]]
    held = [_human_record(h, "heldout") for h in heldout]
    save_records(ctx, stats, human + held)
    train_ids, seen = [], set()
    for pid, pair in list(zip(ai_ids, ai)) + [(r[0], r[2]) for r in human]:
        key = (pair["prompt"], pair["chosen"], pair["rejected"])
        if key in seen:
            stats.drop("duplicate_pair")
            continue
        seen.add(key)
        train_ids.append(pid)
    agreement = judge_agreement(ctx, [r[2] for r in held], stats) if b.agreement else None
    composition = {"ai": len(train_ids) - len(human), "human": len(human),
                   "heldout_human": len(held)}
    meta = {"heldout": [r[0] for r in held], "composition": composition, "agreement": agreement}
    ctx.store.put_manifest("blend", train_ids, meta)
    stats.metrics = {"composition": composition, "judge_agreement": agreement}
    return stats


def split_human(pairs: list[dict], heldout: int, seed: int):
    """A seeded split that does not depend on file order: held-out first, the rest after."""
    ordered = sorted(pairs, key=lambda h: content_hash(seed, "human-split", h["id"]))
    return ordered[:heldout], ordered[heldout:]


def _human_record(h: dict, split: str) -> tuple:
    rid = "human-" + content_hash(h["id"], h["prompt"], h["chosen"], h["rejected"])
    return (rid, "pair", {"kind": "human", "source": "human", "split": split,
                          "prompt_id": h["id"], "prompt": h["prompt"], "chosen": h["chosen"],
                          "rejected": h["rejected"], "provenance": {"human_id": h["id"]}})


def judge_agreement(ctx, heldout: list[dict], stats) -> dict | None:
    """How often the judge prefers the human-chosen reply: per order and with both orders averaged."""
    if not heldout:
        return None
    constitution, cfg = ctx.constitution, ctx.config
    principles = constitution.select(cfg.blend.tags) or constitution.principles
    items = [{"principle": assign_principle(principles, "human/" + h["prompt_id"], cfg.seed),
              "prompt": h["prompt"], "first": h["chosen"], "second": h["rejected"]}
             for h in heldout]
    scores = compare_both_orders(ctx.judge(), constitution, items, desc="judge vs humans")
    records, ok = [], []
    for h, it, s in zip(heldout, items, scores):
        if s["p"] is None:
            stats.drop("comparison_failed")
            continue
        ok.append(s)
        rid = "cmp-" + content_hash(*s["calls"])
        records.append((rid, "judgement", {"human_id": h["prompt_id"], "principle": it["principle"].id,
                                           "principle_version": it["principle"].version, **s}))
    ctx.store.put_records(records)
    if not ok:
        return {"n": 0}
    n = len(ok)
    return {
        "n": n,
        "accuracy": sum(s["p"] > 0.5 for s in ok) / n,               # both orders averaged
        "accuracy_chosen_first": sum(s["p_order1"] > 0.5 for s in ok) / n,
        "accuracy_chosen_second": sum(s["p_order2"] > 0.5 for s in ok) / n,
        # Same decision whichever position the chosen reply was in; a pure position-biased
        # judge scores 0 here and exactly 0.5 accuracy per order averaged.
        "order_consistency": sum((s["p_order1"] > 0.5) == (s["p_order2"] > 0.5) for s in ok) / n,
        "mean_p_chosen": sum(s["p"] for s in ok) / n,
    }
