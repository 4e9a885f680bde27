"""`engine: ray` against `engine: local`: the same dataset byte for byte (the fake backend,
the tiny transformers model, `openai:` clients against the test server), an actor killed
mid-stage changes nothing, and a driver killed mid-stage resumes asking only what the store
lacks. On a local Ray cluster of 4 CPUs (with 2, Ray Data's actor pool can deadlock on 2 cores);
skipped only where the `ray` extra is not installed (the dev extra installs it)."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, small_config
from fakes import FakeBackend
from test_openai_backend import server  # noqa: F401 - the fixture: the test OpenAI server

from cai import backends
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster; its workers import cai and the tests' fakes."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "CAI_CALL_CACHE": "off"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def ray_batches(monkeypatch):
    """Batches the Ray engine answered: a test of it must see its calls go that way, not pass
    because they were answered in this process."""
    from cai.engines.ray_engine import RayEngine
    seen, real = [], RayEngine.answer

    def answer(self, client, kind, batches):
        for rows in real(self, client, kind, batches):
            seen.append(len(rows))
            yield rows
    monkeypatch.setattr(RayEngine, "answer", answer)
    return seen


class Witness(FakeBackend):
    """The fake backend, noting in a file the process it runs in and every request it answers
    (by content), slowly enough to be killed mid-stage."""

    def __init__(self, model, log, delay):
        super().__init__(model)
        self.log, self.delay = log, delay
        with open(self.log, "a") as f:
            f.write(f"pid {os.getpid()}\n")

    def _note(self, requests):
        time.sleep(self.delay)
        with open(self.log, "a") as f:
            f.writelines(f"asked {hashlib.sha1(repr(r).encode()).hexdigest()}\n" for r in requests)

    def generate(self, requests):
        self._note(requests)
        return super().generate(requests)

    def choice_logprobs(self, requests):
        self._note(requests)
        return super().choice_logprobs(requests)


def _dataset(run_dir) -> dict:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "dataset").glob("*.jsonl"))}


def _run(run_dir, engine, monkeypatch, log=None, delay=0.0, **keys):
    monkeypatch.setitem(backends.BACKENDS, "fake", lambda model, config, log=log, delay=delay:
                        Witness(model, log, delay) if log else FakeBackend(model))
    cfg = small_config(run_dir, engine=engine, **{"ray.actors": 2, "models.batch_size": 2, **keys})
    return run_stages(cfg, DATA_STAGES, echo=lambda s: None)


def _calls(run_dir) -> int:
    with Store(run_dir, lock=False) as store:
        return store.count_calls()


def test_the_ray_engine_makes_the_same_dataset(cluster, tmp_path, monkeypatch, ray_batches):
    _run(tmp_path / "local", "local", monkeypatch)
    assert not ray_batches
    log = tmp_path / "asked.log"
    metrics = _run(tmp_path / "ray", "ray", monkeypatch, log=log)
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "local") != {}
    assert _calls(tmp_path / "ray") == _calls(tmp_path / "local") == sum(ray_batches) > 0
    pids = {x.split()[1] for x in log.read_text().splitlines() if x.startswith("pid")}
    assert pids and str(os.getpid()) not in pids  # answered in the actors, not here
    calls = sum(s["model_calls"] for s in metrics["stages"].values())
    assert calls == _calls(tmp_path / "ray")  # every call counted once, on the driver
    # all stored: a rerun through every stage's calls (no stage skipped whole) asks nothing
    from cai.stages import reuse as stage_reuse
    monkeypatch.setattr(stage_reuse, "input_fingerprint", lambda ctx, name: None)
    ray_batches.clear()
    again = _run(tmp_path / "ray", "ray", monkeypatch)
    assert sum(s["model_calls"] for s in again["stages"].values()) == 0 and not ray_batches


def test_an_actor_killed_mid_stage_changes_nothing(cluster, tmp_path, monkeypatch, ray_batches):
    _run(tmp_path / "local", "local", monkeypatch)
    log = tmp_path / "asked.log"
    log.touch()

    def kill_one_actor():
        while True:
            pids = [int(x.split()[1]) for x in log.read_text().splitlines() if x.startswith("pid")]
            if pids and sum(x.startswith("asked") for x in log.read_text().splitlines()) >= 6:
                os.kill(pids[0], signal.SIGKILL)
                return
            time.sleep(0.05)
    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    _run(tmp_path / "ray", "ray", monkeypatch, log=log, delay=0.2)
    killer.join(timeout=1)
    lines = log.read_text().splitlines()
    assert sum(x.startswith("pid") for x in lines) >= 3  # the killed actor was replaced
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "local")
    assert _calls(tmp_path / "ray") == _calls(tmp_path / "local") == sum(ray_batches)
    asked = [x for x in lines if x.startswith("asked")]
    assert len(asked) - len(set(asked)) <= 2  # at most the batch in flight when it died


def test_a_driver_killed_mid_stage_resumes_asking_only_what_is_missing(cluster, tmp_path):
    """A real `cai run` on the cluster, SIGKILLed mid-generate; the next run asks only the
    calls its store lacks."""
    run_dir = tmp_path / "run"
    args = [sys.executable, str(ROOT / "tests" / "drivers" / "cai_fake.py"), "run", "--to",
            "generate", "--run-dir", str(run_dir), "--set", "models.policy=fake:policy",
            "--set", "models.judge=fake:judge", "--set", f"constitution={ROOT / 'principles.yaml'}",
            "--set", "prompts.limit=16", "--set", "models.batch_size=2", "--set", "engine=ray",
            "--set", f"ray.address={cluster}", "--set", "ray.actors=2"]
    env = {**os.environ, "CAI_FAKE_DELAY": "0.3", "CAI_CALL_CACHE": "off",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not _stored_some(run_dir):
        time.sleep(0.1)
    first.kill()
    _, err = first.communicate()
    stored = _calls(run_dir) if (run_dir / "cai.sqlite").exists() else 0
    assert 0 < stored < 32, err.decode()[-2000:]
    out = subprocess.run(args, env={**env, "CAI_FAKE_DELAY": "0"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    generate = [x for x in out.stdout.splitlines() if x.startswith("generate")][0]
    assert f"{32 - stored} model calls" in generate and _calls(run_dir) == 32


def _stored_some(run_dir) -> bool:
    return (run_dir / "cai.sqlite").exists() and _calls(run_dir) >= 4


def test_the_tiny_model_in_ray_actors_makes_the_same_dataset(cluster, tmp_path, tiny_model_dir,
                                                            ray_batches):
    """A real backend in the actors: each loads the tiny transformers model itself."""
    spec = f"transformers:{tiny_model_dir}"
    keys = {"ray.actors": 2, "models.batch_size": 4, "prompts.limit": 3}
    for engine in ("local", "ray"):
        run_stages(small_config(tmp_path / engine, policy=spec, judge=spec, engine=engine, **keys),
                   DATA_STAGES, echo=lambda s: None)
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "local") != {}
    assert _calls(tmp_path / "ray") == _calls(tmp_path / "local") == sum(ray_batches) > 0


class Broken(FakeBackend):
    def generate(self, requests):
        raise RuntimeError("CUDA error: device-side assert triggered")


def test_a_backend_failing_in_an_actor_stops_the_run_in_one_line(cluster, tmp_path, monkeypatch):
    from cai.errors import BackendError
    monkeypatch.setitem(backends.BACKENDS, "fake", lambda model, config: Broken(model))
    cfg = small_config(tmp_path, engine="ray", **{"ray.actors": 2})
    with pytest.raises(BackendError) as e:
        run_stages(cfg, ["generate"], echo=lambda s: None)
    message = str(e.value)
    assert "\n" not in message and "fake:policy" in message
    assert "RuntimeError: CUDA error: device-side assert triggered" in message
    assert not (tmp_path / "cai.sqlite").exists() or _calls(tmp_path) == 0


def test_openai_clients_in_ray_actors_make_the_same_dataset(cluster, server, tmp_path,
                                                            ray_batches):
    """The `openai:` backend in the actors against the real test server (the tiny model)."""
    from test_openai_backend import _config, _faults
    _faults(server, 0.0)
    for engine in ("local", "ray"):
        run_stages(_config(tmp_path / engine, server, engine=engine, **{"ray.actors": 2}),
                   DATA_STAGES, echo=lambda s: None)
    assert _dataset(tmp_path / "ray") == _dataset(tmp_path / "local") != {}
    assert _calls(tmp_path / "ray") == _calls(tmp_path / "local") == sum(ray_batches) > 0
