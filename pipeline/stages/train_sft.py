"""train-sft: SL-CAI, supervised fine-tuning of the policy on the judge's final revisions.

dataset/sft (prompt -> final revision, and answers the judge found no fault in) ->
models/sft-<hash>/ (TRL SFTTrainer, loss on the completion only)
    cai train-sft --set train_sft.epochs=2

The Constitutional AI recipe trains preferences from this model: with `train_policy.init: auto`
(the default; ORPO excepted) or `sft`, train-policy starts here. Named by the hash of its
inputs, like every model.
"""

from cai.errors import CaiError
from cai.stages.context import StageStats, timed
from cai.training.arguments import batch_order, lora_config, trl_args
from cai.training.base import base_model, load_tokenizer, seed_everything, sft_rows
from cai.training.reuse import training_stage
from cai.training.saving import fit, loss_curve, save_model, train_seconds
from cai.training.scoring import protected


@timed("train-sft")
def run(ctx) -> StageStats:
    if sft_rows(ctx) == 0 and ctx.store.get_manifest("export")["meta"].get("trust_gated"):
        # trust-gated SL-CAI: a judge whose verdicts earned no trust trains nothing here
        stats = StageStats("train-sft")
        stats.drop("no_trusted_revision")
        return stats
    # SFT learns from the judge's revisions; their trust gated them at export
    return training_stage(ctx, StageStats("train-sft"), "sft", ctx.config.train_sft,
                          lambda path: _train(ctx, path), ("train_rows", "final_loss"),
                          check=False)[0]


def _train(ctx, path) -> dict:
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    cfg = ctx.config.train_sft
    base_dir, identity = base_model(ctx, tuned=False)
    seed_everything(ctx.config.seed)
    tokenizer = load_tokenizer(base_dir)
    sft = ctx.run_dir / "dataset" / "sft.jsonl"
    if not sft.read_text().strip():
        raise CaiError(f"{sft}: no rows to fine-tune on (every critique chain failed: see the "
                       "critique stage's drops); set train_sft.enabled=false to train the policy "
                       "from the base model")
    rows = load_from_disk(str(ctx.run_dir / "dataset" / "sft"))["train"]
    rows = protected(rows.select_columns(["prompt", "completion"]), tokenizer)
    rows, order = batch_order(rows, cfg, ctx.config.seed)
    args = trl_args(SFTConfig, cfg, path, ctx, completion_only_loss=True,
                    train_sampling_strategy=order)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(base_dir), args=args,
                         train_dataset=rows, processing_class=tokenizer,
                         peft_config=lora_config(cfg, "CAUSAL_LM"))
    resumed = fit(trainer)
    curve = loss_curve(trainer)
    meta = {"base": identity, "train_rows": len(rows), "loss": curve, "lora": cfg.lora,
            "final_loss": curve[-1]["loss"] if curve else None, "processes": args.world_size,
            "resumed_from": resumed, "train_seconds": train_seconds(trainer)}
    save_model(trainer, tokenizer, path, meta)
    return meta
