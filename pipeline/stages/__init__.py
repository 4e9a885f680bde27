"""The stages, in run order. Each module has one entry function `run(ctx) -> StageStats`.

`cai run` walks STAGES; `cai <name>` runs one. A stage reads the manifest its predecessor
wrote (the ids of that stage's current outputs) and writes its own manifest last.
"""

from cai.stages import (
    blend,
    calibrate,
    critique,
    evaluate,
    export,
    generate,
    label,
    pairs,
    train_policy,
    train_rm,
    train_sft,
)

STAGES = {
    "generate": generate.run,
    "critique": critique.run,
    "label": label.run,
    "calibrate": calibrate.run,
    "pairs": pairs.run,
    "blend": blend.run,
    "export": export.run,
    "train-sft": train_sft.run,
    "train-rm": train_rm.run,
    "train-policy": train_policy.run,
    "evaluate": evaluate.run,
}

# generate .. export: the stages that make the dataset (a dry run can execute them all)
DATA_STAGES = list(STAGES)[:list(STAGES).index("export") + 1]

# What each data stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
READS = {name: module.READS for name, module in (
    ("generate", generate), ("critique", critique), ("label", label), ("calibrate", calibrate),
    ("pairs", pairs), ("blend", blend), ("export", export))}
