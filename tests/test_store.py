import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from cai.errors import RunLocked
from cai.store import migrations
from cai.store.core import DB_NAME, MIGRATIONS, Store, migrate, transaction


def test_blank_database_migrates_to_the_exact_schema(tmp_path):
    db = sqlite3.connect(tmp_path / "x.sqlite")
    assert migrate(db) == [fn.__name__ for fn in MIGRATIONS]
    assert migrate(db) == []  # idempotent
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "records", "manifests", "artifacts", "runs", "_migrations"} <= tables


def test_calls_records_and_manifests_round_trip(tmp_path):
    with Store(tmp_path) as store:
        store.put_calls([{"key": "k1", "model": "m", "kind": "generate", "request": {"a": 1},
                          "response": {"text": "hi"}},
                         {"key": "k2", "model": "m", "kind": "generate", "request": {},
                          "response": None, "error": "boom"}])
        got = store.get_calls(["k1", "k2", "k3"])
        assert got["k1"]["response"] == {"text": "hi"} and got["k2"]["error"] == "boom"
        assert "k3" not in got
        store.put_records([("r1", "response", {"text": "a"})])
        store.put_manifest("generate", ["r1"], {"n": 1})
        digest = store.manifest_digest("generate")
        # recomputed under the same id (a setting outside the id changed): the new one stays,
        # and the manifest listing it says its contents changed
        store.put_records([("r1", "response", {"text": "changed"})])
        assert store.get_records(["r1"]) == {"r1": {"text": "changed"}}
        store.put_manifest("generate", ["r1"], {"n": 1})
        assert store.manifest_digest("generate") != digest
        assert store.get_manifest("generate") == {"ids": ["r1"], "meta": {"n": 1}}
        assert store.get_manifest("critique") is None


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    with Store(tmp_path):
        with pytest.raises(RunLocked, match="another cai process"):
            Store(tmp_path)
    Store(tmp_path).close()  # free again once the first closed


def test_a_batch_is_one_transaction(tmp_path):
    with Store(tmp_path) as store:
        with pytest.raises(KeyboardInterrupt):
            with transaction(store.db):
                store.db.execute("INSERT INTO records VALUES ('r1', 'x', '{}', 0)")
                raise KeyboardInterrupt
        assert store.count_records() == 0  # rolled back: nothing half-written


def _old_store(run_dir, monkeypatch, applied: int = 3):
    """A store as an older cai left it: only the first `applied` migrations."""
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:applied])
    with Store(run_dir) as store:
        store.put_records([("r1", "response", {"text": "kept"})])
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)


KILL_MID_MIGRATION = """
import os, signal, sys
sys.path.insert(0, {root!r})
from cai.store import core as store, migrations
real = migrations._add_column
def add_then_die(db, table, column):
    real(db, table, column)
    if column.startswith("reuse"):
        os.kill(os.getpid(), signal.SIGKILL)  # between the migration's two statements
migrations._add_column = add_then_die
store.Store({run_dir!r})
"""


def test_a_migration_killed_half_way_leaves_a_store_that_opens(tmp_path, monkeypatch):
    _old_store(tmp_path, monkeypatch)
    proc = subprocess.run([sys.executable, "-c", KILL_MID_MIGRATION.format(
        root=str(ROOT), run_dir=str(tmp_path))], capture_output=True)
    assert proc.returncode == -9
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert "_m004_manifest_digest" not in {r[0] for r in db.execute("SELECT name FROM _migrations")}
    assert "digest" not in {r[1] for r in db.execute("PRAGMA table_info(manifests)")}  # rolled back
    db.close()
    with Store(tmp_path) as store:  # opens, migrates, keeps the data
        assert store.get_records(["r1"]) == {"r1": {"text": "kept"}}
        store.put_manifest("generate", ["r1"], {})
        assert store.manifest_digest("generate")


def test_a_store_an_older_cai_left_half_migrated_opens(tmp_path, monkeypatch):
    _old_store(tmp_path, monkeypatch)
    db = sqlite3.connect(tmp_path / DB_NAME)  # what a non-atomic migration could leave
    db.execute("ALTER TABLE manifests ADD COLUMN digest TEXT")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        assert store.get_records(["r1"]) == {"r1": {"text": "kept"}}


OPEN_AT = """
import sys, time
sys.path.insert(0, {root!r})
from cai.store.core import Store
time.sleep(max(0.0, {at} - time.time()))
Store({run_dir!r}, lock=False).close()
"""


def test_processes_opening_an_old_store_at_once_all_succeed(tmp_path, monkeypatch):
    for attempt in range(5):
        run_dir = tmp_path / str(attempt)
        _old_store(run_dir, monkeypatch, applied=1)
        at = time.time() + 1.5  # after every interpreter has started
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT.format(
            root=str(ROOT), at=at, run_dir=str(run_dir))], stderr=subprocess.PIPE)
            for _ in range(4)]
        errors = [p.communicate()[1].decode() for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        db = sqlite3.connect(run_dir / DB_NAME)
        names = [r[0] for r in db.execute("SELECT name FROM _migrations")]
        assert sorted(names) == sorted(fn.__name__ for fn in MIGRATIONS)  # each applied once
        db.close()


def test_outputs_get_the_mode_a_plain_write_would_under_the_umask(tmp_path):
    """mkstemp/mkdtemp make owner-only files; teammates on a shared machine must read outputs."""
    import os

    from cai.fsutil import atomic_dir, atomic_write_text
    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                       (0o002, 0o664, 0o775)):
        old = os.umask(umask)
        try:
            atomic_write_text(tmp_path / f"report-{umask}.html", "x")
            with atomic_dir(tmp_path / f"dataset-{umask}") as d:
                (d / "a.jsonl").write_text("{}")
        finally:
            os.umask(old)
        assert (tmp_path / f"report-{umask}.html").stat().st_mode & 0o777 == file_mode
        assert (tmp_path / f"dataset-{umask}").stat().st_mode & 0o777 == dir_mode
