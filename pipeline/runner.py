"""`cai run` and `cai <stage>`: walk the stages in order, print what each did, write the report."""

import time

from . import history, report
from .context import RunContext
from .fsutil import atomic_write_text
from .inputs import preflight
from .stages import STAGES
from .store import FollowerStore, is_main_process


def quiet_libraries():
    """Our progress bars and stage lines are the output; library chatter is noise."""
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    try:
        import datasets
        import transformers
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


def run_stages(config, names: list[str], echo=print) -> dict:
    quiet_libraries()
    if not is_main_process():  # another rank of `accelerate launch`: train, write nothing
        return _follow(config, names)
    preflight(config)
    ctx = RunContext(config)
    try:
        atomic_write_text(ctx.run_dir / "config.yaml", _yaml(config))
        run_id = ctx.store.start_run(config.fingerprint(), ctx.constitution.content_version)
        start, done = time.perf_counter(), []
        try:
            for name in names:
                stats = STAGES[name](ctx)
                done.append(stats)
                echo(stats.line())
        except BaseException:
            ctx.store.finish_run(run_id, "interrupted", {"stages": [s.stage for s in done]})
            raise
        metrics = report.write(ctx, done)
        total = time.perf_counter() - start
        ctx.store.finish_run(run_id, "finished", {"seconds": total, "calls": ctx.calls_made(),
                                                  "stages": [s.stage for s in done],
                                                  **history.snapshot(ctx.store, metrics),
                                                  # `cai check` says what changed since
                                                  "principles": {p.id: p.version for p in
                                                                 ctx.constitution.principles}})
        echo(f"{'total':<13} {total:7.1f}s  {ctx.calls_made()} model calls; "
             f"wrote {ctx.run_dir}/metrics.json, summary.md and report.html")
        if (metrics.get("evaluation") or {}).get("table"):
            echo("\n".join(["", *report.evaluation_table(metrics)]))
        for line in report.ai_value_lines(metrics.get("ai_value")):
            echo(line)
        return metrics
    finally:
        ctx.close()


def _follow(config, names: list[str]) -> dict:
    ctx = RunContext(config, store=FollowerStore(config.run_dir))
    try:
        for name in names:
            STAGES[name](ctx)
        return {}
    finally:
        ctx.close()


def _yaml(config) -> str:
    import yaml
    return yaml.safe_dump(config.model_dump(), sort_keys=False)

