"""The API key never leaks, and the key is never sent where it must not go.

A canary key runs through every path: success and every kind of error, from a server that ECHOES the
Authorization header back in its messages, metadata, HTML pages and headers. It must appear in no
exception, repr, result, widget state, CLI output, Parquet file, cache file (with -wal and -shm) or log
record (every logger at DEBUG). Then: plain http to a non-loopback host is refused before anything is
sent (a trap server listening on this machine's non-loopback address proves nothing arrived); the local
server's own key check; and the local server's body limit is enforced without buffering the body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scripted_server import RecordedRequest, Reply, ScriptedServer, serve_in_thread

import stt_frames
from stt_frames import errors, retry
from stt_frames.cache import Cache

pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

ROOT = Path(__file__).resolve().parent.parent
CANARY = "sk-or-v1-canary-" + secrets.token_hex(16)
#: The key, and pieces of it: a leak of the secret part alone is still a leak.
FRAGMENTS = (CANARY, CANARY.removeprefix("sk-or-v1-"), CANARY[-20:])
AUTH = "%AUTH%"  # replaced, in a scripted reply, by the Authorization header the request carried


def leaks(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [f for f in FRAGMENTS if f.encode() in data]


def assert_clean(where: str, *things: Any) -> None:
    """No fragment of the key in ``things``: str/repr of objects, exceptions with their whole chain, bytes."""
    for thing in things:
        texts: list[str | bytes] = []
        if isinstance(thing, str | bytes):
            texts.append(thing)
        elif isinstance(thing, BaseException):
            texts += ["".join(traceback.format_exception(thing)), repr(thing), json.dumps(thing.args, default=str)]
            for name, value in vars(thing).items():
                texts.append(f"{name}={value!r}")
                if isinstance(value, pd.DataFrame):
                    texts += [value.to_string(), value.to_json()]
        elif isinstance(thing, pd.DataFrame):
            texts += [thing.to_string(), thing.to_json(), repr(thing)]
        else:
            texts += [str(thing), repr(thing)]
        for text in texts:
            found = leaks(text)
            assert not found, f"the key leaked in {where}: {type(thing).__name__}: ...{_around(text, found[0])}..."


def _around(text: str | bytes, fragment: str) -> str:
    s = text if isinstance(text, str) else text.decode("latin-1")
    i = s.find(fragment)
    return s[max(0, i - 80) : i + len(fragment) + 40]


class EchoServer(ScriptedServer):
    """A ScriptedServer that writes the request's own Authorization header wherever a reply says ``%AUTH%``."""

    def _next(self, request: RecordedRequest) -> Reply:
        reply = super()._next(request)
        auth = request.headers.get("authorization", "")
        if not auth:
            return reply
        headers = tuple((k, v.replace(AUTH, auth)) for k, v in reply.headers)
        body = reply.body.replace(AUTH.encode(), auth.encode())
        return Reply(reply.status, headers, body, reply.delay, reply.drop)


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[EchoServer, str]]:
    app = EchoServer()
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture
def server(echo: tuple[EchoServer, str]) -> Iterator[tuple[EchoServer, str]]:
    app, url = echo
    app.reset()
    yield app, url
    app.reset()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "INITIAL_BACKOFF", 0.002)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.formatter_ = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.formatter_.format(record))  # message, args and any traceback
        self.lines.append(repr(record.args))


#: Loggers that could see a request or an answer; the root logger gets DEBUG too, for anything else.
DEBUG_LOGGERS = ("stt_frames", "httpx", "httpcore", "aiohttp", "asyncio", "uvicorn", "h11", "urllib3")


@pytest.fixture
def debug_logs() -> Iterator[_Capture]:
    """Every log record of the test at DEBUG, formatted, with its traceback."""
    capture = _Capture()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in (*DEBUG_LOGGERS, "")}
    for name in (*DEBUG_LOGGERS, ""):
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def make_wav(path: Path, tone: int = 1) -> Path:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(bytes((i * 7 + tone) % 256 for i in range(3200)))
    path.write_bytes(buf.getvalue())
    return path


def files_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- every answer, echoed


def _retried(reply: Reply) -> tuple[Reply, ...]:
    fast = Reply(reply.status, (*reply.headers, ("retry-after-ms", "5")), reply.body, reply.delay, reply.drop)
    return (fast,) * 3


ECHO_META = {"authorization": AUTH, "nested": {"seen": [AUTH]}}
HTML_ECHO = f"<html><body><h1>Bad gateway</h1><pre>Authorization: {AUTH}</pre></body></html>".encode()


@dataclass(frozen=True)
class Case:
    replies: tuple[Reply, ...]
    exc: type[Exception] | None  # None: success
    client: tuple[tuple[str, Any], ...] = ()


