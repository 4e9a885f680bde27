"""The `vllm:` backend against a fake `vllm` module (vLLM itself needs Linux + CUDA).

The fake mirrors the real API as read in vllm-project/vllm (main branch, 2025):
- vllm/entrypoints/llm.py @ 0012cf69: `LLM(model, *, tensor_parallel_size, dtype, seed,
  gpu_memory_utilization, **kwargs)`, the kwargs going to `EngineArgs` (which has
  `data_parallel_size`, `enable_prefix_caching`, `max_model_len`); `LLM.get_tokenizer()`;
  `LLM.chat(messages, sampling_params, use_tqdm)` where messages is one conversation or a list of
  them and sampling_params one `SamplingParams` for all or a list "paired one by one".
- vllm/sampling_params.py @ 00388f65: `SamplingParams(n=1, temperature=1.0, top_p=1.0,
  seed=None, max_tokens=16, logprobs=None, ...)`; temperature 0 means greedy.
- vllm/outputs.py @ 003d3ee2: `RequestOutput.outputs: list[CompletionOutput]`;
  `CompletionOutput(index, text, token_ids, cumulative_logprob, logprobs, ...)`.
- vllm/logprobs.py @ 578b601c: `Logprob(logprob, rank=None, decoded_token=None)`; sample
  logprobs are a list (one per generated token) of dict token_id -> Logprob, holding the top
  `logprobs` tokens plus the sampled one.
"""

import math
import sys
import types
from dataclasses import dataclass, field

import pytest

from cai.backends.base import ChoiceRequest, GenerationRequest, SamplingParams
from cai.backends.client import freeze
from cai.errors import ConfigError

VOCAB = {"A": 32, "B": 33, "Yes": 40, "No": 41, "Maybe": 50, "not": 51}


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list
    cumulative_logprob: float | None
    logprobs: list | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list | None
    prompt_logprobs: list | None
    outputs: list
    finished: bool = True


class FakeSamplingParams:
    def __init__(self, n=1, temperature=1.0, top_p=1.0, seed=None, max_tokens=16, logprobs=None):
        self.n, self.temperature, self.top_p = n, temperature, top_p
        self.seed, self.max_tokens, self.logprobs = seed, max_tokens, logprobs


