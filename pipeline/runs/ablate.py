"""`cai principles ablate`: leave one principle out and see what the run loses.

For each principle, the data stages up to pairs run again in a scratch copy of the run's store
with that principle's weight set to 0 (its text, and so every other principle's version, stays
as it is). The rendezvous assignment moves only the records the principle owned, so everything
else is served by the store and the call cache: the calls made are the ones the principle's
records need under other principles. Against the run itself: records recomputed, model calls,
pairs added, removed and flipped, the change in the judge's calibrated agreement with people and
in the effective AI pairs (their summed weight), and with `--train` the reward model's held-out
accuracy (blend, export and train-rm run in the copy too: a reward model whose inputs did not
change is the run's own, not trained again).

`--general` adds the arm of Kundu et al. 2023 ("Specific versus General Principles for
Constitutional AI"): the whole constitution replaced by one general principle (GENERAL, the
paper's "best for humanity" question; the same system prompt and examples), which relabels
every record: it costs what the critique and label stages cost, not a principle's share.
"""

import tempfile
from pathlib import Path

import yaml

from cai.runs.history import compare_pairs, pair_identity
from cai.runs.principles import ai_pairs
from cai.runs.runner import run_one
from cai.stages.calibrate import stored_report
from cai.stages.context import RunContext
from cai.store.core import DB_NAME, ReadOnlyStore, copy_store

ABLATED = ("generate", "critique", "label", "calibrate", "pairs")
TRAINED = ("blend", "export", "train-rm")
GENERAL_ARM = "general-only"
GENERAL = {
    "id": "general",
    "critique": "Identify specific ways in which the assistant's last response is not what someone "
                "who deeply loves humanity and has humanity's best interests at heart would say.",
    "revision": "Please rewrite the assistant response so that it is what someone who deeply loves "
                "humanity and has humanity's best interests at heart would say.",
    "comparison": "Which response would be preferred by someone who deeply loves humanity and has "
                  "humanity's best interests at heart?",
    "tags": ["harmlessness", "helpfulness", "honesty"], "weight": 1.0}


def ablate(config, ids=None, echo=lambda line: None, general: bool = False,
           train: bool = False) -> list[dict]:
    from cai.errors import CaiError
    from cai.log import quiet_libraries
    quiet_libraries()
    if not (Path(config.run_dir) / DB_NAME).exists():
        raise CaiError(f"{config.run_dir}: no cai run here yet; run `cai run` first")
    base = outcome(config.run_dir)
    if train and base["rm"] is None:
        raise CaiError(f"{config.run_dir}: no reward model in this run to compare with; run "
                       "`cai run` (or `cai train-rm`) first")
    text = Path(config.constitution).read_text(encoding="utf-8")
    known = [p["id"] for p in yaml.safe_load(text)["principles"]]
    unknown = [i for i in ids or () if i not in known]
    if unknown:
        raise CaiError(f"{config.constitution}: no principle {', '.join(unknown)} (it has "
                       f"{', '.join(known)})")
    arms = [(pid, _without(text, pid)) for pid in (ids or (() if general else known))]
    if general:
        arms.append((GENERAL_ARM, _general_only(text)))
    rows = []
    for name, data in arms:
        rows.append(_rerun(config, name, data, base, train))
        echo(format_row(rows[-1]))
    return rows


def _without(text: str, pid: str) -> dict:
    data = yaml.safe_load(text)
    for p in data["principles"]:
        if p["id"] == pid:
            p["weight"] = 0
    return data


def _general_only(text: str) -> dict:
    """The constitution with one general principle; examples shown under it."""
    data = yaml.safe_load(text)
    data["principles"] = [dict(GENERAL)]
    for e in data.get("examples") or []:
        e.pop("principle", None)
    return data


def _rerun(config, name: str, data: dict, base: dict, train: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="cai-ablate-") as tmp:
        copy_store(config.run_dir, tmp)
        constitution = Path(tmp) / "principles.yaml"
        constitution.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        ctx = RunContext(config.model_copy(update={"run_dir": tmp,
                                                   "constitution": str(constitution)}))
        try:
            stats = [run_one(ctx, stage) for stage in ABLATED + (TRAINED if train else ())]
        finally:
            ctx.close()
        after = outcome(tmp)
    added, removed, changed, flipped, _ = compare_pairs(base["pairs"], after["pairs"])
    row = {"principle": name, "model_calls": sum(s.calls for s in stats),
           "records_recomputed": {s.stage: s.made for s in stats if s.made},
           "pairs_added": len(added), "pairs_removed": len(removed), "pairs_flipped": len(flipped),
           "pairs_changed": len(changed),
           "judge_accuracy_change": _change(base["accuracy"], after["accuracy"]),
           "effective_ai_pairs_change": round(after["effective"] - base["effective"], 4)}
    if train:
        row.update(rm_heldout_accuracy=after["rm"], rm_heldout_accuracy_run=base["rm"],
                   rm_heldout_accuracy_change=_change(base["rm"], after["rm"]))
    return row


def outcome(run_dir) -> dict:
    """What an ablation is measured on: the AI pairs by identity, their summed weight, the
    judge's calibrated agreement with people on the human training pairs, and the reward
    model's held-out accuracy (None where none was trained)."""
    with ReadOnlyStore(run_dir) as store:
        pairs = {pair_identity(p): p for p in ai_pairs(store)}
        report = stored_report(store)
        rm = store.manifest_meta("train-rm") or {}
    return {"pairs": pairs, "effective": sum(p.get("weight") or 0.0 for p in pairs.values()),
            "accuracy": (report.get("calibrated") or {}).get("accuracy"),
            "rm": rm.get("heldout_accuracy")}


def _change(a, b):
    return None if a is None or b is None else round(b - a, 4)


def format_row(r: dict) -> str:
    acc = "–" if r["judge_accuracy_change"] is None else f"{r['judge_accuracy_change']:+.3f}"
    made = ", ".join(f"{k} {v}" for k, v in r["records_recomputed"].items()) or "none"
    rm = ""
    if "rm_heldout_accuracy" in r:
        rm = f" {_num(r['rm_heldout_accuracy']):>6} {_num(r['rm_heldout_accuracy_change'], '+'):>6}"
    return (f"{r['principle']:<22} {r['model_calls']:>6} {r['pairs_added']:>6} "
            f"{r['pairs_removed']:>8} {r['pairs_flipped']:>8} {acc:>9} "
            f"{r['effective_ai_pairs_change']:>+10.2f}{rm}  {made}")


def _num(x, sign: str = "") -> str:
    return "–" if x is None else f"{x:{sign}.3f}"


def header(train: bool = False) -> str:
    return (f"{'without':<22} {'calls':>6} {'added':>6} {'removed':>8} {'flipped':>8} "
            f"{'Δ judge':>9} {'Δ eff. AI':>10}" + (f" {'RM acc':>6} {'Δ RM':>6}" if train else "")
            + "  records recomputed")

