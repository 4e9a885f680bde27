"""Tracking, for real: a run sent to MLflow's local file store and to W&B in offline mode is
read back with each tracker's own reader: the config, every stage's figures, the reward model's
loss curve and the report."""

import pytest
from conftest import small_config
from wandb_reader import read_run

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES

STAGES = [*DATA_STAGES, "train-rm"]


def _config(tmp_path, tiny_model_dir, **keys):
    spec = f"transformers:{tiny_model_dir}"
    return small_config(tmp_path / "run", policy="fake:policy", judge="fake:judge", **{
        "train_rm.base": spec, "train_rm.max_steps": 3, "calibration.use_trust": "false", **keys})


def test_a_run_sent_to_mlflow_reads_back(tmp_path, tiny_model_dir, fake_backend, monkeypatch):
    pytest.importorskip("mlflow")
    import mlflow
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    metrics = run_stages(_config(tmp_path, tiny_model_dir, tracking="mlflow"), STAGES,
                         echo=lambda s: None)
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("cai").experiment_id])
    assert run.data.params["prompts.limit"] == "6" and run.data.params["models.judge"] == "fake:judge"
    assert run.data.metrics["stages/generate/made"] == metrics["stages"]["generate"]["made"] > 0
    assert run.data.metrics["reward_model/heldout_accuracy"] == \
        pytest.approx(metrics["reward_model"]["heldout_accuracy"])
    curve = client.get_metric_history(run.info.run_id, "train-rm/loss")
    assert [p.step for p in curve] == [1, 2, 3]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "metrics.json", "summary.md", "report.html", "config.yaml"}
    assert run.info.status == "FINISHED"


def test_a_run_sent_to_wandb_offline_reads_back(tmp_path, tiny_model_dir, fake_backend,
                                                monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline: no key
    monkeypatch.setenv("WANDB_SILENT", "true")
    metrics = run_stages(_config(tmp_path, tiny_model_dir, **{
        "tracking.to": "wandb", "tracking.project": "cai-test"}), STAGES, echo=lambda s: None)
    [path] = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    run = read_run(path)
    assert run["config"]["prompts"]["limit"] == 6 and run["config"]["tracking"]["to"] == "wandb"
    assert run["summary"]["stages/generate/made"] == metrics["stages"]["generate"]["made"] > 0
    assert [h["train-rm/step"] for h in run["history"] if "train-rm/loss" in h] == [1, 2, 3]
    assert {"metrics.json", "summary.md", "report.html"} <= set(run["files"])


def test_a_tracker_that_is_not_installed_stops_the_run_before_any_work(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    from cai.errors import ConfigError
    with pytest.raises(ConfigError, match=r"pip install 'cai-pipeline\[wandb\]'"):
        run_stages(small_config(tmp_path / "run", tracking="wandb"), ["generate"], echo=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_a_key_set_after_the_shorthand_joins_it(tmp_path):
    """`--set tracking=mlflow --set tracking.project=x` (and a config file's `tracking: mlflow`
    with a key set on top) is one tracking section, not an error."""
    cfg = small_config(tmp_path, **{"tracking": "mlflow", "tracking.project": "x"})
    assert (cfg.tracking.to, cfg.tracking.project) == ("mlflow", "x")
    assert small_config(tmp_path, tracking="wandb").tracking.to == "wandb"
