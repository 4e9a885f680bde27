"""The call cache shared across run directories: a new run directory with the same judge,
slice and prompts makes no repeated calls, and its own store still records every call used."""

from pipeline.runner import run_stages
from pipeline.shared_calls import SharedCalls
from pipeline.stages import DATA_STAGES
from pipeline.store import Store
from conftest import small_config


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
