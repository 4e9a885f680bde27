"""A damaged run store ends every command in one line naming the file, `cai store check` says
what is readable, and `cai store repair` salvages it into a fresh store, keeping the damaged
file: one test per kind of damage, over every command that opens a store."""

import random
import shutil
import sqlite3
from contextlib import closing

import pytest
from conftest import cai

READERS = [["history"], ["diff"], ["plan"], ["gc"], ["check"], ["review", "stats"],
           ["review", "export"], ["run", "--dry-run"]]

def _sql(statement):
    def damage(db):
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(statement)
    return damage


def _overwrite_table_page(db):
    """Garbage over the root page of the records table: SQLite's structure itself is broken."""
    with closing(sqlite3.connect(db)) as conn:
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='records'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[(page - 1) * size: page * size] = random.Random(page).randbytes(size)
    db.write_bytes(bytes(data))


def _directory(db):
    db.unlink()
    (db / "something").mkdir(parents=True)


DAMAGES = {
    "cut in half": lambda db: db.write_bytes(db.read_bytes()[:db.stat().st_size // 2]),
    "cut to its header": lambda db: db.write_bytes(db.read_bytes()[:100]),
    "cut to its first page": lambda db: db.write_bytes(db.read_bytes()[:4096]),
    "zero bytes": lambda db: db.write_bytes(b""),
    "random bytes": lambda db: db.write_bytes(random.Random(1).randbytes(db.stat().st_size)),
    "a corrupted table page": _overwrite_table_page,
    "a run summary that is not JSON": _sql("UPDATE runs SET summary = '{not json'"),
    "a manifest that is not JSON": _sql("UPDATE manifests SET meta = '[1, 2' WHERE stage = 'label'"),
    "a directory where the file should be": _directory,
}


IN_A_ROW = {"a run summary that is not JSON", "a manifest that is not JSON"}


def _damage(small_store, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(small_store, run)
    DAMAGES[name](run / "cai.sqlite")
    return run


@pytest.fixture(params=list(DAMAGES))
def damaged_run(request, small_store, tmp_path, fake_backend):
    return _damage(small_store, tmp_path, request.param)


@pytest.fixture(params=[name for name in DAMAGES if name not in IN_A_ROW])
def damaged_file_run(request, small_store, tmp_path, fake_backend):
    return _damage(small_store, tmp_path, request.param)


def _content_only(run) -> bool:
    """The file is sound and a JSON column inside it is not: a command that never reads that
    row answers correctly."""
    try:
        with closing(sqlite3.connect(f"file:{run / 'cai.sqlite'}?mode=ro", uri=True)) as conn:
            return conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    except sqlite3.Error:
        return False


def _one_line_naming_the_store(code, err, run):
    assert code == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(f"cai: error: {run / 'cai.sqlite'}: "), err


def test_every_command_ends_a_damaged_store_in_one_line(damaged_run):
    content_only, found = _content_only(damaged_run), 0
    for args in READERS:
        code, _, err = cai(damaged_run, *args)
        assert "Traceback" not in err and err.count("\n") == (code != 0), (args, err)
        if content_only and "damaged" not in err:  # a command that never reads the bad row
            continue
        _one_line_naming_the_store(code, err, damaged_run)
        assert "cai store repair" in err
        found += 1
    assert found >= 1


def test_a_run_on_a_damaged_store_stops_instead_of_starting_over(damaged_file_run):
    db = damaged_file_run / "cai.sqlite"
    before = db.read_bytes() if db.is_file() else None
    code, _, err = cai(damaged_file_run, "run", "--to", "generate")
    _one_line_naming_the_store(code, err, damaged_file_run)
    assert (db.read_bytes() if db.is_file() else None) == before


def test_check_says_it_is_damaged_and_repair_salvages_keeping_the_file(damaged_run):
    db = damaged_run / "cai.sqlite"
    before = db.read_bytes() if db.is_file() else None
    code, out, err = cai(damaged_run, "store", "check")
    assert code == 1 and "cai store repair" in out and not err, (out, err)

    code, out, err = cai(damaged_run, "store", "repair")
    assert code == 0 and not err, err
    kept = [p for p in damaged_run.iterdir() if p.name.startswith("cai.sqlite.damaged-")]
    assert len(kept) == 1 and (kept[0].read_bytes() if kept[0].is_file() else None) == before
    assert cai(damaged_run, "store", "check")[0] == 0
    code, _, err = cai(damaged_run, "history")
    assert code == 0, err
    code, _, err = cai(damaged_run, "run", "--to", "pairs")
    assert code == 0, err


def test_repair_keeps_every_readable_row(small_store, tmp_path, fake_backend):
    """A damaged row costs that row: the calls and records of the healthy rest all stay."""
    run = tmp_path / "run"
    shutil.copytree(small_store, run)
    counts = _counts(run / "cai.sqlite")
    _sql("UPDATE runs SET summary = 'oops'")(run / "cai.sqlite")
    assert cai(run, "store", "repair")[0] == 0
    assert _counts(run / "cai.sqlite") == counts
    code, out, _ = cai(run, "history")
    assert code == 0 and "\n" in out


def _counts(db):
    with closing(sqlite3.connect(db)) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("calls", "records", "manifests", "runs")}


def test_a_healthy_store_needs_no_repair(small_store, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_store, run)
    code, out, _ = cai(run, "store", "check")
    assert code == 0 and "integrity check: ok" in out
    code, out, _ = cai(run, "store", "repair")
    assert code == 0 and "nothing to repair" in out
    assert not [p for p in run.iterdir() if "damaged" in p.name]


def test_a_store_a_newer_cai_wrote_is_read_not_written(small_store, tmp_path, fake_backend):
    run = tmp_path / "run"
    shutil.copytree(small_store, run)
    with closing(sqlite3.connect(run / "cai.sqlite")) as conn, conn:
        conn.execute("INSERT INTO _migrations VALUES ('_m999_from_the_future', 0)")
    before = (run / "cai.sqlite").read_bytes()
    code, _, err = cai(run, "run", "--to", "generate")
    assert code == 2 and "written by a newer cai (schema _m999_from_the_future)" in err
    assert err.count("\n") == 1 and (run / "cai.sqlite").read_bytes() == before
    code, out, _ = cai(run, "history")
    assert code == 0 and "finished" in out
