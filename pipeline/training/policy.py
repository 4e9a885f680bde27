"""The policy-training recipes of train-policy, one function per method, each a TRL trainer.

    dpo   offline, on the blended pairs (TRL DPOTrainer; loss variants by `loss_type`)
    kto   offline, on the judge's binary verdicts, or the pairs unpaired (TRL KTOTrainer)
    orpo  offline, SFT and preference in one loss, no reference model (trl.experimental ORPO)
    grpo  online RL: group-relative advantages, KL to the reference in the loss (GRPOTrainer)
    rloo  online RL: REINFORCE leave-one-out, KL penalty subtracted from the reward, as in
          PPO-style RLHF (RLOOTrainer)

Each takes (ctx, path) and returns the model's meta after saving it at `path`. The model starts
from `training.base_model(ctx, tuned=True)`: the SFT model, or the base for ORPO by default.
"""

from cai.backends import parse_spec
from cai.backends.client import freeze
from cai.backends.weights import resolve
from cai.errors import ConfigError
from cai.training.arguments import batch_order, dpo_label_smoothing, lora_config, trl_args
from cai.training.base import base_model, load_tokenizer, seed_everything
from cai.training.ensemble import ENSEMBLE, ensemble_reward, member_name
from cai.training.inputs import input_hash, load_prefs
from cai.training.rewards import judge_reward
from cai.training.saving import fit, loss_curve, save_model, train_seconds
from cai.training.scoring import protected, reward_function


def _start(ctx):
    """(config section, base dir, identity, tokenizer, model) every method begins with."""
    from transformers import AutoModelForCausalLM
    cfg = ctx.config.train_policy
    base_dir, identity = base_model(ctx, tuned=True)
    seed_everything(ctx.config.seed)
    return cfg, base_dir, identity, load_tokenizer(base_dir), \
        AutoModelForCausalLM.from_pretrained(base_dir)


def _reference(cfg, base_dir):
    """With LoRA the reference is the start model with the adapter disabled (TRL does that when
    given none); without it, an explicit frozen copy; with `reference` a spec, that model (a
    later iteration anchored to the original base)."""
    from transformers import AutoModelForCausalLM
    if cfg.reference != "init":
        kind, name = parse_spec(cfg.reference)
        if kind != "transformers":
            raise ConfigError(f"train_policy.reference must be 'init' or a 'transformers:' spec, "
                              f"got '{cfg.reference}'")
        return AutoModelForCausalLM.from_pretrained(resolve(name)[0])
    return None if cfg.lora else AutoModelForCausalLM.from_pretrained(base_dir)


def _finish(trainer, tokenizer, path, meta, resumed) -> dict:
    curve = loss_curve(trainer)
    meta.update(loss=curve, final_loss=curve[-1]["loss"] if curve else None,
                processes=trainer.args.world_size, resumed_from=resumed,
                train_seconds=train_seconds(trainer))
    save_model(trainer, tokenizer, path, meta)
    return meta


def _meta(cfg, identity, **extra) -> dict:
    return {"base": identity, "init": identity["model"], "method": cfg.method, "beta": cfg.beta,
            "lora": cfg.lora, **extra}


def dpo_setup(ctx, path, tokenizer) -> tuple:
    """(DPOConfig, training rows in their order, texts protected): every setting DPO trains
    with, which bench/train.py's like-for-like TRL script takes from here too."""
    from trl import DPOConfig
    cfg = ctx.config.train_policy
    smoothing = dpo_label_smoothing(cfg, load_prefs(ctx, "train", ("p_chosen",)))  # cDPO
    train, order = batch_order(protected(load_prefs(ctx, "train"), tokenizer), cfg, ctx.config.seed)
    return trl_args(DPOConfig, cfg, path, ctx, beta=cfg.beta, label_smoothing=smoothing,
                    loss_type=list(cfg.loss_type), train_sampling_strategy=order), train


