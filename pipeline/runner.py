"""`cai run` and `cai <stage>`: walk the stages in order, print what each did, write the report."""

import json
import time
from pathlib import Path

from . import history, report, report_html
from .context import RunContext
from .fsutil import atomic_write_text
from .inputs import preflight
from .iterations import base_row, iteration_config, iteration_row, stop_reason
from .stage_reuse import run_stage
from .stages import DATA_STAGES, STAGES
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
                stats = _run_one(ctx, name)
                done.append(stats)
                echo(stats.line())
        except BaseException:
            ctx.store.finish_run(run_id, "interrupted", {"stages": [s.stage for s in done],
                                                         "calls": ctx.calls_made()})
            raise
        metrics = report.write(ctx, done)
        total = time.perf_counter() - start
        ctx.store.finish_run(run_id, "finished", {"seconds": total, "calls": ctx.calls_made(),
                                                  "stages": [s.stage for s in done],
                                                  # gc keeps the calls of the runs reused from
                                                  "reused": {s.stage: s.reused_from for s in done
                                                             if s.reused_from is not None},
                                                  **history.snapshot(ctx.store, metrics),
                                                  # `cai check` says what changed since
                                                  "principles": {p.id: p.version for p in
                                                                 ctx.constitution.principles}})
        echo(f"{'total':<13} {total:7.1f}s  {ctx.calls_made()} model calls; "
             f"wrote {ctx.run_dir}/metrics.json, summary.md and report.html")
        if (metrics.get("evaluation") or {}).get("table"):
            echo("\n".join(["", *report.evaluation_table(metrics)]))
        for line in report.answer_lines(metrics):
            echo(line)
        return metrics
    finally:
        ctx.close()


def _run_one(ctx, name: str):
    """A data stage whose inputs are unchanged is skipped whole (`pipeline.stage_reuse`)."""
    if name not in DATA_STAGES:
        return STAGES[name](ctx)
    return run_stage(ctx, name, STAGES[name])


def run_iterations(config, names: list[str], echo=print) -> list[dict]:
    """Run `names` once per iteration; returns the per-iteration rows."""
    n, rows, previous = config.iterations.count, [], None
    if "train-policy" not in names:  # else iteration 2 would generate with an older policy
        from .errors import ConfigError
        raise ConfigError(f"iterations.count {n}: each iteration generates with the policy the "
                          "one before tuned, so every iteration must run train-policy (drop --to, "
                          "or run one iteration)")
    for k in range(1, n + 1):
        cfg = iteration_config(config, k, previous)
        echo(f"== iteration {k} of {n}: {cfg.run_dir} (policy {cfg.models.policy})")
        metrics = run_stages(cfg, names, echo)
        if k == 1:
            rows.append(base_row(metrics))
        rows.append(iteration_row(k, metrics))
        previous = rows[-1]["policy"]
        write_rows(config.run_dir, rows)
        reason = stop_reason(config, rows)
        if reason and k < n:
            echo(f"stopping after iteration {k}: {reason}")
            break
    return rows


def write_rows(root, rows: list[dict]):
    """Add the per-iteration rows to the first run directory's metrics, summary and report."""
    path = Path(root) / "metrics.json"
    metrics = {**json.loads(path.read_text()), "iterations": rows}
    atomic_write_text(path, json.dumps(metrics, indent=2, default=str))
    atomic_write_text(path.with_name("summary.md"), report.summary(metrics))
    atomic_write_text(path.with_name("report.html"), report_html.render(metrics))


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
    return yaml.safe_dump(config.settable(), sort_keys=False)

