"""Which trained models and measurements still describe the run's current data and settings.

A report reads every stage's manifest, but `cai run --to export` after a data change (or a
changed training or evaluation knob) leaves the models and the evaluation of an earlier dataset
in place. A training manifest is current when its name (the hash of everything the model is
made from: `cai.training.base.input_hash`) is what the run would train now; the evaluation when
the inputs it recorded (its settings, the judge, the policies and reward model it measured) are
today's. What is not current is left out of the report's figures and named as stale.
"""

from cai.errors import CaiError
from cai.hashing import content_hash

# manifest -> (training name, config section, the part of the dataset it reads)
TRAINED = {"train-sft": ("sft", "train_sft", None), "train-rm": ("rm", "train_rm", None),
           "train-rm-human": ("rm", "train_rm", "prefs_human"),
           "train-policy": ("policy", "train_policy", None)}


def stale_stages(ctx) -> list[str]:
    """Manifests of models and measurements made from other inputs than the run's current ones."""
    stale = [m for m in TRAINED if not _trained_current(ctx, m)]
    evaluated = ctx.store.get_manifest("evaluate")
    measured = {"train-sft", "train-rm", "train-policy"} & set(stale)  # what evaluate reads
    if evaluated and (measured or evaluated["meta"].get("inputs") != evaluation_inputs(ctx)):
        stale.append("evaluate")
    return stale


def _trained_current(ctx, manifest: str) -> bool:
    from cai.training.inputs import input_hash
    done = ctx.store.get_manifest(manifest)
    if done is None:
        return True  # nothing there to mislead
    name, section, part = TRAINED[manifest]
    try:
        return done["ids"][0] == input_hash(ctx, name, getattr(ctx.config, section), part)
    except CaiError:  # e.g. no dataset exported any more: cannot say it is current
        return False


def evaluation_inputs(ctx) -> str:
    """What evaluate's figures depend on: its settings and sets, the judge, the policies it
    compares (trained ones are named by their input hashes) and the reward model."""
    from cai.stages.evaluate import SETS, policies
    from cai.stages.reads import source_digest
    from cai.training.scoring import TEXT_VERSION
    cfg = ctx.config
    rm = ctx.store.get_manifest("train-rm")
    return content_hash(cfg.evaluate.model_dump(), cfg.seed, cfg.judge.model_dump(),
                        {s: source_digest(getattr(cfg.evaluate, s)) for s in SETS},
                        ctx.model_identity(cfg.models.judge), policies(ctx),
                        rm["ids"] if rm and cfg.train_rm.enabled else None, TEXT_VERSION)


STALE_NAMES = {"train-sft": "SL-CAI model", "train-rm": "reward model",
               "train-rm-human": "human-only reward model", "train-policy": "tuned policy",
               "evaluate": "evaluation"}


def stale_lines(stale: list | None) -> list[str]:
    """What the report leaves out because it was made from an earlier dataset or settings."""
    if not stale:
        return []
    names = ", ".join(STALE_NAMES.get(s, s) for s in stale)
    return [f"- not shown, made from an earlier dataset or other settings: {names} "
            "(`cai run` brings them up to date)"]
