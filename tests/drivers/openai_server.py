"""An OpenAI-compatible test server over a local transformers model, with fault injection.

    python tests/drivers/openai_server.py MODEL_DIR --port 8000 [--faults 0.2] [--latency 0.05]

POST /v1/chat/completions (messages, max_tokens, temperature, top_p, seed, logprobs,
top_logprobs) and GET /v1/models, on 127.0.0.1. Answers are deterministic per request: the
model runs one request at a time (a lock) with torch seeded from the request's `seed`, so a
retried request gets the same answer. `latency` (seconds, slept outside the lock) stands in for
a remote server's queueing and network time. With `fault_rate` > 0 each request first draws a
fault (seeded): 429 with Retry-After, 500, a hang past the client's timeout, a body that is not
JSON, or a dropped connection. Used by the tests and by bench/backends.py.
"""

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "hang", "malformed", "drop")


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model_dir, port=0, fault_rate=0.0, faults=FAULTS, hang=3.0, latency=0.0,
                 api_key=None, seed=0):
        from cai.backends.transformers_backend import TransformersBackend
        super().__init__(("127.0.0.1", port), Handler)
        self.backend = TransformersBackend(str(model_dir), device="cpu")
        self.model_name = "tiny"
        self.fault_rate, self.faults, self.hang, self.latency = fault_rate, faults, hang, latency
        self.api_key = api_key
        self.lock, self.draw = threading.Lock(), random.Random(seed)
        self.counts = {"requests": 0, "answered": 0, **{f: 0 for f in FAULTS}}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def fault(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if self.draw.random() < self.fault_rate:
                kind = self.draw.choice(self.faults)
                self.counts[kind] += 1
                return kind
        return None

    def complete(self, body: dict) -> dict:
        from cai.backends.base import GenerationRequest, SamplingParams
        from cai.backends.client import freeze
        messages = freeze(body["messages"])
        temperature = body.get("temperature", 1.0) or 0.0
        params = SamplingParams(body.get("max_tokens") or 16, temperature, body.get("top_p") or 1.0)
        with self.lock:  # one at a time: torch's seed is global
            text = self.backend.generate([GenerationRequest(messages, params, body.get("seed") or 0)])[0]
            top = self._top_logprobs(body) if body.get("logprobs") else None
        if (body.get("response_format") or {}).get("type") == "json_schema":
            self.counts["json_schema"] = self.counts.get("json_schema", 0) + 1
            text = json.dumps({"text": text})  # what a server enforcing the schema returns
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": "stop", "logprobs": None}
        if top is not None:
            choice["logprobs"] = {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                               "bytes": None, "top_logprobs": top}]}
        return {"id": "cmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name, "choices": [choice],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

    def _top_logprobs(self, body) -> list[dict]:
        import torch
        b = self.backend
        batch = b._encode([body["messages"]])
        with torch.no_grad():
            logits = b.model(**batch, logits_to_keep=1).logits[0, -1].float()
        values, ids = torch.log_softmax(logits, -1).topk(body.get("top_logprobs") or 5)
        return [{"token": b.tokenizer.decode([int(i)]), "logprob": float(v), "bytes": None}
                for v, i in zip(values, ids)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the tests read the counters instead
        pass

    def _send(self, code: int, payload, headers=()):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            return self._send(200, {"object": "list", "data": [{"id": self.server.model_name,
                                                                  "object": "model"}]})
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
            return self._send(401, {"error": {"message": "Incorrect API key provided"}})
        if not self.path.endswith("/chat/completions") or body.get("model") != server.model_name:
            return self._send(404, {"error": {"message": f"model {body.get('model')!r} not found"}})
        fault = server.fault()
        if fault == "429":
            return self._send(429, {"error": {"message": "rate limited"}}, [("Retry-After", "0.05")])
        if fault == "500":
            return self._send(500, {"error": {"message": "internal error"}})
        if fault == "hang":
            time.sleep(server.hang)
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)  # no status line at all: the client sees a broken connection
            return
        if server.latency:
            time.sleep(server.latency)
        answer = server.complete(body)
        if fault == "malformed":
            return self._send(200, b'{"id": "cmpl-test", "choices": [{"index": 0, "mess')
        server.counts["answered"] += 1
        self._send(200, answer)


def start(model_dir, **kw) -> ModelServer:
    """A server on a free port, serving from a daemon thread; call .shutdown() to stop."""
    server = ModelServer(model_dir, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--faults", type=float, default=0.0, help="share of requests given a fault")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    a = ap.parse_args()
    srv = ModelServer(a.model_dir, a.port, fault_rate=a.faults, latency=a.latency)
    print(f"serving {a.model_dir} as model 'tiny' at {srv.url}", flush=True)
    srv.serve_forever()
