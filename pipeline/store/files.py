"""The store's file: made whole before it takes its name, opened checked for writing or so that
reading writes nothing, copied as one snapshot, and locked to one writer."""

import fcntl
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from cai.errors import RunLocked
from cai.store import health as store_health
from cai.store.migrations import migrate

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
