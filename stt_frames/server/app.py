"""The local server's ASGI app (Starlette): routes, authentication, body limits and the request flow.

Routes, under ``/api/v1``:

- ``POST /audio/transcriptions``: the contract.
- ``GET /models``: the models, in OpenRouter's list shape ``{"data": [...]}``, each with its ``limits``.
- ``GET /_stats``: request accounting (see ``stats``); ``DELETE /_stats`` resets it.

Limits, answered as a real provider does, in the contract's error shape:

- a body over ``max_body_bytes``: 413, ``metadata: {"max_body_bytes": N, "body_bytes": n}`` (``body_bytes``
  only when the request declared its Content-Length), refused before it is read whole;
- audio over ``max_audio_seconds`` (default 1,500 s): 400,
  ``metadata: {"max_audio_seconds": N, "audio_seconds": s}``.

The work of a request (its ``latency`` wait, then the engine) stops when the client goes away: the
server watches the connection while it works (see ``stats`` for how such a request is counted).

Example::

    import httpx
    from stt_frames.server import create_app
    app = create_app(prices={"fake/echo": 0.006})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://local/api/v1") as client:
        (await client.get("/models")).json()["data"][0]["id"]
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from .._extras import require
from ..errors import MissingExtraError
from . import API_PREFIX
from .catalog import model_entry
from .decode import AudioTooLong, DecodeError
from .engines import Engine, build_engines
from .faults import FaultInjector
from .options import ServerOptions, resolve_options
from .pricing import compute_usage, resolve_prices
from .request import RequestError, TranscriptionRequest, parse_transcription_request
from .stats import ServerStats
from .workers import EngineWorkers, default_workers

require("starlette", "server", "the local server")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import ClientDisconnect, Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import Message, Receive, Scope, Send  # noqa: E402

from .responses import (  # noqa: E402
    CYCLE_SCOPE_KEY,
    DropResponse,
    TruncatedResponse,
    error_response,
    fault_response,
    json_response,
)

__all__ = ["ServerState", "create_app"]

logger = logging.getLogger("stt_frames.server")


class ServerState:
    """Everything one app instance holds: engines, prices, limits, faults, stats and the worker processes.

    Reach it as ``app.state.stt``; ``app.state.stats`` is the same ``ServerStats`` as ``.stats``.
    ``close()`` stops the worker processes (the app's lifespan calls it; an app driven without its
    lifespan, e.g. through ``httpx.ASGITransport``, should be closed by whoever made it).
    ``options`` (a ``ServerOptions``, checked when it was made) is what it was built from.
    """

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.engines: dict[str, Engine] = build_engines()
        self.missing: dict[str, list[str]] = {m: e.missing_modules() for m, e in self.engines.items()}
        self.prices = resolve_prices(self.engines, options.prices)
        self.latency = options.latency
        self.max_body_bytes = options.max_body_bytes
        self.max_audio_seconds = options.max_audio_seconds
        self.faults = FaultInjector(
            rate=options.fail_rate, seed=options.seed, kinds=options.faults, retry_after=options.retry_after
        )
        self.stats = ServerStats()
        self.workers = EngineWorkers(options.workers or default_workers(), stats=self.stats)
        self._key = options.api_key.encode("utf-8") if options.api_key else None
        self._generation = itertools.count(1)

    def __repr__(self) -> str:  # never shows the key
        return f"ServerState(models={sorted(self.engines)}, auth={self._key is not None}, latency={self.latency})"

    def authorized(self, header: str | None) -> bool:
        """True when no key is set, or ``header`` is ``Bearer <key>`` (constant-time comparison)."""
        if self._key is None:
            return True
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("latin-1", "replace"), self._key)

    @property
    def requires_key(self) -> bool:
        """Whether requests need an ``Authorization`` header."""
        return self._key is not None

    def next_generation_id(self) -> str:
        """An id for the ``X-Generation-Id`` header."""
        return f"gen-local-{next(self._generation)}"

    def limits(self) -> dict[str, Any]:
        """The limits of every model here: ``{"max_audio_seconds": ..., "max_body_bytes": ...}``."""
        return {"max_audio_seconds": self.max_audio_seconds, "max_body_bytes": self.max_body_bytes}

    def close(self) -> None:
        """Stop the worker processes and threads (the app's lifespan does this at shutdown)."""
        self.workers.close()


class _App(Starlette):
    """Starlette, plus a note of the ASGI server's request cycle so that faults can close connections."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[CYCLE_SCOPE_KEY] = getattr(send, "__self__", None)
        await super().__call__(scope, receive, send)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.stt
    return state


def _unauthorized(request: Request) -> Response:
    if request.headers.get("authorization") is None:
        message = "missing Authorization header; send 'Authorization: Bearer <key>'"
    else:
        message = "invalid API key in the Authorization header"
    return error_response(401, message, headers={"www-authenticate": "Bearer"})


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it is known to exceed ``limit`` bytes."""
    message = f"request body is over this server's limit of {limit} bytes (max_body_bytes)"
    too_large = RequestError(message, status=413, metadata={"max_body_bytes": limit})
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(message, status=413, metadata={"max_body_bytes": limit, "body_bytes": int(declared)})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _run_engine(state: ServerState, req: TranscriptionRequest) -> Response:
    engine = state.engines.get(req.model)
    if engine is None:
        return error_response(
            404,
            f"model {req.model[:100]!r} is not served here; available: {', '.join(state.engines)}",
            {"available_models": list(state.engines)},
        )
    missing = state.missing[engine.id]
    if missing:
        return error_response(404, engine.unavailable_message(missing))
    language = engine.default_language if req.language is None else req.language.lower()
    if language not in engine.languages:
        supported = sorted(engine.languages)
        return error_response(
            400,
            f"language {language[:20]!r} is not supported by {engine.id}; supported: {', '.join(supported)}"
            f"{engine.language_note}",
            {"supported_languages": supported},
        )
    try:
        result = await engine.transcribe(
            req.audio,
            req.format,
            sha256=req.sha256,
            language=language,
            workers=state.workers,
            max_seconds=state.max_audio_seconds,
            temperature=req.temperature,
        )
    except AudioTooLong as exc:
        seconds = "longer" if exc.seconds is None else f"{exc.seconds:.1f} s long,"
        metadata: dict[str, Any] = {"max_audio_seconds": exc.limit}
        if exc.seconds is not None:
            metadata["audio_seconds"] = round(exc.seconds, 3)
        return error_response(
            400,
            f"the audio is {seconds} over {engine.id}'s limit of {exc.limit:g} s per request "
            "(max_audio_seconds); cut it into shorter pieces",
            metadata,
        )
    except DecodeError as exc:
        return error_response(400, f"input_audio.data cannot be decoded as {req.format}: {exc}")
    except MissingExtraError as exc:
        return error_response(400, f"this server cannot decode {req.format} audio: {exc}")
    except Exception as exc:  # a bug or an engine failure: a contract 500, never a crash
        logger.exception("engine %s failed", engine.id)
        return error_response(500, f"the {engine.id} engine failed ({type(exc).__name__})")
    usage = compute_usage(seconds=result.seconds, text=result.text, price_per_minute=state.prices[engine.id])
    state.stats.bill(req.sha256, engine.id, usage["cost"], result.seconds)
    return json_response({"text": result.text, "usage": usage}, headers={"x-generation-id": state.next_generation_id()})


async def _transcribe(request: Request, state: ServerState) -> tuple[Response, str | int]:
    """Answer one transcription request; returns the response and the label it is counted under."""
    if not state.authorized(request.headers.get("authorization")):
        response = _unauthorized(request)
        return response, response.status_code
    try:
        body = await _read_body(request, state.max_body_bytes)
    except RequestError as exc:
        return error_response(exc.status, exc.message, exc.metadata, headers={"connection": "close"}), exc.status
    except ClientDisconnect:
        return error_response(400, "the client disconnected before sending the whole body"), "disconnect"
    return await _unless_disconnected(_answer(state, request, body), request.receive)


async def _until_disconnected(receive: Receive) -> None:
    """Return once the client has gone away (the body has been read: only ``http.disconnect`` is left)."""
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


async def _unless_disconnected(
    work: Awaitable[tuple[Response, str | int]], receive: Receive
) -> tuple[Response, str | int]:
    """Await ``work``; if the client goes away first, cancel it and answer "cancelled" (nobody reads it)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnected(receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return error_response(499, "the client went away; the work was cancelled"), "cancelled"
    return task.result()


async def _answer(state: ServerState, request: Request, body: bytes) -> tuple[Response, str | int]:
    """Everything after the body is read: parsing (the request counts for its audio), latency, faults, the engine."""
    req: TranscriptionRequest | None = None
    error: RequestError | None = None
    try:
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            raise RequestError(
                "multipart/form-data uploads are not supported by this local server; send a JSON body with "
                "the file as base64 in input_audio.data"
            )
        req = parse_transcription_request(body)
        sha256: str | None = req.sha256
    except RequestError as exc:
        error, sha256 = exc, exc.sha256
    if sha256 is not None:
        state.stats.audio(sha256)  # counted on arrival: a client that gives up during the latency was still heard
    if state.latency:
        await asyncio.sleep(state.latency)
    fault = state.faults.roll()
    if fault is not None:
        state.stats.fault(fault)
    if fault == "drop":
        return DropResponse(), "drop"
    if fault in ("402", "429", "500", "502", "503"):
        response = fault_response(fault, retry_after=state.faults.retry_after)
        return response, response.status_code
    if req is not None:
        response = await _run_engine(state, req)
    else:
        assert error is not None
        response = error_response(error.status, error.message, error.metadata)
    if fault == "truncate":
        return TruncatedResponse(response), "truncate"
    return response, response.status_code


async def transcriptions(request: Request) -> Response:
    """``POST /api/v1/audio/transcriptions``."""
    state = _state(request)
    state.stats.started()
    label: str | int = "error"
    try:
        response, label = await _transcribe(request, state)
    except asyncio.CancelledError:  # the ASGI server (or an in-process client) cancelled the request
        label = "cancelled"
        raise
    finally:
        state.stats.finished(label)
    return response


async def models(request: Request) -> Response:
    """``GET /api/v1/models``: available models; ``?output_modalities=`` filters as on openrouter.ai."""
    state = _state(request)
    wanted = request.query_params.get("output_modalities")
    show = wanted is None or bool({"all", "transcription"} & {m.strip() for m in wanted.split(",")})
    data = [
        model_entry(e, state.prices[m], limits=state.limits())
        for m, e in state.engines.items()
        if show and not state.missing[m]
    ]
    return json_response({"data": data})


async def stats(request: Request) -> Response:
    """``GET /api/v1/_stats`` (a snapshot) and ``DELETE /api/v1/_stats`` (reset, then a snapshot)."""
    state = _state(request)
    if not state.authorized(request.headers.get("authorization")):
        return _unauthorized(request)
    if request.method == "DELETE":
        state.stats.reset()
        state.faults.reset()
    return json_response(state.stats.snapshot())


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal server error"
    if status == 404:
        detail = f"no route {request.method} {request.url.path[:200]}; the API is under {API_PREFIX}"
    elif status == 405:
        detail = f"method {request.method} is not allowed on {request.url.path[:200]}"
    headers = getattr(exc, "headers", None)
    return error_response(status, str(detail), headers=dict(headers) if headers else None)


def create_app(options: ServerOptions | None = None, /, **overrides: Any) -> Starlette:
    """Build the local OpenRouter-compatible speech-to-text server as an ASGI app.

    Takes a ``ServerOptions``, or its fields as keyword arguments (or both: the keywords win); a misspelt
    option is a TypeError that lists the valid ones, a bad value a ValueError. What each option does is
    said once, in ``ServerOptions`` (``stt-frames serve --help`` prints the same text). The pocketsphinx
    worker processes start on the first request that needs them and stop at shutdown
    (``app.state.stt.close()`` when you drive the app without its lifespan).

    Example::

        from stt_frames.server import create_app
        app = create_app(prices={"fake/echo": 0.006}, fail_rate=0.1, seed=1)
        app.state.stats.snapshot()["total_requests"]  # 0
    """
    state = ServerState(resolve_options(options, overrides, caller="create_app"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = _App(
        routes=[
            Route(f"{API_PREFIX}/audio/transcriptions", transcriptions, methods=["POST"]),
            Route(f"{API_PREFIX}/models", models, methods=["GET"]),
            Route(f"{API_PREFIX}/_stats", stats, methods=["GET", "DELETE"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
        lifespan=lifespan,
    )
    app.state.stt = state
    app.state.stats = state.stats
    return app
