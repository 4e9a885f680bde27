"""The store: the only module that touches the database.

One SQLite file per run directory (WAL mode), holding
- calls:     every model call, keyed by a hash of (model identity, parameters, messages, seed, sample);
             failures are stored too, with their reason;
- records:   every stage record (response, critique, revision, pair, judgement...), keyed by a hash
             of what it was made from; one recomputed under its id replaces the stored one;
- manifests: per stage, the ids of the records it produced last (an id list, `id_lists`) and
             its metadata, written last ("mark done"), so a later stage reads exactly the current
             outputs of the one before (`pipeline.store_manifests`);
- artifacts: exported datasets and trained models, keyed by the hash of their inputs.

One writer at a time: opening a store takes an exclusive lock on `<run_dir>/.lock`. The
connection is in autocommit mode, so every write that must be atomic (a batch of calls or
records, a manifest, a migration) runs in a real `BEGIN IMMEDIATE … COMMIT` (`transaction`): a
process killed inside one leaves the store as it was before it. Schema: `pipeline.migrations`.
"""

import fcntl
import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from . import store_health
from .errors import RunLocked
from .migrations import MIGRATIONS, migrate, transaction  # noqa: F401 - where tests take them
from .store_manifests import Manifests, _DroppedWriter

DB_NAME = "cai.sqlite"


def dumps(obj) -> str:
    """JSON as the store writes it (a record's data, a call's request and response)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def take_lock(run_dir: Path):
    """The run directory's one-writer lock (an open file; closing it lets go)."""
    f = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RunLocked(f"{run_dir}: another cai process is using this run directory; "
                        "wait for it to finish or use another --run-dir") from None
    f.seek(0), f.truncate(), f.write(str(os.getpid())), f.flush()
    return f


