"""Shared fixtures: tiny random models (SmolLM2 tokenizer, small config), fake backends, configs.

The embedded model is fetched and converted once into the user cache (it is where the SmolLM2
tokenizer comes from); tiny models are built from it in seconds, so the suite stays fast.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
# Tests count model calls per run directory: the cross-run call cache is off unless a test
# names one (subprocesses inherit this).
os.environ["CAI_CALL_CACHE"] = "off"

from fakes import FakeBackend  # noqa: E402

from cai import backends  # noqa: E402
from cai.config.run import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["review_helpers"]  # the `served` review page, for the review tests


@pytest.fixture(scope="session")
def smollm2_dir():
    from cai.backends.weights import ensure_embedded
    return ensure_embedded("smollm2-135m")[0]


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir, tmp_path_factory):
    """A 2-layer, 64-wide Llama with the SmolLM2 tokenizer and chat template, random weights."""
    from cai.backends.tiny import tiny_model
    return tiny_model(tmp_path_factory.mktemp("tiny-llama"), tokenizer_dir=smollm2_dir)


@pytest.fixture
def fake_backend(monkeypatch):
    """Registers `fake:<name>` specs; yields the list of backends created, to inspect calls."""
    created = []

    def load(model, config):
        backend = FakeBackend(model)
        created.append(backend)
        return backend
    monkeypatch.setitem(backends.BACKENDS, "fake", load)
    return created


@pytest.fixture
def stage_reuse_off(monkeypatch):
    """Every data stage goes through the record-level path (compute ids, skip those stored, call
    for the rest), the one a changed-input rerun takes: a rerun test then fails when the call
    cache or a record id fails, instead of passing because whole stages were skipped."""
    from cai.stages import reuse as stage_reuse
    monkeypatch.setattr(stage_reuse, "input_fingerprint", lambda ctx, name: None)


def small_config(run_dir, policy="fake:policy", judge="fake:judge", **sections):
    """A config sized for tests: a few prompts, tiny training; `sections` override keys."""
    overrides = [f"run_dir={run_dir}", f"constitution={ROOT / 'principles.yaml'}",
                 f"models.policy={policy}", f"models.judge={judge}", "models.batch_size=4",
                 "prompts.limit=6", "generate.samples=2", "generate.max_new_tokens=16", "critique.rounds=2",
                 "critique.critique_max_new_tokens=12", "critique.revision_max_new_tokens=16",
                 "calibration.heldout=6", "calibration.limit=10", "evaluate.limit=3",
                 f"evaluate.refusal_labels={ROOT / 'tests' / 'refusal_labels_small.jsonl'}",
                 "evaluate.max_new_tokens=8", "train_rm.max_steps=2", "train_policy.max_steps=2",
                 "train_rm.max_length=512", "train_policy.max_length=256"]
    overrides += [f"{k}={v}" for k, v in sections.items()]
    return load_config(None, overrides)


FAKE_ARGS = ["--set", "models.policy=fake:policy", "--set", "models.judge=fake:judge",
             "--set", f"constitution={ROOT / 'principles.yaml'}", "--set", "prompts.limit=6",
             "--set", "calibration.heldout=6", "--set", "calibration.limit=10"]


def cai(run_dir, *args, sets=()) -> tuple[int, str, str]:
    """`cai ARGS --run-dir run_dir` (fake models, a few prompts, then `--set` each of `sets`) in
    this process, as a user runs it, error handling included: (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from cai.cli import main
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["cai", *args, "--run-dir", str(run_dir), *FAKE_ARGS,
                *(x for s in sets for x in ("--set", s))]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def small_store(tmp_path_factory):
    """A real small run store: the data stages up to pairs with the fake backends."""
    run = tmp_path_factory.mktemp("store") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(backends.BACKENDS, "fake", lambda model, config: FakeBackend(model))
        code, _, err = cai(run, "run", "--to", "pairs")
    assert code == 0, err
    return run
