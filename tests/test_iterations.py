"""Iterations: each round's tuned policy generates the next round's data; rerun and resume
hold per iteration; stopping rules; the per-iteration table and plot."""

import json

import pytest
import yaml
from conftest import small_config

from cai.runs.iterations import stop_reason
from cai.runs.runner import run_iterations
from cai.stages import STAGES
from cai.store.core import ReadOnlyStore
from cai.store.iterations import iteration_dir


def _config(tmp_path, tiny_model_dir, **extra):
    """A tiny real policy (trained each iteration) and the scripted judge (it makes pairs)."""
    return small_config(tmp_path, policy=f"transformers:{tiny_model_dir}", **{
        "critique.rounds": 1, "calibration.use_trust": "false", "prompts.limit": 3,
        "evaluate.limit": 2, **extra})


def _lines_by_iteration(lines: list[str]) -> dict:
    """iteration -> {stage: its printed line}."""
    out, k = {}, None
    for line in lines:
        if line.startswith("== iteration "):
            k = int(line.split()[2])
        elif k and line.split() and line.split()[0] in STAGES:
            out.setdefault(k, {})[line.split()[0]] = line
    return out


def _calls(line: str) -> int:
    return int(line.split("; ")[2].split()[0])


def test_three_iterations_each_generate_with_the_previous_policy(tmp_path, tiny_model_dir,
                                                                fake_backend):
    cfg = _config(tmp_path, tiny_model_dir, **{"iterations.count": 3})
    lines = []
    rows = run_iterations(cfg, list(STAGES), echo=lines.append)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]  # 0: the base, as iteration 1 saw it
    prompts = []
    for k in (1, 2, 3):
        d = iteration_dir(tmp_path, k)
        used = yaml.safe_load((d / "config.yaml").read_text())
        with ReadOnlyStore(d) as store:
            made_by = {m for (m,) in store.db.execute("SELECT DISTINCT model FROM calls")}
            prompts.append({r["prompt_id"] for r in store.get_records(
                store.get_manifest("generate")["ids"]).values()})
            blend = store.get_manifest("blend")["meta"]["composition"]
        if k > 1:  # the previous iteration's tuned policy answered this iteration's prompts
            assert used["models"]["policy"] == "transformers:" + rows[k - 1]["policy"]
            assert used["models"]["policy"] in made_by
            assert blend["carried"] > 0  # earlier iterations' pairs, decayed
            assert rows[k]["policy"] != rows[k - 1]["policy"]
    assert not (prompts[0] & prompts[1]) and not (prompts[1] & prompts[2])  # fresh prompts
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["iteration"] for r in metrics["iterations"]] == [0, 1, 2, 3]
    assert all(r["kl"] is not None and r["win_rate"] is not None for r in metrics["iterations"][1:])
    assert "Per iteration" in (tmp_path / "summary.md").read_text()
    report = (tmp_path / "report.html").read_text()
    assert "Per iteration: refusal, compliance, win rate vs previous, KL" in report
    # nothing changed: the plan of every iteration is all cached, and history lists them all
    from cai.runs.plan import plan_iterations
    plans = plan_iterations(cfg)
    assert [p["iteration"] for p in plans] == [1, 2, 3]
    assert all(p["plan"] and p["plan"]["model_calls"] == 0 for p in plans)
    from click.testing import CliRunner

    from cai.cli import cli
    out = CliRunner().invoke(cli, ["history", "--run-dir", str(tmp_path)]).output
    assert "== iteration 2" in out and "== iteration 3" in out
    from test_report import render_in_chromium
    health = render_in_chromium(tmp_path / "report.html")
    assert health["errors"] == "0" and health["broken"] == "0" and health["loaded"] == health["plots"]


def test_a_run_killed_in_iteration_2_resumes_in_iteration_2(tmp_path, tiny_model_dir, monkeypatch,
                                                            fake_backend):
    from cai import stages
    # anchored to the original base: iteration 2's DPO loads it as its explicit reference
    cfg = _config(tmp_path, tiny_model_dir, **{"iterations.count": 2, "iterations.reference": "base"})
    original = stages.STAGES["critique"]

    def killed_in_iteration_2(ctx):
        if ctx.config.iterations.current == 2:
            raise KeyboardInterrupt
        return original(ctx)
    monkeypatch.setitem(stages.STAGES, "critique", killed_in_iteration_2)
    with pytest.raises(KeyboardInterrupt):
        run_iterations(cfg, list(STAGES), echo=lambda s: None)
    monkeypatch.setitem(stages.STAGES, "critique", original)
    lines = []
    rows = run_iterations(cfg, list(STAGES), echo=lines.append)
    by = _lines_by_iteration(lines)
    assert len(rows) == 3
    used = yaml.safe_load((iteration_dir(tmp_path, 2) / "config.yaml").read_text())
    assert used["train_policy"]["reference"] == cfg.models.policy
    assert all(_calls(line) == 0 for line in by[1].values())  # iteration 1: all cached
    assert all(" 0 made" in by[1][s] for s in ("train-sft", "train-rm", "train-policy"))
    assert _calls(by[2]["generate"]) == 0 and " 0 made" in by[2]["generate"]  # done before the kill
    assert _calls(by[2]["critique"]) > 0  # resumed where it stopped
    # an edit of iteration 1's policy inputs: the plan says iteration 2 is all to compute
    from cai.runs.plan import plan_iterations
    edited = cfg.model_copy(update={"train_policy": cfg.train_policy.model_copy(
        update={"beta": 0.3})})
    plans = plan_iterations(edited)
    assert plans[0]["plan"]["stages"][-2]["to_compute"] == 1 and plans[1]["plan"] is None
    assert "trained anew" in plans[1]["why"]


def _row(k, **kw):
    return {"iteration": k, "refusal": 0.1, "compliance": 0.9, "win_rate": 0.5, "kl": 0.01,
            "judge_pairs": 10, **kw}


def test_stopping_rules_say_why(tmp_path):
    cfg = small_config(tmp_path, **{"iterations.stop_metric": "refusal", "iterations.max_kl": 0.5})
    assert stop_reason(cfg, [_row(1)]) is None
    assert "refusal went 0.100 -> 0.100" in stop_reason(cfg, [_row(1), _row(2)])
    assert stop_reason(cfg, [_row(1), _row(2, refusal=0.3)]) is None
    assert "exceeds iterations.max_kl" in stop_reason(cfg, [_row(1, kl=0.9)])
    assert "cannot be checked" in stop_reason(cfg, [_row(1, judge_pairs=0)])


def test_iterations_that_stop_before_train_policy_are_refused(tmp_path, fake_backend):
    """Iteration 2 generates with iteration 1's tuned policy: a range that never trains one
    would hand it an older policy (from an earlier run's metrics)."""
    from cai.errors import ConfigError
    cfg = small_config(tmp_path, **{"iterations.count": 2})
    with pytest.raises(ConfigError, match="every iteration must run train-policy"):
        run_iterations(cfg, list(STAGES)[:list(STAGES).index("export") + 1], echo=lambda s: None)
