"""Model backends, resolved from spec strings such as `transformers:smollm2-135m`.

A spec is `<kind>:<model>`; the kind picks a loader from BACKENDS. Heavy imports happen inside
the loaders, so `cai --help` stays fast and a missing optional extra only matters when used.
"""

from cai.backends.base import Backend, ChoiceRequest, GenerationRequest, SamplingParams  # noqa: F401
from cai.errors import ConfigError


def _transformers(model: str, config):
    from cai.backends.transformers_backend import TransformersBackend
    m = config.models
    return TransformersBackend(model, device=m.device, dtype=m.dtype, threads=m.threads,
                               prefix_cache=m.prefix_cache)


def _openai(model: str, config):
    try:
        from cai.backends.openai_backend import OpenAIBackend
    except ImportError:
        raise ConfigError("backend 'openai:' needs the openai package: pip install 'openai>=1.40'") from None
    return OpenAIBackend(model, config.openai)


def _vllm(model: str, config):
    from cai.backends.vllm_backend import VLLMBackend
    v = config.vllm
    return VLLMBackend(model, tensor_parallel_size=v.tensor_parallel_size,
                       data_parallel_size=v.data_parallel_size,
                       gpu_memory_utilization=v.gpu_memory_utilization,
                       max_model_len=v.max_model_len, dtype=v.dtype, prefix_caching=v.prefix_caching)


# kind -> loader(model, RunConfig). Loaders import their engine lazily.
BACKENDS = {"transformers": _transformers, "openai": _openai, "vllm": _vllm}


def parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, model = spec.partition(":")
    if not sep or not model:
        raise ConfigError(f"model spec '{spec}' must look like '<backend>:<model>', "
                          f"e.g. 'transformers:smollm2-135m' (backends: {', '.join(BACKENDS)})")
    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend '{kind}' in model spec '{spec}'; "
                          f"known backends: {', '.join(BACKENDS)}")
    return kind, model


# Backend kinds that never return log-probabilities; the judge then votes (`judge.scoring`).
NO_LOGPROBS: set[str] = set()


def has_logprobs(spec: str, config) -> bool:
    """Whether a spec's backend scores choices by log-probabilities, known without loading it."""
    kind = parse_spec(spec)[0]
    return kind not in NO_LOGPROBS and (kind != "openai" or config.openai.logprobs)


def load_backend(spec: str, config) -> Backend:
    kind, model = parse_spec(spec)
    return BACKENDS[kind](model, config)
