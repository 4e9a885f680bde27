"""Prefix reuse gives the scores a full prefill gives, and prefills shared prefixes once."""

import numpy as np
import pytest
import torch

from constitution import load_constitution, render_comparison, render_verdict
from pipeline.backends.base import ChoiceRequest
from pipeline.backends.prefix_cache import common_length, plan_prefixes
from pipeline.client import freeze
from pipeline.sources import load_human_pairs
from conftest import ROOT


@pytest.fixture(scope="module")
def backends(tiny_model_dir):
    from pipeline.backends.transformers_backend import TransformersBackend
    torch.manual_seed(0)
    # float32: the comparison checks the algorithm to 2e-4; in bfloat16 (dtype 'auto' on a CPU
    # with bf16 instructions) both sides round to ~3 digits and differ by that much.
    return (TransformersBackend(str(tiny_model_dir), dtype="float32", prefix_cache=True),
            TransformersBackend(str(tiny_model_dir), dtype="float32", prefix_cache=False))


def _judge_requests(n=10):
    c = load_constitution(ROOT / "principles.yaml")
    humans = load_human_pairs("builtin:calibration")[:n]
    out = []
    for i, h in enumerate(humans):
        p = c.principles[i % 3]
        out.append(ChoiceRequest(freeze(render_comparison(c, p, h["prompt"], h["chosen"],
                                                          h["rejected"])[0]), ("A", "B")))
        out.append(ChoiceRequest(freeze(render_verdict(c, p, h["prompt"], h["chosen"],
                                                       "It is fine.")[0]), ("Yes", "No")))
    return out


def test_prefix_reuse_scores_like_a_full_prefill(backends):
    reuse, plain = backends
    requests = _judge_requests()
    got, want = reuse.choice_logprobs(requests), plain.choice_logprobs(requests)
    np.testing.assert_allclose(got, want, atol=2e-4)
    stats = reuse.prefixes.stats
    # Verdicts of a principle share the system prompt and few-shot turns; comparisons the
    # system prompt and their preamble: a good share of prompt tokens were not run again.
    assert stats["prefix_tokens_reused"] > 0.4 * (stats["prefix_tokens_reused"] + stats["tokens_run"])
    # A second call finds the prefixes cached and scores the same.
    before = stats["tokens_run"]
    np.testing.assert_allclose(reuse.choice_logprobs(requests[:4]), want[:4], atol=2e-4)
    assert stats["tokens_run"] - before < sum(len(reuse._ids([[dict(m) for m in r.messages]])[0])
                                             for r in requests[:4]) / 2


def test_a_lone_request_and_a_multi_token_choice_still_score(backends):
    reuse, plain = backends
    [request] = _judge_requests(1)[:1]
    multi = ChoiceRequest(request.messages, ("A", "B", "Neither"))
    np.testing.assert_allclose(reuse.choice_logprobs([multi]), plain.choice_logprobs([multi]),
                               atol=2e-4)


def test_plan_cuts_at_the_deepest_shared_message_boundary():
    a = ([1] * 40 + [2] * 10 + [3, 4], [0, 40, 50])
    b = ([1] * 40 + [2] * 10 + [5, 6], [0, 40, 50])
    c = ([1] * 40 + [7] * 10 + [8], [0, 40, 50])
    lone = ([9] * 60, [0, 50])
    assert plan_prefixes([a, b, c, lone], cached={}) == [50, 50, 40, 0]
    assert plan_prefixes([lone], cached={tuple([9] * 50): None}) == [50]
    assert common_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
