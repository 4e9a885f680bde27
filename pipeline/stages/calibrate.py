"""calibrate: the human slice decides what the judge's labels are worth.

the judge's labels of the human training pairs -> a calibration fit record: the map from the
judge's raw answers to P(humans agree) (per principle, position bias and temperature, shrunk
towards a global fit), its cross-fitted held-out report (raw vs calibrated accuracy, kappa, ECE,
Brier, per principle) and each principle's trust
    cai calibrate --set calibration.folds=10 --set calibration.shrinkage=50

No model calls: see `cai.feedback.trust`. The fit is a record named by the labels it was fit on and
its settings, so new human labels (or a new judge) recompute it and what depends on it, and
nothing else does.
"""

from cai.feedback.modes import label_modes, mode_report
from cai.feedback.trust import judgement
from cai.hashing import content_hash
from cai.stages.common import load_records, require_manifest, save_records
from cai.stages.context import StageStats, timed
from cai.stages.reads import Reads

# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
READS = Reads(config=("seed", "calibration.folds", "calibration.shrinkage", "calibration.ensemble",
                      "label.ensemble", "label.mode"), stages=("label-calibration",))


@timed("calibrate")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("calibrate")
    c = cfg.calibration
    ids = require_manifest(ctx, "label-calibration")["ids"]
    records = load_records(ctx, ids)
    by_mode = {m: [j for j in (judgement(r, m) for r in records) if j is not None]
               for m in label_modes(cfg.label.mode)}
    judged = {j["id"] for js in by_mode.values() for j in js}
    stats.drop("human_pair_not_judged", len(records) - len(judged))
    fit_id = "fit-" + content_hash(sorted(ids), c.folds, c.shrinkage, cfg.seed,
                                   *([cfg.label.mode] if cfg.label.mode != "pairwise" else []))
    report = mode_report(cfg.label.mode, by_mode, c.folds, c.shrinkage, cfg.seed) if judged else None
    if report is not None:
        report.update(failed=len(records) - len(judged), ensemble=c.ensemble,
                      training_ensemble=cfg.label.ensemble)
    save_records(ctx, stats, [(fit_id, "calibration", {"report": report})])
    ctx.store.put_manifest("calibrate", [fit_id], {})
    stats.metrics = {"trust": (report or {}).get("trust"),
                     "overall_trust": (report or {}).get("overall_trust")}
    return stats


def current_fit(ctx) -> tuple[str, dict | None]:
    """(fit id, calibration report: map, trust, raw vs calibrated agreement) of the current run;
    the report is None where no human pair was judged."""
    fit_id = require_manifest(ctx, "calibrate")["ids"][0]
    return fit_id, load_records(ctx, [fit_id])[0]["report"]


def stored_report(store) -> dict:
    """The run's calibration report read from its store (map, trust, agreement, strength); {}
    before calibrate or where no human pair was judged."""
    fit = store.get_manifest("calibrate")
    return (store.get_records(fit["ids"])[fit["ids"][0]]["report"] or {}) if fit else {}
