import math

import pytest
from conftest import ROOT

from cai.backends.client import Result
from cai.config.models import JudgeConfig
from cai.constitution import load_constitution
from cai.feedback.filters import check_revision, clean_revision
from cai.feedback.judge import choice_probs, compare, verdicts
from cai.feedback.probability import both_orders, clamp, ensemble, from_votes, margin, normalise
from cai.feedback.structured import ParseError, generate_parsed, parse_choice, parse_text

LOGPROBS = JudgeConfig(scoring="logprobs")
VOTE = JudgeConfig(scoring="vote", votes=5, parse_retries=1)


class ScriptedClient:
    """A judge whose answers are functions of the messages: log-probabilities for `choices`,
    text for `generate` (given the sample index, so votes can differ)."""
    spec = "scripted:judge"

    def __init__(self, logprobs=None, text=None):
        self.logprobs, self.text, self.generated = logprobs, text, []

    def choices(self, msgs, choices, desc=""):
        return [Result(f"c{i}", logprobs=self.logprobs(m)) for i, m in enumerate(msgs)]

    def generate(self, msgs, params, seed=0, samples=None, desc="", schema=None):
        samples = samples or [0] * len(msgs)
        self.generated += list(zip(msgs, samples))
        return [Result(f"g{len(self.generated)}-{i}", text=self.text(m, s))
                for i, (m, s) in enumerate(zip(msgs, samples))]


def _constitution():
    return load_constitution(ROOT / "principles.yaml")


def _item(c, first="GOOD", second="BAD"):
    return {"principle": c.principles[0], "prompt": "q", "first": first, "second": second}


def _a_is_good(m) -> bool:
    text = next(x for x in m if x["role"] == "user" and "Response A" in x["content"])["content"]
    return text.index("GOOD") < text.index("BAD")


# -- the probability maths, on hand-made log-probabilities ---------------------------------

def test_normalise_is_a_softmax_over_the_choices_alone():
    assert normalise([math.log(0.2), math.log(0.6)]) == pytest.approx([0.25, 0.75])
    assert sum(normalise([-1000.0, -1001.0])) == pytest.approx(1.0)  # no underflow
    assert normalise([math.log(0.1)] * 3) == pytest.approx([1 / 3] * 3)


def test_order_averaging_clamping_ensembles_and_votes():
    assert both_orders(0.9, 0.1) == pytest.approx((0.5, 0.8))  # pure position bias
    assert both_orders(0.8, 0.6, "probability") == pytest.approx((0.7, 0.2))
    # In log-odds a constant lean b towards A cancels: logit 2 + b and 2 - b average to 2.
    lean, s = 1.5, 0.4
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    p, gap = both_orders(sig(s + lean), sig(s - lean))
    assert p == pytest.approx(sig(s)) and gap == pytest.approx(sig(s + lean) - sig(s - lean))
    assert both_orders(sig(s + lean), sig(s - lean), "probability")[0] < sig(s)  # squashed
    assert both_orders(1.0, 0.0)[0] == pytest.approx(0.5)  # certain answers stay finite
    assert clamp(0.97, (0.4, 0.6)) == 0.6 and clamp(0.02, (0.4, 0.6)) == 0.4
    assert clamp(0.55, (0.4, 0.6)) == 0.55
    assert ensemble([0.9, 0.6, None]) == pytest.approx(0.75) and ensemble([None]) is None
    assert from_votes([3, 1, 0]) == pytest.approx([0.75, 0.25, 0.0]) and from_votes([0, 0]) is None
    assert margin(0.5) == 0 and margin(0.9) == pytest.approx(0.8) == margin(0.1)


# -- comparisons, verdicts and the voting fallback -------------------------------------------

def test_both_orders_cancel_a_pure_position_bias():
    always_a = ScriptedClient(lambda m: [math.log(0.9), math.log(0.1)])
    [s] = compare(always_a, _constitution(), [_item(_constitution(), "x", "y")], LOGPROBS)
    assert s["p_order1"] == pytest.approx(0.9) and s["p_order2"] == pytest.approx(0.1)
    assert s["p"] == pytest.approx(0.5) and s["gap"] == pytest.approx(0.8)
    assert s["method"] == "logprobs" and len(s["calls"]) == 2 and s["error"] is None


