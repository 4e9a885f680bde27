"""Pointwise labels: each candidate scored alone, the comparison derived from the two scores.

Small judges fail pairwise questions by position bias alone (the embedded 135M model picks A
whatever it is shown), yet some score single replies well. A pointwise label asks each reply its
principle's own question, the critique request answered Yes/No without a written critique (the
form the judge-as-reward asks: `render_direct_verdict`), and turns the two answers into the raw

    P(first ≻ second) = σ(logit P(second violates) − logit P(first violates)).

A judge's constant lean towards "Yes" cancels in the difference. What a log-odds difference is
worth in people's terms is the calibration map's business, fit on the human slice exactly as for
a pairwise label: a pointwise label is the same question in both orders, so its two orders are
equal and its order gap is 0. A reply asked under the same principle in several comparisons is
asked once (the call is the same; the client answers it once).
"""

from cai.constitution.render import VERDICT_CHOICES, render_direct_verdict
from cai.feedback.judge import Outcome, choice_probs
from cai.stats import logit, sigmoid

MODE = "pointwise"


def score_pairs(client, constitution, items: list[dict], judge_cfg, seed: int = 0,
                desc: str = "score") -> list[dict]:
    """P(first ≻ second) for items {principle, prompt, first, second} from the two replies'
    P(violates), in the shape of `judge.compare`'s results plus `mode` and `p_violates`."""
    asks, index = [], {}
    for it in items:
        for reply in (it["first"], it["second"]):
            key = (it["principle"].id, it["prompt"], reply)
            if key not in index:
                index[key] = len(asks)
                asks.append(render_direct_verdict(constitution, it["principle"], it["prompt"],
                                                  reply)[0])
    if not asks:
        return []
    outcomes = choice_probs(client, asks, VERDICT_CHOICES, judge_cfg, seed, desc)
    return [_result(*(outcomes[index[(it["principle"].id, it["prompt"], it[side])]]
                      for side in ("first", "second")))
            for it in items]


def _result(first: Outcome, second: Outcome) -> dict:
    error = first.error or second.error
    out = {"mode": MODE, "method": first.method if first.method != "-" else second.method,
           "calls": first.calls + second.calls, "error": error, "p_order1": None,
           "p_order2": None, "p": None, "gap": None, "p_violates": None}
    if error:
        return out
    v_first, v_second = first.probs[0], second.probs[0]  # P("Yes": the reply violates)
    p = sigmoid(logit(v_second) - logit(v_first))
    out.update(p_order1=p, p_order2=p, p=p, gap=0.0, p_violates=[v_first, v_second])
    return out
