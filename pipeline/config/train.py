"""The run config's training sections: the knobs every training stage shares, and each
stage's own. `Section`, the base of every config section, lives here so that `cai.config.run`
imports this module and not the other way round."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator


class Section(BaseModel):
    # NaN and inf are never a setting: `min_gain: .nan` would disable the stop rule silently
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TrainConfig(Section):
    """The knobs every training stage has. `train.<knob>` sets one for all three stages, and
    `train_sft.<knob>` (or `train_rm.`, `train_policy.`) for one stage; a stage's own
    defaults (below each class) apply where neither is set."""
    enabled: bool = Field(True, description="run this training stage")
    epochs: float = Field(1.0, gt=0, le=10_000, description="passes over the training pairs")
    batch_size: int = Field(4, ge=1, le=65_536, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, le=65_536, description="gradient accumulation steps")
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate")
    max_length: int = Field(256, ge=16, le=1_000_000, description=(
        "truncate prompt+response to this many tokens"))
    lora: bool = Field(False, description=(
        "train LoRA adapters (merged into the saved model) instead of all weights"))
    lora_r: int = Field(16, ge=1, le=4096, description="LoRA rank")
    max_steps: int = Field(-1, ge=-1, le=10**9, description=(
        "stop after this many steps (-1 = epochs decide)"))
    report_to: str = Field("none", description=(
        "where the trainer logs: 'none', 'tensorboard', 'wandb', 'mlflow' (comma-separated for several;"
        " passed to TRL)"))
    shuffle: bool = Field(True, description=(
        "shuffle the training pairs (false: dataset order, which makes runs on different numbers of "
        "processes comparable step by step)"))
    group_by_length: bool = Field(True, description=(
        "with shuffle: batches of pairs of similar length (shuffled, sorted by length within "
        "windows of 16 batches, the batches shuffled again): less padding per batch"))
    bf16: bool | Literal["auto"] = Field("auto", description=(
        "bfloat16 mixed precision ('auto' = where bf16 is native: CUDA with bf16, CPUs with "
        "AVX512-BF16 or AMX)"))
    gradient_checkpointing: bool | Literal["auto"] = Field("auto", description=(
        "trade compute for memory ('auto' = on CUDA)"))
    save_steps: int = Field(0, ge=0, le=10**9, description=(
        "write a checkpoint every this many steps (0 = none); an interrupted training of the same "
        "inputs resumes from the newest"))
    save_total_limit: int | None = Field(2, ge=1, le=1000, description=(
        "checkpoints kept (older ones deleted; null = all)"))
    trainer: dict[str, Any] = Field({}, description=(
        "any other field of the stage's TRL config (TrainingArguments and the method's own), passed "
        "through by TRL's name, e.g. {warmup_steps: 0.1, lr_scheduler_type: cosine, weight_decay: "
        "0.01, max_grad_norm: 1.0, optim: adamw_torch} (a warmup_steps below 1 is a ratio); checked "
        "against the TRL config class before the run; `train.trainer` applies to every stage, a "
        "stage's own keys on top"))

    @field_validator("trainer")
    @classmethod
    def _not_a_cai_knob(cls, v):
        """A TRL field cai sets from one of its own keys is set there, not twice."""
        for key in v or {}:
            if key in KNOB_OF:
                raise ValueError(f"'{key}' is set by cai's {KNOB_OF[key]}: set it there")
        return v


# TRL's name -> the cai key that sets it (`trainer` may not set these a second time)
KNOB_OF = {
    "output_dir": "run_dir (a model directory is named by its inputs)", "seed": "seed",
    "learning_rate": "train.learning_rate", "num_train_epochs": "train.epochs",
    "per_device_train_batch_size": "train.batch_size", "gradient_accumulation_steps": "train.grad_accum",
    "max_steps": "train.max_steps", "max_length": "train.max_length", "report_to": "train.report_to",
    "bf16": "train.bf16", "gradient_checkpointing": "train.gradient_checkpointing",
    "save_steps": "train.save_steps", "save_total_limit": "train.save_total_limit",
    "beta": "train_policy.beta", "loss_type": "train_policy.loss_type",
    "label_smoothing": "train_policy.label_smoothing",
    "num_generations": "train_policy.num_generations", "max_completion_length": "train_policy.max_new_tokens",
}
TRAIN_KNOBS = tuple(TrainConfig.model_fields)
TRAIN_STAGES = ("train_sft", "train_rm", "train_policy")


def _unset(model: type[Section], name: str) -> type[Section]:
    """`model` with every field optional and unset (None): a section of overrides, validated
    with the same constraints as the fields it overrides."""
    def optional(f):
        kind = Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation
        return kind | None, Field(None, description=f.description)
    fields = {k: optional(f) for k, f in model.model_fields.items()}
    return create_model(name, __base__=Section, **fields)


SharedTrainConfig = _unset(TrainConfig, "SharedTrainConfig")


class TrainSFTConfig(TrainConfig):
    learning_rate: float = Field(2e-5, gt=0, description="peak learning rate")
    batch_size: int = Field(2, ge=1, le=65_536, description="per-device batch size")
    lora: bool = Field(True, description=(
        "train LoRA adapters (merged into the saved model) instead of all weights"))


class TrainRMConfig(TrainConfig):
    base: str | None = Field(None, description=(
        "the 'transformers:' model both reward models start from (default: models.policy); "
        "iterations set it to the first iteration's policy, so neither reward model, the "
        "human-only one included, ever starts from an AI-trained policy"))
    depth: float = Field(0.5, gt=0, le=1, description=(
        "share of the base model's transformer layers the reward model keeps (the lower ones; 1 = "
        "all): on the default's human pairs half the depth scored as well on held-out pairs "
        "(0.61 vs 0.59, 3-fold over 300) in half the time"))
    use_margin: bool = Field(True, description=(
        "pass each pair's margin 2·P(chosen ≻ rejected) − 1 to RewardTrainer (confident pairs must be "
        "separated more; pairs without a probability get none)"))
    ensemble: int = Field(1, ge=1, le=32, description=(
        "reward models trained, differing in seed and batch order; their scores carry a mean, a "
        "spread and the `aggregate` GRPO/RLOO use; k members cost k trainings (one took ~85 s "
        "of the default run on 2 CPU cores)"))
    aggregate: Literal["mean", "min", "mean_minus_std"] = Field("mean", description=(
        "how an ensemble's scores combine: mean, min (the most pessimistic member), or "
        "mean − penalty·std (uncertainty-weighted, Coste et al. 2023)"))
    penalty: float = Field(1.0, ge=0, le=100, description="λ of aggregate mean_minus_std")


class TrainPolicyConfig(TrainConfig):
    method: Literal["dpo", "kto", "orpo", "grpo", "rloo", "ppo"] = Field("dpo", description=(
        "'dpo' (offline, the blended pairs), 'kto' (offline, the judge's binary verdicts: `kto_data`), "
        "'orpo' (SFT and preference in one loss, no reference model), 'grpo' or 'rloo' (online RL on "
        "the pairs' prompts, rewarded by `reward`; RLOO subtracts the KL penalty from the reward, as "
        "PPO-RLHF does). 'ppo' is refused: TRL removed PPOTrainer"))
    reward: list[Literal["rm", "judge"]] = Field(["judge"], description=(
        "GRPO/RLOO rewards, summed: 'rm' (the trained reward model), 'judge' (the constitution judge "
        "scoring each completion: 1 − P(violates))"))
    num_generations: int = Field(4, ge=2, le=256, description=(
        "GRPO/RLOO completions sampled per prompt (the group)"))
    max_new_tokens: int = Field(64, ge=1, le=1_000_000, description="GRPO/RLOO completion length")
    kto_data: Literal["verdicts", "pairs", "both"] = Field("verdicts", description=(
        "KTO examples: 'verdicts' (every text a critique round judged, desirable when no violation was "
        "found), 'pairs' (the blended pairs, unpaired), or both"))
    reference: str = Field("init", description=(
        "the DPO/KTO reference model: 'init' (the model training starts from) or a 'transformers:' "
        "model spec (iterations use the original base with iterations.reference: base)"))
    init: Literal["auto", "sft", "base"] = Field("auto", description=(
        "start from the SL-CAI model of train-sft (the Constitutional AI recipe; the base when "
        "train_sft is disabled) or the base policy; 'auto' = sft, except base for orpo (it does SFT "
        "itself)"))
    loss_type: list[str] = Field(["sigmoid"], description=(
        "TRL DPO loss(es): 'sigmoid' (DPO), 'ipo', 'robust', 'hinge', 'exo_pair', 'nca_pair', "
        "'bco_pair', 'sppo_hard', 'aot', 'apo_zero', 'apo_down', 'discopop', 'sigmoid_norm', 'sft' "
        "(several are summed)"))
    beta: float = Field(0.1, gt=0, description=(
        "strength of the KL anchor to the reference: DPO/KTO β, the GRPO/RLOO KL coefficient (0.01–0.1 "
        "usual); for ORPO the odds-ratio weight λ"))
    label_smoothing: float | Literal["auto"] = Field("auto", description=(
        "DPO label smoothing (conservative DPO): a float in [0, 0.5), or 'auto' = mean of 1 − P(chosen "
        "≻ rejected) over the training pairs"))
    batch_size: int = Field(2, ge=1, le=65_536, description="per-device batch size")
    lora: bool = Field(True, description=(
        "train LoRA adapters (merged into the saved model) instead of all weights"))
    # Measured on the dev sets (bench/RESULTS.md): a third of a pass at 1e-4 moved harmful and
    # safe refusal as much as a whole pass at 5e-5 did, with less over-refusal, in a third of
    # the time; stronger updates raise refusal on safe prompts about 0.7 points per point gained.
    epochs: float = Field(0.34, gt=0, le=10_000, description=(
        "passes over the training pairs (the default third of a pass at 1e-4: as much refusal gain "
        "as a whole pass at 5e-5 on the dev sets, in a third of the time)"))
    learning_rate: float = Field(1e-4, gt=0, description=(
        "peak learning rate (LoRA takes a larger one than full fine-tuning)"))

    @field_validator("method")
    @classmethod
    def _no_ppo(cls, v):
        if v == "ppo":
            raise ValueError(
                "PPO is not available: TRL removed PPOTrainer and its value-head models "
                "(huggingface/trl#7020; from trl 1.10 it lived in trl.experimental.ppo, now "
                "gone). Use method 'rloo' with reward [rm]: the reward model's score minus "
                "beta x KL to the reference, PPO-RLHF's objective without the value network")
        return v
