"""The model card (README.md) of a trained model directory: what it started from, what it was
trained on, the recipe and what it measured, as the Hugging Face Hub reads a card. Markdown is
read by no loader, so the card is not part of the model's identity."""

import json
from pathlib import Path

from cai import __version__
from cai.fsutil import atomic_write_text

DISTRIBUTION = "cai-pipeline"  # cai's name on the package index (`cai` is another project's)
KIND = {"sft": "SL-CAI policy (supervised on the judge's revisions)",
        "rm": "reward model (sequence classification, one score)",
        "rm-human": "reward model on the human pairs alone (the AI data's control)",
        "policy": "harmlessness-tuned policy"}
SKIP = ("loss", "rewards", "heldout_scores", "base")  # curves and score lists: in cai-model.json


def write_card(ctx, name: str, path, section, meta: dict, inputs: str):
    """README.md beside the weights (also for a model trained before cards existed)."""
    target = Path(path) / "README.md"
    if Path(path).is_dir() and not target.exists():
        atomic_write_text(target, model_card(ctx, name, section, meta, inputs))


def model_card(ctx, name: str, section, meta: dict, inputs: str) -> str:
    cfg, c = ctx.config, ctx.constitution
    base = meta.get("base") or {}
    export = ctx.store.manifest_meta("export") or {}
    method = meta.get("method") or {"sft": "sft", "rm": "reward", "rm-human": "reward"}.get(name, name)
    front = ["---", "library_name: transformers", f"tags: [cai, constitutional-ai, trl, {method}]"]
    if base.get("revision"):  # a Hub model: the Hub links the card to it
        front.append(f"base_model: {base['model']}")
    figures = {k: v for k, v in meta.items() if k not in SKIP and not isinstance(v, (list, dict))}
    recipe = section.model_dump()
    return "\n".join([
        *front, "---", "",
        f"# cai {KIND.get(name, name)} `{Path(ctx.run_dir).name}/{name}`", "",
        f"Trained by [cai](https://pypi.org/project/{DISTRIBUTION}/) {__version__}, stage "
        f"`train-{name.split('-')[0]}`, with TRL (`{method}`). Named by the hash of everything it "
        f"was made from: `{inputs[:20]}`.", "",
        "## Provenance", "",
        f"- base: `{base.get('model', meta.get('init', '?'))}`"
        + (f" revision `{base['revision']}`" if base.get("revision") else "")
        + (f" (weights `{base['weights']}`)" if base.get("weights") else ""),
        f"- data: dataset `{(export.get('parts') or {}).get('prefs', '?')}` of run directory "
        f"`{ctx.run_dir}` (its card: `dataset/README.md`)",
        f"- constitution: `{c.name}` version `{c.version}` (content `{c.content_version}`)",
        f"- judge: `{cfg.models.judge}`; seed {cfg.seed}", "",
        "## Recipe", "", "```json", json.dumps(recipe, indent=2, default=str), "```", "",
        "## Figures", "", "| figure | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(figures.items())], "",
        "Every figure, the loss curve and the scores are in `cai-model.json` beside the weights.", ""])
