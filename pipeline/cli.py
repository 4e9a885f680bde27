"""The `cai` command: one thin command per stage plus `run`. No logic lives here."""

import functools
import os
import signal
import sqlite3
import sys
from pathlib import Path

import click

from .config import help_rows, load_config
from .errors import CaiError

from .stages import STAGES  # noqa: E402 - stage modules import nothing heavy at the top


def _stage_help(name: str) -> str:
    """A stage's help is the first line of its module docstring ("generate: the policy ...")."""
    line = sys.modules[STAGES[name].__module__].__doc__.splitlines()[0].split(": ", 1)[1]
    return line[0].upper() + line[1:]


def common_options(fn):
    @click.option("--config", "config_path", type=click.Path(dir_okay=False),
                  help="run config YAML (defaults: the embedded demo)")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="override a config key, e.g. --set generate.samples=4 (repeatable)")
    @click.option("--run-dir", help="run directory (config key run_dir; default outputs/default)")
    @functools.wraps(fn)
    def wrapper(config_path, overrides, run_dir, **kwargs):
        # `cai review --run-dir X stats`: what a group was given holds for its subcommands,
        # whose own options come on top (click shares `meta` down the chain of contexts)
        meta = click.get_current_context().meta
        given = meta.get("cai_options", (None, (), None))
        config_path, run_dir = config_path or given[0], run_dir or given[2]
        overrides = (*given[1], *overrides)
        meta["cai_options"] = (config_path, overrides, run_dir)
        if run_dir:
            overrides = (*overrides, f"run_dir={run_dir}")
        return fn(load_config(config_path, overrides), **kwargs)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show full tracebacks")
@click.version_option(package_name="cai")
def cli(debug):
    """cai: Constitutional AI from a principles file.

    principles.yaml + prompts -> critiques and revisions, and judge comparisons -> preference
    pairs blended with a human calibration slice (which the judge also labels) -> datasets ->
    reward model -> DPO-tuned policy -> evaluation.

    `cai run` runs every stage; `cai <stage>` runs one (it needs the ones before it to have run).
    Reruns reuse every cached model call: only what changed is recomputed.
    """
    if debug:
        os.environ["CAI_DEBUG"] = "1"


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
        return _print_plan(config)
    from .runner import run_iterations, run_stages
    names = list(STAGES)
    names = names[names.index(first) if first else 0: names.index(last) + 1 if last else None]
    if config.iterations.count > 1:
        run_iterations(config, names)
    else:
        run_stages(config, names)


def _stage_command(name: str):
    @common_options
    def command(config):
        from .runner import run_stages
        run_stages(config, [name])
    command.__doc__ = _stage_help(name)
    return cli.command(name)(command)


for _name in STAGES:
    _stage_command(_name)


def _read_store(config):
    from .errors import CaiError
    from .store import DB_NAME, ReadOnlyStore
    if not (Path(config.run_dir) / DB_NAME).exists():
        raise CaiError(f"{config.run_dir}: no cai run here yet; run `cai run` first")
    return ReadOnlyStore(config.run_dir)


@cli.command("plan")
@common_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plan_cmd(config, as_json):
    """What `cai run` would recompute and why, and how many model calls; makes none."""
    _print_plan(config, as_json)


def _print_plan(config, as_json: bool = False):
    import json

    from .plan import format_iterations, format_plan, plan, plan_iterations
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
    from .iterations import iteration_dir
    return config if not k else config.model_copy(
        update={"run_dir": str(iteration_dir(config.run_dir, k))})


@cli.command("history")
@common_options
@_iteration_option
def history_cmd(config, iteration):
    """List the runs recorded in the run directory (and in each of its iterations)."""
    from .history import history_lines
    from .iterations import iteration_numbers
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

    from .history import diff, format_diff
    with _read_store(_in_iteration(config, iteration)) as store:
        d = diff(store, old, new, examples)
    click.echo(json.dumps(d, indent=2, ensure_ascii=False) if as_json else format_diff(d))


@cli.command("gc")
@common_options
@click.option("--keep-runs", type=int, default=None,
              help="keep only what the last N finished runs used (default: every recorded run)")
@click.option("--shared", "shared_mb", type=float, default=None, metavar="MB",
              help="instead: trim the call cache shared by every run directory to MB megabytes "
                   "(least recently used calls first) and compact it")
def gc_cmd(config, keep_runs, shared_mb):
    """Remove records, cached calls and models that no kept run references."""
    from .gc import collect_garbage, collect_shared
    from .store import Store
    if shared_mb is not None:
        click.echo(collect_shared(config, shared_mb))
        return
    with Store(config.run_dir) as store:
        removed = collect_garbage(store, keep_runs)
    click.echo(f"removed {removed['records']} records, {removed['calls']} cached calls, "
               f"{removed['models']} model directories, {removed['caches']} evaluation results")


@cli.command("check")
@common_options
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def check_cmd(config, file, as_json):
    """Validate a constitution (default: the config's) and the run config; show principles,
    their shares of records and what changed since the last run. Loads no model."""
    import json

    from .check import check, format_check
    result = check(config, file)
    click.echo(json.dumps(result, indent=2) if as_json else format_check(result))


@cli.group("review", invoke_without_command=True)
@common_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; beyond loopback the URL carries a random token")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="port (0 = any free one)")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="a host name browsers use for this server, beside the bound address and "
                   "loopback (repeatable)")
