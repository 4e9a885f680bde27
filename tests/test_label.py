"""The label stage (judge comparisons, calibration on human pairs), pairs from labels, the blend."""

import json

import pytest
from conftest import small_config

from cai import backends
from cai.errors import CaiError
from cai.feedback.probability import both_orders
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES  # noqa: E402
from cai.stages.blend import KEPT, _sampled, _select
from cai.stages.context import RunContext, StageStats
from cai.store.spill import Spill
from cai.training.inputs import check_agreement


def _rows(run_dir, name="prefs.jsonl"):
    return [json.loads(x) for x in (run_dir / "dataset" / name).read_text().splitlines()]


def _records(run_dir, stage):
    ctx = RunContext(small_config(run_dir))
    try:
        manifest = ctx.store.get_manifest(stage)
        return manifest, ctx.store.get_records(manifest["ids"])
    finally:
        ctx.close()


def test_label_stage_on_a_tiny_model(tmp_path, tiny_model_dir):
    spec = f"transformers:{tiny_model_dir}"
    cfg = small_config(tmp_path, policy=spec, judge=spec, **{
        "label.ensemble": 2, "pairs.min_margin": 0.0, "calibration.limit": 10,
        "calibration.heldout": 2})
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    manifest, comparisons = _records(tmp_path, "label")
    # the judge labels the human training pairs only: the held-out two are never shown to it
    assert comparisons and len(manifest["meta"]["calibration_ids"]) == 8
    for c in comparisons.values():
        assert 0 <= c["p"] <= 1 and c["method"] == "logprobs" and len(c["principles"]) == 2
        for x in c["principles"]:  # each principle: both orders, their log-odds mean, gap
            assert x["p"] == pytest.approx(both_orders(x["p_order1"], x["p_order2"])[0])
            assert x["gap"] == pytest.approx(abs(x["p_order1"] - x["p_order2"]))
        assert c["p"] == pytest.approx(sum(x["p"] for x in c["principles"]) / 2)
    report = metrics["judge_agreement"]
    assert report["n"] == 8 and report["folds"] == 5
    for cal in (report["raw"], report["calibrated"]):  # the same measures, before and after
        assert 0 <= cal["accuracy"] <= 1 and len(cal["reliability"]) == 10
        assert {"cohen_kappa", "ece", "brier", "position_bias_rate", "per_principle"} <= set(cal)
    assert set(report["trust"]) == set(report["calibrated"]["per_principle"])
    _, pairs = _records(tmp_path, "pairs")
    made = [r for r in pairs.values() if r["kind"] == "comparison"]
    assert made, "every comparison with a margin above 0 makes a pair"
    for r in made:
        prov = r["provenance"]
        assert r["p_chosen"] >= 0.5 and r["margin"] == pytest.approx(2 * r["p_chosen"] - 1)
        assert r["weight"] == pytest.approx(prov["trust"] * r["margin"], abs=1e-6)
        assert prov["method"] == "logprobs" and len(prov["principles"]) == 2
    # a random judge earns no trust on 8 human pairs: its pairs weigh 0 and none is trained on
    rows = _rows(tmp_path)
    assert all(r["weight"] == 0 for r in made) and {r["kind"] for r in rows} == {"human"}
    assert all(r["p_chosen"] == 1.0 for r in rows if r["kind"] == "human")
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "Cohen's kappa" in card and "Reliability" in card and "trust" in card


def test_pair_kinds_can_be_switched_and_margin_filters(tmp_path, fake_backend):
    raw = {"calibration.use_trust": "false"}  # every pair counts: what is made is trained on
    both = run_stages(small_config(tmp_path / "a", **{"pairs.min_margin": 0.0, **raw}),
                      DATA_STAGES, echo=lambda s: None)
    only = run_stages(small_config(tmp_path / "b", **{"pairs.kinds": "[comparison]",
                                                      "pairs.min_margin": 0.0, **raw}),
                      DATA_STAGES, echo=lambda s: None)
    strict = run_stages(small_config(tmp_path / "c", **{"pairs.kinds": "[comparison]",
                                                        "pairs.min_margin": 0.3, **raw}),
                        DATA_STAGES, echo=lambda s: None)
    kinds = {r["kind"] for r in _rows(tmp_path / "b")}
    assert kinds == {"comparison", "human"}
    assert {"critique-revision", "comparison"} <= {r["kind"] for r in _rows(tmp_path / "a")}
    assert 0 < strict["counts"]["ai_pairs"] < only["counts"]["ai_pairs"] < both["counts"]["ai_pairs"]
    assert all(r["margin"] > 0.3 for r in _rows(tmp_path / "c") if r["kind"] == "comparison")


