"""Model calls through the store: the cache in front of every backend.

A call is a function of its inputs alone (sampled generations are seeded per request, not per
batch), so it is cached under H(model identity, call kind, parameters, messages, seed, sample).
A hit never reaches the backend; misses are sorted by length (less padding), batched, and
written to the store one transaction per batch, so an interrupted run loses at most the batch
in flight.
"""

import json
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from cai.backends.base import ChoiceRequest, GenerationRequest, RequestFailed, SamplingParams
from cai.errors import BackendError, CaiError
from cai.hashing import content_hash
from cai.log import logger


@dataclass
class CallStats:
    calls: int = 0        # requests sent to the backend
    cached: int = 0       # requests answered by the store (the run's own or the shared one)
    shared: int = 0       # of those, answered by the cache shared across run directories
    failed: int = 0
    failures: int = 0     # failed answers handed to a stage, new or stored (stage reuse reads it)
    seconds: float = 0.0  # time spent in the backend
    planned: int = 0      # dry run: requests that would go to the backend


def freeze(messages: list[dict]) -> tuple:
    return tuple(tuple(sorted(m.items())) for m in messages)


@dataclass
class Result:
    key: str
    text: str | None = None
    logprobs: list[float] | None = None
    error: str | None = None
    planned: bool = False  # a dry run's placeholder, not a model's answer


@dataclass
class ModelClient:
    spec: str
    store: object
    loader: object            # () -> Backend, called on the first miss only
    identity: dict
    batch_size: int = 8
    retry_failed: bool = False
    dry_run: bool = False     # `cai plan`: count misses, answer placeholders, store nothing
    logprobs: bool = True     # the backend scores choices by log-probabilities (else: votes)
    structured: bool = False  # the backend enforces answer schemas (JSON-schema output)
    shared: object = None     # the call cache shared across run directories (SharedCalls)
    engine: object = None     # who answers the misses (`cai.engines`; None: this process)
    stats: CallStats = field(default_factory=CallStats)
    _backend: object = None

    def __post_init__(self):
        if self.engine is None:
            from cai.engines.local import LocalEngine
            self.engine = LocalEngine()

    @property
    def backend(self):
        """The loaded backend. A model that cannot load stops the run with one line: it is no
        fault of the requests, and storing it as their failure would keep it forever."""
        if self._backend is None:
            try:
                self._backend = self.loader()
            except CaiError:
                raise
            except Exception as exc:  # noqa: BLE001 - torch, transformers and OS errors alike
                raise BackendError(f"cannot load model '{self.spec}': {_reason(exc)}") from exc
        return self._backend

    def key(self, kind: str, request) -> str:
        if kind == "generate":
            body = {"messages": request.messages, "params": request.params.as_dict(),
                    "seed": request.seed, "sample": request.sample}
            if request.schema:  # only where enforced: it changes the answer
                body["schema"] = request.schema
        else:
            body = {"messages": request.messages, "choices": request.choices}
        return content_hash(kind, self.identity, body)

    def generate(self, messages_list, params: SamplingParams, seed: int = 0, samples=None,
                 desc: str = "generate", schema: str | None = None) -> list[Result]:
        samples = samples or [0] * len(messages_list)
        schema = schema if self.structured else None
        requests = [GenerationRequest(freeze(m), params, seed, s, schema)
                    for m, s in zip(messages_list, samples)]
        return self._run("generate", requests, desc)

    def choices(self, messages_list, choices: tuple, desc: str = "judge") -> list[Result]:
        requests = [ChoiceRequest(freeze(m), tuple(choices)) for m in messages_list]
        return self._run("choices", requests, desc)

    def _run(self, kind: str, requests: list, desc: str) -> list[Result]:
        keys = [self.key(kind, r) for r in requests]
        stored = self.store.get_calls(set(keys))
        # A transient failure is asked again by every run; a permanent one on request only.
        results = {k: self._from_store(k, row) for k, row in stored.items()
                   if not (row["error"] and (self.retry_failed or is_transient(row["error"])))}
        todo = {k: r for k, r in zip(keys, requests) if k not in results}  # dedupes identical calls
        if todo and self.shared is not None:
            self._from_shared(todo, results)
        self.stats.cached += len(requests) - len(todo)
        if results and not self.dry_run:
            self.store.touch_calls(results)
        if todo and self.dry_run:
            self.stats.planned += len(todo)
            results.update({k: _placeholder(k, r) for k, r in todo.items()})
        elif todo:
            self._call_backend(kind, todo, results, desc)
        out = [results[k] for k in keys]
        self.stats.failures += sum(r.error is not None for r in out)
        logger.debug(f"{desc}: {self.spec} {kind}, {len(requests)} requests: "
                     f"{len(requests) - len(todo)} stored, {len(todo)} asked")
        return out

    def _from_shared(self, todo: dict, results: dict):
        """Calls another run directory made: copied into this run's store (which records every
        call a run used), unless this is a dry run, which writes nothing."""
        hits = self.shared.get(todo)
        if hits and not self.dry_run:
            self.store.put_calls(list(hits.values()))
        for key, row in hits.items():
            results[key] = self._from_store(key, row)
            del todo[key]
        self.stats.shared += len(hits)

    @staticmethod
    def _from_store(key, row) -> Result:
        if row["error"]:
            return Result(key, error=row["error"])
        resp = row["response"]
        return Result(key, text=resp.get("text"), logprobs=resp.get("logprobs"))

    def batch_size_for(self, backend) -> int:
        # A remote backend wants more requests in flight than a local one fits in memory.
        return max(self.batch_size, getattr(backend, "batch_size", 0))

    def _call_backend(self, kind, todo: dict, results: dict, desc: str):
        """The misses, in batches, through the run's engine (`cai.engines`): each answered
        batch is stored (one transaction) as it comes back."""
        batches = in_batches(list(todo.items()), self.engine.batch_size(self), lambda kv: kv[1])
        with tqdm(total=len(todo), desc=desc, unit="call", leave=False) as bar:
            for rows in self.engine.answer(self, kind, batches):
                self.store.put_calls(rows)
                if self.shared is not None:
                    self.shared.put(rows)
                for row in rows:
                    results[row["key"]] = self._from_store(row["key"], row)
                bar.update(len(rows))
                logger.debug(f"{desc}: a batch of {len(rows)} answered "
                             f"({sum(r['error'] is not None for r in rows)} failed)")
                if getattr(logger, "calls", False):  # -vv
                    for row in rows:
                        answer = json.dumps(row["response"] or row["error"], default=str)
                        logger.debug(f"  {row['key'][:16]} {answer[:200]}")
                self._stop_if_down(rows)

    def call_batch(self, kind, batch) -> list[dict]:
        """One batch through this process's backend (the local engine)."""
        rows, seconds = answer_batch(self.backend, self.spec, kind, batch)
        self.count(rows, seconds)
        return rows

    def count(self, rows: list[dict], seconds: float):
        """An answered batch in the call statistics, wherever it was answered."""
        self.stats.failed += sum(r["error"] is not None for r in rows)
        self.stats.seconds += seconds
        self.stats.calls += len(rows)

    def _stop_if_down(self, rows: list[dict]):
        """Most of a batch failing transiently is a server that is down or overloaded, not a
        request's fault: the run stops with one line (the failures are stored, and the next
        run asks them again) instead of finishing with an empty dataset and exit code 0."""
        down = [r["error"] for r in rows if r["error"] and is_transient(r["error"])]
        if down and len(down) * 2 >= len(rows):
            raise BackendError(f"model '{self.spec}': {len(down)} of {len(rows)} requests failed "
                               f"({down[0].removeprefix(TRANSIENT)}); finished work is saved, "
                               "rerun when the server answers")

