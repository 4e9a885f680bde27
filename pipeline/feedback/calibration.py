"""How well the AI judge agrees with human preference labels, and how far it can be trusted.

The judge's pairwise probabilities become training labels, so before trusting them we score
the judge on human preference pairs (where the human's "chosen" reply is the truth):

- accuracy: how often the judge prefers the human-chosen reply;
- order effects: whether the verdict survives swapping the replies (position bias), since a
  judge that just picks "A" looks fine on average but its labels are noise;
- Cohen's kappa: agreement beyond chance with the human label;
- calibration (ECE and a reliability table): whether "p = 0.8" is right about 80% of the time,
  which matters because the probabilities, not just the decisions, are used downstream.

Input is one judgement per human pair (see `calibration_report`). Standard library only.
"""

import hashlib


def _vote(p: float) -> float:
    # A tie is scored 0.5: the expected score of the coin flip that would break it.
    return 1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def _share(ps) -> float:
    """Share of probabilities above 0.5, ties counting 0.5: the one "how often it picks" rule."""
    return _mean(_vote(p) for p in ps)


def _r(x):
    return None if x is None else round(x, 4)


def _position_bias(entries) -> float:
    # Both p_order* are P(chosen), so differing decisions mean the judge followed the position
    # (A twice or B twice). A tie counts as "not chosen" here: it has no position to follow,
    # so a tie in one order and a pick of the rejected reply in the other is consistent.
    return _mean(float((e["p_order1"] > 0.5) != (e["p_order2"] > 0.5)) for e in entries)


def _slot(pair_id: str, seed: int) -> tuple[bool, bool]:
    """Two deterministic pseudo-random bits for a pair: (X is the chosen reply, tie goes to X)."""
    byte = hashlib.sha256(f"{seed}/{pair_id}".encode("utf-8")).digest()[0]
    return bool(byte & 1), bool(byte & 2)


def _slotted(judgements, seed):
    """(p_X, X is chosen, judge says X) per pair, for a random reply X of the pair.

    The human always labels the chosen reply, so against the raw labels kappa is degenerate
    (one rater is constant) and every probability sits on one side of the reliability diagram.
    Naming a random reply X and asking "is X the better one?" gives both raters two classes
    and spreads the judge's P(X) over [0, 1], without changing what is measured.
    """
    out = []
    for j in judgements:
        x_chosen, tie_to_x = _slot(j["id"], seed)
        p_x = j["p"] if x_chosen else 1.0 - j["p"]
        out.append((p_x, x_chosen, p_x > 0.5 or (p_x == 0.5 and tie_to_x)))
    return out


def cohen_kappa(pairs) -> float | None:
    """Kappa between two boolean raters given as (a, b) pairs; None when chance agreement is 1."""
    pa, pb = _mean(a for a, _ in pairs), _mean(b for _, b in pairs)
    po = _mean(a == b for a, b in pairs)
    pe = pa * pb + (1 - pa) * (1 - pb)
    return None if pe == 1 else (po - pe) / (1 - pe)


def reliability(slotted, bins: int) -> list[dict]:
    """Equal-width bins of p_X over [0, 1] with the observed share of "X was chosen"."""
    groups = [[] for _ in range(bins)]
    for p_x, x_chosen, _ in slotted:
        # The epsilon keeps 1 - 0.8 (= 0.19999...) in the same bin as 0.2; p == 1 goes last.
        groups[min(int(p_x * bins + 1e-9), bins - 1)].append((p_x, x_chosen))
    return [{"lo": _r(i / bins), "hi": _r((i + 1) / bins), "n": len(g),
             "mean_p": _mean(p for p, _ in g), "observed": _mean(float(c) for _, c in g)}
            for i, g in enumerate(groups)]


def ece(table: list[dict], n: int) -> float:
    return sum(b["n"] / n * abs(b["mean_p"] - b["observed"]) for b in table if b["n"])


def _summary(entries) -> dict:
    """The headline numbers, shared by the whole ensemble and each principle on its own."""
    return {"n": len(entries), "accuracy": _r(_share(e["p"] for e in entries)),
            "position_bias_rate": _r(_position_bias(entries)),
            "mean_p_chosen": _r(_mean(e["p"] for e in entries))}


def per_principle(judgements) -> dict:
    by_id: dict[str, list] = {}
    for j in judgements:
        for pid, entry in j.get("principles", {}).items():
            by_id.setdefault(pid, []).append(entry)
    return {pid: _summary(by_id[pid]) for pid in sorted(by_id)}


def calibration_report(judgements: list[dict], bins: int = 10, seed: int = 0) -> dict:
    """Agreement and calibration of judge probabilities against human preference pairs.

    Each judgement: {"id", "p_order1", "p_order2", "p", "principles": {pid: {"p_order1",
    "p_order2", "p"}}}, every p being the judge's P(human-chosen reply is better); p_order1
    had the chosen reply shown as A, p_order2 as B. Floats are rounded to 4 decimals.
    """
    n = len(judgements)
    if n == 0:
        return {"n": 0}
    slotted = _slotted(judgements, seed)
    table = reliability(slotted, bins)
    report = _summary(judgements)
    report.update({
        "ties": sum(j["p"] == 0.5 for j in judgements),
        "accuracy_chosen_first": _r(_share(j["p_order1"] for j in judgements)),
        "accuracy_chosen_second": _r(_share(j["p_order2"] for j in judgements)),
        "order_consistency": _r(1 - _position_bias(judgements)),
        # Picking A: p_order1 > 0.5 in order 1, but p_order2 < 0.5 in order 2 (chosen was B).
        "first_position_rate": _r(_share([j["p_order1"] for j in judgements]
                                         + [1.0 - j["p_order2"] for j in judgements])),
        "mean_order_gap": _r(_mean(abs(j["p_order1"] - j["p_order2"]) for j in judgements)),
        "brier": _r(_mean((1.0 - j["p"]) ** 2 for j in judgements)),
        "cohen_kappa": _r(cohen_kappa([(c, says) for _, c, says in slotted])),
        "ece": _r(ece(table, n)),
        "reliability": [{**b, "mean_p": _r(b["mean_p"]), "observed": _r(b["observed"])}
                        for b in table],
        "per_principle": per_principle(judgements),
    })
    return report
