"""The whole pipeline: fake backends for the data stages, a tiny real model end to end."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES  # noqa: E402

ALL_STAGES = DATA_STAGES + ["train-sft", "train-rm", "train-policy", "evaluate"]


def _dataset(run_dir):
    return (run_dir / "dataset" / "prefs.jsonl").read_text(), (run_dir / "dataset" / "sft.jsonl").read_text()


def test_data_stages_make_pairs_with_provenance(tmp_path, fake_backend):
    # Raw labels, every AI pair weighing 1: the fake judge is at chance and would earn weight 0.
    cfg = small_config(tmp_path, **{"calibration.use_trust": "false"})
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    rows = [json.loads(line) for line in (tmp_path / "dataset" / "prefs.jsonl").read_text().splitlines()]
    ai = [r for r in rows if r["kind"] == "critique-revision"]
    assert ai and any(r["source"] == "human" for r in rows)
    assert any(r["kind"] == "comparison" for r in rows)
    prov = json.loads(ai[0]["provenance"])
    assert prov["rounds"][0]["principle"] and prov["rounds"][0]["principle_version"]
    assert prov["rounds"][0]["critique"] and prov["policy"] == "fake:policy"
    assert ai[0]["prompt"][0]["role"] == "user" and ai[0]["chosen"][0]["role"] == "assistant"
    assert metrics["judge_agreement"]["n"] == 4  # the slice's 10 pairs less 6 held out
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "cai-default" in card and "prefs/train" in card


def _skipped(lines: list[str]) -> set[str]:
    return {line.split()[0] for line in lines if "inputs unchanged since run" in line}


def test_rerun_with_nothing_changed_makes_zero_model_calls(tmp_path, fake_backend):
    """The stage-level path: every data stage is skipped whole."""
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    first = _dataset(tmp_path)
    calls_before = sum(b.generate_calls + b.choice_calls for b in fake_backend)
    lines = []
    metrics = run_stages(small_config(tmp_path), DATA_STAGES, echo=lines.append)
    assert _skipped(lines) == set(DATA_STAGES)
    assert sum(b.generate_calls + b.choice_calls for b in fake_backend) == calls_before
    assert all(s["model_calls"] == 0 for s in metrics["stages"].values())
    assert _dataset(tmp_path) == first


def test_rerun_with_nothing_changed_makes_zero_model_calls_record_by_record(
        tmp_path, fake_backend, stage_reuse_off):
    """The record-level path every changed-input rerun relies on: no stage is skipped, every
    record is derived again from the call cache, and still no call is made and nothing new."""
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    first = _dataset(tmp_path)
    calls_before = sum(b.generate_calls + b.choice_calls for b in fake_backend)
    lines = []
    metrics = run_stages(small_config(tmp_path), DATA_STAGES, echo=lines.append)
    assert not _skipped(lines)
    assert sum(b.generate_calls + b.choice_calls for b in fake_backend) == calls_before
    assert all(s["model_calls"] == 0 and s["made"] == 0 for s in metrics["stages"].values())
    assert _dataset(tmp_path) == first


def test_the_record_level_rerun_test_fails_when_the_call_cache_forgets(
        tmp_path, fake_backend, stage_reuse_off, monkeypatch):
    """What makes the test above mean something: a call cache that forgets shows there (with
    stage reuse on, every stage would be skipped and hide it)."""
    from cai.store.core import Store
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    monkeypatch.setattr(Store, "get_calls", lambda self, keys: {})
    again = run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)["stages"]
    assert sum(s["model_calls"] for s in again.values()) > 0


def _chains(run_dir) -> dict:
    """response id -> the critique chain the last run made of it."""
    from cai.store.core import ReadOnlyStore
    with ReadOnlyStore(run_dir) as store:
        return {c["response_id"]: c for c in
                store.get_records(store.get_manifest("critique")["ids"]).values()}


def _redone(before: dict, after: dict, edited: str) -> tuple[set, int]:
    """What editing `edited`'s revision request must redo: the chains with a round that asked
    it for a revision, and the calls: each such revision, and every round after one that
    handed on a different text than before (its critique, verdict, and revision if it
    violates). Critiques and verdicts do not show the revision request: they stay cached."""
    def handed_on(r):
        return r.get("revision") if r.get("revision_status") == "kept" else None
    chains, calls = set(), 0
    for rid, chain in before.items():
        dirty = False
        for old, new in zip(chain["rounds"], after[rid]["rounds"]):
            if dirty:
                calls += 2 + new["violates"]
            elif old["principle"] == edited and old["violates"]:
                calls += 1
                chains.add(rid)
            dirty = dirty or handed_on(old) != handed_on(new)
    return chains, calls


def test_editing_one_principle_redoes_only_its_records(tmp_path, fake_backend):
    text = (ROOT / "principles.yaml").read_text()
    constitution = tmp_path / "principles.yaml"
    constitution.write_text(text)
    cfg = small_config(tmp_path / "run", constitution=str(constitution), **{"prompts.limit": 12})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    used = json.loads((tmp_path / "run" / "metrics.json").read_text())
    before = _chains(tmp_path / "run")
    # Edit the revision request of one principle: only chains it was asked to revise change.
    constitution.write_text(text.replace(
        "Please rewrite the assistant response to remove any and all dangerous",
        "Rewrite the reply to drop every dangerous"))
    again = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    after = _chains(tmp_path / "run")

    def answers(rounds):  # what the judge said, not which version of the principle it was
        return [{k: v for k, v in r.items() if k != "principle_version"} for r in rounds]
    changed = {rid for rid in after if answers(after[rid]["rounds"]) != answers(before[rid]["rounds"])}
    expected, calls = _redone(before, after, "dangerous-help")
    assert changed == expected and 0 < len(changed) < len(after)
    # every round under the edited principle names its new version (the record is replaced,
    # not kept from before the edit), and no other round's does
    versions = {(r["principle"], r["principle_version"]) for c in after.values() for r in c["rounds"]}
    old = {(r["principle"], r["principle_version"]) for c in before.values() for r in c["rounds"]}
    assert {p for p, _ in versions - old} == {"dangerous-help"}
    assert not {v for v in versions if v[0] == "dangerous-help"} & old
    assert again["stages"]["critique"]["model_calls"] == calls
    assert again["stages"]["generate"]["model_calls"] == 0
    assert used["constitution"]["content_version"] != again["constitution"]["content_version"]


def test_interrupted_run_resumes_to_the_same_dataset(tmp_path, fake_backend):
    run_stages(small_config(tmp_path / "clean"), DATA_STAGES, echo=lambda s: None)
    clean = _dataset(tmp_path / "clean")
    cfg = small_config(tmp_path / "broken")
    from cai import backends
    original = backends.BACKENDS["fake"]

    def failing(model, options):
        b = original(model, options)
        if model == "judge":
            b.fail_after = 10  # dies mid-critique, after some batches were stored
        return b
    backends.BACKENDS["fake"] = failing
    with pytest.raises(KeyboardInterrupt):
        run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    backends.BACKENDS["fake"] = original
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    assert metrics["stages"]["generate"]["model_calls"] == 0
    assert _dataset(tmp_path / "broken") == clean


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    """One whole run on the tiny model; its report kept aside for the browser."""
    tmp = tmp_path_factory.mktemp("tiny-run")
    spec = f"transformers:{tiny_model_dir}"
    # The random tiny judge earns no trust, which would leave SL-CAI off (trust gates it):
    # without trust every stage, SL-CAI SFT included, has data to train on.
    cfg = small_config(tmp, policy=spec, judge=spec, **{"critique.rounds": 1,
                                                        "calibration.use_trust": False})
    metrics = run_stages(cfg, ALL_STAGES, echo=lambda s: None)
    shutil.copy(tmp / "report.html", tmp / "report-first-run.html")
    return tmp, cfg, metrics


def test_a_report_after_a_data_change_leaves_out_models_of_the_old_dataset(tiny_run, tmp_path):
    """`cai run --to export` after a data change: the models and evaluation of the earlier
    dataset are named stale and their figures left out; every figure names its run."""
    src, cfg, first = tiny_run
    assert first["stale"] == [] and first["reward_model"]["heldout_accuracy"] is not None
    run = tmp_path / "run"
    shutil.copytree(src, run)
    changed = cfg.model_copy(update={"run_dir": str(run), "blend": cfg.blend.model_copy(
        update={"human_weight": 2.0})})
    metrics = run_stages(changed, DATA_STAGES, echo=lambda s: None)
    assert {"train-rm", "train-policy", "evaluate"} <= set(metrics["stale"])
    assert metrics["reward_model"]["heldout_accuracy"] is None and not metrics["evaluation"]["table"]
    assert metrics["ai_value"] is None
    assert "not shown, made from an earlier dataset" in (run / "summary.md").read_text()
    assert metrics["produced_by"]["blend"] == metrics["run"] != metrics["produced_by"]["train-rm"]
    # the data unchanged again, nothing is stale: the models are the current dataset's again
    again = run_stages(cfg.model_copy(update={"run_dir": str(run)}), DATA_STAGES, echo=lambda s: None)
    assert again["stale"] == [] and again["reward_model"]["heldout_accuracy"] is not None


def test_the_judges_agreement_is_said_to_be_on_cross_fitted_training_pairs(tiny_run):
    """The pairs the judge labels are training pairs calibrated by maps fit without them; the
    held-out human pairs are never shown to the judge, so the line must not say held-out."""
    src, _, _ = tiny_run
    summary = (src / "summary.md").read_text()
    assert "human training pairs, each calibrated by a map fit without it" in summary
    assert "held-out human pairs (both orders" not in summary
    assert "human training pairs (cross-fitted)" in (src / "report.html").read_text()


def test_whole_run_on_a_tiny_model_writes_every_artifact(tiny_run, tiny_model_dir):
    from cai.runs.plan import plan
    tmp_path, cfg, metrics = tiny_run
    d = tmp_path / "dataset"
    for name in ["prefs.jsonl", "prefs_test.jsonl", "sft.jsonl", "README.md", "prefs", "sft"]:
        assert (d / name).exists(), name
    from datasets import load_from_disk
    prefs = load_from_disk(str(d / "prefs"))
    assert set(prefs) == {"train", "test"} and len(prefs["test"]) == 6
    for path in (metrics["sft"]["path"], metrics["reward_model"]["path"], metrics["policy"]["path"]):
        assert (Path(path) / "model.safetensors").exists() and (Path(path) / "cai-model.json").exists()
    assert 0 <= metrics["reward_model"]["heldout_accuracy"] <= 1
    # the reward model keeps the lower half of the base's layers (train_rm.depth) and is saved so
    rm_config = json.loads((Path(metrics["reward_model"]["path"]) / "config.json").read_text())
    base_config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    assert rm_config["num_hidden_layers"] == base_config["num_hidden_layers"] // 2 >= 1
    ev = metrics["evaluation"]
    table = ev["table"]
    assert set(table) == {"base", "sft", "trained"} and table["trained"]["harmful"]["n"] == 3
    # every detector was measured against people; the best leads, and every cell has its n
    assert set(ev["detectors"]) == {"string", "judge"} and ev["labelled"] == 16
    assert ev["detectors"]["string"]["n"] == 16 and ev["lead"] in ev["detectors"]
    for row in table.values():
        assert set(row) == {"harmful", "unsafe", "safe"}
        for cell in row.values():
            assert cell["n"] == 3 and 0 <= cell["rate"] <= 1 and cell["detector"] == ev["lead"]
            assert cell["ci95"][0] <= cell["rate"] <= cell["ci95"][1]
    assert {(v["policy"], v["set"]) for v in ev["verdicts"]} == {
        (p, s) for p in ("sft", "trained") for s in ("harmful", "unsafe", "safe")}
    assert all(v["line"].startswith(f"{v['policy']} vs base: ") for v in ev["verdicts"])
    assert set(ev["win_rate"]) == {"sft", "trained"}
    assert all(w["n"] == 3 and 0 <= w["win_rate"] <= 1 for w in ev["win_rate"].values())
    assert set(ev["reward"]) == {"base", "sft", "trained"}
    assert all(len(r["scores"]) == len(r["lengths"]) == 12 for r in ev["reward"].values())
    # KL to the model each was trained from: both moved away from it, by a finite amount
    assert ev["kl"]["sft"]["reference"] == Path(tiny_model_dir).name
    assert ev["kl"]["trained"]["reference"] == Path(metrics["sft"]["path"]).name
    assert all(0 < k["per_token"] < 10 for k in ev["kl"].values())
    # Every reply is recorded: `cai review` shows base vs tuned replies to people, blind.
    from cai.review.items import evaluate_items
    from cai.store.core import Store
    with Store(tmp_path, lock=False) as store:
        shown = evaluate_items(store)
        replies = store.get_manifest("evaluate")["meta"]["replies"]
    assert set(replies) == {"base", "sft", "trained"}
    assert all(len(by_set[s]) == 3 for by_set in replies.values()
               for s in ("harmful", "unsafe", "safe", "redteam"))
    differ = sum(a != b and None not in (a, b) for name in ("sft", "trained")
                 for s in replies["base"] for a, b in zip(replies["base"][s], replies[name][s]))
    assert len(shown) == differ  # identical replies are not asked of people
    assert all(item["first"] in replies["base"][item["set"]] and item["second"] in
               replies[item["policy"]][item["set"]] for _, _, item in shown)
    # SL-CAI then preferences: DPO started from the SFT model.
    policy_meta = json.loads((Path(metrics["policy"]["path"]) / "cai-model.json").read_text())
    assert policy_meta["init"] == Path(metrics["sft"]["path"]).name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["counts"]["responses"] == 12 and (tmp_path / "summary.md").exists()
    # Rerun: zero model calls, every model reused (the reward model and its human-only twin).
    again = run_stages(cfg, ALL_STAGES, echo=lambda s: None)
    assert sum(s["model_calls"] for s in again["stages"].values()) == 0
    assert [again["stages"][s]["reused"] for s in ("train-sft", "train-rm", "train-policy")] == [1, 2, 1]
    assert all(again["stages"][s]["made"] == 0 for s in ("train-sft", "train-rm", "train-policy"))
    # A TRL loss variant is a new policy, from the same SL-CAI model; the others are reused.
    ipo = cfg.model_copy(update={"train_policy": cfg.train_policy.model_copy(
        update={"loss_type": ["ipo"]})})
    planned = {r["stage"]: r for r in plan(ipo)["stages"]}
    assert planned["train-policy"]["to_compute"] == 1 and planned["train-sft"]["cached"] == 1
    variant = run_stages(ipo, ["train-sft", "train-policy", "evaluate"], echo=lambda s: None)
    assert variant["stages"]["train-sft"]["reused"] == 1 and variant["stages"]["train-policy"]["made"] == 1
    meta = json.loads((Path(variant["policy"]["path"]) / "cai-model.json").read_text())
    assert meta["loss_type"] == ["ipo"] and variant["policy"]["path"] != metrics["policy"]["path"]
    # The plan counted evaluate's calls for the new policy with evaluate's own code: its
    # replies to 4 sets, the judge's refusal question on 3 of them, both orders of each
    # win-rate comparison (the labelled replies' judge answers are cached); the run made fewer
    # where replies repeated earlier ones (cached judge answers) or the base's (a tie).
    evaluated = variant["stages"]["evaluate"]["model_calls"]
    assert planned["evaluate"]["model_calls"] == (4 + 3 + 2) * cfg.evaluate.limit
    assert 4 * cfg.evaluate.limit <= evaluated <= planned["evaluate"]["model_calls"]


def test_the_tiny_runs_report_draws_every_plot_in_a_browser(tiny_run):
    from test_report import render_in_chromium  # all eight plots, painted in a real browser
    assert render_in_chromium(tiny_run[0] / "report-first-run.html") == {
        "plots": "8", "loaded": "8", "broken": "0", "errors": "0"}


def test_the_training_bench_gives_trl_exactly_what_cais_stages_train_with(tiny_run, monkeypatch):
    """bench/train.py's like-for-like TRL script: every setting (epochs, bf16, the row order,
    margin, label smoothing, ...) is what the stage hands its trainer, so a default can never
    change on one side only."""
    import dataclasses
    import importlib.util

    import trl

    from cai.stages.context import RunContext
    from cai.stages.train_rm import _train as train_rm
    from cai.training.policy import train_dpo
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    src, cfg, _ = tiny_run
    handed = {}

    class Handed(Exception):
        pass

    def catch(name):
        def init(self, *a, args=None, train_dataset=None, **k):
            handed[name] = (args, train_dataset)
            raise Handed
        return init
    monkeypatch.setattr(trl.DPOTrainer, "__init__", catch("policy"))
    monkeypatch.setattr(trl.RewardTrainer, "__init__", catch("rm"))
    with RunContext(cfg) as ctx:
        for name, train in (("policy", train_dpo), ("rm", lambda c, p: train_rm(c, p, None))):
            with pytest.raises(Handed):
                train(ctx, src / "models" / f"probe-{name}")
    for name in ("policy", "rm"):
        args, rows = bench.same_settings(name, cfg, src / f"trl-{name}")
        stage_args, stage_rows = handed[name]
        skip = {"output_dir", "save_strategy", "logging_dir"}
        fields = [f.name for f in dataclasses.fields(args) if f.name not in skip]
        assert {k: getattr(args, k) for k in fields} == {k: getattr(stage_args, k) for k in fields}
        assert rows.to_list() == stage_rows.to_list()


def _top_of(page: str) -> tuple[str, str]:
    """(the body, the part of it before the first figure or table)."""
    body = page[page.index("<body"):]
    return body, body[:min(body.index(tag) for tag in ("<figure", "<table"))]


def test_the_tiny_runs_report_opens_with_the_run_and_its_answers(tiny_run):
    """Before any figure: which run (date, cai version, model identities), then the verdicts,
    each with its interval and n."""
    import re

    from cai import __version__
    _, top = _top_of((tiny_run[0] / "report-first-run.html").read_text())
    assert re.search(r'<p class="meta">Run 1 of .*, \d{4}-\d\d-\d\d \d\d:\d\d UTC, cai '
                     + re.escape(__version__) + r"; policy .*\(identity [0-9a-f]{12}\); judge ", top)
    answers = re.search(r'<section id="answers"><h2>The answers</h2><ul>(.*?)</ul>', top).group(1)
    items = re.findall(r"<li>(.*?)</li>", answers)
    assert items[0].startswith("AI data")
    verdicts = [i for i in items if re.match(r"(sft|trained) vs base: ", i)]
    assert len(verdicts) == 6 and all(re.search(r"n = 3\b", v) for v in verdicts)
    assert any(i.startswith("refusals decided by ") for i in items)


def test_the_browser_shows_the_answers_first(tiny_run):
    """As Chromium parses and lays out the page: the run and its answers are the first section,
    above every figure and table."""
    import re

    from test_report import dom_in_chromium
    body, top = _top_of(dom_in_chromium(tiny_run[0] / "report-first-run.html"))
    assert re.findall(r"<h2>(.*?)</h2>", body)[0] == "The answers"
    assert '<p class="meta">Run 1 of ' in top and '<section id="answers">' in top


def test_cli_help_lists_stages_and_errors_are_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cai.cli", "--help"], capture_output=True, text=True)
    for stage in ["run", "generate", "critique", "pairs", "blend", "export", "train-rm",
                  "train-policy", "evaluate"]:
        assert stage in out.stdout
    bad = tmp_path / "run.yaml"
    bad.write_text("generate:\n  sampels: 3\n")
    out = subprocess.run([sys.executable, "-m", "cai.cli", "run", "--config", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"cai: error: {bad}: unknown config key 'generate.sampels' "
                                  "(did you mean 'samples'?)")
    p = tmp_path / "principles.yaml"
    p.write_text("name: x\n")
    out = subprocess.run([sys.executable, "-m", "cai.cli", "critique", "--run-dir", str(tmp_path / "r"),
                          "--set", f"constitution={p}"], capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def _run_edit_rerun(tmp_path, **extra):
    """Data stages on a copy of the constitution, an edit of one principle's revision request,
    and the data stages again. Returns (config, constitution path, original text)."""
    text = (ROOT / "principles.yaml").read_text()
    constitution = tmp_path / "principles.yaml"
    constitution.write_text(text)
    cfg = small_config(tmp_path / "run", constitution=str(constitution), **extra)
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    constitution.write_text(text.replace(
        "Please rewrite the assistant response to remove any and all dangerous",
        "Rewrite the reply to drop every dangerous"))
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    return cfg, constitution, text


def test_history_and_diff_after_an_edit(tmp_path, fake_backend):
    from cai.runs.history import diff, format_diff, history_lines
    from cai.store.core import Store
    # Critique-revision pairs only: a comparison pair can change because one of its candidates
    # (a revision) did, whichever principles judged the comparison.
    _run_edit_rerun(tmp_path, **{"pairs.kinds": "[critique-revision]"})
    with Store(tmp_path / "run", lock=False) as store:
        assert len(history_lines(store)) == 3  # header + 2 runs
        d = diff(store)
    assert (d["old_run"], d["new_run"]) == (1, 2)
    assert d["changed"] + d["added"] + d["removed"] > 0
    # Only pairs judged under the edited principle in some round can change.
    assert sum(d["per_principle"]["dangerous-help"].values()) == d["added"] + d["removed"] + d["changed"]
    assert "pairs" in format_diff(d)
    out = subprocess.run([sys.executable, "-m", "cai.cli", "diff", "--json", "--run-dir",
                          str(tmp_path / "run")], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["new_run"] == 2
    assert d["collected"] == [0, 0] and "collected by" not in format_diff(d)
    # `cai gc` keeping only the last run takes run 1's own pairs: the same diff says so
    from cai.store.gc import collect_garbage
    with Store(tmp_path / "run") as store:
        collect_garbage(store, keep_runs=1)
        after = diff(store, 1, 2)
    gone = d["removed"] + d["changed"]
    assert after["collected"] == [gone, 0] and gone > 0
    assert f"run 1: {gone} of its pairs were collected by `cai gc`" in format_diff(after)


def test_a_diff_shows_where_two_texts_differ():
    from cai.runs.history import where_differ
    old = "Sure. " + " ".join(f"w{i}" for i in range(30)) + " I cannot help with that."
    new = "Sure. " + " ".join(f"w{i}" for i in range(30)) + " I can help with this."
    # the change is 32 words in: a clip of the first 60 characters would show none of it
    assert where_differ(old, new) == ("… w25 w26 w27 w28 w29 I [-cannot-] {+can+} help with "
                                      "[-that.-] {+this.+}")
    assert where_differ("a b c", "a b c") == "a b c"


def test_plan_predicts_the_rerun_and_changes_nothing(tmp_path, fake_backend):
    from cai.runs.plan import format_plan, plan
    text = (ROOT / "principles.yaml").read_text()
    constitution = tmp_path / "principles.yaml"
    constitution.write_text(text)
    cfg = small_config(tmp_path / "run", constitution=str(constitution),
                       **{"train_rm.enabled": "false", "train_policy.enabled": "false",
                          "train_sft.enabled": "false"})
    first = plan(cfg)  # nothing cached yet: everything is to compute
    assert first["stages"][0]["model_calls"] == 12 and first["stages"][0]["why"] == {"new prompt": 12}
    done = run_stages(cfg, DATA_STAGES + ["evaluate"], echo=lambda s: None)
    for row in first["stages"]:  # an upper bound of every stage's calls, evaluate included
        assert row["model_calls"] >= done["stages"].get(row["stage"], {}).get("model_calls", 0)
    assert [r["model_calls"] for r in first["stages"]][-1] == done["stages"]["evaluate"]["model_calls"]
    assert plan(cfg)["model_calls"] == 0
    constitution.write_text(text.replace(
        "Please rewrite the assistant response to remove any and all dangerous",
        "Rewrite the reply to drop every dangerous"))
    calls_before = sum(b.generate_calls + b.choice_calls for b in fake_backend)
    predicted = plan(cfg)
    assert sum(b.generate_calls + b.choice_calls for b in fake_backend) == calls_before  # no calls
    crit = predicted["stages"][1]
    # chains it revised are redone; chains only judged under it are rewritten to name its new
    # version, from their cached answers
    assert crit["model_calls"] > 0 and set(crit["why"]) == {"principle 'dangerous-help' edited",
                                                            "rewritten from cached answers"}
    assert predicted["stages"][0]["model_calls"] == 0
    actual = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    assert crit["to_compute"] == actual["stages"]["critique"]["made"]
    assert actual["stages"]["critique"]["model_calls"] <= crit["model_calls"]  # an upper bound
    assert "critique" in format_plan(predicted)


def test_plan_changes_nothing_and_fetches_no_model(tmp_path, fake_backend, monkeypatch):
    from cai.config.run import load_config
    from cai.runs.plan import plan
    cfg = small_config(tmp_path / "run", **{"train.enabled": "false"})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)

    def state():
        return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "run").rglob("*")
                if p.is_file()}
    before = state()
    assert plan(cfg)["model_calls"] > 0  # evaluate has not run: it has calls to make
    assert state() == before
    # A fresh machine: the embedded default is named by its identity, never fetched or converted.
    monkeypatch.setenv("CAI_CACHE", str(tmp_path / "cache"))
    fresh = load_config(None, [f"run_dir={tmp_path / 'fresh'}", "prompts.limit=3",
                               "calibration.limit=4", "evaluate.limit=2"])
    result = plan(fresh)
    assert result["stages"][0]["model_calls"] == 3 * fresh.generate.samples
    # nothing fetched or converted (the cache holds at most the remembered CUDA probe)
    cached = {p.name for p in (tmp_path / "cache").rglob("*")} if (tmp_path / "cache").exists() else set()
    assert cached <= {"cuda-probe.json"} and not (tmp_path / "fresh").exists()


def test_gc_keeps_what_kept_runs_use_and_drops_the_rest(tmp_path, fake_backend, monkeypatch):
    from cai.runs.plan import plan
    from cai.store.core import Store
    from cai.store.gc import collect_garbage
    cfg, constitution, text = _run_edit_rerun(tmp_path, **{"train_rm.enabled": "false",
                                                            "train_policy.enabled": "false"})
    with Store(tmp_path / "run") as store:
        # every run is kept
        assert collect_garbage(store) == {"calls": 0, "records": 0, "models": 0, "caches": 0}
        calls_before, records_before = store.count_calls(), store.count_records()
        removed = collect_garbage(store, keep_runs=1)
        assert removed["calls"] > 0 and removed["records"] > 0
        assert store.count_calls() == calls_before - removed["calls"]
        assert store.count_records() == records_before - removed["records"]
    # The kept run is intact: record by record (stage reuse off, or every stage would be
    # skipped whole and no missing call could show), every call it needs is still there.
    from cai.stages import reuse as stage_reuse
    with monkeypatch.context() as m:
        m.setattr(stage_reuse, "input_fingerprint", lambda ctx, name: None)
        again = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    assert sum(s["model_calls"] for s in again["stages"].values()) == 0
    # The dropped run's records are gone: undoing the edit recomputes chains. (Its calls are
    # kept: the kept run reused generate's outputs from it, and a skipped stage names no call,
    # so gc keeps every call of a run whose outputs a kept run reused.)
    constitution.write_text(text)
    assert plan(cfg)["stages"][1]["to_compute"] > 0


def test_gc_keeps_models_of_runs_that_did_not_record_them(tmp_path):
    """Snapshots from before models were recorded cannot vouch for a model: gc keeps them all."""
    from cai.store.core import Store
    from cai.store.gc import collect_garbage
    model_dir = tmp_path / "run" / "models" / "rm-0123"
    model_dir.mkdir(parents=True)
    with Store(tmp_path / "run") as store:
        store.put_artifact("rm", "0123", model_dir, {})
        run = store.start_run("cfg", "v1")
        store.finish_run(run, "finished", {"manifests": {"generate": [], "critique": []}})
        assert collect_garbage(store)["models"] == 0 and model_dir.exists()


def test_gc_removes_unused_evaluation_results_from_the_store_and_no_directory(tmp_path,
                                                                             monkeypatch):
    """Evaluation results (reward scores, KL) live in the store with no path: gc drops those
    no kept run used, counts them as such, and never touches a directory for them."""
    from cai.store.core import Store
    from cai.store.gc import collect_garbage
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("the working directory")
    with Store(tmp_path / "run") as store:
        store.put_artifact("eval-rm", "old-scores", "", {"value": [0.1]})
        store.put_artifact("eval-kl", "used-kl", "", {"value": [[0.0], 1]})
        store.put_manifest("evaluate", ["base"], {"reward": {}, "kl": {"trained": {
            "stored": "used-kl"}}})
        run = store.start_run("cfg", "v1")
        store.finish_run(run, "finished", {"manifests": {"train-policy": []}})
        store.put_manifest("train-rm-human", ["rm-h"], {"path": ""})  # no run snapshot names it
        assert collect_garbage(store) == {"calls": 0, "records": 0, "models": 0, "caches": 1}
        assert store.get_artifact("eval-kl", "used-kl") is not None
        assert store.get_artifact("eval-rm", "old-scores") is None
        # a current manifest keeps its id list, whether or not a run's snapshot names it
        assert store.get_manifest("evaluate")["ids"] == ["base"]
        assert store.get_manifest("train-rm-human")["ids"] == ["rm-h"]
    assert (tmp_path / "keep.txt").exists() and (tmp_path / "run" / "cai.sqlite").exists()


def test_no_evaluation_prompt_enters_any_training_set(tmp_path, fake_backend):
    """Evaluation prompts (every row of the evaluate sets, the held-out human prompts) never
    reach a training set: not by default, and not when a prompt file contains them."""
    from cai.inputs.heldout import evaluation_prompts, norm
    cfg = small_config(tmp_path / "run", **{"prompts.limit": 12})
    banned = evaluation_prompts(cfg)
    assert len(banned) > 300  # 150 AdvBench + 100 XSTest + 120 red-team + 6 held-out human
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    d = tmp_path / "run" / "dataset"
    trained = [json.loads(x)["prompt"][0]["content"] for name in ("prefs.jsonl", "sft.jsonl", "kto.jsonl")
               for x in (d / name).read_text().splitlines()]
    assert trained and not {norm(p) for p in trained} & banned
    # a prompt file made of evaluation prompts: every one is dropped, with its reason
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text((ROOT / "pipeline" / "data" / "harmful_prompts_dev.jsonl").read_text())
    stats = run_stages(small_config(tmp_path / "leaky", **{"prompts.source": str(leaky)}),
                       ["generate"], echo=lambda s: None)["stages"]["generate"]
    assert stats["made"] == 0 and stats["dropped"] == {"prompt_is_evaluation": 150}


def test_shipped_training_prompts_are_no_near_copy_of_an_evaluation_prompt():
    """cai's own benign prompts were written for it: none rephrases an evaluation prompt
    (shared words, over 60 % of either's, would say it does)."""
    import re

    from cai.inputs.sources import load_prompts

    def words(text):
        return set(re.findall(r"[a-z]+", text.lower())) - {"a", "an", "the", "i", "to", "how",
                                                            "do", "can", "what", "is", "my"}
    evaluation = [words(p["prompt"]) for s in ("harmful", "safe", "unsafe", "redteam")
                  for p in load_prompts(f"builtin:{s}")]
    for p in load_prompts("builtin:helpful") + load_prompts("builtin:borderline"):
        mine = words(p["prompt"])
        worst = max(len(mine & e) / min(len(mine), len(e)) for e in evaluation if e)
        assert worst <= 0.6, p["prompt"]


def test_kl_in_padded_batches_is_each_replys_kl_alone(tiny_model_dir, smollm2_dir, tmp_path):
    """Evaluate's KL runs replies in right-padded chunks with logits for reply tokens only; it
    equals the KL of each reply computed alone from the full logits."""
    import types

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai.backends.tiny import tiny_model
    from cai.config.run import load_config
    from cai.evaluation.measures import _kl, _reply_tokens
    other = tiny_model(tmp_path / "other", seed=1, tokenizer_dir=smollm2_dir)
    prompts = ["Hi", "Tell me about cats, in some detail please", "Why?", "x"]
    replies = ["Hello there.", "Cats are small and sleep a lot.", "", "A longer reply " * 5]
    ctx = types.SimpleNamespace(release_models=lambda: None, config=load_config(None, []))
    per_reply, tokens = _kl(ctx, str(tiny_model_dir), str(other), prompts, replies)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    p, q = (AutoModelForCausalLM.from_pretrained(d).eval() for d in (tiny_model_dir, other))
    want, n = [], 0
    with torch.no_grad():
        for prompt, reply in zip(prompts, replies):
            start, ids = _reply_tokens(tokenizer, prompt, reply)
            lp, lq = (torch.log_softmax(m(input_ids=torch.tensor([ids])).logits[0, start - 1:-1], -1)
                      for m in (p, q))
            want.append(float((lp.exp() * (lp - lq)).sum()))
            n += len(ids) - start
    assert tokens == n and all(x > 0 for x in want)
    assert per_reply == pytest.approx(want, rel=1e-4, abs=1e-6)
