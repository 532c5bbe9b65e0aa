"""Property tests: whatever a client sends, the local server answers 2xx or 4xx in the contract's shape.

Arbitrary bodies (bytes, JSON values, near-valid requests with arbitrary fields) and headers go to the
in-process app through httpx.ASGITransport, which re-raises any exception the app lets escape.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import wave
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")


BASE = "http://local/api/v1"
KEY = "sk-fuzz"
SETTINGS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _wav(samples: bytes, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return buf.getvalue()


def _encoded_clips() -> list[tuple[bytes, str]]:
    """A 0.2 s tone in each compressed format, when PyAV is installed."""
    try:
        import av
        import numpy as np
    except ImportError:
        return []
    clips = []
    pcm = (np.sin(np.arange(3200) / 4) * 8000).astype(np.int16).reshape(1, -1)
    for fmt, container, codec, rate in [
        ("mp3", "mp3", "libmp3lame", 16000),
        ("flac", "flac", "flac", 16000),
        ("m4a", "ipod", "aac", 16000),
        ("ogg", "ogg", "libopus", 48000),
        ("webm", "webm", "libopus", 48000),
        ("aac", "adts", "aac", 16000),
    ]:
        buf = io.BytesIO()
        with av.open(buf, "w", format=container) as out:
            stream = out.add_stream(codec, rate=rate, layout="mono")
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.rate = 16000
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
        clips.append((buf.getvalue(), fmt))
    return clips


WAV = _wav(bytes(3200))  # 0.1 s of silence
CLIPS = [(WAV, "wav"), (_wav(bytes(range(256)) * 25, 8000), "wav"), *_encoded_clips()]
#: The two apps every request is tried on: ``open`` (no key) and ``auth`` (a key and a 20 kB body limit).
APP_OPTIONS: dict[str, dict[str, Any]] = {"open": {}, "auth": {"api_key": KEY, "max_body_bytes": 20_000}}
FORMATS = ["wav", "mp3", "flac", "m4a", "ogg", "webm", "aac"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
audio = st.one_of(
    st.just(WAV),
    st.binary(max_size=3000).map(_wav),  # a valid header around arbitrary samples
    st.binary(max_size=200).map(lambda b: WAV[:44] + b),  # a header whose sizes lie
    st.binary(max_size=300),
    st.sampled_from(
        [b"ID3\x03\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x00", b"fLaC", b"OggS", b"\x1aE\xdf\xa3"]
    ).flatmap(lambda head: st.binary(max_size=300).map(lambda tail: head + tail)),
)
data_field = st.one_of(
    audio.map(lambda b: base64.b64encode(b).decode()),
    audio.map(lambda b: "data:audio/wav;base64," + base64.b64encode(b).decode()),
    st.text(max_size=40),
    json_values,
)
input_audio = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "data": data_field,
            "format": st.sampled_from([*FORMATS, "WAV", "mp4", ""]) | json_values,
            "url": st.text(max_size=10),
        },
    ),
    json_values,
)
request_objects = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["fake/echo", "local/pocketsphinx-fast", "openai/whisper-1", ""]) | json_values,
        "input_audio": input_audio,
        "language": st.sampled_from(["en", "EN", "xx", "", "en-US"]) | json_values,
        "temperature": st.floats() | st.integers() | json_values,
        "provider": json_values,
        "response_format": json_values,
    },
)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with a few fields changed, dropped or added."""
    clip, fmt = draw(st.sampled_from(CLIPS))
    request: dict[str, Any] = {
        "model": draw(st.sampled_from(["fake/echo", "fake/echo", "fake/echo", "local/pocketsphinx-fast", "x/y"])),
        "input_audio": {"data": base64.b64encode(clip).decode(), "format": fmt},
    }
    for name, value in draw(
        st.dictionaries(
            st.sampled_from(["language", "temperature", "provider", "extra"]),
            st.sampled_from(["en", "fr", 0, 0.5, 1, 2, {}, None]),
            max_size=3,
        )
    ).items():
        request[name] = value
    mutation = draw(st.sampled_from(["none", "none", "format", "data", "cut", "field"]))
    if mutation == "format":
        request["input_audio"]["format"] = draw(st.sampled_from(FORMATS))
    elif mutation == "data":
        raw = bytearray(clip)
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        request["input_audio"]["data"] = base64.b64encode(bytes(raw)).decode()
    elif mutation == "cut":
        request["input_audio"]["data"] = base64.b64encode(clip[: draw(st.integers(1, len(clip)))]).decode()
    elif mutation == "field":
        request[draw(st.sampled_from(["model", "input_audio", "language", "temperature"]))] = draw(json_values)
    return request


bodies = st.one_of(
    near_valid().map(lambda o: json.dumps(o).encode()),
    near_valid().map(lambda o: json.dumps(o).encode()),
    request_objects.map(lambda o: json.dumps(o).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    request_objects.map(lambda o: json.dumps(o).encode()).flatmap(
        lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda n: b[:n])  # cut off
    ),
)
header_values = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
headers = st.fixed_dictionaries(
    {"authorization": st.sampled_from([f"Bearer {KEY}".encode(), f"bearer  {KEY} ".encode()]) | header_values},
    optional={
        name: header_values | st.sampled_from([b"application/json", b"multipart/form-data", b"0", b"99999999"])
        for name in ["content-type", "content-length", "x-title", "http-referer", "accept"]
    },
)


@pytest.fixture(scope="module")
def apps(shared_app: Callable[..., Any]) -> dict[str, Any]:
    """The apps of ``APP_OPTIONS``, built once (the fuzzer never reads their stats)."""
    return {name: shared_app(**options) for name, options in APP_OPTIONS.items()}


def send(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def check(response: httpx.Response) -> None:
    """A 2xx with the contract's success shape, or a 4xx with its error shape. Never a 5xx."""
    assert response.status_code < 500, response.text
    payload = response.json()
    if response.status_code == 200:
        if "text" in payload:
            assert isinstance(payload["text"], str)
            usage = payload["usage"]
            assert {"cost", "input_tokens", "output_tokens", "seconds", "total_tokens"} <= set(usage)
            assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
            assert usage["seconds"] > 0 and math.isfinite(usage["seconds"])
        return
    assert 400 <= response.status_code < 500
    error = payload["error"]
    assert error["code"] == response.status_code
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("metadata") is None or isinstance(error["metadata"], dict)
    assert KEY not in response.text


@SETTINGS
@given(body=bodies, headers=headers, which=st.sampled_from(sorted(APP_OPTIONS)))
def test_any_transcription_request_gets_a_contract_answer(
    apps: dict[str, Any], body: bytes, headers: dict[str, bytes], which: str
) -> None:
    response = send(apps[which], "POST", "/audio/transcriptions", content=body, headers=headers)
    event(f"status {response.status_code}")
    check(response)


@settings(max_examples=60, deadline=None, database=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.sampled_from(["/audio/transcriptions", "/models", "/_stats", "/models/fake/echo", "/", "/../x"]),
    query=st.dictionaries(st.sampled_from(["output_modalities", "x"]), st.text(max_size=10), max_size=2),
    body=st.binary(max_size=50),
)
def test_any_route_gets_a_contract_answer(
    apps: dict[str, Any], method: str, path: str, query: dict[str, str], body: bytes
) -> None:
    response = send(apps["open"], method, path, params=query, content=body)
    assert response.status_code < 500
    if method != "HEAD" and response.status_code != 200:
        check(response)
