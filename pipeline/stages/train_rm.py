"""train-rm: a reward model on the blended pairs (TRL RewardTrainer), scored on held-out humans,
beside the same reward model trained on the human pairs alone: what the AI pairs added.

dataset/prefs (train) -> models/rm-<hash>/ ; accuracy on dataset/prefs (test: held-out human pairs)
dataset/prefs (train, human rows only) -> models/rm-<hash>/ (manifest train-rm-human), the same
settings; both scored on the same held-out pairs, their difference with a 95 % interval
    cai train-rm --set train_rm.epochs=2

A model directory is named by the hash of the rows it trains on, the train_rm config, the base
model and the seed: unchanged inputs reuse it, changed inputs train a new one, and where the
blend holds no AI pair (a judge at chance weighs them 0) the two are one model, trained once.
"""

import math

from cai.errors import CaiError
from cai.evaluation.ai_value import remembered_ai_value
from cai.stages.context import StageStats, timed
from cai.stats import roc_auc
from cai.training.arguments import batch_order, lora_config, trl_args
from cai.training.base import base_model, load_tokenizer, seed_everything
from cai.training.ensemble import ENSEMBLE, ensemble_report, member_name
from cai.training.inputs import load_prefs, with_margin
from cai.training.reuse import train_or_reuse, training_stage
from cai.training.saving import correlation, fit, loss_curve, pair_accuracy, save_model, train_seconds
from cai.training.scoring import protected, reward_scores

KEYS = ("train_accuracy", "heldout_accuracy", "heldout_auc", "train_heldout_gap", "train_pairs")


@timed("train-rm")
def run(ctx) -> StageStats:
    stats, section = StageStats("train-rm"), ctx.config.train_rm
    _, full = training_stage(ctx, stats, "rm", section, lambda path: _train(ctx, path, stats), KEYS)
    if full is None:  # disabled
        return stats
    _, human = train_or_reuse(ctx, "rm", section, stats,
                              lambda path: _train(ctx, path, stats, human_only=True),
                              part="prefs_human", manifest="train-rm-human")
    stats.metrics["human_only"] = {k: human.get(k) for k in KEYS}
    stats.metrics["ai_value"] = remembered_ai_value(ctx.store, full["heldout_scores"],
                                                    human["heldout_scores"], ctx.config.seed)
    if section.ensemble > 1:
        stats.metrics["ensemble"] = _ensemble(ctx, stats, section, full)
    return stats


def _ensemble(ctx, stats, section, first: dict) -> dict:
    """Members 2..k (member 1 is the run's reward model), each named and reused on its own;
    the manifest `train-rm-ensemble` lists them for GRPO/RLOO and the report."""
    done = [(ctx.store.manifest_meta("train-rm")["path"], first)]
    for i in range(1, section.ensemble):
        done.append(train_or_reuse(ctx, member_name(i), section, stats,
                                   lambda path, i=i: _train(ctx, path, stats, member=i),
                                   part="prefs", manifest=f"train-{member_name(i)}"))
    report = ensemble_report([meta["heldout_scores"] for _, meta in done], section.aggregate,
                             section.penalty)
    hashes = [ctx.store.get_manifest(f"train-{member_name(i)}")["ids"][0]
              for i in range(section.ensemble)]
    ctx.store.put_manifest(ENSEMBLE, hashes, {"paths": [str(path) for path, _ in done], **report})
    return report


# Training pairs the train accuracy is measured on (a seeded sample): scoring all 268 of the
# default took ~25 s of a 2-core CPU; 64 tell a fit (0.95) from a held-out 0.6 well enough.
TRAIN_SAMPLE = 64


def _scores(trainer, tokenizer, train, test, device, seed: int) -> dict:
    """Accuracy on (a sample of) the training pairs and on held-out human pairs, the held-out
    ROC-AUC, and the gap between them: a reward model that fits its training pairs (0.95) but
    not held-out humans (0.70) has learned the pairs, not the preference."""
    if len(train) > TRAIN_SAMPLE:
        train = train.shuffle(seed=seed).select(range(TRAIN_SAMPLE))
    train_s = reward_scores(trainer.model, tokenizer, train, device)
    held_s = reward_scores(trainer.model, tokenizer, test, device)
    acc = pair_accuracy(train_s), pair_accuracy(held_s)
    lengths = [(len(r["chosen"][-1]["content"]), len(r["rejected"][-1]["content"])) for r in test]
    return {"train_accuracy": acc[0], "train_accuracy_pairs": len(train_s),
            "heldout_accuracy": acc[1], "heldout_auc": roc_auc(held_s),
            "train_heldout_gap": None if None in acc else acc[0] - acc[1],
            "heldout_scores": held_s, "heldout_lengths": lengths,
            # The verbosity hack: a reward that grows with length rewards rambling.
            "reward_length_corr": correlation([x for p in lengths for x in p],
                                              [x for s in held_s for x in s])}


