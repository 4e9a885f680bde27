"""A training stage's frame: reuse the model trained on the same inputs, or train it on rank 0's
word (every rank of a multi-process launch trains; only rank 0 writes)."""

from cai.store.core import is_main_process
from cai.training.card import write_card
from cai.training.inputs import check_agreement, input_hash
from cai.training.saving import is_complete


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
    if is_main_process() and not ctx.dry_run:
        write_card(ctx, name, path, section, meta, h)
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
