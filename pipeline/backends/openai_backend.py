"""The `openai:` backend: any OpenAI-compatible server (OpenAI, `vllm serve`, llama.cpp, TGI, SGLang).

`openai:<model>` sends chat completions to `openai.base_urls` (several: round-robin). Requests
of a batch run concurrently (`openai.concurrency`, asyncio + the official `openai` client with
its own retries off, so the policy below is the only one):

- 429, 5xx, connection errors, timeouts and malformed responses are retried with exponential
  backoff and full jitter, honouring `Retry-After`, up to `openai.max_retries` times; then the
  request is returned as a failure (the store records it with its reason);
- 401, 403 and 404 (wrong key, no access, wrong model or URL) stop the run at once: retrying
  cannot fix them;
- 400 (e.g. a prompt over the context length) fails that request only.

The API key is read from the environment variable named by `openai.api_key_env` when the
backend starts; it is never part of a cache key, a stored request, a log line or the card.
Choice log-probabilities come from `logprobs`/`top_logprobs` of a one-token completion.
"""

import asyncio
import hashlib
import json
import math
import os
import random
from itertools import cycle

from cai.backends.base import RequestFailed, as_messages
from cai.errors import BackendError
from cai.inputs.control_tokens import neutralise_messages

RETRYABLE_STATUS = {408, 409, 429}  # and every 5xx
FATAL_STATUS = {401: "the API key was refused", 403: "the API key may not use this model",
                404: "no such model or URL"}


