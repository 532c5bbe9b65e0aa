"""Cutting and encoding long recordings (stt_frames/chunking.py): cuts in pauses, the upload policy, FLAC/Opus.

Unit tests on synthetic audio (tests/recordings.py); sending the chunks and stitching the answers is tested
end to end in test_long_audio.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from recordings import RATE, noise_bursts, wav_bytes

import stt_frames
from stt_frames.chunking import UploadPolicy, encode_chunk, find_cut, iter_chunks, probe_seconds


def _wav(samples: np.ndarray) -> bytes:
    return wav_bytes(samples)


def test_every_cut_falls_in_a_pause() -> None:
    samples = noise_bursts(20)  # 2.3 s of noise, 0.7 s of digital silence, 20 times
    chunks = list(iter_chunks(_wav(samples), max_seconds=10.0))
    assert len(chunks) >= 6
    assert b"".join(c.pcm for c in chunks) == samples.tobytes()  # nothing lost, nothing doubled
    for c in chunks[:-1]:
        assert c.seconds <= 10.0
        cut = round(c.end * RATE)
        assert not samples[cut - 400 : cut + 400].any(), f"cut at {c.end:.2f}s is not in a pause"


def test_a_cut_in_speech_without_pause_still_respects_the_limit() -> None:
    noise = (np.random.default_rng(0).standard_normal(RATE * 25) * 3000).astype(np.int16)
    chunks = list(iter_chunks(_wav(noise), max_seconds=8.0))
    assert [round(c.seconds, 3) <= 8.0 for c in chunks] == [True] * len(chunks)
    assert sum(len(c.pcm) for c in chunks) == noise.nbytes


def test_find_cut_prefers_the_quietest_window_and_the_latest_of_equals() -> None:
    x = np.full(RATE * 10, 1000, dtype=np.int16)
    x[RATE * 3 : RATE * 4] = 0
    x[RATE * 8 : RATE * 9] = 0
    cut = find_cut(x, 0, len(x))
    assert RATE * 8 < cut < RATE * 9


def test_policy_limits_and_messages() -> None:
    assert UploadPolicy().chunk_limit() == 600.0
    # a FLAC chunk of 16 kHz mono never passes ~32 kB/s: the limit shrinks to fit max_upload_bytes
    assert UploadPolicy(chunk_seconds=3600, max_upload_bytes=10 * 2**20).chunk_limit() < 330
    assert UploadPolicy(chunk_seconds=3600, upload_format="opus", max_upload_bytes=20 * 2**20).chunk_limit() == 3600
    with pytest.raises(stt_frames.AudioError, match=r"x.wav: file is .* over max_upload_bytes=.*set chunk_seconds"):
        UploadPolicy(chunk_seconds=None, max_upload_bytes=100_000).sends_whole(200_000, 5.0, where="x.wav")
    for bad in ({"chunk_seconds": 0}, {"upload_format": "mp3"}, {"max_upload_bytes": 10}):
        with pytest.raises(ValueError):
            UploadPolicy(**bad)  # type: ignore[arg-type]


def test_encoded_chunks_are_deterministic_and_decodable() -> None:
    pcm = noise_bursts(3).tobytes()
    for encoding, fmt in (("flac", "flac"), ("opus", "ogg")):
        a, b = encode_chunk(pcm, encoding), encode_chunk(pcm, encoding)
        assert a.format == fmt and a.data == b.data
        assert probe_seconds(a.data) == pytest.approx(len(pcm) / 2 / RATE, abs=0.05)
    flac = encode_chunk(pcm, "flac")
    assert b"".join(c.pcm for c in iter_chunks(flac.data, max_seconds=60)) == pcm  # lossless
