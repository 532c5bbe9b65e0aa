"""Client and AsyncClient against a real HTTP server: request shape, settings, errors, retries, secrets.

The server is ``scripted_server.ScriptedServer``: over loopback with uvicorn (``Client``, and ``AsyncClient``
with its default aiohttp transport) and in-process through ``httpx.ASGITransport`` (``AsyncClient``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import traceback
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripted_server import Reply, ScriptedServer, serve_in_thread

from stt_frames import errors, retry
from stt_frames._http import build_body
from stt_frames._settings import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, Settings, resolve_settings
from stt_frames.audio import AudioInput, prepare_audio
from stt_frames.client import AsyncClient, Client
from stt_frames.types import Transcription

KEY = "sk-or-canary-123456"
ROOT = Path(__file__).resolve().parent.parent
CONTRACT_CANDIDATES = (
    ROOT / "openrouter-stt-openapi.yaml",
    ROOT / "docs" / "openrouter-stt-openapi.yaml",
    Path("/work/shared/openrouter-stt-openapi.yaml"),
)

#: STTRequest and STTInputAudio as the contract defines them (provider slugs elided: every one is an
#: optional object). Used when the contract file is not on this machine; compared with it when it is.
STT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "input_audio": {
            "type": "object",
            "properties": {"data": {"type": "string"}, "format": {"type": "string"}},
            "required": ["data", "format"],
        },
        "language": {"type": "string"},
        "model": {"type": "string"},
        "provider": {"type": "object", "properties": {"options": {"type": "object"}}},
        "temperature": {"type": "number"},
    },
    "required": ["input_audio", "model"],
}

KINDS = ("sync", "async", "asgi")


# --------------------------------------------------------------------------- fixtures and helpers


@dataclass
class Server:
    app: ScriptedServer
    url: str

    @property
    def requests(self) -> list[Any]:
        return self.app.requests


@pytest.fixture(scope="module")
def _live() -> Iterator[Server]:
    app = ScriptedServer()
    with serve_in_thread(app) as url:
        yield Server(app, url)


@pytest.fixture
def server(_live: Server) -> Iterator[Server]:
    _live.app.reset()
    yield _live
    _live.app.reset()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of a few milliseconds, so retry counts can be tested quickly (the formula is tested below)."""
    monkeypatch.setattr(retry, "INITIAL_BACKOFF", 0.002)


def make_wav(seconds: float = 0.1, rate: int = 16000, tone: int = 0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes((i * 7 + tone) % 256 for i in range(int(seconds * rate) * 2)))
    return buf.getvalue()


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    p = tmp_path / "clip.wav"
    p.write_bytes(make_wav(tone=3))
    return p


def call(kind: str, server: Server, audio: Any, *, client: dict[str, Any] | None = None, **kw: Any) -> Transcription:
    """One transcription through the client of ``kind``: sync, async over loopback, or async in-process."""
    opts: dict[str, Any] = {"api_key": KEY, "base_url": server.url, "max_retries": 0, **(client or {})}
    kw.setdefault("model", "openai/whisper-1")
    if kind == "sync":
        with Client(**opts) as c:
            return c.transcribe(audio, **kw)

    async def go() -> Transcription:
        transport = httpx.ASGITransport(server.app) if kind == "asgi" else None
        async with AsyncClient(transport=transport, **opts) as c:
            return await c.transcribe(audio, **kw)

    return asyncio.run(go())


def raises(kind: str, server: Server, exc: type[BaseException], audio: Any, **kw: Any) -> Any:
    with pytest.raises(exc) as info:
        call(kind, server, audio, **kw)
    return info.value


def contract() -> dict[str, Any] | None:
    yaml = pytest.importorskip("yaml")
    for path in CONTRACT_CANDIDATES:
        if path.is_file():
            return yaml.safe_load(path.read_text())
    return None


# --------------------------------------------------------------------------- the request


