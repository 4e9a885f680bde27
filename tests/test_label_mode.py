"""label.mode (issue 31): pointwise labels, and `auto` letting the human slice choose per principle.

Unit checks of the pointwise label's maths and of the per-principle choice on constructed
judgements, then a whole data run with a scripted judge that is position-biased pairwise and
informative pointwise: `auto` must keep pointwise, say so, and let its AI pairs count.
"""

import math
import random

import pytest
from conftest import small_config
from fakes import PositionBiasedScorer

from cai import backends
from cai.feedback.judge import Outcome
from cai.feedback.modes import choose, mode_report
from cai.feedback.pointwise import _result
from cai.feedback.trust import judgement, worth
from cai.inputs.human_slice import human_slice
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store

sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731


def test_a_pointwise_label_is_the_difference_of_the_two_violation_log_odds():
    first, second = Outcome([0.2, 0.8], "logprobs", ["k1"]), Outcome([0.6, 0.4], "logprobs", ["k2"])
    r = _result(first, second)
    # logit 0.6 − logit 0.2: the second reply violates more, so the first is preferred
    assert r["p"] == pytest.approx(sig(math.log(0.6 / 0.4) - math.log(0.2 / 0.8)))
    assert r["p_order1"] == r["p_order2"] == r["p"] and r["gap"] == 0.0
    assert r["p_violates"] == [0.2, 0.6] and r["calls"] == ["k1", "k2"] and r["mode"] == "pointwise"
    # a lean towards "Yes" for every reply cancels: both scores moved by the same log-odds
    lean = [Outcome([sig(math.log(p / (1 - p)) + 2), 0], "logprobs") for p in (0.2, 0.6)]
    assert _result(*lean)["p"] == pytest.approx(r["p"])
    failed = _result(first, Outcome(None, "logprobs", ["k3"], "call_failed"))
    assert failed["p"] is None and failed["error"] == "call_failed"


def _record(hid: str, entries: list[dict]) -> dict:
    return {"human_id": hid, "principles": [{"error": None, **e} for e in entries]}


def _judged(n: int, rng, informative: dict) -> list[dict]:
    """Label records of n human pairs under 'harm' and 'style', both modes; `informative`:
    (principle, mode) -> how often that label is right (else at chance, 0.5)."""
    out = []
    for i in range(n):
        entries = []
        for pid in ("harm", "style"):
            for mode in ("pairwise", "pointwise"):
                right = rng.random() < informative.get((pid, mode), 0.5)
                x = 2.0 if right else -2.0
                if mode == "pairwise":  # plus a lean towards A of 3 in log-odds
                    entries.append({"id": pid, "p_order1": sig(x + 3), "p_order2": sig(x - 3),
                                    "p": sig(x)})
                else:
                    entries.append({"id": pid, "mode": mode, "p_order1": sig(x), "p_order2": sig(x),
                                    "p": sig(x)})
        out.append(_record(f"h{i}", entries))
    return out


def test_auto_keeps_per_principle_the_mode_people_agree_with():
    records = _judged(200, random.Random(0), {("harm", "pointwise"): 0.9, ("style", "pairwise"): 0.85})
    by_mode = {m: [judgement(r, m) for r in records] for m in ("pairwise", "pointwise")}
    report = mode_report("auto", by_mode, k=5, shrinkage=20, seed=0)
    chosen = report["label_mode"]["chosen"]
    assert chosen == {"harm": "pointwise", "style": "pairwise"}
    acc = report["label_mode"]["accuracy"]
    assert acc["pointwise"]["harm"] > 0.8 and acc["pairwise"]["harm"] < 0.65
    assert report["trust"]["harm"] > 0.5 and report["trust"]["style"] > 0.4
    assert report["map"]["modes"] == chosen
    # an AI comparison labelled both ways is read through each principle's chosen labels: harm
    # says "first" pointwise and "second" pairwise; style is at 0.5 both ways
    entries = [{"id": "harm", "mode": "pointwise", "p_order1": 0.95, "p_order2": 0.95, "p": 0.95},
               {"id": "harm", "p_order1": 0.2, "p_order2": 0.2, "p": 0.2},
               {"id": "style", "p_order1": 0.5, "p_order2": 0.5, "p": 0.5},
               {"id": "style", "mode": "pointwise", "p_order1": 0.5, "p_order2": 0.5, "p": 0.5}]
    p, trust = worth(report, [{"error": None, **e} for e in entries])
    assert p > 0.6 and trust == pytest.approx((report["trust"]["harm"] + report["trust"]["style"]) / 2)


def test_a_tie_keeps_pairwise_and_a_principle_judged_one_way_keeps_that_way():
    assert choose({"pairwise": {"a": 0.7, "b": 0.6}, "pointwise": {"a": 0.7, "c": 0.6}}) == \
        {"a": "pairwise", "b": "pairwise", "c": "pointwise"}


def test_one_mode_keeps_the_old_report_and_names_its_mode():
    records = _judged(60, random.Random(1), {("harm", "pairwise"): 0.9})
    pairwise = mode_report("pairwise", {"pairwise": [judgement(r) for r in records]}, 5, 20, 0)
    assert "modes" not in pairwise["map"] and "default" not in pairwise["map"]
    assert pairwise["label_mode"] == {"setting": "pairwise",
                                      "chosen": {"harm": "pairwise", "style": "pairwise"}}
    pointwise = mode_report("pointwise", {"pointwise": [judgement(r, "pointwise") for r in records]},
                            5, 20, 0)
    assert pointwise["map"]["default"] == "pointwise"


def _run(tmp_path, monkeypatch, mode: str) -> dict:
    cfg = small_config(tmp_path, judge="scripted:judge", **{
        "calibration.limit": 80, "calibration.heldout": 10, "prompts.limit": 12, "label.mode": mode,
        "pairs.min_margin": 0.0})
    humans = human_slice(cfg).train
    monkeypatch.setitem(backends.BACKENDS, "scripted",
                        lambda model, config: PositionBiasedScorer(model, humans, accuracy=0.9))
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    with Store(tmp_path, lock=False) as store:
        pairs = store.get_records(store.get_manifest("pairs")["ids"]).values()
    return {"agreement": metrics["judge_agreement"], "pairs": list(pairs)}


def test_auto_picks_pointwise_for_a_position_biased_judge_and_says_so(tmp_path, monkeypatch,
                                                                      fake_backend):
    pairwise = _run(tmp_path / "pairwise", monkeypatch, "pairwise")["agreement"]
    assert pairwise["raw"]["position_bias_rate"] == 1.0 and pairwise["overall_trust"] == 0.0
    auto = _run(tmp_path / "auto", monkeypatch, "auto")
    a = auto["agreement"]
    assert set(a["label_mode"]["chosen"].values()) == {"pointwise"}
    assert a["label_mode"]["setting"] == "auto"
    assert a["calibrated"]["accuracy"] > 0.7 and a["overall_trust"] > 0.2
    assert a["raw"]["position_bias_rate"] == 0.0  # what is used has no position to follow
    ai = [p for p in auto["pairs"] if p["kind"] == "comparison"]
    assert ai and any(p["weight"] > 0 for p in ai)
    assert all({x.get("mode") for x in p["provenance"]["principles"]} == {None, "pointwise"}
               for p in ai)
    from cai.publish.card import mode_lines
    [line] = mode_lines(a)
    assert line.startswith("- label mode auto") and "pointwise for `" in line
