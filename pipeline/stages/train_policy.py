"""train-policy: a harmlessness-tuned policy by DPO on the blended pairs (TRL DPOTrainer).

dataset/prefs (train) -> models/policy-<hash>/ (a plain HF directory, LoRA merged)
    cai train-policy --set train_policy.beta=0.05 --set train_policy.lora=false

With LoRA the reference model is the base with the adapter disabled; without it an explicit
frozen copy is passed. Named by the hash of its inputs, like every trained model.
"""

from ..context import StageStats, timed
from ..errors import ConfigError
from ..training import (base_model, check_agreement, dpo_label_smoothing, load_prefs,
                        load_tokenizer, lora_config, loss_curve, quiet_progress, save_model,
                        seed_everything, train_or_reuse, trl_args)


@timed("train-policy")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("train-policy")
    if not cfg.train_policy.enabled:
        stats.drop("disabled")
        return stats
    if cfg.train_policy.method != "dpo":
        raise ConfigError(f"train_policy.method '{cfg.train_policy.method}' is not available; "
                          "choose 'dpo'")
    check_agreement(ctx, stats)
    _, meta = train_or_reuse(ctx, "policy", cfg.train_policy, stats, lambda path: _train(ctx, path))
    stats.metrics = {"train_pairs": meta["train_pairs"], "final_loss": meta["final_loss"],
                     "label_smoothing": meta.get("label_smoothing")}
    return stats


def _train(ctx, path) -> dict:
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    cfg = ctx.config.train_policy
    base_dir, identity = base_model(ctx, tuned=True)
    seed_everything(ctx.config.seed)
    tokenizer = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    ref = None if cfg.lora else AutoModelForCausalLM.from_pretrained(base_dir)
    train = load_prefs(ctx, "train", ("p_chosen",))
    smoothing = dpo_label_smoothing(cfg, train)  # conservative DPO: labels are P, not certainty
    args = trl_args(DPOConfig, cfg, path.parent / ".trainer-policy", ctx, beta=cfg.beta,
                    label_smoothing=smoothing, loss_type=list(cfg.loss_type))
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=train,
                         processing_class=tokenizer, peft_config=lora_config(cfg, "CAUSAL_LM"))
    quiet_progress(trainer).train()
    curve = loss_curve(trainer)
    margins = [r for r in trainer.state.log_history if "rewards/accuracies" in r]
    meta = {"base": identity, "method": "dpo", "beta": cfg.beta, "lora": cfg.lora,
            "label_smoothing": smoothing, "processes": args.world_size,
            "loss_type": list(cfg.loss_type), "init": identity["model"],
            "train_pairs": len(train), "loss": curve,
            "final_loss": curve[-1]["loss"] if curve else None,
            "reward_accuracy_last": margins[-1]["rewards/accuracies"] if margins else None}
    save_model(trainer, tokenizer, path, meta)
    return meta
