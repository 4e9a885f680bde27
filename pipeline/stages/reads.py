"""What a data stage reads, declared once: its fingerprint and `cai plan` are derived from it.

Each stage module holds `READS = Reads(...)`: the config keys it reads (a section name covers
every key in it), the models it asks (by role: their identity comes from
`cai.backends.identity`), the config keys that name data files (read by content), whether it
reads the constitution, `cai review`'s labels or earlier iterations' pairs, and the earlier
stages whose manifests it reads. `tests/test_invalidation.py` changes every config key, file
and model part in turn and checks that a stage whose outputs change has a changed fingerprint:
a key a stage reads but does not declare fails that test; a key it declares but does not read
only costs a rerun (counted there as over-invalidation).
"""

from dataclasses import dataclass
from pathlib import Path

from cai.hashing import content_hash, file_hash


@dataclass(frozen=True)
class Reads:
    config: tuple = ()        # config keys: "seed", "generate" (a section), "calibration.source"
    models: tuple = ()        # roles: "policy", "judge" (the identity of models.<role>)
    files: tuple = ()         # config keys naming data files or directories, read by content
    stages: tuple = ()        # earlier stages whose manifests (ids, meta, records) it reads
    constitution: bool = False
    review: bool = False      # the labels people gave in `cai review`
    carried: bool = False     # earlier iterations' pairs


def config_value(config, key: str):
    """The value of a dotted config key, as plain data."""
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node.model_dump() if hasattr(node, "model_dump") else node


def declared_inputs(ctx, reads: Reads) -> dict:
    """The values of everything `reads` names, for the current run (the stage fingerprint)."""
    cfg, store = ctx.config, ctx.store
    out = {"config": {k: config_value(cfg, k) for k in reads.config},
           "models": {r: ctx.model_identity(getattr(cfg.models, r)) for r in reads.models},
           "files": {k: source_digest(config_value(cfg, k)) for k in reads.files},
           "stages": {s: store.manifest_digest(s) for s in reads.stages}}
    if reads.constitution:
        out["constitution"] = ctx.constitution.content_version
    if reads.review:
        out["review"] = store.review_state()
    if reads.carried:
        out["carried"] = carried_digests(cfg)
    return out


def source_digest(source: str):
    """A data file or directory named by the config, by content (builtin sets are in the code)."""
    path = Path(source).expanduser()
    if source.startswith("builtin:") or not path.exists():
        return source  # a missing file fails in the stage itself, with its own message
    if path.is_file():
        return file_hash(path)
    return [(str(p.relative_to(path)), file_hash(p)) for p in sorted(path.rglob("*")) if p.is_file()]


def carried_digests(cfg) -> list:
    """Earlier iterations' pairs manifests (blend carries their pairs into this iteration)."""
    from cai.store.core import DB_NAME, ReadOnlyStore
    from cai.store.iterations import iteration_dir
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