def train_dpo(ctx, path) -> dict:
    from trl import DPOTrainer
    cfg, base_dir, identity, tokenizer, model = _start(ctx)
    ref = _reference(cfg, base_dir)
    args, train = dpo_setup(ctx, path, tokenizer)
    smoothing = args.label_smoothing
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=train,
                         processing_class=tokenizer, peft_config=lora_config(cfg, "CAUSAL_LM"))
    resumed = fit(trainer)
    accuracy = [r["rewards/accuracies"] for r in trainer.state.log_history
                if "rewards/accuracies" in r]
    return _finish(trainer, tokenizer, path, _meta(
        cfg, identity, label_smoothing=smoothing, loss_type=list(cfg.loss_type),
        train_pairs=len(train), reward_accuracy_last=accuracy[-1] if accuracy else None), resumed)


def kto_rows(ctx, source: str):
    """KTO's unpaired rows: the judge's verdicts (export's kto split), the blended pairs split
    into a desirable and an undesirable row each, or both."""
    from datasets import concatenate_datasets, load_from_disk
    from trl.data_utils import unpair_preference_dataset
    parts = []
    if source in ("verdicts", "both"):
        verdicts = load_from_disk(str(ctx.run_dir / "dataset" / "kto"))["train"]
        if len(verdicts):  # empty when no verdict earned trust (export gates them)
            parts.append(verdicts.select_columns(["prompt", "completion", "label"]))
    if source in ("pairs", "both"):
        parts.append(unpair_preference_dataset(load_prefs(ctx, "train")))
    if not parts:
        raise ConfigError("train_policy.method=kto has no rows: no judge verdict earned trust "
                          "(export keeps only trusted ones); try train_policy.kto_data=pairs or "
                          "both, or calibration.use_trust=false to use every verdict")
    rows = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    good = sum(rows["label"])
    if not good or good == len(rows):
        raise ConfigError(f"train_policy.method=kto needs desirable and undesirable examples; "
                          f"kto_data '{source}' has {good} desirable of {len(rows)}: try "
                          f"train_policy.kto_data=both, or more prompts")
    return rows, good


def kto_weights(good: int, total: int) -> dict:
    """KTO's class weights, balanced so that desirable and undesirable examples weigh the same
    in total (the KTO paper asks for a ratio within [1, 4/3]); the rarer side is up-weighted."""
    bad = total - good
    if good >= bad:
        return {"desirable_weight": 1.0, "undesirable_weight": round(good / bad, 4)}
    return {"desirable_weight": round(bad / good, 4), "undesirable_weight": 1.0}


def train_kto(ctx, path) -> dict:
    from trl import KTOConfig, KTOTrainer
    cfg, base_dir, identity, tokenizer, model = _start(ctx)
    ref = _reference(cfg, base_dir)
    rows, good = kto_rows(ctx, cfg.kto_data)
    rows, weights = protected(rows, tokenizer), kto_weights(good, len(rows))
    # KTO's KL estimate pairs each example with its batch neighbours in a fixed order, so TRL
    # demands sequential sampling: the rows are shuffled once here instead.
    if cfg.shuffle:
        rows = rows.shuffle(seed=ctx.config.seed)
    args = trl_args(KTOConfig, cfg, path, ctx, beta=cfg.beta, train_sampling_strategy="sequential",
                    **weights)
    trainer = KTOTrainer(model=model, ref_model=ref, args=args, train_dataset=rows,
                         processing_class=tokenizer, peft_config=lora_config(cfg, "CAUSAL_LM"))
    resumed = fit(trainer)
    return _finish(trainer, tokenizer, path, _meta(
        cfg, identity, kto_data=cfg.kto_data, train_rows=len(rows), desirable=good, **weights),
        resumed)


