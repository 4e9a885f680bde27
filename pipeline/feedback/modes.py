"""Which way each principle's labels are asked: pairwise, pointwise, or the one people agree with.

`label.mode: auto` labels every comparison both ways (`cai.feedback.pointwise`) and lets the human
slice choose, per principle: each mode is calibrated and cross-fitted on its own, and a principle
keeps pointwise only where its cross-fitted labels agree with people more often than pairwise's
(a tie keeps pairwise, the established form). AI labels are then read through each principle's
chosen mode.

The report must not pick the better of two modes on the very labels it then measures it on: on
96 pairs of the 135M judge, at chance both ways, that selection alone showed a calibrated
agreement of 0.65 and trust 0.14. So its held-out labels are nested: each fold's labels come from
the mode chosen, and the maps fit, on the other folds only. Trust, strength and the agreement
figures are measured on those.
"""

from cai.feedback.calibration import calibration_report
from cai.feedback.probability import ensemble
from cai.feedback.trust import assess, calibrated, cross_fit, fit_map, folds_of, trust_report
from cai.stats import logit, sigmoid

MODES = {"pairwise": ("pairwise",), "pointwise": ("pointwise",), "auto": ("pairwise", "pointwise")}


def label_modes(setting: str) -> tuple[str, ...]:
    """The modes `label.mode` asks in, the one whose raw label a record carries first."""
    return MODES[setting]


def mode_report(setting: str, by_mode: dict[str, list[dict]], k: int, shrinkage: float,
                seed: int) -> dict:
    """The trust report of the labels each principle keeps; `by_mode`: mode -> judgements."""
    if len(by_mode) == 1:
        (mode, judged), = by_mode.items()
        report = trust_report(judged, k, shrinkage, seed)
        if mode != "pairwise":
            report["map"]["default"] = mode
        report["label_mode"] = {"setting": setting, "chosen": dict.fromkeys(report["trust"], mode)}
        return report
    by_mode = {m: j for m, j in by_mode.items() if j}
    accuracy = agreement(by_mode, k, shrinkage, seed)
    chosen = choose(accuracy)
    if not chosen:
        return {**trust_report([], k, shrinkage, seed),
                "label_mode": {"setting": setting, "chosen": {}, "accuracy": accuracy}}
    fits = {m: fit_map(j, shrinkage) for m, j in by_mode.items()}
    default = "pairwise" if "pairwise" in fits else next(iter(fits))
    fit = {"global": fits[default]["global"],
           "principles": {pid: fits[m]["principles"][pid] for pid, m in chosen.items()},
           "modes": chosen, "default": default}
    report = assess(merge(by_mode, chosen, mean_logodds=False),
                    nested(by_mode, k, shrinkage, seed), fit, k, shrinkage, seed)
    report["label_mode"] = {"setting": setting, "chosen": chosen, "accuracy": accuracy}
    return report


def agreement(by_mode: dict[str, list[dict]], k: int, shrinkage: float, seed: int) -> dict:
    """mode -> principle -> how often its cross-fitted calibrated labels agree with people."""
    return {m: {pid: row["accuracy"] for pid, row in calibration_report(
        cross_fit(j, k, shrinkage, seed), seed=seed)["per_principle"].items()}
        for m, j in by_mode.items()}


def nested(by_mode: dict[str, list[dict]], k: int, shrinkage: float, seed: int) -> list[dict]:
    """Held-out labels of the chosen modes: each fold's from the choice and the maps made on the
    other folds alone."""
    folds = {m: folds_of(j, k, seed) for m, j in by_mode.items()}
    held = []
    for i in range(k):
        train = {m: [j for f, fold in enumerate(fs) if f != i for j in fold]
                 for m, fs in folds.items()}
        chosen = choose(agreement(train, k, shrinkage, seed))
        fits = {m: fit_map(j, shrinkage) for m, j in train.items()}
        held += merge({m: [calibrated(fits[m], j) for j in fs[i]] for m, fs in folds.items()},
                      chosen)
    return held


def choose(score: dict[str, dict[str, float]]) -> dict[str, str]:
    """principle -> the mode that scores higher; a tie, or a principle pointwise never judged,
    keeps pairwise."""
    pids = sorted({pid for per in score.values() for pid in per})
    pairwise, pointwise = score.get("pairwise", {}), score.get("pointwise", {})
    out = {}
    for pid in pids:
        a, b = pairwise.get(pid), pointwise.get(pid)
        out[pid] = "pointwise" if b is not None and (a is None or b > a) else "pairwise"
    return out


def merge(by_mode: dict[str, list[dict]], chosen: dict[str, str], mean_logodds: bool = True,
          default: str = "pairwise") -> list[dict]:
    """Each human pair's judgement made of its principles' chosen-mode entries; the pair's own
    p's are their mean, in log-odds for calibrated labels (as cross-fitting combines them) and
    plain for raw ones (as the label stage does). A principle with no choice is read in `default`
    (as the map reads a principle it never saw)."""
    entries: dict[str, dict] = {}
    for mode, judged in by_mode.items():
        for j in judged:
            mine = {pid: e for pid, e in j["principles"].items() if chosen.get(pid, default) == mode}
            entries.setdefault(j["id"], {}).update(mine)
    out = []
    for hid, per in entries.items():
        if per:
            out.append({"id": hid, "principles": per,
                        **{k: _mean([e[k] for e in per.values()], mean_logodds)
                           for k in ("p", "p_order1", "p_order2")}})
    return out


def _mean(ps: list[float], logodds: bool) -> float:
    return sigmoid(sum(logit(p) for p in ps) / len(ps)) if logodds else ensemble(ps)
