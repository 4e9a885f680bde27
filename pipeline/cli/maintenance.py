"""People and upkeep: `cai review` (labels in the browser), `cai gc` and `cai store`."""

import sys
from pathlib import Path

import click

from cai.cli.group import cli, common_options


@cli.command("gc")
@common_options
@click.option("--keep-runs", type=int, default=None,
              help="keep only what the last N finished runs used (default: every recorded run)")
@click.option("--shared", "shared_mb", type=float, default=None, metavar="MB",
              help="instead: trim the call cache shared by every run directory to MB megabytes "
                   "(least recently used calls first) and compact it")
def gc_cmd(config, keep_runs, shared_mb):
    """Remove records, cached calls and models that no kept run references."""
    from cai.store.core import Store
    from cai.store.gc import collect_garbage, collect_shared
    if shared_mb is not None:
        click.echo(collect_shared(config, shared_mb))
        return
    with Store(config.run_dir) as store:
        removed = collect_garbage(store, keep_runs)
    click.echo(f"removed {removed['records']} records, {removed['calls']} cached calls, "
               f"{removed['models']} model directories, {removed['caches']} evaluation results")


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
    from cai.review.app import serve
    from cai.review.commands import prepare
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
    from cai.review.app import link
    from cai.review.commands import invite
    token = invite(config, name, adjudicator)
    host, port = click.get_current_context().meta.get("cai_review_address", ("127.0.0.1", 8765))
    click.echo(f"{link(host, port, token)}  (for {name}; valid while `cai review` serves "
               f"{config.run_dir} on this address; keep it private: it is their key)")


@review_cmd.command("export")
@common_options
@click.option("--out", default=None, help="JSONL file (default: <run_dir>/review/labels.jsonl)")
def review_export_cmd(config, out):
    """Write the decided pairs as calibration-format JSONL."""
    from cai.review.commands import export
    out = out or str(Path(config.run_dir) / "review" / "labels.jsonl")
    n, hint = export(config, out)
    click.echo(f"wrote {n} decided pairs to {out}" + (f"; {hint}" if hint else ""))


@review_cmd.command("load")
@common_options
@click.argument("file", type=click.Path(dir_okay=False))
def review_load_cmd(config, file):
    """Add the pairs of a calibration-format JSONL file to the pairs to label."""
    from cai.review.commands import load
    n, skipped = load(config, file)
    click.echo(f"{n} pairs from {file} are ready to label" + (
        "; skipped " + ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
        if skipped else ""))


@review_cmd.command("stats")
@common_options
def review_stats_cmd(config):
    """Print agreement, adjudication and win rates; write them into metrics.json and the report."""
    from cai.review.commands import stats, stats_lines
    click.echo("\n".join(stats_lines(stats(config))) or "no labels yet")


@cli.group("store")
def store_cmd():
    """Check a run's store, or salvage a damaged one into a fresh store."""


@store_cmd.command("check")
@common_options
def store_check_cmd(config):
    """Read the whole store: SQLite's integrity check, the schema, every table's rows."""
    from cai.store.repair import check
    healthy, lines = check(config.run_dir)
    click.echo("\n".join(lines))
    if not healthy:
        sys.exit(1)


@store_cmd.command("repair")
@common_options
def store_repair_cmd(config):
    """Salvage what a damaged store holds into a fresh one; the damaged file is kept beside it."""
    from cai.store.core import take_lock
    from cai.store.repair import repair
    Path(config.run_dir).mkdir(parents=True, exist_ok=True)
    with take_lock(Path(config.run_dir)):
        click.echo("\n".join(repair(config.run_dir)))
