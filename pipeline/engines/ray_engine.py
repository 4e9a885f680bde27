"""The Ray engine (`engine: ray`, extra `cai[ray]`): the batches a stage still needs become a
Ray Dataset, mapped by a pool of actors (Ray Data's `map_batches` with a callable class), each
holding one backend of its own: a transformers or vLLM model on its GPU, or an OpenAI-compatible
client with its own concurrency. Answers stream back to the driver, which alone writes the
store, batch by batch, as they arrive.

Faults: an actor that dies is restarted by Ray and its batch asked again (Ray Data's actor
pools restart actors and retry their tasks by default); a driver that dies loses only the
batches in flight, and `cai run` again asks only keys the store lacks; a request the server
fails stays that request's stored failure. `ray.address` joins a running cluster; without one,
a local cluster is started.
"""

import os
import pickle

from ..errors import BackendError, ConfigError

MISSING = ("engine: ray needs Ray: pip install 'cai[ray]' (or set engine: local)")


class RayEngine:
    name = "ray"

    def __init__(self, config):
        try:
            import ray
        except ImportError:
            raise ConfigError(MISSING) from None
        self.ray, self.settings, self.config = ray, config.ray, config

    def _start(self):
        """Join `ray.address` (or a cluster this process started already), else start a local
        one: only once a call is needed, so a run whose answers are all stored starts none."""
        if not self.ray.is_initialized():
            # the driver's PYTHONPATH goes with the job: a backend module found here is found
            # by the actors too (on a local cluster; a remote one needs it installed)
            env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
            self.ray.init(address=self.settings.address, log_to_driver=False,
                          include_dashboard=False, runtime_env={"env_vars": env} if env else None)
        # the client's own bar counts the calls; Ray Data's progress lines would bury it
        import logging
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.ray.data.DataContext.get_current().enable_progress_bars = False

    def batch_size(self, client) -> int:
        """Requests per batch, decided without loading the backend here: a server's batches
        keep its concurrency busy (as the local engine's do), a model's are models.batch_size."""
        from ..backends import parse_spec
        if parse_spec(client.spec)[0] == "openai":
            from ..backends.openai_backend import batch_size
            return max(client.batch_size, batch_size(self.config.openai))
        return client.batch_size

    def answer(self, client, kind: str, batches):
        """Yield the stored rows of each batch as an actor answers it (in the order they finish:
        the client files every answer under its key)."""
        from ..backends import BACKENDS, parse_spec
        ray, s = self.ray, self.settings
        if not batches:
            return
        self._start()
        kind_of_model, model = parse_spec(client.spec)
        # the factory itself travels (pickled), so a backend registered here loads there too
        factory = BACKENDS[kind_of_model]
        items = [{"batch": pickle.dumps(b)} for b in batches]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        answered = ds.map_batches(
            Answerer, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(s.actors, len(items))),
            fn_constructor_args=(client.spec, model, self.config, factory, kind),
            num_cpus=s.num_cpus, num_gpus=s.num_gpus)
        try:
            for row in answered.iter_rows():
                rows, seconds = pickle.loads(row["rows"])
                client.count(rows, seconds)
                yield rows
        except ray.exceptions.RayError as exc:
            raise BackendError(f"model '{client.spec}' failed on the Ray engine: "
                               f"{_first_line(exc)}; finished work is saved, rerun to resume") from None


class Answerer:
    """A Ray Data actor: one backend, loaded once, answering one client batch per call."""

    def __init__(self, spec: str, model: str, config, factory, kind: str):
        self.spec, self.kind = spec, kind
        self.backend = factory(model, config)

    def __call__(self, batch: dict) -> dict:
        from ..client import answer_batch
        out = []
        for payload in batch["batch"]:
            rows, seconds = answer_batch(self.backend, self.spec, self.kind, pickle.loads(payload))
            out.append(pickle.dumps((rows, seconds)))
        return {"rows": out}


def _first_line(exc: Exception) -> str:
    lines = [x for x in str(exc).splitlines() if x.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
