from pipeline.backends import SamplingParams
from pipeline.client import ModelClient
from pipeline.store import Store
from fakes import FakeBackend


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


def test_backend_failures_are_stored_with_their_reason(tmp_path):
    class Broken(FakeBackend):
        def generate(self, requests):
            raise RuntimeError("CUDA out of memory")
    backend = Broken("m")
    with Store(tmp_path) as store:
        client = _client(store, backend)
        [r] = client.generate([[{"role": "user", "content": "q"}]], SamplingParams())
        assert r.error == "RuntimeError: CUDA out of memory" and client.stats.failed == 1
        assert list(store.get_calls([r.key]).values())[0]["error"].startswith("RuntimeError")
        # A rerun returns the stored failure; with retry_failed it calls again.
        healthy = FakeBackend("m")
        [again] = _client(store, healthy).generate([[{"role": "user", "content": "q"}]], SamplingParams())
        assert again.error and healthy.generate_calls == 0
        retry = ModelClient("fake:m", store, lambda: healthy, backend.identity, 2, retry_failed=True)
        [fixed] = retry.generate([[{"role": "user", "content": "q"}]], SamplingParams())
        assert fixed.text and not fixed.error and healthy.generate_calls == 1
