"""blend: AI preference pairs + the human calibration slice -> training set and held-out set.

pair records + human slice (JSONL prompt/chosen/rejected) -> training set and held-out set
    cai blend --set blend.human_share=0.5 --set blend.weights.comparison=2

The slice is split once (seeded): `calibration.heldout` pairs never enter training, and no
training pair may share a prompt with them (reward-model accuracy is measured there). AI pairs
are weighted per source (`blend.weights`: 0.5 keeps a seeded half, 2 uses each pair twice),
exact duplicates are dropped, and each prompt gives at most `blend.max_pairs_per_prompt`
pairs (most confident first). Human pairs then join so they make up `blend.human_share` of the
set (at least `blend.min_human`). Every drop is counted by reason; the composition goes to the
manifest and the dataset card. No model calls: the judge's agreement with the humans is
measured by the label stage.
"""

import math

from ..context import StageStats, timed
from ..hashing import content_hash
from ..sources import load_human_pairs
from .common import load_records, require_manifest, save_records


@timed("blend")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("blend")
    b = cfg.blend
    heldout, pool = split_human(load_human_pairs(cfg.calibration.source),
                                cfg.calibration.heldout, cfg.seed)
    held = [_human_record(h, "heldout") for h in heldout]
    held_prompts = {_norm(h["prompt"]) for h in heldout}
    ai_ids = require_manifest(ctx, "pairs")["ids"]
    ai = _select(list(zip(ai_ids, load_records(ctx, ai_ids))), held_prompts, b, stats)
    ai = _weighted(ai, b.weights, cfg.seed)
    pool = [h for h in pool if _norm(h["prompt"]) not in held_prompts]
    n_human = min(len(pool), max(b.min_human, round(b.human_share / (1 - b.human_share) * len(ai))))
    human = [_human_record(h, "train") for h in pool[:n_human]]
    save_records(ctx, stats, human + held)
    train_ids = [i for i, _ in ai] + [r[0] for r in human]
    composition = {"ai": {k: sum(p["kind"] == k for _, p in ai) for k in cfg.pairs.kinds},
                   "human": len(human), "heldout_human": len(held),
                   "weights": dict(b.weights), "dropped": dict(stats.dropped)}
    ctx.store.put_manifest("blend", train_ids, {"heldout": [r[0] for r in held],
                                                "composition": composition})
    stats.metrics = {"composition": composition}
    return stats


def _norm(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def _select(pairs: list, held_prompts: set, b, stats) -> list:
    """Drop pairs on held-out prompts and exact duplicates; cap pairs per prompt."""
    seen, per_prompt, kept = set(), {}, []
    # Most confident first, so the cap and the dedupe keep the strongest signal.
    for pid, pair in sorted(pairs, key=lambda x: (-_confidence(x[1]), x[0])):
        prompt = _norm(pair["prompt"])
        if prompt in held_prompts:
            stats.drop("prompt_in_heldout")
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
    """How sure the judge was of a pair, for ranking only: a comparison's P(chosen ≻ rejected),
    a critique-revision pair's P(original violates) (it has no preference probability)."""
    p = pair.get("p_chosen")
    return p if p is not None else pair.get("p_violates", 0.5)


def _weighted(pairs: list, weights: dict, seed: int) -> list:
    """Each pair used floor(w) times, plus once more with probability frac(w) (seeded)."""
    out = []
    for pid, pair in pairs:
        w = weights.get(pair["kind"], 1.0)
        u = int(content_hash(seed, "weight", pid, n=8), 16) / 16**8
        out += [(pid, pair)] * (math.floor(w) + (u < w - math.floor(w)))
    return out


def split_human(pairs: list[dict], heldout: int, seed: int):
    """A seeded split that does not depend on file order: held-out first, the rest after."""
    ordered = sorted(pairs, key=lambda h: content_hash(seed, "human-split", h["id"]))
    return ordered[:heldout], ordered[heldout:]


def _human_record(h: dict, split: str) -> tuple:
    rid = "human-" + content_hash(h["id"], h["prompt"], h["chosen"], h["rejected"])
    return (rid, "pair", {"kind": "human", "source": "human", "split": split,
                          "prompt_id": h["id"], "prompt": h["prompt"], "chosen": h["chosen"],
                          "rejected": h["rejected"], "p_chosen": 1.0, "margin": 1.0,
                          "provenance": {"human_id": h["id"]}})
