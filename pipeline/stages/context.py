"""What every stage is handed: the config, the store, the constitution and the model clients.

Backends load lazily (a stage whose calls are all cached never loads a model), and one loaded
model serves every role that names the same spec (policy and judge are the same by default).
"""

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from cai.backends import has_logprobs, load_backend, parse_spec
from cai.backends.client import ModelClient
from cai.backends.identity import model_identity
from cai.config.run import RunConfig
from cai.errors import CaiError
from cai.inputs.checks import check_tags, load_for_judge
from cai.store.core import Store
from cai.store.shared_calls import SharedCalls, shared_cache_path


@dataclass
class StageStats:
    """What a stage did: records made and reused, model calls, drops counted by reason."""
    stage: str
    made: int = 0
    cached: int = 0
    calls: int = 0
    dropped: dict = field(default_factory=dict)
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    reused_from: int | None = None  # skipped whole: the run whose outputs it kept (stage_reuse)

    def warn(self, message: str):
        self.warnings.append(message)

    def drop(self, reason: str, n: int = 1):
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def line(self) -> str:
        parts = [f"{self.made} made", f"{self.cached} reused", f"{self.calls} model calls"]
        if self.dropped:
            parts.append("dropped " + ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())))
        if self.reused_from is not None:  # its drops were counted by the run that made it
            parts = parts[:3] + [f"inputs unchanged since run {self.reused_from}: skipped"]
        line = f"{self.stage:<13} {self.seconds:7.1f}s  " + "; ".join(parts)
        return "\n".join([line] + [f"  warning: {w}" for w in self.warnings])


class RunContext:
    def __init__(self, config: RunConfig, store: Store | None = None, dry_run: bool = False):
        self.config = config
        self.dry_run = dry_run
        self.run_dir = Path(config.run_dir)
        self.store = store or Store(self.run_dir)
        self._constitution = None
        self._clients: dict[str, ModelClient] = {}
        self._backends: dict[str, object] = {}
        self._shared = None  # opened on the first client
        self._run_engine = None  # made on the first client
        self._identities: dict[str, dict] = {}

    @property
    def constitution(self):
        if self._constitution is None:
            constitution = load_for_judge(self.config.constitution, self.config.judge.context_tokens)
            check_tags(self.config, constitution)  # `cai plan` and every stage: the run's rule
            self._constitution = constitution
        return self._constitution

    def client(self, spec: str) -> ModelClient:
        """The cached client for a model spec ('transformers:smollm2-135m', a trained model...)."""
        if spec not in self._clients:
            kind, model = parse_spec(spec)
            m = self.config.models
            self._clients[spec] = ModelClient(
                spec, self.store, lambda: self._backend(spec), self.model_identity(spec),
                m.batch_size, m.retry_failed, self.dry_run,
                logprobs=has_logprobs(spec, self.config),
                structured=kind == "openai" and self.config.openai.structured,
                shared=self._shared_calls(), engine=self._engine())
        return self._clients[spec]

    def _engine(self):
        """The run's engine (`cai.engines`), made once: a Ray cluster is joined once."""
        if self._run_engine is None:
            from cai.engines import engine_for
            self._run_engine = engine_for(self.config)
        return self._run_engine

    def _shared_calls(self):
        """The call cache shared across run directories (None when `models.shared_cache` is off)."""
        if self._shared is None:
            path = shared_cache_path(self.config.models.shared_cache)
            self._shared = SharedCalls(path, self.config.models.shared_cache_max_mb) if path \
                else False
        return self._shared or None

    def planned_model(self, name: str) -> str:
        """A dry run's stand-in for a model not trained yet (`cai plan`): a spec whose every
        call is a miss, counted and answered with a placeholder."""
        assert self.dry_run, "only a dry run may use a model that does not exist"
        spec = f"planned:{name}"
        self._clients[spec] = ModelClient(spec, self.store, _no_weights, {"planned": name},
                                          dry_run=True)
        return spec

    def model_identity(self, spec: str) -> dict:
        """What a model spec's answers depend on (`cai.backends.identity`), asked once."""
        if spec not in self._identities:
            self._identities[spec] = model_identity(spec, self.config, reachable=not self.dry_run)
        return self._identities[spec]

    def _backend(self, spec):
        if spec not in self._backends:
            self._backends[spec] = load_backend(spec, self.config)
        return self._backends[spec]

    def policy(self) -> ModelClient:
        return self.client(self.config.models.policy)

    def judge(self) -> ModelClient:
        return self.client(self.config.models.judge)

    def failures(self) -> int:
        """Failed answers handed to stages so far, new or stored (stage reuse reads it)."""
        return sum(c.stats.failures for c in self._clients.values())

    def calls_made(self) -> int:
        return sum(c.stats.calls + c.stats.planned for c in self._clients.values())

    def release_models(self):
        """Free loaded models before training, which needs the memory more."""
        for c in self._clients.values():
            c._backend = None
        self._backends.clear()
        if self._run_engine is not None:
            self._run_engine.close()

    def close(self):
        if self._run_engine is not None:
            self._run_engine.close()
        self.store.close()
        if self._shared:
            self._shared.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _no_weights():
    raise CaiError("a planned model has no weights yet")


def timed(stage: str):
    """Decorator: a stage's `run(ctx)` gets its wall time and call count filled in."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(ctx: RunContext) -> StageStats:
            start, calls = time.perf_counter(), ctx.calls_made()
            stats = fn(ctx)
            stats.seconds = time.perf_counter() - start
            stats.calls = ctx.calls_made() - calls
            return stats
        run.stage = stage
        return run
    return wrap
