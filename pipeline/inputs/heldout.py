"""What training must never see: every evaluation prompt.

Evaluation prompts are every row of `evaluate.harmful`, `evaluate.unsafe`, `evaluate.safe`,
`evaluate.redteam` and the prompts of `evaluate.refusal_labels` (all of them, not only the sampled
ones; of a builtin dev set both its tuning and its test half) and the prompts of the held-out
human pairs. Prompts
are compared after normalising case, punctuation and spacing. Generate drops such prompts (a
user's prompt file may contain them) and blend drops human pairs on them, each counted.
"""

from cai.inputs.human_slice import human_slice
from cai.inputs.sources import BadRows, load_prompts, norm, whole_set  # noqa: F401 - norm: blend takes it

EVALUATION_SETS = ("harmful", "unsafe", "safe", "redteam", "refusal_labels")


def evaluation_prompts(cfg) -> set[str]:
    prompts = {norm(p["prompt"]) for name in EVALUATION_SETS
               for p in load_prompts(whole_set(getattr(cfg.evaluate, name)), bad=BadRows.of(cfg))}
    return prompts | {norm(h["prompt"]) for h in human_slice(cfg).heldout}
