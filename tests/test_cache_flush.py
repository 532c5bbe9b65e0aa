"""The fast paths of a run (issue 16) give the same answers as the plain ones, and batching loses nothing.

- ``request_keyer`` makes the same keys as ``request_key``; the struct WAV probe reads what ``wave`` reads.
- Answers are committed in batches of at most ``FLUSH_INTERVAL`` (100 ms): a run killed with ``kill -9``
  has in its cache every answer that arrived before the last interval, and a rerun sends exactly the rest.
- The planning pass moves the progress count (``planned``) before any row is done.
"""

from __future__ import annotations

import hashlib
import io
import random
import signal
import sqlite3
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import stt_frames
from stt_frames.cache import CACHE_FILENAME, FLUSH_INTERVAL, request_key, request_keyer
from stt_frames.chunking import _pcm_wav_seconds, probe_seconds

HERE = Path(__file__).resolve().parent
CHILD = HERE / "flush_child.py"
#: How late past FLUSH_INTERVAL a commit may come on a loaded machine (the event loop's timer wake-up).
SCHEDULING_SLACK = 0.25


def make_wav(i: int, seconds: float = 0.05, *, rate: int = 16_000, channels: int = 1, width: int = 2) -> bytes:
    frames = random.Random(i).randbytes(int(seconds * rate) * channels * width)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


@pytest.mark.parametrize(
    "params",
    [
        {"model": "fake/echo", "language": None, "temperature": None, "provider_options": None},
        {"model": "m", "language": "en", "temperature": 0.2, "provider_options": {"p": {"beam": 5}}},
        {"model": "m", "language": "de", "temperature": 0.0, "provider_options": {}, "extra_body": {"x": [1, "é"]}},
        {"model": "m", "language": None, "temperature": None, "provider_options": None, "upload": {"chunk": "flac"}},
    ],
)
@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8787/api/v1", "https://OpenRouter.ai/api/v1/"])
def test_request_keyer_makes_the_keys_of_request_key(params: dict, endpoint: str) -> None:
    keyer = request_keyer(endpoint=endpoint, **params)
    for sha in [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)] + ["not-a-hex-digest", "ü" * 64, ""]:
        assert keyer(sha) == request_key(sha, endpoint=endpoint, **params)


@pytest.mark.parametrize(
    "data",
    [
        make_wav(1),
        make_wav(2, 0.33, rate=8_000, channels=2),
        make_wav(3, 0.2, rate=44_100, width=3),
        make_wav(4, 0.1, width=1),
        make_wav(5, 0.0),
    ],
)
def test_the_struct_wav_probe_reads_what_wave_reads(data: bytes) -> None:
    with wave.open(io.BytesIO(data)) as w:
        expected = w.getnframes() / w.getframerate()
    assert _pcm_wav_seconds(data) == expected == probe_seconds(data)


def test_the_struct_wav_probe_leaves_odd_files_to_wave_and_pyav() -> None:
    data = make_wav(6)
    assert _pcm_wav_seconds(data[:30]) is None  # cut-off header
    assert _pcm_wav_seconds(b"RIFX" + data[4:]) is None
    extensible = data[:20] + (0xFFFE).to_bytes(2, "little") + data[22:]
    assert _pcm_wav_seconds(extensible) is None


def _answered_by(log: Path, moment: float) -> int:
    """Answers the child had received by ``moment`` (time.monotonic, shared by every process)."""
    best = 0
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and float(parts[0]) <= moment:
            best = max(best, int(parts[1]))
    return best


def _entries(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    finally:
        con.close()


def test_kill_9_loses_at_most_the_last_flush_interval(local_server: Callable[..., str], tmp_path: Path) -> None:
    """SIGKILL a run mid-stream, twice: every answer that arrived more than FLUSH_INTERVAL (plus scheduling
    slack) before the kill is in the cache, and the rerun sends exactly the answers that were not stored."""
    n = 1200
    folder = tmp_path / "clips"
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"clip_{i:04d}.wav"
        p.write_bytes(make_wav(1000 + i))
        paths.append(str(p))
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths))
    cache_dir = tmp_path / "cache"
    db = cache_dir / CACHE_FILENAME
    url = local_server(latency=0.01)
    window = FLUSH_INTERVAL + SCHEDULING_SLACK
    for k, grow_by in enumerate((300, 400)):  # each kill after about a second of answers
        log = tmp_path / f"answers{k}.log"
        before = _entries(db) if db.exists() else 0
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(listing), url, str(cache_dir), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=HERE.parent,
        )
        deadline = time.monotonic() + 60
        while (not log.exists() or _answered_by(log, time.monotonic()) < grow_by) and child.poll() is None:
            assert time.monotonic() < deadline, "the child answered nothing"
            time.sleep(0.002)
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
        stored = _entries(db) - before
        answered = _answered_by(log, killed_at)
        safe = _answered_by(log, killed_at - window)
        print(f"kill {k}: {answered} answered, {stored} stored, {safe} answered over {window:.2f} s before the kill")
        assert safe <= stored <= answered
    rerun = stt_frames.transcribe_column(
        pd.DataFrame({"path": paths}),
        model="fake/echo",
        client=stt_frames.Client(base_url=url),
        cache=cache_dir,
        progress=False,
    )
    stored = _entries(db)
    assert rerun["error"].isna().all() and stored == n
    sent = rerun.attrs["stt_frames"]["requests"]
    assert sent == n - int(rerun["cached"].sum())  # the rerun sent exactly what the cache did not have


def test_the_planning_pass_moves_the_progress_count_before_any_row_is_done(tmp_path: Path) -> None:
    """A listener sees ``planned`` grow to every row; rows checked but not yet done are counted there."""
    paths = []
    for i in range(3000):
        p = tmp_path / f"c{i}.wav"
        p.write_bytes(make_wav(i, 0.01))
        paths.append(str(p))
    seen: list[stt_frames.RunProgress] = []
    # nothing listens at this address: every row fails when it is sent, after the planning pass
    out = stt_frames.transcribe_column(
        pd.DataFrame({"path": paths}),
        model="fake/echo",
        client=stt_frames.Client(base_url="http://127.0.0.1:9/api/v1", max_retries=0),
        cache=tmp_path / "cache",
        progress=seen.append,
        concurrency=4,
    )
    assert out["error"].notna().all()
    assert seen[-1].planned == len(paths) and seen[-1].done == len(paths)
    assert all(p.planned >= p.done for p in seen)
