"""The dataset card (README.md of an export): provenance, counts and the constitution version."""


def dataset_card(ctx, n: dict, blend_meta, calibration, digest) -> str:
    """`n`: how many rows each split has ('train', 'test', 'ai', 'sft', 'kto'), and of them
    'ai_counted' (weight > 0), 'sft_revised', 'kto_desirable', 'train_kinds' and
    'principles_used' (SFT rows per principle)."""
    cfg, c = ctx.config, ctx.constitution
    by_kind, used = n.get("train_kinds", {}), n.get("principles_used", {})
    composition = blend_meta.get("composition") or {}
    lines = [
        "---", "license: other", "tags: [cai, constitutional-ai, rlaif, preference, dpo]",
        "configs:", "- config_name: prefs", "  data_files: [{split: train, path: prefs.jsonl},"
        " {split: test, path: prefs_test.jsonl}, {split: ai, path: prefs_ai.jsonl}]",
        "- config_name: sft", "  data_files: [{split: train, path: sft.jsonl}]",
        "- config_name: kto", "  data_files: [{split: train, path: kto.jsonl}]", "---", "",
        f"# cai preference dataset `{digest}`", "",
        "Made by [cai](https://pypi.org/project/cai-pipeline/) (`pip install cai-pipeline`) from a "
        "constitution: a policy model answered prompts, an AI judge critiqued and revised each "
        "answer against a principle (critique-revision pairs: revision ≻ original) and compared "
        "candidate answers under principles in both orders (comparison pairs, with the judge's "
        "probability), blended with human pairs.",
        "", "## Provenance", "",
        f"- constitution: `{c.name}` version `{c.version}` (content `{c.content_version}`), "
        f"file `{cfg.constitution}`",
        f"- policy: `{cfg.models.policy}`; judge: `{cfg.models.judge}`; seed: {cfg.seed}",
        f"- prompts: `{cfg.prompts.source}` (first {cfg.prompts.limit}), "
        f"{cfg.generate.samples} samples each, {cfg.critique.rounds} critique rounds",
        f"- human calibration slice: `{cfg.calibration.source}`", "",
        "## Composition", "",
        "| split | rows |", "|---|---|",
        f"| prefs/train | {n.get('train', 0)} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ") |",
        f"| prefs/test (held-out human) | {n.get('test', 0)} |",
        f"| prefs/ai (every AI pair made, used or not) | {n.get('ai', 0)} "
        f"({n.get('ai_counted', 0)} with weight > 0) |",
        f"| sft/train | {n.get('sft', 0)} ({n.get('sft_revised', 0)} revised) |",
        f"| kto/train (judge verdicts) | {n.get('kto', 0)} ({n.get('kto_desirable', 0)} no "
        "violation) |",
        "",
        f"{effective_line(composition)} Per-source factors {composition.get('weights')}, "
        f"at most {cfg.blend.max_pairs_per_prompt} AI pairs per prompt; dropped while blending: "
        f"{composition.get('dropped') or 'none'}. No evaluation prompt and no held-out human "
        "prompt appears in training.",
        "", "`p_chosen` is the calibrated P(chosen ≻ rejected) (fit on the human slice; for a "
        "critique-revision pair, from the judge comparing original and revision in both orders; "
        "1.0 for human pairs); `margin` = 2·p_chosen − 1. **prefs/train is weighted by "
        "repetition** (a pair of weight w appears floor(w) times, once more with probability "
        "frac(w)) and so has no `weight` column: do not weigh it again. prefs/ai holds each AI "
        "pair once, with `weight` = the trust its principles earned on human pairs × its "
        "calibrated confidence, `trust`, `p_raw` (the judge's uncalibrated probability) and "
        "`principle`: weigh by that column if you train on it.", "",
        *_trust_lines(n, cfg.calibration.use_trust),
    ]
    lines += calibration_lines(calibration)
    lines += ["", "## Principles used (SFT rows, all rounds)", "", "| principle | version | uses |",
              "|---|---|---|"]
    for p in c.principles:
        lines.append(f"| {p.id} | `{p.version}` | {used.get(p.id, 0)} |")
    lines += ["", "Each row's `provenance` column (JSON) gives, per round, the principle id and "
              "version, the critique, P(violates) and the revision outcome, plus models and seed.",
              "", "Human pairs: Anthropic hh-rlhf harmless-base (MIT) unless configured otherwise.", ""]
    return "\n".join(lines)


