"""`cai store check` and `cai store repair`: what a damaged run store still holds, and a fresh
store made of it.

Repair never deletes: the damaged file (and its write-ahead log) is renamed beside the new one,
`cai.sqlite.damaged-<time>`. Rows are read table by table from a copy, forwards until the first
unreadable page and then backwards from the end, the way SQLite's `.recover` salvages what it
can; a row whose JSON is not what cai wrote is dropped, and a stage manifest that names a lost
record is dropped too, so that stage runs again instead of reading half its outputs.
"""

import json
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path

from cai.store import health as store_health
from cai.store.migrations import MIGRATIONS, _applied, migrate, transaction

# table -> its JSON columns and the type each holds (None: the column may be NULL)
# table -> its JSON columns and what each holds, as `Store` reads them (None: may be NULL)
NULLABLE = type(None)
JSON_COLUMNS = {
    "calls": {"request": dict, "response": None},
    "records": {"data": dict},
    "manifests": {"ids": list, "meta": dict, "reuse": None},
    "artifacts": {"meta": dict},
    "runs": {"summary": (dict, NULLABLE)},
    "review_items": {"data": dict},
    "review_labels": {},
    "review_annotators": {},
    "id_lists": {},
}


def check(run_dir) -> tuple[bool, list[str]]:
    """(healthy, lines): the file, SQLite's full integrity check, the schema, each table."""
    db = Path(run_dir) / "cai.sqlite"
    if not db.exists() and not db.is_symlink():
        return True, [f"{db}: no store here yet"]
    problem = store_health.file_problem(db) or store_health.size_problem(db)
    if not _is_sqlite(db):
        return False, [f"{db}: damaged: {problem}; nothing in it is readable", _advice(run_dir)]
    lines, healthy = [f"{db}: {db.stat().st_size:,} bytes"], problem is None
    if problem:
        lines.append(f"damaged: {problem}")
    with tempfile.TemporaryDirectory() as tmp, closing(_open_copy(db, tmp)) as conn:
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        except sqlite3.DatabaseError as exc:
            result = [str(exc)]
        healthy &= result == ["ok"]
        lines.append("SQLite's integrity check: " + store_health.findings(result, 4))
        lines += _schema_lines(conn)
        for table in JSON_COLUMNS:
            rows, error, bad = _salvage_table(conn, table)
            healthy &= error is None and not bad
            lines.append(f"{table}: {len(rows):,} rows readable" + (
                f", then unreadable ({error})" if error else "") + (
                f", {bad:,} with JSON cai did not write" if bad else ""))
    if not healthy:
        lines.append(_advice(run_dir))
    return healthy, lines


def _schema_lines(conn) -> list[str]:
    try:
        applied = _applied(conn)
    except sqlite3.DatabaseError as exc:
        return [f"schema: unreadable ({exc})"]
    known = [fn.__name__ for fn in MIGRATIONS]
    behind = [m for m in known if m not in applied]
    ahead = sorted(str(name) for name in applied - set(known))
    return [f"schema: {len(applied)} migrations applied" + (
        f"; not yet: {', '.join(behind)} (a `cai` stage applies them)" if behind else "") + (
        f"; made by a newer cai: {', '.join(ahead)}" if ahead else "")]


def _advice(run_dir) -> str:
    return (f"`cai store repair --run-dir {run_dir}` salvages what is readable into a fresh "
            "store and keeps the damaged file beside it")


def repair(run_dir) -> list[str]:
    """Salvage the store of `run_dir` (whose lock the caller holds) into a fresh one."""
    run_dir = Path(run_dir)
    db = run_dir / "cai.sqlite"
    if not db.exists() and not db.is_symlink():
        return [f"{db}: no store here; nothing to repair"]
    healthy, _ = check(run_dir)
    if healthy:
        return [f"{db}: healthy; nothing to repair"]
    salvaged, lines = _salvage(db)
    kept = _set_aside(db)
    _write_fresh(db, salvaged)
    lines.append(f"the damaged store is kept as {kept}; the next `cai run` recomputes only what "
                 "was lost (cached calls and records that were read are reused)")
    return lines


