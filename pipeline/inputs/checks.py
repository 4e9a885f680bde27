"""Checks on what users give cai that need the run config: a constitution against its judge.

(The constitution's own limits are in `cai.constitution.limits`; data files are read by
`cai.inputs.sources`; the run config by `cai.config.run`.)
"""

from cai.constitution import ConstitutionError, load_constitution
from cai.constitution.limits import estimated_tokens
from cai.constitution.render import fixed_prompt_chars
from cai.errors import CaiError


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
    from cai.inputs.heldout import evaluation_prompts
    from cai.inputs.human_slice import default_prompts
    from cai.inputs.sources import BadRows, load_prompts
    constitution = load_for_judge(cfg.constitution, cfg.judge.context_tokens)
    check_tags(cfg, constitution)
    p, bad = cfg.prompts, BadRows.of(cfg)  # skipped rows are counted by the stages that read them
    if p.source == "builtin:default":
        default_prompts(cfg, bad)
    else:
        load_prompts(p.source, p.field, p.id_field, bad=bad)
    evaluation_prompts(cfg)  # the evaluation sets and the held-out human pairs


def check_tags(cfg, constitution):
    """A tag in `critique.tags` / `label.tags` that no principle has, or a principle's own tag
    one slip from one of them, would leave principles out of critique or labelling without a
    word: one line naming the key or the principle's line, before any work."""
    for key, tags in (("critique.tags", cfg.critique.tags), ("label.tags", cfg.label.tags)):
        try:
            constitution.select(tags)
        except ValueError as exc:
            raise CaiError(f"{key}: {exc} (in {cfg.constitution})") from None
        for p in constitution.principles:
            if tags is None or set(p.tags) & set(tags):
                continue
            for tag, meant in ((t, w) for t in p.tags for w in tags if _one_slip(t, w)):
                line = constitution.line_of(p.id)
                raise CaiError(f"{constitution.path}:{line}: principle '{p.id}' has tag '{tag}', "
                               f"one letter from {key}'s '{meant}', so it is left out of "
                               f"{key.split('.')[0]}; fix the spelling (or make the tags differ "
                               "by more if they are meant to)")


def _one_slip(a: str, b: str) -> bool:
    """a and b differ by one typing slip (a letter added, dropped, changed or two swapped),
    and are long enough for that to be a slip rather than another word."""
    if a == b or min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


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
