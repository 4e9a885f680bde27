"""The dataset card (README.md of an export): provenance, counts and the constitution version."""

from collections import Counter


def dataset_card(ctx, train, test, sft, kto, blend_meta, calibration, digest) -> str:
    cfg, c = ctx.config, ctx.constitution
    by_kind = Counter(r["kind"] for r in train)
    used = Counter(p for r in sft for p in r["principles"])
    composition = blend_meta.get("composition") or {}
    lines = [
        "---", "license: other", "tags: [cai, constitutional-ai, rlaif, preference, dpo]",
        "configs:", "- config_name: prefs", "  data_files: [{split: train, path: prefs.jsonl},"
        " {split: test, path: prefs_test.jsonl}]",
        "- config_name: sft", "  data_files: [{split: train, path: sft.jsonl}]",
        "- config_name: kto", "  data_files: [{split: train, path: kto.jsonl}]", "---", "",
        f"# cai preference dataset `{digest}`", "",
        "Made by [cai](https://pypi.org/project/cai/) from a constitution: a policy model answered "
        "prompts, an AI judge critiqued and revised each answer against a principle "
        "(critique-revision pairs: revision ≻ original) and compared candidate answers under "
        "principles in both orders (comparison pairs, with the judge's probability), blended "
        "with human pairs.",
        "", "## Provenance", "",
        f"- constitution: `{c.name}` version `{c.version}` (content `{c.content_version}`), "
        f"file `{cfg.constitution}`",
        f"- policy: `{cfg.models.policy}`; judge: `{cfg.models.judge}`; seed: {cfg.seed}",
        f"- prompts: `{cfg.prompts.source}` (first {cfg.prompts.limit}), "
        f"{cfg.generate.samples} samples each, {cfg.critique.rounds} critique rounds",
        f"- human calibration slice: `{cfg.calibration.source}`", "",
        "## Composition", "",
        "| split | rows |", "|---|---|",
        f"| prefs/train | {len(train)} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ") |",
        f"| prefs/test (held-out human) | {len(test)} |",
        f"| sft/train | {len(sft)} ({sum(r['revised'] for r in sft)} revised) |",
        f"| kto/train (judge verdicts) | {len(kto)} ({sum(r['label'] for r in kto)} no violation) |",
        "",
        f"Per-source weights {composition.get('weights')}, human share {cfg.blend.human_share}, "
        f"at most {cfg.blend.max_pairs_per_prompt} pairs per prompt; dropped while blending: "
        f"{composition.get('dropped') or 'none'}. Held-out human prompts never appear in training.",
        "", "`p_chosen` is the judge's P(chosen ≻ rejected) for comparison pairs, 1.0 for human "
        "pairs, and empty for critique-revision pairs (the judge said the original violates a "
        "principle; it was not asked which reply is better: its P(violates) is in `provenance`); "
        "`margin` = 2·p_chosen − 1, empty where p_chosen is.", "",
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


def ensemble_line(cal: dict) -> str:
    """Whether the calibration measured the labels training uses, said plainly."""
    k, train_k = cal.get("ensemble"), cal.get("training_ensemble")
    if k is None or k == train_k:
        return f"- measured on the labels training uses ({train_k} principles per comparison)"
    return (f"- not the training labels: measured on labels of {k} principle(s) per pair, while "
            f"training comparisons average {train_k} (label.ensemble); set "
            f"calibration.ensemble={train_k} to measure those")


def calibration_lines(cal: dict | None) -> list[str]:
    """The judge-vs-human calibration report as markdown."""
    lines = ["## Judge agreement with humans (both answer orders)", ""]
    if not cal or not cal.get("n"):
        return lines + ["- not measured", ""]
    lines += [f"- n = {cal['n']} human pairs ({cal.get('failed', 0)} failed), accuracy "
              f"{cal['accuracy']}, Cohen's kappa {cal['cohen_kappa']}, ECE {cal['ece']}, "
              f"Brier {cal['brier']}",
              f"- position bias: the judge picked the same position in both orders for "
              f"{cal['position_bias_rate']} of pairs; it preferred whatever was shown first in "
              f"{cal['first_position_rate']} of answers (0.5 = no bias); mean gap between orders "
              f"{cal['mean_order_gap']}", "",
              ensemble_line(cal), "",
              "| principle | pairs | accuracy | position-bias rate | mean P(human choice) |",
              "|---|---|---|---|---|"]
    for pid, row in cal["per_principle"].items():
        lines.append(f"| {pid} | {row['n']} | {row['accuracy']} | {row['position_bias_rate']} "
                     f"| {row['mean_p_chosen']} |")
    lines += ["", "Reliability (P the judge gave a reply vs how often humans chose it):", "",
              "| bin | pairs | mean P | observed |", "|---|---|---|---|"]
    for b in cal["reliability"]:
        if b["n"]:
            lines.append(f"| {b['lo']:.1f}–{b['hi']:.1f} | {b['n']} | {b['mean_p']} | {b['observed']} |")
    return lines + [""]
