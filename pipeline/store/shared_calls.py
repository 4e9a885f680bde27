"""The call cache every run directory on this machine shares: model calls by content address.

A model call is a function of its key (model identity, kind, parameters, messages, seed, sample:
`cai.backends.client`, with the identity from `cai.backends.identity`), so its answer can serve
any run directory that asks it again: a new run directory with the same judge, calibration
slice and prompts makes no repeated calls. The per-run store keeps its invariants: a call
answered from here is copied into the run's own store, which still records every call the run
used (gc, history and provenance read only that).

One SQLite file (`models.shared_cache`; 'auto' is `calls.sqlite` in cai's cache directory, or
`$CAI_CALL_CACHE`; 'off' disables it), with a schema version (`PRAGMA user_version`): rows of
an older key scheme are dropped when it is opened, since no key of this one can match them.
Only successful calls are shared: a failure says something about one run's server, not about
the call. The file is bounded (`models.shared_cache_max_mb`): the least recently used calls go
first, and `cai gc --shared` trims it on demand. Several cai processes may use it at once (WAL;
a write waits up to 30 s). A cache that cannot be opened or read is a warning, never a failed
run: the calls are made instead; a row that cannot be read is a miss, counted.
"""

import json
import math
import os
import sqlite3
import sys
import time
from pathlib import Path

from cai.errors import ConfigError
from cai.store.migrations import transaction

# 2: keys name models by `cai.backends.identity` (tokenizer, template, configs, server)
VERSION = 2
SCHEMA = """CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL, request TEXT NOT NULL,
    response TEXT NOT NULL, created REAL NOT NULL, used REAL NOT NULL)"""


def shared_cache_path(setting: str) -> Path | None:
    """Where the shared cache lives for a `models.shared_cache` setting (None: off)."""
    if setting == "auto":
        from cai.backends.weights import cache_dir
        setting = os.environ.get("CAI_CALL_CACHE", str(cache_dir() / "calls.sqlite"))
        if setting not in ("", "off") and not Path(setting).expanduser().is_absolute():
            # a stray value would silently create a database in whatever directory cai ran in
            raise ConfigError(f"CAI_CALL_CACHE must be 'off' or an absolute path to the shared "
                              f"call cache's SQLite file, got {setting[:80]!r}")
    return None if setting in ("", "off") else Path(setting).expanduser()


def _is_answer(resp) -> bool:
    """A generation ({"text": str}) or a choice ({"logprobs": [numbers]}: -inf is a choice the
    model cannot make; NaN and +inf are no answer)."""
    if not isinstance(resp, dict):
        return False
    if "text" in resp:
        return isinstance(resp["text"], str)
    lps = resp.get("logprobs")
    return isinstance(lps, list) and bool(lps) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and x != math.inf
        for x in lps)


class SharedCalls:
    def __init__(self, path: Path, max_mb: float = 2048):
        self.path, self.max_bytes = path, max_mb * 2**20
        self.unusable = 0  # rows with the right key but an answer that cannot be read
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self._upgrade()
        except (OSError, sqlite3.Error) as exc:
            self._disable(exc)

    def _upgrade(self):
        """Create the table, or drop one of an older key scheme (none of its keys can match)."""
        with transaction(self.db):
            if self.db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
                self.db.execute("DROP TABLE IF EXISTS calls")
                self.db.execute(f"PRAGMA user_version={VERSION}")
            self.db.execute(SCHEMA)
            self.db.execute("CREATE INDEX IF NOT EXISTS calls_used ON calls(used)")  # eviction

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
                marks = ",".join("?" * len(part))
                rows = self.db.execute("SELECT key, model, kind, request, response FROM calls "
                                       f"WHERE key IN ({marks})", part).fetchall()
                out.update(r for r in map(self._row, rows) if r)
            self._stamp(list(out))
        except sqlite3.Error as exc:
            self._disable(exc)
            return {}
        return out

    def _row(self, row):
        """(key, row) of a stored call, or None (counted) where its answer cannot be read."""
        key, model, kind, request, response = row
        try:
            resp = json.loads(response)
            if not _is_answer(resp):
                raise ValueError("not an answer")
            return key, {"key": key, "model": model, "kind": kind, "request": json.loads(request),
                         "response": resp, "error": None}
        except (ValueError, TypeError, RecursionError):
            if not self.unusable:
                print(f"cai: warning: shared call cache {self.path} holds answers cai cannot read; "
                      "they are asked again (counted)", file=sys.stderr)
            self.unusable += 1
            return None

    def _stamp(self, keys: list):
        """Mark hits as used now: the size bound evicts the least recently used calls."""
        now = time.time()
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            self.db.execute(f"UPDATE calls SET used=? WHERE key IN ({','.join('?' * len(part))})",
                            [now, *part])

    def put(self, rows):
        """Keep the successful calls of a batch, then hold the file to its bound."""
        good = [r for r in rows if r.get("error") is None and r.get("response") is not None]
        if self.db is None or not good:
            return
        now = time.time()
        try:
            with transaction(self.db):
                self.db.executemany(
                    "INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r["key"], r["model"], r["kind"], json.dumps(r["request"], ensure_ascii=False),
                      json.dumps(r["response"], ensure_ascii=False), now, now) for r in good])
            if self.size() > self.max_bytes:
                self.trim(self.max_bytes * 0.9)
        except sqlite3.Error as exc:
            self._disable(exc)

    def size(self) -> int:
        """Bytes the table's pages take (free pages aside)."""
        pages, free, size = (self.db.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size

    def trim(self, max_bytes: float) -> int:
        """Drop the least recently used calls until the table fits in `max_bytes`; returns
        how many went. Freed pages are reused by later writes (`cai gc --shared` vacuums)."""
        removed, total = 0, self.count()
        while self.size() > max_bytes and total > removed:
            step = max(1, (total - removed) // 10)
            removed += self.db.execute(
                "DELETE FROM calls WHERE key IN (SELECT key FROM calls ORDER BY used, key LIMIT ?)",
                (step,)).rowcount
        return removed

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] if self.db else 0

    def vacuum(self):
        self.db.execute("VACUUM")

    def close(self):
        if self.db is not None:
            self.db.close()