def request_seed(seed: int, sample: int) -> int:
    """OpenAI's `seed` is one integer; (seed, sample) must map to distinct, stable values."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{sample}".encode()).digest()[:4], "big") >> 1



def batch_size(settings) -> int:
    """Requests per batch for a server: enough to keep `concurrency` of them in flight."""
    return max(64, 8 * settings.concurrency)

class OpenAIBackend:
    def __init__(self, model: str, settings):
        import openai  # noqa: F401 - fail here, at load, if the package is missing

        self.model, self.settings = model, settings
        self.urls = settings.model_base_urls.get(model) or settings.base_urls
        self._key = os.environ.get(settings.api_key_env) or "EMPTY"  # `vllm serve` needs none
        self.identity = {"backend": "openai", "model": model,
                         "weights": settings.weights_id or None}
        self.stats = {"requests": 0, "retries": 0, "failed": 0}
        # Requests handed over per batch (the client writes the store once per batch): enough
        # that the idle slots while a batch drains are a small share of its time.
        self.batch_size = batch_size(settings)

    # -- the Backend interface --------------------------------------------------------------
    def generate(self, requests) -> list:
        responses = self._run([self._completion_args(r) for r in requests])
        return [_read(resp, lambda x, r=r: _content(x, r.schema)) for resp, r in zip(responses, requests)]

    def choice_logprobs(self, requests) -> list:
        responses = self._run([{"messages": self._messages(r), "max_tokens": 1,
                                "temperature": 0.0, "logprobs": True,
                                "top_logprobs": self.settings.top_logprobs} for r in requests])
        return [_read(resp, lambda x, r=r: _choice_logprobs(x, r, self.model))
                for resp, r in zip(responses, requests)]

    # -- plumbing ---------------------------------------------------------------------------
    def _messages(self, r) -> list[dict]:
        # The server tokenizes the rendered template whole: control strings in a prompt or reply
        # are broken first, or they would open and close turns (cai.inputs.control_tokens).
        return neutralise_messages(as_messages(r.messages), self.settings.control_tokens)

    def _completion_args(self, r) -> dict:
        p = r.params
        args = {"messages": self._messages(r), "max_tokens": p.max_new_tokens,
                "temperature": p.temperature, "seed": request_seed(r.seed, r.sample)}
        if p.temperature > 0:
            args["top_p"] = p.top_p
        if r.schema:  # JSON-schema structured output (OpenAI, vLLM, llama.cpp, SGLang)
            from cai.feedback.structured import SCHEMAS
            args["response_format"] = {"type": "json_schema", "json_schema": {
                "name": r.schema, "schema": SCHEMAS[r.schema], "strict": True}}
        return args

    def _run(self, args: list[dict]) -> list:
        """Every request concurrently, round-robin over the base URLs; responses in order (a
        RequestFailed where one failed). Clients live for one batch: an httpx pool is bound to
        the event loop it was made in."""
        import openai

        async def all_of():
            clients = [openai.AsyncOpenAI(base_url=url, api_key=self._key, max_retries=0,
                                          timeout=self.settings.timeout) for url in self.urls]
            gate, turn = asyncio.Semaphore(self.settings.concurrency), cycle(clients)
            try:
                return await asyncio.gather(*(self._one(a, next(turn), gate) for a in args))
            finally:
                for c in clients:
                    await c.close()
        return asyncio.run(all_of())

    async def _one(self, args: dict, client, gate):
        import openai
        s = self.settings
        async with gate:
            for attempt in range(s.max_retries + 1):
                self.stats["requests"] += 1
                try:
                    resp = await client.chat.completions.create(model=self.model, **args)
                    if not getattr(resp, "choices", None):
                        raise ValueError("a response without choices")
                    return resp
                except openai.APIStatusError as exc:
                    code = exc.status_code
                    if code in FATAL_STATUS:
                        raise BackendError(f"openai:{self.model} at {client.base_url}: HTTP {code}, "
                                          f"{FATAL_STATUS[code]} (check openai.api_key_env="
                                          f"{s.api_key_env}, the model name and base URL)") from None
                    if code not in RETRYABLE_STATUS and code < 500:
                        return RequestFailed(f"HTTP {code}: {_brief(exc)}")
                    error, wait = f"HTTP {code}: {_brief(exc)}", _retry_after(exc)
                except (openai.APIConnectionError, openai.APIResponseValidationError,
                        json.JSONDecodeError, ValueError) as exc:
                    error, wait = f"{type(exc).__name__}: {_brief(exc)}", None
                if attempt == s.max_retries:
                    self.stats["failed"] += 1
                    return RequestFailed(f"{error} at {client.base_url} (after {attempt + 1} "
                                         "attempts)", transient=True)
                self.stats["retries"] += 1
                await asyncio.sleep(wait if wait is not None else _backoff(attempt, s))



def _read(resp, read):
    if isinstance(resp, RequestFailed):
        return resp
    try:
        return read(resp)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        return RequestFailed(f"malformed response: {exc!r}")


def _backoff(attempt: int, s) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): spreads retry storms."""
    return random.uniform(0, min(s.max_backoff, s.backoff * 2 ** attempt))


def _retry_after(exc) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _brief(exc) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _content(resp, schema: str | None) -> str:
    """The answer text; under a schema, its "text" field (the raw reply if that does not parse:
    the pipeline's parse-and-retry then decides)."""
    text = (resp.choices[0].message.content or "").strip()
    if schema:
        try:
            return str(json.loads(text)["text"]).strip()
        except (ValueError, KeyError, TypeError):
            return text
    return text


def _choice_logprobs(resp, request, model: str) -> list[float]:
    """Log-probabilities of the choice strings from the first token's top_logprobs.

    Variants of one choice (" A", "A") add up. A choice missing from the top list is at most as
    likely as the least likely listed token: it gets that log-probability minus log 2.
    """
    content = resp.choices[0].logprobs.content if resp.choices[0].logprobs else None
    if not content:
        raise BackendError(f"openai:{model}: the server returned no log-probabilities; set "
                           "openai.logprobs=false so the judge votes instead")
    top = content[0].top_logprobs
    floor = min(t.logprob for t in top) - math.log(2)
    out = []
    for choice in request.choices:
        hits = [t.logprob for t in top if t.token.strip() == choice]
        out.append(math.log(sum(math.exp(x) for x in hits)) if hits else floor)
    return out
