"""A minimal OpenRouter-shaped server that answers every transcription after a fixed delay (for benchmarks).

It runs in its own process so that it does not share the client's GIL::

    python -m bench.latency_server --latency 0.2      # prints "READY <port>", serves until stdin closes

``POST /api/v1/audio/transcriptions`` reads the whole body, sleeps ``--latency`` seconds and answers
``{"text": ..., "usage": {...}}``. It exits when its standard input closes (so it never outlives the
benchmark), on SIGTERM, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading

from aiohttp import web

BODY = json.dumps(
    {"text": "the quick brown fox", "usage": {"cost": 0.0001, "seconds": 1.0, "input_tokens": 0, "output_tokens": 5}}
).encode()


def make_app(latency: float) -> web.Application:
    """The aiohttp application: one POST route answering after ``latency`` seconds."""

    async def transcribe(request: web.Request) -> web.Response:
        body = await request.read()
        if not body:
            return web.json_response({"error": {"code": 400, "message": "empty body"}}, status=400)
        if latency > 0:
            await asyncio.sleep(latency)
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/v1/audio/transcriptions", transcribe)
    return app


async def _serve(host: str, port: int, latency: float, max_seconds: float) -> None:
    runner = web.AppRunner(make_app(latency), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"READY {bound}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def watch_stdin() -> None:  # read() returns at EOF: the benchmark is done, or gone
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed as READY <port>)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="exit after this long whatever happens")
    args = ap.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.latency, args.max_seconds))
    sys.exit(0)


if __name__ == "__main__":
    main()