@click.pass_context
def review_cmd(ctx, config, host, port, allow_hosts):
    """Label pairs, adjudicate and evaluate replies in the browser (serves a local page)."""
    ctx.meta["cai_review_address"] = (host, port)
    if ctx.invoked_subcommand is not None:
        return
    from .review.app import serve
    from .review.commands import prepare
    counts = prepare(config)
    click.echo(f"cai review: {counts['label']} pairs to label, {counts['evaluate']} base-vs-tuned "
               f"replies to evaluate in {config.run_dir}")
    serve(config.run_dir, config, host, port, allow_hosts, echo=click.echo)


@review_cmd.command("invite")
@common_options
@click.argument("name")
@click.option("--adjudicator", is_flag=True, help="they may also settle ties")
def review_invite_cmd(config, name, adjudicator):
    """Print a personal link for NAME: labels made through it are recorded as theirs."""
    from .review.app import link
    from .review.commands import invite
    token = invite(config, name, adjudicator)
    host, port = click.get_current_context().meta.get("cai_review_address", ("127.0.0.1", 8765))
    click.echo(f"{link(host, port, token)}  (for {name}; valid while `cai review` serves "
               f"{config.run_dir} on this address; keep it private: it is their key)")


@review_cmd.command("export")
@common_options
@click.option("--out", default=None, help="JSONL file (default: <run_dir>/review/labels.jsonl)")
def review_export_cmd(config, out):
    """Write the decided pairs as calibration-format JSONL."""
    from .review.commands import export
    out = out or str(Path(config.run_dir) / "review" / "labels.jsonl")
    n, hint = export(config, out)
    click.echo(f"wrote {n} decided pairs to {out}" + (f"; {hint}" if hint else ""))


@review_cmd.command("load")
@common_options
@click.argument("file", type=click.Path(dir_okay=False))
def review_load_cmd(config, file):
    """Add the pairs of a calibration-format JSONL file to the pairs to label."""
    from .review.commands import load
    n, skipped = load(config, file)
    click.echo(f"{n} pairs from {file} are ready to label" + (
        "; skipped " + ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
        if skipped else ""))


@review_cmd.command("stats")
@common_options
def review_stats_cmd(config):
    """Print agreement, adjudication and win rates; write them into metrics.json and the report."""
    from .review.commands import stats, stats_lines
    click.echo("\n".join(stats_lines(stats(config))) or "no labels yet")


@cli.group("store")
def store_cmd():
    """Check a run's store, or salvage a damaged one into a fresh store."""


@store_cmd.command("check")
@common_options
def store_check_cmd(config):
    """Read the whole store: SQLite's integrity check, the schema, every table's rows."""
    from .store_repair import check
    healthy, lines = check(config.run_dir)
    click.echo("\n".join(lines))
    if not healthy:
        sys.exit(1)


@store_cmd.command("repair")
@common_options
def store_repair_cmd(config):
    """Salvage what a damaged store holds into a fresh one; the damaged file is kept beside it."""
    from .store import take_lock
    from .store_repair import repair
    Path(config.run_dir).mkdir(parents=True, exist_ok=True)
    with take_lock(Path(config.run_dir)):
        click.echo("\n".join(repair(config.run_dir)))


@cli.command("schema")
def schema_cmd():
    """Print the JSON Schema of principles.yaml (for editors: the YAML language server)."""
    import json

    from constitution.schema import json_schema
    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@cli.command("config")
@common_options
@click.option("--keys", is_flag=True, help="list every config key with its default and meaning")
@click.option("--markdown", is_flag=True, help="with --keys: as a Markdown table (the README's)")
def config_cmd(config, keys, markdown):
    """Print the resolved run config as YAML (or the key reference with --keys)."""
    import yaml
    if keys and markdown:
        click.echo("| key | default | meaning |\n|---|---|---|")
        for key, default, desc in help_rows():
            click.echo(f"| `{key}` | `{default!r}` | {desc} |")
    elif keys:
        for key, default, desc in help_rows():
            click.echo(f"{key:<38} {default!r:<28} {desc}")
    else:
        click.echo(yaml.safe_dump(config.settable(), sort_keys=False), nl=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, Kubernetes, `timeout`): stopped like Ctrl-C, the run closed as
    interrupted and its finished work kept."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(standalone_mode=False)
    except CaiError as exc:
        if os.environ.get("CAI_DEBUG"):
            raise
        click.echo(f"cai: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort as exc:  # click turns an interrupt into Abort, keeping it
        _interrupted(143 if isinstance(exc.__cause__, Terminated) else 130)
    except Terminated:
        _interrupted(143)
    except KeyboardInterrupt:
        _interrupted()
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except sqlite3.Error as exc:  # found mid-query, past the checks made when the store opened
        if os.environ.get("CAI_DEBUG"):
            raise
        click.echo(f"cai: error: {_store_error(exc)}", err=True)
        sys.exit(2)


def _store_error(exc) -> str:
    from .store_health import damaged, describe, is_damage, last_opened
    db = last_opened() or "the run store"
    return str(damaged(db, describe(exc))) if is_damage(exc) else f"{db}: {describe(exc)}"


def _interrupted(code: int = 130):
    click.echo("cai: interrupted. Finished work is saved; run the same command again to resume.",
               err=True)
    sys.exit(code)  # 128 + the signal: 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
    main()
