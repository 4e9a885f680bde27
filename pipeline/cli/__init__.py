"""The `cai` command: one thin command per stage plus `run`, grouped in pipeline order. No logic
lives here: each command calls one function of the package that owns the job.

- `group.py`: the click group, its sections and the options every command shares;
- `stages.py`: `run` and one command per stage;
- `inspect.py`: plan, check, history, diff, config, schema;
- `principles.py`: what each principle does in a run;
- `maintenance.py`: review, gc, store.
"""

import os
import signal
import sqlite3
import sys

import click

from cai.cli import inspect, maintenance, principles, stages  # noqa: F401 - each registers its commands
from cai.cli.group import cli
from cai.errors import CaiError

__all__ = ["cli", "main"]


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
    from cai.store.health import damaged, describe, is_damage, last_opened
    db = last_opened() or "the run store"
    return str(damaged(db, describe(exc))) if is_damage(exc) else f"{db}: {describe(exc)}"


def _interrupted(code: int = 130):
    click.echo("cai: interrupted. Finished work is saved; run the same command again to resume.",
               err=True)
    sys.exit(code)  # 128 + the signal: 130 for SIGINT, 143 for SIGTERM
