"""Config sections of the loops around a run: people reviewing it, iterations of it, and the
engine its model calls run on."""

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from cai.config.train import Section


class ReviewConfig(Section):
    annotators_per_item: int = Field(3, ge=1, le=100, description=(
        "`cai review`: labels each item gets, from different annotators, before it is decided "
        "(majority; a tie goes to the adjudication queue)"))
    adjudicators: list[str] = Field([], description=(
        "annotator names who may resolve ties, beside those invited with `cai review invite "
        "NAME --adjudicator` and whoever starts `cai review`"))
    order: Literal["routed", "random"] = Field("routed", description=(
        "which pair `cai review` asks next: 'routed' (where a label is worth most: principles "
        "whose trust interval is wide with many AI pairs waiting on it, then pairs the judge is "
        "least sure of; the page says why) or 'random' (a seeded order)"))
    use_labels: bool = Field(True, description=(
        "decided review labels join the human calibration slice's training pairs (never the "
        "held-out ones): the next run recomputes only calibration, trust, blend and what follows"))


class IterationsConfig(Section):
    count: int = Field(1, ge=1, le=100, description=(
        "passes of the whole pipeline (`cai run --iterations N`): iteration k+1 generates with "
        "iteration k's tuned policy, trains from it and is evaluated against it; iteration 1 is "
        "the run directory itself, iteration k its `iterations/<k>/`"))
    fresh_prompts: bool = Field(True, description=(
        "each iteration answers `prompts.limit` prompts of its own (the next ones of the source); "
        "false: the same prompts every iteration"))
    decay: float = Field(0.5, ge=0, le=1, description=(
        "earlier iterations' AI pairs join an iteration's blend with their weight times decay ** "
        "(iterations ago); 0: each iteration trains on its own pairs"))
    reference: Literal["previous", "base"] = Field("previous", description=(
        "DPO/KTO reference of iterations 2 on: the previous iteration's policy (the one training "
        "starts from, as iterative DPO does) or the original base policy"))
    stop_metric: Literal["none", "refusal", "compliance", "win_rate"] = Field("none", description=(
        "stop early when this metric of the new policy (harmful-prompt refusal, safe-prompt "
        "compliance, judge win rate vs the previous policy) did not improve on the previous "
        "iteration by more than `min_gain`"))
    min_gain: float = Field(0.0, description="the improvement `stop_metric` must make to go on")
    max_kl: float | None = Field(None, gt=0, description=(
        "stop when a new policy's per-token KL to the policy it started from exceeds this"))
    # Set by cai for each iteration (model_copy, which does not validate); part of what a stage
    # reads, so they are fields, but no file or --set may give them.
    current: int = Field(1, ge=1, description=(
        "set by cai: which iteration a run directory holds"), json_schema_extra={"internal": True})
    root: str | None = Field(None, description=(
        "set by cai: the run directory of iteration 1"), json_schema_extra={"internal": True})

    @field_validator("current", "root", mode="before")
    @classmethod
    def _set_by_cai(cls, value, info):
        if value == cls.model_fields[info.field_name].default:  # what a config from before says
            return value
        raise ValueError("is set by cai for each iteration, not by a config or --set (use "
                         "iterations.count, and `--iteration K` on history and diff)")


class RayConfig(Section):
    address: str | None = Field(None, description=(
        "`engine: ray`: the Ray cluster to join ('auto', 'ray://host:10001'); null starts a "
        "local one"))
    actors: int = Field(2, ge=1, le=4096, description=(
        "`engine: ray`: actors answering model calls, each holding its own backend"))
    num_cpus: float = Field(1.0, gt=0, le=1024, description="`engine: ray`: CPUs each actor reserves")
    num_gpus: float = Field(0.0, ge=0, le=64, description=(
        "`engine: ray`: GPUs each actor reserves (1 for a transformers or vLLM model per GPU)"))


class TrackingConfig(Section):
    to: Literal["none", "mlflow", "wandb"] = Field("none", description=(
        "send each run's config, every stage's figures, the trainers' loss curves and the report "
        "to MLflow or Weights & Biases (extras `cai-pipeline[mlflow]`, `[wandb]`); "
        "`tracking: mlflow` is short for `tracking.to: mlflow`"))
    project: str = Field("cai", description="the MLflow experiment or W&B project")
    uri: str | None = Field(None, description=(
        "MLflow: the tracking URI (default: MLFLOW_TRACKING_URI, else a file store in "
        "<run_dir>/mlruns); W&B: the directory its run files go to (default: the run directory; "
        "offline unless WANDB_API_KEY or WANDB_MODE says otherwise)"))

    SHORTHAND: ClassVar[str] = "to"  # `tracking: mlflow` is `tracking.to: mlflow`

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return {cls.SHORTHAND: data} if isinstance(data, str) else data
