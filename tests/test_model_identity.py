"""One identity per model: two servers under one name, a hub name without a revision, and every
request setting that changes an answer are told apart (cai.backends.identity)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import small_config

from cai.backends import identity as mi
from cai.errors import BackendError, ConfigError


class _Models(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [
            {"id": "judge", "object": "model", "root": self.server.root, "created": self.server.n}]})
        self.server.n += 1  # vLLM stamps each answer with the time: not part of the identity
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    """Two servers, each serving other weights under the model name 'judge'."""
    out = []
    for root in ("/models/judge-v1", "/models/judge-v2"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
        srv.root, srv.n = root, 0
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        out.append(srv)
    mi._REPORTS.clear()
    yield [f"http://127.0.0.1:{s.server_address[1]}/v1" for s in out]
    for s in out:
        s.shutdown()
    mi._REPORTS.clear()


def _identity(tmp_path, url, **extra):
    cfg = small_config(tmp_path, judge="openai:judge", **{"openai.base_urls": f"[{url}]", **extra})
    return mi.model_identity("openai:judge", cfg)


def test_two_servers_under_one_name_are_two_models(servers, tmp_path):
    one, two = (_identity(tmp_path, url) for url in servers)
    assert one != two
    assert one["servers"][servers[0]]["root"] == "/models/judge-v1"
    mi._REPORTS.clear()
    assert _identity(tmp_path, servers[0]) == one  # asked again: the same (`created` aside)


@pytest.mark.parametrize("setting", [{"openai.weights_id": "ckpt-2"}, {"openai.top_logprobs": 5},
                                     {"openai.structured": True}, {"openai.logprobs": False},
                                     {"openai.control_tokens": "['<ctl>']"}])
def test_request_settings_that_change_answers_are_in_the_identity(servers, tmp_path, setting):
    assert _identity(tmp_path, servers[0], **setting) != _identity(tmp_path, servers[0])


def test_a_server_that_is_not_there_is_one_line_or_in_a_plan_a_miss(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.raises(BackendError, match="cannot reach .*/models .*server running"):
        _identity(tmp_path, url)
    cfg = small_config(tmp_path, judge="openai:judge", **{"openai.base_urls": f"[{url}]"})
    assert mi.model_identity("openai:judge", cfg, reachable=False)["servers"][url] == {"unreachable": True}


def test_a_hub_name_is_cached_only_at_a_pinned_revision(tmp_path):
    cfg = small_config(tmp_path)
    with pytest.raises(ConfigError, match="pinned revision"):
        mi.model_identity("vllm:org/model", cfg)
    assert mi.model_identity("vllm:org/model@abc123", cfg)["revision"] == "abc123"
    pinned = "vllm:org/model@abc123"
    for setting in ({"vllm.max_model_len": 2048}, {"vllm.tensor_parallel_size": 2}):
        other = small_config(tmp_path, **setting)
        assert mi.model_identity(pinned, other) != mi.model_identity(pinned, cfg)


def test_a_local_model_is_named_with_how_it_is_run(tmp_path, tiny_model_dir):
    spec = f"transformers:{tiny_model_dir}"
    base = mi.model_identity(spec, small_config(tmp_path))
    assert {"weights", "files", "dtype", "prefix_cache"} <= set(base)
    other = mi.model_identity(spec, small_config(tmp_path, **{"models.prefix_cache": False}))
    assert other != base
