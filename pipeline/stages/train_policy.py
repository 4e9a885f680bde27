"""train-policy: a harmlessness-tuned policy by DPO on the blended pairs (TRL DPOTrainer).

dataset/prefs (train) -> models/policy-<hash>/ (a plain HF directory, LoRA merged)
    cai train-policy --set train_policy.beta=0.05 --set train_policy.lora=false

With LoRA the reference model is the base with the adapter disabled; without it an explicit
frozen copy is passed. Named by the hash of its inputs, like every trained model.
"""

from ..client import freeze
from ..context import StageStats, timed
from ..errors import ConfigError
from ..rewards import judge_reward
from ..training import (base_model, check_agreement, dpo_label_smoothing, load_prefs,
                        load_tokenizer, lora_config, loss_curve, quiet_progress, save_model,
                        seed_everything, train_or_reuse, trl_args)


@timed("train-policy")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("train-policy")
    if not cfg.train_policy.enabled:
        stats.drop("disabled")
        return stats
    check_agreement(ctx, stats)
    train = _train if cfg.train_policy.method == "dpo" else _train_grpo
    _, meta = train_or_reuse(ctx, "policy", cfg.train_policy, stats, lambda path: train(ctx, path))
    stats.metrics = {"train_pairs": meta.get("train_pairs"), "final_loss": meta["final_loss"],
                     "label_smoothing": meta.get("label_smoothing"), "method": meta["method"]}
    return stats


def _train_grpo(ctx, path) -> dict:
    """Online RL: completions sampled from the policy, scored by the RM and/or the judge; the
    KL to the reference is TRL's `beta` (logged as `kl` per step)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    cfg = ctx.config.train_policy
    base_dir, identity = base_model(ctx, tuned=True)
    seed_everything(ctx.config.seed)
    tokenizer = load_tokenizer(base_dir)
    seen, rows = set(), []
    for messages in load_prefs(ctx, "train")["prompt"]:  # each prompt once
        if freeze(messages) not in seen:
            seen.add(freeze(messages))
            rows.append({"prompt": messages})
    prompts = Dataset.from_list(rows)
    rewards = [r for r in (_rm_path(ctx) if "rm" in cfg.reward else None,
                           judge_reward(ctx) if "judge" in cfg.reward else None) if r is not None]
    args = trl_args(GRPOConfig, cfg, path.parent / ".trainer-policy", ctx, beta=cfg.beta,
                    num_generations=cfg.num_generations, max_completion_length=cfg.max_new_tokens,
                    per_device_train_batch_size=max(cfg.batch_size, cfg.num_generations))
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(base_dir), reward_funcs=rewards,
                          args=args, train_dataset=prompts, processing_class=tokenizer,
                          peft_config=lora_config(cfg, "CAUSAL_LM"))
    quiet_progress(trainer).train()
    curve = loss_curve(trainer)
    logs = [r for r in trainer.state.log_history if "reward" in r]
    meta = {"base": identity, "method": "grpo", "reward": list(cfg.reward), "beta": cfg.beta,
            "lora": cfg.lora, "train_prompts": len(prompts), "loss": curve,
            "final_loss": curve[-1]["loss"] if curve else None, "init": identity["model"],
            "rewards": [{"step": r.get("step"), "reward": r["reward"], "kl": r.get("kl")}
                        for r in logs], "processes": args.world_size}
    save_model(trainer, tokenizer, path, meta)
    return meta


def _rm_path(ctx) -> str:
    rm = ctx.store.get_manifest("train-rm")
    if rm is None:
        raise ConfigError("train_policy.reward includes 'rm' but train-rm has not run; run "
                          "`cai train-rm` first (or use reward: [judge])")
    return rm["meta"]["path"]


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
