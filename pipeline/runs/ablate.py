"""`cai principles ablate`: leave one principle out and see what the run loses.

For each principle, the data stages up to pairs run again in a scratch copy of the run's store
with that principle's weight set to 0 (its text, and so every other principle's version, stays
as it is). The rendezvous assignment moves only the records the principle owned, so everything
else is served by the store and the call cache: the calls made are the ones the principle's
records need under other principles. Against the run itself: records recomputed, model calls,
pairs added, removed and flipped, the change in the judge's calibrated agreement with people and
in the effective AI pairs (their summed weight).
"""

import tempfile
from pathlib import Path

import yaml

from cai.runs.history import compare_pairs, pair_identity
from cai.runs.principles import ai_pairs, calibration_report
from cai.stages import STAGES
from cai.stages.context import RunContext
from cai.stages.reuse import run_stage
from cai.store.core import DB_NAME, ReadOnlyStore, copy_store

ABLATED = ("generate", "critique", "label", "calibrate", "pairs")


def ablate(config, ids=None, echo=lambda line: None) -> list[dict]:
    from cai.errors import CaiError
    from cai.log import quiet_libraries
    quiet_libraries()
    if not (Path(config.run_dir) / DB_NAME).exists():
        raise CaiError(f"{config.run_dir}: no cai run here yet; run `cai run` first")
    base = outcome(config.run_dir)
    text = Path(config.constitution).read_text(encoding="utf-8")
    known = [p["id"] for p in yaml.safe_load(text)["principles"]]
    unknown = [i for i in ids or () if i not in known]
    if unknown:
        raise CaiError(f"{config.constitution}: no principle {', '.join(unknown)} (it has "
                       f"{', '.join(known)})")
    rows = []
    for pid in ids or known:
        rows.append(_ablate_one(config, text, pid, base))
        echo(format_row(rows[-1]))
    return rows


def _ablate_one(config, text: str, pid: str, base: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="cai-ablate-") as tmp:
        copy_store(config.run_dir, tmp)
        data = yaml.safe_load(text)
        for p in data["principles"]:
            if p["id"] == pid:
                p["weight"] = 0
        constitution = Path(tmp) / "principles.yaml"
        constitution.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        ctx = RunContext(config.model_copy(update={"run_dir": tmp,
                                                   "constitution": str(constitution)}))
        try:
            stats = [run_stage(ctx, name, STAGES[name]) for name in ABLATED]
        finally:
            ctx.close()
        after = outcome(tmp)
    added, removed, changed, flipped, _ = compare_pairs(base["pairs"], after["pairs"])
    return {"principle": pid, "model_calls": sum(s.calls for s in stats),
            "records_recomputed": {s.stage: s.made for s in stats if s.made},
            "pairs_added": len(added), "pairs_removed": len(removed), "pairs_flipped": len(flipped),
            "pairs_changed": len(changed),
            "judge_accuracy_change": _change(base["accuracy"], after["accuracy"]),
            "effective_ai_pairs_change": round(after["effective"] - base["effective"], 4)}


def outcome(run_dir) -> dict:
    """What an ablation is measured on: the AI pairs by identity, their summed weight, and the
    judge's calibrated agreement with people on the human training pairs."""
    with ReadOnlyStore(run_dir) as store:
        pairs = {pair_identity(p): p for p in ai_pairs(store)}
        report = calibration_report(store)
    return {"pairs": pairs, "effective": sum(p.get("weight") or 0.0 for p in pairs.values()),
            "accuracy": (report.get("calibrated") or {}).get("accuracy")}


def _change(a, b):
    return None if a is None or b is None else round(b - a, 4)


def format_row(r: dict) -> str:
    acc = "–" if r["judge_accuracy_change"] is None else f"{r['judge_accuracy_change']:+.3f}"
    made = ", ".join(f"{k} {v}" for k, v in r["records_recomputed"].items()) or "none"
    return (f"{r['principle']:<22} {r['model_calls']:>6} {r['pairs_added']:>6} "
            f"{r['pairs_removed']:>8} {r['pairs_flipped']:>8} {acc:>9} "
            f"{r['effective_ai_pairs_change']:>+10.2f}  {made}")


HEADER = (f"{'without':<22} {'calls':>6} {'added':>6} {'removed':>8} {'flipped':>8} "
          f"{'Δ judge':>9} {'Δ eff. AI':>10}  records recomputed")
