"""Model backends, resolved from spec strings such as `transformers:smollm2-135m`.

A spec is `<kind>:<model>`; the kind picks a loader from BACKENDS. Heavy imports happen inside
the loaders, so `cai --help` stays fast and a missing optional extra only matters when used.
"""

from ..errors import ConfigError
from .base import Backend, ChoiceRequest, GenerationRequest, SamplingParams  # noqa: F401


def _transformers(model: str, options: dict):
    from .transformers_backend import TransformersBackend
    return TransformersBackend(model, **options)


def _not_yet(kind: str):
    def load(model: str, options: dict):
        raise ConfigError(f"backend '{kind}:' is planned but not implemented yet; "
                          "use 'transformers:<model>'")
    return load


BACKENDS = {
    "transformers": _transformers,
    "openai": _not_yet("openai"),
    "vllm": _not_yet("vllm"),
}


def parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, model = spec.partition(":")
    if not sep or not model:
        raise ConfigError(f"model spec '{spec}' must look like '<backend>:<model>', "
                          f"e.g. 'transformers:smollm2-135m' (backends: {', '.join(BACKENDS)})")
    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend '{kind}' in model spec '{spec}'; "
                          f"known backends: {', '.join(BACKENDS)}")
    return kind, model


# Backends whose servers may not return log-probabilities; the judge then votes (`judge.scoring`).
NO_LOGPROBS: set[str] = set()


def has_logprobs(spec: str) -> bool:
    """Whether a spec's backend scores choices by log-probabilities, known without loading it."""
    return parse_spec(spec)[0] not in NO_LOGPROBS


def load_backend(spec: str, **options) -> Backend:
    kind, model = parse_spec(spec)
    return BACKENDS[kind](model, options)
