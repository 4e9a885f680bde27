"""The judge: verdicts and pairwise comparisons as probabilities, from choice log-probabilities.

The judge never has to produce parseable text for a decision: it is asked a multiple-choice
question and the next-token log-probabilities of the choices ("Yes"/"No", "A"/"B") are
normalised into a probability. So an answer always "parses"; a failed call is recorded as such.
"""

import math

from constitution import render_comparison, render_verdict


def normalise(logprobs: list[float]) -> list[float]:
    """Log-probabilities of the choices -> probabilities over the choices alone (softmax)."""
    top = max(logprobs)
    exps = [math.exp(lp - top) for lp in logprobs]
    total = sum(exps)
    return [e / total for e in exps]


def verdicts(client, constitution, items: list[dict], calibrate: bool = True, desc="verdict"):
    """P(violates) for items {principle, prompt, response, critique}; None where a call failed.

    With `calibrate`, each principle's answer is divided by its answer on a content-free input
    ("N/A" everywhere: contextual calibration, Zhao et al. 2021), so a judge that leans "Yes"
    to every question is measured against its own lean instead of against 0.5.
    Returns (probabilities, raw uncalibrated probabilities, results).
    """
    rendered = [render_verdict(constitution, it["principle"], it["prompt"], it["response"],
                               it["critique"]) for it in items]
    if not rendered:
        return [], [], []
    results = client.choices([m for m, _ in rendered], rendered[0][1], desc=desc)
    baseline = _content_free(client, constitution, items) if calibrate else {}
    probs, raw = [], []
    for it, r in zip(items, results):
        if r.error:
            probs.append(None), raw.append(None)
            continue
        raw.append(normalise(r.logprobs)[0])
        base = baseline.get(it["principle"].id, [0.0] * len(r.logprobs))
        probs.append(normalise([lp - b for lp, b in zip(r.logprobs, base)])[0])
    return probs, raw, results


def _content_free(client, constitution, items) -> dict:
    """principle id -> log-probabilities of the choices for a content-free verdict prompt."""
    principles = {it["principle"].id: it["principle"] for it in items}
    msgs = [render_verdict(constitution, p, "N/A", "N/A", "N/A")[0] for p in principles.values()]
    results = client.choices(msgs, render_verdict(constitution, next(iter(principles.values())),
                                                  "N/A", "N/A", "N/A")[1], desc="calibrate")
    return {pid: r.logprobs for pid, r in zip(principles, results)
            if not r.error and not r.planned}


def compare_both_orders(client, constitution, items: list[dict], desc="compare"):
    """P(first ≻ second) for items {principle, prompt, first, second}, judged in both orders.

    Order 1 shows `first` as A; order 2 shows it as B. Returns per item
    {"p_order1", "p_order2", "p" (their mean), "calls"}; p_* is None where a call failed.
    """
    msgs, choices = [], None
    for it in items:
        for a, b in ((it["first"], it["second"]), (it["second"], it["first"])):
            m, choices = render_comparison(constitution, it["principle"], it["prompt"], a, b)
            msgs.append(m)
    if not msgs:
        return []
    results = client.choices(msgs, choices, desc=desc)
    out = []
    for i in range(len(items)):
        r1, r2 = results[2 * i], results[2 * i + 1]
        p1 = None if r1.error else normalise(r1.logprobs)[0]  # P(A) with first as A
        p2 = None if r2.error else normalise(r2.logprobs)[1]  # P(B) with first as B
        p = None if p1 is None or p2 is None else (p1 + p2) / 2
        out.append({"p_order1": p1, "p_order2": p2, "p": p, "calls": [r1.key, r2.key]})
    return out