TRANSIENT = "transient: "  # how a stored failure says it was the server's, at that moment


def answer_batch(backend, spec: str, kind: str, batch) -> tuple[list[dict], float]:
    """One backend call, as stored rows, and its seconds. A request the backend reports failed
    (`RequestFailed`) is stored with its reason; an exception fails the whole batch, so it is
    the backend's fault, not the requests': the run stops with one line and the batch is not
    stored."""
    reqs = [r for _, r in batch]
    start = time.perf_counter()
    try:
        if kind == "generate":
            answers, field = backend.generate(reqs), "text"
        else:
            answers, field = backend.choice_logprobs(reqs), "logprobs"
    except CaiError:
        raise
    except Exception as exc:  # noqa: BLE001 - any engine error; the message names it
        raise BackendError(f"model '{spec}' failed on a batch of {len(reqs)} requests: "
                           f"{_reason(exc)}; finished work is saved, rerun to resume "
                           "(a smaller models.batch_size may help)") from exc
    failed = [isinstance(a, RequestFailed) for a in answers]
    outs = [None if f else {field: a} for a, f in zip(answers, failed)]
    errors = [(TRANSIENT if a.transient else "") + a.reason if f else None
              for a, f in zip(answers, failed)]
    return [{"key": k, "model": spec, "kind": kind, "request": _request_json(r),
             "response": out, "error": err}
            for (k, r), out, err in zip(batch, outs, errors)], time.perf_counter() - start


def is_transient(error: str | None) -> bool:
    return bool(error) and error.startswith(TRANSIENT)


def _reason(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def in_batches(items: list, step: int, request=lambda x: x) -> list[list]:
    """The batches the client sends: longest request first, so similar lengths share a batch
    (less padding) and the slowest batch shows up early; as few batches of at most `step` as
    fit them, of even sizes (36 requests in one batch, not 32 and 4: on a CPU a decoding step
    of 4 rows costs nearly what one of 32 does)."""
    order = sorted(items, key=lambda x: -sum(len(c) for _, c in _contents(request(x).messages)))
    size = -(-len(order) // -(-len(order) // step)) if order else step
    return [order[i:i + size] for i in range(0, len(order), size)]


PLACEHOLDER = "(planned reply"  # how a dry run's made-up texts begin


def _placeholder(key: str, request) -> Result:
    """What a dry run answers for a call it would make: a unique text, or the first choice
    (a verdict of "violates", so the plan counts the revision it may need: an upper bound)."""
    if isinstance(request, GenerationRequest):
        return Result(key, text=f"{PLACEHOLDER} {key[:8]})", planned=True)
    return Result(key, logprobs=[0.0] + [-30.0] * (len(request.choices) - 1), planned=True)


def _contents(messages):
    return [(dict(m)["role"], dict(m)["content"]) for m in messages]


def _request_json(r) -> dict:
    body = {"messages": [dict(m) for m in r.messages]}
    if isinstance(r, GenerationRequest):
        body.update(params=r.params.as_dict(), seed=r.seed, sample=r.sample)
        if r.schema:
            body["schema"] = r.schema
    else:
        body["choices"] = list(r.choices)
    return body
