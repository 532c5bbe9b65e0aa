"""Measurements of the pocketsphinx engines through the local server (run on demand, not in the suite).

    STT_FRAMES_MEASURE=1 .venv/bin/python -m pytest tests/test_server_measure.py -s

1. Throughput: the English clips of data/ (every format), 4 requests in flight, to a server in its own
   process (``serve_local(process=True)``) at ``workers`` 1 and 2; RTFx = audio seconds / wall seconds,
   best of 2 runs after a warm-up that loads every worker's decoder.
2. A long recording: every English clip one after the other with 1-2 s of silence between them, written
   to a temporary WAV file and sent as one request, against the same clips sent one by one; corpus WER
   against data/samples.csv's references.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
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

if not os.environ.get("STT_FRAMES_MEASURE"):
    pytest.skip("measurements run on demand: STT_FRAMES_MEASURE=1", allow_module_level=True)

pytest.importorskip("pocketsphinx")
jiwer = pytest.importorskip("jiwer")

from stt_frames.server.decode import decode_pcm16  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"
MODELS = ("local/pocketsphinx-fast", "local/pocketsphinx")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def english() -> list[dict[str, str]]:
    with (DATA / "samples.csv").open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["language"] == "en"]


def request(audio: bytes, fmt: str, model: str) -> dict[str, Any]:
    return {"model": model, "language": "en", "input_audio": {"data": base64.b64encode(audio).decode(), "format": fmt}}


async def send(url: str, requests: list[dict[str, Any]], in_flight: int = 4) -> tuple[list[str], float]:
    limit = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(r: dict[str, Any]) -> str:
            async with limit:
                response = await client.post("/audio/transcriptions", json=r)
            assert response.status_code == 200, response.text
            return str(response.json()["text"])

        start = time.perf_counter()
        texts = list(await asyncio.gather(*(one(r) for r in requests)))
        return texts, time.perf_counter() - start


def test_measure_throughput_by_workers(local_server: Callable[..., str]) -> None:
    rows = english()
    files = [((DATA / r["path"]).read_bytes(), r["format"]) for r in rows]
    audio_s = sum(len(decode_pcm16(data, fmt)) for data, fmt in files) / 32_000
    rtfx: dict[tuple[str, int], float] = {}
    for workers in (1, 2):
        url = local_server(process=True, workers=workers, log_level="error")
        for model in MODELS:
            asyncio.run(send(url, [request(*files[0], model)] * 2 * workers))  # load every decoder
            walls = [asyncio.run(send(url, [request(d, f, model) for d, f in files]))[1] for _ in range(2)]
            rtfx[model, workers] = audio_s / min(walls)
            wall = min(walls)
            print(f"\n{model} workers={workers}: {audio_s:.1f} s of audio in {wall:.2f} s, RTFx {audio_s / wall:.1f}")
    for model in MODELS:
        print(f"{model}: RTFx workers=2 / workers=1 = {rtfx[model, 2] / rtfx[model, 1]:.2f} on {os.cpu_count()} CPUs")
        if (os.cpu_count() or 1) >= 2 and os.getloadavg()[0] < 1.5:  # a busy machine has no core to spare
            assert rtfx[model, 2] > 1.2 * rtfx[model, 1]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def test_measure_long_recording_wer(local_server: Callable[..., str], tmp_path: Path) -> None:
    rows = english()
    rng = random.Random(0)
    pcm = bytearray()
    for r in rows:
        pcm += bytes(2 * int(16_000 * rng.uniform(1.0, 2.0)))
        pcm += decode_pcm16((DATA / r["path"]).read_bytes(), r["format"])
    path = tmp_path / "long.wav"
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(bytes(pcm))
    path.write_bytes(buf.getvalue())
    reference = " ".join(normalise(r["reference"]) for r in rows)
    model = "local/pocketsphinx-fast"
    url = local_server(process=True, log_level="error")
    clips = [request((DATA / r["path"]).read_bytes(), r["format"], model) for r in rows]
    asyncio.run(send(url, clips[:2]))  # load the decoders
    clip_texts, clip_s = asyncio.run(send(url, clips))
    (long_text,), long_s = asyncio.run(send(url, [request(path.read_bytes(), "wav", model)]))
    by_clip = jiwer.wer(reference, normalise(" ".join(clip_texts)))
    whole = jiwer.wer(reference, normalise(long_text))
    print(
        f"\n{model}: {len(rows)} clips, {len(pcm) / 32_000:.1f} s as one recording: WER {whole:.3f} "
        f"({long_s:.2f} s); clip by clip: WER {by_clip:.3f} ({clip_s:.2f} s)"
    )
    assert whole <= by_clip + 0.02
