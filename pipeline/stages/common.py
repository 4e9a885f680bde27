"""Small helpers the stages share: reading a manifest's records a chunk at a time, writing a
stage's records and its manifest as they are made."""

from cai.errors import CaiError
from cai.store.core import dumps

# Records a stage holds at a time: every data stage reads, computes and writes its records
# in chunks of about this many (each chunk one transaction), so memory stays flat as a run grows.
CHUNK = 2000


def require_manifest(ctx, stage: str) -> dict:
    """The outputs of an earlier stage (all its ids: for the stages that list a few), or a
    one-line error saying which stage to run first."""
    require_stage(ctx, stage)
    return ctx.store.get_manifest(stage)


def require_stage(ctx, stage: str) -> dict:
    """An earlier stage's manifest meta, or the one-line error of `require_manifest`."""
    meta = ctx.store.manifest_meta(stage)
    if meta is None:
        raise CaiError(f"{ctx.run_dir}: stage '{stage}' has not run yet; run `cai {stage}` "
                       "(or `cai run`) first")
    return meta


def load_records(ctx, ids: list) -> list[dict]:
    found = ctx.store.get_records(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise CaiError(f"{ctx.run_dir}: {len(missing)} records listed by a manifest are missing "
                       f"from the store (first: {missing[0]}); rerun `cai run`")
    return [found[i] for i in ids]


def manifest_records(ctx, stage: str, size: int | None = None):
    """An earlier stage's records as lists of (id, record), `size` (CHUNK) at a time, in order."""
    require_stage(ctx, stage)
    for ids in ctx.store.manifest_pages(stage, size or CHUNK):
        yield list(zip(ids, load_records(ctx, ids)))


def grouped(chunks, key):
    """The items of `chunks` re-cut so that a run of items with the same key is never split
    between two chunks (a prompt's responses are compared with each other). A chunk is cut
    only where the next one goes on with its last key: a run that fits one chunk is asked in
    the batches it always was (a batch's make-up can move a bf16 model's log-probabilities)."""
    chunks = (list(c) for c in chunks)
    carry, ahead = [], next(chunks, None)
    while ahead is not None:
        items, ahead = carry + ahead, next(chunks, None)
        while ahead is not None and not ahead:  # an empty chunk says nothing of the next key
            ahead = next(chunks, None)
        cut = len(items)
        if ahead is not None and items and key(ahead[0]) == key(items[-1]):
            while cut and key(items[cut - 1]) == key(items[-1]):
                cut -= 1
        carry = items[cut:]
        if cut:
            yield items[:cut]
    if carry:
        yield carry


def batched(items, size: int):
    """Lists of `size` items of any iterable (the last shorter)."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def save_records(ctx, stats, records: list[tuple], out=None, ids=None):
    """Write (id, kind, data) records; count which were stored already, as they are, and which
    are new or recomputed (a stored record whose data came out different is replaced). With
    `out` (a stage's `ManifestWriter`), `ids` (default: the records') join its manifest in the
    same transaction."""
    stored = ctx.store.stored_data({r[0] for r in records})
    same = {rid for rid, _, data in records if stored.get(rid) == dumps(data)}
    stats.cached += len(same)
    stats.made += len({r[0] for r in records} - same)
    if out is None:
        ctx.store.put_records(records)
    else:
        out.write(records, ids)