def train_orpo(ctx, path) -> dict:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    cfg, _, identity, tokenizer, model = _start(ctx)
    train, order = batch_order(protected(load_prefs(ctx, "train"), tokenizer), cfg, ctx.config.seed)
    # ORPO's beta is λ, the weight of the odds-ratio term beside the SFT loss on `chosen`.
    args = trl_args(ORPOConfig, cfg, path, ctx, beta=cfg.beta, train_sampling_strategy=order)
    trainer = ORPOTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                          peft_config=lora_config(cfg, "CAUSAL_LM"))
    resumed = fit(trainer)
    return _finish(trainer, tokenizer, path, _meta(cfg, identity, train_pairs=len(train)), resumed)


def train_online(ctx, path) -> dict:
    """GRPO or RLOO: completions sampled from the policy, scored by the RM and/or the judge;
    the KL to the reference is bounded by `beta` and logged per step."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
    config_cls, trainer_cls = {"grpo": (GRPOConfig, GRPOTrainer),
                               "rloo": (RLOOConfig, RLOOTrainer)}[ctx.config.train_policy.method]
    cfg, _, identity, tokenizer, model = _start(ctx)
    seen, rows = set(), []
    for messages in load_prefs(ctx, "train")["prompt"]:  # each prompt once
        if freeze(messages) not in seen:
            seen.add(freeze(messages))
            rows.append({"prompt": messages})
    prompts = protected(Dataset.from_list(rows), tokenizer)
    rewards = [r for r in (_rm_reward(ctx) if "rm" in cfg.reward else None,
                           judge_reward(ctx) if "judge" in cfg.reward else None) if r is not None]
    args = trl_args(config_cls, cfg, path, ctx, beta=cfg.beta,
                    num_generations=cfg.num_generations, max_completion_length=cfg.max_new_tokens,
                    per_device_train_batch_size=max(cfg.batch_size, cfg.num_generations))
    trainer = trainer_cls(model=model, reward_funcs=rewards, args=args, train_dataset=prompts,
                          processing_class=tokenizer, peft_config=lora_config(cfg, "CAUSAL_LM"))
    resumed = fit(trainer)
    logs = [r for r in trainer.state.log_history if "reward" in r]
    return _finish(trainer, tokenizer, path, _meta(
        cfg, identity, reward=list(cfg.reward), train_prompts=len(prompts),
        rewards=[{"step": r.get("step"), "reward": r["reward"], "kl": r.get("kl")}
                 for r in logs]), resumed)


def _rm_reward(ctx):
    """The reward model (or the ensemble's aggregate) as a reward function that reads texts as
    cai trained them on them."""
    from cai.backends.device import pick_device
    rm, device = ctx.config.train_rm, pick_device(ctx.config.models.device)
    if rm.ensemble == 1:
        return reward_function(_rm_path(ctx), device)
    return ensemble_reward(_ensemble_paths(ctx), device, rm.aggregate, rm.penalty)


def _ensemble_paths(ctx) -> list[str]:
    """The members train-rm made from the current inputs, in order."""
    _rm_path(ctx)  # member 1 is current, or one line says why not
    rm = ctx.config.train_rm
    wanted = [input_hash(ctx, member_name(i), rm) for i in range(rm.ensemble)]
    made = ctx.store.get_manifest(ENSEMBLE)
    if made is None or made["ids"] != wanted:
        raise ConfigError(f"train_rm.ensemble={rm.ensemble}: the ensemble train-rm made is missing "
                          "or out of date; run `cai train-rm` first")
    return made["meta"]["paths"]


def _rm_path(ctx) -> str:
    """The reward model this policy is named after: the one train-rm made from the current
    inputs (an older one would train a policy under the wrong name)."""
    rm = ctx.store.get_manifest("train-rm")
    if rm is None or rm["ids"][0] != input_hash(ctx, "rm", ctx.config.train_rm):
        state = "has not run" if rm is None else "is out of date (its inputs changed)"
        raise ConfigError(f"train_policy.reward includes 'rm' but train-rm {state}; run "
                          "`cai train-rm` first (or use reward: [judge])")
    return rm["meta"]["path"]


METHODS = {"dpo": train_dpo, "kto": train_kto, "orpo": train_orpo, "grpo": train_online,
           "rloo": train_online}