def test_a_backend_without_logprobs_votes_and_says_so(tmp_path, fake_backend, monkeypatch):
    monkeypatch.setattr(backends, "NO_LOGPROBS", {"fake"})
    run_stages(small_config(tmp_path, **{"judge.votes": 3, "pairs.min_margin": 0.0}),
               DATA_STAGES, echo=lambda s: None)
    _, comparisons = _records(tmp_path, "label")
    assert comparisons and all(c["method"] == "vote" for c in comparisons.values())
    assert all(x["votes"] and sum(x["votes"][0]) == 3 for c in comparisons.values()
               for x in c["principles"])
    assert sum(fake.choice_calls for fake in fake_backend) == 0  # never asked for logprobs
    _, pairs = _records(tmp_path, "pairs")
    voted = [r["provenance"] for r in pairs.values() if r["kind"] == "comparison"]
    assert voted and all(p["method"] == "vote" for p in voted)
    _, chains = _records(tmp_path, "critique")
    assert all(r["verdict"]["method"] == "vote" for c in chains.values() for r in c["rounds"])


def test_unparseable_critiques_are_retried_then_recorded(tmp_path, fake_backend, monkeypatch):
    from fakes import FakeBackend
    real = FakeBackend.generate

    def mute(self, requests):  # the judge never writes a critique; everything else works
        out = real(self, requests)
        return ["" if "Answer with a short critique" in dict(r.messages[-1])["content"] else o
                for r, o in zip(requests, out)]
    monkeypatch.setattr(FakeBackend, "generate", mute)
    metrics = run_stages(small_config(tmp_path, **{"judge.parse_retries": 1}),
                         ["generate", "critique"], echo=lambda s: None)
    dropped = metrics["stages"]["critique"]["dropped"]
    assert dropped == {"critique_unparseable": 12}  # 6 prompts x 2 samples, none lost silently
    _, chains = _records(tmp_path, "critique")
    assert {c["failed"] for c in chains.values()} == {"critique_unparseable: empty"}
    assert metrics["stages"]["critique"]["model_calls"] == 24  # each asked twice


def test_min_agreement_stops_before_training_or_warns(tmp_path, fake_backend):
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    ctx = RunContext(small_config(tmp_path, **{"calibration.min_agreement": 0.99}))
    try:
        with pytest.raises(CaiError, match=r"below calibration.min_agreement 0.99"):
            check_agreement(ctx, StageStats("train-rm"))
        ctx.config.calibration.on_low_agreement = "warn"
        stats = StageStats("train-rm")
        check_agreement(ctx, stats)
        assert "human pairs" in stats.warnings[0] and "warning:" in stats.line()
        ctx.config.calibration.min_agreement = 0.0
        check_agreement(ctx, StageStats("train-rm"))  # met: no error
    finally:
        ctx.close()
    cfg = small_config(tmp_path, **{"calibration.min_agreement": 0.99})
    with pytest.raises(CaiError, match="min_agreement"):  # the run itself stops there
        run_stages(cfg, ["train-rm"], echo=lambda s: None)


def test_blend_keeps_heldout_prompts_out_of_training(tmp_path, fake_backend):
    run_stages(small_config(tmp_path, **{"calibration.heldout": 40, "calibration.limit": 60,
                                         "calibration.use_trust": "false"}), DATA_STAGES,
               echo=lambda s: None)
    held = {" ".join(r["prompt"][0]["content"].lower().split())
            for r in _rows(tmp_path, "prefs_test.jsonl")}
    train = {" ".join(r["prompt"][0]["content"].lower().split()) for r in _rows(tmp_path)}
    assert len(held) > 30 and not held & train


def _pair(pid, prompt, chosen, p=0.8, kind="comparison"):
    return (pid, {"prompt": prompt, "chosen": chosen, "rejected": "r", "p_chosen": p, "kind": kind})


def test_blend_dedupes_caps_per_prompt_and_weights_sources():
    from cai.config.data import BlendConfig
    stats = StageStats("blend")
    pairs = [_pair("a", "Q1", "x", 0.9), _pair("b", "q1 ", "x", 0.7),  # same pair, same prompt
             _pair("c", "Q1", "y", 0.6), _pair("d", "Q1", "z", 0.95),
             _pair("e", "held", "x"), _pair("f", "Q2", "x")]
    with Spill(KEPT) as spill:
        _select([pairs[:2], pairs[2:]], {"held"}, BlendConfig(max_pairs_per_prompt=2), stats, spill)
        kept = [pid for pid, *_ in spill.sorted("id")]
    assert kept == ["a", "d", "f"]  # Q1: the two most confident
    assert stats.dropped == {"duplicate_pair": 1, "over_max_pairs_per_prompt": 1,
                             "prompt_is_evaluation": 1}
    many = [_pair(f"p{i}", f"Q{i}", "x") for i in range(400)]
    assert len(_sampled(many, lambda _: 2.0, 0)) == 800
    half = _sampled(many, lambda _: 0.5, 0)
    assert 160 < len(half) < 240 and half == _sampled(many, lambda _: 0.5, 0)
    assert _sampled(many, lambda _: 0.0, 0) == []


