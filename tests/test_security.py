"""The API key never leaks, the key is never sent where it must not go, and the key never changes the data.

A canary key runs through every path: success and every kind of error, from a server that ECHOES the
Authorization header back in its messages, metadata, HTML pages and headers. It must appear in no
exception, repr, result column, widget state, CLI output, Parquet file or log record (every logger at
DEBUG, httpcore's response headers included).

The policy for a key that the server echoes inside a 200 answer: the answer is data, and data is kept
byte for byte. Redacting it is not safe (a key "k" turned "weekdays" into "wee***days" and wiped
``total_tokens``; a key "x" renamed the field "text"), so the cache keeps the server's JSON as it came,
and a transcript that contains the key contains it. The key is redacted where stt_frames describes a
request: error messages, log records and reprs.

Then: plain http to a non-loopback host is refused before anything is sent (a trap server listening on
this machine's non-loopback address proves nothing arrived); the local server's own key check; and the
local server's body limit is enforced without buffering the body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ipywidgets
import pandas as pd
import pytest
from scripted_server import RecordedRequest, Reply, ScriptedServer, serve_in_thread

import stt_frames
import stt_frames.server
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
    "drop-after-retries": Case((Reply.dropped(),) * 2, errors.APIConnectionError),  # a lost answer: 2 sends at most
    "timeout-after-retries": Case((Reply(delay=0.6),) * 2, errors.APITimeoutError, (("timeout", 0.15),)),
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
    if case in KEY_IN_THE_ANSWER and via == "transcribe_column":  # data, kept as sent (see the module docstring)
        assert any(leaks(data) for data in cache_files.values()), "the cache does not hold the answer as it was sent"
    else:
        for name, data in cache_files.items():
            assert not leaks(data), f"the key is in the cache file {name}"
    assert {n.split(" ")[0] for n in cache_files} >= ({"cache.sqlite3"} if via == "transcribe_column" else set())
    assert debug_logs.lines, "no log record was captured: the log check would prove nothing"
    for line in debug_logs.lines:
        assert not leaks(line), f"the key is in a log record: {_around(line, leaks(line)[0])}"


#: Successes whose JSON body holds the key (outside text and usage): the cache keeps that body byte for byte.
KEY_IN_THE_ANSWER = frozenset({"200-echo-in-extra-fields"})

#: httpcore (under the sync Client) logs every response header at DEBUG in this record; a server that
#: echoes the key in a response header has it redacted there (stt_frames filters httpcore's loggers).
HTTPCORE_RESPONSE_HEADERS = "httpcore.http11 DEBUG receive_response_headers.complete"


# --------------------------------------------------------------------------- the widget and the CLI


def walk(widget: ipywidgets.Widget, seen: set[str] | None = None) -> Iterator[ipywidgets.Widget]:
    """The widget and every widget reachable from its traits (children, layout, style ...)."""
    seen = set() if seen is None else seen
    if widget.model_id in seen:
        return
    seen.add(widget.model_id)
    yield widget
    for name in widget.keys:
        value = getattr(widget, name)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, ipywidgets.Widget):
                yield from walk(item, seen)


def widget_state(widget: ipywidgets.Widget) -> tuple[int, str]:
    """How many widgets were walked, and everything the front end would be sent, as one string."""
    parts = []
    for w in walk(widget):
        parts.append(json.dumps(w.get_state(), default=lambda v: bytes(v).decode("latin-1")))
        parts.append(repr(w))
    return len(parts) // 2, "\n".join(parts)


#: What the widget meets, in turn (the widget's own client retries 5 times: retried replies come 6 times).
WIDGET_CASES = ("200-echo-in-extra-fields", "400", "401", "500-after-retries", "502-html-after-retries",
                "200-cut-json", "200-no-text", "200-html")  # fmt: skip


@pytest.mark.parametrize("key_from", ["argument", "environment"])
def test_the_widget_never_holds_the_key(
    key_from: str, server: tuple[EchoServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debug_logs: _Capture
) -> None:
    app, url = server
    options: dict[str, Any] = {"api_key": CANARY} if key_from == "argument" else {}
    if key_from == "environment":
        monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    w = stt_frames.TranscribeWidget(
        base_url=url, models=["fake/echo"], model="fake/echo", cache=tmp_path / "cache", data_dir=tmp_path, **options
    )
    try:
        for i, case in enumerate(WIDGET_CASES):
            replies = CASES[case].replies
            app.script(*(replies * 2 if len(replies) > 1 else replies))
            w.path.value = str(make_wav(tmp_path / f"clip{i}.wav", tone=i))
            rows = w.transcribe_now()
            assert (rows["error"].notna() == (CASES[case].exc is not None)).all(), (case, rows["error"].tolist())
            walked, state = widget_state(w)
            assert walked > 20  # the walk reached every child, layout and style
            assert_clean(f"widget state after {case}", state, rows, w.results, w)
        assert app.requests and all(r.headers["authorization"] == f"Bearer {CANARY}" for r in app.requests)
        assert_clean("widget's client", w._client, w._client.settings)
    finally:
        w.close()
    for line in debug_logs.lines:
        assert not leaks(line), f"the key is in a log record: {_around(line, leaks(line)[0])}"


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("stt-frames")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "stt_frames.cli"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    return env | {"OPENROUTER_API_KEY": CANARY, "STT_FRAMES_CACHE_DIR": str(tmp_path / "env-cache")} | extra


#: One row each, sent in this order (--concurrency 1); the CLI's client retries 5 times.
CLI_ROWS = ("200-echo-in-extra-fields", "400", "429-after-retries", "502-html-after-retries", "503-text-after-retries",
            "200-cut-json", "200-html", "200-no-text", "200-usage-wrong-type", "200-empty")  # fmt: skip


def test_the_cli_never_prints_or_writes_the_key(server: tuple[EchoServer, str], tmp_path: Path) -> None:
    app, url = server
    for case in CLI_ROWS:
        replies = CASES[case].replies
        app.script(*(replies * 2 if len(replies) > 1 else replies))
    clips = [str(make_wav(tmp_path / f"clip{i}.wav", tone=i)) for i in range(len(CLI_ROWS))]
    table = tmp_path / "in.csv"
    pd.DataFrame({"path": clips}).to_csv(table, index=False)
    out, cache = tmp_path / "out.parquet", tmp_path / "cache"
    args = ("transcribe", str(table), "--model", "fake/echo", "--base-url", url, "--concurrency", "1")
    done = cli(*args, "--cache-dir", str(cache), "-o", str(out), env=cli_env(tmp_path))
    assert done.returncode == 1, done.stderr[-2000:]  # finished, some rows failed
    assert "Bearer ***" in done.stderr  # the echoed key reached the summary, redacted
    assert app.pending == 0 and all(r.headers["authorization"] == f"Bearer {CANARY}" for r in app.requests)
    result = stt_frames.read_results(out)
    assert result["error"].notna().sum() == len(CLI_ROWS) - 1 and result["text"].notna().sum() == 1
    assert_clean("stt-frames transcribe", done.stdout, done.stderr, result, out.read_bytes())
    with contextlib.closing(sqlite3.connect(cache / "cache.sqlite3")) as db:
        stored = [json.loads(r) for (r,) in db.execute("SELECT response FROM responses")]
    assert stored == [
        json.loads(CASES[CLI_ROWS[0]].replies[0].body.replace(AUTH.encode(), f"Bearer {CANARY}".encode()))
    ]
    # a rejected key stops the run (exit 3); the message says what to do and still not the key
    app.reset()
    app.script(*CASES["401"].replies)
    refused = cli(*args, "--no-cache", "-o", str(tmp_path / "refused.parquet"), env=cli_env(tmp_path))
    assert refused.returncode == 3 and "OPENROUTER_API_KEY" in refused.stderr, refused.stderr[-2000:]
    assert_clean("stt-frames transcribe (401)", refused.stdout, refused.stderr)


# --------------------------------------------------------------------------- a key never changes the data

#: One letter, a word of the fake engine's own answer, an English word, and a real-shaped key: none may
#: change a byte of what the server sent ("k" once turned "weekdays" into "wee***days" and wiped
#: total_tokens; "x" turned the field "text" into "te***t", so every row failed).
DATA_KEYS = ("x", "k", "echo", "the", "sk-or-v1-" + secrets.token_hex(32))
#: Every key above occurs in this transcript, and in the names of the usage fields.
TRICKY_TEXT = "the weekdays: x marks the spot, k is for kilo, echo echo"
TRICKY_USAGE = {"cost": 0.00042, "seconds": 2.5, "input_tokens": 25, "output_tokens": 14, "total_tokens": 39}


def _sent(url: str, key: str, clip: Path) -> dict[str, Any]:
    """The 200 answer exactly as the server sends it, fetched with plain httpx (not our HTTP layer)."""
    body = {
        "model": "fake/echo",
        "input_audio": {"data": base64.b64encode(clip.read_bytes()).decode(), "format": "wav"},
    }
    reply = httpx.post(f"{url}/audio/transcriptions", json=body, headers={"authorization": f"Bearer {key}"})
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def _usage(t: stt_frames.Transcription) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(t.usage).items() if v is not None}


@pytest.mark.parametrize("server_kind", ["local-server", "scripted"])
@pytest.mark.parametrize("key", DATA_KEYS, ids=["x", "k", "echo", "the", "real-shaped"])
def test_a_key_of_any_length_never_changes_text_or_usage(
    key: str, server_kind: str, local_server: Callable[..., str], tmp_path: Path
) -> None:
    clip = make_wav(tmp_path / "clip.wav")
    running: contextlib.AbstractContextManager[str]
    if server_kind == "local-server":
        running = contextlib.nullcontext(local_server(api_key=key))  # the local server checks the key
    else:
        app = ScriptedServer()
        app.script(*[Reply.ok(TRICKY_TEXT, usage=TRICKY_USAGE)] * 5)
        running = serve_in_thread(app)
    with running as url:
        sent = _sent(url, key, clip)
        if server_kind == "scripted":
            assert sent == {"text": TRICKY_TEXT, "usage": TRICKY_USAGE}
        else:
            assert key not in ("x", "k", "echo") or key in json.dumps(sent)  # the key really is in the answer
        expected_usage = {k: v for k, v in sent["usage"].items() if v is not None}
        with stt_frames.Client(api_key=key, base_url=url) as client:
            t = client.transcribe(clip, model="fake/echo")
            assert (t.text, _usage(t), t.raw) == (sent["text"], expected_usage, sent)

            async def go() -> stt_frames.Transcription:
                async with stt_frames.AsyncClient(api_key=key, base_url=url) as aclient:
                    return await aclient.transcribe(clip, model="fake/echo")

            t = asyncio.run(go())
            assert (t.text, _usage(t), t.raw) == (sent["text"], expected_usage, sent)

            frame = pd.DataFrame({"path": [str(clip)]})
            runs = []
            for i in range(2):  # sent, then from the cache
                out = stt_frames.transcribe_column(
                    frame, model="fake/echo", client=client, cache=tmp_path / "cache", output=tmp_path / f"{i}.pq",
                    progress=False,
                )  # fmt: skip
                runs += [out, stt_frames.read_results(tmp_path / f"{i}.pq")]
            assert [bool(r["cached"].iloc[0]) for r in runs] == [False, False, True, True]
        for out in runs:
            row = out.iloc[0]
            assert pd.isna(row["error"]), row["error"]
            assert row["text"] == sent["text"]
            for name, value in sent["usage"].items():
                assert row[name] == value, (name, row[name], value)
    with contextlib.closing(sqlite3.connect(tmp_path / "cache" / "cache.sqlite3")) as db:
        stored = [json.loads(r) for (r,) in db.execute("SELECT response FROM responses")]
    assert stored == [sent]  # the cache keeps the answer as sent


def test_an_error_message_quotes_the_server_without_the_key_but_keeps_our_words(
    server: tuple[EchoServer, str], tmp_path: Path
) -> None:
    """Redaction belongs in messages: the server's words lose the key; ours ("text", "proxy") stay whole."""
    app, url = server
    clip = make_wav(tmp_path / "clip.wav")
    app.script(
        Reply.json({"transcript": "x marks the spot"}),
        Reply.error(400, "bad request from key x", metadata={"you_sent": "x", "n": 1}),
        Reply.raw(502, HTML_ECHO, "text/html"),
        Reply.json({"text": "fine", "usage": {"total_tokens": "x"}}),
    )
    with stt_frames.Client(api_key="x", base_url=url, max_retries=0) as client:
        with pytest.raises(errors.MalformedResponseError) as no_text:
            client.transcribe(clip, model="fake/echo")
        with pytest.raises(errors.BadRequestError) as bad:
            client.transcribe(clip, model="fake/echo")
        with pytest.raises(errors.BadGatewayError) as gateway:
            client.transcribe(clip, model="fake/echo")
        with pytest.raises(errors.MalformedResponseError) as usage:
            client.transcribe(clip, model="fake/echo")
    assert str(no_text.value) == "200: malformed answer: the JSON answer has no 'text' field (keys: transcript)"
    assert bad.value.message == "bad request from key ***" and bad.value.metadata == {"you_sent": "***", "n": 1}
    assert "HTML page instead of JSON (a proxy or gateway failed)" in str(gateway.value)
    assert str(usage.value) == "200: malformed answer: usage.total_tokens should be a number, got str: '***'"


