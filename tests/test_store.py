import sqlite3

import pytest

from pipeline.errors import RunLocked
from pipeline.store import MIGRATIONS, Store, migrate


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
        store.put_records([("r1", "response", {"text": "changed"})])  # an id names its content
        assert store.get_records(["r1"]) == {"r1": {"text": "a"}}
        store.put_manifest("generate", ["r1"], {"n": 1})
        assert store.get_manifest("generate") == {"ids": ["r1"], "meta": {"n": 1}}
        assert store.get_manifest("critique") is None


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    with Store(tmp_path):
        with pytest.raises(RunLocked, match="another cai process"):
            Store(tmp_path)
    Store(tmp_path).close()  # free again once the first closed
