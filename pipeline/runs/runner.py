"""`cai run` and `cai <stage>`: walk the stages in order, print what each did, write the report."""

import json
import time
from pathlib import Path

from cai.fsutil import atomic_write_text
from cai.inputs.checks import preflight
from cai.log import quiet_libraries, say, to_file
from cai.report import html as report_html
from cai.report import summary as report
from cai.report.figures import PLOTS
from cai.runs import tracking
from cai.runs.estimate import timing_row
from cai.runs.iterations import base_row, iteration_config, iteration_row, stop_reason
from cai.stages import DATA_STAGES, STAGES
from cai.stages.context import RunContext
from cai.stages.reuse import run_stage
from cai.store import summaries as history
from cai.store.core import FollowerStore, is_main_process
from cai.training.arguments import check_trainers


def run_stages(config, names: list[str], echo=say) -> dict:
    quiet_libraries()
    if not is_main_process():  # another rank of `accelerate launch`: train, write nothing
        return _follow(config, names)
    preflight(config)
    check_trainers(config)
    tracking.check(config)
    ctx = RunContext(config)
    try:
        with to_file(ctx.run_dir):
            return _run(ctx, config, names, echo)
    finally:
        ctx.close()


def _run(ctx, config, names: list[str], echo) -> dict:
    atomic_write_text(ctx.run_dir / "config.yaml", _yaml(config))
    run_id = ctx.store.start_run(config.fingerprint(), ctx.constitution.content_version)
    start, done = time.perf_counter(), []
    try:
        for name in names:
            stats = run_one(ctx, name)
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
                                              # `cai plan` prices its calls with these
                                              "timings": {s.stage: timing_row(s) for s in done},
                                              # gc keeps the calls of the runs reused from
                                              "reused": {s.stage: s.reused_from for s in done
                                                         if s.reused_from is not None},
                                              **history.snapshot(ctx.store, metrics),
                                              # `cai check` says what changed since
                                              "principles": {p.id: p.version for p in
                                                             ctx.constitution.principles}})
    tracking.send(config, metrics, ctx.run_dir, run_id)
    echo(f"{'total':<13} {total:7.1f}s  {ctx.calls_made()} model calls; "
         f"wrote {ctx.run_dir}/metrics.json, summary.md and report.html")
    if (metrics.get("evaluation") or {}).get("table"):
        echo("\n".join(["", *report.evaluation_table(metrics)]))
    for line in report.answer_lines(metrics):
        echo(line)
    return metrics


def run_one(ctx, name: str):
    """A data stage whose inputs are unchanged is skipped whole (`cai.stages.reuse`)."""
    if name not in DATA_STAGES:
        return STAGES[name](ctx)
    return run_stage(ctx, name, STAGES[name])


def run_iterations(config, names: list[str], echo=say) -> list[dict]:
    """Run `names` once per iteration; returns the per-iteration rows."""
    n, rows, previous = config.iterations.count, [], None
    if "train-policy" not in names:  # else iteration 2 would generate with an older policy
        from cai.errors import ConfigError
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
    atomic_write_text(path.with_name("report.html"), report_html.render(metrics, path.with_name(PLOTS)))


def _follow(config, names: list[str]) -> dict:
    ctx = RunContext(config, store=FollowerStore(config.run_dir))
    try:
        for name in names:
            STAGES[name](ctx)
        return {}
    finally:
        ctx.close()


def _yaml(config) -> str:
    from cai.config.dump import dump_yaml
    return dump_yaml(config)

