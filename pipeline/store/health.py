"""Store health: a damaged run store ends in one line that names the file, what is wrong and
what to do, never in a traceback and never in a silent fresh start.

Every open checks the file before SQLite reads it (a regular file, not empty, a SQLite header,
as long as its header says it is) and the open connection after (`PRAGMA quick_check` up to
QUICK_CHECK_MAX, the schema this cai knows). `cai store check` runs the full integrity check;
`cai store repair` (`cai.store.repair`) salvages what can be read into a fresh store.
"""

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from cai.errors import StoreDamaged

HEADER = b"SQLite format 3\x00"
# quick_check reads every page: ~10 ms per MB here, so it runs at every open up to this size
# (about half a second); bigger stores get the cheap checks at open and the full one on demand.
QUICK_CHECK_MAX = 64 << 20
# table -> the migration that makes it: a table missing after its migration ran is damage
MADE_BY = {"calls": "_m001_initial", "records": "_m001_initial", "manifests": "_m001_initial",
           "artifacts": "_m001_initial", "runs": "_m001_initial", "review_items": "_m003_review",
           "review_labels": "_m003_review", "review_annotators": "_m007_review_access",
           "id_lists": "_m008_id_lists"}

# The last store opened: a damage SQLite only finds later, mid-query, is reported with its file.
_last_opened: list[Path] = []


def opened(db: Path):
    _last_opened[:] = [Path(db)]


def last_opened() -> Path | None:
    return _last_opened[0] if _last_opened else None


def cai_json(text, kind):
    """A JSON column's value, if it is what cai writes there (`kind`: its type or types); else
    ValueError: a byte flipped inside a page can leave SQLite's structure sound and the text
    not JSON."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError("not JSON") from None
    if not isinstance(value, kind):
        raise ValueError(f"not {kind}")
    return value


def damaged(db, what: str) -> StoreDamaged:
    run_dir, what = Path(db).parent, " ".join(what.split())
    return StoreDamaged(f"{db}: the run store is damaged ({what}); `cai store check --run-dir "
                        f"{run_dir}` says what is readable, `cai store repair --run-dir {run_dir}` "
                        "salvages it into a fresh store and keeps the damaged file beside it")


def findings(result: list[str], most: int) -> str:
    """SQLite's check results (rows of several lines each) as a part of one line."""
    found = [m for row in result for m in row.splitlines() if not m.startswith("***")]
    return "; ".join(found[:most]) + (f" (and {len(found) - most} more)" if len(found) > most else "")


def file_problem(db: Path) -> str | None:
    """What is wrong with the store file as a file, without SQLite; None if nothing is (or it
    does not exist yet). Only what no live writer can make true for a moment: a store is made
    whole before it gets its name, and its first page is written first."""
    if not db.exists() and not db.is_symlink():
        return None
    if not db.is_file():
        return "it is not a regular file" if db.exists() else "it is a dangling link"
    with open(db, "rb") as f:
        head = f.read(100)
    if not head:
        return "it is empty (0 bytes)"
    if len(head) < 100 or not head.startswith(HEADER):
        return "it is not a SQLite database: its header is wrong"
    return None


def size_problem(db: Path) -> str | None:
    """Whether the file is shorter than its header says: what SQLite's "malformed" means for a
    store cut short. Asked once SQLite has found damage (or by `cai store check`), never as a
    check of its own: a checkpoint running in another connection writes the header first."""
    try:
        size = db.stat().st_size
        with open(db, "rb") as f:
            head = f.read(100)
        wal = db.with_name(db.name + "-wal")
        log = wal.stat().st_size if wal.exists() else 0
    except OSError:
        return None
    if len(head) < 100 or log:  # a log holding frames replays what the file lacks
        return None
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages, counter, valid_for = (int.from_bytes(head[i:i + 4], "big") for i in (28, 24, 92))
    if counter == valid_for and pages and size < pages * page:
        return f"it is cut short: {size:,} bytes of the {pages * page:,} its header names"
    if page and size % page:
        return f"it ends inside a page ({size:,} bytes, pages of {page:,})"
    return None


def check_file(db: Path):
    problem = file_problem(db)
    if problem:
        raise damaged(db, problem)


def check_connection(db: Path, conn: sqlite3.Connection, pages: bool = True):
    """The open store's pages (quick_check where cheap) and schema; raises StoreDamaged."""
    if pages and db.stat().st_size <= QUICK_CHECK_MAX:
        result = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
        if result != ["ok"]:
            raise damaged(db, size_problem(db) or "SQLite's check: " + findings(result, 2))
    from cai.store.migrations import _applied
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    applied = _applied(conn)
    if not applied and not tables & set(MADE_BY):
        raise damaged(db, "it holds none of the tables of a cai store")
    # a store an older cai made lacks the newer tables: a read-only command reads it as it is
    missing = [t for t, made_by in MADE_BY.items() if t not in tables and made_by in applied]
    if missing:
        raise damaged(db, f"it lacks table{'s' * (len(missing) > 1)} {', '.join(missing)}")


@contextmanager
def checked(db: Path, conn: sqlite3.Connection):
    """Opening `conn` on `db`: damage found is one line, and the connection is closed."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        conn.close()
        if not is_damage(exc):
            raise
        raise damaged(db, size_problem(db) or describe(exc)) from None
    except BaseException:
        conn.close()
        raise


def check_not_newer(db: Path, conn: sqlite3.Connection):
    """A store a newer cai migrated has columns this one would leave unset: it may be read,
    not written."""
    from cai.store.migrations import MIGRATIONS, _applied
    ahead = sorted(str(m) for m in _applied(conn) - {fn.__name__ for fn in MIGRATIONS})
    if ahead:
        conn.close()
        raise StoreDamaged(f"{db}: the run store was written by a newer cai (schema "
                           f"{', '.join(ahead)}); this cai may read it (history, diff, plan) but "
                           "not write it: upgrade cai, or use another --run-dir")


def describe(exc: sqlite3.Error) -> str:
    return f"SQLite: {exc}"


def is_damage(exc: sqlite3.Error) -> bool:
    """A read that failed because the file is damaged, not because it is busy or the disk full."""
    text = str(exc).lower()
    busy = ("locked", "busy", "full", "readonly", "read-only", "interrupted")
    return isinstance(exc, sqlite3.DatabaseError) and not any(word in text for word in busy)
