"""The config sections of the models: which models play policy and judge, how the openai and
vllm backends reach them, and how the judge is asked."""

from typing import Literal

from pydantic import Field, field_validator

from cai.config.train import Section

# Upper bounds of counts: past them a typo (10**9 samples) would build rows until memory runs
# out, so it is one line instead. Far above what any model or data set here needs.
MAX_TOKENS = 1_000_000
MAX_ROWS = 100_000_000

EMBEDDED = "transformers:smollm2-135m"

class ModelsConfig(Section):
    policy: str = Field(EMBEDDED, description=(
        "policy model spec '<backend>:<model>' (answers prompts; base of training)"))
    judge: str = Field(EMBEDDED, description="judge model spec (critiques, revisions, comparisons)")
    device: str = Field("auto", description="'auto' (CUDA if present), 'cpu' or 'cuda[:N]'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description=(
        "'auto' (bfloat16 on CUDA and on CPUs with bf16 instructions: AVX512-BF16, AMX; float32 on "
        "other CPUs), 'float32', 'bfloat16', 'float16'"))
    batch_size: int = Field(48, ge=1, le=4096, description=(
        "requests per backend batch at most; a call's requests are split into batches of even "
        "size (generation on a 2-core CPU: 32 rows decoded 1.6x as many tokens a second as 16, "
        "36 in one batch took 0.7x the time of 32 and 4; scoring is chunked by tokens)"))
    threads: int = Field(0, ge=0, le=1024, description="torch CPU threads; 0 = one per available core")
    shared_cache: str = Field("auto", description=(
        "model calls shared by every run directory on this machine, so a new run directory makes no "
        "call another already made: 'auto' (calls.sqlite in cai's cache directory, or "
        "$CAI_CALL_CACHE), a file path, or 'off'"))
    shared_cache_max_mb: float = Field(2048, gt=0, description=(
        "bound on the shared call cache's size: past it the least recently used calls go "
        "(`cai gc --shared MB` trims it on demand)"))
    prefix_cache: bool = Field(True, description=(
        "transformers backend: prefill prompt prefixes shared by several judge calls once and "
        "reuse them (less compute; log-probabilities within 2e-6 of a full prefill in float32, 3e-3 "
        "in bfloat16, so the setting is part of the model's identity)"))
    retry_failed: bool = Field(False, description=(
        "call again where a stored call failed (failures are kept, with their reason, and not retried "
        "by accident)"))

    @field_validator("shared_cache", mode="before")
    @classmethod
    def _off(cls, v):
        """YAML reads `off` as false and `on` as true."""
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v


class OpenAIConfig(Section):
    base_urls: list[str] = Field(["http://127.0.0.1:8000/v1"], description=(
        "OpenAI-compatible endpoints for 'openai:<model>' specs; several are used round-robin (e.g. one"
        " `vllm serve` per GPU)"))
    model_base_urls: dict[str, list[str]] = Field({}, description=(
        "per-model endpoints, overriding base_urls (e.g. policy and judge on different servers)"))
    api_key_env: str = Field("OPENAI_API_KEY", description=(
        "name of the environment variable holding the API key (the key itself is never stored or "
        "logged)"))
    concurrency: int = Field(16, ge=1, le=4096, description="requests in flight at once")
    timeout: float = Field(120.0, gt=0, description="seconds before a request is abandoned and retried")
    max_retries: int = Field(6, ge=0, le=100, description=(
        "retries of a request on 429, 5xx, connection errors, timeouts and malformed responses "
        "(exponential backoff with jitter, honouring Retry-After)"))
    backoff: float = Field(1.0, gt=0, description=(
        "first retry waits up to this many seconds; doubles each time"))
    max_backoff: float = Field(60.0, gt=0, description="longest wait between retries")
    logprobs: bool = Field(True, description=(
        "the server returns top_logprobs (OpenAI, vLLM, llama.cpp do); false makes the judge vote "
        "(judge.scoring auto)"))
    top_logprobs: int = Field(20, ge=1, le=20, description=(
        "log-probabilities asked per position when scoring choices"))
    structured: bool = Field(False, description=(
        "ask for JSON-schema structured output (response_format) for judge texts where the server "
        "supports it; otherwise answers are parsed and retried"))
    weights_id: str = Field("", description=(
        "optional version tag of the served weights, part of the cache key (e.g. a checkpoint hash): "
        "change it when the server's model changes under the same name"))
    control_tokens: list[str] = Field([], description=(
        "the served model's control strings beyond the common families cai breaks in prompts and "
        "replies anyway (`<|...|>`, `[INST]`, `<s>`, `<start_of_turn>`...)"))


class VLLMConfig(Section):
    tensor_parallel_size: int = Field(1, ge=1, le=1024, description=(
        "GPUs one model is split across (vLLM offline)"))
    data_parallel_size: int = Field(1, ge=1, le=1024, description="model replicas (vLLM offline)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share of GPU memory vLLM may take")
    max_model_len: int | None = Field(None, ge=1, le=MAX_TOKENS, description=(
        "context length (null = the model's)"))
    dtype: str = Field("auto", description="vLLM dtype ('auto', 'bfloat16', 'float16')")
    prefix_caching: bool = Field(True, description=(
        "reuse the KV cache of shared prefixes (every judge prompt starts with the constitution "
        "preamble)"))


class JudgeConfig(Section):
    scoring: Literal["auto", "logprobs", "vote"] = Field("auto", description=(
        "how the judge's multiple-choice answers (verdicts, comparisons) become probabilities: "
        "'logprobs' (next-token log-probabilities of the choices), 'vote' (majority over `judge.votes` "
        "sampled answers, for backends without log-probabilities), 'auto' (logprobs where the backend "
        "has them)"))
    votes: int = Field(5, ge=1, le=100, description="answers sampled per question when scoring by vote")
    vote_temperature: float = Field(0.8, gt=0, description="sampling temperature of voted answers")
    context_tokens: int = Field(8192, ge=256, le=MAX_TOKENS, description=(
        "the judge's context length: the constitution's texts in one judge prompt (system prompt, "
        "example, principle) must fit in half of it, leaving the rest for the request and replies"))
    parse_retries: int = Field(2, ge=0, le=20, description=(
        "a judge answer that does not parse (empty or looping critique, no clear choice) is asked again"
        " this many times, then recorded as a failure"))