def test_both_orders_follow_content():
    judge = ScriptedClient(lambda m: [math.log(0.8), math.log(0.2)] if _a_is_good(m)
                           else [math.log(0.2), math.log(0.8)])
    [s] = compare(judge, _constitution(), [_item(_constitution())], LOGPROBS)
    assert s["p"] == pytest.approx(0.8) and s["gap"] == pytest.approx(0.0)


def test_chain_of_thought_reasons_first_then_scores_and_clamps():
    c = _constitution()
    judge = ScriptedClient(lambda m: [math.log(0.99), math.log(0.01)] if _a_is_good(m)
                           else [math.log(0.01), math.log(0.99)],
                           text=lambda m, s: "GOOD is kinder than BAD, so the answer is clear.")
    [s] = compare(judge, c, [_item(c)], LOGPROBS, cot=True, cot_clamp=(0.4, 0.6))
    assert s["p_order1"] == 0.6 and s["p_order2"] == 0.6 and s["p"] == pytest.approx(0.6)
    assert s["reasoning"] == ["GOOD is kinder than BAD, so the answer is clear."] * 2
    assert len(s["calls"]) == 4  # two reasonings, two scored choices
    asked = judge.generated[0][0][-1]["content"]
    assert "Think step by step" in asked


def test_voting_fallback_counts_parsed_answers_and_retries_unparseable_ones():
    c = _constitution()

    def answers(m, sample):  # sample 4 rambles once; its retry (sample 9) answers
        if sample == 4:
            return "Hmm, hard to say."
        good = "A" if _a_is_good(m) else "B"
        return f"Answer: {good}" if sample != 3 else f"Answer: {'B' if good == 'A' else 'A'}"
    judge = ScriptedClient(text=answers)
    [s] = compare(judge, c, [_item(c)], VOTE)
    assert s["method"] == "vote" and s["votes"] == [[4, 1], [1, 4]]
    assert s["p_order1"] == pytest.approx(0.8) and s["p"] == pytest.approx(0.8)
    assert sorted({smp for _, smp in judge.generated}) == [0, 1, 2, 3, 4, 9]


def test_a_vote_that_never_parses_is_a_recorded_failure():
    judge = ScriptedClient(text=lambda m, s: "I would rather not say.")
    [o] = choice_probs(judge, [[{"role": "user", "content": "?"}]], ("Yes", "No"), VOTE, 0, "v")
    assert o.probs is None and o.error == "no choice" and o.method == "vote"
    assert len(o.calls) == 10  # 5 votes, each asked once more


def test_contextual_calibration_removes_the_judges_lean():
    c = _constitution()
    leans_yes = ScriptedClient(lambda m: [math.log(0.7), math.log(0.3)])
    item = {"principle": c.principles[0], "prompt": "q", "response": "r", "critique": "c"}
    probs, raw, _ = verdicts(leans_yes, c, [item], LOGPROBS, calibrate=True)
    assert raw[0] == pytest.approx(0.7) and probs[0] == pytest.approx(0.5)
    probs, _, _ = verdicts(leans_yes, c, [item], LOGPROBS, calibrate=False)
    assert probs[0] == pytest.approx(0.7)


def test_a_failed_content_free_call_fails_the_verdict_instead_of_uncalibrating_it():
    """Before, a stored failure of the content-free call silently turned calibration off for
    its principle, and the verdict's record never said so."""
    c = _constitution()

    class FailsOnNA(ScriptedClient):
        def choices(self, msgs, choices, desc=""):
            out = super().choices(msgs, choices, desc)
            return [Result(r.key, error="transient: refused") if "N/A" in str(m) else r
                    for r, m in zip(out, msgs)]
    judge = FailsOnNA(lambda m: [math.log(0.7), math.log(0.3)])
    item = {"principle": c.principles[0], "prompt": "q", "response": "r", "critique": "c"}
    probs, _, [outcome] = verdicts(judge, c, [item], LOGPROBS, calibrate=True)
    assert probs == [None] and outcome.error == "call_failed"
    assert len(outcome.calls) == 2  # the verdict is named by the content-free call too


# -- structured answers ------------------------------------------------------------------------

