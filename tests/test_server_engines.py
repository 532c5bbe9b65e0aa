"""The local server as a real provider: limits, engine worker processes, utterances cut at pauses, cancellation.

In-process through httpx.ASGITransport where that suffices; over loopback (the fresh_server fixture) where a real
connection must go away. Apps driven without their lifespan are closed by the ``make_app`` fixture.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import multiprocessing
import os
import random
import re
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette")

from stt_frames.server import DEFAULT_MAX_AUDIO_SECONDS, create_app, get_stats

DATA = Path(__file__).resolve().parent.parent / "data"
BASE = "http://local/api/v1"
FAST = "local/pocketsphinx-fast"


def body(audio: bytes, fmt: str = "wav", model: str = "fake/echo") -> dict[str, Any]:
    return {"model": model, "input_audio": {"data": base64.b64encode(audio).decode(), "format": fmt}}


async def post_all(app: Any, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    """Send ``requests`` to ``app`` at once, in-process; the responses in the same order."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=120) as client:
        return list(await asyncio.gather(*(client.post("/audio/transcriptions", json=r) for r in requests)))


def post(app: Any, request: dict[str, Any]) -> httpx.Response:
    return asyncio.run(post_all(app, [request]))[0]


def wav_bytes(pcm: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return buf.getvalue()


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.fixture(scope="module")
def clips() -> list[tuple[bytes, str]]:
    """(16 kHz PCM, normalised reference) of the English clips of data/, every format."""
    pytest.importorskip("pocketsphinx")
    from stt_frames.server.decode import decode_pcm16

    with (DATA / "samples.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["language"] == "en"]
    if len(rows) < 8:
        pytest.skip("data/samples.csv lists fewer than 8 English clips")
    return [(decode_pcm16((DATA / r["path"]).read_bytes(), r["format"]), normalise(r["reference"])) for r in rows]


def concatenate(pcms: list[bytes], seed: int = 0) -> bytes:
    """The clips one after the other, with 1-2 s of silence before each."""
    rng = random.Random(seed)
    return b"".join(bytes(2 * int(16_000 * rng.uniform(1.0, 2.0))) + pcm for pcm in pcms)


# --- limits ------------------------------------------------------------------------------------------------


def test_audio_over_the_limit_is_a_400_stating_the_limit_and_the_duration(
    make_app: Callable[..., Any], wav_factory: Callable[..., bytes]
) -> None:
    assert DEFAULT_MAX_AUDIO_SECONDS == 1500
    app = make_app(max_audio_seconds=1.0)
    assert post(app, body(wav_factory(1.0))).status_code == 200  # at the limit is fine
    r = post(app, body(wav_factory(2.5)))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == 400 and "2.5 s long" in error["message"] and "limit of 1 s" in error["message"]
    assert error["metadata"] == {"max_audio_seconds": 1.0, "audio_seconds": 2.5}
    billed = app.state.stats.snapshot()
    assert billed["total_billed"] == 1 and billed["statuses"] == {"200": 1, "400": 1}


def test_compressed_audio_over_the_limit_is_measured_by_the_decoder(make_app: Callable[..., Any]) -> None:
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16_000 * 3), dtype=np.int16), format="s16", layout="mono")
        frame.rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    flac = buf.getvalue()
    app = make_app(max_audio_seconds=1.0, workers=1)
    for model in ("fake/echo", FAST):  # decoded in a thread, and in a worker process (the error crosses back)
        r = post(app, body(flac, "flac", model))
        assert r.status_code == 400, (model, r.text)
        meta = r.json()["error"]["metadata"]
        assert meta["max_audio_seconds"] == 1.0 and meta["audio_seconds"] == pytest.approx(3.0, abs=0.1)


def test_a_long_wav_is_refused_from_its_header_without_a_worker(
    make_app: Callable[..., Any], wav_factory: Callable[..., bytes]
) -> None:
    pytest.importorskip("pocketsphinx")
    app = make_app(max_audio_seconds=0.5)
    r = post(app, body(wav_factory(1.0), model="local/pocketsphinx"))
    assert r.status_code == 400 and r.json()["error"]["metadata"]["audio_seconds"] == 1.0
    assert app.state.stt.workers.pids() == []  # no process was started for it


