"""The probability maths of AI labels: from choice log-probabilities or votes to a soft label.

A judge answers a multiple-choice question ("A" or "B"); its answer is a distribution over the
choices, not a coin. The same comparison is asked in both orders (position bias cancels in the
mean; the gap between the orders measures it), under K principles (an ensemble), and with
chain of thought the probability is clamped to a band because reasoned answers are overconfident
(Bai et al. 2022, section 4.1). Pure functions, tested on hand-made log-probabilities.
"""

import math

from cai.stats import logit, sigmoid


def normalise(logprobs: list[float]) -> list[float]:
    """Log-probabilities of the choices -> probabilities over the choices alone (softmax).

    The choices' raw probabilities need not sum to one (the model may put mass on other
    tokens); only their relative size is the judge's answer.
    """
    top = max(logprobs)
    exps = [math.exp(lp - top) for lp in logprobs]
    total = sum(exps)
    return [e / total for e in exps]


def from_votes(counts: list[int]) -> list[float] | None:
    """Majority voting: each choice's share of the parsed votes (None if no vote parsed)."""
    total = sum(counts)
    return [c / total for c in counts] if total else None


def both_orders(p_first_shown_a: float, p_first_shown_b: float,
                average: str = "logit") -> tuple[float, float]:
    """P(first ≻ second) from the two orders -> (mean, gap).

    Each argument is already P(first ≻ second): read off choice A when `first` was shown as A,
    off choice B when it was shown as B. A judge that always picks A gives (0.5, large gap).

    'logit' averages the log-odds: a judge's lean towards a position adds a constant b to the
    log-odds of one order and subtracts it from the other, so it cancels exactly and the
    content signal s comes back as σ(s). The plain mean of probabilities ('probability')
    cancels the lean only at s = 0 and squashes s towards 0.5 by σ'(b): with the 135M default
    (P(A) ≈ 0.85 whatever is shown) margins shrink about threefold.
    """
    gap = abs(p_first_shown_a - p_first_shown_b)
    if average == "probability":
        return (p_first_shown_a + p_first_shown_b) / 2, gap
    return sigmoid((logit(p_first_shown_a) + logit(p_first_shown_b)) / 2), gap


def clamp(p: float, band: tuple[float, float]) -> float:
    low, high = band
    return min(max(p, low), high)


def ensemble(ps: list[float | None]) -> float | None:
    """Mean over the principles that answered; None if none did."""
    ok = [p for p in ps if p is not None]
    return sum(ok) / len(ok) if ok else None


def margin(p: float) -> float:
    """How decided a label is: 0 for a coin flip, 1 for certainty either way."""
    return abs(2 * p - 1)