def _trust_lines(n: dict, gated: bool) -> list[str]:
    """Why AI output counted as much as it did, in the card's words."""
    counted = n.get("ai_counted", 0)
    if not gated:
        return ["**Not trust-gated** (`calibration.use_trust: false`): every AI pair weighs its "
                "raw confidence, and SL-CAI and KTO rows use every judge verdict.", ""]
    why = ("" if counted else " (no principle's judge earned trust on the human pairs, so none "
           "reached training)")
    return [f"{counted} of {n.get('ai', 0)} AI pairs counted{why}; SL-CAI rows ({n.get('sft', 0)}) "
            f"and KTO verdicts ({n.get('kto', 0)}) are kept only where their principles earned "
            "trust.", ""]


def effective_line(c: dict | None) -> str:
    """How much the AI pairs counted, in one sentence."""
    if not c:
        return ""
    effective = sum((c.get("ai_effective") or {}).values())
    return (f"{c.get('ai_candidates', 0)} AI pairs counted as {effective:.1f} effective pairs "
            f"({sum(c['ai'].values())} sampled into training) beside {c['human']} human pairs.")


def ensemble_line(cal: dict) -> str:
    """Whether the calibration measured the labels training uses, said plainly."""
    k, train_k = cal.get("ensemble"), cal.get("training_ensemble")
    if k is None or k == train_k:
        return f"- measured on the labels training uses ({train_k} principles per comparison)"
    return (f"- not the training labels: measured on labels of {k} principle(s) per pair, while "
            f"training comparisons average {train_k} (label.ensemble); set "
            f"calibration.ensemble={train_k} to measure those")


def mode_lines(cal: dict) -> list[str]:
    """How the labels were asked (`label.mode`), and what `auto` kept per principle."""
    lm = cal.get("label_mode") or {}
    if lm.get("setting", "pairwise") == "pairwise":
        return []
    if lm["setting"] == "pointwise":
        return ["- labels asked pointwise: each reply scored alone, the pair from the two scores"]
    by_mode: dict[str, list] = {}
    for pid, mode in sorted(lm["chosen"].items()):
        acc = {m: (lm.get("accuracy") or {}).get(m, {}).get(pid) for m in ("pairwise", "pointwise")}
        by_mode.setdefault(mode, []).append(
            f"`{pid}` ({_acc(acc['pairwise'])} pairwise, {_acc(acc['pointwise'])} pointwise)")
    return ["- label mode auto, chosen per principle by held-out agreement with people: "
            + "; ".join(f"{mode} for {', '.join(v)}" for mode, v in sorted(by_mode.items()))]


def _acc(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def calibration_lines(report: dict | None) -> list[str]:
    """The judge-vs-human report (`cai.feedback.trust`) as markdown: raw and calibrated agreement on
    held-out human pairs, per principle, and the trust each principle earned."""
    lines = ["## Judge agreement with humans and the trust it earned", ""]
    if not report or not report.get("n"):
        return lines + ["- not measured: no human pair was judged, so AI pairs weigh 0", ""]
    raw, cal = report["raw"], report["calibrated"]
    lines += [f"- {report['n']} human training pairs judged ({report.get('failed', 0)} failed), "
              f"each calibrated by a map fit on the other {report['folds'] - 1} of "
              f"{report['folds']} folds: accuracy {raw['accuracy']} raw, {cal['accuracy']} "
              f"calibrated; Cohen's kappa {raw['cohen_kappa']} → {cal['cohen_kappa']}; ECE "
              f"{raw['ece']} → {cal['ece']}; Brier {raw['brier']} → {cal['brier']}",
              f"- position bias: the judge picked the same position in both orders for "
              f"{raw['position_bias_rate']} of pairs and preferred whatever was shown first in "
              f"{raw['first_position_rate']} of answers (0.5 = no bias)",
              f"- trust (lower 95 % bound of 2·accuracy − 1, at least 0): "
              f"{report['overall_trust']} overall", ensemble_line(report), *mode_lines(report), "",
              "| principle | pairs | accuracy raw | accuracy calibrated | trust |",
              "|---|---|---|---|---|"]
    for pid, row in cal["per_principle"].items():
        before = raw["per_principle"].get(pid, {}).get("accuracy")
        lines.append(f"| {pid} | {row['n']} | {before} | {row['accuracy']} | "
                     f"{report['trust'].get(pid, 0.0)} |")
    lines += ["", "Reliability of the calibrated labels (P vs how often humans chose that reply):",
              "", "| bin | pairs | mean P | observed |", "|---|---|---|---|"]
    for b in cal["reliability"]:
        if b["n"]:
            lines.append(f"| {b['lo']:.1f}–{b['hi']:.1f} | {b['n']} | {b['mean_p']} | "
                         f"{b['observed']} |")
    return lines + [""]
