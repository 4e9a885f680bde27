"""One identity for every model cai touches: what its answers depend on, and nothing else.

Call keys, data stages' fingerprints, trained models' names and the shared call cache all name a
model through `model_identity(spec, config)`:

- `transformers:` a local directory or a Hub id's cached snapshot (and its commit) by the content
  of every file a loader reads (weights, tokenizer, chat template, `config.json`,
  `generation_config.json`: `cai.backends.weights`), a GGUF file or the embedded alias by its
  hash; plus the dtype it runs in and whether judge prompts share prefilled prefixes
  (`models.prefix_cache`: exact in float32, within rounding in bf16).
- `vllm:` a local directory as above; a hub name only with a pinned revision
  (`org/name@REVISION`); plus dtype, context length, prefix caching and tensor parallelism.
- `openai:` the server as far as cai can see it: the base URLs the model is sent to, what each
  reports for it at `/v1/models` (its volatile `created` time aside), `openai.weights_id` when
  the user gives one, and every request setting that changes an answer (`top_logprobs`,
  structured output, the control strings broken before sending). What a server does not
  report — weights swapped under the same name and path — cai cannot see: `weights_id` is how
  a user says so.
"""

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from cai.backends.weights import identity as local_identity
from cai.errors import BackendError, ConfigError

VOLATILE = ("created",)  # /v1/models fields that change between requests, not with the model


def model_identity(spec: str, config, reachable: bool = True) -> dict:
    """The identity of a model spec under a run config. `reachable=False` (a dry run) names an
    unreachable server instead of stopping: its calls then all count as misses."""
    from cai.backends import parse_spec
    kind, model = parse_spec(spec)
    if kind == "transformers":
        return transformers_identity(model, config, fetch=reachable)
    if kind == "vllm":
        return vllm_identity(model, config)
    if kind == "openai":
        return openai_identity(model, config, reachable)
    return {"backend": kind, "model": model}


def transformers_identity(model: str, config, fetch: bool = True) -> dict:
    from cai.backends.device import resolve_dtype
    m = config.models
    return {**local_identity(model, fetch), "backend": "transformers",
            "dtype": resolve_dtype(m.device, m.dtype), "prefix_cache": m.prefix_cache}


def vllm_identity(model: str, config) -> dict:
    v = config.vllm
    settings = {"backend": "vllm", "dtype": v.dtype, "max_model_len": v.max_model_len,
                "prefix_caching": v.prefix_caching,
                # splitting a model across GPUs changes the order of its sums
                "tensor_parallel_size": v.tensor_parallel_size}
    if Path(model).expanduser().exists():
        return {**local_identity(str(Path(model).expanduser())), **settings}
    name, _, revision = model.partition("@")
    if not revision:
        raise ConfigError(f"vllm:{model}: a hub model needs a pinned revision to be cached "
                          f"(vllm:{name}@<commit sha>), or a local directory")
    return {"model": name, "revision": revision, **settings}


def openai_identity(model: str, config, reachable: bool = True) -> dict:
    o = config.openai
    urls = base_urls(model, config)
    return {"backend": "openai", "model": model, "weights": o.weights_id or None,
            "servers": {url: server_report(url, model, o.api_key_env, reachable) for url in urls},
            "top_logprobs": o.top_logprobs if o.logprobs else None,
            "structured": o.structured,
            # control strings broken in prompts before they are sent: what the server reads
            "control_tokens": sorted(o.control_tokens)}


def base_urls(model: str, config) -> list[str]:
    o = config.openai
    return [u.rstrip("/") for u in (o.model_base_urls.get(model) or o.base_urls)]


_REPORTS: dict = {}  # (url, model) -> report: asked once per process


def server_report(url: str, model: str, api_key_env: str, reachable: bool = True) -> dict:
    """What the server at `url` reports for `model` at GET /models (less volatile fields).
    A server that cannot be reached stops the run with one line (every call would fail)."""
    if (url, model) in _REPORTS:
        return _REPORTS[(url, model)]
    try:
        listing = _get_json(f"{url}/models", api_key_env)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise BackendError(f"openai:{model} at {url}: HTTP {exc.code}, the API key was refused "
                               f"(check openai.api_key_env={api_key_env})") from None
        listing = {"status": exc.code}  # no model listing here: only the URL names the server
    except (OSError, ValueError) as exc:
        if not reachable:
            return {"unreachable": True}
        raise BackendError(f"openai:{model}: cannot reach {url}/models ({_why(exc)}); is the "
                           "server running at openai.base_urls?") from None
    if "status" in listing:
        _REPORTS[(url, model)] = listing
        return listing
    entries = listing.get("data") if isinstance(listing, dict) else None
    found = [e for e in entries or [] if isinstance(e, dict) and e.get("id") == model]
    report = {k: v for k, v in found[0].items() if k not in VOLATILE} if found else \
        {"listed": sorted(str(e.get("id")) for e in entries or [] if isinstance(e, dict))}
    _REPORTS[(url, model)] = report
    return report


def _get_json(url: str, api_key_env: str):
    key = os.environ.get(api_key_env) or "EMPTY"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - the user's URL
        data = json.loads(resp.read().decode("utf-8"))
    return data if isinstance(data, dict) else {"data": None}


def _why(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = getattr(exc, "reason", None) or exc
    return str(getattr(reason, "strerror", None) or reason)[:120]
