"""Backend throughput: the `openai:` backend's concurrency, and the pipeline's overhead.

    python bench/backends.py            # ~3 minutes on 2 CPU cores; prints two tables

1. `openai:` against the local OpenAI-compatible test server (tests/drivers/openai_server.py,
   a tiny random Llama behind it) at concurrency 1, 4 and 16, 64 generation requests each,
   as a ratio to concurrency 1. The server runs its model one request at a time, so it adds a
   fixed `latency` per request outside the model (a stand-in for network and queueing: a
   remote server's time that concurrency can overlap); rows for 0 and 50 ms. The server runs
   in its own process; client and server share the machine's 2 cores.
2. The generate stage through the pipeline (cache lookups, batching, one store transaction
   per batch, records) vs the raw backend's `generate` on the same requests in the same
   batches (`client.in_batches`: the client's order and size), for `openai:` (50 ms latency,
   concurrency 16) and `transformers:` (the tiny model, in process). The raw side runs before
   and after the pipeline, best kept; the row runs 3 times, each side's best kept. Ratio = raw
   seconds / pipeline seconds; target >= 0.95.
3. The client's own ceiling: `openai:` against a server that only sleeps 100 ms per request
   (tests/drivers/sleep_server.py, asyncio, no model) at concurrency 1 to 256, and the generate
   stage vs the raw backend there at concurrency 64 (512 requests).
4. Engines: the generate stage against that sleep-only server, 4,096 requests, `engine: local`
   (this process, concurrency 64) vs `engine: ray` with 1, 2 and 4 actors (each an `openai:`
   client of concurrency 64, kept for the run) on a local Ray cluster of 4 CPUs; wall seconds of the stage
   (actor start-up included), requests per second and the ratio to local.
   `--only engines` runs this table alone.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
N = 64


def requests(n: int, prompts: list[str]):
    from cai.backends import GenerationRequest, SamplingParams
    from cai.backends.client import freeze
    params = SamplingParams(max_new_tokens=8, temperature=0.7, top_p=0.95)
    return [GenerationRequest(freeze([{"role": "user", "content": prompts[i % len(prompts)]}]),
                              params, 0, i // len(prompts)) for i in range(n)]


def config(tmp: Path, spec: str, url: str, concurrency: int, prompts_file: Path, n: int):
    from cai.config.run import load_config
    return load_config(None, [
        f"run_dir={tmp}", f"models.policy={spec}", f"openai.base_urls=[{url}]",
        f"openai.concurrency={concurrency}", f"prompts.source={prompts_file}",
        f"prompts.limit={n}", "generate.samples=1", "generate.max_new_tokens=8",
        "models.batch_size=16", "models.shared_cache=off"])  # every call reaches the server


def timed_generate(url: str, spec: str, concurrency: int, n: int, prompts) -> tuple[float, list]:
    """Seconds for the raw `openai:` backend to answer n generation requests, and the answers."""
    from cai.backends import load_backend
    with tempfile.TemporaryDirectory() as tmp:
        backend = load_backend(spec, config(Path(tmp), spec, url, concurrency, Path(tmp) / "p.jsonl", n))
        start = time.perf_counter()
        out = backend.generate(requests(n, prompts))
        return time.perf_counter() - start, out


def concurrency_rows(url: str, prompts, latency: float) -> list:
    rows, base = [], None
    for c in (1, 4, 16):
        secs, out = timed_generate(url, "openai:tiny", c, N, prompts)
        assert all(isinstance(t, str) for t in out)
        base = base or secs
        rows.append((latency, c, secs, N / secs, base / secs))
    return rows


def sleep_rows(url: str, prompts) -> list:
    """Requests per second against the sleep-only server: the client's ceiling."""
    rows = []
    for c, n in ((1, 32), (16, 256), (64, 1024), (256, 2048)):
        secs, out = timed_generate(url, "openai:sleepy", c, n, prompts)
        assert all(t == "Slept." for t in out)
        rows.append((c, n, n / secs))
    return rows


def best_of(repeats: int, name, *args, **kw):
    """The overhead row `repeats` times in alternation, each side's best kept: at hundreds of
    requests per second one run's noise (±5 %) is larger than the pipeline's own cost."""
    rows = [overhead_row(name, *args, **kw) for _ in range(repeats)]
    return name, rows[0][1], min(r[2] for r in rows), min(r[3] for r in rows)


