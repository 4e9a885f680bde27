"""The run store (with its mixins in this package, the only code that touches the database).

One SQLite file per run directory (WAL mode), holding
- calls:     every model call, keyed by a hash of (model identity, parameters, messages, seed, sample);
             failures are stored too, with their reason;
- records:   every stage record (response, critique, revision, pair, judgement...), keyed by a hash
             of what it was made from; one recomputed under its id replaces the stored one;
- manifests: per stage, the ids of the records it produced last (an id list, `id_lists`) and
             its metadata, written last ("mark done"), so a later stage reads exactly the current
             outputs of the one before (`cai.store.manifests`);
- artifacts: exported datasets and trained models, keyed by the hash of their inputs.

One writer at a time: opening a store takes an exclusive lock on `<run_dir>/.lock`. The
connection is in autocommit mode, so every write that must be atomic (a batch of calls or
records, a manifest, a migration) runs in a real `BEGIN IMMEDIATE … COMMIT` (`transaction`): a
process killed inside one leaves the store as it was before it. Schema: `cai.store.migrations`.
"""

import os
import time
from pathlib import Path

from cai.store import health as store_health
from cai.store.files import (  # noqa: F401 - DB_NAME, copy_store, dumps, take_lock: the store's names
    DB_NAME,
    _open_read_only,
    _open_writable,
    copy_store,
    dumps,
    take_lock,
)
from cai.store.manifests import Manifests, _DroppedWriter
from cai.store.migrations import MIGRATIONS, migrate, transaction  # noqa: F401 - where tests take them
from cai.store.review_rows import ReviewRows
from cai.store.run_rows import RunRows


class Store(Manifests, ReviewRows, RunRows):
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
