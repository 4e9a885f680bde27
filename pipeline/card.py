"""The dataset card (README.md of an export): provenance, counts and the constitution version."""

from collections import Counter


def dataset_card(ctx, train, test, sft, blend_meta, digest) -> str:
    cfg, c = ctx.config, ctx.constitution
    by_source = Counter(r["source"] for r in train)
    used = Counter(p for r in sft for p in r["principles"])
    agreement = blend_meta.get("agreement") or {}
    lines = [
        "---", "license: other", "tags: [cai, constitutional-ai, rlaif, preference, dpo]",
        "configs:", "- config_name: prefs", "  data_files: [{split: train, path: prefs.jsonl},"
        " {split: test, path: prefs_test.jsonl}]",
        "- config_name: sft", "  data_files: [{split: train, path: sft.jsonl}]", "---", "",
        f"# cai preference dataset `{digest}`", "",
        "Made by [cai](https://pypi.org/project/cai/) from a constitution: a policy model answered "
        "prompts, an AI judge critiqued and revised each answer against a principle, and the "
        "critique outcomes became preference pairs (revision ≻ original), blended with human pairs.",
        "", "## Provenance", "",
        f"- constitution: `{c.name}` version `{c.version}` (content `{c.content_version}`), "
        f"file `{cfg.constitution}`",
        f"- policy: `{cfg.models.policy}`; judge: `{cfg.models.judge}`; seed: {cfg.seed}",
        f"- prompts: `{cfg.prompts.source}` (first {cfg.prompts.limit}), "
        f"{cfg.generate.samples} samples each, {cfg.critique.rounds} critique rounds",
        f"- human calibration slice: `{cfg.blend.human_source}`", "",
        "## Counts", "",
        "| split | rows |", "|---|---|",
        f"| prefs/train | {len(train)} (AI {by_source.get('ai', 0)}, human {by_source.get('human', 0)}) |",
        f"| prefs/test (held-out human) | {len(test)} |",
        f"| sft/train | {len(sft)} ({sum(r['revised'] for r in sft)} revised) |", "",
        "## Judge agreement with humans (held-out pairs, both answer orders)", "",
    ]
    if agreement.get("n"):
        lines += [f"- n = {agreement['n']}, accuracy {agreement['accuracy']:.3f}, order consistency "
                  f"{agreement['order_consistency']:.3f} (a judge that always picks the same "
                  "position scores 0.5 and 0.0)"]
    else:
        lines += ["- not measured"]
    lines += ["", "## Principles used (SFT rows, all rounds)", "", "| principle | version | uses |",
              "|---|---|---|"]
    for p in c.principles:
        lines.append(f"| {p.id} | `{p.version}` | {used.get(p.id, 0)} |")
    lines += ["", "Each row's `provenance` column (JSON) gives, per round, the principle id and "
              "version, the critique, P(violates) and the revision outcome, plus models and seed.",
              "", "Human pairs: Anthropic hh-rlhf harmless-base (MIT) unless configured otherwise.", ""]
    return "\n".join(lines)