def test_httpcore_debug_logs_never_hold_the_key(
    server: tuple[EchoServer, str], tmp_path: Path, debug_logs: _Capture
) -> None:
    """httpcore logs every response header at DEBUG: a server that echoes the key in a header is redacted there."""
    app, url = server
    app.script(Reply.ok("hello", headers={"x-debug-authorization": AUTH}))
    with stt_frames.Client(api_key=CANARY, base_url=url) as client:
        assert client.transcribe(make_wav(tmp_path / "c.wav"), model="fake/echo").text == "hello"
    headers = [line for line in debug_logs.lines if line.startswith(HTTPCORE_RESPONSE_HEADERS)]
    assert headers and "Bearer ***" in headers[0]  # the echoed header was logged, redacted
    for line in debug_logs.lines:
        assert not leaks(line), f"the key is in a log record: {_around(line, leaks(line)[0])}"


# --------------------------------------------------------------------------- plain http to another host


def non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # TEST-NET-1: routing only
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith(("127.", "0.")) else address


@pytest.fixture(scope="module")
def trap() -> Iterator[tuple[ScriptedServer, str]]:
    """A server on every interface, reached through this machine's non-loopback address: a key sent over
    plain http to a "remote" host would arrive here."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    app = ScriptedServer()
    with serve_in_thread(app, host="0.0.0.0") as url:  # noqa: S104 - on purpose: reached via the machine's address
        yield app, f"http://{address}:{httpx.URL(url).port}/api/v1"


@pytest.fixture
def trap_url(trap: tuple[ScriptedServer, str]) -> Iterator[str]:
    app, url = trap
    app.reset()
    yield url
    assert app.requests == [], f"{len(app.requests)} request(s) reached the non-loopback host"


def test_the_trap_is_reachable_without_a_key(trap: tuple[ScriptedServer, str], tmp_path: Path) -> None:
    """Without a key, plain http anywhere is allowed: the request arrives, so the refusals below mean something."""
    app, url = trap
    app.reset()
    with stt_frames.Client(api_key=None, base_url=url) as client:
        assert client.transcribe(make_wav(tmp_path / "c.wav"), model="fake/echo").text == "hello world"
    assert len(app.requests) == 1 and "authorization" not in app.requests[0].headers
    app.reset()


REFUSAL = "refusing to send the API key over plain http"


def _refused(exc: BaseException) -> None:
    assert isinstance(exc, errors.InsecureTransportError) and REFUSAL in str(exc), repr(exc)
    assert_clean("the refusal", exc)


def test_client_and_async_client_refuse(trap_url: str) -> None:
    for factory in (stt_frames.Client, stt_frames.AsyncClient):
        with pytest.raises(errors.InsecureTransportError) as info:
            factory(api_key=CANARY, base_url=trap_url)
        _refused(info.value)


def test_transcribe_column_refuses_with_settings_from_the_environment(
    trap_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", trap_url)
    df = pd.DataFrame({"path": [str(make_wav(tmp_path / "c.wav"))]})
    with pytest.raises(errors.InsecureTransportError) as info:
        stt_frames.transcribe_column(df, model="fake/echo", progress=False)
    _refused(info.value)

    async def in_a_loop() -> None:
        await stt_frames.atranscribe_column(df, model="fake/echo", progress=False)

    with pytest.raises(errors.InsecureTransportError) as info:
        asyncio.run(in_a_loop())
    _refused(info.value)


@pytest.mark.parametrize("where", ["--base-url", "OPENROUTER_BASE_URL"])
def test_the_cli_refuses(where: str, trap_url: str, tmp_path: Path) -> None:
    table = tmp_path / "in.csv"
    pd.DataFrame({"path": [str(make_wav(tmp_path / "c.wav"))]}).to_csv(table, index=False)
    args = ["transcribe", str(table), "--model", "fake/echo", "-o", str(tmp_path / "o.parquet")]
    env = cli_env(tmp_path)
    if where == "--base-url":
        args += ["--base-url", trap_url]
    else:
        env["OPENROUTER_BASE_URL"] = trap_url
    done = cli(*args, env=env)
    assert done.returncode == 2 and REFUSAL in done.stderr, (done.returncode, done.stderr[-2000:])
    assert_clean("stt-frames (refused)", done.stdout, done.stderr)
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("key_from", ["argument", "environment"])
def test_the_widget_refuses(key_from: str, trap_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", trap_url)
    options: dict[str, Any] = {"api_key": CANARY} if key_from == "argument" else {}
    if key_from == "environment":
        monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    with pytest.raises(errors.InsecureTransportError) as info:
        stt_frames.TranscribeWidget(models=["fake/echo"], **options)
    _refused(info.value)
    with pytest.raises(errors.InsecureTransportError):
        stt_frames.try_file(base_url=trap_url, api_key=CANARY, models=["fake/echo"])


#: URLs that could confuse one URL parser or another. Each is refused, or httpx (which sends the
#: request) connects to a loopback host too.
TRICKY_URLS = [
    "http://127.0.0.1@evil.example/", "http://127.0.0.1:80@evil.example/", "http://evil.example#@127.0.0.1/",
    "http://evil.example?@127.0.0.1/", "http://127.0.0.1\\@evil.example/", "http://evil.example\\@127.0.0.1/",
    "http://127.0.0.1%2f@evil.example/", "http://127.0.0.1 @evil.example/", "http://localhost.evil.example/",
    "http://localhost./", "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/", "http://evil.example\t@127.0.0.1/", "HTTP://EVIL.EXAMPLE/",
]  # fmt: skip


@pytest.mark.parametrize("url", TRICKY_URLS)
def test_tricky_urls_never_send_the_key_to_another_host(url: str) -> None:
    try:
        client = stt_frames.Client(api_key=CANARY, base_url=url)
    except errors.InsecureTransportError as exc:
        _refused(exc)
        return
    except (ValueError, httpx.InvalidURL):
        return  # not a URL at all: refused before anything is sent
    with client:
        host = client._endpoint.host
        assert stt_frames._settings.is_loopback(host), f"{url!r}: accepted, but httpx would connect to {host!r}"


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
@pytest.mark.parametrize("via", ["Client", "transcribe_column", "TranscribeWidget"])
def test_a_proxy_in_the_environment_never_gets_the_key_for_a_loopback_server(
    variable: str,
    via: str,
    trap: tuple[ScriptedServer, str],
    server: tuple[EchoServer, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key may go over plain http to a loopback server only; an http proxy from the environment
    (on a non-loopback host) must not be used for it, or the key travels in clear to the proxy."""
    trap_app, trap_url = trap
    trap_app.reset()
    proxy = trap_url.removesuffix("/api/v1")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, proxy)
    app, url = server
    clip = make_wav(tmp_path / "c.wav")
    if via == "Client":
        with stt_frames.Client(api_key=CANARY, base_url=url) as client:
            client.transcribe(clip, model="fake/echo")
    elif via == "transcribe_column":
        client = stt_frames.Client(api_key=CANARY, base_url=url)
        out = stt_frames.transcribe_column(
            pd.DataFrame({"path": [str(clip)]}), model="fake/echo", client=client, progress=False, cache=False
        )
        assert out["error"].isna().all(), out["error"].tolist()
    else:
        w = stt_frames.TranscribeWidget(api_key=CANARY, base_url=url, models=["fake/echo"], path=str(clip))
        assert w.transcribe_now()["error"].isna().all()
        w.close()
    leaked = [r for r in trap_app.requests if CANARY in r.headers.get("authorization", "")]
    trap_app.reset()
    assert not leaked, f"the key went in clear to the proxy {proxy} ({leaked[0].method} {leaked[0].path})"
    assert len(app.requests) == 1  # it went straight to the loopback server


