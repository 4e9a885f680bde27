import pytest

from cai.feedback.calibration import _slot, calibration_report

# Slot bits (X is the chosen reply, a tie goes to X) for seed 0, checked in test_slot_bits;
# the hand computations below rely on them.
SLOTS = {"hh-0001": (True, False), "hh-0002": (True, True), "hh-0003": (True, True),
         "hh-0004": (False, True), "hh-0005": (False, False), "hh-0006": (True, True)}
BALANCED = ["hh-0001", "hh-0002", "hh-0004", "hh-0005"]  # X is chosen for two, rejected for two


def J(pid, p1, p2, p=None, principles=None):
    p = (p1 + p2) / 2 if p is None else p
    entry = {"p_order1": p1, "p_order2": p2, "p": p}
    return {"id": pid, **entry, "principles": principles or {"only": entry}}


def test_slot_bits():
    assert {i: _slot(i, 0) for i in SLOTS} == SLOTS


def test_empty():
    assert calibration_report([]) == {"n": 0}


def test_perfect_judge():
    r = calibration_report([J(i, 0.9, 0.9) for i in BALANCED])
    assert r["n"] == 4 and r["accuracy"] == 1 and r["ties"] == 0
    assert r["cohen_kappa"] == 1
    assert r["position_bias_rate"] == 0 and r["order_consistency"] == 1
    assert r["first_position_rate"] == 0.5  # A picked in order 1, B in order 2
    assert r["mean_order_gap"] == 0 and r["brier"] == 0.01 and r["mean_p_chosen"] == 0.9


def test_pure_position_bias():
    r = calibration_report([J(i, 0.9, 0.1) for i in BALANCED])
    assert r["accuracy"] == 0.5 and r["ties"] == 4  # p == 0.5 everywhere
    assert r["accuracy_chosen_first"] == 1 and r["accuracy_chosen_second"] == 0
    assert r["position_bias_rate"] == 1 and r["order_consistency"] == 0
    assert r["first_position_rate"] == 1 and r["mean_order_gap"] == 0.8
    # p_X = 0.5 everywhere, so the tie bit decides: human T,T,F,F vs judge F,T,T,F.
    # po = 2/4, both marginals 1/2, pe = 1/2 -> kappa 0.
    assert r["cohen_kappa"] == 0


def test_always_wrong_judge():
    r = calibration_report([J(i, 0.1, 0.1) for i in BALANCED])
    assert r["accuracy"] == 0 and r["cohen_kappa"] == -1  # po 0, pe 1/2
    assert r["position_bias_rate"] == 0 and r["brier"] == 0.81


def test_ties_in_order_rates():
    # A tie counts as "not chosen": tie + rejected is consistent, tie + chosen is position bias.
    r = calibration_report([J("hh-0001", 0.5, 0.3), J("hh-0002", 0.5, 0.7)])
    assert r["position_bias_rate"] == 0.5 and r["order_consistency"] == 0.5
    assert r["accuracy_chosen_first"] == 0.5  # both ties
    # A-picks over 4 single judgements: tie 0.5, tie 0.5, order2 p 0.3 -> A (1), 0.7 -> B (0).
    assert r["first_position_rate"] == 0.5


SIX = [J("hh-0001", 0.8, 0.8), J("hh-0002", 0.3, 0.3), J("hh-0003", 0.6, 0.6),
       J("hh-0004", 0.7, 0.7), J("hh-0005", 0.4, 0.4), J("hh-0006", 0.9, 0.9)]


def test_kappa_by_hand():
    # p_X = p where X is chosen (01, 02, 03, 06) else 1 - p:
    #   p_X:   .8  .3  .6  .3  .6  .9
    #   human:  T   T   T   F   F   T     (X is chosen)   -> P(T) = 4/6
    #   judge:  T   F   T   F   T   T     (p_X > 0.5)     -> P(T) = 4/6
    # po = 4/6; pe = (4/6)^2 + (2/6)^2 = 5/9; kappa = (2/3 - 5/9) / (1 - 5/9) = 0.25
    r = calibration_report(SIX)
    assert r["cohen_kappa"] == 0.25
    assert r["accuracy"] == pytest.approx(4 / 6, abs=1e-4)


