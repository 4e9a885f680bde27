"""The Ray engine (`engine: ray`, extra `cai[ray]`): the batches a stage still needs are
answered by a pool of Ray actors per model (`ray.util.ActorPool`), each holding one backend of
its own, loaded once for the run: a transformers or vLLM model on the GPU it reserves, or an
OpenAI-compatible client with its own concurrency. Answers stream back to the driver as they
finish, and the driver alone writes the store, batch by batch.

Actors live for the run (a model is not reloaded for every call a stage makes) and are
released before training, which wants their memory, and when the run ends. Faults: an actor
that dies is restarted by Ray and the call it was answering asked again (`max_restarts`,
`max_task_retries`); a driver that dies loses only the batches in flight, and `cai run` again
asks only keys the store lacks; a request the server fails stays that request's stored
failure. `ray.address` joins a running cluster; without one, a local cluster is started.
"""

import logging
import os
import pickle

from cai.errors import BackendError, ConfigError

MISSING = ("engine: ray needs Ray: pip install 'cai[ray]' (or set engine: local)")


class RayEngine:
    name = "ray"

    def __init__(self, config):
        try:
            import ray
        except ImportError:
            raise ConfigError(MISSING) from None
        self.ray, self.settings, self.config = ray, config.ray, config
        self.pools: dict[str, tuple] = {}  # model spec -> (actors, ActorPool)

    def _start(self):
        """Join `ray.address` (or a cluster this process started already), else start a local
        one: only once a call is needed, so a run whose answers are all stored starts none."""
        if not self.ray.is_initialized():
            # the driver's PYTHONPATH goes with the job: a backend module found here is found
            # by the actors too (on a local cluster; a remote one needs it installed)
            env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
            self.ray.init(address=self.settings.address, log_to_driver=False,
                          include_dashboard=False, runtime_env={"env_vars": env} if env else None,
                          logging_level=logging.WARNING)

    def batch_size(self, client) -> int:
        """Requests per batch, decided without loading the backend here: a server's batches
        keep its concurrency busy (as the local engine's do), a model's are models.batch_size."""
        from cai.backends import parse_spec
        if parse_spec(client.spec)[0] == "openai":
            from cai.backends.openai_backend import batch_size
            return max(client.batch_size, batch_size(self.config.openai))
        return client.batch_size

    def answer(self, client, kind: str, batches):
        """Yield the stored rows of each batch as an actor answers it (in the order they finish:
        the client files every answer under its key)."""
        if not batches:
            return
        pool = self._pool(client.spec)
        try:
            for out in pool.map_unordered(lambda actor, b: actor.answer.remote(kind, b),
                                          [pickle.dumps(b) for b in batches]):
                rows, seconds = pickle.loads(out)
                client.count(rows, seconds)
                yield rows
        except self.ray.exceptions.RayError as exc:
            self._release(client.spec)
            raise BackendError(f"model '{client.spec}' failed on the Ray engine: "
                               f"{_last_line(exc)}; finished work is saved, rerun to resume") from None
        except BaseException:  # the stage stopped mid-way: the pool's pending calls are void
            self._release(client.spec)
            raise

    def _pool(self, spec: str):
        from ray.util import ActorPool

        from cai.backends import BACKENDS, parse_spec
        if spec not in self.pools:
            self._start()
            kind, model = parse_spec(spec)
            # the factory itself travels (pickled), so a backend registered here loads there too
            remote = self.ray.remote(Answerer).options(
                num_cpus=self.settings.num_cpus, num_gpus=self.settings.num_gpus,
                max_restarts=-1, max_task_retries=-1)  # a dead actor is replaced, its call retried
            n = self.settings.actors
            actors = [remote.remote(spec, model, share(self.config, i, n, model), BACKENDS[kind])
                      for i in range(n)]
            self.pools[spec] = (actors, ActorPool(actors))
        return self.pools[spec][1]

    def _release(self, spec: str):
        for actor in self.pools.pop(spec, ((), None))[0]:
            self.ray.kill(actor)

    def close(self):
        """Let the actors and their models go (before training, and at the end of a run)."""
        for spec in list(self.pools):
            self._release(spec)


def share(config, i: int, n: int, model: str = ""):
    """Actor i's config: with at least n servers for `model` (`openai.model_base_urls`, else
    `openai.base_urls`), every n-th of them from the i-th (a share of its own); with fewer, all
    of them, from the i-th round-robin."""
    o = config.openai
    urls = list(o.model_base_urls.get(model) or o.base_urls)
    if not urls:
        return config
    mine = urls[i::n] if len(urls) >= n else urls[i % len(urls):] + urls[:i % len(urls)]
    update = {"model_base_urls": {**o.model_base_urls, model: mine}} if model in \
        o.model_base_urls else {"base_urls": mine}
    return config.model_copy(update={"openai": o.model_copy(update=update)})


class Answerer:
    """A Ray actor: one backend, loaded once, answering one client batch per call."""

    def __init__(self, spec: str, model: str, config, factory):
        self.spec, self.backend = spec, factory(model, config)

    def answer(self, kind: str, payload: bytes) -> bytes:
        from cai.backends.client import answer_batch
        return pickle.dumps(answer_batch(self.backend, self.spec, kind, pickle.loads(payload)))


def _last_line(exc: Exception) -> str:
    lines = [x for x in str(exc).splitlines() if x.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
