"""Spill: rows sorted on disk, for a stage that must order more rows than it should hold.

A scratch SQLite file in a temporary directory (not the run's store: nothing in it outlives the
stage) takes rows in batches and hands them back in any order SQLite can sort by, one at a time.
The blend ranks a million pairs this way in the memory of a few thousand.
"""

import sqlite3
import tempfile
from pathlib import Path


class Spill:
    def __init__(self, columns: str):
        """`columns`: the table's column definitions, e.g. "prompt TEXT, weight REAL"."""
        self._dir = tempfile.TemporaryDirectory(prefix="cai-spill-")
        self.db = sqlite3.connect(Path(self._dir.name) / "spill.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(f"CREATE TABLE rows ({columns})")
        self._width = len(columns.split(","))

    def add(self, rows):
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * self._width)})", rows)
        self.db.execute("COMMIT")

    def sorted(self, order_by: str, columns: str = "*"):
        """Every row, ordered by `order_by` (SQL), one at a time."""
        yield from self.db.execute(f"SELECT {columns} FROM rows ORDER BY {order_by}")

    def close(self):
        self.db.close()
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
