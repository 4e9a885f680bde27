"""Sampling seeded per request, inside a batch: a request's sample is a function of the request
(its messages, seed and sample index), not of the requests that happen to share its batch.

transformers' `generate` draws every row of a batch from the one global torch generator, so the
same request sampled in another batch (a resumed run batches its misses differently) comes out
different. Here each row has its own generator: a logits processor applies temperature and
top-p, draws that row's token from its generator and hands `generate` a one-hot row, which
greedy decoding then takes.
"""

from cai.hashing import content_hash


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
                probs = nucleus(probs, top_p)
            chosen = torch.full_like(scores, float("-inf"))
            # Over the whole vocabulary (zeros outside the nucleus): the draw consumes the same
            # randomness whatever the nucleus, so a probability that differs in the last bit
            # between batches cannot shift every later token's draw.
            for i, generator in enumerate(self.generators):
                token = torch.multinomial(probs[i], 1, generator=generator)
                chosen[i, token] = 0.0
            return chosen

    return RowSampler()


# Tokens searched for the nucleus first: sorting the whole vocabulary of 32 rows took ~45 ms a
# step on a 2-core CPU, more than the model's own step; a top-p nucleus is almost always among
# the few hundred likeliest tokens.
CANDIDATES = 1024


def nucleus(probs, top_p: float):
    """Keep the smallest set of most likely tokens whose mass reaches top_p (at least one), as a
    full sort finds it; the rest are zeroed."""
    import torch
    values, index = torch.topk(probs, min(CANDIDATES, probs.shape[-1]), dim=-1)
    if bool((values.sum(-1) > top_p).all()):
        drop = values.cumsum(-1) - values > top_p
        return torch.zeros_like(probs).scatter(-1, index, values.masked_fill(drop, 0.0))
    ordered, index = torch.sort(probs, descending=True, dim=-1)  # a nucleus past the candidates
    drop = ordered.cumsum(-1) - ordered > top_p
    return torch.zeros_like(probs).scatter(-1, index, ordered.masked_fill(drop, 0.0))