def overhead_row(name, spec, url, prompts, n=128, concurrency=16):
    """Raw backend.generate vs the generate stage on the same requests (fresh store, the same
    loaded backend, so model loading is in neither number)."""
    from cai.backends import GenerationRequest, SamplingParams, load_backend
    from cai.backends.client import freeze, in_batches
    from cai.stages import STAGES
    from cai.stages.context import RunContext
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [{"id": f"p{i}", "prompt": f"{p} ({i})"} for i, p in enumerate((prompts * n)[:n])]
        (tmp / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = config(tmp / "run", spec, url, concurrency, tmp / "prompts.jsonl", n)
        backend = load_backend(spec, cfg)
        raw = [GenerationRequest(freeze([{"role": "user", "content": r["prompt"]}]),
                                 SamplingParams(8, 0.8, 0.95), 0, 0) for r in rows]
        ctx = RunContext(cfg)
        ctx._backends[spec] = backend
        # the very batches the pipeline's client sends: same order, same size
        batches = in_batches(raw, ctx.policy().batch_size_for(backend))

        def raw_run() -> float:
            start = time.perf_counter()
            for batch in batches:
                backend.generate(batch)
            return time.perf_counter() - start
        try:
            before = raw_run()
            start = time.perf_counter()
            stats = STAGES["generate"](ctx)
            pipe_secs = time.perf_counter() - start
            raw_secs = min(before, raw_run())  # before and after: warm-up favours neither
        finally:
            ctx.close()
        assert stats.calls == n
    return name, n, raw_secs, pipe_secs


def engine_rows(url: str, prompts, n: int = 4096, concurrency: int = 64) -> list:
    """The generate stage on the sleep-only server, this process alone vs 1, 2 and 4 actors."""
    import ray
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    rows = []
    try:
        for engine, actors in (("local", 1), ("ray", 1), ("ray", 2), ("ray", 4)):
            secs = stage_seconds(url, prompts, n, concurrency, engine, actors)
            rows.append((engine, actors, n, secs))
    finally:
        ray.shutdown()
    return rows


def stage_seconds(url, prompts, n, concurrency, engine: str, actors: int) -> float:
    from cai.stages import STAGES
    from cai.stages.context import RunContext
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [{"id": f"p{i}", "prompt": f"{p} ({i})"} for i, p in enumerate((prompts * n)[:n])]
        (tmp / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = config(tmp / "run", "openai:sleepy", url, concurrency, tmp / "prompts.jsonl", n)
        cfg = cfg.model_copy(update={"engine": engine, "ray": cfg.ray.model_copy(
            update={"actors": actors})})
        with RunContext(cfg) as ctx:
            start = time.perf_counter()
            stats = STAGES["generate"](ctx)
            secs = time.perf_counter() - start
        assert stats.calls == n
    return secs


def print_engines(rows):
    print("generate stage vs a server that sleeps 100 ms per request: engines side by side")
    print(f"{'engine':<8} {'actors':>6} {'requests':>8} {'seconds':>8} {'req/s':>7} {'vs local':>9}")
    local = rows[0][2] / rows[0][3]
    for engine, actors, n, secs in rows:
        print(f"{engine:<8} {actors if engine == 'ray' else '-':>6} {n:>8} {secs:8.2f} "
              f"{n / secs:7.1f} {n / secs / local:8.2f}x")


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # server and client share 2 cores
    from cai.backends.tiny import tiny_model
    from cai.inputs.sources import load_prompts
    from cai.log import quiet_libraries
    quiet_libraries()
    if sys.argv[1:] == ["--only", "engines"]:
        prompts = [p["prompt"] for p in load_prompts("builtin:redteam")[:32]]
        with serve_sleep(0.1) as url:
            print_engines(engine_rows(url, prompts))
        return
    tmp = Path(tempfile.mkdtemp(prefix="cai-bench-backends-"))
    model = tiny_model(tmp / "tiny")
    prompts = [p["prompt"] for p in load_prompts("builtin:redteam")[:32]]
    rows = []
    for latency in (0.0, 0.05):  # the server in its own process: no shared interpreter lock
        with serve(model, latency) as url:
            rows += concurrency_rows(url, prompts, latency)
            if latency:
                overhead = [best_of(3, "openai: (50 ms, c=16)", "openai:tiny", url, prompts),
                            best_of(3, "transformers: (tiny, CPU)", f"transformers:{model}",
                                         url, prompts)]
    print(f"openai: backend vs the local test server, {N} requests of 8 new tokens")
    print(f"{'latency':>8} {'concurrency':>12} {'seconds':>8} {'req/s':>7} {'vs 1':>6}")
    for latency, c, secs, rate, ratio in rows:
        print(f"{latency * 1000:6.0f}ms {c:>12} {secs:8.2f} {rate:7.1f} {ratio:5.2f}x")
    print()
    print("generate stage through the pipeline vs the raw backend, same requests")
    with serve_sleep(0.1) as url:
        ceiling = sleep_rows(url, prompts)
        overhead.append(best_of(3, "openai: (sleep 100 ms, c=64)", "openai:sleepy", url, prompts,
                                     n=512, concurrency=64))
    print(f"{'backend':<30} {'requests':>8} {'raw s':>7} {'pipeline s':>10} {'ratio':>6}")
    for name, n, raw, pipe in overhead:
        print(f"{name:<30} {n:>8} {raw:7.2f} {pipe:10.2f} {raw / pipe:6.2f}")
    print()
    print("openai: backend vs a server that only sleeps 100 ms per request (no model)")
    print(f"{'concurrency':>12} {'requests':>9} {'req/s':>8} {'vs sequential':>14}")
    for c, n, rate in ceiling:
        print(f"{c:>12} {n:>9} {rate:8.1f} {rate / 10:13.1f}x")
    print()
    with serve_sleep(0.1) as url:
        print_engines(engine_rows(url, prompts))


@contextlib.contextmanager
def _server(script: str, port: int, *args: str):
    """A test server in its own process (no shared interpreter lock); its URL once it listens."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "drivers" / script), *args,
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        proc.stdout.readline()  # "serving ..." once ready
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait()


def serve_sleep(sleep: float):
    return _server("sleep_server.py", 18500, "--sleep", str(sleep))


def serve(model: Path, latency: float):
    return _server("openai_server.py", 18000 + int(latency * 1000), str(model),
                   "--latency", str(latency))


if __name__ == "__main__":
    main()
