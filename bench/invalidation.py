"""Invalidation: is reuse ever stale, and how often does it recompute for nothing?

    python bench/invalidation.py

Runs the proof of tests/test_invalidation.py (every config key, each data file edited in place,
the review labels; the data stages from scratch per case with the scripted backends) and prints,
per case that moves a fingerprint, the stages whose outputs changed and those recomputed for
nothing, then the totals: stale (must be 0) and over-invalidated (case, stage) pairs.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ["CAI_CALL_CACHE"] = "off"


def main():
    from fakes import FakeBackend
    from invalidation import prove

    from cai import backends
    from cai.log import quiet_libraries
    quiet_libraries()
    backends.BACKENDS["fake"] = lambda model, config: FakeBackend(model)
    with tempfile.TemporaryDirectory(prefix="cai-invalidation-") as tmp:
        results = prove(Path(tmp))
    print(f"{'case':<40} {'stale':<24} over-invalidated")
    for name, (stale, over) in sorted(results.items()):
        if stale or over:
            print(f"{name:<40} {','.join(stale) or '-':<24} {','.join(over)}")
    stale = sum(len(s) for s, _ in results.values())
    over = sum(len(o) for _, o in results.values())
    pairs = len(results) * 7
    print(f"\n{len(results)} cases x 7 data stages = {pairs} (case, stage) pairs: {stale} stale, "
          f"{over} over-invalidated ({100 * over / pairs:.1f} %)")


if __name__ == "__main__":
    main()
