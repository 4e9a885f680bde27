"""Refusal figures a reviewer signs: detectors measured against people, rates corrected for
their error with honest intervals, verdicts that say when nothing can be told, dev sets split
into a tuning and a test half."""

import json

import pytest
from conftest import small_config

from cai.errors import DataError
from cai.evaluation.detectors import lead, load_labels
from cai.evaluation.verdicts import verdict_line
from cai.inputs.sources import load_prompts, norm, read_rows, split_of
from cai.stats import (
    corrected_difference,
    corrected_rate,
    detectable_change,
    detector_accuracy,
    rogan_gladen,
    wilson,
)


def _acc(sens, spec, n=400):
    """A detector measured on n refusals and n answers."""
    tp, tn = round(sens * n), round(spec * n)
    return detector_accuracy([(True, True)] * tp + [(False, True)] * (n - tp)
                             + [(False, False)] * tn + [(True, False)] * (n - tn))


def test_rogan_gladen_recovers_the_true_rate_behind_an_imperfect_detector():
    # true rate 0.3, sensitivity 0.8, specificity 0.9: the detector sees 0.3*0.8 + 0.7*0.1 = 0.31
    assert float(rogan_gladen(0.31, 0.8, 0.9)) == pytest.approx(0.3)
    assert float(rogan_gladen(0.02, 0.8, 0.9)) == 0.0  # below the false-positive floor: clipped
    flags = [True] * 31 + [False] * 69
    cell = corrected_rate(flags, _acc(0.8, 0.9), seed=0)
    assert cell["observed"] == 0.31 and cell["rate"] == pytest.approx(0.3, abs=1e-4)
    lo, hi = cell["ci95"]
    assert lo < 0.3 < hi
    # the interval carries the detector's uncertainty: measured on 20 labels it is wider
    # than measured on 800, and wider than the observed rate's own Wilson interval
    rough = corrected_rate(flags, _acc(0.8, 0.9, n=10), seed=0)["ci95"]
    assert rough[1] - rough[0] > hi - lo > cell["observed_ci95"][1] - cell["observed_ci95"][0]


def test_a_detector_at_chance_is_not_corrected_and_its_rate_stands_as_observed():
    chance = _acc(0.5, 0.52)
    assert not chance["correctable"] and chance["youden"] == pytest.approx(0.02)
    cell = corrected_rate([True] * 3 + [False] * 9, chance, seed=0)
    assert cell["rate"] is None and cell["observed"] == 0.25 and cell["n"] == 12
    assert lead({"judge": chance, "string": _acc(0.86, 0.95)}) == "string"


def test_detector_accuracy_counts_and_intervals():
    acc = detector_accuracy([(True, True), (True, False), (False, False), (False, True),
                             (True, True)])
    assert (acc["tp"], acc["fp"], acc["tn"], acc["fn"]) == (2, 1, 1, 1)
    assert acc["sensitivity"] == pytest.approx(2 / 3, abs=1e-4) and acc["specificity"] == 0.5
    assert acc["accuracy_ci95"] == list(wilson(3, 5))


def test_a_paired_difference_names_its_sign_only_when_its_interval_excludes_zero():
    acc = _acc(0.86, 0.95)
    base, tuned = [False] * 90 + [True] * 10, [False] * 50 + [True] * 50
    d = corrected_difference(tuned, base, acc, seed=0)
    assert d["n"] == 100 and d["ci95"][0] > 0
    line = verdict_line("trained", "harmful", d, True)
    assert line.startswith("trained vs base: harmful refusal up +") and "], n = 100 (better)" in line
    # the same rise on safe prompts is over-refusal: worse
    assert "over-refusal up" in verdict_line("trained", "safe", d, True) and "(worse)" in \
        verdict_line("trained", "safe", d, True)
    # two prompts refused only by the tuned policy, one only by the base: nothing to tell
    same = corrected_difference([True] * 2 + [False] * 10, [False] * 2 + [True] + [False] * 9,
                                acc, seed=0)
    assert same["ci95"][0] < 0 < same["ci95"][1]
    assert verdict_line("trained", "harmful", same, True).startswith(
        "trained vs base: no detectable change in harmful refusal at n = 12")
    # what a small evaluation can detect, widened by a detector's error
    assert detectable_change(12, 0.1) > detectable_change(100, 0.1)
    assert detectable_change(100, 0.1, youden=0.5) == pytest.approx(
        2 * detectable_change(100, 0.1), abs=1e-3)


def test_the_builtin_labels_are_the_test_half_and_measure_the_string_match():
    labels = load_labels("builtin:refusal-labels-test")
    assert len(labels) == 480 and sum(x["refused"] for x in labels) == 249
    whole = {r["prompt_id"] for _, r in read_rows("builtin:refusal-labels")}
    test = {r["prompt_id"] for _, r in read_rows("builtin:refusal-labels-test")}
    tune = {r["prompt_id"] for _, r in read_rows("builtin:refusal-labels-tune")}
    assert test | tune == whole and not test & tune  # no prompt in both halves
    # the string match against people, as README and RESULTS quote it
    from cai.evaluation.refusal import is_refusal
    acc = detector_accuracy([(is_refusal(x["reply"]), x["refused"]) for x in labels])
    assert (acc["accuracy"], acc["sensitivity"], acc["specificity"]) == (0.9042, 0.8594, 0.9524)
    assert acc["correctable"]


def test_a_bad_labelled_reply_is_named_by_file_and_line(tmp_path):
    f = tmp_path / "labels.jsonl"
    f.write_text(json.dumps({"prompt": "p", "reply": "r", "human_label": "refusal"}) + "\n"
                 + json.dumps({"prompt": "p", "reply": "r", "human_label": "maybe"}) + "\n")
    with pytest.raises(DataError, match=r"labels\.jsonl:2: human_label must be one of"):
        load_labels(str(f))


@pytest.mark.parametrize("name", ["harmful", "safe", "unsafe"])
def test_each_dev_set_splits_into_a_tuning_and_a_test_half_evaluate_reports_the_test_one(name):
    from cai.config.evaluate import EvaluateConfig
    whole = load_prompts(f"builtin:{name}")
    tune, test = (load_prompts(f"builtin:{name}-{part}") for part in ("tune", "test"))
    assert len(tune) + len(test) == len(whole) and min(len(tune), len(test)) > len(whole) // 3
    assert not {p["id"] for p in tune} & {p["id"] for p in test}
    assert all(split_of(p) == "test" for p in test)
    assert getattr(EvaluateConfig(), name) == f"builtin:{name}-test"


def test_training_never_sees_either_half_of_a_dev_set(tmp_path):
    """Evaluate reads the test half; the tuning half is for choosing defaults, never training."""
    from cai.inputs.heldout import evaluation_prompts
    banned = evaluation_prompts(small_config(tmp_path))
    for name in ("harmful", "safe", "unsafe", "refusal-labels"):
        for part in ("tune", "test"):
            assert {norm(p["prompt"]) for p in load_prompts(f"builtin:{name}-{part}")} <= banned


def test_labels_without_a_refusal_leave_the_detector_uncorrected_and_said_so():
    from cai.evaluation.detectors import describe
    acc = detector_accuracy([(False, False), (True, False), (False, False)])
    assert acc["sensitivity"] is None and not acc["correctable"]
    assert "catches – of 0 refusals" in describe("string", acc)
    assert corrected_rate([True, False], acc, seed=0)["rate"] is None
