import pytest
from fakes import FakeBackend

from cai.backends import SamplingParams
from cai.backends.base import RequestFailed
from cai.backends.client import ModelClient
from cai.errors import BackendError
from cai.store.core import Store


def _client(store, backend, batch_size=2):
    return ModelClient("fake:m", store, lambda: backend, backend.identity, batch_size)


def test_cache_hits_never_reach_the_backend(tmp_path):
    backend = FakeBackend("m")
    msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
    params = SamplingParams(8, 0.7, 0.9)
    with Store(tmp_path) as store:
        first = _client(store, backend).generate(msgs, params, seed=1)
        assert backend.generate_calls == 5
        again = _client(store, backend).generate(msgs, params, seed=1)
        assert backend.generate_calls == 5 and [r.text for r in again] == [r.text for r in first]
        _client(store, backend).generate(msgs, params, seed=2)  # a new seed is a new call
        assert backend.generate_calls == 10
        _client(store, backend).generate(msgs, SamplingParams(9, 0.7, 0.9), seed=1)
        assert backend.generate_calls == 15


def test_identical_requests_are_called_once(tmp_path):
    backend = FakeBackend("m")
    with Store(tmp_path) as store:
        out = _client(store, backend).choices([[{"role": "user", "content": "x"}]] * 3, ("A", "B"))
        assert backend.choice_calls == 1 and len(out) == 3


def test_a_failed_request_is_stored_with_its_reason_and_retried_only_on_purpose(tmp_path):
    class OneBad(FakeBackend):
        def generate(self, requests):
            out = super().generate(requests)
            return [RequestFailed("HTTP 400: prompt too long") if "bad" in dict(r.messages[0])
                    ["content"] else o for r, o in zip(requests, out)]
    backend = OneBad("m")
    msgs = [[{"role": "user", "content": "bad"}], [{"role": "user", "content": "good"}]]
    with Store(tmp_path) as store:
        client = _client(store, backend)
        bad, good = client.generate(msgs, SamplingParams())
        assert bad.error == "HTTP 400: prompt too long" and good.text and client.stats.failed == 1
        assert store.get_calls([bad.key])[bad.key]["error"] == "HTTP 400: prompt too long"
        # A rerun returns the stored failure; with retry_failed it calls again.
        healthy = FakeBackend("m")
        [again] = _client(store, healthy).generate(msgs[:1], SamplingParams())
        assert again.error and healthy.generate_calls == 0
        retry = ModelClient("fake:m", store, lambda: healthy, backend.identity, 2, retry_failed=True)
        [fixed] = retry.generate(msgs[:1], SamplingParams())
        assert fixed.text and not fixed.error and healthy.generate_calls == 1


def test_a_backend_that_fails_stops_the_run_and_stores_no_failure(tmp_path):
    """Loading (a bad dtype, out of memory) and a whole batch failing are the backend's fault,
    not the requests': one line, nothing stored, and a rerun with a working backend calls."""
    class Broken(FakeBackend):
        def generate(self, requests):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(details)")

    def no_memory():
        raise MemoryError("cannot allocate 540 MB")
    msgs = [[{"role": "user", "content": "q"}]]
    with Store(tmp_path) as store:
        for loader, said in ((no_memory, "cannot load model 'fake:m': MemoryError: cannot "
                                          "allocate 540 MB"),
                             (lambda: Broken("m"), "model 'fake:m' failed on a batch of 1 requests: "
                                                   "RuntimeError: CUDA out of memory. Tried to "
                                                   "allocate 2.00 GiB; finished work is saved")):
            client = ModelClient("fake:m", store, loader, {"model": "fake:m"}, 2)
            with pytest.raises(BackendError) as e:
                client.generate(msgs, SamplingParams())
            assert str(e.value).startswith(said) and "\n" not in str(e.value)
            assert store.count_calls() == 0 and client.stats.failed == 0
        healthy = FakeBackend("m")
        [r] = ModelClient("fake:m", store, lambda: healthy, {"model": "fake:m"}, 2).generate(
            msgs, SamplingParams())
        assert r.text and healthy.generate_calls == 1


def test_a_model_that_cannot_load_ends_the_command_in_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    out = subprocess.run([sys.executable, "-m", "cai.cli", "generate", "--run-dir",
                          str(tmp_path), "--set", f"models.policy=transformers:{ROOT}"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"cai: error: {ROOT}: not a Hugging Face model directory "
                                  "(no config.json)")
