"""Small helpers the stages share."""

from ..errors import CaiError
from ..store import dumps


def require_manifest(ctx, stage: str) -> dict:
    """The outputs of an earlier stage, or a one-line error saying which stage to run first."""
    manifest = ctx.store.get_manifest(stage)
    if manifest is None:
        raise CaiError(f"{ctx.run_dir}: stage '{stage}' has not run yet; run `cai {stage}` "
                       "(or `cai run`) first")
    return manifest


def load_records(ctx, ids: list) -> list[dict]:
    found = ctx.store.get_records(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise CaiError(f"{ctx.run_dir}: {len(missing)} records listed by a manifest are missing "
                       f"from the store (first: {missing[0]}); rerun `cai run`")
    return [found[i] for i in ids]


def save_records(ctx, stats, records: list[tuple]):
    """Write (id, kind, data) records; count which were stored already, as they are, and which
    are new or recomputed (a stored record whose data came out different is replaced)."""
    stored = ctx.store.stored_data({r[0] for r in records})
    same = {rid for rid, _, data in records if stored.get(rid) == dumps(data)}
    stats.cached += len(same)
    stats.made += len({r[0] for r in records} - same)
    ctx.store.put_records(records)