def test_models_list_each_models_limits(make_app: Callable[..., Any]) -> None:
    app = make_app(max_audio_seconds=60, max_body_bytes=5000)
    data = asyncio.run(_get(app, "/models")).json()["data"]
    assert data and all(m["limits"] == {"max_audio_seconds": 60.0, "max_body_bytes": 5000} for m in data)


async def _get(app: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        return await client.get(path)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_audio_seconds": 0}, "max_audio_seconds must be a positive number"),
        ({"max_audio_seconds": float("inf")}, "max_audio_seconds"),
        ({"max_audio_seconds": True}, "max_audio_seconds"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"workers": 1.5}, "workers must be a positive integer"),
    ],
)
def test_bad_limit_and_worker_options_are_refused(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        create_app(**options)


def test_limits_reach_a_server_in_its_own_process(wav_factory: Callable[..., bytes], fresh_server: Any) -> None:
    with fresh_server(process=True, max_audio_seconds=0.5, max_body_bytes=200_000) as url:
        r = httpx.post(f"{url}/audio/transcriptions", json=body(wav_factory(1.0)))
        assert r.status_code == 400 and r.json()["error"]["metadata"] == {
            "max_audio_seconds": 0.5,
            "audio_seconds": 1.0,
        }
        big = httpx.post(f"{url}/audio/transcriptions", json=body(wav_factory(5.0)))
        assert big.status_code == 413 and big.json()["error"]["metadata"]["max_body_bytes"] == 200_000
        limits = httpx.get(f"{url}/models").json()["data"][0]["limits"]
    assert limits == {"max_audio_seconds": 0.5, "max_body_bytes": 200_000}


# --- utterances --------------------------------------------------------------------------------------------


def test_speech_segments_cut_at_pauses_and_drop_silence(clips: list[tuple[bytes, str]]) -> None:
    from stt_frames.server.engines import speech_segments

    pcms = [pcm for pcm, _ in clips[:3]]
    segments = speech_segments(concatenate(pcms))
    assert len(segments) == 3
    assert all(0.5 * len(p) < len(s) <= len(p) for s, p in zip(segments, pcms, strict=True))
    assert speech_segments(bytes(64_000)) == []
    cut = pcms[0][: len(pcms[0]) * 3 // 4 // 960 * 960]  # ends mid-speech, on a VAD frame boundary
    assert cut.endswith(speech_segments(cut)[-1])  # the speech at the very end is kept, exactly
    long = speech_segments(pcms[0] * 8, max_seconds=5.0)  # no pause for longer than 5 s: cut anyway
    assert all(len(s) <= 5 * 32_000 for s in long) and sum(map(len, long)) > 20 * 32_000


@pytest.fixture
def pool_app(shared_app: Callable[..., Any]) -> Any:
    """One app with 2 worker processes for the pocketsphinx tests below (the decoders load once a session)."""
    pytest.importorskip("pocketsphinx")
    return shared_app(workers=2)


def test_same_audio_same_text_whatever_was_decoded_before(pool_app: Any, clips: list[tuple[bytes, str]]) -> None:
    requests = [body(wav_bytes(pcm), model=FAST) for pcm, _ in clips[:8]]
    forward = asyncio.run(post_all(pool_app, requests))
    backward = asyncio.run(post_all(pool_app, requests[::-1]))[::-1]
    one_by_one = [asyncio.run(post_all(pool_app, [r]))[0] for r in requests[2:4]]
    texts = [r.json()["text"] for r in forward]
    assert all(r.status_code == 200 for r in forward + backward)
    assert [r.json()["text"] for r in backward] == texts
    assert [r.json()["text"] for r in one_by_one] == texts[2:4]
    assert sum(bool(t) for t in texts) >= 6
    pids = pool_app.state.stt.workers.pids()
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_a_long_recording_is_decoded_utterance_by_utterance(pool_app: Any, clips: list[tuple[bytes, str]]) -> None:
    jiwer = pytest.importorskip("jiwer")
    chosen = clips[:6]
    before = pool_app.state.stats.snapshot()["jobs"]["done"]
    r = post(pool_app, body(wav_bytes(concatenate([pcm for pcm, _ in chosen])), model=FAST))
    assert r.status_code == 200, r.text
    jobs = pool_app.state.stats.snapshot()["jobs"]["done"] - before
    assert jobs >= 1 + len(chosen)  # one job decodes and cuts, then one job per utterance
    clip_texts = [
        r.json()["text"] for r in asyncio.run(post_all(pool_app, [body(wav_bytes(p), model=FAST) for p, _ in chosen]))
    ]
    reference = " ".join(ref for _, ref in chosen)
    whole = jiwer.wer(reference, normalise(r.json()["text"]))
    by_clip = jiwer.wer(reference, normalise(" ".join(clip_texts)))
    assert whole <= by_clip + 0.05, (whole, by_clip)


# --- worker processes --------------------------------------------------------------------------------------


def test_worker_processes_stop_with_the_server(clips: list[tuple[bytes, str]], fresh_server: Any) -> None:
    before = set(multiprocessing.active_children())
    with fresh_server(workers=1) as url:
        r = httpx.post(f"{url}/audio/transcriptions", json=body(wav_bytes(clips[0][0]), model=FAST), timeout=60)
        assert r.status_code == 200 and r.json()["text"]
        workers = set(multiprocessing.active_children()) - before
        assert len(workers) == 1
    (worker,) = workers
    assert not worker.is_alive() and worker.exitcode == 0
    assert worker not in multiprocessing.active_children()


# --- a client that goes away -------------------------------------------------------------------------------


def _wait_idle(url: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (stats := get_stats(url))["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return stats


def test_a_client_that_goes_away_cancels_the_decode(clips: list[tuple[bytes, str]], fresh_server: Any) -> None:
    from stt_frames.server.engines import speech_segments

    short = wav_bytes(clips[0][0])
    pcm = concatenate([pcm for pcm, _ in clips[:16]])  # about 60 s of speech: seconds of work for one worker
    utterances = len(speech_segments(pcm))
    long = wav_bytes(pcm)
    with fresh_server(workers=1) as url:
        assert httpx.post(f"{url}/audio/transcriptions", json=body(short, model=FAST), timeout=60).status_code == 200
        warm = get_stats(url)["jobs"]["done"]  # the worker is up and its decoder loaded
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/audio/transcriptions", json=body(long, model=FAST), timeout=1.0)
        gone = time.monotonic()
        stats = _wait_idle(url)
        stopped = time.monotonic() - gone
    assert stats["in_flight"] == 0 and stopped < 3.0
    assert stats["statuses"] == {"200": 1, "cancelled": 1}
    assert stats["total_billed"] == 1 and stats["models"] == {FAST: 1}  # the long one was not billed
    assert stats["jobs"]["cancelled"] >= 5  # most utterances were never decoded ...
    assert stats["jobs"]["done"] - warm + stats["jobs"]["cancelled"] == 1 + utterances  # ... and none got lost


def test_a_client_that_goes_away_during_latency_cancels_the_wait(
    wav_factory: Callable[..., bytes], fresh_server: Any
) -> None:
    with fresh_server(latency=30) as url:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/audio/transcriptions", json=body(wav_factory(0.1)), timeout=0.3)
        stats = _wait_idle(url, timeout=5)
    assert stats["in_flight"] == 0 and stats["statuses"] == {"cancelled": 1}
    assert stats["billed"] == {} and stats["total_requests"] == 1


def test_a_cancelled_in_process_request_is_counted_and_not_billed(
    make_app: Callable[..., Any], wav_factory: Callable[..., bytes]
) -> None:
    app = make_app(latency=30)

    async def go() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(post_all(app, [body(wav_factory(0.1))]), 0.2)

    asyncio.run(go())
    stats = app.state.stats.snapshot()
    assert stats["statuses"] == {"cancelled": 1} and stats["in_flight"] == 0 and stats["billed"] == {}
