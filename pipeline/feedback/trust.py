"""What the judge's labels are worth, measured on the human slice.

The judge's raw answers are features. For each principle, a logistic map (scikit-learn) turns
the judge's log-odds that the reply shown as A is better into the probability that humans
prefer it; the slope is a temperature (Platt scaling). What cancels the judge's lean towards a
position is the both-orders design, not the intercept: each human pair enters the fit twice,
with the chosen reply shown as A (label 1) and as B (label 0), and each AI label averages its
two orders, so a constant lean moves both alike; the intercept only absorbs what is left. A
principle judged on few human pairs is shrunk towards the map fit on all principles at once
(weight n / (n + `shrinkage`) on its own fit).

The map is cross-fitted on the human training pairs in K folds: each pair's calibrated
probability comes from a map fit without it, so the report's held-out accuracy, kappa, ECE and
Brier (raw and calibrated) are honest, and trust is set from them. A principle's trust is the
lower one-sided 95 % bound of 2·accuracy − 1 on its held-out pairs (a Beta posterior, pooled
towards the lower bound of the judge's overall agreement with at most `shrinkage` pseudo-pairs),
clipped at 0: a principle
judged on 11 pairs cannot earn full trust from a lucky 0.64, and a judge at chance earns 0.
The map applied to AI labels is fit on all the human training pairs.

Judgements are the label stage's records of human pairs: per principle, `p_order1` (P(chosen ≻
rejected) with the chosen reply shown as A) and `p_order2` (with it shown as B).
"""


from cai.feedback.calibration import calibration_report
from cai.feedback.probability import ensemble
from cai.feedback.strength import strength_report
from cai.hashing import content_hash
from cai.stats import logit, sigmoid

LEVEL = 0.05  # one-sided 95 %
# A calibrated label within this of 0.5 abstains in the strength report: the principle says
# nothing that separates the two replies (pairs.min_margin's default, for the same reason).
STRENGTH_MARGIN = 0.05


def mode_of(entry: dict) -> str:
    """How a principle's label was asked: 'pairwise' (both replies shown; the default, so a record
    made before pointwise labelling existed reads as what it is) or 'pointwise'."""
    return entry.get("mode", "pairwise")


def judgement(record: dict, mode: str = "pairwise") -> dict | None:
    """A label record of a human pair in the shape calibration works on, from its labels asked
    in `mode` (None where none answered): the human's choice is the record's `first` reply, so
    every p is the judge's P(human choice ≻ the other)."""
    ok = [x for x in record["principles"] if x["error"] is None and mode_of(x) == mode]
    if not ok:
        return None
    return {"id": record["human_id"],
            **{k: ensemble([x[k] for x in ok]) for k in ("p", "p_order1", "p_order2")},
            "principles": {x["id"]: {k: x[k] for k in ("p", "p_order1", "p_order2")} for x in ok}}


def observations(judgements: list[dict]) -> dict[str, list[tuple[float, int]]]:
    """principle -> (judge's log-odds that A is better, 1 if A is the human's choice), two per
    judged pair: order 1 shows the chosen reply as A, order 2 shows the rejected one as A."""
    out: dict[str, list] = {}
    for j in judgements:
        for pid, e in j["principles"].items():
            out.setdefault(pid, []).extend([(logit(e["p_order1"]), 1),
                                            (logit(1 - e["p_order2"]), 0)])
    return out


def _fit_one(rows) -> tuple[float, float]:
    """(intercept, slope) of P(A is the human's choice) = σ(a + b·x)."""
    from sklearn.linear_model import LogisticRegression
    xs = [[x] for x, _ in rows]
    ys = [y for _, y in rows]
    if len({x for x, _ in rows}) == 1:  # a judge that says the same thing every time
        return logit(sum(ys) / len(ys)), 0.0
    model = LogisticRegression(C=1.0).fit(xs, ys)
    return float(model.intercept_[0]), float(model.coef_[0][0])