# --------------------------------------------------------------------------- the local server's own guards

SERVER_KEY = "sk-or-v1-canary-server-" + secrets.token_hex(16)
BODY_LIMIT = 1_000_000


def _children_running(fragment: bytes) -> list[int]:
    """Pids of this process's children whose command line contains ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == os.getpid() and fragment in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@pytest.fixture(scope="module")
def guarded(local_server: Callable[..., str]) -> tuple[str, int]:
    """The local server in its own process, with a key and a 1 MB body limit; (base URL, pid)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to find the server process and read its memory")
    url = local_server(api_key=SERVER_KEY, max_body_bytes=BODY_LIMIT, process=True)
    pids = _children_running(f"--max-body-bytes={BODY_LIMIT}".encode())  # other servers of the session aside
    assert len(pids) == 1, pids
    return url, pids[0]


def test_the_server_key_is_not_on_the_server_command_line(guarded: tuple[str, int]) -> None:
    _, pid = guarded
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"stt_frames.cli\x00serve\x00" in cmdline and b"--max-body-bytes=1000000" in cmdline
    assert SERVER_KEY.encode() not in cmdline  # `ps` shows argv to every user; the key goes in the environment


def _body(tmp_path: Path) -> bytes:
    import base64

    data = make_wav(tmp_path / "c.wav").read_bytes()
    payload = {"model": "fake/echo", "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {CANARY}",  # another key
        f"Bearer {SERVER_KEY[:-1]}",  # a prefix of the right one
        f"Bearer {SERVER_KEY}x",  # the right one and more
        f"Bearer {SERVER_KEY.upper()}",
        SERVER_KEY,  # no scheme
        f"Basic {SERVER_KEY}",
        "Bearer",
        f"Bearer {SERVER_KEY} {SERVER_KEY}",
    ],
    ids=["missing", "wrong", "prefix", "longer", "upper", "no-scheme", "basic", "empty", "twice"],
)
def test_the_local_server_rejects_a_missing_or_wrong_key(
    authorization: str | None, guarded: tuple[str, int], tmp_path: Path
) -> None:
    url, _ = guarded
    headers = {"content-type": "application/json"} | ({"authorization": authorization} if authorization else {})
    before = stt_frames.server.get_stats(url, api_key=SERVER_KEY)["total_billed"]
    r = httpx.post(f"{url}/audio/transcriptions", content=_body(tmp_path), headers=headers, timeout=10)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == 401 and ("missing" if authorization is None else "invalid") in error["message"]
    answer = r.text + json.dumps(dict(r.headers))
    assert SERVER_KEY[-20:] not in answer and CANARY[-20:] not in answer  # the answer echoes no key
    assert httpx.get(f"{url}/_stats", headers=headers, timeout=10).status_code == 401  # the accounting too
    assert stt_frames.server.get_stats(url, api_key=SERVER_KEY)["total_billed"] == before  # nothing billed