CASES: dict[str, Case] = {
    "200-echo-in-extra-fields": Case(
        (Reply.json({"text": "hello", "usage": {"cost": 0.001, "seconds": 0.1}, "debug": {"headers": AUTH}}),), None
    ),
    "200-echo-in-a-header": Case((Reply.ok("hello", headers={"x-debug-authorization": AUTH}),), None),
    "400": Case((Reply.error(400, f"cannot decode; you sent {AUTH}", metadata=ECHO_META),), errors.BadRequestError),
    "401": Case(
        (Reply.error(401, f"invalid key: {AUTH}", metadata=ECHO_META, headers={"www-authenticate": AUTH}),),
        errors.AuthenticationError,
    ),
    "402": Case((Reply.error(402, f"no credits for {AUTH}", metadata=ECHO_META),), errors.PaymentRequiredError),
    "404": Case((Reply.error(404, f"no model for {AUTH}", metadata=ECHO_META),), errors.NotFoundError),
    "429-after-retries": Case(
        _retried(Reply.error(429, f"slow down {AUTH}", metadata=ECHO_META)), errors.RateLimitError
    ),
    "500-after-retries": Case(
        _retried(Reply.error(500, f"crash {AUTH}", metadata=ECHO_META)), errors.InternalServerError
    ),
    "502-html-after-retries": Case(_retried(Reply.raw(502, HTML_ECHO, "text/html")), errors.BadGatewayError),
    "503-text-after-retries": Case(
        _retried(Reply.raw(503, f"upstream refused {AUTH}".encode())), errors.ServiceUnavailableError
    ),
    "drop-after-retries": Case((Reply.dropped(),) * 3, errors.APIConnectionError),
    "timeout-after-retries": Case((Reply(delay=0.6),) * 3, errors.APITimeoutError, (("timeout", 0.15),)),
    "200-cut-json": Case(
        (Reply.raw(200, f'{{"echo": "{AUTH}", "text": "'.encode(), "application/json"),), errors.MalformedResponseError
    ),
    "200-html": Case((Reply.raw(200, HTML_ECHO, "text/html"),), errors.MalformedResponseError),
    "200-no-text": Case((Reply.json({"transcript": AUTH}),), errors.MalformedResponseError),
    "200-text-not-a-string": Case((Reply.json({"text": [AUTH]}),), errors.MalformedResponseError),
    "200-usage-wrong-type": Case((Reply.json({"text": "x", "usage": {"cost": AUTH}}),), errors.MalformedResponseError),
    "200-empty": Case((Reply.raw(200, b"", "application/json"),), errors.MalformedResponseError),
    "307-redirect": Case(
        (Reply.raw(307, AUTH.encode(), "text/plain", location=f"http://127.0.0.1:9/?key={AUTH}"),),
        errors.MalformedResponseError,
    ),
}


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("via", ["Client", "AsyncClient", "transcribe_column"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_key_is_in_nothing_the_user_sees_or_keeps(
    case: str, via: str, server: tuple[EchoServer, str], tmp_path: Path, debug_logs: _Capture
) -> None:
    app, url = server
    spec = CASES[case]
    app.script(*spec.replies)
    clip = make_wav(tmp_path / "clip.wav")
    options: dict[str, Any] = {"api_key": CANARY, "base_url": url, "max_retries": 2, **dict(spec.client)}
    raised: BaseException | None = None
    kept: list[Any] = []
    cache_files: dict[str, bytes] = {}
    if via == "Client":
        client = stt_frames.Client(**options)
        kept.append(client)
        try:
            kept.append(client.transcribe(clip, model="fake/echo"))
        except errors.STTError as exc:
            raised = exc
        finally:
            client.close()
    elif via == "AsyncClient":

        async def go() -> Any:
            async with stt_frames.AsyncClient(**options) as client:
                kept.append(client)
                return await client.transcribe(clip, model="fake/echo")

        try:
            kept.append(asyncio.run(go()))
        except errors.STTError as exc:
            raised = exc
    else:
        client = stt_frames.Client(**options)
        cache = Cache(tmp_path / "cache")  # kept open until the files are read, so -wal and -shm exist
        output = tmp_path / "out.parquet"
        try:
            out = stt_frames.transcribe_column(
                pd.DataFrame({"path": [str(clip)]}),
                model="fake/echo",
                client=client,
                cache=cache,
                output=output,
                progress=False,
            )
            kept += [out, output.read_bytes()]
            if spec.exc is not None:  # recorded in the error column
                assert out["error"].notna().all() and out["text"].isna().all()
        except errors.STTError as exc:
            raised = exc
        cache_files = files_bytes(tmp_path / "cache")
        cache.close()
        cache_files |= {f"{k} (closed)": v for k, v in files_bytes(tmp_path / "cache").items()}
        client.close()
    # the server really echoed the key back: this test would see a leak
    assert app.requests and all(r.headers.get("authorization") == f"Bearer {CANARY}" for r in app.requests)
    assert len(app.requests) == len(spec.replies)
    if raised is not None:
        assert spec.exc is not None and isinstance(raised, spec.exc), repr(raised)
    else:
        assert spec.exc is None or via == "transcribe_column", "no error where one was expected"
    assert_clean(f"{via} / {case}", *([raised] if raised else []), *kept)
    for name, data in cache_files.items():
        assert not leaks(data), f"the key is in the cache file {name}"
    assert {n.split(" ")[0] for n in cache_files} >= ({"cache.sqlite3"} if via == "transcribe_column" else set())
    assert debug_logs.lines, "no log record was captured: the log check would prove nothing"
    header_echo = any(AUTH in v for reply in spec.replies for _, v in reply.headers)
    for line in debug_logs.lines:
        if leaks(line) and header_echo and line.startswith(HTTPCORE_RESPONSE_HEADERS):
            continue  # third-party, reported: httpcore logs the server's response headers at DEBUG
        assert not leaks(line), f"the key is in a log record: {_around(line, leaks(line)[0])}"


#: httpcore (under the sync Client) logs every response header at DEBUG in this record. Request headers
#: (where the key always is) are not logged; a server that echoes the key in a response header gets it
#: logged. Not ours to fix: it needs DEBUG on httpcore and a server that echoes the key in a header.
HTTPCORE_RESPONSE_HEADERS = "httpcore.http11 DEBUG receive_response_headers.complete"
