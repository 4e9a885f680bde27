"""TRL's arguments, set from the device and the stage's section: TRL's defaults assume a GPU
(bf16, gradient checkpointing); on CPU they fail or run many times slower. Also the batch order
and LoRA."""

import dataclasses
import difflib
from pathlib import Path

from cai.backends.device import bf16_native, pick_device, set_threads
from cai.errors import ConfigError


def dpo_label_smoothing(section, train) -> float:
    """cDPO's epsilon: the configured value, or 'auto' = mean of 1 − P(chosen ≻ rejected) over
    the pairs that have one (human pairs count as 1; critique-revision pairs have none)."""
    if section.label_smoothing != "auto":
        return float(section.label_smoothing)
    ps = [p for p in (train["p_chosen"] if "p_chosen" in train.column_names else [])
          if p is not None]
    return round(min(0.49, sum(1 - p for p in ps) / len(ps)), 4) if ps else 0.0


def checkpoint_dir(path) -> Path:
    """Where the trainer of the model at `path` keeps its checkpoints: named like the model
    (by the hash of its inputs), so a rerun resumes only a training of the same inputs."""
    path = Path(path)
    return path.parent / f".trainer-{path.name}"


def trl_args(config_cls, section, path, ctx, **extra):
    """The TRL config of the stage training the model at `path`: the section's knobs, defaults
    set from the device, and `extra` (method-specific arguments, which win)."""
    set_threads(ctx.config.models.threads)
    device = ctx.config.models.device
    cuda = pick_device(device).startswith("cuda")
    args = dict(
        output_dir=str(checkpoint_dir(path)), seed=ctx.config.seed,
        report_to=[x.strip() for x in section.report_to.split(",")] if section.report_to != "none"
        else "none",
        per_device_train_batch_size=section.batch_size, gradient_accumulation_steps=section.grad_accum,
        num_train_epochs=section.epochs, max_steps=section.max_steps,
        learning_rate=section.learning_rate,
        bf16=_switch(section.bf16, bf16_native(device)),
        gradient_checkpointing=_switch(section.gradient_checkpointing, cuda),
        use_cpu=not cuda, logging_steps=1,
        train_sampling_strategy=_sampling(section),
        save_strategy="steps" if section.save_steps else "no", save_steps=section.save_steps or 500,
        save_total_limit=section.save_total_limit, dataloader_num_workers=0, disable_tqdm=False)
    if "max_length" in config_cls.__dataclass_fields__:  # GRPO has none (prompt + completion)
        args["max_length"] = section.max_length
    check_trainer_keys(config_cls, section.trainer, extra, f"{SECTION_OF[type(section).__name__]}.trainer")
    # the pass-through may change cai's device defaults (logging_steps, use_cpu...), never a key
    # of its own (the config refuses those) or the method's arguments (refused just above)
    return config_cls(**{**args, **section.trainer, **extra})


SECTION_OF = {"TrainSFTConfig": "train_sft", "TrainRMConfig": "train_rm", "TrainPolicyConfig": "train_policy"}


def trainer_config_class(stage: str, config):
    """The TRL config class a training stage builds (`train_policy`: by its method)."""
    import trl
    if stage == "train_sft":
        return trl.SFTConfig
    if stage == "train_rm":
        return trl.RewardConfig
    method = config.train_policy.method
    if method == "orpo":
        from trl.experimental.orpo import ORPOConfig
        return ORPOConfig
    return {"dpo": trl.DPOConfig, "kto": trl.KTOConfig, "grpo": trl.GRPOConfig,
            "rloo": trl.RLOOConfig}[method]


def check_trainers(config):
    """Before any work: each enabled training stage's `trainer` keys are fields of its TRL config
    (TRL is imported only when some stage passes keys through)."""
    for stage in SECTION_OF.values():
        section = getattr(config, stage)
        if section.enabled and section.trainer:
            check_trainer_keys(trainer_config_class(stage, config), section.trainer, (),
                               f"{stage}.trainer")


def check_trainer_keys(config_cls, trainer: dict, extra: dict = (), where: str = "trainer"):
    """Every `trainer` key is a field of the TRL config class, and not one the method sets."""
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    for key in trainer:
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: '{key}' is not a field of TRL's {config_cls.__name__}{hint}")
        if key in extra:
            raise ConfigError(f"{where}: '{key}' is set by cai for this method; it cannot be passed "
                              "through")


def batch_order(ds, section, seed: int, window: int = 16) -> tuple[object, str]:
    """(rows, the trainer's sampling strategy). With `shuffle` and `group_by_length` the rows
    are put in a seeded random order whose batches hold rows of similar length, and the
    trainer then reads them in that order: padding is computed and thrown away, so less of it
    is less time (DPO on the default's 268 pairs, 2 cores: 1.33x per step)."""
    if not (section.shuffle and section.group_by_length):
        return ds, _sampling(section)
    import random
    size = section.batch_size * section.grad_accum
    lengths = [_row_chars(row) for row in ds]
    rows = list(range(len(ds)))
    random.Random(seed).shuffle(rows)
    batches = []
    for start in range(0, len(rows), size * window):
        part = sorted(rows[start:start + size * window], key=lambda i: -lengths[i])
        batches += [part[k:k + size] for k in range(0, len(part), size)]
    random.Random(seed + 1).shuffle(batches)
    return ds.select([i for batch in batches for i in batch]), "sequential"


def _sampling(section) -> str:
    """The trainer's own order of rows that `batch_order` did not arrange."""
    return "random" if section.shuffle else "sequential"


def _row_chars(row: dict) -> int:
    """A row's padded length, in characters: its prompt and its longest completion."""
    def chars(x):
        if isinstance(x, str):
            return len(x)
        return sum(len(m.get("content") or "") for m in x or [])
    sides = [chars(row[c]) for c in ("chosen", "rejected", "completion", "messages") if c in row]
    return chars(row.get("prompt")) + max(sides, default=0)


def _switch(value, auto: bool) -> bool:
    return auto if value == "auto" else bool(value)


def lora_config(section, task_type: str):
    if not section.lora:
        return None
    from peft import LoraConfig
    return LoraConfig(r=section.lora_r, lora_alpha=2 * section.lora_r, lora_dropout=0.0,
                      target_modules="all-linear", task_type=task_type)
