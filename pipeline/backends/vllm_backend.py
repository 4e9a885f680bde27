"""The `vllm:` backend: vLLM's offline engine (`vllm.LLM`) on one or more CUDA GPUs.

`vllm:/path/to/hf-dir` or `vllm:org/name` (a Hugging Face hub name). vLLM is an optional extra
(`pip install 'cai[vllm]'`) that only installs on Linux with CUDA, so it is imported inside the
constructor: `cai --help` and the other backends work without it.

Each call is one `LLM.chat` over the whole batch: vLLM schedules it continuously and applies the
chat template itself. Judge prompts all start with the same constitution preamble, so prefix
caching is on: the shared prefix is computed once and its KV blocks reused.
"""

import hashlib
import math
from pathlib import Path

from cai.backends.base import ChoiceRequest, GenerationRequest, as_messages
from cai.backends.weights import fingerprint
from cai.errors import BackendError, ConfigError
from cai.inputs.control_tokens import control_vocabulary, neutralise_messages

# Top log-probabilities asked for when scoring choices. 20 is vLLM's default `max_logprobs`
# (the OpenAI API's limit); asking for more is refused unless the engine is built with more.
TOP_K = 20

MISSING = ("backend 'vllm:' needs vLLM: pip install 'cai[vllm]' (Linux with a CUDA GPU); "
           "use 'transformers:<model>' otherwise")


def sample_seed(seed: int, sample: int) -> int:
    """The vLLM seed of one sample: the first 8 bytes of sha256("seed/sample") mod 2**31.

    vLLM seeds each request's generator separately, so a sample is reproducible whatever else is
    in the batch; hashing (rather than seed + sample) keeps (1, 0) and (0, 1) apart.
    """
    digest = hashlib.sha256(f"{seed}/{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


class VLLMBackend:
    def __init__(self, model: str, tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 dtype: str = "auto", prefix_caching: bool = True):
        try:
            import vllm
        except ImportError:  # also what `sys.modules["vllm"] = None` raises
            raise ConfigError(MISSING) from None
        self._vllm = vllm
        path = Path(model).expanduser()
        local = path.is_dir()
        # A hub name is pinned to a revision (`org/name@sha`): what the cache key names
        # (cai.backends.identity); a local directory is named by its files' contents.
        name, _, revision = (str(path), "", "") if local else model.partition("@")
        self.identity = {"model": path.name, **fingerprint(path)} if local else \
            {"model": name, "revision": revision or None}
        self.llm = vllm.LLM(
            model=name,
            **({"revision": revision} if revision else {}),
            tensor_parallel_size=tensor_parallel_size,
            # An EngineArgs field. Recent vLLM refuses >1 in one process (offline data parallel
            # needs a process per rank): docs/scaling.md shows `vllm serve` + `openai:` instead.
            data_parallel_size=data_parallel_size,
            enable_prefix_caching=prefix_caching,
            dtype=dtype,
            seed=0,  # sampling uses per-request seeds; this fixes everything else
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.specials = control_vocabulary(self.tokenizer)

    def _chats(self, requests) -> list[list[dict]]:
        # `LLM.chat` tokenizes the rendered template whole, so a control string in a prompt or
        # reply would become a control token: it is broken first (cai.inputs.control_tokens).
        return [neutralise_messages(as_messages(r.messages), self.specials) for r in requests]

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        if not requests:
            return []
        params = [self._sampling(r) for r in requests]
        outputs = self.llm.chat(self._chats(requests), params, use_tqdm=False)
        # LLM.chat returns one RequestOutput per conversation, in input order.
        return [o.outputs[0].text.strip() for o in outputs]

    def _sampling(self, r: GenerationRequest):
        p = r.params
        greedy = p.temperature <= 0
        return self._vllm.SamplingParams(
            n=1, max_tokens=p.max_new_tokens,
            temperature=0.0 if greedy else p.temperature,
            top_p=1.0 if greedy else p.top_p,
            seed=sample_seed(r.seed, r.sample))

    def choice_logprobs(self, requests: list[ChoiceRequest]) -> list[list[float]]:
        if not requests:
            return []
        # Checked before any GPU work, so a bad choice fails fast.
        ids = {c: self._choice_token(c) for r in requests for c in r.choices}
        params = self._vllm.SamplingParams(n=1, max_tokens=1, temperature=0.0, logprobs=TOP_K)
        outputs = self.llm.chat(self._chats(requests), params, use_tqdm=False)
        return [self._read(o.outputs[0], r, ids) for o, r in zip(outputs, requests)]

    def _choice_token(self, choice: str) -> int:
        tokens = self.tokenizer.encode(choice, add_special_tokens=False)
        if len(tokens) != 1:
            raise ValueError(f"choice {choice!r} is {len(tokens)} tokens for this tokenizer; "
                             "the vllm backend scores single-token choices only")
        return tokens[0]

    @staticmethod
    def _read(completion, request: ChoiceRequest, ids: dict) -> list[float]:
        if not completion.logprobs:  # e.g. the request was aborted before its first token
            raise BackendError("vLLM returned no log-probabilities for a judge prompt")
        # {token_id: Logprob} for the first generated position: the top-K plus the sampled token.
        first = completion.logprobs[0]
        # A token outside the top K is at most as likely as the least likely one returned; half
        # that (- log 2) is a conservative guess that keeps it ranked below every returned token.
        floor = min(lp.logprob for lp in first.values()) - math.log(2)
        return [first[ids[c]].logprob if ids[c] in first else floor for c in request.choices]
