"""What the training stages share: the base model, TRL arguments set from the device, LoRA,
the rows handed to TRL (their texts protected: `pipeline.scoring`), and saving a model
directory atomically under the hash of its inputs.

TRL's defaults assume a GPU (bf16, gradient checkpointing); on CPU they fail or run many times
slower, so they are set from the device here.
"""

import json
import shutil
from pathlib import Path

from .backends import parse_spec
from .device import bf16_native, pick_device, set_threads
from .errors import CaiError
from .fsutil import atomic_dir
from .hashing import content_hash
from .models import identity, resolve
from .store import is_main_process

MARKER = "cai-model.json"
TEXT_COLUMNS = ["prompt", "chosen", "rejected"]


def policy_init(cfg) -> str:
    """Where train-policy starts: 'sft' or 'base' ('auto': base for ORPO, which does SFT in its
    own loss; the SL-CAI model for every other method)."""
    init = cfg.train_policy.init
    if init == "auto":
        init = "base" if cfg.train_policy.method == "orpo" else "sft"
    return init if cfg.train_sft.enabled else "base"


def sft_rows(ctx) -> int | None:
    """SL-CAI rows the export holds (None before export): 0 when no revision earned trust."""
    m = ctx.store.get_manifest("export")
    return None if m is None else m["meta"].get("sft")


def policy_start(ctx) -> str:
    """`policy_init`, knowing the data: with no trusted SL-CAI row there is no SL-CAI model, so
    'auto' starts from the base (an explicit 'sft' is an error that says why)."""
    init = policy_init(ctx.config)
    if init == "sft" and sft_rows(ctx) == 0:
        if ctx.config.train_policy.init == "sft":
            raise CaiError("train_policy.init is 'sft' but no SL-CAI row earned trust (the "
                           "judge's principles scored trust 0 on the human pairs); set "
                           "train_policy.init=auto or base, or calibration.use_trust=false")
        return "base"
    return init


def base_model(ctx, tuned: bool = False, rm: bool = False) -> tuple[Path, dict]:
    """The weights a training stage starts from: the policy's, or with `tuned` (train-policy)
    the SL-CAI model of train-sft when `policy_init` says so, or with `rm` `train_rm.base`."""
    if tuned and policy_start(ctx) == "sft":
        sft = ctx.store.get_manifest("train-sft")
        if sft is None:
            raise CaiError(f"{ctx.run_dir}: train_policy.init is 'sft' but train-sft has not run; "
                           "run `cai train-sft` first (or set train_policy.init=base)")
        return Path(sft["meta"]["path"]), {"model": Path(sft["meta"]["path"]).name,
                                           "weights": sft["ids"][0]}
    return resolve(_local_policy(ctx, rm))


def base_identity(ctx, tuned: bool = False, rm: bool = False) -> dict:
    """What `base_model` starts from, named without fetching or loading any weights."""
    if tuned and policy_start(ctx) == "sft":
        return base_model(ctx, tuned)[1]
    return identity(_local_policy(ctx, rm))


def _local_policy(ctx, rm: bool = False) -> str:
    key = "train_rm.base" if rm and ctx.config.train_rm.base else "models.policy"
    spec = ctx.config.train_rm.base if key == "train_rm.base" else ctx.config.models.policy
    kind, model = parse_spec(spec)
    if kind != "transformers":
        raise CaiError(f"training starts from local weights: {key} must be a "
                       f"'transformers:' spec, got '{spec}'")
    return model


def seed_everything(seed: int):
    """Before any model is built: a reward model's score head is initialised randomly when
    loaded, and unseeded it made two runs of the same inputs train different models."""
    from transformers import set_seed
    set_seed(seed)


def training_stage(ctx, stats, name: str, section, train, keys,
                   check: bool = True) -> tuple[object, dict | None]:
    """What every training stage does around its training: skip when disabled, refuse (or
    warn) below the judge-agreement bar, reuse or train, and report `keys` of the meta.
    Returns the stats and the model's meta (None when disabled)."""
    if not section.enabled:
        stats.drop("disabled")
        return stats, None
    if check:
        check_agreement(ctx, stats)
    _, meta = train_or_reuse(ctx, name, section, stats, train)
    stats.metrics = {k: meta[k] for k in keys if meta.get(k) is not None}
    return stats, meta


