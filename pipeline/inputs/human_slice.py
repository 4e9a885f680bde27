"""The human calibration slice: the human preference pairs that say what AI feedback is worth.

Read from `calibration.source` (its first `calibration.limit` pairs), then split by a seeded
hash of each pair's id, so the split does not move when the file is reordered:
- held-out pairs (`calibration.heldout`): reward models are scored on them; nothing is trained
  or fitted on them, and their prompts never enter any training set;
- training pairs: they join the training set, their prompts are the default red-team prompts
  the policy answers, and the judge is calibrated on them (cross-fitted: `cai.feedback.trust`), or
  on `calibration.judge_pairs` of them (`judged_pairs`).

Pairs people decided in `cai review` (`review.use_labels`) join the training pairs of the
calibration and the blend, never the held-out ones nor the prompts (so new labels recompute
the calibration, trust, blend and what follows, and no response).
"""

from dataclasses import dataclass

from cai.hashing import content_hash
from cai.inputs.sources import BadRows, load_human_pairs, load_prompts, norm


@dataclass(frozen=True)
class HumanSlice:
    train: list[dict]
    heldout: list[dict]


def human_slice(cfg, bad: BadRows | None = None) -> HumanSlice:
    """The slice, split; bad rows go to `bad` (by default `inputs.on_bad_row`, uncounted)."""
    pairs = load_human_pairs(cfg.calibration.source, bad or BadRows.of(cfg))[:cfg.calibration.limit]
    heldout, train = split_human(pairs, cfg.calibration.heldout, cfg.seed)
    return HumanSlice(train, heldout)


def run_slice(ctx, bad: BadRows | None = None) -> HumanSlice:
    """The slice a stage uses: the file's, plus the pairs decided in `cai review`."""
    people = human_slice(ctx.config, bad)
    return HumanSlice(people.train + _reviewed(ctx, people), people.heldout)


def judged_pairs(ctx, bad: BadRows | None = None) -> list[dict]:
    """The training pairs the judge labels for its calibration: `calibration.judge_pairs` of
    the file's (the first by a seeded hash of their ids, so the choice does not move when the
    file is reordered) and every pair people decided in `cai review`."""
    people = human_slice(ctx.config, bad)
    chosen = _by_hash(people.train, ctx.config.seed, "judge-pairs")[:ctx.config.calibration.judge_pairs]
    return chosen + _reviewed(ctx, people)


def _reviewed(ctx, people: HumanSlice) -> list[dict]:
    """Pairs decided in `cai review` (`review.use_labels`), none on a held-out prompt."""
    if not ctx.config.review.use_labels:
        return []
    from cai.review.agreement import reviewed_pairs
    held = {norm(h["prompt"]) for h in people.heldout}
    return [p for p in reviewed_pairs(ctx.store, ctx.config.review.annotators_per_item)
            if norm(p["prompt"]) not in held]


def split_human(pairs: list[dict], heldout: int, seed: int):
    """A seeded split that does not depend on file order: held-out first, the rest after."""
    ordered = _by_hash(pairs, seed, "human-split")
    return ordered[:heldout], ordered[heldout:]


def _by_hash(pairs: list[dict], seed: int, purpose: str) -> list[dict]:
    """Pairs in a seeded order of their ids: a choice of the first N does not move when the
    file is reordered."""
    return sorted(pairs, key=lambda h: content_hash(seed, purpose, h["id"]))


def default_prompts(cfg, bad: BadRows | None = None) -> list[dict]:
    """`prompts.source: builtin:default`: the human slice's training prompts (red-team openers
    from hh-rlhf) and cai's benign prompts (helpful, and safe but sensitive-sounding ones),
    mixed 3:1. Disjoint from every evaluation set: no red-team evaluation prompt, no held-out
    human prompt is among them."""
    red = [{"id": h["id"], "prompt": h["prompt"], "kind": "red-team"}
           for h in sorted(human_slice(cfg, bad).train, key=lambda h: content_hash(cfg.seed, h["id"]))]
    benign = sorted(({**p, "kind": "benign"} for name in ("helpful", "borderline")
                     for p in load_prompts(f"builtin:{name}")),
                    key=lambda p: content_hash(cfg.seed, p["id"]))
    mixed = []
    for i in range(max(len(red), 3 * len(benign)) // 3 + 1):
        mixed += red[3 * i:3 * i + 3] + benign[i:i + 1]
    return mixed
