"""Run the local OpenRouter-compatible server from Python: in a background thread, or in a child process.

Example::

    import stt_frames
    with stt_frames.serve_local(prices={"fake/echo": 0.006}) as base_url:
        client = stt_frames.Client(base_url=base_url)   # no API key, no network
        ...
        stt_frames.local_server.get_stats(base_url)["billed"]

``process=True`` runs the server in a separate Python process (``stt-frames serve``), so a benchmark's
client does not share its GIL with the server.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._extras import require
from .server.decode import DEFAULT_MAX_AUDIO_SECONDS
from .server.faults import DEFAULT_FAULTS, DEFAULT_RETRY_AFTER
from .server.request import DEFAULT_MAX_BODY_BYTES

__all__ = ["get_stats", "reset_stats", "serve_local"]

#: Seconds to wait for the server to accept connections.
DEFAULT_STARTUP_TIMEOUT: float = 30.0


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/api/v1"


@contextlib.contextmanager
def _serve_thread(options: dict[str, Any], host: str, port: int, timeout: float, log_level: str) -> Iterator[str]:
    uvicorn = require("uvicorn", "server", "serve_local")
    from .server.app import create_app
    from .server.cli import bind_socket

    app = create_app(**options)
    sock = bind_socket(host, port)
    with sock:
        config = uvicorn.Config(app, log_config=None, log_level=log_level, access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="stt-frames-local-server", daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + timeout
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("the local server stopped during startup; see the log above")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the local server did not start within {timeout:g} s")
                time.sleep(0.005)
            yield _url(host, sock.getsockname()[1])
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def _server_args(options: dict[str, Any], host: str, port: int, log_level: str) -> list[str]:
    args = [
        "serve",
        f"--host={host}",
        f"--port={port}",
        f"--latency={options['latency']!r}",
        f"--fail-rate={options['fail_rate']!r}",
        f"--seed={options['seed']}",
        f"--faults={','.join(options['faults'])}",
        f"--retry-after={options['retry_after']!r}",
        f"--max-body-bytes={options['max_body_bytes']}",
        f"--max-audio-seconds={options['max_audio_seconds']!r}",
        f"--log-level={log_level}",
    ]
    args += [f"--price={model}={price!r}" for model, price in (options["prices"] or {}).items()]
    if options["workers"]:
        args.append(f"--workers={options['workers']}")
    return args


@contextlib.contextmanager
def _serve_process(options: dict[str, Any], host: str, port: int, timeout: float, log_level: str) -> Iterator[str]:
    from .server.cli import API_KEY_ENV

    env = dict(os.environ)
    env.pop(API_KEY_ENV, None)
    if options["api_key"]:
        env[API_KEY_ENV] = options["api_key"]  # the environment, not argv: argv is visible in `ps`
    cmd = [sys.executable, "-m", "stt_frames.cli", *_server_args(options, host, port, log_level)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    try:
        line = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if sel.select(timeout):
                line = proc.stdout.readline()
        prefix = "stt-frames: serving "
        if not line.startswith(prefix):
            if proc.poll() is None:
                raise TimeoutError(f"the local server process did not start within {timeout:g} s")
            raise RuntimeError(f"the local server process exited with status {proc.returncode}; see its stderr")
        yield line[len(prefix) :].strip()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


@contextlib.contextmanager
def serve_local(
    *,
    api_key: str | None = None,
    latency: float = 0.0,
    fail_rate: float = 0.0,
    seed: int = 0,
    prices: Mapping[str, float] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    faults: Iterable[str] = DEFAULT_FAULTS,
    retry_after: float = DEFAULT_RETRY_AFTER,
    workers: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    process: bool = False,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    log_level: str = "warning",
) -> Iterator[str]:
    """Run the local server while the ``with`` block runs; yields its base URL ``http://127.0.0.1:PORT/api/v1``.

    Takes ``create_app``'s options. ``port=0`` (default) picks a free port. ``process=True`` runs the
    server in a child process instead of a thread of this one. On exit the server shuts down cleanly,
    with its engine worker processes. (In a script, keep the call under ``if __name__ == "__main__":``:
    the pocketsphinx workers are started with multiprocessing's ``spawn`` and import the main module.)

    Example::

        with serve_local(prices={"fake/echo": 0.006}, fail_rate=0.1, seed=1) as base_url:
            print(base_url)  # http://127.0.0.1:54321/api/v1
    """
    from .server.faults import parse_faults

    options: dict[str, Any] = {
        "api_key": api_key,
        "latency": latency,
        "fail_rate": fail_rate,
        "seed": seed,
        "prices": dict(prices) if prices else None,
        "max_body_bytes": max_body_bytes,
        "max_audio_seconds": max_audio_seconds,
        "faults": parse_faults(faults),
        "retry_after": retry_after,
        "workers": workers,
    }
    if process:
        from .server.app import ServerState

        ServerState(**options).close()  # check the options here, where a mistake is a clear exception
        serve = _serve_process
    else:
        serve = _serve_thread
    with serve(options, host, port, startup_timeout, log_level) as base_url:
        yield base_url


def _stats_request(method: str, base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.request(
        method, f"{base_url.rstrip('/')}/_stats", headers=headers, timeout=timeout, trust_env=False
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def get_stats(base_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """The local server's accounting: requests and billed 200s per audio SHA-256, statuses, faults, cost.

    Example::

        with serve_local() as url:
            ...
            stats = get_stats(url)
            assert all(n == 1 for n in stats["billed"].values())  # nothing billed twice
    """
    return _stats_request("GET", base_url, api_key, timeout)


def reset_stats(base_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Zero the local server's accounting (and restart its fault sequence); returns the empty stats.

    Example::

        reset_stats(url)["total_requests"]  # 0
    """
    return _stats_request("DELETE", base_url, api_key, timeout)
