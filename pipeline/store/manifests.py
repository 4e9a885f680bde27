"""The store's manifests: each stage's current outputs, as lists of record ids kept in rows.

A stage of a million records lists a million ids: they are never one JSON value in memory. A
stage writes its ids chunk by chunk with the records they name (one transaction per chunk, under
a pending list), and `finish` names the list by its content and marks the stage done in one
more transaction. Readers page through a list by position. Lists are content-addressed
(`ids-<hash>`), so a run's history names the lists it saw and `cai gc` drops the ones no kept
run or manifest names. Part of the store: nothing else touches these tables.
"""

import hashlib
import json
import time

from cai.store.migrations import transaction

PAGE = 5000  # ids per read: SQLite pages through a list by position, never holding a cursor


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


class ManifestWriter:
    """A stage's outputs as they are made: `write(records, ids)` stores records and appends
    ids to the stage's pending list in one transaction; `finish(meta)` marks the stage done.

    The digest is the one `put_manifest` always made: sha256 of the ids as a JSON list, the
    meta, and each distinct listed record's stored text in id order; it is computed as the ids
    come and from the store, so it never needs them all at once."""

    def __init__(self, store, stage: str):
        self.store, self.stage = store, stage
        self.pending = f"pending:{stage}"
        self.count = 0
        self._ids_json = hashlib.sha256(b"[")
        with transaction(store.db):  # a crashed stage's half list goes
            store.db.execute("DELETE FROM id_lists WHERE list=?", (self.pending,))

    def write(self, records=(), ids=None):
        """Store (id, kind, data) records and list `ids` (default: the records' ids), at once."""
        ids = [r[0] for r in records] if ids is None else list(ids)
        rows = []
        for rid in ids:
            self._ids_json.update(((", " if self.count else "") + _dumps(rid)).encode())
            rows.append((self.pending, self.count, rid))
            self.count += 1
        with transaction(self.store.db):
            self.store._insert_records(records)
            self.store.db.executemany("INSERT INTO id_lists (list, pos, id) VALUES (?, ?, ?)", rows)

    def finish(self, meta: dict) -> str:
        """Mark the stage done with `meta`; returns its digest."""
        db, meta_json = self.store.db, _dumps(meta)
        self._ids_json.update(b"]")
        name = "ids-" + self._ids_json.hexdigest()[:20]
        h = self._ids_json.copy()
        h.update(f"\n{meta_json}".encode())
        for rid, data in db.execute(
                "SELECT DISTINCT l.id, r.data FROM id_lists l JOIN records r ON r.id = l.id "
                "WHERE l.list=? ORDER BY l.id", (self.pending,)):
            h.update(f"\n{rid}\t{data}".encode())
        digest = h.hexdigest()[:20]
        with transaction(db):
            if db.execute("SELECT 1 FROM id_lists WHERE list=? LIMIT 1", (name,)).fetchone():
                db.execute("DELETE FROM id_lists WHERE list=?", (self.pending,))
            else:
                db.execute("UPDATE id_lists SET list=? WHERE list=?", (name, self.pending))
            db.execute("INSERT OR REPLACE INTO manifests (stage, ids, meta, updated, digest, run, "
                       "list, count) VALUES (?, '[]', ?, ?, ?, ?, ?, ?)",
                       (self.stage, meta_json, time.time(), digest, self.store.run_id, name,
                        self.count))
        return digest


class _DroppedWriter(ManifestWriter):
    """What a follower of a multi-process launch gets: writes nothing."""

    def __init__(self, store, stage: str):
        self.count = 0

    def write(self, records=(), ids=None):
        self.count += len(records if ids is None else ids)

    def finish(self, meta: dict) -> str:
        return ""