def fit_map(judgements: list[dict], shrinkage: float) -> dict:
    """The calibration map: a global fit and, per principle, its own fit shrunk towards it."""
    obs = observations(judgements)
    if not obs:
        return {"global": [0.0, 0.0], "principles": {}}
    g = _fit_one([r for rows in obs.values() for r in rows])
    per = {}
    for pid, rows in obs.items():
        own, w = _fit_one(rows), (len(rows) / 2) / (len(rows) / 2 + shrinkage)
        per[pid] = [w * own[0] + (1 - w) * g[0], w * own[1] + (1 - w) * g[1], len(rows) // 2]
    return {"global": list(g), "principles": per}


def _a_wins(fit: dict, pid: str, p_a: float) -> float:
    """Calibrated log-odds that the reply shown as A is the better one, from the judge's P(A)."""
    a, b = fit["principles"].get(pid, fit["global"])[:2]
    return a + b * logit(p_a)


def calibrate(fit: dict, pid: str, p_order1: float, p_order2: float) -> float:
    """Calibrated P(first ≻ second) from one principle's answers in both orders (order 1 shows
    `first` as A, order 2 as B; both p's are the judge's P(first ≻ second)), averaged in
    log-odds."""
    return sigmoid((_a_wins(fit, pid, p_order1) - _a_wins(fit, pid, 1 - p_order2)) / 2)


def calibrate_ensemble(fit: dict, principles: list[dict]) -> float | None:
    """Calibrated P(first ≻ second) of a comparison: its principles averaged in log-odds."""
    ok = [x for x in principles if x.get("error") is None and x.get("p_order1") is not None]
    if not ok:
        return None
    return sigmoid(sum(logit(calibrate(fit, x["id"], x["p_order1"], x["p_order2"]))
                        for x in ok) / len(ok))


def folds_of(judgements: list[dict], k: int, seed: int) -> list[list[dict]]:
    """K folds by a seeded hash of each human pair's id (stable under reordering)."""
    folds = [[] for _ in range(k)]
    for j in judgements:
        folds[int(content_hash(seed, "fold", j["id"], n=8), 16) % k].append(j)
    return folds


def cross_fit(judgements: list[dict], k: int, shrinkage: float, seed: int) -> list[dict]:
    """Each judgement with its calibrated probabilities from a map fit on the other folds, in
    the same shape (`p`, `p_order1`, `p_order2`, per principle), so the one calibration
    report measures raw and calibrated labels alike."""
    out = []
    folds = folds_of(judgements, k, seed)
    for i, fold in enumerate(folds):
        fit = fit_map([j for f in folds[:i] + folds[i + 1:] for j in f], shrinkage)
        out += [calibrated(fit, j) for j in fold]
    return out


def calibrated(fit: dict, j: dict) -> dict:
    """A judgement's labels through a calibration map, in the same shape."""
    per = {}
    for pid, e in j["principles"].items():
        per[pid] = {"p_order1": sigmoid(_a_wins(fit, pid, e["p_order1"])),  # chosen shown as A
                    "p_order2": 1 - sigmoid(_a_wins(fit, pid, 1 - e["p_order2"])),  # as B
                    "p": calibrate(fit, pid, e["p_order1"], e["p_order2"])}
    p = sigmoid(sum(logit(x["p"]) for x in per.values()) / len(per))
    p1 = sigmoid(sum(logit(x["p_order1"]) for x in per.values()) / len(per))
    p2 = sigmoid(sum(logit(x["p_order2"]) for x in per.values()) / len(per))
    return {"id": j["id"], "p": p, "p_order1": p1, "p_order2": p2, "principles": per}


def lower_bound(accuracy: float, n: int, prior: float = 0.5, strength: float = 0.0,
                level: float = LEVEL) -> float:
    """The `level` quantile of the Beta posterior of an agreement rate: `accuracy` on `n`
    pairs, on top of a Jeffreys prior plus `strength` pseudo-pairs at rate `prior`."""
    from scipy.stats import beta  # scikit-learn's own dependency
    agree = accuracy * n
    return float(beta.ppf(level, agree + strength * prior + 0.5,
                          n - agree + strength * (1 - prior) + 0.5))


def trust_of(accuracy: float | None, n: int, prior: float = 0.5, strength: float = 0.0) -> float:
    """max(0, 2·LB − 1), LB the lower 95 % bound of the agreement rate: how much a label
    counts, from its measured agreement and how much evidence there is for it."""
    if accuracy is None or not n:
        return 0.0
    return round(max(0.0, 2 * lower_bound(accuracy, n, prior, strength) - 1), 4)


def trust_interval(accuracy: float | None, n: int, prior: float = 0.5,
                   strength: float = 0.0) -> list[float]:
    """[trust, max(0, 2·UB − 1)], UB the upper 95 % bound of the agreement rate: trust's 90 %
    interval (with no pair judged, the prior's alone). Its width is what one more human label
    of the principle can narrow (`cai review`'s order)."""
    if accuracy is None or not n:
        accuracy, n = 0.0, 0
    high = max(0.0, 2 * lower_bound(accuracy, n, prior, strength, 1 - LEVEL) - 1)
    return [trust_of(accuracy, n, prior, strength), round(high, 4)]


def trust_prior(accuracy: float | None, n: int) -> float:
    """What the judge has shown overall, conservatively: the lower bound of its agreement on
    all `n` pairs, never below chance (each principle's evidence is pooled towards it)."""
    return max(0.5, lower_bound(accuracy, n)) if n else 0.5


def pooled_pairs(shrinkage: float, total: int, n: int) -> float:
    """Pseudo-pairs at the prior pooled into a principle judged on `n` of `total` pairs: at
    most `shrinkage`, and never more than the other principles' pairs."""
    return min(shrinkage, max(0, total - n))


def trust_report(judgements: list[dict], k: int, shrinkage: float, seed: int) -> dict:
    """Raw vs calibrated held-out agreement (overall and per principle), trust per principle,
    and the map fit on all the pairs (what AI labels are calibrated with)."""
    if not judgements:
        return {"n": 0, "trust": {}, "overall_trust": 0.0,
                "map": fit_map([], shrinkage), "raw": {"n": 0}, "calibrated": {"n": 0}}
    return assess(judgements, cross_fit(judgements, k, shrinkage, seed),
                  fit_map(judgements, shrinkage), k, shrinkage, seed)


def assess(judgements: list[dict], held: list[dict], fit: dict, k: int, shrinkage: float,
           seed: int) -> dict:
    """The trust report of judgements, their cross-fitted calibrated labels `held` and the map."""
    raw, cal = calibration_report(judgements, seed=seed), calibration_report(held, seed=seed)
    # Per principle, the evidence is pooled towards the judge's overall agreement (`shrinkage`
    # pseudo-pairs at that rate): of fifteen principles judged by a judge at chance, one is
    # bound to look good on its seven pairs by luck, and must not earn trust from it.
    # The prior is what the judge has shown overall, conservatively: the lower bound of its
    # overall agreement (never below chance), worth at most `shrinkage` pairs and never more
    # than the pairs of the other principles (a principle's own pairs must not count twice).
    prior = trust_prior(cal["accuracy"], cal["n"])
    pooled = {pid: pooled_pairs(shrinkage, cal["n"], row["n"])
              for pid, row in cal["per_principle"].items()}
    trust = {pid: trust_of(row["accuracy"], row["n"], prior, pooled[pid])
             for pid, row in cal["per_principle"].items()}
    return {"n": len(judgements), "folds": k, "shrinkage": shrinkage, "raw": raw,
            "calibrated": cal, "trust": trust, "trust_prior": round(prior, 4),
            "trust_interval": {pid: trust_interval(row["accuracy"], row["n"], prior, pooled[pid])
                               for pid, row in cal["per_principle"].items()},
            # how strongly each principle speaks for people's choices (held-out labels)
            "strength": strength_report(held, STRENGTH_MARGIN, seed),
            "overall_trust": trust_of(cal["accuracy"], cal["n"]), "map": fit}


def comparison_trust(trust: dict, principles: list[dict]) -> float:
    """The trust of a comparison's labels: the mean trust of the principles that answered."""
    ok = [trust.get(x["id"], 0.0) for x in principles if x.get("error") is None]
    return sum(ok) / len(ok) if ok else 0.0


def worth(report: dict | None, principles: list[dict]) -> tuple[float | None, float]:
    """(calibrated P(first ≻ second), trust) of a comparison under a calibration report; with
    no report (no human pair judged) the label is uncalibrated and earns no trust."""
    if not report or not report.get("n"):
        return None, 0.0
    principles = spoken_for(report["map"], principles)
    return (calibrate_ensemble(report["map"], principles),
            comparison_trust(report["trust"], principles))


def spoken_for(fit: dict, principles: list[dict]) -> list[dict]:
    """The labels a calibration map speaks for: per principle, those asked in the mode the map
    chose for it (`label.mode: auto` labels a comparison both ways; a map of one mode names none
    but its default)."""
    modes, default = fit.get("modes", {}), fit.get("default", "pairwise")
    return [x for x in principles if mode_of(x) == modes.get(x["id"], default)]
