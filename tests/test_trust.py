"""Trust: the human slice decides what the judge's labels are worth.

Unit checks of the calibration map and the trust bound on synthetic judgements, then whole data
runs with a scripted judge that agrees with the human labels at a set rate: trust must rise with
that rate, a judge at chance must leave the training set to the humans, and a judge that agrees
with them must let its AI pairs dominate.
"""

import math
import random

import pytest
from conftest import small_config
from fakes import HumanFollowingJudge

from cai import backends
from cai.feedback.trust import calibrate, fit_map, lower_bound, trust_of, trust_report
from cai.inputs.human_slice import human_slice
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store


def _judgements(n: int, accuracy: float, seed: int = 0, principles=("harm", "honesty"),
                lean: float = 0.0, strength: float = 2.0) -> list[dict]:
    """n human pairs judged on each principle; the judge is right with probability `accuracy`
    with log-odds ±`strength`, and adds `lean` to its log-odds for the reply shown as A."""
    rng, out = random.Random(seed), []
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    for i in range(n):
        per = {}
        for pid in principles:
            x = strength if rng.random() < accuracy else -strength  # log-odds for the human's choice
            p1, p2 = sig(x + lean), sig(x - lean)          # chosen shown as A, then as B
            per[pid] = {"p": sig(math.log(p1 / (1 - p1)) / 2 + math.log(p2 / (1 - p2)) / 2),
                        "p_order1": p1, "p_order2": p2}
        out.append({"id": f"h{i}", "p": per[principles[0]]["p"], "p_order1": per[principles[0]]
                    ["p_order1"], "p_order2": per[principles[0]]["p_order2"], "principles": per})
    return out


def test_the_trust_bound_needs_both_agreement_and_evidence():
    assert trust_of(0.5, 1000) == 0.0 and trust_of(0.3, 1000) == 0.0 and trust_of(None, 0) == 0.0
    assert trust_of(0.64, 11) == 0.0           # a lucky 0.64 on 11 pairs earns nothing
    assert 0 < trust_of(0.64, 400) < 0.28      # the same rate on 400 pairs earns a little
    assert trust_of(0.95, 200) > trust_of(0.95, 30) > trust_of(0.8, 30)
    assert trust_of(1.0, 10_000) > 0.99
    for n in (5, 50, 500):
        assert lower_bound(0.7, n) < 0.7


def test_a_handful_of_human_pairs_earns_no_principle_much_trust():
    """Four pairs, all agreeing: the overall agreement is not yet evidence enough to lend a
    principle judged on the same pairs much trust, and its own pairs do not count twice."""
    report = trust_report(_judgements(4, 1.0), k=2, shrinkage=20, seed=0)
    assert all(t < 0.3 for t in report["trust"].values())
    assert report["overall_trust"] < 0.3


def test_a_position_biased_judge_is_corrected_and_earns_no_trust():
    """A judge that always prefers the reply shown as A carries no information: calibrated,
    every pair is 0.5 and its trust is 0."""
    biased = _judgements(80, 0.5, lean=4.0)
    for j in biased:
        for e in j["principles"].values():
            e["p_order1"], e["p_order2"] = 0.98, 0.02   # A every time, in both orders
    report = trust_report(biased, k=5, shrinkage=20, seed=0)
    assert report["trust"] == {"harm": 0.0, "honesty": 0.0}
    assert calibrate(report["map"], "harm", 0.98, 0.02) == pytest.approx(0.5, abs=1e-6)


def test_a_lean_towards_a_and_overconfidence_are_removed_and_the_signal_kept():
    """A judge right 80 % of the time that says 98 % (and leans to A): calibrated, its
    probabilities mean what they say and its accuracy is kept."""
    judged = _judgements(200, 0.8, principles=("harm",), lean=1.5, strength=4.0)
    report = trust_report(judged, k=5, shrinkage=20, seed=0)
    a, b = report["map"]["principles"]["harm"][:2]
    assert a < -0.2 and 0 < b < 1          # the intercept undoes the lean, the slope cools it
    raw, cal = report["raw"], report["calibrated"]
    assert cal["accuracy"] == raw["accuracy"] >= 0.75
    assert raw["ece"] > 0.1 and cal["ece"] < raw["ece"] / 2 and cal["brier"] < raw["brier"]
    assert report["trust"]["harm"] > 0.4


def test_trust_is_per_principle_and_a_thin_principle_is_shrunk_to_the_global_fit():
    good = _judgements(100, 0.95, seed=1, principles=("harm",))
    weak = _judgements(100, 0.5, seed=2, principles=("style",))
    mixed = [{**g, "principles": {**g["principles"], **w["principles"]}}
             for g, w in zip(good, weak)]
    report = trust_report(mixed, k=5, shrinkage=20, seed=0)
    assert report["trust"]["harm"] > 0.6 and report["trust"]["style"] == 0.0
    fit = fit_map(mixed[:4], shrinkage=1000)   # 4 pairs against a shrinkage of 1000
    g, own = fit["global"], fit["principles"]["style"]
    assert own[0] == pytest.approx(g[0], abs=0.05) and own[1] == pytest.approx(g[1], abs=0.05)


def _scripted_run(tmp_path, monkeypatch, fake_backend, accuracy: float) -> dict:
    cfg = small_config(tmp_path, judge="scripted:judge", **{
        "calibration.limit": 120, "calibration.heldout": 10, "prompts.limit": 90, "generate.samples": 3,
        "blend.max_pairs_per_prompt": 4,
        "pairs.min_margin": 0.0})
    humans = human_slice(cfg).train
    monkeypatch.setitem(backends.BACKENDS, "scripted",
                        lambda model, config: HumanFollowingJudge(model, humans, accuracy))
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    with Store(tmp_path, lock=False) as store:
        composition = store.get_manifest("blend")["meta"]["composition"]
        parts = store.get_manifest("export")["meta"]["parts"]
    return {"same_as_human_only": parts["prefs"] == parts["prefs_human"],
            "trust": metrics["judge_agreement"]["trust"], "composition": composition,
            "accuracy": metrics["judge_agreement"]["calibrated"]["accuracy"]}


def test_trust_rises_with_the_judges_agreement_with_humans(tmp_path, monkeypatch, fake_backend):
    runs = {acc: _scripted_run(tmp_path / str(acc), monkeypatch, fake_backend, acc)
            for acc in (0.5, 0.75, 0.95)}
    mean = {acc: sum(r["trust"].values()) / len(r["trust"]) for acc, r in runs.items()}
    effective = {acc: sum(r["composition"]["ai_effective"].values()) for acc, r in runs.items()}
    assert mean[0.5] < mean[0.75] < mean[0.95]
    assert effective[0.5] < effective[0.75] < effective[0.95]
    # at chance: no AI pair in training, the set is the human slice's training pairs
    chance = runs[0.5]["composition"]
    assert mean[0.5] == 0.0 and effective[0.5] == 0.0 and sum(chance["ai"].values()) == 0
    assert chance["human"] == 110 and runs[0.5]["same_as_human_only"]  # one reward model
    # a judge that agrees with humans: its AI pairs outnumber the human ones in training
    good = runs[0.95]["composition"]
    assert runs[0.95]["accuracy"] > 0.85 and mean[0.95] > 0.45
    assert sum(good["ai"].values()) > good["human"] and not runs[0.95]["same_as_human_only"]