def train_or_reuse(ctx, name: str, section, stats, train, part: str | None = None,
                   manifest: str | None = None) -> tuple[str, dict]:
    """The model named by the hash of its inputs: reused when complete, else `train(path)`.
    `part` names the part of the dataset it reads (default: the stage's own), `manifest` the
    manifest it is recorded under (default `train-<name>`)."""
    h = input_hash(ctx, name, section, part)
    done = ctx.store.get_artifact(name, h)
    reuse = bool(done and is_complete(done["path"]))
    if reuse:
        stats.cached += 1
        path, meta = done["path"], done["meta"]
    else:
        ctx.release_models()  # training needs the memory more than cached generators do
        path = ctx.run_dir / "models" / f"{name}-{h[:12]}"
        meta = train(path)
        ctx.store.put_artifact(name, h, path, meta)
        stats.made += 1
    ctx.store.put_manifest(manifest or f"train-{name}", [h], {"path": str(path), **meta})
    if not reuse:  # every rank trained: let each see what rank 0 wrote before deciding again
        _wait_for_rank_zero()
    return str(path), meta


def _wait_for_rank_zero():
    """Under a multi-process launch every rank decides reuse by reading the store, which rank 0
    alone writes: the ranks wait here until it has, or the next decision could differ between
    them (one training while the other reuses) and the launch would hang."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def dataset_hash(ctx, name: str, part: str | None = None) -> str:
    """The hash of the part of the exported dataset a training stage reads (prefs for the
    reward model and the policy, sft for train-sft, and kto too for KTO), or of `part`."""
    from .stages.common import require_manifest
    export = require_manifest(ctx, "export")
    parts = export["meta"].get("parts") or {}
    if not parts:  # exported before parts were named: the whole dataset
        return export["ids"][0]
    if part:
        return parts[part]
    if name == "sft":
        return parts["sft"]
    if name == "policy" and ctx.config.train_policy.method == "kto":
        return content_hash(parts["prefs"], parts["kto"])
    return parts["prefs"]


def input_hash(ctx, name: str, section, part: str | None = None) -> str:
    """A trained model is named by everything it was made from: the dataset, its settings, the
    weights it starts from, the seed, and what rewards it online (GRPO/RLOO). Two trainings
    of the same rows are one model, whatever part of the dataset they came from."""
    from .scoring import TEXT_VERSION
    return content_hash(name, dataset_hash(ctx, name, part), section.model_dump(),
                        base_identity(ctx, tuned=name == "policy", rm=name == "rm"), ctx.config.seed,
                        reward_inputs(ctx) if name == "policy" else None, TEXT_VERSION)


def reward_inputs(ctx) -> dict | None:
    """What an online-RL reward reads: the reward model (named by its own inputs), and the
    judge (its weights, settings, and the principles and system prompt it is asked with)."""
    cfg = ctx.config
    if cfg.train_policy.method not in ("grpo", "rloo"):
        return None
    out = {}
    if "rm" in cfg.train_policy.reward:
        out["rm"] = input_hash(ctx, "rm", cfg.train_rm)
    if "judge" in cfg.train_policy.reward:
        out["judge"] = judge_identity(ctx)
    return out


def judge_identity(ctx) -> dict:
    """The judge as a reward: model, how it is run and scored, and the constitution text the
    reward prompts carry (an edit of another principle leaves it alone)."""
    from .judge import scoring_settings
    from .rewards import reward_principles
    judge = ctx.judge()
    return {"model": judge.identity, "scoring": scoring_settings(judge, ctx.config.judge),
            "system": ctx.constitution.system,
            "principles": [[p.id, p.version, p.weight] for p in reward_principles(ctx)]}


def load_prefs(ctx, split: str, extra: tuple = ()):
    """The preference split with the text columns (and `extra` ones, e.g. margin, p_chosen)."""
    from datasets import load_from_disk
    ds = load_from_disk(str(ctx.run_dir / "dataset" / "prefs"))[split]
    return ds.select_columns([c for c in TEXT_COLUMNS + list(extra) if c in ds.column_names])


def with_margin(ds):
    """RewardTrainer's `margin` column, 0 where a pair has no preference probability (a
    critique-revision pair): its loss is then plain Bradley-Terry, asking no set separation."""
    return ds.map(lambda row: {"margin": row["margin"] if row["margin"] is not None else 0.0})


def check_agreement(ctx, stats):
    """Stop before training when the judge agrees with humans less than the config demands."""
    from .stages.calibrate import current_fit
    need = ctx.config.calibration.min_agreement
    if need is None:
        return
    report = current_fit(ctx)[1] if ctx.store.get_manifest("calibrate") else None
    cal = (report or {}).get("calibrated") or {}
    accuracy = cal.get("accuracy")
    if accuracy is not None and accuracy >= need:
        return
    measured = ("was not measured (no labelled human pairs)" if accuracy is None else
                f"is {accuracy:.3f} on {cal['n']} held-out human pairs (calibrated)")
    message = (f"judge-human agreement {measured}, below calibration.min_agreement {need}: "
               f"the judge's labels are not trusted for training. Configure a stronger judge "
               f"(models.judge), or set calibration.on_low_agreement=warn to train anyway.")
    if ctx.config.calibration.on_low_agreement == "stop":
        raise CaiError(message)
    stats.warn(message)


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
    return config_cls(**{**args, **extra})


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


def fit(trainer) -> str | None:
    """Train, resuming from the newest checkpoint of an interrupted training of the same inputs
    (there is one only with `save_steps`); returns that checkpoint's name, or None."""
    from transformers.trainer_utils import get_last_checkpoint
    out = Path(trainer.args.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    quiet_progress(trainer).train(resume_from_checkpoint=last)
    return Path(last).name if last else None


def quiet_progress(trainer):
    """Keep the trainer's progress bar but not its per-step dict of logs (metrics.json has them)."""
    from transformers.trainer_callback import ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly())
    return trainer


