"""Fitting and saving a model: the trainer run quietly, its curve and time, and the model
directory written atomically under the hash of its inputs (a marker file written last)."""

import json
import shutil
from pathlib import Path

from cai.fsutil import atomic_dir
from cai.store.core import is_main_process

MARKER = "cai-model.json"  # written last: a model directory without it is not a model

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