def _salvage(db: Path) -> tuple[dict, list[str]]:
    salvaged, lines = {}, []
    if not _is_sqlite(db):
        return {}, [f"{db}: nothing readable ({store_health.file_problem(db)}); a fresh store "
                    "replaces it"]
    with tempfile.TemporaryDirectory() as tmp, closing(_open_copy(db, tmp)) as conn:
        for table in JSON_COLUMNS:
            rows, error, bad = _salvage_table(conn, table)
            if table == "runs":  # a run whose summary is lost is still a run: keep its row
                rows = [r if _json_ok(table, r) else {**r, "summary": None} for r in rows]
                bad, cleared = 0, bad
            salvaged[table] = [r for r in rows if _json_ok(table, r)]
            if table == "runs" and cleared:
                lines.append(f"runs: {cleared:,} summaries were not JSON and are cleared")
            lines.append(f"{table}: kept {len(salvaged[table]):,} rows" + (
                "; the rest of the table was unreadable" if error else "") + (
                f"; dropped {bad:,} whose JSON cai did not write" if bad else ""))
    dropped = _drop_broken_manifests(salvaged)
    if dropped:
        lines.append(f"stages whose outputs were partly lost, run again next time: {', '.join(dropped)}")
    return salvaged, lines


def _is_sqlite(db: Path) -> bool:
    """A regular file with a SQLite header: something SQLite can read rows of."""
    return db.is_file() and store_health.file_problem(db) is None


def _open_copy(db: Path, tmp) -> sqlite3.Connection:
    """A connection to a copy of the store and its log: reading the damaged file itself could
    checkpoint its log into it, and repair keeps it as it was."""
    copy = Path(tmp) / db.name
    for suffix in ("", "-wal"):
        src = db.with_name(db.name + suffix)
        if src.is_file():
            shutil.copyfile(src, Path(f"{copy}{suffix}"))
    conn = sqlite3.connect(copy, isolation_level=None)
    # A file shorter than its header says is refused whole unless the schema is writable: the
    # switch that lets SQLite read the pages that are there (as its own `.recover` does).
    conn.execute("PRAGMA writable_schema=ON")
    return conn


def _salvage_table(conn, table: str) -> tuple[list[dict], str | None, int]:
    """(rows read, the error that stopped reading, rows whose JSON is not cai's)."""
    try:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError as exc:
        return [], str(exc), 0
    if not columns:
        return [], "missing", 0
    rows, error = {}, None
    for order in ("ASC", "DESC"):
        try:
            for row in conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid {order}"):
                if row[0] in rows:
                    break
                rows[row[0]] = dict(zip(columns, row[1:]))
            if order == "ASC":
                break
        except sqlite3.DatabaseError as exc:
            error = error or str(exc)
    kept = [rows[k] for k in sorted(rows)]
    return kept, error, sum(not _json_ok(table, r) for r in kept)


def _json_ok(table: str, row: dict) -> bool:
    """Every JSON column of the row is what cai writes there (NULL where it may be)."""
    for column, kind in JSON_COLUMNS[table].items():
        text = row.get(column)
        if text is None:
            if kind is None or isinstance(kind, tuple) and NULLABLE in kind:
                continue
            return False
        try:
            store_health.cai_json(text, object if kind is None else kind)
        except ValueError:
            return False
    return True


def _drop_broken_manifests(salvaged: dict) -> list[str]:
    have = {r["id"] for r in salvaged.get("records", [])}
    lists = {}
    for row in salvaged.get("id_lists", []):
        lists.setdefault(row["list"], set()).add((row["pos"], row["id"]))
    dropped, kept = [], []
    for m in salvaged.get("manifests", []):
        listed = lists.get(m.get("list"), set())
        whole = m.get("list") is None or len({pos for pos, _ in listed}) == m.get("count")
        ids = {i for _, i in listed} if m.get("list") else set(json.loads(m["ids"]))
        (kept if whole and ids <= have else dropped).append(m)
    salvaged["manifests"] = kept
    return sorted(m["stage"] for m in dropped)


def _set_aside(db: Path) -> Path:
    kept = db.with_name(f"{db.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("-wal", "-shm", ""):
        src = db.with_name(db.name + suffix)
        if src.exists() or src.is_symlink():
            os.replace(src, Path(f"{kept}{suffix}"))
    return kept


def _write_fresh(db: Path, salvaged: dict):
    tmp = db.with_name(f".{db.name}.repair-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    with closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
        with transaction(conn):
            for table, rows in salvaged.items():
                columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
                for row in rows:
                    names = [c for c in columns if c in row]
                    conn.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES "
                                 f"({', '.join('?' * len(names))})", [row[c] for c in names])
    os.replace(tmp, db)
