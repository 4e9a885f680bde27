"""A run's summary as the store keeps it: at its end every run records a snapshot, the id lists
of the records each data stage produced (by name: a run of a million records keeps names, not
ids), the dataset hash and the headline metrics. `cai gc` keeps what kept runs name; run history
and `cai diff` (`cai.runs.history`) read them.
"""



SNAPSHOT_STAGES = ("generate", "critique", "label", "calibrate", "pairs", "blend", "export",
                   "train-sft", "train-rm", "train-policy")


def manifest_ids(store) -> dict:
    """What each stage's current manifest lists: the name of its id list in the store (a run of
    a million records keeps names, not ids), or the ids themselves for the short lists a
    manifest's meta holds (the held-out human pairs, the human pairs judged)."""
    stages = {}
    for stage in SNAPSHOT_STAGES:
        name, count = store.manifest_list(stage)
        stages[stage] = name if name is not None else (store.get_manifest(stage) or {}).get("ids", [])
        meta = store.manifest_meta(stage) if stage in ("blend", "label") else None
        if stage == "blend" and meta is not None:
            stages["blend-heldout"] = meta.get("heldout", [])
        if stage == "label" and meta is not None:
            stages["label-calibration"] = meta.get("calibration_ids", [])
    evaluated = store.get_manifest("evaluate")
    if evaluated:  # evaluation results kept in the store: reward scores and KL per policy
        meta = evaluated["meta"]
        stages["evaluate-stored"] = [r["stored"] for part in ("reward", "kl")
                                     for r in (meta.get(part) or {}).values() if r.get("stored")]
    return stages


def listed(store, ref) -> list:
    """The ids a snapshot names: a list of them, or the name of an id list in the store (an
    empty list where `cai gc` has dropped it)."""
    return store.list_ids(ref) if isinstance(ref, str) else list(ref or [])


def snapshot(store, metrics: dict) -> dict:
    return {"manifests": manifest_ids(store), "counts": metrics.get("counts"),
            "judge_agreement": _agreement(metrics.get("judge_agreement")),
            "dataset": metrics.get("dataset")}


def _agreement(report: dict | None) -> dict | None:
    """The headline of a run's judge report: calibrated and raw held-out accuracy, trust."""
    if not report or not report.get("n"):
        return None
    return {"accuracy": report["calibrated"]["accuracy"], "raw_accuracy": report["raw"]["accuracy"],
            "overall_trust": report["overall_trust"], "n": report["n"]}









