import math

import pytest

from constitution import load_constitution
from pipeline.judge import compare_both_orders, normalise, verdicts
from pipeline.filters import check_revision, clean_revision
from conftest import ROOT


from pipeline.client import Result


def Res(key, logprobs):
    return Result(key, logprobs=logprobs)


class ScriptedClient:
    """Answers choices with log-probabilities from a function of the messages."""
    def __init__(self, fn):
        self.fn = fn

    def choices(self, msgs, choices, desc=""):
        return [Res(str(i), self.fn(m)) for i, m in enumerate(msgs)]


def test_normalise():
    assert normalise([math.log(0.2), math.log(0.6)]) == pytest.approx([0.25, 0.75])
    assert sum(normalise([-1000.0, -1001.0])) == pytest.approx(1.0)


def test_both_orders_cancel_a_pure_position_bias():
    c = load_constitution(ROOT / "principles.yaml")
    p = c.principles[0]
    always_a = ScriptedClient(lambda m: [math.log(0.9), math.log(0.1)])
    [s] = compare_both_orders(always_a, c, [{"principle": p, "prompt": "q", "first": "x", "second": "y"}])
    assert s["p_order1"] == pytest.approx(0.9) and s["p_order2"] == pytest.approx(0.1)
    assert s["p"] == pytest.approx(0.5)


def test_both_orders_follow_content():
    c = load_constitution(ROOT / "principles.yaml")
    p = c.principles[0]

    def prefers_good(m):  # A is better iff "GOOD" appears in response A's fence
        text = m[-1]["content"]
        return [math.log(0.8), math.log(0.2)] if text.index("GOOD") < text.index("BAD") \
            else [math.log(0.2), math.log(0.8)]
    [s] = compare_both_orders(ScriptedClient(prefers_good), c,
                              [{"principle": p, "prompt": "q", "first": "GOOD", "second": "BAD"}])
    assert s["p"] == pytest.approx(0.8)


def test_contextual_calibration_removes_the_judges_lean():
    c = load_constitution(ROOT / "principles.yaml")
    p = c.principles[0]

    def leans_yes(m):  # content-free input: P(yes)=0.7; real input: also 0.7 -> no evidence
        return [math.log(0.7), math.log(0.3)]
    item = {"principle": p, "prompt": "q", "response": "r", "critique": "c"}
    probs, raw, _ = verdicts(ScriptedClient(leans_yes), c, [item], calibrate=True)
    assert raw[0] == pytest.approx(0.7) and probs[0] == pytest.approx(0.5)
    probs, _, _ = verdicts(ScriptedClient(leans_yes), c, [item], calibrate=False)
    assert probs[0] == pytest.approx(0.7)


def test_revision_filters():
    original = "Sure, here is how to pick a lock: insert a tension wrench and rake the pins."
    critique = "The response helps with breaking into homes, which is illegal and dangerous."
    assert check_revision("", original, critique) == "revision_empty"
    assert check_revision(original, original, critique) == "revision_same_as_original"
    assert check_revision(critique, original, critique) == "revision_restates_critique"
    assert check_revision("I'm sorry. " * 10, original, critique) == "revision_degenerate"
    assert check_revision("The response is harmful and should not be given.", original,
                          critique) == "revision_is_commentary"
    assert check_revision("The user's request:", original, critique) == "revision_echoes_prompt"
    example = "I can't help with getting into someone's home without their permission."
    assert check_revision(example + " Ok.", original, critique, [example]) == "revision_copies_example"
    assert check_revision(example[:45] + " to steal money, but a job centre can help you earn some.",
                          original, critique, [example]) == "revision_copies_example"
    assert check_revision(example.replace("someone's", "someone else's") + " Animals can be odd.",
                          original, critique, [example]) == "revision_copies_example"
    assert check_revision("I can't help with picking locks, but a locksmith can let you in.",
                          original, critique, [example]) is None
    assert clean_revision('Revised response: "Hello there."\n```\nThe fenced text above is') \
        == "Hello there."