def test_parse_choice():
    ab = ("A", "B")
    assert parse_choice("B", ab) == 1 and parse_choice("(a).", ab) == 0
    assert parse_choice("**Response B** is better", ab) == 1
    assert parse_choice("A is blunt but B is cruel. Answer: A", ab) == 0
    assert parse_choice("Yes.", ("Yes", "No")) == 0
    for bad, why in (("", "no choice"), ("A or B, both fine", "several choices"),
                     ("Certainly!", "no choice")):
        with pytest.raises(ParseError, match=why):
            parse_choice(bad, ab)


@pytest.mark.parametrize("answer, choice", [
    # the article "a" is never the letter A
    ("This is a safer reply.", None),
    ("Response B is a better answer", "B"),
    ("The answer is a tricky one, but B", "B"),
    ("A better answer would be B.", "B"),
    ("A good reply declines politely; Response A does that.", "A"),
    ("I think this is a case where neither is great.", None),
    # the formats a judge writes when asked for the letter
    ("Answer: **B**", "B"), ("The correct answer is: Response A", "A"), ("Final answer: b", "B"),
    ("(B)", "B"), ("Response A.", "A"), ("B.\n\nResponse B refuses the request.", "B"),
    ("I prefer A because it declines to give instructions.", "A"),
    ("Both replies are poor, but B is less harmful.", "B"),
    ("A is blunt, B is cruel.", "several"), ("B over A.", "B"),
    # a letter named against itself is never a vote for it
    ("A is more harmful than B.", "B"), ("Response A is worse.", "B"), ("not A", "B"),
    ("Answer: not A", "B"), ("Response A is more harmful, so the answer is B.", "B"),
    ("Response B fails the principle.", "A"), ("Response A does not follow the principle.", "B"),
    ("A is less helpful than B.", "B"), ("A is less harmful than B.", "A"),
    ("A is not harmful.", "A"), ("A is not the better one.", "B"),
    ("B is worse. Answer: A", "A"), ("I prefer B over A.", "B"),
    # Yes/No: the first word decides; a later "no" in prose is not the answer
    ("no, it does not violate the principle.", "No"),
    ("Yes, the response gives dangerous details. No safe alternative is offered.", "Yes"),
    ("The response does not violate it. No.", "No"),
    ("There is no harm here.", None),
])
def test_parse_choice_on_real_looking_judge_answers(answer, choice):
    choices = ("Yes", "No") if choice in ("Yes", "No") or "harm here" in answer else ("A", "B")
    if choice in (None, "several"):
        with pytest.raises(ParseError, match="no choice" if choice is None else "several"):
            parse_choice(answer, choices)
    else:
        assert choices[parse_choice(answer, choices)] == choice


def test_parse_text_refuses_empty_looping_and_echoed_answers():
    assert parse_text("  It gives lock-picking steps.  ") == "It gives lock-picking steps."
    for bad, why in (("", "empty"), ("no no no " * 10, "looping"),
                     ("The user's request:\n```", "echoes the prompt")):
        with pytest.raises(ParseError, match=why):
            parse_text(bad)


def test_generate_parsed_retries_boundedly_then_records_the_failure():
    texts = {0: "", 1: "Still nothing useful? no no no no no no no no no no no no", 2: "Fine."}
    judge = ScriptedClient(text=lambda m, s: texts.get(s, ""))
    from cai.backends import SamplingParams
    msgs = [[{"role": "user", "content": "x"}]]
    values, failures, keys = generate_parsed(judge, msgs, SamplingParams(8, 0.0), parse_text, 2, 0, "t")
    assert values == ["Fine."] and failures == [None] and len(keys[0]) == 3
    values, failures, keys = generate_parsed(judge, msgs, SamplingParams(8, 0.0), parse_text, 1, 0, "t")
    assert values == [None] and failures == ["looping"] and len(keys[0]) == 2


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


def test_reward_auc_is_the_chance_a_chosen_reply_outscores_a_rejected_one():
    from cai.stats import roc_auc as pair_auc
    assert pair_auc([(2.0, 1.0), (3.0, 0.0)]) == 1.0
    # chosen {1, 3}, rejected {2, 0}: 1>0, 3>2, 3>0 win, 1<2 loses -> 3/4
    assert pair_auc([(1.0, 2.0), (3.0, 0.0)]) == 0.75
    assert pair_auc([(1.0, 1.0)]) == 0.5 and pair_auc([]) is None
