"""Tracking (`tracking.to: mlflow | wandb`): a finished run sends its config, every stage's
figures, the trainers' loss curves and the report to an experiment tracker, one tracker run per
`cai run`. It sends a copy of what the run directory holds: a tracker that fails costs a warning,
never the run's work.
"""

import json
import os
import re
from pathlib import Path

from cai.errors import ConfigError
from cai.log import logger

EXTRA = {"mlflow": "mlflow", "wandb": "wandb"}  # the module each tracker needs
REPORT = ("metrics.json", "summary.md", "report.html", "config.yaml")
SKIP = ("run", "meta", "produced_by", "sample_pairs", "loss")  # text, or curves sent as curves
CURVES = {"sft": "train-sft", "reward_model": "train-rm", "policy": "train-policy"}


def check(config):
    """Before any work: the tracker's library is installed."""
    to = config.tracking.to
    if to == "none":
        return
    import importlib.util
    if importlib.util.find_spec(EXTRA[to]) is None:
        raise ConfigError(f"tracking.to={to}: the {to} library is not installed "
                          f"(pip install 'cai-pipeline[{to}]')")


def send(config, metrics: dict, run_dir, run_id: int):
    """Send the finished run to the tracker; a failure is a warning."""
    to = config.tracking.to
    if to == "none":
        return
    try:
        sent = (_mlflow if to == "mlflow" else _wandb)(config, metrics, Path(run_dir), run_id)
        logger.info(f"tracking: sent run {run_id} to {to} ({sent})")
    except Exception as exc:  # the run is done and saved: a tracker is a copy of it
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        logger.warning(f"tracking: could not send run {run_id} to {to}: {reason}")


def figures(metrics: dict) -> dict:
    """Every number metrics.json holds, by its path ("judge_agreement/calibrated/accuracy")."""
    out = {}

    def walk(node, path):
        if isinstance(node, bool):
            out[path] = float(node)
        elif isinstance(node, (int, float)):
            out[path] = float(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}/{_name(k)}" if path else _name(k))
    walk({k: v for k, v in metrics.items() if k not in SKIP}, "")
    return out


def curves(metrics: dict) -> dict:
    """{stage: [(step, loss)]} of each model the run trained, from its cai-model.json."""
    out = {}
    for key, stage in CURVES.items():
        path = (metrics.get(key) or {}).get("path")
        meta = Path(path or "") / "cai-model.json"
        if path and meta.exists():
            rows = json.loads(meta.read_text()).get("loss") or []
            out[stage] = [(int(r["step"]), float(r["loss"])) for r in rows if "step" in r]
    return out


def params(config) -> dict:
    """The run config as flat `section.key` parameters."""
    out = {}

    def walk(node, path):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)
        else:
            out[path] = json.dumps(node, default=str) if isinstance(node, (list, dict)) else node
    walk(config.settable(), "")
    return out


def _name(key) -> str:
    """A metric name both trackers take."""
    return re.sub(r"[^\w\-. ]", "_", str(key))


def _mlflow(config, metrics: dict, run_dir: Path, run_id: int) -> str:
    import mlflow
    uri = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        # MLflow 3 keeps its file store in maintenance mode and refuses it unless asked; the
        # light install (mlflow-skinny) has no database store: the file store is what needs nothing
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (run_dir / "mlruns").resolve().as_uri()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(config.tracking.project)
    exp_id = experiment.experiment_id if experiment else client.create_experiment(config.tracking.project)
    run = client.create_run(exp_id, run_name=f"{run_dir.name} run {run_id}",
                            tags={"cai.run_dir": str(run_dir.resolve()), "cai.run": str(run_id),
                                  "cai.dataset": str(metrics.get("dataset"))})
    rid = run.info.run_id
    from mlflow.entities import Metric, Param
    items = [Param(k, str(v)[:6000]) for k, v in params(config).items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters a batch
        client.log_batch(rid, params=items[i:i + 100])
    now = int(run.info.start_time)
    points = [Metric(k, v, now, 0) for k, v in figures(metrics).items()]
    points += [Metric(f"{stage}/loss", loss, now, step) for stage, rows in curves(metrics).items()
               for step, loss in rows]
    for i in range(0, len(points), 1000):
        client.log_batch(rid, metrics=points[i:i + 1000])
    for name in REPORT:
        if (run_dir / name).exists():
            client.log_artifact(rid, str(run_dir / name))
    client.set_terminated(rid)
    return f"{uri}, experiment {config.tracking.project}, run {rid}"


def _wandb(config, metrics: dict, run_dir: Path, run_id: int) -> str:
    import wandb
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    where = Path(config.tracking.uri or run_dir)
    where.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=config.tracking.project, dir=str(where), mode=mode,
                     name=f"{run_dir.name} run {run_id}", config=config.settable(),
                     settings=wandb.Settings(silent=True, console="off"))
    try:
        for stage, rows in curves(metrics).items():  # each curve on its own step axis
            run.define_metric(f"{stage}/loss", step_metric=f"{stage}/step")
            for step, loss in rows:
                run.log({f"{stage}/step": step, f"{stage}/loss": loss})
        run.summary.update(figures(metrics))
        for name in REPORT:
            if (run_dir / name).exists():
                run.save(str(run_dir / name), base_path=str(run_dir), policy="now")
        return f"{mode}, {where / 'wandb'}, project {config.tracking.project}"
    finally:
        run.finish()
