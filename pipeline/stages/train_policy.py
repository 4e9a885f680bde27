"""train-policy: the harmlessness-tuned policy, by the method `train_policy.method` selects.

dataset/prefs (or dataset/kto) -> models/policy-<hash>/ (a plain HF directory, LoRA merged)
    cai train-policy --set train_policy.method=kto --set train_policy.beta=0.05

The methods (DPO, KTO, ORPO, GRPO, RLOO) live in `cai.training.policy`, one TRL trainer each.
Named by the hash of its inputs, like every trained model.
"""

from cai.stages.context import StageStats, timed
from cai.training.policy import METHODS
from cai.training.reuse import training_stage


@timed("train-policy")
def run(ctx) -> StageStats:
    section = ctx.config.train_policy
    train = METHODS[section.method]
    return training_stage(ctx, StageStats("train-policy"), "policy", section,
                          lambda path: train(ctx, path),
                          ("method", "train_pairs", "train_rows", "train_prompts", "final_loss",
                           "label_smoothing"))[0]
