"""The call cache shared across run directories: a new run directory with the same judge,
slice and prompts makes no repeated calls, and its own store still records every call used."""

import pytest
from conftest import small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store
from cai.store.shared_calls import SharedCalls


def _run(run_dir, cache, **extra):
    lines = []
    metrics = run_stages(small_config(run_dir, **{"models.shared_cache": str(cache), **extra}),
                         DATA_STAGES, echo=lines.append)
    return metrics, lines


def _calls(run_dir) -> int:
    with Store(run_dir, lock=False) as store:
        return store.count_calls()


def test_a_second_run_directory_makes_no_repeated_calls(fake_backend, tmp_path):
    cache = tmp_path / "calls.sqlite"
    _, first = _run(tmp_path / "a", cache)
    made = sum(b.generate_calls + b.choice_calls for b in fake_backend)
    assert made > 0
    _, second = _run(tmp_path / "b", cache)
    assert sum(b.generate_calls + b.choice_calls for b in fake_backend) == made  # not one call more
    assert second[-1].split()[2] == "0"  # "total  N.Ns  0 model calls; ..."
    assert _calls(tmp_path / "b") == _calls(tmp_path / "a")  # every call used is recorded
    for name in ("prefs.jsonl", "sft.jsonl"):
        assert (tmp_path / "a" / "dataset" / name).read_bytes() == \
            (tmp_path / "b" / "dataset" / name).read_bytes()


def test_off_means_off_and_a_broken_cache_is_only_a_warning(fake_backend, tmp_path, capsys):
    _run(tmp_path / "a", "off")
    made = sum(b.generate_calls + b.choice_calls for b in fake_backend)
    _run(tmp_path / "b", "off")
    assert sum(b.generate_calls + b.choice_calls for b in fake_backend) == 2 * made
    broken = tmp_path / "dir-not-file"
    broken.mkdir()
    _run(tmp_path / "c", broken)
    assert "shared call cache" in capsys.readouterr().err
    assert _calls(tmp_path / "c") == _calls(tmp_path / "a")


def test_failures_are_not_shared(tmp_path):
    cache = SharedCalls(tmp_path / "calls.sqlite")
    row = {"key": "k", "model": "m", "kind": "generate", "request": {"messages": []}}
    cache.put([{**row, "response": None, "error": "HTTP 500"},
               {**row, "key": "k2", "response": {"text": "hi"}, "error": None}])
    assert list(cache.get(["k", "k2"])) == ["k2"]
    assert cache.get(["k2"])["k2"]["response"] == {"text": "hi"}
    cache.close()


def _row(key: str, text: str = "hi") -> dict:
    return {"key": key, "model": "m", "kind": "generate", "request": {"messages": []},
            "response": {"text": text}, "error": None}


def test_a_cache_of_an_older_key_scheme_is_emptied_not_misread(tmp_path):
    import sqlite3
    path = tmp_path / "calls.sqlite"
    old = sqlite3.connect(path)  # the first shared cache: no version, keys of the old identity
    old.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT "
                "NULL, request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)")
    old.execute("INSERT INTO calls VALUES ('k', 'm', 'generate', '{}', '{\"text\": \"old\"}', 0)")
    old.commit()
    old.close()
    cache = SharedCalls(path)
    assert cache.get(["k"]) == {}
    cache.put([_row("k", "new")])
    assert cache.get(["k"])["k"]["response"] == {"text": "new"}
    assert cache.db.execute("PRAGMA user_version").fetchone()[0] >= 2
    cache.close()


def test_an_unreadable_answer_is_a_miss_not_a_crash(tmp_path):
    cache = SharedCalls(tmp_path / "calls.sqlite")
    cache.put([_row("good")])
    bad = {"list": "[1, 2]", "junk": "not json", "none": '{"text": null}',
           # the right keys, wrongly shaped answers: each used to crash the stage reading it
           "words": '{"logprobs": ["a", "b"]}', "nan": '{"logprobs": [NaN, -1.0]}',
           "empty": '{"logprobs": []}', "nested": '{"text": {"text": "x"}}',
           "bools": '{"logprobs": [true, false]}'}
    for key, response in bad.items():
        cache.db.execute("INSERT INTO calls VALUES (?, 'm', 'generate', '{}', ?, 0, 0)", (key, response))
    assert list(cache.get(["good", *bad])) == ["good"]
    assert cache.unusable == len(bad)
    cache.close()


def test_a_garbage_cache_path_in_the_environment_is_one_line(tmp_path, monkeypatch):
    from cai.errors import ConfigError
    from cai.store.shared_calls import shared_cache_path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAI_CALL_CACHE", "garbage value")
    with pytest.raises(ConfigError, match="CAI_CALL_CACHE must be 'off' or an absolute path"):
        shared_cache_path("auto")
    assert list(tmp_path.iterdir()) == []  # no stray database was made
    monkeypatch.setenv("CAI_CALL_CACHE", "off")
    assert shared_cache_path("auto") is None


def test_the_cache_is_bounded_least_recently_used_first(tmp_path):
    cache = SharedCalls(tmp_path / "calls.sqlite", max_mb=0.25)
    big = "x" * 4000
    cache.put([_row(f"early{i}", big) for i in range(10)])
    cache.get([f"early{i}" for i in range(5)])  # used again: these stay longest
    for n in range(20):
        cache.put([_row(f"late{n}-{i}", big) for i in range(5)])
    assert cache.size() <= 0.25 * 2**20
    kept = cache.get([f"early{i}" for i in range(10)])
    assert cache.count() < 110 and not set(kept) & {f"early{i}" for i in range(5, 10)}
    cache.close()


def test_gc_shared_trims_the_cache_to_a_size(tmp_path, monkeypatch):
    import subprocess
    import sys
    path = tmp_path / "calls.sqlite"
    cache = SharedCalls(path)
    cache.put([_row(f"k{i}", "y" * 4000) for i in range(200)])
    cache.close()
    out = subprocess.run([sys.executable, "-m", "cai.cli", "gc", "--run-dir", str(tmp_path / "r"),
                          "--set", f"models.shared_cache={path}", "--shared", "0.2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "removed" in out.stdout and path.stat().st_size <= 0.25 * 2**20