@pytest.mark.parametrize("kind", KINDS)
def test_request_matches_contract(kind: str, server: Server, wav_file: Path) -> None:
    out = call(
        kind,
        server,
        wav_file,
        client={"http_referer": "https://example.org/app", "x_title": "stt_frames tests"},
        model="openai/whisper-large-v3",
        language="en",
        temperature=0.2,
        provider_options={"openai": {"prompt": "names: Ada"}},
        extra_body={"response_format": "verbose_json", "keyterms": ["Ada"]},
    )
    assert out.text == "hello world"
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req.method == "POST"
    assert req.path == "/api/v1/audio/transcriptions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["http-referer"] == "https://example.org/app"
    assert req.headers["x-title"] == "stt_frames tests"
    body = req.json
    assert body == {
        "model": "openai/whisper-large-v3",
        "input_audio": {"data": base64.b64encode(wav_file.read_bytes()).decode(), "format": "wav"},
        "language": "en",
        "temperature": 0.2,
        "provider": {"options": {"openai": {"prompt": "names: Ada"}}},
        "response_format": "verbose_json",
        "keyterms": ["Ada"],
    }
    assert base64.b64decode(body["input_audio"]["data"], validate=True) == wav_file.read_bytes()
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(body, STT_REQUEST_SCHEMA)


def test_request_validates_against_the_contract_file(server: Server, wav_file: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spec = contract()
    if spec is None:
        pytest.skip("the contract yaml is not on this machine; the embedded copy of STTRequest is used elsewhere")
    call("sync", server, wav_file, language="de", temperature=0, provider_options={"groq": {"x": 1}})
    schema = {"$ref": "#/components/schemas/STTRequest", "components": spec["components"]}
    jsonschema.validate(server.requests[0].json, schema)
    # A body that breaks the contract must fail, or this check proves nothing.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": "m", "input_audio": {"data": "AA=="}}, schema)
    # The embedded copy says what the file says.
    req = spec["components"]["schemas"]["STTRequest"]
    audio = spec["components"]["schemas"]["STTInputAudio"]
    assert sorted(req["required"]) == sorted(STT_REQUEST_SCHEMA["required"])
    assert sorted(req["properties"]) == sorted(STT_REQUEST_SCHEMA["properties"])
    assert sorted(audio["required"]) == sorted(STT_REQUEST_SCHEMA["properties"]["input_audio"]["required"])


@pytest.mark.parametrize("kind", KINDS)
def test_minimal_request_sends_only_what_was_given(kind: str, server: Server) -> None:
    flac = b"fLaC\x00\x00\x00\x22" + bytes(64)
    call(kind, server, flac, client={"api_key": None})
    req = server.requests[0]
    assert req.json == {
        "model": "openai/whisper-1",
        "input_audio": {"data": base64.b64encode(flac).decode(), "format": "flac"},
    }
    for header in ("authorization", "http-referer", "x-title"):
        assert header not in req.headers


def test_extra_body_wins_over_built_fields(server: Server, wav_file: Path) -> None:
    call("sync", server, wav_file, language="en", extra_body={"language": "fr"})
    assert server.requests[0].json["language"] == "fr"


def _reference_body(clip: AudioInput, **kw: Any) -> bytes:
    """The request body the obvious way: one json.dumps of the whole thing."""
    body: dict[str, Any] = {
        "model": kw["model"],
        "input_audio": {"data": base64.b64encode(clip.data).decode(), "format": clip.format},
    }
    for name in ("language", "temperature"):
        if kw.get(name) is not None:
            body[name] = kw[name]
    if kw.get("provider_options"):
        body["provider"] = {"options": kw["provider_options"]}
    body.update(kw.get("extra_body") or {})
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"language": "en", "temperature": 0.5, "provider_options": {"openai": {"prompt": 'é "q" \u2028'}}},
        {"extra_body": {"input_audio": {"url": "https://example.org/a.mp3", "format": "mp3"}}},
        {"extra_body": {"model": "override", "diarize": True}},
        {"language": "\x00stt-frames-audio\x00"},  # the internal placeholder, given as input
        {"extra_body": {"input_audio": {"data": "\x00stt-frames-audio\x00", "format": "wav"}}},
    ],
    ids=["minimal", "all-fields", "extra-replaces-audio", "extra-overrides", "placeholder-in", "placeholder-audio"],
)
def test_build_body_is_plain_json(kw: dict[str, Any]) -> None:
    clip = prepare_audio(make_wav(0.05, tone=5))
    built = build_body(clip, model="openai/whisper-1", **kw)
    assert built == _reference_body(clip, model="openai/whisper-1", **kw)
    json.loads(built)


