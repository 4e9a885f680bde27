"""The `cai` group: commands listed in pipeline order under three headings, and the options every
command shares (`--config`, `--set`, `--run-dir`)."""

import functools
import os

import click

from cai.config.run import load_config

SECTIONS = {
    "Stages, in run order (`cai run` walks them all)": (
        "run", "generate", "critique", "label", "calibrate", "pairs", "blend", "export",
        "train-sft", "train-rm", "train-policy", "evaluate"),
    "Inspect": ("plan", "check", "history", "diff", "principles", "config", "schema"),
    "People and maintenance": ("review", "gc", "store"),
}


class SectionedGroup(click.Group):
    """`cai --help` lists commands by section, each section in pipeline order."""

    def list_commands(self, ctx):
        order = [name for names in SECTIONS.values() for name in names]
        return sorted(self.commands, key=lambda n: order.index(n) if n in order else len(order))

    def format_commands(self, ctx, formatter):
        width = formatter.width - 6 - max(map(len, self.commands), default=0)
        for title, names in SECTIONS.items():
            rows = [(n, self.commands[n].get_short_help_str(width)) for n in names if n in self.commands]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [(n, c.get_short_help_str(width)) for n, c in self.commands.items()
                if not any(n in names for names in SECTIONS.values())]
        if rest:
            with formatter.section("Other"):
                formatter.write_dl(rest)


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


@click.group(cls=SectionedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show full tracebacks")
@click.option("-v", "--verbose", count=True, help="say more: each batch of model calls (-vv: each call)")
@click.option("-q", "--quiet", is_flag=True, help="say only warnings and errors")
@click.version_option(package_name="cai-pipeline")
def cli(debug, verbose, quiet):
    """cai: Constitutional AI from a principles file.

    principles.yaml + prompts -> critiques and revisions, and judge comparisons -> preference
    pairs blended with a human calibration slice (which the judge also labels) -> datasets ->
    reward model -> DPO-tuned policy -> evaluation.

    `cai run` runs every stage; `cai <stage>` runs one (it needs the ones before it to have run).
    Reruns reuse every cached model call: only what changed is recomputed.
    """
    if debug:
        os.environ["CAI_DEBUG"] = "1"
    from cai.log import set_verbosity
    set_verbosity(-1 if quiet else verbose)
