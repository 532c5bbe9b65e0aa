"""Run the local OpenRouter-compatible server from Python: in a background thread, or in a child process.

Example::

    import stt_frames
    from stt_frames.server import get_stats
    with stt_frames.serve_local(prices={"fake/echo": 0.006}) as base_url:
        client = stt_frames.Client(base_url=base_url)   # no API key, no network
        ...
        get_stats(base_url)["billed"]

``process=True`` runs the server in a separate Python process (``stt-frames serve``), so a benchmark's
client does not share its GIL with the server; the options reach it as that command's arguments, made from
the same declaration (``ServerOptions.to_argv``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

from .._extras import require
from .options import API_KEY_ENV, ServerOptions, resolve_options

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_STARTUP_TIMEOUT",
    "bind_socket",
    "get_stats",
    "reset_stats",
    "serve_local",
    "url_of",
]

#: The interface the server binds by default: loopback only.
DEFAULT_HOST: Final = "127.0.0.1"
#: Seconds to wait for the server to accept connections.
DEFAULT_STARTUP_TIMEOUT: Final = 30.0
#: ``serve_local``'s own keyword arguments, beside the server options.
_LAUNCHER_OPTIONS: Final = ("host", "port", "process", "startup_timeout", "log_level")


def url_of(host: str, port: int) -> str:
    """The base URL of a server listening on ``host:port``: ``url_of("127.0.0.1", 8787)``."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/api/v1"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = any free port).

    Example::

        sock = bind_socket("127.0.0.1", 0); sock.getsockname()[1]
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns TCP_NODELAY on only for sockets that say they are TCP, and without
    # it each response body waits ~40 ms for the client's delayed ACK (uvicorn writes headers and body apart).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Always, as uvicorn does: a server restarted on the same port (even one first given port 0) must
        # not be refused because connections of the previous one are still closing.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _serve_thread(options: ServerOptions, host: str, port: int, timeout: float, log_level: str) -> Iterator[str]:
    uvicorn = require("uvicorn", "server", "serve_local")
    from . import app as server_app

    app = server_app.create_app(options)
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
            yield url_of(host, sock.getsockname()[1])
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@contextlib.contextmanager
def _serve_process(options: ServerOptions, host: str, port: int, timeout: float, log_level: str) -> Iterator[str]:
    env = dict(os.environ)
    env.pop(API_KEY_ENV, None)
    env.update(options.to_env())  # the key goes in the environment, not argv: argv is visible in `ps`
    argv = ["serve", f"--host={host}", f"--port={port}", f"--log-level={log_level}", *options.to_argv()]
    proc = subprocess.Popen([sys.executable, "-m", "stt_frames.cli", *argv], stdout=subprocess.PIPE, env=env, text=True)
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


def serve_local(
    options: ServerOptions | None = None,
    /,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    process: bool = False,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    log_level: str = "warning",
    **server_options: Any,
) -> contextlib.AbstractContextManager[str]:
    """Run the local server while the ``with`` block runs; yields its base URL ``http://127.0.0.1:PORT/api/v1``.

    Takes the server's options as keyword arguments (``latency=``, ``fail_rate=``, ``prices=`` ...: every
    field of ``ServerOptions``, the same as ``create_app``), or a ``ServerOptions``. A misspelt option is a
    TypeError that lists the valid ones; a bad value is a ValueError, raised here, before anything starts.
    ``port=0`` (default) picks a free port. ``process=True`` runs the server in a child process instead of
    a thread of this one. On exit the server shuts down cleanly, with its engine worker processes. (In a
    script, keep the call under ``if __name__ == "__main__":``: the pocketsphinx workers are started with
    multiprocessing's ``spawn`` and import the main module.)

    Example::

        with serve_local(prices={"fake/echo": 0.006}, fail_rate=0.1, seed=1) as base_url:
            print(base_url)  # http://127.0.0.1:54321/api/v1
    """
    resolved = resolve_options(options, server_options, caller="serve_local", others=_LAUNCHER_OPTIONS)
    if process:
        from .app import ServerState

        ServerState(resolved).close()  # what only the engines can check (prices' models): a clear error here
        return _serve_process(resolved, host, port, startup_timeout, log_level)
    return _serve_thread(resolved, host, port, startup_timeout, log_level)


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
