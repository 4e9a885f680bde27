"""The `openai:` backend against a real local HTTP server (tests/drivers/openai_server.py).

The server runs the tiny transformers model and can inject faults: 429 with Retry-After, 500,
hangs past the client's timeout, malformed JSON and dropped connections.
"""

import json
import math

import pytest
from conftest import small_config
from drivers.openai_server import FAULTS, start

from cai.backends import ChoiceRequest, GenerationRequest, SamplingParams, load_backend
from cai.backends.client import freeze
from cai.errors import CaiError
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES  # noqa: E402
from cai.store.core import Store


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    srv = start(tiny_model_dir, hang=5.0)
    yield srv
    srv.shutdown()


def _config(run_dir, server, **extra):
    return small_config(run_dir, policy="openai:tiny", judge="openai:tiny", **{
        "openai.base_urls": f"[{server.url}]", "openai.timeout": 3.0, "openai.backoff": 0.02,
        "openai.max_backoff": 0.1, "openai.concurrency": 8, "openai.max_retries": 8, **extra})


def _faults(server, rate, faults=FAULTS):
    server.fault_rate, server.faults = rate, faults
    server.counts = {"requests": 0, "answered": 0, **{f: 0 for f in FAULTS}}


def test_generation_and_choice_logprobs_match_the_model_behind_the_server(server, tmp_path):
    _faults(server, 0.0)
    backend = load_backend("openai:tiny", _config(tmp_path, server))
    msgs = freeze([{"role": "user", "content": "Say hello"}])
    greedy = SamplingParams(max_new_tokens=8, temperature=0.0)
    assert backend.generate([GenerationRequest(msgs, greedy)]) == \
        server.backend.generate([GenerationRequest(msgs, greedy, seed=backend_seed(0, 0))])
    # Choices scored remotely = the same forward pass locally, for tokens in the top list.
    top = server._top_logprobs({"messages": [{"role": "user", "content": "Say hello"}],
                                "top_logprobs": 20})
    tok = server.backend.tokenizer
    first, second = [t["token"].strip() for t in top if t["token"].strip()
                     and len(tok.encode(t["token"].strip(), add_special_tokens=False)) == 1][:2]
    [lp] = backend.choice_logprobs([ChoiceRequest(msgs, (first, second, "no-such-choice"))])
    # Variants of a choice (" A", "A") add up; a missing one is below the lowest listed.
    expected = [math.log(sum(math.exp(t["logprob"]) for t in top if t["token"].strip() == c))
                for c in (first, second)]
    assert lp[:2] == pytest.approx(expected, abs=1e-5)
    assert lp[2] == pytest.approx(min(t["logprob"] for t in top) - math.log(2))
    exact = next(t for t in top if t["token"].strip() == first)  # a listed token = the local model's
    local = server.backend.choice_logprobs([ChoiceRequest(msgs, (exact["token"],))])[0][0]
    assert exact["logprob"] == pytest.approx(local, abs=1e-4)


def backend_seed(seed, sample):
    from cai.backends.openai_backend import request_seed
    return request_seed(seed, sample)


def test_twenty_percent_faults_give_the_same_dataset(server, tmp_path):
    _faults(server, 0.0)
    clean = run_stages(_config(tmp_path / "clean", server), DATA_STAGES, echo=lambda s: None)
    _faults(server, 0.2)
    faulty = run_stages(_config(tmp_path / "faulty", server), DATA_STAGES, echo=lambda s: None)
    injected = {f: server.counts[f] for f in FAULTS}
    assert all(injected.values()), injected  # every kind of fault happened at least once
    with Store(tmp_path / "faulty", lock=False) as store:
        assert store.count_failed_calls() == 0  # every fault was retried to success
    for name in ("prefs.jsonl", "prefs_test.jsonl", "sft.jsonl"):
        assert (tmp_path / "clean" / "dataset" / name).read_bytes() == \
               (tmp_path / "faulty" / "dataset" / name).read_bytes()
    assert clean["counts"] == faulty["counts"]


