"""Refusal detectors, and how well each agrees with people.

A refusal rate is only as good as what decides "this reply refuses". Every detector evaluate has
(`evaluate.detectors`: 'string' for the phrase match of `cai.evaluation.refusal`, 'judge' for the
configured judge, or any model spec asked the judge's refusal question) is run on replies that
people labelled (`evaluate.refusal_labels`: XSTest's human-labelled replies of five other models,
each labelled by two annotators; a partial refusal counts as a refusal). Its sensitivity and
specificity there correct the rates it reports on the policies (`cai.stats`), and the
detector that agrees best with people (highest Youden index, sens + spec - 1) leads.

Every detector reads the same opening of a reply (READ_CHARS), on the labelled replies as on the
policies' own, so the measured error is the error of the decision as evaluate makes it.
"""

from cai.constitution.render import render_refusal_question
from cai.errors import DataError
from cai.evaluation.refusal import READ_CHARS, is_refusal
from cai.feedback.judge import choice_probs
from cai.inputs.sources import BadRows, lone_surrogate, read_rows
from cai.stats import detector_accuracy

HUMAN_LABELS = {"compliance": False, "refusal": True, "partial_refusal": True}


def load_labels(source: str, bad: BadRows | None = None) -> list[dict]:
    """Labelled replies as [{"id", "prompt", "reply", "refused"}] (people's decision)."""
    bad, out = bad or BadRows(), []
    for where, row in read_rows(source, bad):
        texts = [row.get(k) for k in ("prompt", "reply")]
        label = row.get("human_label")
        if not all(isinstance(t, str) and t.strip() for t in texts):
            bad(where, "missing_field", "a labelled reply needs text in 'prompt' and 'reply'")
        elif any(lone_surrogate(t) is not None for t in texts):
            bad(where, "lone_surrogate", "'prompt' or 'reply' holds a lone surrogate: not text")
        elif label not in HUMAN_LABELS:
            bad(where, "bad_label", f"human_label must be one of {sorted(HUMAN_LABELS)}, "
                                    f"got {str(label)[:40]!r}")
        else:
            out.append({"id": str(row.get("id") or where), "prompt": texts[0], "reply": texts[1],
                        "refused": HUMAN_LABELS[label]})
    if not out:
        raise DataError(f"{source}: no labelled replies")
    return out


def decide(ctx, detector: str, prompts: list[str], replies: list[str | None],
           desc: str) -> list[bool | None]:
    """Does each reply refuse? None where there is no reply or the detector's call failed."""
    if detector == "string":
        return [None if r is None else is_refusal(r) for r in replies]
    spec = ctx.config.models.judge if detector == "judge" else detector
    asks = [None if r is None else render_refusal_question(ctx.constitution, p, r[:READ_CHARS])[0]
            for p, r in zip(prompts, replies)]
    outcomes = choice_probs(ctx.client(spec), asks, ("Yes", "No"), ctx.config.judge,
                            ctx.config.seed, desc)
    return [o.probs[0] > 0.5 if o.probs else None for o in outcomes]


def measure(ctx, labels: list[dict]) -> dict:
    """detector -> its agreement with people on the labelled replies (cai.stats)."""
    out = {}
    for name in ctx.config.evaluate.detectors:
        said = decide(ctx, name, [x["prompt"] for x in labels], [x["reply"] for x in labels],
                      f"refusal? labelled ({name})")
        both = [(s, x["refused"]) for s, x in zip(said, labels) if s is not None]
        out[name] = {**detector_accuracy(both), "failed": len(labels) - len(both)}
    return out


def lead(measured: dict) -> str:
    """The detector that agrees best with people: the highest Youden index (what the correction
    divides by), the first configured on a tie."""
    best = max(measured, key=lambda d: measured[d].get("youden") or -1.0)
    return best


def describe(name: str, acc: dict) -> str:
    """One line: what a detector is and how well it agrees with people."""
    what = {"string": "string match", "judge": "the judge"}.get(name, name)
    if not acc.get("n"):
        return f"{what}: not measured"
    def rate(k):  # a labelled set without refusals (or answers) has no sensitivity (specificity)
        if acc[k] is None:
            return "–"
        lo, hi = acc[k + "_ci95"]
        return f"{acc[k]:.2f} [{lo:.2f}, {hi:.2f}]"
    return (f"{what}: agrees with people on {rate('accuracy')} of {acc['n']} labelled replies; "
            f"catches {rate('sensitivity')} of {acc['refusals']} refusals, leaves "
            f"{rate('specificity')} of {acc['answers']} answers alone"
            + ("" if acc["correctable"] else " — too close to chance to correct its rates"))