def test_editing_a_comparison_question_relabels_only_its_comparisons(tmp_path, fake_backend):
    from conftest import ROOT
    text = (ROOT / "principles.yaml").read_text()
    constitution = tmp_path / "principles.yaml"
    constitution.write_text(text)
    cfg = small_config(tmp_path / "run", constitution=str(constitution),
                       **{"label.ensemble": 2, "pairs.min_margin": 0.0,
                          "blend.max_pairs_per_prompt": 10, "calibration.use_trust": "false"})
    full = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    names, prefs = _model_names(cfg), _rows(tmp_path / "run")
    old = "Which of these assistant responses is less harmful?"
    assert old in text
    constitution.write_text(text.replace(old, "Which assistant response is less harmful?"))
    again = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    ctx = RunContext(cfg)
    try:
        label = ctx.store.get_manifest("label")
        records = ctx.store.get_records(label["ids"] + label["meta"]["calibration_ids"])
    finally:
        ctx.close()
    # The SL-CAI model reads only the revisions: it keeps its name (and is reused); the
    # reward model reads the pairs, and is renamed exactly when they changed.
    after = _model_names(cfg)
    assert _rows(tmp_path / "run") != prefs and after["rm"] != names["rm"]
    assert after["sft"] == names["sft"]
    # 2 calls (both orders) per comparison the edited principle took part in; nothing else.
    touched = sum(x["id"] == "dangerous-help" for r in records.values() for x in r["principles"])
    assert touched and again["stages"]["label"]["model_calls"] == 2 * touched
    assert again["stages"]["label"]["model_calls"] < full["stages"]["label"]["model_calls"]
    assert again["stages"]["generate"]["model_calls"] == 0
    assert again["stages"]["critique"]["model_calls"] == 0  # its prompts do not show comparisons


def _model_names(cfg) -> dict:
    """The input hash each training stage would be named by, for the current dataset."""
    from cai.training.inputs import input_hash
    ctx = RunContext(cfg.model_copy(update={"models": cfg.models.model_copy(
        update={"policy": "transformers:smollm2-135m"})}))
    try:
        return {name: input_hash(ctx, name, getattr(ctx.config, f"train_{name}"))
                for name in ("sft", "rm")}
    finally:
        ctx.close()


def test_changing_how_answers_combine_relabels_without_model_calls(tmp_path, fake_backend):
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    again = run_stages(small_config(tmp_path, **{"label.average": "probability"}), DATA_STAGES,
                       echo=lambda s: None)
    assert again["stages"]["label"]["model_calls"] == 0 and again["stages"]["label"]["made"] > 0
    _, comparisons = _records(tmp_path, "label")
    for c in comparisons.values():
        for x in c["principles"]:
            assert x["p"] == pytest.approx((x["p_order1"] + x["p_order2"]) / 2)


def test_chain_of_thought_labels_are_clamped_and_keep_their_reasoning(tmp_path, fake_backend):
    run_stages(small_config(tmp_path, **{"label.cot": "true", "label.cot_clamp": "[0.45, 0.55]",
                                         "calibration.limit": 2}),
               DATA_STAGES, echo=lambda s: None)
    _, comparisons = _records(tmp_path, "label")
    assert comparisons
    for c in comparisons.values():
        for x in c["principles"]:
            assert 0.45 <= x["p_order1"] <= 0.55 and 0.45 <= x["p_order2"] <= 0.55
            assert len(x["reasoning"]) == 2 and all(x["reasoning"])
            assert len(x["calls"]) == 4  # a reasoning and a scored choice per order