def test_a_server_that_keeps_failing_stops_the_run_and_the_next_run_asks_again(server, tmp_path):
    _faults(server, 1.0, ("500",))
    with pytest.raises(CaiError, match=r"12 of 12 requests failed \(HTTP 500.*127\.0\.0\.1"):
        run_stages(_config(tmp_path, server, **{"openai.max_retries": 1}), ["generate"],
                   echo=lambda s: None)
    assert server.counts["requests"] == 24  # each request: one try, one retry
    with Store(tmp_path, lock=False) as store:
        assert store.count_failed_calls() == 12  # recorded, with their reason
        assert store.get_manifest("generate") is None  # no empty dataset passed off as done
    _faults(server, 0.0)  # the server recovers: a plain rerun asks the failed calls again
    again = run_stages(_config(tmp_path, server), ["generate"], echo=lambda s: None)
    assert again["stages"]["generate"]["model_calls"] == 12 and not again["stages"]["generate"]["dropped"]
    again = run_stages(_config(tmp_path, server), ["generate"], echo=lambda s: None)
    assert again["stages"]["generate"]["model_calls"] == 0


def test_no_server_listening_is_one_line_and_a_started_server_is_then_asked(tiny_model_dir, tmp_path):
    import socket
    import subprocess
    import sys
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "cai.cli", "generate", "--run-dir", str(tmp_path),
           "--set", "models.policy=openai:tiny", "--set", f"openai.base_urls=[http://127.0.0.1:{port}/v1]",
           "--set", "prompts.limit=2", "--set", "generate.max_new_tokens=4"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and "refused" in line.lower()
    srv = start(tiny_model_dir, port=port)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        srv.shutdown()
    assert out.returncode == 0, out.stderr
    assert "4 model calls" in out.stdout
    assert srv.counts["requests"] == 4


def test_a_wrong_key_or_model_stops_the_run_at_once(server, tmp_path, monkeypatch):
    _faults(server, 0.0)
    monkeypatch.setenv("CAI_TEST_KEY", "sk-wrong-0123456789")
    server.api_key = "the-right-key"
    try:
        with pytest.raises(CaiError, match=r"HTTP 401.*CAI_TEST_KEY"):
            run_stages(_config(tmp_path / "a", server, **{"openai.api_key_env": "CAI_TEST_KEY"}),
                       ["generate"], echo=lambda s: None)
        assert server.counts["requests"] <= 12  # no retries: at most one try per request
    finally:
        server.api_key = None
    for path in (tmp_path / "a").rglob("*"):  # the key is nowhere in the run directory
        if path.is_file():
            assert b"sk-wrong-0123456789" not in path.read_bytes()
    with pytest.raises(CaiError, match=r"HTTP 404.*no such model"):
        run_stages(_config(tmp_path / "b", server, **{"models.policy": "openai:nope"}),
                   ["generate"], echo=lambda s: None)


def test_a_server_without_logprobs_is_voted_on(server, tmp_path):
    _faults(server, 0.0)
    cfg = _config(tmp_path, server, **{"openai.logprobs": "false", "judge.votes": 3,
                                       "calibration.limit": 2})
    run_stages(cfg, ["generate", "critique", "label"], echo=lambda s: None)
    with Store(tmp_path, lock=False) as store:
        label = store.get_manifest("label")
        records = store.get_records(label["ids"])
    assert records and all(r["method"] == "vote" for r in records.values())
    assert json.dumps(records).count('"votes"') > 0


def test_structured_output_asks_for_the_schema_and_reads_the_text(server, tmp_path):
    _faults(server, 0.0)
    run_stages(_config(tmp_path, server, **{"openai.structured": "true"}),
               ["generate", "critique"], echo=lambda s: None)
    with Store(tmp_path, lock=False) as store:
        chains = store.get_records(store.get_manifest("critique")["ids"])
    critiques = [r["critique"] for c in chains.values() for r in c["rounds"]]
    assert critiques and not any(c.startswith('{"text"') for c in critiques)
    assert server.counts["json_schema"] >= len(critiques)  # every critique (and its retries)


def test_switching_backend_recomputes_exactly_the_calls_of_the_old_one(server, tmp_path,
                                                                      tiny_model_dir):
    """The same weights behind another engine are another model to the cache; going back
    reuses everything the first backend made."""
    _faults(server, 0.0)
    local = {"models.policy": f"transformers:{tiny_model_dir}"}
    first = run_stages(_config(tmp_path, server, **local), ["generate"], echo=lambda s: None)
    remote = run_stages(_config(tmp_path, server), ["generate"], echo=lambda s: None)
    back = run_stages(_config(tmp_path, server, **local), ["generate"], echo=lambda s: None)
    calls = [m["stages"]["generate"]["model_calls"] for m in (first, remote, back)]
    assert calls == [12, 12, 0]
    with Store(tmp_path, lock=False) as store:
        records = store.get_records(store.get_manifest("generate")["ids"])
    assert set(next(iter(records.values()))) == {"prompt_id", "prompt", "sample", "text", "model",
                                                 "params", "seed", "call", "kind"}
