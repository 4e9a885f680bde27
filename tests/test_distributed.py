"""Training under `accelerate launch` (2 CPU processes, DDP over gloo) matches one process.

One process with batch 4 and two processes with batch 2 each see the same 4 pairs per step, so
the loss curve and the trained reward model must agree up to float reduction order. Only rank 0
writes: one model directory, one artifact, one recorded run.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES  # noqa: E402
from cai.store.core import Store


def _train_rm(run_dir, tiny_model_dir, launcher: list, batch: int, steps: int):
    sets = [f"models.policy=transformers:{tiny_model_dir}", f"train_rm.batch_size={batch}",
            f"train_rm.max_steps={steps}", "train_rm.max_length=512", "train_rm.learning_rate=1e-3",
            "train_rm.shuffle=false", "calibration.heldout=6", "models.device=cpu"]
    cmd = launcher + ["-m", "cai.cli", "train-rm", "--run-dir", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    # rank 1's traceback says only that rank 0 went away: show rank 0's lines and every error
    said = [x for x in out.stderr.splitlines() if "rank0" in x or "Error" in x]
    assert out.returncode == 0, "\n".join(said)[-4000:]
    with Store(run_dir, lock=False) as store:
        manifest = store.get_manifest("train-rm")
        runs = store.list_runs()
        artifacts = [a for a in store.list_artifacts() if a["name"] == "rm"]
    return manifest["meta"], runs, artifacts


def test_two_process_accelerate_training_matches_one_process(tmp_path, tiny_model_dir, fake_backend):
    run_stages(small_config(tmp_path / "data", **{"calibration.limit": 30}), DATA_STAGES,
               echo=lambda s: None)
    shutil.copytree(tmp_path / "data", tmp_path / "single")
    shutil.copytree(tmp_path / "data", tmp_path / "ddp")
    pairs = len((tmp_path / "data" / "dataset" / "prefs.jsonl").read_text().splitlines())
    steps = min(4, pairs // 4)  # whole batches of 4 only: a short last batch splits unevenly
    assert steps >= 2
    single, _, _ = _train_rm(tmp_path / "single", tiny_model_dir, [sys.executable], 4, steps)
    # `accelerate launch --cpu` starts one process whatever --num_processes says (its simple
    # launcher); `--multi_gpu` goes through torchrun, which on a machine without CUDA gives two
    # CPU processes on gloo. models.device=cpu keeps the trainer on the CPU either way.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
              "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    ddp, runs, artifacts = _train_rm(tmp_path / "ddp", tiny_model_dir, launch, 2, steps)
    curve = lambda meta: [row["loss"] for row in meta["loss"]]  # noqa: E731
    assert (single["processes"], ddp["processes"]) == (1, 2)
    assert len(curve(single)) == len(curve(ddp)) == steps
    assert curve(ddp) == pytest.approx(curve(single), rel=1e-3, abs=1e-4)
    assert ddp["heldout_accuracy"] == single["heldout_accuracy"]
    assert ddp["train_accuracy"] == single["train_accuracy"]
    # Rank 0 alone wrote: one finished run on top of the data run, one model, complete.
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert len(artifacts) == 1 and (tmp_path / "ddp" / "models").exists()
    models = list((tmp_path / "ddp" / "models").glob("rm-*"))
    assert len(models) == 1 and json.loads((models[0] / "cai-model.json").read_text())
