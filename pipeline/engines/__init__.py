"""Engines: who answers the model calls a stage still needs.

A stage asks its client (`cai.backends.client.ModelClient`) for answers; the client finds what the
store and the shared cache already hold and hands the rest, in batches, to the run's engine,
which yields the stored rows of each batch as it is answered. The client alone writes the store
(the driver, under the run lock), so an engine never decides what is cached or named.

- `local` (default): this process calls the backend batch by batch (`local.py`);
- `ray`: the batches go to a pool of Ray actors per model, each holding its own backend for
  the run (`ray_engine.py`, the optional extra `cai[ray]`).
"""

def engine_for(config):
    """The engine a run config names."""
    if config.engine == "ray":
        from cai.engines.ray_engine import RayEngine
        return RayEngine(config)
    from cai.engines.local import LocalEngine
    return LocalEngine()