class Manifests:
    """The store's manifest methods (mixed into `Store`)."""

    def manifest_writer(self, stage: str) -> ManifestWriter:
        return ManifestWriter(self, stage)

    def put_manifest(self, stage: str, ids: list, meta: dict):
        """A stage's current outputs, marked done, in one go (small lists)."""
        writer = self.manifest_writer(stage)
        if ids:
            writer.write(ids=ids)
        writer.finish(meta)

    def _manifest_row(self, stage: str):
        if self._has_lists():
            return self.db.execute("SELECT ids, meta, list, count FROM manifests WHERE stage=?",
                                   (stage,)).fetchone()
        row = self.db.execute("SELECT ids, meta FROM manifests WHERE stage=?", (stage,)).fetchone()
        return row and (*row, None, None)

    def _has_lists(self) -> bool:
        """A store from before lists (read, not migrated, by `cai history`) keeps ids inline."""
        if getattr(self, "_lists", None) is None:
            self._lists = "list" in {r[1] for r in self.db.execute("PRAGMA table_info(manifests)")}
        return self._lists

    def get_manifest(self, stage: str):
        """{"ids": [...], "meta": {...}} of a stage's current manifest (all ids at once: for the
        small manifests and the commands that read a run whole; stages page with
        `manifest_pages`)."""
        row = self._manifest_row(stage)
        if row is None:
            return None
        meta = self._loads(row[1], f"the manifest of {stage}", dict)
        if row[2] is None:
            return {"ids": self._loads(row[0], f"the manifest of {stage}", list), "meta": meta}
        return {"ids": self.list_ids(row[2], row[3], f"the manifest of {stage}"), "meta": meta}

    def manifest_meta(self, stage: str) -> dict | None:
        row = self._manifest_row(stage)
        return None if row is None else self._loads(row[1], f"the manifest of {stage}", dict)

    def manifest_list(self, stage: str) -> tuple[str | None, int]:
        """(the name of the id list a stage's manifest holds, its length); (None, n) for a
        manifest written before lists, whose ids are inline."""
        row = self._manifest_row(stage)
        if row is None:
            return None, 0
        if row[2] is None:
            return None, len(self._loads(row[0], f"the manifest of {stage}", list))
        return row[2], row[3]

    def manifest_pages(self, stage: str, size: int = PAGE):
        """A stage's manifest ids, `size` at a time, in order."""
        name, count = self.manifest_list(stage)
        if name is None:
            ids = self.get_manifest(stage)["ids"] if count else []
            for i in range(0, len(ids), size):
                yield ids[i:i + size]
            return
        yield from self.list_pages(name, count, size, f"the manifest of {stage}")

    def list_pages(self, name: str, count: int, size: int = PAGE, where: str = "an id list"):
        for start in range(0, count, size):
            ids = [r[0] for r in self.db.execute(
                "SELECT id FROM id_lists WHERE list=? AND pos>=? AND pos<? ORDER BY pos",
                (name, start, start + size))]
            if len(ids) != min(size, count - start):
                from cai.store import health as store_health
                raise store_health.damaged(self.run_dir / "cai.sqlite",
                                           f"{where} lost ids (list {name})")
            yield ids

    def list_ids(self, name: str, count: int | None = None, where: str = "an id list") -> list:
        if count is None:
            count = self.db.execute("SELECT COUNT(*) FROM id_lists WHERE list=?",
                                    (name,)).fetchone()[0]
        return [i for page in self.list_pages(name, count, PAGE, where) for i in page]

    def list_count(self, name: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM id_lists WHERE list=?", (name,)).fetchone()[0]

    def delete_lists_except(self, keep: set) -> int:
        """Drop every id list not in `keep` (pending lists of a crashed stage too), but never
        the list of a current manifest, whichever stage wrote it (a reward model's human-only
        twin, evaluate, an ensemble): without its list a manifest reads as damage."""
        current = {r[0] for r in self.db.execute(
            "SELECT list FROM manifests WHERE list IS NOT NULL")}
        keep = set(keep) | current
        names = [r[0] for r in self.db.execute("SELECT DISTINCT list FROM id_lists")]
        return self._change_in("DELETE FROM id_lists WHERE list IN ({marks})",
                               [n for n in names if n not in keep])

    def listed_record_ids(self, names) -> set:
        """Every record id the id lists `names` name (what `cai gc` keeps)."""
        return {r[0] for r in self._select_in(
            "SELECT DISTINCT id FROM id_lists WHERE list IN ({marks})", names)}

    def manifest_digest(self, stage: str) -> str | None:
        """The digest of a stage's current manifest (None: no manifest, or one from before
        digests were kept)."""
        row = self.db.execute("SELECT digest FROM manifests WHERE stage=?", (stage,)).fetchone()
        return row[0] if row else None

    def manifest_runs(self) -> dict:
        """stage -> the run that wrote its current manifest (None: before runs were recorded)."""
        return dict(self.db.execute("SELECT stage, run FROM manifests ORDER BY stage"))

    def manifest_reuse(self, stage: str) -> dict | None:
        row = self.db.execute("SELECT reuse FROM manifests WHERE stage=?", (stage,)).fetchone()
        return self._loads(row[0], f"the reuse record of {stage}", (dict, type(None))) \
            if row and row[0] else None

    def set_manifest_reuse(self, stage: str, reuse: dict):
        with transaction(self.db):
            self.db.execute("UPDATE manifests SET reuse=? WHERE stage=?", (_dumps(reuse), stage))
