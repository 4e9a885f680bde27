"""train-policy: the harmlessness-tuned policy, by the method `train_policy.method` selects.

dataset/prefs (or dataset/kto) -> models/policy-<hash>/ (a plain HF directory, LoRA merged)
    cai train-policy --set train_policy.method=kto --set train_policy.beta=0.05

The methods (DPO, KTO, ORPO, GRPO, RLOO) live in `pipeline.policy`, one TRL trainer each.
Named by the hash of its inputs, like every trained model.
"""

from ..context import StageStats, timed
from ..policy import METHODS
from ..training import training_stage


@timed("train-policy")
def run(ctx) -> StageStats:
    section = ctx.config.train_policy
    train = METHODS[section.method]
    return training_stage(ctx, StageStats("train-policy"), "policy", section,
                          lambda path: train(ctx, path),
                          ("method", "train_pairs", "train_rows", "train_prompts", "final_loss",
                           "label_smoothing"))[0]
