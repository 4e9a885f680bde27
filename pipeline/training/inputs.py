"""What a trained model is named by and trained on: the hash of its data and settings (a model
is reused while it is unchanged), and the preference rows handed to TRL."""

from cai.errors import CaiError
from cai.hashing import content_hash
from cai.training.base import TEXT_COLUMNS, base_identity
from cai.training.ensemble import ENSEMBLE_KEYS, member_name


def dataset_hash(ctx, name: str, part: str | None = None) -> str:
    """The hash of the part of the exported dataset a training stage reads (prefs for the
    reward model and the policy, sft for train-sft, and kto too for KTO), or of `part`."""
    from cai.stages.common import require_manifest
    export = require_manifest(ctx, "export")
    parts = export["meta"].get("parts") or {}
    if not parts:  # exported before parts were named: the whole dataset
        return export["ids"][0]
    if part:
        return parts[part]
    if name == "sft":
        return parts["sft"]
    if name == "policy" and ctx.config.train_policy.method == "kto":
        return content_hash(parts["prefs"], parts["kto"])
    return parts["prefs"]


def input_hash(ctx, name: str, section, part: str | None = None) -> str:
    """A trained model is named by everything it was made from: the dataset, its settings, the
    weights it starts from, the seed, and what rewards it online (GRPO/RLOO). Two trainings
    of the same rows are one model, whatever part of the dataset they came from."""
    from cai.training.scoring import TEXT_VERSION
    return content_hash(name, dataset_hash(ctx, name, part), _settings(section),
                        base_identity(ctx, tuned=name == "policy", rm=name.startswith("rm")),
                        ctx.config.seed,
                        reward_inputs(ctx) if name == "policy" else None, TEXT_VERSION)


def reward_inputs(ctx) -> dict | None:
    """What an online-RL reward reads: the reward model (named by its own inputs), and the
    judge (its weights, settings, and the principles and system prompt it is asked with)."""
    cfg = ctx.config
    if cfg.train_policy.method not in ("grpo", "rloo"):
        return None
    out = {}
    if "rm" in cfg.train_policy.reward:
        rm = cfg.train_rm
        out["rm"] = input_hash(ctx, "rm", rm)
        if rm.ensemble > 1:  # every member, and how their scores combine
            out["rm_ensemble"] = [[input_hash(ctx, member_name(i), rm) for i in range(1, rm.ensemble)],
                                  rm.aggregate, rm.penalty]
    if "judge" in cfg.train_policy.reward:
        out["judge"] = judge_identity(ctx)
    return out


def judge_identity(ctx) -> dict:
    """The judge as a reward: model, how it is run and scored, and the constitution text the
    reward prompts carry (an edit of another principle leaves it alone)."""
    from cai.feedback.judge import scoring_settings
    from cai.training.rewards import reward_principles
    judge = ctx.judge()
    return {"model": judge.identity, "scoring": scoring_settings(judge, ctx.config.judge),
            "system": ctx.constitution.system,
            "principles": [[p.id, p.version, p.weight] for p in reward_principles(ctx)]}


def load_prefs(ctx, split: str, extra: tuple = ()):
    """The preference split with the text columns (and `extra` ones, e.g. margin, p_chosen)."""
    from datasets import load_from_disk
    ds = load_from_disk(str(ctx.run_dir / "dataset" / "prefs"))[split]
    return ds.select_columns([c for c in TEXT_COLUMNS + list(extra) if c in ds.column_names])


def with_margin(ds):
    """RewardTrainer's `margin` column, 0 where a pair has no preference probability (a
    critique-revision pair): its loss is then plain Bradley-Terry, asking no set separation."""
    return ds.map(lambda row: {"margin": row["margin"] if row["margin"] is not None else 0.0})


def check_agreement(ctx, stats):
    """Stop before training when the judge agrees with humans less than the config demands."""
    from cai.stages.calibrate import current_fit
    need = ctx.config.calibration.min_agreement
    if need is None:
        return
    report = current_fit(ctx)[1] if ctx.store.get_manifest("calibrate") else None
    cal = (report or {}).get("calibrated") or {}
    accuracy = cal.get("accuracy")
    if accuracy is not None and accuracy >= need:
        return
    measured = ("was not measured (no labelled human pairs)" if accuracy is None else
                f"is {accuracy:.3f} on {cal['n']} held-out human pairs (calibrated)")
    message = (f"judge-human agreement {measured}, below calibration.min_agreement {need}: "
               f"the judge's labels are not trusted for training. Configure a stronger judge "
               f"(models.judge), or set calibration.on_low_agreement=warn to train anyway.")
    if ctx.config.calibration.on_low_agreement == "stop":
        raise CaiError(message)
    stats.warn(message)


def _settings(section) -> dict:
    """The section as it names a model; an empty `trainer` pass-through and a reward-model
    ensemble's own settings are left out, so models trained before those keys existed keep
    their names, and a member is the same model whatever the ensemble around it."""
    skip = set() if section.trainer else {"trainer"}
    return section.model_dump(exclude=skip | {k for k in ENSEMBLE_KEYS if k in type(section).model_fields})
