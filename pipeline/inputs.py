"""Checks on what users give cai that need the run config: a constitution against its judge.

(The constitution's own limits are in `constitution.limits`; data files are read by
`pipeline.sources`; the run config by `pipeline.config`.)
"""

from constitution import ConstitutionError, load_constitution
from constitution.limits import estimated_tokens
from constitution.render import fixed_prompt_chars

from .errors import CaiError


def fixed_tokens(constitution) -> dict[str, int]:
    """Estimated tokens each principle's longest judge prompt takes before any request or reply."""
    return {p.id: estimated_tokens(fixed_prompt_chars(constitution, p))
            for p in constitution.principles}


def load_for_judge(path, context_tokens: int):
    """The constitution at `path`, valid and within the judge's context, or one-line CaiError:
    how every command that reads a constitution reads it."""
    try:
        constitution = load_constitution(path)
    except ConstitutionError as exc:
        raise CaiError(str(exc)) from None
    check_fits_judge(constitution, context_tokens)
    return constitution


def preflight(cfg):
    """Read every input a run needs (constitution, prompts, calibration slice, evaluation sets)
    before the run directory is touched: a bad input stops the run with nothing written."""
    from .heldout import evaluation_prompts
    from .human_slice import default_prompts
    from .sources import BadRows, load_prompts
    constitution = load_for_judge(cfg.constitution, cfg.judge.context_tokens)
    check_tags(cfg, constitution)
    p, bad = cfg.prompts, BadRows.of(cfg)  # skipped rows are counted by the stages that read them
    if p.source == "builtin:default":
        default_prompts(cfg, bad)
    else:
        load_prompts(p.source, p.field, p.id_field, bad=bad)
    evaluation_prompts(cfg)  # the evaluation sets and the held-out human pairs


def check_tags(cfg, constitution):
    """A tag in `critique.tags` / `label.tags` that no principle has would leave its principles
    out of critique or labelling without a word: one line naming the key, before any work."""
    for key, tags in (("critique.tags", cfg.critique.tags), ("label.tags", cfg.label.tags)):
        try:
            constitution.select(tags)
        except ValueError as exc:
            raise CaiError(f"{key}: {exc} (in {cfg.constitution})") from None


def check_fits_judge(constitution, context_tokens: int):
    """The constitution's texts in one judge prompt must leave half the judge's context for the
    request and the replies; else one line naming the file, the principle's line and the sizes."""
    budget = context_tokens // 2
    for pid, tokens in fixed_tokens(constitution).items():
        if tokens > budget:
            line = constitution.line_of(pid)
            where = f"{constitution.path}:{line}" if line else str(constitution.path)
            raise CaiError(
                f"{where}: principle '{pid}': its judge prompts take ~{tokens:,} tokens before any "
                f"request or reply (system prompt, example, principle texts); the judge reads "
                f"{context_tokens:,} (judge.context_tokens), so keep them under {budget:,}")