def train_seconds(trainer) -> float | None:
    """The trainer's own measure of its training loop (no loading, scoring or saving)."""
    return next((round(r["train_runtime"], 3) for r in reversed(trainer.state.log_history)
                 if "train_runtime" in r), None)


def loss_curve(trainer) -> list[dict]:
    return [{k: v for k, v in row.items() if k in ("step", "loss", "epoch")}
            for row in trainer.state.log_history if "loss" in row]


def save_model(trainer, tokenizer, target: Path, meta: dict):
    """Write a plain HF directory (LoRA merged) beside `target`, then rename it into place.

    Every rank calls this. With sharded weights (FSDP, DeepSpeed ZeRO-3) no rank holds the
    model, so the trainer first gathers it into a staging directory (all ranks take part,
    rank 0 writes), and rank 0 reloads it from there; otherwise rank 0 saves what it holds.
    """
    model, staging = trainer.model, None
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        staging = target.parent / f".{target.name}.gathered"
        trainer.save_model(str(staging))
        trainer.accelerator.wait_for_everyone()
        if is_main_process():
            model = _reload(model, staging)
    if not is_main_process():
        return
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(meta, indent=2, default=str))
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)


def _reload(model, staging: Path):
    """A gathered checkpoint as a full model in memory (an adapter on its base, for LoRA)."""
    base = getattr(model, "get_base_model", lambda: model)()
    if hasattr(model, "peft_config"):
        from peft import PeftModel
        fresh = type(base).from_pretrained(base.config._name_or_path)
        return PeftModel.from_pretrained(fresh, str(staging))
    return type(base).from_pretrained(str(staging))


def is_complete(path) -> bool:
    return path is not None and (Path(path) / MARKER).exists()


def pair_accuracy(scores) -> float | None:
    return sum(c > r for c, r in scores) / len(scores) if scores else None


def correlation(xs, ys) -> float | None:
    """Pearson correlation (None when either side is constant or empty)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sx = sum((x - mx) ** 2 for x in xs) ** 0.5
    sy = sum((y - my) ** 2 for y in ys) ** 0.5
    if not sx or not sy:
        return None
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy), 4)
