"""Stage-level reuse: a data stage whose inputs are all unchanged since it last ran is skipped
whole, its manifest kept as it is.

The record-level path (compute ids → skip those stored → call for the rest) already makes an
unchanged rerun call no model, but it still re-derives every record: at 100k records that is
most of a first run's time. So each data stage (generate .. export) also names its inputs as a
whole, its *input fingerprint*: the code of cai itself, the run config (its training sections
aside, which no data stage reads), the constitution, the identities of the policy and judge
models, the files the config names (prompts, human slice, evaluation sets), the human labels of
`cai review`, earlier iterations' pairs, and the digest of every earlier stage's current
manifest. When the fingerprint equals the one stored with the stage's manifest, the stage is
not run: no record is loaded and no call key computed; its stats (what it made, dropped and
measured) are the ones stored with it. Anything else falls through to the record-level path,
which recomputes exactly what changed. `models.retry_failed` never skips (stored failures must
be asked again).
"""

import functools
import time
from pathlib import Path

from .context import StageStats
from .hashing import content_hash, file_hash
from .iterations import iteration_dir
from .stages import DATA_STAGES
from .store import DB_NAME, ReadOnlyStore

# Sections no data stage reads: a new learning rate must not re-derive the dataset.
TRAINING_SECTIONS = ("run_dir", "train", "train_sft", "train_rm", "train_policy")
ROOT = Path(__file__).resolve().parents[1]


def run_stage(ctx, name: str, stage) -> StageStats:
    """Run data stage `name` (`stage(ctx)`), or reuse its outputs when its inputs are unchanged."""
    start = time.perf_counter()
    inputs = input_fingerprint(ctx, name)
    reuse = ctx.store.manifest_reuse(name)
    if inputs and reuse and reuse["inputs"] == inputs and _still_there(ctx, name):
        stats = reused_stats(name, reuse)
        stats.seconds = time.perf_counter() - start
        return stats
    stats = stage(ctx)
    if inputs and not ctx.dry_run:
        ctx.store.set_manifest_reuse(name, {
            "inputs": inputs, "run": ctx.store.run_id, "records": stats.made + stats.cached,
            "metrics": stats.metrics, "dropped": stats.dropped, "warnings": stats.warnings})
    return stats


def reused_stats(name: str, reuse: dict) -> StageStats:
    """What the stage did when it derived the outputs now reused, and which run that was."""
    return StageStats(name, cached=reuse["records"], dropped=dict(reuse["dropped"]),
                      metrics=reuse["metrics"], warnings=list(reuse["warnings"]),
                      reused_from=reuse["run"])


def input_fingerprint(ctx, name: str) -> str | None:
    """The hash of everything stage `name`'s outputs depend on; None when one of them cannot
    be named (an earlier manifest without a digest, `models.retry_failed`)."""
    cfg, store = ctx.config, ctx.store
    if cfg.models.retry_failed:
        return None
    at = DATA_STAGES.index(name)
    upstream = [store.manifest_digest(s) for s in DATA_STAGES[:at]]
    if None in upstream:
        return None
    # A section named after a data stage (critique, label, pairs, blend) is read by that stage
    # and later ones only: a blend knob re-derives blend and export, not the judge's labels.
    skip = {*TRAINING_SECTIONS, *DATA_STAGES[at + 1:]}
    data = {k: v for k, v in cfg.model_dump().items() if k not in skip}
    models = sorted({cfg.models.policy, cfg.models.judge})
    return content_hash(code_digest(), name, data, ctx.constitution.content_version,
                        {spec: ctx.model_identity(spec) for spec in models},
                        {src: _source_digest(src) for src in _sources(cfg)},
                        store.review_state(), _carried(cfg), upstream)


@functools.cache
def code_digest() -> str:
    """cai's own code and builtin data: an upgraded cai derives its records anew."""
    files = sorted(p for d in ("pipeline", "constitution") for p in (ROOT / d).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    return content_hash([(str(p.relative_to(ROOT)), file_hash(p)) for p in files])


def _sources(cfg) -> list[str]:
    return [cfg.prompts.source, cfg.calibration.source, cfg.evaluate.harmful, cfg.evaluate.safe,
            cfg.evaluate.redteam]


def _source_digest(source: str):
    """A data file or directory named by the config, by content (builtin sets are in the code)."""
    path = Path(source).expanduser()
    if source.startswith("builtin:") or not path.exists():
        return source  # a missing file fails in the stage itself, with its own message
    if path.is_file():
        return file_hash(path)
    return [(str(p.relative_to(path)), file_hash(p)) for p in sorted(path.rglob("*")) if p.is_file()]


def _carried(cfg) -> list:
    """Earlier iterations' pairs manifests (blend carries their pairs into this iteration)."""
    k = cfg.iterations.current
    if k == 1 or cfg.iterations.decay == 0:
        return []
    digests = []
    for j in range(1, k):
        d = iteration_dir(cfg.iterations.root, j)
        if (d / DB_NAME).exists():
            with ReadOnlyStore(d) as store:
                digests.append(store.manifest_digest("pairs") or content_hash(store.get_manifest("pairs")))
    return digests


def _still_there(ctx, name: str) -> bool:
    """Outputs that live outside the store too: the exported dataset directory."""
    if name != "export":
        return True
    ids = (ctx.store.get_manifest("export") or {}).get("ids") or [None]
    marker = ctx.run_dir / "dataset" / ".cai-hash"
    return ctx.dry_run or (marker.exists() and marker.read_text() == ids[0])
