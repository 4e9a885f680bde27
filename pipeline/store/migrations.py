"""The store's schema and its migrations, and the one way the store writes: a real transaction.

Connections are in autocommit mode (`isolation_level=None`), where `with db:` opens no
transaction at all; every write that must be atomic goes through `transaction`. Migrations are
append-only, each atomic and idempotent: a process killed inside one leaves the store as it was,
a store an older cai left half-migrated opens, and processes opening an old store at once apply
each migration exactly once.
"""

import contextlib
import sqlite3
import time


@contextlib.contextmanager
def transaction(db: sqlite3.Connection):
    """One real transaction on an autocommit connection (`with db:` is none there): taken with
    the write lock at once, so two writers queue instead of failing half-way; rolled back on
    any exception, KeyboardInterrupt included."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (a full disk, say)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _script(db, sql: str):
    """Statements one by one: `executescript` would COMMIT the transaction it runs in."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _add_column(db, table: str, column: str):
    """ALTER TABLE ADD COLUMN, unless a store migrated half-way by an older cai (whose
    migrations were not atomic) has the column already."""
    name = column.split()[0]
    if name not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


# Every migration is idempotent as well as atomic: a store an older cai left half-migrated opens.
def _m001_initial(db):
    _script(db, """
        CREATE TABLE IF NOT EXISTS calls (
            key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL,
            request TEXT NOT NULL, response TEXT, error TEXT, created REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS records (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL, created REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS records_kind ON records(kind);
        CREATE TABLE IF NOT EXISTS manifests (
            stage TEXT PRIMARY KEY, ids TEXT NOT NULL, meta TEXT NOT NULL, updated REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS artifacts (
            name TEXT NOT NULL, input_hash TEXT NOT NULL, path TEXT NOT NULL, meta TEXT NOT NULL,
            created REAL NOT NULL, PRIMARY KEY (name, input_hash));
        CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
            status TEXT NOT NULL, config_hash TEXT, constitution_version TEXT, summary TEXT);
        """)


def _m002_call_last_run(db):
    # Which run last used a call: `cai gc --keep-runs N` drops calls no kept run used.
    # Calls stored before this column existed count as used by the latest run (conservative).
    _add_column(db, "calls", "last_run INTEGER")
    db.execute("UPDATE calls SET last_run = (SELECT MAX(id) FROM runs)")


def _m003_review(db):
    # `cai review`: the items people label and their labels. Append-only: a relabel is a new
    # row, and the latest row of an annotator on an item is their label.
    _script(db, """
        CREATE TABLE IF NOT EXISTS review_items (
            id TEXT PRIMARY KEY, mode TEXT NOT NULL, data TEXT NOT NULL, created REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS review_labels (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL, annotator TEXT NOT NULL,
            role TEXT NOT NULL, choice TEXT NOT NULL, note TEXT, created REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS review_labels_item ON review_labels(item);
        """)


def _m004_manifest_digest(db):
    # A manifest's digest (of its ids and meta) lets the next stage see that its inputs are
    # unchanged without loading them; `reuse` holds what a stage needs to be skipped whole
    # (`cai.stages.reuse`). Manifests written before have neither: their stage runs again.
    _add_column(db, "manifests", "digest TEXT")
    _add_column(db, "manifests", "reuse TEXT")


def _m005_call_stage(db):
    # Which stage last used a call: a stage skipped whole (`cai.stages.reuse`) stamps no
    # call, so `cai gc --keep-runs` keeps the calls of that stage alone from the run it reused.
    _add_column(db, "calls", "stage TEXT")


def _m006_manifest_run(db):
    # Which run wrote a stage's current manifest: every figure of a report names its run.
    _add_column(db, "manifests", "run INTEGER")


def _m007_review_access(db):
    # `cai review`: who may label is the server's record of personal tokens (their hashes),
    # never a name a browser sends; items of a superseded run leave the queue (`retired`).
    _script(db, """
        CREATE TABLE IF NOT EXISTS review_annotators (
            token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, adjudicator INTEGER NOT NULL,
            owner INTEGER NOT NULL, created REAL NOT NULL)
        """)
    _add_column(db, "review_items", "retired REAL")


def _m008_id_lists(db):
    # A manifest's ids live in rows (a million ids are never one JSON value): lists named by
    # their content, shared by the manifests and the run history that name them. Manifests
    # written before move their inline ids into lists here.
    import hashlib
    import json
    _script(db, """
        CREATE TABLE IF NOT EXISTS id_lists (
            list TEXT NOT NULL, pos INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (list, pos))
        """)
    _add_column(db, "manifests", "list TEXT")
    _add_column(db, "manifests", "count INTEGER")
    for stage, ids_json in db.execute("SELECT stage, ids FROM manifests WHERE list IS NULL").fetchall():
        try:
            ids = json.loads(ids_json)
        except ValueError:
            continue  # damage: `cai store check` reports it, repair drops the manifest
        # the name `store_manifests.ManifestWriter` gives the same list (written out here: a
        # migration never changes what it makes, whatever the writer becomes)
        text = json.dumps(ids, ensure_ascii=False, sort_keys=True)
        name = "ids-" + hashlib.sha256(text.encode()).hexdigest()[:20]
        db.executemany("INSERT OR IGNORE INTO id_lists VALUES (?, ?, ?)",
                       [(name, i, rid) for i, rid in enumerate(ids)])
        db.execute("UPDATE manifests SET ids='[]', list=?, count=? WHERE stage=?",
                   (name, len(ids), stage))


# Append-only: a new schema change is a new function at the end; an old one never changes what
# it makes.
MIGRATIONS = [_m001_initial, _m002_call_last_run, _m003_review, _m004_manifest_digest,
              _m005_call_stage, _m006_manifest_run, _m007_review_access, _m008_id_lists]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Bring a store to the current schema. Each migration and its mark run in one transaction
    (SQLite's DDL is transactional), so a process killed mid-migration leaves the store as it
    was; the applied set is read again under the write lock, so processes opening an old store
    at once apply each migration exactly once."""
    names = [fn.__name__ for fn in MIGRATIONS]
    if _applied(db) >= set(names):  # the common case: nothing to do, no write lock taken
        return []
    applied = []
    for fn in MIGRATIONS:
        with transaction(db):
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL)")
            if fn.__name__ in _applied(db):
                continue
            fn(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, time.time()))
        applied.append(fn.__name__)
    return applied


def _applied(db) -> set[str]:
    try:
        return {row[0] for row in db.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError:  # no such table: a new store
        return set()
