"""Judge comparisons per second on the embedded model: batched scoring vs one at a time.

    python bench/label.py [--pairs 32]      # ~3 minutes on 2 CPU cores; prints a table

The judge (SmolLM2-135M, the embedded default) compares the first N human calibration pairs,
each in both answer orders (2 scoring calls per comparison), through the pipeline's own path
(`cai.feedback.judge.compare` -> cached client -> transformers backend), with an empty store each
time so every call reaches the model. Three settings, one loaded model, measured side by side:

- batched: `models.batch_size` 16, split by the backend into chunks of at most
  `max_batch_tokens` padded tokens (the default);
- one padded batch: the same 16 requests as one forward pass (no token budget);
- one at a time: batch size 1.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(backend, items, batch_size: int, token_budget: int) -> float:
    """Seconds to compare every item in both orders with a cold cache."""
    from cai.backends.client import ModelClient
    from cai.config.models import JudgeConfig
    from cai.constitution import load_constitution
    from cai.feedback.judge import compare
    from cai.store.core import Store

    backend.max_batch_tokens = token_budget
    constitution = load_constitution(ROOT / "principles.yaml")
    for it in items:
        it["principle"] = constitution.principles[0]
    with tempfile.TemporaryDirectory(prefix="cai-bench-label-") as tmp:
        store = Store(Path(tmp))
        client = ModelClient("transformers:smollm2-135m", store, lambda: backend,
                             backend.identity, batch_size)
        start = time.perf_counter()
        results = compare(client, constitution, items, JudgeConfig(scoring="logprobs"))
        seconds = time.perf_counter() - start
        store.close()
    assert all(r["p"] is not None for r in results) and client.stats.calls == 2 * len(items)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    from cai.backends.transformers_backend import TransformersBackend
    from cai.inputs.sources import load_human_pairs
    from cai.log import quiet_libraries
    quiet_libraries()
    backend = TransformersBackend("smollm2-135m")
    default_budget = backend.max_batch_tokens
    humans = load_human_pairs("builtin:calibration")[:args.pairs]
    items = [{"prompt": h["prompt"], "first": h["chosen"], "second": h["rejected"]} for h in humans]
    measure(backend, items[:2], 2, default_budget)  # warm-up: first-call allocations
    rows = [("batched (16, token budget)", measure(backend, items, 16, default_budget)),
            ("one padded batch of 16", measure(backend, items, 16, 10**9)),
            ("one at a time", measure(backend, items, 1, default_budget))]
    single = rows[-1][1]
    print(f"judge: smollm2-135m on {backend.device}, {len(items)} comparisons x 2 orders, "
          f"token budget {default_budget}")
    print(f"{'setting':<28} {'seconds':>8} {'comparisons/s':>14} {'vs one at a time':>17}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:8.1f} {len(items) / seconds:14.2f} {single / seconds:16.2f}x")


if __name__ == "__main__":
    main()
