"""The generated reference pages of the docs site: every config key (from the config's own
fields) and every command's `--help` (from the commands themselves). Nothing is written by hand,
so nothing drifts: `python -m cai.cli.reference` rewrites them, `--check` (a test, in CI) fails
when one is stale, as simonw/llm's `cog --check` does."""

import sys
from pathlib import Path

import click

CONFIG_INTRO = """# Configuration reference

Defaults < `--config FILE` < `--set key=value`. Unknown keys fail with the nearest valid key.
The training knobs are listed once, as `train.*`: they apply to all three training stages, and
the same key under `train_sft.`, `train_rm.` or `train_policy.` sets it for one stage
(`--set train.epochs=2 --set train_rm.epochs=3`); where neither is set, each stage has its own
default (shown as `sft …, rm …, policy …`). `train.trainer` passes any other field of TRL's
config through (see [Training recipes](../how-to/training.md)). `cai config > my.yaml` writes a
file that, edited, does what it says.

Generated from the config's fields (`python -m cai.cli.reference`); `cai config --keys` prints
the same.

| key | default | meaning |
|---|---|---|
"""


def config_page() -> str:
    from cai.config.reference import help_rows
    rows = [f"| `{key}` | `{default!r}` | {desc} |" for key, default, desc in help_rows()]
    return CONFIG_INTRO + "\n".join(rows) + "\n"


def commands_page() -> str:
    from cai.cli import cli
    out = ["# Commands", "", "Every command's `--help`, generated from the commands themselves "
           "(`python -m cai.cli.reference`).", ""]
    for path, command in _walk(cli, ["cai"]):
        ctx = click.Context(command, info_name=" ".join(path), terminal_width=100,
                            help_option_names=["-h", "--help"])
        out += [f"## `{' '.join(path)}`", "", "```text", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(out)


def _walk(command, path):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(None):
            yield from _walk(command.commands[name], [*path, name])


PAGES = {"docs/reference/config.md": config_page, "docs/reference/commands.md": commands_page}


def stale(root: Path) -> list[str]:
    return [p for p, make in PAGES.items() if not (root / p).exists()
            or (root / p).read_text() != make()]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path.cwd()
    if "--check" in argv:
        old = stale(root)
        if old:
            sys.exit(f"stale: {', '.join(old)}; run `python -m cai.cli.reference`")
        return
    for p, make in PAGES.items():
        (root / p).write_text(make())
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
