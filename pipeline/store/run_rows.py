"""The run store's rows about runs and their keep: the runs, their artifacts, and what `cai gc`
deletes (a mixin of `Store`; only the store touches the database)."""

import time

from cai.store.files import dumps
from cai.store.migrations import transaction


class RunRows:

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
