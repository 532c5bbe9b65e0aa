"""HTTP responses of the local server: the contract's error JSON, and the injected faults.

Every error the server sends is ``{"error": {"code": <status>, "message": ..., "metadata": {...}|null}}``,
except the ``502`` fault (HTML, as a proxy sends) and the ``drop``/``truncate`` faults (no or half a body).

Example::

    error_response(404, "model 'x/y' not found").body
    # b'{"error":{"code":404,"message":"model \\'x/y\\' not found","metadata":null}}'
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any

from .._extras import require
from .errors import InjectedDisconnect
from .faults import BAD_GATEWAY_HTML

require("starlette", "server", "the local server")

from starlette.responses import Response  # noqa: E402

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = [
    "CYCLE_SCOPE_KEY",
    "DropResponse",
    "InjectedDisconnect",
    "TruncatedResponse",
    "error_response",
    "fault_response",
    "json_response",
]

#: Scope key under which the app keeps the ASGI server's own send target (uvicorn's request cycle),
#: so that a fault can close the connection for real.
CYCLE_SCOPE_KEY = "stt_frames.server_cycle"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response."""
    return Response(_dumps(obj), status_code=status, headers=headers, media_type="application/json")


def error_response(
    status: int,
    message: str,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The contract's error shape: ``{"error": {"code", "message", "metadata"}}``."""
    body = {"error": {"code": status, "message": message, "metadata": metadata}}
    return json_response(body, status=status, headers=headers)


def fault_response(kind: str, *, retry_after: float) -> Response:
    """The response for a status fault: '402', '429', '500', '502' or '503'."""
    meta: dict[str, Any] = {"fault": kind, "injected": True}
    if kind == "429":
        ms = round(retry_after * 1000)
        meta["retry_after_ms"] = ms
        headers = {"retry-after": str(math.ceil(retry_after)), "retry-after-ms": str(ms)}
        return error_response(429, f"Rate limit exceeded (injected fault); retry after {ms} ms", meta, headers)
    if kind == "402":
        return error_response(402, "Insufficient credits (injected fault); add credits to continue", meta)
    if kind == "500":
        return error_response(500, "Internal server error (injected fault)", meta)
    if kind == "502":
        return Response(BAD_GATEWAY_HTML, status_code=502, media_type="text/html")
    if kind == "503":
        return error_response(503, "Service temporarily unavailable (injected fault)", meta)
    raise ValueError(f"{kind!r} is not a status fault")


async def _close_connection(scope: Scope, what: str) -> None:
    """Close the client connection under the ASGI server, and wait until the server has noticed."""
    cycle: Any = scope.get(CYCLE_SCOPE_KEY)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(cycle, "disconnected"):
        raise InjectedDisconnect(f"injected fault: {what} (in-process, no connection to close)")
    transport.close()
    for _ in range(1000):  # uvicorn marks the cycle disconnected once the transport reports it lost
        if cycle.disconnected:
            return
        await asyncio.sleep(0.001)


class DropResponse(Response):
    """Closes the connection without sending a byte of response."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _close_connection(scope, "connection dropped")


class TruncatedResponse(Response):
    """Sends ``inner``'s status and headers (with its full Content-Length), half its body, then closes."""

    def __init__(self, inner: Response) -> None:
        super().__init__(inner.body, status_code=inner.status_code)
        self.raw_headers = inner.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await _close_connection(scope, f"response cut off after {len(body) // 2} of {len(body)} bytes")
