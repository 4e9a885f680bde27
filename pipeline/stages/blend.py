"""blend: weighted AI preference pairs + the human slice's training pairs -> the training set.

pair records + human slice -> training set and held-out set
    cai blend --set blend.human_weight=2 --set blend.weights.comparison=0.5

Every human training pair is used (`blend.human_weight` times, on average); the held-out ones
(`calibration.heldout`) never are, nor is any pair, human or AI, whose prompt is an evaluation
prompt (`cai.inputs.heldout`). AI pairs are deduplicated and capped per prompt (highest weight
first), then each is used as often as its weight says: its trust × calibrated confidence (see
`cai.feedback.trust`) times `blend.weights[kind]`; a pair of weight w is used floor(w) times and
once more with probability frac(w) (seeded). TRL's DPO and reward trainers take no per-example
weights, so sampling with probability w is how a weight reaches the loss: in expectation it is
the weighted loss. A judge at chance earns weight 0, so its pairs leave training to the humans.
The composition (pairs, their effective count, what trust the judge earned) goes to the manifest
and the dataset card; every drop is counted by reason. No model calls.
"""

import math
from collections import Counter
from itertools import chain

from cai.hashing import content_hash
from cai.inputs.heldout import evaluation_prompts, norm
from cai.inputs.human_slice import run_slice
from cai.stages import common
from cai.stages.common import manifest_records, save_records
from cai.stages.context import StageStats, timed
from cai.stages.reads import Reads
from cai.store.iterations import carried_pairs
from cai.store.spill import Spill

# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
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
    carried = carried_pairs(cfg)  # earlier iterations' pairs, decayed (none in a plain run)
    save_records(ctx, stats, [(i, "pair", p) for i, p in carried])
    out = ctx.store.manifest_writer("blend")
    with Spill(KEPT) as kept:
        effective = _select(chain(manifest_records(ctx, "pairs"), [carried]), banned, b, stats,
                            kept)
        ai = _sample(kept, out, cfg.seed)
    humans = []
    for h in people.train:
        if norm(h["prompt"]) in banned:
            stats.drop("human_prompt_is_evaluation")
        else:
            humans.append(_human_record(h, "train"))
    human = _sampled([(r[0], r[2]) for r in humans], lambda _: b.human_weight, cfg.seed)
    save_records(ctx, stats, humans + held, out, ids=[i for i, _ in human])
    composition = {"ai": {k: ai[k] for k in cfg.pairs.kinds},
                   "ai_candidates": ctx.store.manifest_list("pairs")[1], "ai_effective": {
                       k: round(effective[k], 3) for k in cfg.pairs.kinds},
                   "carried": len(carried),
                   "human": len(human), "heldout_human": len(held),
                   "weights": dict(b.weights), "dropped": dict(stats.dropped)}
    out.finish({"heldout": [r[0] for r in held], "composition": composition})
    stats.metrics = {"composition": composition}
    return stats


def _weight(pair: dict, b) -> float:
    return pair.get("weight", 1.0) * b.weights.get(pair["kind"], 1.0)


KEPT = "id TEXT, weight REAL, kind TEXT"  # the pairs the blend keeps, before sampling


def _select(chunks, banned: set, b, stats, kept: Spill) -> Counter:
    """The AI pairs of `chunks` (lists of (id, pair)) into `kept`, but those on evaluation
    prompts and exact duplicates, and at most `blend.max_pairs_per_prompt` per prompt, heaviest
    first (so the cap and the dedupe keep the pairs that count most); ranked on disk, so a
    million pairs take the memory of a chunk. Returns the kept weight per kind."""
    with Spill("prompt TEXT, weight REAL, confidence REAL, id TEXT, kind TEXT, texts TEXT") \
            as ranked:
        for chunk in chunks:
            rows = []
            for pid, pair in chunk:
                prompt = norm(pair["prompt"])
                if prompt in banned:
                    stats.drop("prompt_is_evaluation")
                else:
                    rows.append((prompt, _weight(pair, b), _confidence(pair), pid, pair["kind"],
                                 content_hash(pair["chosen"], pair["rejected"])))
            ranked.add(rows)
        return _cap(ranked.sorted("prompt, weight DESC, confidence DESC, id"), kept, stats, b)


def _cap(rows, kept: Spill, stats, b) -> Counter:
    effective, batch, prompt, seen = Counter(), [], None, set()
    for row in rows:
        if row[0] != prompt:
            prompt, seen = row[0], set()
        if row[5] in seen:
            stats.drop("duplicate_pair")
        elif len(seen) >= b.max_pairs_per_prompt:
            stats.drop("over_max_pairs_per_prompt")
        else:
            seen.add(row[5])
            batch.append((row[3], row[1], row[4]))
            effective[row[4]] += row[1]
        if len(batch) >= common.CHUNK:
            kept.add(batch)
            batch = []
    kept.add(batch)
    return effective


def _sample(kept: Spill, out, seed: int) -> Counter:
    """The kept pairs in id order (a stable order, independent of the ranking), each listed as
    often as its weight says (`_times`); returns how many were sampled per kind."""
    sampled, batch = Counter(), []
    for pid, weight, kind in kept.sorted("id"):
        n = _times(pid, weight, seed)
        batch += [pid] * n
        sampled[kind] += n
        if len(batch) >= common.CHUNK:
            out.write(ids=batch)
            batch = []
    out.write(ids=batch)
    return sampled


def _confidence(pair: dict) -> float:
    """How sure the judge was of a pair, to break ties: P(chosen ≻ rejected), else (no
    comparison) a critique-revision pair's P(original violates)."""
    p = pair.get("p_chosen")
    return p if p is not None else pair.get("p_violates", 0.5)


def _sampled(pairs: list, weight, seed: int) -> list:
    """Each pair used floor(w) times, plus once more with probability frac(w) (seeded)."""
    return [x for pid, pair in pairs for x in [(pid, pair)] * _times(pid, weight(pair), seed)]


def _times(pid: str, w: float, seed: int) -> int:
    u = int(content_hash(seed, "weight", pid, n=8), 16) / 16**8
    return math.floor(w) + (u < w - math.floor(w))


def _human_record(h: dict, split: str) -> tuple:
    rid = "human-" + content_hash(h["id"], h["prompt"], h["chosen"], h["rejected"])
    return (rid, "pair", {"kind": "human", "source": "human", "split": split,
                          "prompt_id": h["id"], "prompt": h["prompt"], "chosen": h["chosen"],
                          "rejected": h["rejected"], "p_chosen": 1.0, "margin": 1.0,
                          "weight": 1.0, "provenance": {"human_id": h["id"]}})
