"""Which principle a record is judged under: weighted rendezvous hashing.

Each (record key, principle id) pair gets a uniform U in (0, 1) from sha256; the score
-ln(U) / weight is exponential with rate `weight`, so the lowest score wins with
probability weight / sum(weights). Because a principle's score depends only on the key,
the seed, its id and its weight:
- adding a principle moves only the records it now wins,
- removing one moves only the records it held,
- editing its text (or reordering the file) moves none.
See docs/architecture.md, invariant 3.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from .schema import Principle

_BITS = 53  # a double's mantissa: every U is exactly representable


def _uniform(key: str, principle_id: str, seed: int) -> float:
    """A uniform draw strictly inside (0, 1), fixed by (seed, key, principle id)."""
    data = f"{seed}\x1f{key}\x1f{principle_id}".encode("utf-8")
    n = int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> (64 - _BITS)
    return (n + 0.5) / 2**_BITS  # the half step keeps U off 0 (ln undefined) and 1


def _score(key: str, principle: Principle, seed: int) -> tuple[float, float, str]:
    """Sort key: lowest wins. Weight 0 scores infinity, so it only ever ranks last."""
    draw = -math.log(_uniform(key, principle.id, seed))
    score = draw / principle.weight if principle.weight > 0 else math.inf
    # Ties (in practice only between weight-0 principles) break on the draw, then the id,
    # never on list order.
    return score, draw, principle.id


def rank_principles(principles: Sequence[Principle], key: str, seed: int) -> list[Principle]:
    """All principles for record `key`, best first; an ensemble takes the first k."""
    if not principles:
        raise ValueError("no principles to choose from")
    if all(p.weight == 0 for p in principles):
        raise ValueError("every principle has weight 0; give at least one a positive weight")
    return sorted(principles, key=lambda p: _score(key, p, seed))


def assign_principle(principles: Sequence[Principle], key: str, seed: int) -> Principle:
    """The one principle record `key` is judged under."""
    return rank_principles(principles, key, seed)[0]
