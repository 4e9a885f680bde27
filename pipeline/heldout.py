"""What training must never see: every evaluation prompt.

Evaluation prompts are every row of `evaluate.harmful`, `evaluate.safe` and `evaluate.redteam`
(all of them, not only the sampled ones) and the prompts of the held-out human pairs. Prompts
are compared after normalising case, punctuation and spacing. Generate drops such prompts (a
user's prompt file may contain them) and blend drops human pairs on them, each counted.
"""

from .human_slice import human_slice
from .sources import BadRows, load_prompts, norm  # noqa: F401 - norm: where blend takes it

EVALUATION_SETS = ("harmful", "safe", "redteam")


def evaluation_prompts(cfg) -> set[str]:
    prompts = {norm(p["prompt"]) for name in EVALUATION_SETS
               for p in load_prompts(getattr(cfg.evaluate, name), bad=BadRows.of(cfg))}
    return prompts | {norm(h["prompt"]) for h in human_slice(cfg).heldout}
