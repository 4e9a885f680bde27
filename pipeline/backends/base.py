"""The one small interface every model backend implements.

A backend does two things, both batched:
- `generate(requests)`: chat completion with sampling parameters and a seed;
- `choice_logprobs(requests)`: log-probabilities of given choice strings as the next reply
  (the judge's multiple-choice answers: "Yes"/"No", "A"/"B").

A result may be `RequestFailed(reason)` for a request that failed on its own (a remote server
that kept answering 500): the client stores it with its reason. An exception is the backend's
fault, not the requests' (out of memory, a broken engine): it stops the run with one line, and
the batch in flight is not stored, so a rerun calls it again.

Backends know nothing of the store: caching, batching policy and progress live in
`cai.backends.client`. `identity` names the model independently of the backend that serves it
(name plus a hash of the weights), so it can be part of a cache key.
"""

from dataclasses import asdict, dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple  # of {"role", "content"} dicts, frozen as tuples of pairs by the client
    params: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    sample: int = 0  # index of this sample among several for the same messages
    schema: str | None = None  # a named answer schema (cai.feedback.structured.SCHEMAS) to enforce


@dataclass(frozen=True)
class ChoiceRequest:
    messages: tuple
    choices: tuple  # e.g. ("Yes", "No")


@dataclass(frozen=True)
class RequestFailed:
    """One request of a batch that failed (after the backend's own retries): the client stores
    it as a failed call with this reason, and the rest of the batch as usual. A `transient`
    failure (connection refused, timeouts, 429, 5xx) says something of the server at that
    moment, not of the request: the next run asks it again without being told to. A permanent
    one (a 400 with its reason) is kept and counted until `models.retry_failed`."""
    reason: str
    transient: bool = False


class Backend(Protocol):
    identity: dict  # {"model": name, "weights": hash}: what a cache key names

    def generate(self, requests: list[GenerationRequest]) -> list[str]: ...

    def choice_logprobs(self, requests: list[ChoiceRequest]) -> list[list[float]]: ...


def as_messages(messages) -> list[dict]:
    """Messages as plain dicts, whatever frozen form a request carries."""
    return [dict(m) for m in messages]
