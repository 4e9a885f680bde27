"""blend: weighted AI preference pairs + the human slice's training pairs -> the training set.

pair records + human slice -> training set and held-out set
    cai blend --set blend.human_weight=2 --set blend.weights.comparison=0.5

Every human training pair is used (`blend.human_weight` times, on average); the held-out ones
(`calibration.heldout`) never are, nor is any pair, human or AI, whose prompt is an evaluation
prompt (`pipeline.heldout`). AI pairs are deduplicated and capped per prompt (highest weight
first), then each is used as often as its weight says: its trust × calibrated confidence (see
`pipeline.trust`) times `blend.weights[kind]`; a pair of weight w is used floor(w) times and
once more with probability frac(w) (seeded). TRL's DPO and reward trainers take no per-example
weights, so sampling with probability w is how a weight reaches the loss: in expectation it is
the weighted loss. A judge at chance earns weight 0, so its pairs leave training to the humans.
The composition (pairs, their effective count, what trust the judge earned) goes to the manifest
and the dataset card; every drop is counted by reason. No model calls.
"""

import math

from ..context import StageStats, timed
from ..stage_inputs import Reads
from ..hashing import content_hash
from ..heldout import evaluation_prompts, norm
from ..human_slice import run_slice
from ..iterations import carried_pairs
from .common import load_records, require_manifest, save_records


# What this stage reads (pipeline.stage_inputs): its fingerprint and `cai plan` follow it.
READS = Reads(
    config=("seed", "blend", "pairs.kinds", "calibration.source", "calibration.limit",
            "calibration.heldout", "inputs", "review.use_labels", "review.annotators_per_item",
            "evaluate.harmful", "evaluate.unsafe", "evaluate.safe", "evaluate.redteam",
            "evaluate.refusal_labels", "iterations.current",
            "iterations.root", "iterations.decay"),
    files=("calibration.source", "evaluate.harmful", "evaluate.unsafe", "evaluate.safe",
           "evaluate.redteam", "evaluate.refusal_labels"),
    stages=("pairs",), review=True, carried=True)


@timed("blend")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("blend")
    b, people = cfg.blend, run_slice(ctx)
    held = [_human_record(h, "heldout") for h in people.heldout]
    banned = evaluation_prompts(cfg)
    ai_ids = require_manifest(ctx, "pairs")["ids"]
    carried = carried_pairs(cfg)  # earlier iterations' pairs, decayed (none in a plain run)
    save_records(ctx, stats, [(i, "pair", p) for i, p in carried])
    ai = _select(list(zip(ai_ids, load_records(ctx, ai_ids))) + carried, banned, b, stats)
    effective = {k: round(sum(_weight(p, b) for _, p in ai if p["kind"] == k), 3)
                 for k in cfg.pairs.kinds}
    ai = _sampled(ai, lambda p: _weight(p, b), cfg.seed)
    humans = []
    for h in people.train:
        if norm(h["prompt"]) in banned:
            stats.drop("human_prompt_is_evaluation")
        else:
            humans.append(_human_record(h, "train"))
    human = _sampled([(r[0], r[2]) for r in humans], lambda _: b.human_weight, cfg.seed)
    save_records(ctx, stats, humans + held)
    train_ids = [i for i, _ in ai] + [i for i, _ in human]
    composition = {"ai": {k: sum(p["kind"] == k for _, p in ai) for k in cfg.pairs.kinds},
                   "ai_candidates": len(ai_ids), "ai_effective": effective,
                   "carried": len(carried),
                   "human": len(human), "heldout_human": len(held),
                   "weights": dict(b.weights), "dropped": dict(stats.dropped)}
    ctx.store.put_manifest("blend", train_ids, {"heldout": [r[0] for r in held],
                                                "composition": composition})
    stats.metrics = {"composition": composition}
    return stats


def _weight(pair: dict, b) -> float:
    return pair.get("weight", 1.0) * b.weights.get(pair["kind"], 1.0)


def _select(pairs: list, banned: set, b, stats) -> list:
    """Drop pairs on evaluation prompts and exact duplicates; cap pairs per prompt."""
    seen, per_prompt, kept = set(), {}, []
    # Heaviest first, so the cap and the dedupe keep the pairs that count most.
    for pid, pair in sorted(pairs, key=lambda x: (-_weight(x[1], b), -_confidence(x[1]), x[0])):
        prompt = norm(pair["prompt"])
        if prompt in banned:
            stats.drop("prompt_is_evaluation")
        elif (prompt, pair["chosen"], pair["rejected"]) in seen:
            stats.drop("duplicate_pair")
        elif per_prompt.get(prompt, 0) >= b.max_pairs_per_prompt:
            stats.drop("over_max_pairs_per_prompt")
        else:
            seen.add((prompt, pair["chosen"], pair["rejected"]))
            per_prompt[prompt] = per_prompt.get(prompt, 0) + 1
            kept.append((pid, pair))
    return sorted(kept, key=lambda x: x[0])  # a stable order, independent of the ranking


def _confidence(pair: dict) -> float:
    """How sure the judge was of a pair, to break ties: P(chosen ≻ rejected), else (no
    comparison) a critique-revision pair's P(original violates)."""
    p = pair.get("p_chosen")
    return p if p is not None else pair.get("p_violates", 0.5)


def _sampled(pairs: list, weight, seed: int) -> list:
    """Each pair used floor(w) times, plus once more with probability frac(w) (seeded)."""
    out = []
    for pid, pair in pairs:
        w = weight(pair)
        u = int(content_hash(seed, "weight", pid, n=8), 16) / 16**8
        out += [(pid, pair)] * (math.floor(w) + (u < w - math.floor(w)))
    return out


def _human_record(h: dict, split: str) -> tuple:
    rid = "human-" + content_hash(h["id"], h["prompt"], h["chosen"], h["rejected"])
    return (rid, "pair", {"kind": "human", "source": "human", "split": split,
                          "prompt_id": h["id"], "prompt": h["prompt"], "chosen": h["chosen"],
                          "rejected": h["rejected"], "p_chosen": 1.0, "margin": 1.0,
                          "weight": 1.0, "provenance": {"human_id": h["id"]}})
