"""metrics.json and summary.md: what a run produced, in numbers and in a page a person reads."""

import json

from cai.evaluation.ai_value import remembered_ai_value
from cai.evaluation.detectors import describe
from cai.evaluation.scorecard import HEADER, ITERATION_HEADER, evaluation_rows, fmt, iteration_rows
from cai.fsutil import atomic_write_text
from cai.publish.card import effective_line, ensemble_line, mode_lines
from cai.report import html as report_html
from cai.report.figures import PLOTS
from cai.report.headline import answer_lines, meta_lines, run_meta
from cai.review.agreement import review_metrics, stats_lines
from cai.stages import STAGES
from cai.stages.calibrate import current_fit
from cai.stages.freshness import stale_lines, stale_stages
from cai.training.ensemble import ENSEMBLE


def collect(ctx, stage_stats) -> dict:
    stale = stale_stages(ctx)
    # A model trained on an earlier dataset (or with other settings) is left out, and named.
    # metas and counts only: a stage's ids (a million of them) are not needed here
    m = {s: None if s in stale else ctx.store.manifest_meta(s) for s in [*STAGES, "train-rm-human"]}
    meta = {s: v or {} for s, v in m.items()}
    count = {s: 0 if m[s] is None else ctx.store.manifest_list(s)[1] for s in m}
    return {
        "run": ctx.store.run_id,
        "meta": run_meta(ctx),
        # which run produced each stage's current outputs (a skipped stage keeps its run's)
        "produced_by": ctx.store.manifest_runs(),
        "stale": stale,
        "constitution": {"name": ctx.constitution.name, "version": ctx.constitution.version,
                         "content_version": ctx.constitution.content_version},
        "models": ctx.config.models.model_dump(),
        "counts": {"responses": count["generate"], "chains": count["critique"],
                   "comparisons": count["label"], "ai_pairs": count["pairs"],
                   "blend": meta["blend"].get("composition"),
                   "sft": meta["export"].get("sft"), "ai_export": meta["export"].get("ai"),
                   "trust_gated": meta["export"].get("trust_gated")},
        "judge_agreement": current_fit(ctx)[1] if m["calibrate"] is not None else None,
        "dataset": ctx.store.get_manifest("export")["ids"][0] if m["export"] is not None else None,
        "sft": {k: meta["train-sft"].get(k) for k in ("path", "train_rows", "final_loss")},
        "reward_model": {k: meta["train-rm"].get(k) for k in
                         ("path", "train_pairs", "train_accuracy", "train_accuracy_pairs",
                          "heldout_accuracy", "heldout_auc", "train_heldout_gap", "reward_length_corr",
                          "heldout_scores", "heldout_lengths")},
        "reward_ensemble": _ensemble(ctx),
        "ai_value": _ai_value(ctx.store, meta, ctx.config.seed),
        "loss": {s: meta[s]["loss"] for s in ("train-sft", "train-rm", "train-policy")
                 if meta[s].get("loss")},
        "sample_pairs": sample_pairs(ctx.store),
        "policy": {k: meta["train-policy"].get(k) for k in
                   ("path", "method", "init", "train_pairs", "train_rows", "train_prompts", "final_loss",
                    "reward_accuracy_last")},
        "evaluation": {k: meta["evaluate"].get(k) for k in
                       ("table", "verdicts", "detectable", "detectors", "lead", "labelled",
                        "win_rate", "reward", "kl", "detector", "samples")},
        "review": review_metrics(ctx.store, ctx.config.review.annotators_per_item),
        "stages": {s.stage: {"seconds": round(s.seconds, 2), "made": s.made, "reused": s.cached,
                             "model_calls": s.calls, "dropped": s.dropped} for s in stage_stats},
    }


def _ensemble(ctx) -> dict | None:
    """The reward-model ensemble (`train_rm.ensemble` > 1): each member's held-out accuracy, the
    aggregate's and the members' mean spread."""
    if ctx.config.train_rm.ensemble < 2:
        return None
    meta = ctx.store.manifest_meta(ENSEMBLE) or {}
    return {k: v for k, v in meta.items() if k != "paths"} or None