class FakeTokenizer:
    def encode(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        return [VOCAB[w] for w in text.split()]


@dataclass
class FakeLLM:
    """Records its arguments; answers with text naming the prompt, or with `next_logprobs`."""
    kwargs: dict
    chats: list = field(default_factory=list)
    next_logprobs: dict = field(default_factory=dict)  # last user message -> {token_id: logprob}

    def get_tokenizer(self):
        return FakeTokenizer()

    def chat(self, messages, sampling_params=None, use_tqdm=True):
        self.chats.append((messages, sampling_params, use_tqdm))
        if not isinstance(sampling_params, list):
            sampling_params = [sampling_params] * len(messages)
        assert len(sampling_params) == len(messages)
        outs = []
        for i, (conv, p) in enumerate(zip(messages, sampling_params)):
            assert all(type(m) is dict and set(m) == {"role", "content"} for m in conv)
            asked = conv[-1]["content"]
            logprobs = None
            if p.logprobs is not None:
                top = sorted(self.next_logprobs[asked].items(), key=lambda kv: -kv[1])
                logprobs = [{t: Logprob(lp, rank=k + 1, decoded_token=str(t))
                             for k, (t, lp) in enumerate(top[:p.logprobs])}]
            text = f"  reply to {asked} \n"
            outs.append(RequestOutput(str(i), None, [1, 2], None,
                                      [CompletionOutput(0, text, [7], None, logprobs)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    fake = types.ModuleType("vllm")
    fake.instances = []

    def make_llm(**kwargs):
        llm = FakeLLM(kwargs)
        fake.instances.append(llm)
        return llm

    fake.LLM = make_llm
    fake.SamplingParams = FakeSamplingParams
    fake.Logprob = Logprob
    fake.RequestOutput, fake.CompletionOutput = RequestOutput, CompletionOutput
    monkeypatch.setitem(sys.modules, "vllm", fake)
    return fake


def _backend(**kw):
    from cai.backends.vllm_backend import VLLMBackend
    return VLLMBackend("org/model", **kw)


def _msgs(text):
    return freeze([{"role": "system", "content": "Be kind."}, {"role": "user", "content": text}])


def test_constructor_passes_engine_options_through(fake_vllm):
    backend = _backend(tensor_parallel_size=4, data_parallel_size=2, dtype="bfloat16",
                       max_model_len=4096, gpu_memory_utilization=0.8)
    [llm] = fake_vllm.instances
    assert llm.kwargs == {"model": "org/model", "tensor_parallel_size": 4, "data_parallel_size": 2,
                          "enable_prefix_caching": True, "dtype": "bfloat16", "seed": 0,
                          "gpu_memory_utilization": 0.8, "max_model_len": 4096}
    assert backend.identity == {"model": "org/model", "revision": None}
    assert isinstance(backend.tokenizer, FakeTokenizer)
    _backend(prefix_caching=False)
    assert fake_vllm.instances[-1].kwargs["enable_prefix_caching"] is False


def test_a_local_directory_is_fingerprinted(fake_vllm, tmp_path):
    from cai.backends.vllm_backend import VLLMBackend
    from cai.backends.weights import fingerprint
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights")
    backend = VLLMBackend(str(model_dir))
    assert backend.identity == {"model": "my-model", **fingerprint(model_dir)}
    assert fake_vllm.instances[0].kwargs["model"] == str(model_dir)


def test_a_hub_name_is_loaded_at_its_pinned_revision(fake_vllm):
    from cai.backends.vllm_backend import VLLMBackend
    backend = VLLMBackend("org/model@0123abcd")
    assert backend.identity == {"model": "org/model", "revision": "0123abcd"}
    assert fake_vllm.instances[-1].kwargs["model"] == "org/model"
    assert fake_vllm.instances[-1].kwargs["revision"] == "0123abcd"


def test_generate_is_one_chat_call_with_a_seeded_params_per_request(fake_vllm):
    backend = _backend()
    greedy = SamplingParams(max_new_tokens=5, temperature=0.0, top_p=0.5)
    sampled = SamplingParams(max_new_tokens=9, temperature=0.7, top_p=0.9)
    requests = [GenerationRequest(_msgs("first"), greedy, seed=3),
                GenerationRequest(_msgs("second"), sampled, seed=3, sample=0),
                GenerationRequest(_msgs("third"), sampled, seed=3, sample=1),
                GenerationRequest(_msgs("fourth"), sampled, seed=4, sample=0)]
    assert backend.generate(requests) == ["reply to first", "reply to second", "reply to third",
                                          "reply to fourth"]
    [(convs, params, use_tqdm)] = fake_vllm.instances[0].chats
    assert use_tqdm is False
    assert convs[0] == [{"role": "system", "content": "Be kind."},
                        {"role": "user", "content": "first"}]
    assert (params[0].temperature, params[0].top_p, params[0].max_tokens) == (0.0, 1.0, 5)
    assert (params[1].temperature, params[1].top_p, params[1].max_tokens) == (0.7, 0.9, 9)
    assert all(p.n == 1 and p.logprobs is None for p in params)
    seeds = [p.seed for p in params]
    assert len(set(seeds[1:])) == 3 and all(0 <= s < 2**31 for s in seeds)
    # The same (seed, sample) gets the same vLLM seed on a rerun, whatever the batch around it.
    backend.generate([requests[2]])
    assert fake_vllm.instances[0].chats[-1][1][0].seed == seeds[2]
    assert backend.generate([]) == []


def test_choice_logprobs_read_the_first_token_with_a_floor_for_missing_choices(fake_vllm):
    backend = _backend()
    llm = fake_vllm.instances[0]
    llm.next_logprobs = {
        "A or B?": {33: -0.1, 32: -2.5, 7: -4.0},
        "Yes or no?": {7: -0.05, 40: -1.0, **{100 + k: -3.0 - k for k in range(30)}},
    }
    out = backend.choice_logprobs([ChoiceRequest(_msgs("A or B?"), ("A", "B")),
                                   ChoiceRequest(_msgs("Yes or no?"), ("Yes", "No"))])
    assert out[0] == [-2.5, -0.1]
    # "No" (41) is not in the top 20 returned (7, "Yes" and 18 others, the lowest at -20.0).
    assert out[1] == [-1.0, pytest.approx(-20.0 - math.log(2))]
    [(_, params, _)] = llm.chats
    assert (params.max_tokens, params.temperature, params.logprobs) == (1, 0.0, 20)


def test_a_multi_token_choice_is_refused_before_any_work(fake_vllm):
    backend = _backend()
    with pytest.raises(ValueError, match="'Maybe not'"):
        backend.choice_logprobs([ChoiceRequest(_msgs("?"), ("Yes", "Maybe not"))])
    assert fake_vllm.instances[0].chats == []


def test_without_vllm_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'cai\[vllm\]'.*transformers:<model>"):
        _backend()