def test_the_local_server_accepts_the_right_key(guarded: tuple[str, int], tmp_path: Path) -> None:
    url, _ = guarded
    with stt_frames.Client(api_key=SERVER_KEY, base_url=url) as client:
        assert client.transcribe(make_wav(tmp_path / "c.wav"), model="fake/echo").text.startswith("echo ")


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_body_over_the_limit_is_refused_without_buffering_it(declared: bool, guarded: tuple[str, int]) -> None:
    """50 MB streamed at a server with a 1 MB limit: a 413 arrives while the client is still sending, and the
    server's peak memory does not grow by anything like the body."""
    url, pid = guarded
    size, chunk = 50_000_000, b"x" * 65_536
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        while sent < size:
            sent += len(chunk)
            yield chunk

    headers = {"authorization": f"Bearer {SERVER_KEY}", "content-type": "application/json"}
    if declared:
        headers["content-length"] = str(size)
    peak_before = _memory_kb(pid, "VmHWM")
    started = time.monotonic()
    r = httpx.post(f"{url}/audio/transcriptions", content=body(), headers=headers, timeout=30)
    elapsed = time.monotonic() - started
    growth_mb = (_memory_kb(pid, "VmHWM") - peak_before) / 1024
    print(f"413 after {elapsed:.3f}s, {sent / 1e6:.1f} MB of {size / 1e6:.0f} MB sent, server peak +{growth_mb:.1f} MB")
    assert r.status_code == 413 and f"limit of {BODY_LIMIT} bytes" in r.json()["error"]["message"]
    assert sent < size / 5, f"the client sent {sent} bytes: the server read on past its limit"
    assert elapsed < 5
    assert growth_mb < 16, f"the server's peak memory grew by {growth_mb:.1f} MB"