def _ai_value(store, meta: dict, seed: int) -> dict | None:
    """The reward model with the AI pairs vs without them, on the same held-out human pairs."""
    full, human = meta["train-rm"], meta["train-rm-human"]
    if not (full.get("heldout_scores") and human.get("heldout_scores")):
        return None
    return {**remembered_ai_value(store, full["heldout_scores"], human["heldout_scores"], seed),
            "same_model": full.get("path") == human.get("path"),
            "train_pairs": full.get("train_pairs"),
            "train_pairs_human_only": human.get("train_pairs")}


def sample_pairs(store, n: int = 6) -> list[dict]:
    """A few preference pairs with why they were made (the critiques, or the judge's P)."""
    first = next(store.manifest_pages("pairs", n), []) if store.manifest_meta("pairs") is not None \
        else []
    pairs = list(store.get_records(first).values())
    out = []
    for p in pairs:
        prov = p.get("provenance", {})
        why = " ".join(r.get("critique") or "" for r in prov.get("rounds", []) if r.get("violates"))
        if p["kind"] == "comparison":
            why = f"judge P(chosen ≻ rejected) = {p['p_chosen']:.2f} ({prov.get('method')})"
        out.append({k: p[k] for k in ("kind", "prompt", "chosen", "rejected")}
                   | {"why": why, "weight": p.get("weight"), "counted": counted(p.get("weight"))})
    return out


def counted(weight: float | None) -> str:
    """What a pair's weight meant for training, in words (blend uses a pair floor(w) times and
    once more with probability frac(w))."""
    if not weight:
        return "weight 0: not used in training (its judge earned no trust)"
    return f"weight {weight:.2f}: used {weight:.2f} times in expectation"


def write(ctx, stage_stats) -> dict:
    metrics = collect(ctx, stage_stats)
    atomic_write_text(ctx.run_dir / "metrics.json", json.dumps(metrics, indent=2, default=str))
    atomic_write_text(ctx.run_dir / "summary.md", summary(metrics))
    atomic_write_text(ctx.run_dir / "report.html", report_html.render(metrics, ctx.run_dir / PLOTS))
    return metrics


def _composition(c: dict | None) -> str:
    if not c:
        return "–"
    ai = c.get("ai", {})
    return (f"{sum(ai.values())} AI (" + ", ".join(f"{k} {v}" for k, v in sorted(ai.items()))
            + f") + {c['human']} human pairs; {c['heldout_human']} human pairs held out")


def evaluation_table(m: dict) -> list[str]:
    """Base vs each trained policy, as Markdown: the table `cai run` prints last."""
    return _markdown(HEADER, evaluation_rows(m))


def iteration_table(m: dict) -> list[str]:
    """Per iteration, as Markdown (none for a run of one iteration)."""
    rows = iteration_rows(m)
    return ["", "Per iteration (each tuned policy vs the policy it started from):", "",
            *_markdown(ITERATION_HEADER, rows)] if rows else []


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(row) + " |" for row in rows]


def judge_lines(a: dict, composition: dict | None) -> list[str]:
    """What the judge's labels were worth on cross-fitted human training pairs, and what they
    counted for."""
    if not a.get("n"):
        return ["- judge vs humans: not measured (no human pair judged): AI pairs weigh 0"]
    raw, cal = a["raw"], a["calibrated"]
    # The pairs the judge labels are training pairs: each one's calibrated label comes from a
    # map fit without it (cross-fitting), which is what makes the figure held-out; the pairs of
    # `calibration.heldout` are never shown to the judge.
    return [f"- judge vs humans on {a['n']} human training pairs, each calibrated by a map fit "
            f"without it (both orders, {a['folds']}-fold cross-fitting): accuracy "
            f"{fmt(raw['accuracy'])} raw → {fmt(cal['accuracy'])} calibrated, Cohen's kappa "
            f"{fmt(cal['cohen_kappa'])}, ECE "
            f"{fmt(raw['ece'])} → {fmt(cal['ece'])}, position-bias rate "
            f"{fmt(raw['position_bias_rate'])} (chance accuracy 0.50; a judge that always picks "
            f"one position has bias rate 1.00); trust {fmt(a['overall_trust'])}",
            f"- {effective_line(composition)} The judge agrees with humans "
            f"{fmt(cal['accuracy'])} of the time, so its pairs count for what that is worth.",
            ensemble_line(a), *mode_lines(a)]


