"""A raw ASGI app whose answers a test scripts in order, and which records every request it receives.

It stands in for an OpenRouter-compatible server until the project's own local server is used in tests.
Run it in-process with ``httpx.ASGITransport(app)``, or over real loopback with ``serve_in_thread(app)``
(uvicorn in a background thread on a free port).

Example::

    app = ScriptedServer()
    app.script(Reply.error(429, "slow down", headers={"Retry-After": "1"}), Reply.ok("hello"))
    with serve_in_thread(app) as base_url:          # "http://127.0.0.1:PORT/api/v1"
        Client(base_url=base_url).transcribe(...)
    app.requests[0].json["model"]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["OK_BODY", "RecordedRequest", "Reply", "ScriptedServer", "serve_in_thread"]

#: The answer given when nothing is scripted: a valid 200 of the contract.
OK_BODY: dict[str, Any] = {"text": "hello world", "usage": {"cost": 0.0001, "seconds": 1.0}}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers, body bytes, an optional delay, or a dropped connection."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def json(
        cls, payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None, delay: float = 0.0
    ) -> Reply:
        """A JSON answer."""
        hdrs = {"content-type": "application/json", **(headers or {})}
        return cls(status, tuple(hdrs.items()), json.dumps(payload).encode(), delay)

    @classmethod
    def ok(cls, text: str = "hello world", usage: Mapping[str, Any] | None = None, **kw: Any) -> Reply:
        """A 200 of the contract: ``{"text": ..., "usage": {...}}``."""
        return cls.json({"text": text, "usage": dict(usage if usage is not None else OK_BODY["usage"])}, **kw)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "scripted error",
        *,
        code: Any = None,
        metadata: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An error in the contract's shape: ``{"error": {"code", "message", "metadata"}}``."""
        err: dict[str, Any] = {"code": status if code is None else code, "message": message}
        if metadata is not None:
            err["metadata"] = dict(metadata)
        return cls.json({"error": err}, status=status, headers=headers)

    @classmethod
    def raw(cls, status: int, body: bytes, content_type: str = "text/plain", **headers: str) -> Reply:
        """Any bytes with any content type (HTML from a proxy, cut-off JSON, an empty body ...)."""
        return cls(status, (("content-type", content_type), *headers.items()), body)

    @classmethod
    def dropped(cls, delay: float = 0.0) -> Reply:
        """Close the connection after reading the request, without sending a single byte back."""
        return cls(delay=delay, drop=True)


@dataclass
class RecordedRequest:
    """What the server received: method, path, query string, headers (lower-case names) and body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        """The body parsed as JSON (raises if it is not JSON: a test should see that)."""
        return json.loads(self.body)


class ScriptedServer:
    """A raw ASGI app: answers with the scripted replies in order, then with ``default``; records requests."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default if default is not None else Reply.json(OK_BODY)
        self._replies: collections.deque[Reply] = collections.deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def script(self, *replies: Reply) -> ScriptedServer:
        """Queue answers, given in the order requests will get them."""
        with self._lock:
            self._replies.extend(replies)
        return self

    def reset(self) -> None:
        """Forget scripted answers and recorded requests."""
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        return len(self._replies)

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._replies.popleft() if self._replies else self.default

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover - no websockets here
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=bytes(body),
        )
        reply = self._next(request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            await _drop_connection(send)
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        if not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


async def _drop_connection(send: Any) -> None:
    """Close the socket without answering.

    Under uvicorn, ``send`` is a bound method of the connection's request cycle, which holds the asyncio
    transport: closing it is exactly what a crashed proxy does. In-process (``httpx.ASGITransport``) there
    is no socket, so the app raises the error httpx itself raises when a server hangs up.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.BaseTransport):
        transport.close()
        for _ in range(3):  # let uvicorn see connection_lost before the app returns
            await asyncio.sleep(0)
        return
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


@contextlib.contextmanager
def serve_in_thread(app: Any, *, prefix: str = "/api/v1", host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a daemon thread; yield the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="critical",
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="scripted-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the scripted uvicorn server did not start")
        time.sleep(0.005)
    try:
        yield f"http://{host}:{port}{prefix}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
