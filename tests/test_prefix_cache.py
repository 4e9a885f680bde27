"""Prefix reuse gives the scores a full prefill gives, and prefills shared prefixes once."""

import numpy as np
import pytest
import torch
from conftest import ROOT

from cai.backends.base import ChoiceRequest
from cai.backends.client import freeze
from cai.backends.prefix_cache import common_length, plan_prefixes
from cai.constitution import load_constitution, render_comparison, render_verdict
from cai.inputs.sources import load_human_pairs


@pytest.fixture(scope="module")
def backends(tiny_model_dir):
    from cai.backends.transformers_backend import TransformersBackend
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


def _tiny(arch: str, out, tokenizer_dir):
    """A 2-layer random model of a family whose head does something after the projection."""
    from transformers import (
        AutoTokenizer,
        Gemma2Config,
        Gemma2ForCausalLM,
        GraniteConfig,
        GraniteForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id or tok.eos_token_id)
    config, cls = {
        "llama": (lambda: LlamaConfig(**common, tie_word_embeddings=True), LlamaForCausalLM),
        # Granite divides the logits by logits_scaling after the head
        "granite": (lambda: GraniteConfig(**common, logits_scaling=4.0, embedding_multiplier=12.0),
                    GraniteForCausalLM),
        # Gemma 2 soft-caps the final logits
        "gemma2": (lambda: Gemma2Config(**common, head_dim=16, final_logit_softcapping=3.0),
                   Gemma2ForCausalLM)}[arch]
    torch.manual_seed(0)
    cls(config()).save_pretrained(out)
    tok.save_pretrained(out)
    return out


# Measured on this project's CPU (bench/RESULTS.md): float32 <= 2e-6, bfloat16 <= 3e-3.
TOLERANCE = {"float32": 2e-4, "bfloat16": 1e-2}


@pytest.mark.parametrize("arch", ["llama", "granite", "gemma2"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_prefix_reuse_matches_the_models_own_forward_in_every_family(arch, dtype, smollm2_dir,
                                                                     tmp_path):
    from cai.backends.transformers_backend import TransformersBackend
    model = _tiny(arch, tmp_path / arch, smollm2_dir)
    requests = _judge_requests(4)
    reuse = TransformersBackend(str(model), dtype=dtype, prefix_cache=True)
    plain = TransformersBackend(str(model), dtype=dtype, prefix_cache=False)
    got, want = reuse.choice_logprobs(requests), plain.choice_logprobs(requests)
    assert reuse.prefixes.stats["prefix_tokens_reused"] > 0
    np.testing.assert_allclose(got, want, atol=TOLERANCE[dtype])