class Store(Manifests):
    def __init__(self, run_dir, *, lock: bool = True, pages: bool = True):
        """`pages`: read every page at open (quick_check, up to 64 MB); the review page, which
        opens the store once per request, checks them once when it starts."""
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = None
        self.run_id = None  # the run in progress, stamped on the calls it uses
        self.stage = None   # the stage in progress, stamped on them too
        if lock:
            self._lock_file = take_lock(self.run_dir)
        try:
            self.db = _open_writable(self.run_dir / DB_NAME, pages)
        except BaseException:
            self.close()
            raise

    def close(self):
        if getattr(self, "db", None) is not None:
            self.db.close()
        if self._lock_file:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- model calls ---------------------------------------------------------------------------
    def _in_chunks(self, sql: str, keys, *params):
        """Run `sql` (with one `{marks}` placeholder for the keys, after `params`) 500 keys at a
        time (SQLite's variable limit); yields each chunk's cursor."""
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            yield self.db.execute(sql.format(marks=",".join("?" * len(chunk))), [*params, *chunk])

    def _select_in(self, sql: str, keys):
        for cursor in self._in_chunks(sql, keys):
            # a chunk's rows as a list: a generator left mid-way (a damaged row stopped the
            # reader) then holds no cursor that would fail on the closed store when collected
            yield from cursor.fetchall()

    def _change_in(self, sql: str, keys, *params) -> int:
        with transaction(self.db):
            return sum(c.rowcount for c in self._in_chunks(sql, keys, *params))

    def _loads(self, text, where: str, kind=(dict, list)):
        """A JSON column, or one line naming the damaged row (`store_health.cai_json`)."""
        try:
            return store_health.cai_json(text, kind)
        except ValueError:
            raise store_health.damaged(self.run_dir / DB_NAME,
                                       f"{where} is not the JSON cai wrote") from None

    def get_calls(self, keys) -> dict:
        """key -> {"response": ..., "error": ...} for the keys already stored."""
        return {key: {"response": self._loads(resp, f"call {key}", object) if resp is not None
                      else None, "error": err}
                for key, resp, err in self._select_in(
                    "SELECT key, response, error FROM calls WHERE key IN ({marks})", keys)}

    def put_calls(self, rows):
        """rows: dicts with key, model, kind, request, response, error. One transaction per batch."""
        now = time.time()
        with transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO calls (key, model, kind, request, response, error, created, "
                "last_run, stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["key"], r["model"], r["kind"], dumps(r["request"]),
                  None if r.get("response") is None else dumps(r["response"]),
                  r.get("error"), now, self.run_id, self.stage) for r in rows])

    def touch_calls(self, keys):
        """Stamp cache hits with the current run, so gc knows they are still in use."""
        if self.run_id is not None:
            self._change_in("UPDATE calls SET last_run=?, stage=? WHERE key IN ({marks})", keys,
                            self.run_id, self.stage)

    def count_calls(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def count_failed_calls(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM calls WHERE error IS NOT NULL").fetchone()[0]

    # -- records -------------------------------------------------------------------------------
    def put_records(self, records):
        """records: (id, kind, data) tuples, in one transaction. A record recomputed under an
        id it already has replaces the stored one where its data differ: an id names what a
        record was made from, and a computation that changed without changing those inputs (a
        cai upgrade, a setting outside the id) must not leave the old answer in place."""
        with transaction(self.db):
            self._insert_records(records)

    def _insert_records(self, records):
        """`put_records` inside a transaction the caller holds."""
        now = time.time()
        self.db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "kind=excluded.kind, data=excluded.data, created=excluded.created "
            "WHERE records.data IS NOT excluded.data OR records.kind IS NOT excluded.kind",
            [(rid, kind, dumps(data), now) for rid, kind, data in records])

    def stored_data(self, ids) -> dict:
        """id -> the record's stored JSON text, as `put_records` would write it."""
        return dict(self._select_in("SELECT id, data FROM records WHERE id IN ({marks})", ids))

    def get_records(self, ids) -> dict:
        return {rid: self._loads(data, f"record {rid}") for rid, data in self._select_in(
            "SELECT id, data FROM records WHERE id IN ({marks})", ids)}

    def count_records(self, kind=None) -> int:
        if kind is None:
            return self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM records WHERE kind=?", (kind,)).fetchone()[0]

    def review_state(self) -> list:
        """How many human labels `cai review` holds and the newest: what a stage reading them
        depends on (labels are append-only)."""
        return list(self.db.execute("SELECT COUNT(*), MAX(seq) FROM review_labels").fetchone())

    # -- artifacts: exports and models named by the hash of their inputs -------------------------
    def put_artifact(self, name: str, input_hash: str, path, meta: dict):
        with transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                            (name, input_hash, str(path), dumps(meta), time.time()))

    def get_artifact(self, name: str, input_hash: str):
        row = self.db.execute("SELECT path, meta FROM artifacts WHERE name=? AND input_hash=?",
                              (name, input_hash)).fetchone()
        if row is None:
            return None
        return {"path": row[0], "meta": self._loads(row[1], f"artifact {name}", dict)}

    # -- review: items people label and their labels (`cai review`) ----------------------------
    def put_review_items(self, items):
        """items: (id, mode, data) tuples; an existing id is kept as is."""
        now = time.time()
        with transaction(self.db):
            self.db.executemany("INSERT OR IGNORE INTO review_items (id, mode, data, created) "
                                "VALUES (?, ?, ?, ?)",
                                [(i, mode, dumps(data), now) for i, mode, data in items])

    def review_items(self, mode: str, *, queued: bool = False) -> dict:
        """id -> item of one mode ('label' or 'evaluate'), in the order they were added; with
        `queued`, only those not retired (a superseded run's items keep their labels)."""
        where = " AND retired IS NULL" if queued else ""
        return {i: self._loads(d, f"review item {i}", dict) for i, d in self.db.execute(
            f"SELECT id, data FROM review_items WHERE mode=?{where} ORDER BY created, id", (mode,))}

    def set_review_queue(self, current: set, retire: set):
        """Items back in the queue (`current`) and out of it (`retire`)."""
        self._change_in("UPDATE review_items SET retired=NULL WHERE id IN ({marks})", current)
        self._change_in("UPDATE review_items SET retired=? WHERE retired IS NULL AND id IN ({marks})",
                        retire, time.time())

    def put_annotator(self, token_hash: str, name: str, adjudicator: bool, owner: bool = False):
        """A personal review token (its hash) for `name`; an owner's replaces the last owner's."""
        with transaction(self.db):
            if owner:
                self.db.execute("DELETE FROM review_annotators WHERE owner=1")
            self.db.execute("INSERT INTO review_annotators (token_hash, name, adjudicator, owner, "
                            "created) VALUES (?, ?, ?, ?, ?)",
                            (token_hash, name, int(adjudicator), int(owner), time.time()))

    def annotator_of(self, token_hash: str) -> dict | None:
        row = self.db.execute("SELECT name, adjudicator FROM review_annotators WHERE token_hash=?",
                              (token_hash,)).fetchone()
        return {"name": row[0], "adjudicator": bool(row[1])} if row else None

    def annotators(self) -> dict:
        """name -> whether they may adjudicate, for everyone holding a token."""
        out = {}
        for name, adjudicator in self.db.execute("SELECT name, adjudicator FROM review_annotators"):
            out[name] = out.get(name, False) or bool(adjudicator)
        return out

    def put_review_label(self, item: str, annotator: str, role: str, choice: str, note: str):
        with transaction(self.db):
            self.db.execute("INSERT INTO review_labels (item, annotator, role, choice, note, created) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (item, annotator, role, choice, note or None, time.time()))

    def review_labels(self) -> list[dict]:
        """Every label row, oldest first (a relabel is a later row)."""
        keys = ("seq", "item", "annotator", "role", "choice", "note", "created")
        return [dict(zip(keys, row)) for row in self.db.execute(
            "SELECT seq, item, annotator, role, choice, note, created FROM review_labels ORDER BY seq")]

    # -- run history ---------------------------------------------------------------------------
    def start_run(self, config_hash: str, constitution_version: str) -> int:
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT INTO runs (started, status, config_hash, constitution_version) "
                "VALUES (?, 'running', ?, ?)", (time.time(), config_hash, constitution_version))
        self.run_id = cur.lastrowid
        return cur.lastrowid

    def finish_run(self, run_id: int, status: str, summary: dict):
        with transaction(self.db):
            self.db.execute("UPDATE runs SET finished=?, status=?, summary=? WHERE id=?",
                            (time.time(), status, dumps(summary), run_id))

    def list_runs(self) -> list[dict]:
        rows = self.db.execute("SELECT id, started, finished, status, config_hash, "
                               "constitution_version, summary FROM runs ORDER BY id").fetchall()
        keys = ("id", "started", "finished", "status", "config_hash", "constitution_version")
        return [{**dict(zip(keys, r[:6])),
                 "summary": self._loads(r[6], f"the summary of run {r[0]}", dict) if r[6] else {}}
                for r in rows]

    # -- garbage collection (`cai gc`) -------------------------------------------------------
    def delete_calls_before(self, run_id: int, keep: dict | None = None) -> int:
        """Delete the calls no run from `run_id` on used, but those of `keep`'s stages from the
        run named there on ({stage: run}: stages a kept run skipped, reusing that run's
        outputs). A call stamped before stages were (no stage) is kept if any stage is."""
        where, params = ["(last_run IS NULL OR last_run < ?)"], [run_id]
        for stage, since in (keep or {}).items():
            where.append("NOT ((stage = ? OR stage IS NULL) AND last_run >= ?)")
            params += [stage, since]
        with transaction(self.db):
            return self.db.execute(f"DELETE FROM calls WHERE {' AND '.join(where)}", params).rowcount

    def all_record_ids(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT id, kind FROM records").fetchall()

    def delete_records(self, ids) -> int:
        return self._change_in("DELETE FROM records WHERE id IN ({marks})", ids)

    def list_artifacts(self) -> list[dict]:
        return [{"name": n, "input_hash": h, "path": p} for n, h, p in
                self.db.execute("SELECT name, input_hash, path FROM artifacts")]

    def delete_artifact(self, name: str, input_hash: str):
        with transaction(self.db):
            self.db.execute("DELETE FROM artifacts WHERE name=? AND input_hash=?", (name, input_hash))

    def vacuum(self):
        self.db.execute("VACUUM")


def _open_writable(db: Path, pages: bool = True) -> sqlite3.Connection:
    """The store for writing, checked; a new one is made whole under a temporary name first,
    so an empty or half-made file under the store's name is always damage, never a new store."""
    store_health.check_file(db)
    if not db.exists():
        _create(db)
    store_health.opened(db)
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    with store_health.checked(db, conn):
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
        store_health.check_connection(db, conn, pages)
        store_health.check_not_newer(db, conn)
    return conn


def _create(db: Path):
    tmp = db.with_name(f".{db.name}.new-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    with closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
    try:
        os.link(tmp, db)  # fails if another process made the store meanwhile: theirs stands
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not db.exists():
            os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def _read_only(db: Path) -> sqlite3.Connection:
    """A run's store opened so that reading it writes nothing. With no write-ahead log on disk
    no writer is active and the file is read as immutable (SQLite then creates no -shm file);
    with one (a cai running, or killed), read-only mode reads the log too, and its files exist
    already."""
    mode = "mode=ro" if db.with_name(db.name + "-wal").exists() else "immutable=1"
    return sqlite3.connect(f"{db.resolve().as_uri()}?{mode}", uri=True, timeout=30)


def copy_store(run_dir, target_dir):
    """Copy a run's store, as one consistent snapshot, into `target_dir` (`cai plan` works on
    the copy); writes nothing in `run_dir`, and nothing at all if it has no store."""
    db = Path(run_dir) / DB_NAME
    if db.exists() or db.is_symlink():
        with closing(_open_read_only(db)) as src, \
                closing(sqlite3.connect(Path(target_dir) / DB_NAME)) as dst:
            try:
                src.backup(dst)
            except sqlite3.DatabaseError as exc:
                raise store_health.damaged(db, store_health.describe(exc)) from None


def _open_read_only(db: Path) -> sqlite3.Connection:
    store_health.check_file(db)
    store_health.opened(db)
    conn = _read_only(db)
    with store_health.checked(db, conn):
        store_health.check_connection(db, conn)
    return conn


class ReadOnlyStore(Store):
    """A run's store for commands that only read it (`cai history`, `cai diff`): no lock (a
    running cai may hold it), no migration, no write."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self._lock_file, self.run_id, self.db = None, None, None
        self.db = _open_read_only(self.run_dir / DB_NAME)


def is_main_process() -> bool:
    """Rank 0 of a multi-process launch (`accelerate launch`, torchrun), or a plain process."""
    return int(os.environ.get("RANK", "0")) == 0


class FollowerStore(Store):
    """The store as a non-main process of a multi-process training launch sees it.

    Every rank trains (DDP, FSDP and ZeRO need all of them), but only rank 0 writes: followers
    read the run's store without the lock and their writes are dropped, so a record, model or
    run is written exactly once.
    """

    def __init__(self, run_dir):
        super().__init__(run_dir, lock=False)

    def _drop(self, *args, **kwargs):
        return None

    put_calls = touch_calls = put_records = put_artifact = _drop

    def manifest_writer(self, stage: str):
        return _DroppedWriter(self, stage)

    set_manifest_reuse = _drop
    put_review_items = put_review_label = set_review_queue = put_annotator = _drop
    finish_run = delete_artifact = vacuum = _drop

    def start_run(self, config_hash: str, constitution_version: str) -> int:
        return 0
