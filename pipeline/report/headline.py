"""The top of every report: what run this is, then the answers, before any figure.

summary.md and report.html both open with `meta_lines` (date, cai version, run number, model
identities) and `answer_lines` (did the AI data help; did each tuned policy become more
harmless, and at what cost in over-refusal; how the refusals were decided). Each answer carries
its interval and n, or says that the evaluation could not tell.
"""

import time

from cai import __version__
from cai.errors import CaiError
from cai.evaluation.ai_value import ai_value_lines
from cai.evaluation.scorecard import verdict_lines
from cai.hashing import content_hash


def run_meta(ctx) -> dict:
    """What a reader needs to know which run a report is about."""
    models = ctx.config.models
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cai_version": __version__,
            "run": ctx.store.run_id, "run_dir": str(ctx.run_dir),
            "models": {role: {"spec": spec, "identity": _identity(ctx, spec)}
                       for role, spec in (("policy", models.policy), ("judge", models.judge))}}


def _identity(ctx, spec: str) -> str | None:
    """A short name of what the model's answers depend on (`cai.backends.identity`)."""
    try:
        return content_hash(ctx.model_identity(spec), n=12)
    except CaiError:  # a backend this install lacks: the report still opens
        return None


def meta_lines(m: dict) -> list[str]:
    meta = m.get("meta") or {}
    if not meta:
        return []
    ms = meta.get("models") or {}
    who = "; ".join(f"{role} `{x['spec']}` (identity {x['identity']})" for role, x in ms.items())
    return [f"Run {meta.get('run')} of `{meta.get('run_dir')}`, {meta.get('date')}, cai "
            f"{meta.get('cai_version')}; {who}."]


def answer_lines(m: dict) -> list[str]:
    """The verdicts, each one line with its interval and n."""
    ev = m.get("evaluation") or {}
    lines = ai_value_lines(m.get("ai_value")) + verdict_lines(m)
    if ev.get("detector"):
        corrected = ((ev.get("detectors") or {}).get(ev.get("lead")) or {}).get("correctable")
        lines.append(f"- refusals decided by {ev['detector']}" + (
            "; rates corrected for its error (Rogan–Gladen), intervals carry the prompts' and "
            "the labels' uncertainty" if corrected else "; rates as observed"))
    return lines
