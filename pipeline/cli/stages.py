"""`cai run` and one command per stage. A stage's `--help` names what it does, its method where it
has one, and its most used config keys with their defaults (from the config's own fields)."""

import sys

import click

from cai.cli.group import cli, common_options
from cai.stages import STAGES

# The keys a user of each stage reaches for first; `cai config --keys` lists every one.
KEYS = {
    "generate": ("prompts.source", "prompts.limit", "generate.samples", "generate.max_new_tokens",
                 "models.policy"),
    "critique": ("critique.rounds", "critique.tags", "critique.violation_threshold", "models.judge"),
    "label": ("label.enabled", "label.compare", "label.ensemble", "judge.scoring",
              "calibration.source"),
    "calibrate": ("calibration.use_trust", "calibration.heldout"),
    "pairs": ("pairs.kinds", "pairs.min_margin"),
    "blend": ("blend.human_weight", "blend.max_pairs_per_prompt"),
    "train-sft": ("train.epochs", "train.learning_rate", "train.lora", "train.trainer"),
    "train-rm": ("train.epochs", "train.learning_rate", "train_rm.depth", "train.trainer"),
    "train-policy": ("train_policy.method", "train_policy.beta", "train.epochs",
                     "train.learning_rate", "train.trainer"),
    "evaluate": ("evaluate.limit", "evaluate.detectors", "evaluate.refusal_labels"),
}


def stage_help(name: str) -> str:
    """The first line of the stage module's docstring, then its method and its keys."""
    from cai.config.reference import help_rows
    line = sys.modules[STAGES[name].__module__].__doc__.splitlines()[0].split(": ", 1)[1]
    text = line[0].upper() + line[1:]
    rows = {key: (default, desc) for key, default, desc in help_rows()}
    if name == "train-policy":
        text += "\n\nMethod: train_policy.method, one of " + ", ".join(_methods()) + "."
    keys = [k for k in KEYS.get(name, ()) if k in rows]
    if keys:
        text += "\n\nMost used keys (set with --set KEY=VALUE; all: `cai config --keys`):"
        text += "".join(f"\n\n{k} = {rows[k][0]!r}: {rows[k][1]}" for k in keys)
    return text


def _methods() -> list:
    from typing import get_args

    from cai.config.train import TrainPolicyConfig
    return list(get_args(TrainPolicyConfig.model_fields["method"].annotation))


@cli.command("run")
@common_options
@click.option("--from", "first", type=click.Choice(list(STAGES)), help="start at this stage")
@click.option("--to", "last", type=click.Choice(list(STAGES)), help="stop after this stage")
@click.option("--dry-run", is_flag=True, help="print the plan (as `cai plan`) and stop")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="passes, each generating with the previous one's tuned policy "
                   "(config key iterations.count)")
def run_cmd(config, first, last, dry_run, iterations):
    """Run the whole pipeline (or --from/--to a range of stages)."""
    if iterations:
        config = config.model_copy(update={"iterations": config.iterations.model_copy(
            update={"count": iterations})})
    if dry_run:
        from cai.cli.inspect import print_plan
        return print_plan(config)
    from cai.runs.runner import run_iterations, run_stages
    names = list(STAGES)
    names = names[names.index(first) if first else 0: names.index(last) + 1 if last else None]
    if config.iterations.count > 1:
        run_iterations(config, names)
    else:
        run_stages(config, names)


PUSHABLE = ("export", "train-sft", "train-rm", "train-policy")


def _stage_command(name: str):
    @common_options
    def command(config, push_to_hub=None, private=False):
        from cai.runs.runner import run_stages
        run_stages(config, [name])
        if push_to_hub:
            from cai.publish.hub import push
            click.echo(f"pushed {push(config.run_dir, name, push_to_hub, private)}")
    command.__doc__ = stage_help(name)
    if name in PUSHABLE:
        what = "the dataset (card, splits, configs)" if name == "export" else "the trained model"
        command = click.option("--private", is_flag=True, help="create the Hub repo private")(command)
        command = click.option("--push-to-hub", metavar="ORG/NAME", help=(
            f"then upload {what} to this Hugging Face Hub repo (token: HF_TOKEN or "
            "`hf auth login`)"))(command)
    return cli.command(name, short_help=stage_help(name).split("\n")[0])(command)


for _name in STAGES:
    _stage_command(_name)