def test_reliability_and_ece_by_hand():
    # bin [.3,.4): p_X .3 (X chosen), .3 (rejected) -> mean .3, observed .5, gap .2
    # bin [.6,.7): .6 (chosen), .6 (rejected)       -> mean .6, observed .5, gap .1
    # bin [.8,.9): .8 (chosen) gap .2; bin [.9,1]: .9 (chosen) gap .1
    # ECE = (2*.2 + 2*.1 + .2 + .1) / 6 = 0.15
    r = calibration_report(SIX)
    table = r["reliability"]
    assert len(table) == 10 and sum(b["n"] for b in table) == 6
    assert table[3] == {"lo": 0.3, "hi": 0.4, "n": 2, "mean_p": 0.3, "observed": 0.5}
    assert table[6] == {"lo": 0.6, "hi": 0.7, "n": 2, "mean_p": 0.6, "observed": 0.5}
    assert table[0] == {"lo": 0.0, "hi": 0.1, "n": 0, "mean_p": None, "observed": None}
    assert r["ece"] == 0.15


def test_probability_one_goes_in_last_bin():
    # hh-0001: X chosen, p_X = 1.0; hh-0004: X rejected, p = 0 -> p_X = 1.0 too.
    r = calibration_report([J("hh-0001", 1.0, 1.0), J("hh-0004", 0.0, 0.0)], bins=4)
    assert [b["n"] for b in r["reliability"]] == [0, 0, 0, 2]
    assert r["reliability"][3]["observed"] == 0.5 and r["ece"] == 0.5


def test_calibrated_judge_has_zero_ece():
    # Right 80% of the time at confidence 0.8, with X chosen in half the pairs of each kind:
    # bin .8 holds 40 (X chosen, p .8) + 10 (X rejected, p .2) -> observed .8, and bin .2 mirrors.
    ids = [f"c-{i}" for i in range(400)]
    chosen = [i for i in ids if _slot(i, 0)[0]][:50]
    rejected = [i for i in ids if not _slot(i, 0)[0]][:50]
    js = [J(i, p, p) for group in (chosen, rejected) for k, i in enumerate(group)
          for p in [0.8 if k < 40 else 0.2]]
    r = calibration_report(js)
    assert r["accuracy"] == 0.8 and r["ece"] == 0
    assert [b["n"] for b in r["reliability"] if b["n"]] == [50, 50]


def test_per_principle_split():
    both = {"b-rule": {"p_order1": 0.3, "p_order2": 0.1, "p": 0.2},
            "a-rule": {"p_order1": 0.9, "p_order2": 0.9, "p": 0.9}}
    only_a = {"a-rule": {"p_order1": 0.9, "p_order2": 0.1, "p": 0.5}}
    r = calibration_report([J("hh-0001", 0.6, 0.5, 0.55, both), J("hh-0002", 0.9, 0.1, 0.5, only_a)])
    assert list(r["per_principle"]) == ["a-rule", "b-rule"]
    assert r["per_principle"]["a-rule"] == {"n": 2, "accuracy": 0.75, "position_bias_rate": 0.5,
                                            "mean_p_chosen": 0.7}
    assert r["per_principle"]["b-rule"] == {"n": 1, "accuracy": 0.0, "position_bias_rate": 0.0,
                                            "mean_p_chosen": 0.2}


def test_seed_moves_slots_not_accuracy():
    js = [J(i, 0.8, 0.6) for i in SLOTS]
    a, b = calibration_report(js, seed=0), calibration_report(js, seed=1)
    assert a["accuracy"] == b["accuracy"] == 1
    assert [_slot(i, 0) for i in SLOTS] != [_slot(i, 1) for i in SLOTS]
