"""The call cache every run directory on this machine shares: model calls by content address.

A model call is a function of its key (model identity, kind, parameters, messages, seed, sample:
`pipeline.client`), so its answer can serve any run directory that asks it again: a new run
directory with the same judge, calibration slice and prompts makes no repeated calls. The
per-run store keeps its invariants: a call answered from here is copied into the run's own
store, which still records every call the run used (gc, history and provenance read only that).

One SQLite file (`models.shared_cache`; 'auto' is `calls.sqlite` in cai's cache directory, or
`$CAI_CALL_CACHE`; 'off' disables it). Only successful calls are shared: a failure says
something about one run's server, not about the call. Several cai processes may use it at once
(WAL; a write waits up to 30 s). A cache that cannot be opened or read is a warning, never a
failed run: the calls are made instead.
"""

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL, request TEXT NOT NULL,
    response TEXT NOT NULL, created REAL NOT NULL)"""


def shared_cache_path(setting: str) -> Path | None:
    """Where the shared cache lives for a `models.shared_cache` setting (None: off)."""
    if setting == "auto":
        from .models import cache_dir
        setting = os.environ.get("CAI_CALL_CACHE", str(cache_dir() / "calls.sqlite"))
    return None if setting in ("", "off") else Path(setting).expanduser()


class SharedCalls:
    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._disable(exc)

    def _disable(self, exc: Exception):
        print(f"cai: warning: shared call cache {self.path} unusable ({exc}); making calls "
              "instead (models.shared_cache=off silences this)", file=sys.stderr)
        self.db = None

    def get(self, keys) -> dict:
        """key -> a stored call row (as `Store.put_calls` takes it) for the keys held here."""
        keys = list(keys)
        if self.db is None or not keys:
            return {}
        out = {}
        try:
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                rows = self.db.execute("SELECT key, model, kind, request, response FROM calls WHERE "
                                       f"key IN ({','.join('?' * len(part))})", part).fetchall()
                for key, model, kind, request, response in rows:
                    out[key] = {"key": key, "model": model, "kind": kind,
                                "request": json.loads(request), "response": json.loads(response),
                                "error": None}
        except (sqlite3.Error, ValueError) as exc:
            self._disable(exc)
            return {}
        return out

    def put(self, rows):
        """Keep the successful calls of a batch."""
        good = [r for r in rows if r.get("error") is None and r.get("response") is not None]
        if self.db is None or not good:
            return
        now = time.time()
        try:
            with self.db:
                self.db.executemany(
                    "INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?)",
                    [(r["key"], r["model"], r["kind"], json.dumps(r["request"], ensure_ascii=False),
                      json.dumps(r["response"], ensure_ascii=False), now) for r in good])
        except sqlite3.Error as exc:
            self._disable(exc)

    def close(self):
        if self.db is not None:
            self.db.close()
