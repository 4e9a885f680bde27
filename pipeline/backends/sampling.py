"""Sampling seeded per request, inside a batch: a request's sample is a function of the request
(its messages, seed and sample index), not of the requests that happen to share its batch.

transformers' `generate` draws every row of a batch from the one global torch generator, so the
same request sampled in another batch (a resumed run batches its misses differently) comes out
different. Here each row has its own generator: a logits processor applies temperature and
top-p, draws that row's token from its generator and hands `generate` a one-hot row, which
greedy decoding then takes.
"""

from ..hashing import content_hash


def request_seed(request) -> int:
    """A request's own seed: its messages, seed and sample index (63 bits)."""
    return int(content_hash(request.messages, request.seed, request.sample, n=15), 16)


def row_sampler(seeds: list[int], temperature: float, top_p: float, device):
    """A LogitsProcessor that samples row i with a generator seeded by seeds[i]."""
    import torch
    from transformers import LogitsProcessor

    class RowSampler(LogitsProcessor):
        def __init__(self):
            self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.float() / temperature, dim=-1)
            if top_p < 1.0:
                probs = _nucleus(probs, top_p)
            chosen = torch.full_like(scores, float("-inf"))
            for i, generator in enumerate(self.generators):
                token = torch.multinomial(probs[i], 1, generator=generator)
                chosen[i, token] = 0.0
            return chosen

    return RowSampler()


def _nucleus(probs, top_p: float):
    """Keep the smallest set of most likely tokens whose mass reaches top_p (at least one)."""
    import torch
    ordered, index = torch.sort(probs, descending=True, dim=-1)
    drop = ordered.cumsum(-1) - ordered > top_p
    ordered = ordered.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, index, ordered)
