"""Stage-level reuse: a data stage whose inputs are unchanged is skipped whole, and only then."""

import json
import shutil

from conftest import small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store
from cai.store.gc import collect_garbage


def _run(cfg) -> tuple[dict, list[str]]:
    lines = []
    return run_stages(cfg, DATA_STAGES, echo=lines.append), lines


def _reused(lines: list[str]) -> set[str]:
    return {line.split()[0] for line in lines if "inputs unchanged since run" in line}


def _counts(metrics: dict) -> dict:
    return {s: {k: v for k, v in row.items() if k != "seconds"} for s, row in metrics["stages"].items()}


def _calls(backends) -> int:
    return sum(b.generate_calls + b.choice_calls for b in backends)


def test_an_unchanged_rerun_skips_every_data_stage_with_the_same_results(tmp_path, fake_backend):
    first, _ = _run(small_config(tmp_path))
    dataset = (tmp_path / "dataset" / "prefs.jsonl").read_text()
    calls = _calls(fake_backend)
    again, lines = _run(small_config(tmp_path))
    assert _reused(lines) == set(DATA_STAGES)
    assert _calls(fake_backend) == calls
    assert (tmp_path / "dataset" / "prefs.jsonl").read_text() == dataset
    # What the report says of the data is what the run that derived it measured.
    for key in ("counts", "judge_agreement", "dataset"):
        assert again[key] == first[key]
    for stage in DATA_STAGES:
        assert again["stages"][stage]["dropped"] == first["stages"][stage]["dropped"]
        assert again["stages"][stage]["reused"] == first["stages"][stage]["made"]
    third, _ = _run(small_config(tmp_path))  # reused from run 1 again: the same counts
    assert _counts(third) == _counts(again)
    with Store(tmp_path) as store:
        assert json.loads(store.db.execute("SELECT summary FROM runs WHERE id=2").fetchone()[0]
                          )["reused"] == {s: 1 for s in DATA_STAGES}


def test_a_training_knob_reuses_the_data_but_a_data_knob_does_not(tmp_path, fake_backend):
    _run(small_config(tmp_path))
    _, lines = _run(small_config(tmp_path, **{"train_policy.learning_rate": 3e-4}))
    assert _reused(lines) == set(DATA_STAGES)
    _, lines = _run(small_config(tmp_path, **{"blend.human_weight": 2}))
    assert _reused(lines) == set(DATA_STAGES[:DATA_STAGES.index("blend")])


def test_an_edited_prompt_file_at_the_same_path_is_read_again(tmp_path, fake_backend):
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"How do I fix bicycle part {i}?"} for i in range(6)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = small_config(tmp_path / "run", **{"prompts.source": str(prompts)})
    _run(cfg)
    rows[0]["prompt"] = "How do I repair a flat tyre?"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calls = _calls(fake_backend)
    again, lines = _run(cfg)
    # every stage reading the prompts, or what was made from them, runs again; calibrate reads
    # only the judge's labels of the human pairs, which did not change
    assert _reused(lines) == {"calibrate"}
    assert again["stages"]["generate"]["model_calls"] == 2  # one prompt x 2 samples, new
    assert _calls(fake_backend) > calls


def test_a_stage_run_alone_with_other_settings_invalidates_the_later_ones(tmp_path, fake_backend):
    _run(small_config(tmp_path))
    run_stages(small_config(tmp_path, **{"generate.samples": 3}), ["generate"], echo=lambda s: None)
    lines = []
    metrics = run_stages(small_config(tmp_path), DATA_STAGES[1:], echo=lines.append)
    # Same config as run 1, but generate's manifest is not the one critique was made from
    # (calibrate reads only the judge's labels of the human pairs: those are unchanged).
    assert _reused(lines) == {"calibrate"}
    assert metrics["stages"]["critique"]["model_calls"] > 0  # the third samples' chains
    _, lines = _run(small_config(tmp_path))
    assert "generate" not in _reused(lines)  # its manifest is run 3's samples-3 one


def test_a_deleted_dataset_and_retry_failed_are_never_skipped(tmp_path, fake_backend):
    _run(small_config(tmp_path))
    shutil.rmtree(tmp_path / "dataset")
    _, lines = _run(small_config(tmp_path))
    assert _reused(lines) == set(DATA_STAGES) - {"export"}
    assert (tmp_path / "dataset" / "prefs.jsonl").exists()
    _, lines = _run(small_config(tmp_path, **{"models.retry_failed": "true"}))
    assert not _reused(lines)


def test_gc_keeps_the_calls_of_the_run_whose_outputs_were_reused(tmp_path, fake_backend):
    _run(small_config(tmp_path))
    _run(small_config(tmp_path))  # every stage reused from run 1: no call stamped by run 2
    with Store(tmp_path) as store:
        calls = store.count_calls()
        assert collect_garbage(store, keep_runs=1)["calls"] == 0
        assert store.count_calls() == calls


def test_keys_no_data_stage_reads_re_derive_nothing(tmp_path, fake_backend):
    _run(small_config(tmp_path))
    for key, value in (("evaluate.limit", 7), ("review.adjudicators", "[ann]"),
                       ("iterations.count", 3), ("models.batch_size", 5),
                       ("train_rm.learning_rate", 1e-3), ("openai.timeout", 9)):
        _, lines = _run(small_config(tmp_path, **{key: value}))
        assert _reused(lines) == set(DATA_STAGES), key


def test_plan_takes_the_runs_path(tmp_path, fake_backend):
    """`cai plan` goes through stage reuse as the run does: what the run skips, it skips."""
    from cai.runs.plan import plan
    _run(small_config(tmp_path))
    rows = {r["stage"]: r for r in plan(small_config(tmp_path, **{"evaluate.limit": 7}))["stages"]}
    for stage in DATA_STAGES:
        assert rows[stage]["why"] == {"inputs unchanged: skipped": 1}, stage
        assert rows[stage]["model_calls"] == rows[stage]["to_compute"] == 0
    rows = {r["stage"]: r for r in plan(small_config(tmp_path, **{"blend.human_weight": 2}))["stages"]}
    assert [s for s in DATA_STAGES if "inputs unchanged: skipped" in rows[s]["why"]] == \
        DATA_STAGES[:DATA_STAGES.index("blend")]
