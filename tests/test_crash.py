"""Crash safety: a real `cai run` subprocess killed with SIGKILL at 10 points resumes to the
same dataset as an uninterrupted run, with nothing half-written visible in between."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import ROOT

DRIVER = ROOT / "tests" / "drivers" / "cai_fake.py"
ARGS = ["--set", "models.policy=fake:policy", "--set", "models.judge=fake:judge",
        "--set", f"constitution={ROOT / 'principles.yaml'}", "--set", "prompts.limit=8",
        "--set", "models.batch_size=2", "--set", "calibration.heldout=8", "--set", "calibration.limit=12"]


def _default_sigint():
    # A shell's background job inherits SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: the child must get Ctrl-C as a terminal user would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cai(run_dir, *extra, delay=0.0, to="export"):
    env = {**os.environ, "CAI_FAKE_DELAY": str(delay)}
    return subprocess.Popen([sys.executable, str(DRIVER), "run", "--to", to, "--run-dir",
                             str(run_dir), *ARGS, *extra], env=env, preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _dataset(run_dir):
    d = run_dir / "dataset"
    return [(d / f).read_text() for f in ("prefs.jsonl", "prefs_test.jsonl", "sft.jsonl")]


def _check_visible_state(run_dir) -> tuple:
    """Whatever a kill left: an export is complete or absent; the store opens and reads.
    Returns where the run was: (stages done, model calls stored)."""
    d = run_dir / "dataset"
    if d.exists():
        assert (d / ".cai-hash").exists() and (d / "README.md").exists()
        for line in (d / "prefs.jsonl").read_text().splitlines():
            json.loads(line)
    from cai.store.core import Store
    with Store(run_dir, lock=False) as store:
        store.count_records()
        done = sum(store.get_manifest(s) is not None
                   for s in ("generate", "critique", "pairs", "blend", "export"))
        return done, store.count_calls()


def _progress(run_dir) -> tuple[int, int]:
    """(model calls stored, stages done), read-only, while a cai process may be writing."""
    db = run_dir / "cai.sqlite"
    if not db.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            calls = con.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            stages = con.execute("SELECT COUNT(*) FROM manifests").fetchone()[0]
            return calls, stages
    except sqlite3.OperationalError:  # tables not created yet
        return 0, 0


def _signal_when(proc, run_dir, reached, sig=signal.SIGKILL):
    """Send `sig` once the run's progress satisfies `reached(calls, stages)` (if the run ends
    first, the signal finds no process and the caller's return-code check fails)."""
    while proc.poll() is None and not reached(*_progress(run_dir)):
        time.sleep(0.005)
    proc.send_signal(sig)


def test_sigkill_at_ten_points_then_resume(tmp_path):
    clean = _cai(tmp_path / "clean")
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    expected = _dataset(tmp_path / "clean")
    total, _ = _progress(tmp_path / "clean")
    # Eight kills spread over the model calls (generate, critique rounds, verdicts, revisions,
    # judge agreement), then two in the stages that make no calls (pairs/blend, export).
    points = [lambda c, s, n=total * i // 9: c >= n for i in range(1, 9)]
    points += [lambda c, s: s >= 3, lambda c, s: s >= 4]
    run_dir, states = tmp_path / "killed", []
    for reached in points:
        proc = _cai(run_dir, delay=0.01)
        _signal_when(proc, run_dir, reached)
        assert proc.wait(timeout=60) == -signal.SIGKILL  # killed mid-run, not finished first
        states.append(_check_visible_state(run_dir))
    assert len(set(states)) >= 8, states  # the kills landed at different places in the run
    final = _cai(run_dir)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    assert _dataset(run_dir) == expected
    from cai.store.core import Store
    with Store(run_dir, lock=False) as a, Store(tmp_path / "clean", lock=False) as b:
        assert a.count_calls() == b.count_calls()  # no call made twice, none lost
        assert a.get_manifest("pairs")["ids"] == b.get_manifest("pairs")["ids"]


def test_a_second_cai_on_the_same_run_dir_fails_at_once(tmp_path):
    first = _cai(tmp_path, delay=0.2)
    time.sleep(2.0)  # let it take the lock
    second = _cai(tmp_path)
    out, err = second.communicate(timeout=60)
    first.kill()
    first.wait()
    assert second.returncode == 2 and "another cai process is using this run directory" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_cleanly_with_a_one_line_message(tmp_path):
    proc = _cai(tmp_path, delay=0.05)
    _signal_when(proc, tmp_path, lambda calls, stages: calls >= 4, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("cai: interrupted. Finished work is saved; "
                                            "run the same command again to resume.")
    resumed = _cai(tmp_path)
    assert resumed.wait(timeout=300) == 0


def test_sigkill_during_training_and_evaluation(tmp_path, tiny_model_dir):
    """Models are written beside their place and renamed in: a kill leaves none half-written,
    and the resumed run trains, evaluates and reports."""
    policy = ["--set", f"models.policy=transformers:{tiny_model_dir}", "--set", "train_rm.max_steps=3",
              "--set", "train_policy.max_steps=3", "--set", "train_sft.max_steps=3",
              "--set", "generate.max_new_tokens=8", "--set", "prompts.limit=4",
              # the fake judge earns no trust, which would leave SL-CAI nothing to train on
              "--set", "calibration.use_trust=false"]
    for stages_done in (6, 7, 8, 9):  # killed in train-sft, train-rm, train-policy, evaluate
        proc = _cai(tmp_path, *policy, to="evaluate")
        _signal_when(proc, tmp_path, lambda calls, stages, n=stages_done: stages >= n)
        assert proc.wait(timeout=300) == -signal.SIGKILL, stages_done
        for d in (tmp_path / "models").glob("[!.]*"):
            assert (d / "cai-model.json").exists() and (d / "model.safetensors").exists(), d
    final = _cai(tmp_path, *policy, to="evaluate")
    assert final.wait(timeout=600) == 0, final.stderr.read()
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluation"]["table"]["trained"]
    names = sorted(d.name.split("-")[0] for d in (tmp_path / "models").glob("[!.]*"))
    assert names == ["policy", "rm", "rm", "sft"]  # untrusted AI pairs count: a human-only twin
    assert not list((tmp_path / "models").glob(".*.tmp-*"))  # a killed writer's leftovers are gone


def test_sigterm_closes_the_run_as_interrupted_and_exits_143(tmp_path):
    """What Slurm, Kubernetes and `timeout` send: handled like Ctrl-C, not left 'running'."""
    proc = _cai(tmp_path, delay=0.05)
    _signal_when(proc, tmp_path, lambda calls, stages: calls >= 4, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("cai: interrupted. Finished work is saved")
    from cai.store.core import Store
    with Store(tmp_path, lock=False) as store:
        (run,) = store.list_runs()
        assert run["status"] == "interrupted" and run["summary"]["calls"] >= 4
    resumed = _cai(tmp_path)
    assert resumed.wait(timeout=300) == 0