def ensemble_lines(e: dict | None) -> list[str]:
    if not e:
        return []
    return [f"- reward-model ensemble of {e['k']}: held-out accuracy of the members "
            f"{', '.join(fmt(x) for x in e['member_accuracy'])}; of their {e['aggregate']} "
            f"{fmt(e['accuracy'])}; mean spread (the members' disagreement) {fmt(e['mean_spread'])}"]


def strength_lines(a: dict) -> list[str]:
    """Each principle's strength on the human slice, strongest first (`cai principles score`)."""
    rows = a.get("strength") or {}
    if not rows:
        return []
    order = sorted(rows, key=lambda pid: (-rows[pid]["strength"], pid))
    return ["- principles by strength on the human slice (relevance × 2(accuracy − 0.5), 95 % "
            "interval, pairs): " + "; ".join(
                f"{pid} {fmt(rows[pid]['strength'])} [{fmt(rows[pid]['ci95'][0])}, "
                f"{fmt(rows[pid]['ci95'][1])}] n={rows[pid]['pairs']}" for pid in order)]


def sft_line(m: dict) -> str:
    """SL-CAI SFT, and whether trust gated it."""
    c = m["counts"]
    if c.get("trust_gated") is False:
        return (f"- SL-CAI SFT: final loss {fmt(m['sft'].get('final_loss'))} on "
                f"{m['sft'].get('train_rows')} revisions — **not trust-gated** "
                "(calibration.use_trust: false): every revision of the judge trains the policy")
    if c.get("sft") == 0:
        return ("- SL-CAI SFT: off — no revision earned trust (the judge's principles scored "
                "trust 0 on the human pairs), so the policy trains from the base")
    return (f"- SL-CAI SFT: final loss {fmt(m['sft'].get('final_loss'))} on "
            f"{m['sft'].get('train_rows')} trusted revisions")


def detector_lines(m: dict) -> list[str]:
    """Every refusal detector's agreement with people, the leading one first."""
    ev = m.get("evaluation") or {}
    measured, first = ev.get("detectors") or {}, ev.get("lead")
    if not measured:
        return []
    order = [first] + [d for d in measured if d != first]
    return ["", f"Refusal detectors against people ({ev.get('labelled')} labelled replies; the "
                f"first leads):", "", *(f"- {describe(d, measured[d])}" for d in order)]


def summary(m: dict) -> str:
    c, a = m["counts"], m["judge_agreement"] or {}
    lines = ["# cai run summary", "", *meta_lines(m), "", "## The answers", "", *answer_lines(m),
             "", "## The figures", "",
             f"Constitution `{m['constitution']['name']}` v{m['constitution']['version']} "
             f"(`{m['constitution']['content_version']}`); policy `{m['models']['policy']}`, "
             f"judge `{m['models']['judge']}`.", "",
             f"- {c['responses']} responses → {c['chains']} critique chains and "
             f"{c['comparisons']} judge comparisons → {c['ai_pairs']} AI pairs",
             f"- blended training set: {_composition(c['blend'])}; SFT rows: {c['sft']}",
             *judge_lines(a, c["blend"]),
             *strength_lines(a),
             f"- reward model: held-out accuracy {fmt(m['reward_model'].get('heldout_accuracy'))}, "
             f"train accuracy {fmt(m['reward_model'].get('train_accuracy'))} on "
             f"{m['reward_model'].get('train_accuracy_pairs') or '–'} training pairs (gap "
             f"{fmt(m['reward_model'].get('train_heldout_gap'))}), held-out ROC-AUC "
             f"{fmt(m['reward_model'].get('heldout_auc'))}",
             *ensemble_lines(m.get("reward_ensemble")),
             sft_line(m),
             f"- policy ({(m['policy'].get('method') or '–').upper()} from "
             f"{m['policy'].get('init') or '–'}): final loss {fmt(m['policy'].get('final_loss'))}",
             "",
             *stale_lines(m.get("stale")),
             *stats_lines(m.get("review")),
             "",
             *evaluation_table(m),
             *iteration_table(m)]
    lines += [*detector_lines(m), "", "| stage | seconds | made | reused | model calls | dropped |",
              "|---|---|---|---|---|---|"]
    for name, s in m["stages"].items():
        lines.append(f"| {name} | {s['seconds']} | {s['made']} | {s['reused']} | {s['model_calls']} "
                     f"| {s['dropped'] or ''} |")
    return "\n".join(lines) + "\n"