@pytest.mark.parametrize("model", ["", "   ", None, 3])
def test_bad_model_is_refused_before_sending(server: Server, wav_file: Path, model: Any) -> None:
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        call("sync", server, wav_file, model=model)
    assert server.requests == []


def test_audio_error_is_raised_before_sending(server: Server, tmp_path: Path) -> None:
    with pytest.raises(errors.AudioError, match="file not found"):
        call("sync", server, tmp_path / "missing.wav")
    assert server.requests == []


def test_many_concurrent_requests_on_one_async_client(server: Server) -> None:
    clips = [make_wav(0.02, tone=i) for i in range(40)]

    async def go() -> list[Transcription]:
        sem = asyncio.Semaphore(16)
        async with AsyncClient(api_key=KEY, base_url=server.url) as c:

            async def one(clip: bytes) -> Transcription:
                async with sem:
                    return await c.transcribe(clip, model="m")

            return await asyncio.gather(*(one(c) for c in clips))

    out = asyncio.run(go())
    assert [t.text for t in out] == ["hello world"] * 40
    sent = sorted(r.json["input_audio"]["data"] for r in server.requests)
    assert sent == sorted(base64.b64encode(c).decode() for c in clips)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_list_models(kind: str, server: Server) -> None:
    server.app.script(Reply.json({"data": [{"id": "openai/whisper-1"}, "junk", {"id": "google/chirp-3"}]}))
    if kind == "sync":
        with Client(api_key=KEY, base_url=server.url) as c:
            models = c.list_models()
    else:

        async def go() -> list[dict[str, Any]]:
            async with AsyncClient(api_key=KEY, base_url=server.url) as c:
                return await c.list_models()

        models = asyncio.run(go())
    assert [m["id"] for m in models] == ["openai/whisper-1", "google/chirp-3"]
    req = server.requests[0]
    assert (req.method, req.path, req.query) == ("GET", "/api/v1/models", "output_modalities=transcription")
    server.app.script(Reply.json({"models": []}))
    with Client(api_key=KEY, base_url=server.url) as c, pytest.raises(errors.MalformedResponseError, match="data"):
        c.list_models()


# --------------------------------------------------------------------------- settings


