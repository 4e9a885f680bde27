"""How long a plan would take, from this store's own past: each finished run records, per stage,
its seconds, its model calls and whether it trained a model. A stage's calls are priced at the
seconds per call of the latest run that made calls in it (the work around its calls included);
a model to train at what the latest training of that stage took. Nothing past: no estimate."""

TRAINING = ("train-sft", "train-rm", "train-policy")


def past_timings(store) -> dict:
    """{stage: {"per_call": s, "train": s}} from the newest runs that measured each."""
    out: dict = {}
    for run in reversed(store.list_runs()):
        for stage, t in ((run.get("summary") or {}).get("timings") or {}).items():
            mine = out.setdefault(stage, {})
            if t.get("calls") and "per_call" not in mine:
                mine["per_call"] = t["seconds"] / t["calls"]
            if stage in TRAINING and t.get("made") and "train" not in mine:
                mine["train"] = t["seconds"]
    return out


def estimate(rows: list[dict], timings: dict) -> float | None:
    """Adds `seconds` to each plan row (None where no past run says); returns the total, None
    when some work has no past timing to price it."""
    total, known = 0.0, True
    for row in rows:
        t = timings.get(row["stage"], {})
        seconds = 0.0
        if row["stage"] in TRAINING and row["to_compute"]:
            seconds = t.get("train")
        if row["model_calls"] and seconds is not None:
            per_call = t.get("per_call")
            seconds = None if per_call is None else seconds + row["model_calls"] * per_call
        row["seconds"] = None if seconds is None else round(seconds, 1)
        known = known and seconds is not None
        total += seconds or 0.0
    return round(total, 1) if known else None


def timing_row(stats) -> dict:
    """What a finished run records of a stage for later estimates."""
    return {"seconds": round(stats.seconds, 2), "calls": stats.calls, "made": stats.made}
