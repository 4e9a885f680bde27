"""cai from Python: the same stages, store and call cache as the `cai` command.

    >>> import cai
    >>> config = cai.load_config(run_dir=run_dir, **{
    ...     "models.policy": policy, "models.judge": judge, "prompts.limit": 6})
    >>> run = cai.run(config, to="export")
    >>> run.metrics["counts"]["responses"]  # 6 prompts, generate.samples 2
    12
    >>> prefs = run.dataset("prefs")
    >>> sorted(prefs)
    ['ai', 'test', 'train']
    >>> {"prompt", "chosen", "rejected"} <= set(prefs["train"].column_names)  # TRL's columns
    True
    >>> again = cai.run(config, to="export")  # unchanged: every stage reused, no model call
    >>> sum(stage["model_calls"] for stage in again.stages.values()), len(again.history())
    (0, 2)

`policy` and `judge` are model specs, such as "transformers:smollm2-135m" (the embedded
default), "transformers:HuggingFaceTB/SmolLM2-135M-Instruct" or "openai:gpt-4o-mini"; the
doctest (tests/test_api.py) runs this example with scripted models.

`Run(run_dir)` opens a run directory made by the command or by `cai.run`: its metrics
(metrics.json), its dataset (`datasets.load_from_disk`), its trained models and its history.
"""

import json
from pathlib import Path


def load_config(path=None, *, run_dir=None, **keys):
    """The run config: defaults < the YAML file `path` < `keys` (dotted config keys, as
    `cai --set` takes them: `load_config(**{"prompts.limit": 4})`)."""
    from cai.config.run import load_config as load
    overrides = [f"{k}={_yaml(v)}" for k, v in keys.items()]
    if run_dir is not None:
        overrides.append(f"run_dir={run_dir}")
    return load(path, overrides)


def run(config, stages=None, *, start=None, to=None) -> "Run":
    """Run the stages (all, the names given, or `start`..`to` in run order) of `config`; what is
    unchanged since the last run is reused. Returns the run directory, read."""
    from cai.runs.runner import run_iterations, run_stages
    from cai.stages import STAGES
    names = list(stages) if stages else list(STAGES)
    if not stages:
        names = names[names.index(start) if start else 0: names.index(to) + 1 if to else None]
    if config.iterations.count > 1:
        run_iterations(config, names)
    else:
        run_stages(config, names)
    return Run(config.run_dir)


def plan(config) -> dict:
    """What `cai.run(config)` would recompute and why, and the calls it would make."""
    from cai.runs.plan import plan as make_plan
    return make_plan(config)


class Run:
    """A run directory: what its last `cai run` wrote, read back."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)

    def __repr__(self):
        return f"Run({str(self.run_dir)!r})"

    @property
    def metrics(self) -> dict:
        """metrics.json: every figure of the last run (counts, judge agreement, trust, models)."""
        return json.loads((self.run_dir / "metrics.json").read_text())

    @property
    def stages(self) -> dict:
        """Per stage: what it made, reused (`reused_from`: the run it reused) and took."""
        return self.metrics.get("stages", {})

    def dataset(self, part: str = "prefs"):
        """The exported dataset part as a `datasets.DatasetDict`: prefs, sft or kto."""
        from datasets import load_from_disk
        return load_from_disk(str(self.run_dir / "dataset" / part))

    @property
    def models(self) -> dict:
        """The trained model directories of the last run: sft, reward_model, policy."""
        m = self.metrics
        return {k: m[k]["path"] for k in ("sft", "reward_model", "policy")
                if isinstance(m.get(k), dict) and m[k].get("path")}

    def history(self) -> list[dict]:
        """Every recorded run of this directory, oldest first."""
        from cai.store.core import ReadOnlyStore
        with ReadOnlyStore(self.run_dir) as store:
            return store.list_runs()


def _yaml(value) -> str:
    """A Python value as the YAML text `--set` reads."""
    return json.dumps(value) if not isinstance(value, str) else value
