"""An OpenAI-compatible server that only sleeps: no model, so a client's own ceiling shows.

    python tests/drivers/sleep_server.py --port 8100 --sleep 0.1

POST /v1/chat/completions answers after `sleep` seconds (asyncio: any number at once) with a
fixed completion, and top_logprobs when asked; GET /v1/models lists one model. HTTP/1.1 with
keep-alive, which is all the `openai` client's httpx pool speaks. Used by bench/backends.py.
"""

import argparse
import asyncio
import json

COMPLETION = {"id": "c", "object": "chat.completion", "created": 0, "model": "sleepy",
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _answer(body: dict) -> dict:
    logprobs = None
    if body.get("logprobs"):
        top = [{"token": t, "logprob": -0.1 * (i + 1), "bytes": None}
               for i, t in enumerate(["A", "B", "Yes", "No"])]
        logprobs = {"content": [{"token": "A", "logprob": -0.1, "bytes": None,
                                 "top_logprobs": top}]}
    return {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                                       "message": {"role": "assistant", "content": "Slept."}}]}


async def _handle(reader, writer, sleep: float):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(v) for k, _, v in (x.partition(":") for x in lines[1:])
                           if k.strip().lower() == "content-length"), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            if method == "POST" and path.endswith("/chat/completions"):
                await asyncio.sleep(sleep)
                payload = _answer(body)
            else:
                payload = {"object": "list", "data": [{"id": "sleepy", "object": "model"}]}
            data = json.dumps(payload).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, sleep: float):
    server = await asyncio.start_server(lambda r, w: _handle(r, w, sleep), "127.0.0.1", port,
                                        backlog=1024)
    print(f"serving on http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--sleep", type=float, default=0.1)
    args = ap.parse_args()
    asyncio.run(serve(args.port, args.sleep))
