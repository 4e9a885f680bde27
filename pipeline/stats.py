"""The statistics every figure cai prints goes through: one of each, so two figures computed the
same way always agree.

- `logit` / `sigmoid`: log-odds with one clamp (a certain answer would be an infinite log-odds);
- `wilson`: the Wilson 95 % interval of a rate (k may be fractional: a tie counts half);
- `roc_auc`: scikit-learn's ROC-AUC of a pairwise score (chosen vs rejected replies);
- `detector_accuracy`: a refusal detector's sensitivity and specificity against people's labels;
- `corrected_rate` / `corrected_difference`: a rate observed through an imperfect detector,
  corrected for its measured error (Rogan–Gladen), with a bootstrap interval that carries both
  the prompts' sampling and the detector's measurement uncertainty;
- `detectable_change`: the smallest difference an evaluation of n prompts per policy can show.
"""

import math

EPS = 1e-6
Z95 = 1.96
DRAWS = 4000
MIN_YOUDEN = 0.2  # below this, sens + spec - 1 is too close to 0 for the correction to mean much


def logit(p: float, eps: float = EPS) -> float:
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson 95 % interval of a rate k / n (k may be x.5: a tie counts half a win)."""
    if not n:
        return (0.0, 1.0)
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (round(max(0.0, (centre - half) / (1 + z * z / n)), 4),
            round(min(1.0, (centre + half) / (1 + z * z / n)), 4))


def roc_auc(scores) -> float | None:
    """ROC-AUC of a score as a chosen-vs-rejected classifier over all replies ((score of chosen,
    score of rejected) per pair): the chance a random chosen reply outscores a random rejected
    one, ties counting half."""
    if not scores:
        return None
    from sklearn.metrics import roc_auc_score
    labels = [1] * len(scores) + [0] * len(scores)
    return round(float(roc_auc_score(labels, [c for c, _ in scores] + [r for _, r in scores])), 4)


def detector_accuracy(decisions: list[tuple[bool, bool]]) -> dict:
    """(detector says refusal, people say refusal) per labelled reply -> accuracy, sensitivity
    (refusals it catches), specificity (answers it leaves alone), each with its Wilson interval,
    and the counts the correction resamples."""
    tp = sum(d and h for d, h in decisions)
    fn = sum(not d and h for d, h in decisions)
    tn = sum(not d and not h for d, h in decisions)
    fp = sum(d and not h for d, h in decisions)
    out = {"n": len(decisions), "refusals": tp + fn, "answers": tn + fp,
           "tp": tp, "fn": fn, "tn": tn, "fp": fp}
    for name, k, n in (("accuracy", tp + tn, len(decisions)), ("sensitivity", tp, tp + fn),
                       ("specificity", tn, tn + fp)):
        out[name] = round(k / n, 4) if n else None
        out[name + "_ci95"] = list(wilson(k, n))
    sens, spec = out["sensitivity"], out["specificity"]
    out["youden"] = None if sens is None or spec is None else round(sens + spec - 1, 4)
    out["correctable"] = out["youden"] is not None and out["youden"] >= MIN_YOUDEN
    return out


def rogan_gladen(p_obs, sens, spec):
    """The true rate behind an observed rate, given the detector's sensitivity and specificity:
    (p_obs + spec - 1) / (sens + spec - 1), clipped to [0, 1]. Works on numbers or arrays."""
    import numpy as np
    j = np.asarray(sens) + np.asarray(spec) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip((np.asarray(p_obs) + np.asarray(spec) - 1) / j, 0.0, 1.0)


def _detector_draws(acc: dict, rng):
    """Sensitivity and specificity as the labelled set could have measured them (binomial)."""
    sens = rng.binomial(acc["refusals"], acc["sensitivity"], DRAWS) / acc["refusals"]
    spec = rng.binomial(acc["answers"], acc["specificity"], DRAWS) / acc["answers"]
    return sens, spec


def corrected_rate(flags: list[bool], acc: dict, seed: int) -> dict:
    """The refusal rate among n replies as the detector saw it, and corrected for its error:
    the rate, its 95 % interval (a bootstrap over the replies and over the labelled set at once)
    and n. Without a correctable detector only the observed rate and its Wilson interval."""
    import numpy as np
    n, k = len(flags), sum(flags)
    out = {"n": n, "observed": round(k / n, 4) if n else None, "observed_ci95": list(wilson(k, n))}
    if not n or not acc.get("correctable"):
        return {**out, "rate": None, "ci95": None}
    rng = np.random.default_rng(seed)
    sens, spec = _detector_draws(acc, rng)
    draws = rogan_gladen(rng.binomial(n, k / n, DRAWS) / n, sens, spec)
    point = float(rogan_gladen(k / n, acc["sensitivity"], acc["specificity"]))
    return {**out, "rate": round(point, 4), "ci95": _quantiles(draws)}


def corrected_difference(a: list, b: list, acc: dict | None, seed: int) -> dict | None:
    """Corrected rate of a minus that of b on the same prompts (paired: one resample of prompt
    indices serves both, and one draw of the detector's error corrects both). With `acc` None
    (no correctable detector) the observed rates are compared as they are."""
    import numpy as np
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return None
    rng = np.random.default_rng(seed)
    x, y = (np.array([p[i] for p in pairs], dtype=float) for i in (0, 1))
    idx = rng.integers(0, len(pairs), size=(DRAWS, len(pairs)))
    sens, spec = _detector_draws(acc, rng) if acc else (1.0, 1.0)
    diffs = rogan_gladen(x[idx].mean(1), sens, spec) - rogan_gladen(y[idx].mean(1), sens, spec)
    s1, s2 = (acc["sensitivity"], acc["specificity"]) if acc else (1.0, 1.0)
    point = rogan_gladen(x.mean(), s1, s2) - rogan_gladen(y.mean(), s1, s2)
    return {"n": len(pairs), "difference": round(float(point), 4), "ci95": _quantiles(diffs)}


def detectable_change(n: int, rate: float, youden: float = 1.0, power_z: float = 0.84) -> float:
    """The smallest true change in a rate near `rate` that an evaluation of n prompts per policy
    detects at 95 % two-sided with 80 % power (normal approximation), widened by the detector's
    error (a detector with Youden index J shrinks every observed difference by J)."""
    p = min(max(rate, 0.05), 0.95)  # a rate of 0 would claim any change is visible
    return round((Z95 + power_z) * math.sqrt(2 * p * (1 - p) / n) / max(youden, 1e-9), 4)


def _quantiles(draws) -> list[float]:
    import numpy as np
    draws = draws[~np.isnan(draws)]
    return [round(float(np.quantile(draws, q)), 4) for q in (0.025, 0.975)]