def test_a_critique_revision_pair_is_as_sure_as_the_judge_comparing_its_two_replies(
        tmp_path, fake_backend):
    """P(original violates) is not P(revision ≻ original): a critique-revision pair's p_chosen
    comes from the judge comparing original and revision in both orders (calibrated on the
    human slice), and without that comparison it has none and weighs nothing."""
    from datasets import load_from_disk

    from cai.training.arguments import dpo_label_smoothing
    from cai.training.inputs import with_margin
    cfg = small_config(tmp_path / "a", **{"pairs.min_margin": 0.0})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    _, pairs = _records(tmp_path / "a", "pairs")
    _, comparisons = _records(tmp_path / "a", "label")
    revised = [p for p in pairs.values() if p["kind"] == "critique-revision"]
    assert revised
    for pair in revised:
        cmp = comparisons[pair["provenance"]["comparison"]]
        assert (cmp["first_id"], cmp["second_id"]) == (pair["rejected_id"], pair["chosen_id"])
        assert pair["provenance"]["p_raw"] == pytest.approx(1 - cmp["p"])
        assert 0 <= pair["p_chosen"] <= 1 and pair["margin"] == max(0, 2 * pair["p_chosen"] - 1)
        assert 0.5 < pair["p_violates"] <= 1  # kept under its own name, not as a preference
    # without the comparison (revisions not compared) a pair has no probability and no weight
    none = small_config(tmp_path / "b", **{"label.compare": "[samples]"})
    run_stages(none, DATA_STAGES, echo=lambda s: None)
    _, pairs = _records(tmp_path / "b", "pairs")
    unweighed = [p for p in pairs.values() if p["kind"] == "critique-revision"]
    assert unweighed and all(p["p_chosen"] is None and p["weight"] == 0 for p in unweighed)
    # label smoothing averages the pairs that have a probability; a pair without one is
    # trained with no margin
    raw = small_config(tmp_path / "c", **{"label.compare": "[samples]", "pairs.min_margin": 0.0,
                                          "calibration.use_trust": "false"})
    run_stages(raw, DATA_STAGES, echo=lambda s: None)
    rows = _rows(tmp_path / "c")
    known = [r["p_chosen"] for r in rows if r["p_chosen"] is not None]
    assert 0 < len(known) < len(rows)
    train = load_from_disk(str(tmp_path / "c" / "dataset" / "prefs"))["train"]
    assert dpo_label_smoothing(raw.train_policy, train) == round(sum(1 - p for p in known)
                                                                 / len(known), 4)
    margins = with_margin(train.select_columns(["p_chosen", "margin"]))
    assert all(m == 0.0 for p, m in zip(margins["p_chosen"], margins["margin"]) if p is None)


def test_the_calibration_report_says_whether_it_measured_the_training_labels(tmp_path,
                                                                            fake_backend):
    from cai.publish.card import ensemble_line
    small = run_stages(small_config(tmp_path / "a", **{"label.ensemble": 3}), DATA_STAGES,
                       echo=lambda s: None)["judge_agreement"]
    assert (small["ensemble"], small["training_ensemble"]) == (1, 3)
    assert ensemble_line(small).startswith("- not the training labels")
    assert "not the training labels" in (tmp_path / "a" / "summary.md").read_text()
    assert "not the training labels" in (tmp_path / "a" / "dataset" / "README.md").read_text()
    same = run_stages(small_config(tmp_path / "b", **{"label.ensemble": 2,
                                                      "calibration.ensemble": 2}),
                      DATA_STAGES, echo=lambda s: None)["judge_agreement"]
    assert ensemble_line(same) == "- measured on the labels training uses (2 principles per comparison)"



def test_the_judge_labels_a_seeded_choice_of_the_human_pairs_and_every_one_trains(tmp_path,
                                                                                  fake_backend):
    from cai.inputs.human_slice import human_slice, judged_pairs
    from cai.inputs.sources import load_human_pairs
    cfg = small_config(tmp_path, **{"calibration.limit": 40, "calibration.judge_pairs": 12})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    manifest, _ = _records(tmp_path, "label")
    ctx = RunContext(cfg)
    try:
        labelled = ctx.store.get_records(manifest["meta"]["calibration_ids"]).values()
    finally:
        ctx.close()
    judged = {r["human_id"] for r in labelled}
    train = {h["id"] for h in human_slice(cfg).train}
    assert len(judged) == 12 and judged < train and len(train) == 34
    # Every training pair trains, judged or not.
    human_rows = [r for r in _rows(tmp_path) if r["source"] == "human"]
    assert len(human_rows) == len(train)
    # The choice is a seeded hash of pair ids: the same pairs from the file in another order.
    reordered = tmp_path / "reordered.jsonl"
    reordered.write_text("".join(json.dumps(h) + "\n"
                                 for h in load_human_pairs("builtin:calibration")[:40][::-1]))
    other = small_config(tmp_path / "other", **{"calibration.source": str(reordered),
                                                "calibration.limit": 40,
                                                "calibration.judge_pairs": 12})
    ctx = RunContext(other)
    try:
        assert {h["id"] for h in judged_pairs(ctx)} == judged
    finally:
        ctx.close()
