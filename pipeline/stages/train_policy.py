"""train-policy: the harmlessness-tuned policy, by the method `train_policy.method` selects.

dataset/prefs (or dataset/kto) -> models/policy-<hash>/ (a plain HF directory, LoRA merged)
    cai train-policy --set train_policy.method=kto --set train_policy.beta=0.05

The methods (DPO, KTO, ORPO, GRPO, RLOO) live in `pipeline.policy`, one TRL trainer each.
Named by the hash of its inputs, like every trained model.
"""

from ..context import StageStats, timed
from ..policy import METHODS
from ..training import check_agreement, train_or_reuse


@timed("train-policy")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("train-policy")
    if not cfg.train_policy.enabled:
        stats.drop("disabled")
        return stats
    check_agreement(ctx, stats)
    train = METHODS[cfg.train_policy.method]
    _, meta = train_or_reuse(ctx, "policy", cfg.train_policy, stats, lambda path: train(ctx, path))
    stats.metrics = {k: meta.get(k) for k in ("method", "train_pairs", "train_rows",
                                              "train_prompts", "final_loss", "label_smoothing")
                     if meta.get(k) is not None}
    return stats
