"""How strongly each principle speaks for the people's choices, on the human slice: the
per-principle strength of feedback-forensics (Findeis et al.), from the judge's cross-fitted
calibrated labels of the human training pairs judged under it.

Per pair, the principle votes for the reply people chose (calibrated P ≥ 0.5 + `margin`), for
the other (P ≤ 0.5 − `margin`), or abstains (the principle says nothing that separates them):

    relevance = votes / pairs          accuracy = votes for the people's reply / votes
    strength  = relevance × 2 (accuracy − 0.5)        in [−1, 1]

1 is a principle that always takes a side and always the people's, −1 always the other side, 0
one that abstains or is at chance. The reported strength uses the accuracy's posterior mean
under a uniform Beta(1, 1) prior, (agree + 1) / (votes + 2), so a principle with three votes is
not called strong; beside it the 95 % interval of a seeded paired bootstrap over its pairs and
the two-sided binomial p-value of its votes against chance (scipy).
"""

BOOTSTRAP = 2000


def votes(judgements: list[dict], margin: float) -> dict[str, list[int]]:
    """principle -> per judged pair: 1 (for the people's reply), −1 (against), 0 (abstains)."""
    out: dict[str, list[int]] = {}
    for j in judgements:
        for pid, e in j["principles"].items():
            p = e["p"]
            out.setdefault(pid, []).append(1 if p >= 0.5 + margin else -1 if p <= 0.5 - margin else 0)
    return out


def strength_of(v: list[int]) -> dict:
    """The figures of one principle's votes (no interval)."""
    n, cast = len(v), [x for x in v if x]
    agree = sum(x > 0 for x in cast)
    relevance = len(cast) / n if n else 0.0
    accuracy = agree / len(cast) if cast else None
    prior_accuracy = (agree + 1) / (len(cast) + 2)
    return {"pairs": n, "votes": len(cast), "agree": agree, "relevance": relevance,
            "accuracy": accuracy, "strength": relevance * 2 * (prior_accuracy - 0.5),
            "strength_raw": relevance * 2 * (accuracy - 0.5) if cast else 0.0}


def strength_report(judgements: list[dict], margin: float, seed: int) -> dict:
    """principle -> relevance, accuracy, strength (with the prior), its 95 % bootstrap
    interval and the binomial p-value; rounded to 4 decimals."""
    import numpy as np
    from scipy.stats import binomtest
    rng = np.random.default_rng(seed)
    out = {}
    for pid, v in sorted(votes(judgements, margin).items()):
        row = strength_of(v)
        arr = np.array(v)
        draws = arr[rng.integers(0, len(arr), size=(BOOTSTRAP, len(arr)))]
        cast = (draws != 0).sum(axis=1)
        agree = (draws > 0).sum(axis=1)
        boot = cast / len(arr) * 2 * ((agree + 1) / (cast + 2) - 0.5)
        row["ci95"] = [float(np.quantile(boot, q)) for q in (0.025, 0.975)]
        row["p_value"] = float(binomtest(row["agree"], row["votes"]).pvalue) if row["votes"] else 1.0
        out[pid] = {k: round(x, 4) if isinstance(x, float) else
                    [round(y, 4) for y in x] if isinstance(x, list) else x for k, x in row.items()}
    return out
