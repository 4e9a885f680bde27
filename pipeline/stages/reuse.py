"""Stage-level reuse: a data stage whose inputs are all unchanged since it last ran is skipped
whole, its manifest kept as it is.

The record-level path (compute ids → skip those stored → call for the rest) already makes an
unchanged rerun call no model, but it still re-derives every record: at 100k records that is
most of a first run's time. So each data stage (generate .. export) also names its inputs as a
whole, its *input fingerprint*: the code of cai itself and what the stage declares it reads
(`READS` in its module, `cai.stages.reads`): config keys, model identities, data files by
content, the constitution, `cai review`'s labels, earlier iterations' pairs, and the digests of
the earlier stages' manifests it reads (ids, meta and the records' contents). When the
fingerprint equals the one stored with the stage's manifest, the stage is not run: no record is
loaded and no call key computed; its stats (what it made, dropped and measured) are the ones
stored with it. Anything else falls through to the record-level path, which recomputes exactly
what changed. A stage never skips when it handed out a failed call last time (a failure is not
a result to keep: transient ones are asked again), nor under `models.retry_failed`. `cai plan`
walks the stages through this same function, so plan and run take the same path.
"""

import functools
import time
from pathlib import Path

from cai.hashing import content_hash, file_hash
from cai.stages import READS
from cai.stages.context import StageStats
from cai.stages.reads import declared_inputs


def run_stage(ctx, name: str, stage) -> StageStats:
    """Run data stage `name` (`stage(ctx)`), or reuse its outputs when its inputs are unchanged."""
    start = time.perf_counter()
    inputs = input_fingerprint(ctx, name)
    reuse = ctx.store.manifest_reuse(name)
    if inputs and reuse and reuse["inputs"] == inputs and _still_there(ctx, name):
        stats = reused_stats(name, reuse)
        stats.seconds = time.perf_counter() - start
        return stats
    failures = ctx.failures()
    ctx.store.stage = name  # stamped on every call it makes or reuses (gc reads it)
    try:
        stats = stage(ctx)
    finally:
        ctx.store.stage = None
    if not ctx.dry_run:
        failed = ctx.failures() > failures
        ctx.store.set_manifest_reuse(name, None if failed or not inputs else {
            "inputs": inputs, "run": ctx.store.run_id, "records": stats.made + stats.cached,
            "metrics": stats.metrics, "dropped": stats.dropped, "warnings": stats.warnings})
    return stats


def reused_stats(name: str, reuse: dict) -> StageStats:
    """What the stage did when it derived the outputs now reused, and which run that was."""
    return StageStats(name, cached=reuse["records"], dropped=dict(reuse["dropped"]),
                      metrics=reuse["metrics"], warnings=list(reuse["warnings"]),
                      reused_from=reuse["run"])


def input_fingerprint(ctx, name: str) -> str | None:
    """The hash of everything stage `name` declares it reads; None when one of them cannot be
    named (an earlier manifest without a digest) or must not be reused (`models.retry_failed`)."""
    if ctx.config.models.retry_failed:
        return None
    inputs = declared_inputs(ctx, READS[name])
    if None in inputs["stages"].values():
        return None
    return content_hash(code_digest(), name, inputs)


@functools.cache
def code_digest() -> str:
    """cai's own code and builtin data: an upgraded cai derives its records anew."""
    return tree_digest(code_dirs())


def code_dirs() -> dict:
    """Where `cai` and `cai.constitution` live: side by side in a checkout (`pipeline/`,
    `constitution/`), one inside the other once installed."""
    import cai
    import cai.constitution
    return {name: Path(m.__file__).resolve().parent
            for name, m in (("pipeline", cai), ("constitution", cai.constitution))}


def tree_digest(packages: dict) -> str:
    """Every file of each package directory, named by the package and its path inside it."""
    files = sorted((name, str(p.relative_to(root)), p) for name, root in packages.items()
                   for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and not (name == "pipeline" and p.is_relative_to(root / "constitution")))
    return content_hash([(f"{name}/{rel}", file_hash(p)) for name, rel, p in files])


def _still_there(ctx, name: str) -> bool:
    """Outputs that live outside the store too: the exported dataset directory."""
    if name != "export":
        return True
    ids = (ctx.store.get_manifest("export") or {}).get("ids") or [None]
    marker = ctx.run_dir / "dataset" / ".cai-hash"
    return ctx.dry_run or (marker.exists() and marker.read_text() == ids[0])
