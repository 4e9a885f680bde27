"""The commands that read a run and change nothing: plan, check, history, diff, config, schema."""

from pathlib import Path

import click

from cai.cli.group import cli, common_options


def _read_store(config):
    from cai.errors import CaiError
    from cai.store.core import DB_NAME, ReadOnlyStore
    if not (Path(config.run_dir) / DB_NAME).exists():
        raise CaiError(f"{config.run_dir}: no cai run here yet; run `cai run` first")
    return ReadOnlyStore(config.run_dir)


@cli.command("plan")
@common_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plan_cmd(config, as_json):
    """What `cai run` would recompute and why, and how many model calls; makes none."""
    print_plan(config, as_json)


def print_plan(config, as_json: bool = False):
    import json

    from cai.runs.plan import format_iterations, format_plan, plan, plan_iterations
    if config.iterations.count > 1:
        result = plan_iterations(config)
        click.echo(json.dumps(result, indent=2) if as_json else format_iterations(result))
    else:
        result = plan(config)
        click.echo(json.dumps(result, indent=2) if as_json else format_plan(result))


def _iteration_option(fn):
    return click.option("--iteration", type=click.IntRange(min=1), default=None,
                        help="the runs of this iteration (`iterations/<k>/`; default: all for "
                             "history, the first for diff)")(fn)


def _in_iteration(config, k):
    from cai.store.iterations import iteration_dir
    return config if not k else config.model_copy(
        update={"run_dir": str(iteration_dir(config.run_dir, k))})


@cli.command("history")
@common_options
@_iteration_option
def history_cmd(config, iteration):
    """List the runs recorded in the run directory (and in each of its iterations)."""
    from cai.runs.history import history_lines
    from cai.store.iterations import iteration_numbers
    ks = [iteration] if iteration else iteration_numbers(config.run_dir)
    for k in ks:
        with _read_store(_in_iteration(config, k)) as store:
            lines = history_lines(store)
        click.echo("\n".join(([f"== iteration {k}"] if len(ks) > 1 or iteration else []) + lines))


@cli.command("diff")
@common_options
@click.argument("old", type=int, required=False)
@click.argument("new", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--examples", default=3, show_default=True, help="examples shown of each kind")
@_iteration_option
def diff_cmd(config, old, new, as_json, examples, iteration):
    """Compare the pairs of two runs (default: the last run vs the one before)."""
    import json

    from cai.runs.history import diff, format_diff
    with _read_store(_in_iteration(config, iteration)) as store:
        d = diff(store, old, new, examples)
    click.echo(json.dumps(d, indent=2, ensure_ascii=False) if as_json else format_diff(d))


@cli.command("check")
@common_options
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def check_cmd(config, file, as_json):
    """Validate a constitution (default: the config's) and the run config; show principles,
    their shares of records and what changed since the last run. Loads no model."""
    import json

    from cai.runs.check import check, format_check
    result = check(config, file)
    click.echo(json.dumps(result, indent=2) if as_json else format_check(result))


@cli.command("schema")
def schema_cmd():
    """Print the JSON Schema of principles.yaml (for editors: the YAML language server)."""
    import json

    from cai.constitution.schema import json_schema
    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@cli.command("config")
@common_options
@click.option("--keys", is_flag=True, help="list every config key with its default and meaning")
@click.option("--markdown", is_flag=True, help="with --keys: as a Markdown table (the README's)")
def config_cmd(config, keys, markdown):
    """Print the resolved run config as YAML (or the key reference with --keys)."""

    from cai.config.reference import help_rows
    if keys and markdown:
        click.echo("| key | default | meaning |\n|---|---|---|")
        for key, default, desc in help_rows():
            click.echo(f"| `{key}` | `{default!r}` | {desc} |")
    elif keys:
        for key, default, desc in help_rows():
            click.echo(f"{key:<38} {default!r:<28} {desc}")
    else:
        from cai.config.dump import dump_yaml
        click.echo(dump_yaml(config), nl=False)