def float32_reward(model):
    """The score head computes the reward in float32 even under bf16 autocast. Rewards of a
    pair differ by a few hundredths early in training, about bf16's resolution at their size,
    so in bf16 the loss saw rounding more than preference: on the default's 268 pairs (2-core
    CPU, autocast) held-out accuracy was 0.5625 in two runs, 0.71875 with this head in float32
    (float32 throughout: 0.6875-0.71875). The weights and saved format are unchanged."""
    import types

    def forward(head, hidden):  # a bound method: a copy of the head (PEFT's) binds to itself
        import torch
        import torch.nn.functional as F
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return F.linear(hidden.float(), head.weight.float(),
                            None if head.bias is None else head.bias.float())
    model.score.forward = types.MethodType(forward, model.score)


def keep_lower_layers(model, depth: float):
    """Cut the model to the lower `depth` share of its transformer layers. A reward model reads
    one number off the last token; on the default's 300 human pairs (3-fold, 100 held out each,
    2-core CPU, bf16) the lower 15 of SmolLM2's 30 layers scored 0.56 / 0.62 / 0.65 (mean 0.61)
    against 0.54 / 0.63 / 0.61 (0.59) for all 30, training 2.2x faster. The saved config says
    how many layers there are, so every loader reads the cut model as it is."""
    if depth >= 1:
        return
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise CaiError(f"train_rm.depth={depth}: {type(model).__name__} keeps its layers "
                       "somewhere cai does not know; set train_rm.depth=1")
    n = max(1, math.ceil(depth * len(layers)))
    model.model.layers = layers[:n]
    model.config.num_hidden_layers = n
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:n]


def rm_setup(ctx, path, tokenizer, human_only: bool = False, seed: int | None = None) -> tuple:
    """(RewardConfig, training rows in their order, texts protected): every setting the reward
    model trains with, which bench/train.py's like-for-like TRL script takes from here too."""
    from trl import RewardConfig
    cfg = ctx.config.train_rm
    # With a `margin` column TRL's loss is -log σ(r_chosen − r_rejected − margin): pairs the
    # judge was sure of must be separated by more than those it barely preferred.
    train = load_prefs(ctx, "train", ("margin", "source") if cfg.use_margin else ("source",))
    if human_only:
        train = train.filter(lambda row: row["source"] == "human")
    train = train.remove_columns("source")
    train = with_margin(train) if cfg.use_margin else train
    seed = ctx.config.seed if seed is None else seed
    train, order = batch_order(protected(train, tokenizer), cfg, seed)
    return trl_args(RewardConfig, cfg, path, ctx, train_sampling_strategy=order, seed=seed), train


def _train(ctx, path, stats, human_only: bool = False, member: int = 0) -> dict:
    from transformers import AutoModelForSequenceClassification
    from trl import RewardTrainer

    cfg = ctx.config.train_rm
    base_dir, identity = base_model(ctx, rm=True)
    seed = ctx.config.seed + member  # an ensemble's members differ in seed and batch order
    seed_everything(seed)
    tokenizer = load_tokenizer(base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    keep_lower_layers(model, cfg.depth)
    float32_reward(model)
    args, train = rm_setup(ctx, path, tokenizer, human_only, seed)
    test = load_prefs(ctx, "test")
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                            peft_config=lora_config(cfg, "SEQ_CLS"))
    over = len(train) - len(trainer.train_dataset)
    if over:
        stats.drop("pair_over_max_length", over)  # TRL filters pairs longer than max_length
    resumed = fit(trainer)
    device = next(trainer.model.parameters()).device
    meta = {
        "base": identity, "train_pairs": len(trainer.train_dataset), "heldout_pairs": len(test),
        "human_only": human_only, "member": member + 1, "seed": seed, "margin": cfg.use_margin,
        "layers": model.config.num_hidden_layers,
        "processes": args.world_size, "resumed_from": resumed,
        "train_seconds": train_seconds(trainer),
        **_scores(trainer, tokenizer, train, test, device, ctx.config.seed),
        "loss": loss_curve(trainer)}
    save_model(trainer, tokenizer, path, meta)
    return meta