def test_key_from_environment(server: Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    with Client(base_url=server.url) as c:
        c.transcribe(wav_file, model="m")
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_key_argument_beats_environment(server: Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-from-env")
    with Client(base_url=server.url, api_key=KEY) as c:
        c.transcribe(wav_file, model="m")
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("kind", KINDS)
def test_api_key_none_sends_no_authorization(
    kind: str, server: Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    call(kind, server, wav_file, client={"api_key": None})
    assert "authorization" not in server.requests[0].headers


def test_blank_key_counts_as_none(server: Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "  ")
    with Client(base_url=server.url) as c:
        assert c.settings.api_key is None
        c.transcribe(wav_file, model="m")
    assert "authorization" not in server.requests[0].headers


def test_base_url_from_environment(server: Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", server.url + "/")
    with Client(api_key=KEY) as c:
        assert c.base_url == server.url
        c.transcribe(wav_file, model="m")
    assert len(server.requests) == 1


def test_base_url_argument_beats_environment(server: Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/nowhere")
    with Client(api_key=KEY, base_url=server.url) as c:
        c.transcribe(wav_file, model="m")
    assert len(server.requests) == 1


def test_defaults() -> None:
    with Client() as c:
        assert c.base_url == DEFAULT_BASE_URL == "https://openrouter.ai/api/v1"
        assert c.settings.endpoint == "https://openrouter.ai/api/v1/audio/transcriptions"
        assert c.settings.api_key is None
        assert c.settings.max_retries == DEFAULT_MAX_RETRIES
        assert c.settings.timeout.read >= 300  # long audio must not time out and be billed twice
    assert "authorization" not in {k.lower() for k in resolve_settings().headers()}


@pytest.mark.parametrize("url", ["ftp://example.com/api", "openrouter.ai/api/v1", "http://"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ValueError, match="base_url must be an http"):
        Client(base_url=url)


def test_negative_max_retries() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        Client(max_retries=-1)


# --------------------------------------------------------------------------- error statuses

STATUSES = [
    (400, errors.BadRequestError, "check the audio file"),
    (401, errors.AuthenticationError, "check OPENROUTER_API_KEY"),
    (402, errors.PaymentRequiredError, "add credits"),
    (404, errors.NotFoundError, "check the model id"),
    (408, errors.RequestTimeoutError, "retry later"),
    (429, errors.RateLimitError, "lower concurrency"),
    (500, errors.InternalServerError, "retry later"),
    (502, errors.BadGatewayError, "upstream provider failed"),
    (503, errors.ServiceUnavailableError, "temporarily unavailable"),
    (520, errors.InternalServerError, "retry later"),
    (418, errors.APIStatusError, "see the message"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "cls", "hint"), STATUSES, ids=[str(s[0]) for s in STATUSES])
def test_status_maps_to_exception(
    kind: str, server: Server, wav_file: Path, status: int, cls: type[errors.APIStatusError], hint: str
) -> None:
    meta = {"provider_name": "Groq", "raw": {"detail": "x"}}
    server.app.script(Reply.error(status, f"the {status} message", code=status, metadata=meta))
    err = raises(kind, server, cls, wav_file)
    assert type(err) is cls
    assert isinstance(err, errors.APIStatusError)
    assert isinstance(err, errors.STTError)
    assert err.status == status
    assert err.code == status
    assert err.message == f"the {status} message"
    assert err.metadata == meta
    assert str(err).startswith(f"{status}: the {status} message; ")
    assert hint in str(err)
    assert len(server.requests) == 1


def test_error_code_comes_from_the_body(server: Server, wav_file: Path) -> None:
    server.app.script(Reply.error(400, "bad audio", code=4221))
    err = raises("sync", server, errors.BadRequestError, wav_file)
    assert (err.status, err.code, err.metadata) == (400, 4221, {})


def test_error_without_contract_shape_keeps_the_body(server: Server, wav_file: Path) -> None:
    server.app.script(Reply.json({"detail": "quota exhausted for team"}, status=402))
    err = raises("sync", server, errors.PaymentRequiredError, wav_file)
    assert err.code == 402
    assert "quota exhausted for team" in err.message


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_429_waits_for_retry_after(kind: str, server: Server, wav_file: Path) -> None:
    waits: list[tuple[type[BaseException], float]] = []
    server.app.script(Reply.error(429, "slow down", headers={"Retry-After": "1"}), Reply.ok("second try"))
    started = time.monotonic()
    out = call(kind, server, wav_file, client={"max_retries": 2, "on_retry": lambda e, w: waits.append((type(e), w))})
    elapsed = time.monotonic() - started
    assert out.text == "second try"
    assert waits == [(errors.RateLimitError, 1.0)]
    assert len(server.requests) == 2
    assert server.requests[1].received_at - server.requests[0].received_at >= 0.9
    assert 0.9 <= elapsed < 5
    assert server.requests[0].body == server.requests[1].body


def test_retry_after_ms_wins_over_retry_after(server: Server, wav_file: Path) -> None:
    waits: list[float] = []
    server.app.script(Reply.error(429, headers={"Retry-After": "30", "retry-after-ms": "50"}), Reply.ok())
    started = time.monotonic()
    call("sync", server, wav_file, client={"max_retries": 1, "on_retry": lambda e, w: waits.append(w)})
    assert waits == [pytest.approx(0.05)]
    assert time.monotonic() - started < 3


def test_retry_after_on_an_exhausted_429_is_reported(server: Server, wav_file: Path) -> None:
    server.app.script(Reply.error(429, headers={"Retry-After": "7"}))
    err = raises("sync", server, errors.RateLimitError, wav_file)
    assert err.retry_after == 7.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 401, 402, 404, 422])
def test_client_errors_are_not_retried(kind: str, server: Server, wav_file: Path, status: int) -> None:
    server.app.script(*[Reply.error(status)] * 3)
    raises(kind, server, errors.APIStatusError, wav_file, client={"max_retries": 3})
    assert len(server.requests) == 1


RETRIED = [
    (Reply.error(500), errors.InternalServerError),
    (Reply.error(502), errors.BadGatewayError),
    (Reply.error(503), errors.ServiceUnavailableError),
    (Reply.error(408), errors.RequestTimeoutError),
    (Reply.error(429), errors.RateLimitError),
    (Reply.error(520), errors.InternalServerError),
    (Reply.raw(502, b"<html><body>502 Bad Gateway</body></html>", "text/html"), errors.BadGatewayError),
]


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("reply", "cls"), RETRIED, ids=["500", "502", "503", "408", "429", "520", "html502"])
def test_transient_failures_are_retried_up_to_max_retries(
    kind: str, server: Server, wav_file: Path, reply: Reply, cls: type[Exception]
) -> None:
    waits: list[float] = []
    server.app.script(*[reply] * 5)
    err = raises(kind, server, cls, wav_file, client={"max_retries": 2, "on_retry": lambda e, w: waits.append(w)})
    assert type(err) is cls
    assert len(server.requests) == 3
    assert len(waits) == 2
    assert len({r.body for r in server.requests}) == 1


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("kind", KINDS)
def test_a_lost_answer_is_sent_again_at_most_once(kind: str, server: Server, wav_file: Path) -> None:
    """The connection drops after the whole body went out: the server may have billed it. One more send, no more."""
    server.app.script(*[Reply.dropped()] * 5)
    sent_again: list[bool] = []
    err = raises(
        kind,
        server,
        errors.APIConnectionError,
        wav_file,
        client={"max_retries": 4, "on_retry": lambda e, w: sent_again.append(e.request_sent)},
    )
    assert len(server.requests) == 2
    assert sent_again == [True]
    assert err.request_sent
    assert "not sent a third time" in str(err)


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("kind", KINDS)
def test_recovers_after_transient_failures(kind: str, server: Server, wav_file: Path) -> None:
    server.app.script(Reply.error(503), Reply.dropped(), Reply.error(502), Reply.ok("finally"))
    assert call(kind, server, wav_file, client={"max_retries": 3}).text == "finally"
    assert len(server.requests) == 4


@pytest.mark.usefixtures("fast_backoff")
def test_zero_retries_means_one_request(server: Server, wav_file: Path) -> None:
    server.app.script(Reply.error(503), Reply.ok())
    raises("sync", server, errors.ServiceUnavailableError, wav_file, client={"max_retries": 0})
    assert len(server.requests) == 1


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_x_should_retry_false_stops_retries(kind: str, server: Server, wav_file: Path) -> None:
    server.app.script(Reply.error(503, headers={"x-should-retry": "false"}), Reply.ok())
    raises(kind, server, errors.ServiceUnavailableError, wav_file, client={"max_retries": 3})
    assert len(server.requests) == 1


@pytest.mark.usefixtures("fast_backoff")
def test_x_should_retry_true_retries_a_4xx(server: Server, wav_file: Path) -> None:
    server.app.script(Reply.error(409, headers={"x-should-retry": "true"}), Reply.ok("ok now"))
    assert call("sync", server, wav_file, client={"max_retries": 1}).text == "ok now"
    assert len(server.requests) == 2


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_timeouts_are_retried_and_reported(kind: str, server: Server, wav_file: Path) -> None:
    server.app.script(Reply(delay=1.0), Reply(delay=1.0))
    err = raises(kind, server, errors.APITimeoutError, wav_file, client={"max_retries": 1, "timeout": 0.2})
    assert "no answer from" in str(err)
    assert len(server.requests) == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_unreachable_server(kind: str, wav_file: Path) -> None:
    dead = Server(ScriptedServer(), "http://127.0.0.1:9/api/v1")  # the discard port: nothing listens
    err = raises(kind, dead, errors.APIConnectionError, wav_file)
    assert type(err) is errors.APIConnectionError  # refused is not "no answer in time"
    assert "check base_url" in str(err)


# --------------------------------------------------------------------------- malformed answers

MAL = errors.MalformedResponseError
MALFORMED: list[tuple[str, Reply, type[Exception], str]] = [
    (
        "html-502",
        Reply.raw(502, b"<!DOCTYPE html><html>Bad gateway</html>", "text/html"),
        errors.BadGatewayError,
        "HTML",
    ),
    ("cut-json", Reply.raw(200, b'{"text": "hel', "application/json"), MAL, "cut-off"),
    ("html-200", Reply.raw(200, b"<html><body>Login</body></html>", "text/html"), MAL, "HTML"),
    ("empty-200", Reply.raw(200, b"", "application/json"), MAL, "empty body"),
    ("blank-200", Reply.raw(200, b"  \n", "application/json"), MAL, "empty body"),
    ("no-text", Reply.json({"transcript": "hi"}), MAL, "no 'text'"),
    ("text-not-str", Reply.json({"text": ["hi"]}), MAL, "'text' should be a string"),
    ("json-list", Reply.json(["hi"]), MAL, "JSON object"),
    ("usage-str", Reply.json({"text": "hi", "usage": {"cost": "free"}}), MAL, "usage.cost"),
    ("usage-tokens", Reply.json({"text": "hi", "usage": {"input_tokens": 1.5}}), MAL, "whole"),
    ("usage-bool", Reply.json({"text": "hi", "usage": {"seconds": True}}), MAL, "usage.seconds"),
    ("usage-list", Reply.json({"text": "hi", "usage": [1]}), MAL, "usage should be an object"),
    ("empty-500", Reply.raw(500, b""), errors.InternalServerError, "empty body"),
    ("text-503", Reply.raw(503, b"upstream connect error"), errors.ServiceUnavailableError, "upstream connect error"),
    ("bad-json-400", Reply.raw(400, b'{"error": ', "application/json"), errors.BadRequestError, '{"error":'),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("reply", "cls", "fragment"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_answers_give_clear_errors(
    kind: str, server: Server, wav_file: Path, reply: Reply, cls: type[Exception], fragment: str
) -> None:
    server.app.script(reply)
    err = raises(kind, server, cls, wav_file)
    assert type(err) is cls
    assert fragment in str(err)
    assert str(err).startswith(f"{reply.status}: ")
    chain = "".join(traceback.format_exception(err))
    for raw in (
        "JSONDecodeError",
        "During handling of the above exception",
        "The above exception was the direct cause",
    ):
        assert raw not in chain
    assert err.__cause__ is None


def test_usage_numbers_are_parsed(server: Server, wav_file: Path) -> None:
    usage = {"cost": 0.0123, "input_tokens": 10, "output_tokens": 2.0, "total_tokens": 12}
    server.app.script(Reply.ok("hi", usage))
    out = call("sync", server, wav_file)
    assert out.usage.cost == 0.0123
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.total_tokens) == (10, 2, 12)
    assert isinstance(out.usage.output_tokens, int)
    assert out.usage.seconds is None
    assert out.raw["usage"] == usage


# --------------------------------------------------------------------------- the key never leaks


def _assert_no_key(*things: Any) -> None:
    for thing in things:
        for text in (str(thing), repr(thing)):
            assert KEY not in text, f"key leaked in {type(thing).__name__}: {text[:200]}"
        if isinstance(thing, BaseException):
            assert KEY not in "".join(traceback.format_exception(thing))
            assert KEY not in json.dumps(thing.args, default=str)
            for attr in ("message", "metadata", "body"):
                assert KEY not in json.dumps(getattr(thing, attr, None), default=str)


ECHOES: list[tuple[str, Reply, type[Exception]]] = [
    (
        "401-json",
        Reply.error(401, f"invalid key Bearer {KEY}", metadata={"key": KEY, "nested": {"sent": [f"Bearer {KEY}"]}}),
        errors.AuthenticationError,
    ),
    ("400-json", Reply.error(400, f"bad request from {KEY}"), errors.BadRequestError),
    ("500-text", Reply.raw(500, f"crash; auth={KEY}".encode()), errors.InternalServerError),
    (
        "200-cut",
        Reply.raw(200, f'{{"key": "{KEY}", "text": "'.encode(), "application/json"),
        errors.MalformedResponseError,
    ),
    ("200-notext", Reply.json({"echo": KEY}), errors.MalformedResponseError),
    ("200-usage", Reply.json({"text": "x", "usage": {"cost": KEY}}), errors.MalformedResponseError),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("reply", "cls"), [e[1:] for e in ECHOES], ids=[e[0] for e in ECHOES])
def test_key_never_in_errors_even_when_echoed(
    kind: str, server: Server, wav_file: Path, reply: Reply, cls: type[Exception]
) -> None:
    server.app.script(reply)
    err = raises(kind, server, cls, wav_file)
    _assert_no_key(err)
    if isinstance(err, errors.APIStatusError) and reply.status == 401:
        assert err.metadata["nested"]["sent"] == ["Bearer ***"]  # redacted, not dropped


def test_key_never_in_reprs(server: Server, wav_file: Path) -> None:
    server.app.script(Reply.json({"text": "hi", "echo": KEY}))
    with Client(api_key=KEY, base_url=server.url) as c:
        out = c.transcribe(wav_file, model="m")
        _assert_no_key(c, c.settings, out, out.usage)
        assert "<set>" in repr(c)

    async def go() -> None:
        async with AsyncClient(api_key=KEY, base_url=server.url) as ac:
            _assert_no_key(ac, ac.settings, AsyncClient.from_settings(ac.settings))

    asyncio.run(go())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_key_never_in_connection_errors(kind: str, wav_file: Path) -> None:
    dead = Server(ScriptedServer(), "http://127.0.0.1:9/api/v1")
    _assert_no_key(raises(kind, dead, errors.APIConnectionError, wav_file))


# --------------------------------------------------------------------------- plain http


def _construct(factory: Callable[..., Any], **kw: Any) -> Settings:
    """Open and close a client of ``factory``; its settings (what it would send, and where)."""
    if factory is AsyncClient:

        async def go() -> Settings:
            async with AsyncClient(**kw) as client:
                return client.settings

        return asyncio.run(go())
    with factory(**kw) as client:
        settings: Settings = client.settings
        return settings


@pytest.mark.parametrize("factory", [Client, AsyncClient])
@pytest.mark.parametrize(
    "url", ["http://example.com/api/v1", "http://10.0.0.5:8787/api/v1", "http://localhost.evil.com/"]
)
def test_key_over_plain_http_to_remote_host_is_refused(factory: Callable[..., Any], url: str) -> None:
    with pytest.raises(errors.InsecureTransportError, match="plain http") as info:
        _construct(factory, api_key=KEY, base_url=url)
    _assert_no_key(info.value)


def test_key_from_env_over_plain_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://example.com/api/v1")
    with pytest.raises(errors.InsecureTransportError):
        Client()


@pytest.mark.parametrize("factory", [Client, AsyncClient])
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787/api/v1",
        "http://127.9.9.9/api/v1",
        "http://localhost:8787/api/v1",
        "http://LOCALHOST/api/v1",
        "http://[::1]:8787/api/v1",
        "https://example.com/api/v1",
        "https://openrouter.ai/api/v1",
    ],
)
def test_key_over_loopback_or_https_is_fine(factory: Callable[..., Any], url: str) -> None:
    """Allowed, and the client then really sends the key to that endpoint (and only that one)."""
    settings = _construct(factory, api_key=KEY, base_url=url)
    assert settings.endpoint == url.rstrip("/") + "/audio/transcriptions"
    assert settings.headers()["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("factory", [Client, AsyncClient])
def test_no_key_allows_any_http_host(factory: Callable[..., Any]) -> None:
    settings = _construct(factory, api_key=None, base_url="http://example.com/api/v1")
    assert settings.endpoint == "http://example.com/api/v1/audio/transcriptions"
    assert "Authorization" not in settings.headers() and settings.api_key is None


def test_async_client_takes_the_https_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A corporate proxy (HTTPS_PROXY) is used for https; NO_PROXY and plain-http loopback URLs bypass it."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    via = AsyncClient(api_key="k")._transport
    assert isinstance(via.proxy, httpx.Proxy) and via.proxy.url.host == "proxy.corp.example"
    local = AsyncClient(api_key="k", base_url="http://127.0.0.1:1/api/v1")._transport
    assert local.proxy is None
    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    assert AsyncClient(api_key="k")._transport.proxy is None
