"""`cai principles`: what each principle of the constitution does in a run."""

import json

import click

from cai.cli.group import cli, common_options


@cli.group("principles")
def principles_cmd():
    """Score the constitution's principles against the people's labels."""


@principles_cmd.command("score")
@common_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def principles_score_cmd(config, as_json):
    """Each principle's relevance, accuracy against people and strength (with its 95 % interval
    and p-value) on the human slice, beside its trust and the AI pairs it produced."""
    from cai.runs.principles import format_scores, principle_scores
    rows = principle_scores(config.run_dir)
    click.echo(json.dumps(rows, indent=2) if as_json else format_scores(rows))


@principles_cmd.command("ablate")
@common_options
@click.argument("ids", nargs=-1)
@click.option("--general", is_flag=True, help=(
    "also (alone, without IDS) the whole constitution replaced by one general principle"))
@click.option("--train", is_flag=True, help=(
    "also train the reward model of each arm and give its held-out accuracy"))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def principles_ablate_cmd(config, ids, general, train, as_json):
    """Leave each principle (or IDS) out in turn: what the run would lose without it — pairs
    added, removed and flipped, the judge's agreement with people and the effective AI pairs —
    computed through the store and the call cache (only the principle's records cost calls)."""
    from cai.runs.ablate import ablate, header
    if not as_json:
        click.echo(header(train))
    rows = ablate(config, ids, echo=(lambda line: None) if as_json else click.echo,
                  general=general, train=train)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
