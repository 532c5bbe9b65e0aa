"""Long and large recordings (issue 12), end to end against the local server.

One row per recording, each chunk billed once, a failed chunk named, a killed run resumed in the middle of
a file, any rate/channels/format, compressed uploads, timeouts that follow the audio, and a slow server that
gets each request at most twice. Where the cuts fall and how chunks are encoded: test_chunking.py; the
timeout formula: test_timeouts.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from recordings import RATE, noise_bursts, speech_recording, write_audio

import stt_frames
from stt_frames.chunking import iter_chunks
from stt_frames.server import get_stats, reset_stats

HERE = Path(__file__).resolve().parent


@pytest.fixture
def server(local_server: Callable[..., str]) -> str:
    return local_server(prices={"fake/echo": 0.006})


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A 2-minute recording of data/ speech with 1.5 s pauses, as a 16 kHz mono WAV."""
    rec = speech_recording(120)
    path = write_audio(tmp_path_factory.mktemp("speech") / "talk.wav", rec.samples)
    return path, rec.seconds


def requests_by_hash(url: str) -> dict[str, int]:
    return dict(get_stats(url)["requests"])


def sent(stats: dict[str, object]) -> int:
    """Transcription requests the server received (all audio hashes)."""
    return sum(stats["requests"].values())  # type: ignore[attr-defined]


def run(df: pd.DataFrame, url: str, **kw: object) -> pd.DataFrame:
    kw.setdefault("progress", False)
    kw.setdefault("model", "fake/echo")
    return stt_frames.transcribe_column(df, client=stt_frames.Client(base_url=url), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- end to end


def test_a_long_recording_comes_back_as_one_row_each_chunk_billed_once(server: str, speech: tuple[Path, float]) -> None:
    path, seconds = speech
    reset_stats(server)
    out = run(pd.DataFrame({"path": [str(path)]}), server, chunk_seconds=30)
    row = out.iloc[0]
    assert pd.isna(row["error"]), row["error"]
    n = int(row["chunks"])
    assert n == len(list(iter_chunks(str(path), max_seconds=30))) >= 4
    assert row["text"].count("echo ") == n  # one echo per chunk, joined in one row
    assert row["seconds"] == pytest.approx(seconds, abs=0.05)
    assert row["cost"] == pytest.approx(0.006 * seconds / 60, rel=0.01)
    stats = get_stats(server)
    assert sent(stats) == n and sorted(stats["billed"].values()) == [1] * n
    info = out.attrs["stt_frames"]
    assert info["requests"] == n and info["possibly_billed_twice"] == 0
    assert info["uploaded_bytes"] < path.stat().st_size  # FLAC chunks, smaller than the WAV

    # the rerun reads the stitched row from the cache: nothing sent, same text
    again = run(pd.DataFrame({"path": [str(path)]}), server, chunk_seconds=30)
    assert again["cached"].iloc[0] and again["text"].iloc[0] == row["text"] and again["chunks"].iloc[0] == n
    assert sent(get_stats(server)) == n


def test_a_file_of_exactly_one_chunk_goes_whole(server: str, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "ten.wav", noise_bursts(4)[: RATE * 10])
    reset_stats(server)
    out = run(pd.DataFrame({"path": [str(path)]}), server, chunk_seconds=10)
    assert out["chunks"].iloc[0] == 1 and pd.isna(out["error"].iloc[0])
    assert out.attrs["stt_frames"]["uploaded_bytes"] == path.stat().st_size  # byte for byte
    flac = run(pd.DataFrame({"path": [str(path)]}), server, chunk_seconds=10, upload_format="flac")
    assert flac["chunks"].iloc[0] == 1 and flac.attrs["stt_frames"]["uploaded_bytes"] < path.stat().st_size


def test_rates_channels_and_formats_mix(server: str, tmp_path: Path) -> None:
    rec = speech_recording(45, seed=3)
    files = [
        write_audio(tmp_path / "stereo44.wav", rec.samples, rate=44_100, channels=2),
        write_audio(tmp_path / "stereo44.mp3", rec.samples, rate=44_100, channels=2),
        write_audio(tmp_path / "mono8k.flac", rec.samples, rate=8_000),
        write_audio(tmp_path / "mono16k.wav", rec.samples),
    ]
    out = run(pd.DataFrame({"path": [str(f) for f in files]}), server, chunk_seconds=15)
    assert out["error"].isna().all(), out["error"].tolist()
    assert (out["chunks"] >= 3).all()
    assert out["seconds"].to_numpy(dtype=float) == pytest.approx([rec.seconds] * 4, abs=0.15)


def test_a_file_over_max_upload_bytes_is_chunked_not_refused(server: str, tmp_path: Path) -> None:
    rec = speech_recording(40, seed=5)
    path = write_audio(tmp_path / "master.wav", rec.samples, rate=44_100, channels=2)  # ~7 MB
    out = run(pd.DataFrame({"path": [str(path)]}), server, max_upload_bytes=500_000)
    assert pd.isna(out["error"].iloc[0]) and out["chunks"].iloc[0] >= 3  # 15 s of FLAC fit in 500 kB
    assert out.attrs["stt_frames"]["uploaded_bytes"] < path.stat().st_size / 4
    refused = run(pd.DataFrame({"path": [str(path)]}), server, max_upload_bytes=500_000, chunk_seconds=None)
    assert "over max_upload_bytes=500,000" in refused["error"].iloc[0]


def test_opus_uploads_a_fraction_of_the_bytes(server: str, speech: tuple[Path, float]) -> None:
    path, seconds = speech
    out = run(pd.DataFrame({"path": [str(path)]}), server, upload_format="opus", chunk_seconds=60)
    sent = out.attrs["stt_frames"]["uploaded_bytes"]
    assert pd.isna(out["error"].iloc[0])
    # 24 kbps at most (less in the pauses): about a twentieth of the 256 kbps WAV
    assert seconds * 1_000 < sent < seconds * 24_000 / 8 * 1.1


def test_a_failed_chunk_fails_its_row_by_name_and_the_rest_stay_cached(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    rec = speech_recording(90, seed=7)
    path = write_audio(tmp_path / "talk.wav", rec.samples)
    n = len(list(iter_chunks(str(path), max_seconds=20)))
    df = pd.DataFrame({"path": [str(path)]})
    url = local_server(fail_rate=0.3, seed=2, faults=("500",))
    client = stt_frames.Client(base_url=url, max_retries=0)
    out = stt_frames.transcribe_column(df, model="fake/echo", client=client, progress=False, chunk_seconds=20)
    err = out["error"].iloc[0]
    assert isinstance(err, str) and pd.isna(out["text"].iloc[0])
    assert err.startswith("chunk ") and " of 00:01:3" in err and "500" in err, err
    first = get_stats(url)
    answered = sum(first["billed"].values())
    assert 0 < answered < n
    url = local_server()  # another server, the same endpoint identity (loopback): the cache applies
    again = run(df, url, chunk_seconds=20)
    stats = get_stats(url)
    assert pd.isna(again["error"].iloc[0]) and again["chunks"].iloc[0] == n
    assert sent(stats) == n - answered  # only the chunks that had not been answered


def test_a_killed_run_resumes_in_the_middle_of_the_file(local_server: Callable[..., str], tmp_path: Path) -> None:
    rec = speech_recording(240, seed=11)
    path = write_audio(tmp_path / "long.wav", rec.samples)
    n = len(list(iter_chunks(str(path), max_seconds=20)))
    cache = tmp_path / "cache"
    script = tmp_path / "child.py"
    script.write_text(
        "import sys, pandas as pd, stt_frames\n"
        "df = pd.DataFrame({'path': [sys.argv[1]]})\n"
        "stt_frames.transcribe_column(df, model='fake/echo', client=stt_frames.Client(base_url=sys.argv[2]),\n"
        "    cache=sys.argv[3], chunk_seconds=20, concurrency=2, progress=False)\n"
    )
    url = local_server(latency=0.4)
    child = subprocess.Popen([sys.executable, str(script), str(path), url, str(cache)])
    try:
        deadline = time.monotonic() + 60
        while sum(get_stats(url)["billed"].values()) < n // 2:
            assert child.poll() is None and time.monotonic() < deadline, "the child ended or stalled"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    billed_before = sum(get_stats(url)["billed"].values())
    assert billed_before < n
    reset_stats(url)
    out = stt_frames.transcribe_column(
        pd.DataFrame({"path": [str(path)]}),
        model="fake/echo",
        client=stt_frames.Client(base_url=url),
        cache=str(cache),
        chunk_seconds=20,
        progress=False,
    )
    stats = get_stats(url)
    assert pd.isna(out["error"].iloc[0]) and out["chunks"].iloc[0] == n
    # answers that arrived before the kill were stored: at most the ones in flight at the kill are sent again
    assert n - billed_before <= sent(stats) <= n - billed_before + 2
    assert sent(stats) < n


def test_a_slow_server_gets_each_request_at_most_twice_and_the_second_sends_are_counted(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    clips = [write_audio(tmp_path / f"c{i}.wav", noise_bursts(1, seed=i)) for i in range(3)]
    df = pd.DataFrame({"path": [str(c) for c in clips]})
    url = local_server(latency=1.5)
    client = stt_frames.Client(base_url=url, max_retries=5)
    out = stt_frames.transcribe_column(
        df, model="fake/echo", client=client, progress=False, timeout=0.4, output=tmp_path / "out.parquet"
    )
    sends = requests_by_hash(url)
    assert out["error"].str.contains("not sent a third time").all(), out["error"].tolist()
    assert sorted(sends.values()) == [2, 2, 2]
    assert out.attrs["stt_frames"]["possibly_billed_twice"] == 3
    assert stt_frames.read_results(tmp_path / "out.parquet").attrs["stt_frames"]["possibly_billed_twice"] == 3


def test_timeout_argument_is_checked_up_front(server: str) -> None:
    df = pd.DataFrame({"path": ["nope.wav"]})
    for bad in (0, -1, "10", True):
        with pytest.raises(ValueError, match="timeout must be"):
            run(df, server, timeout=bad)
    out = run(df, server, timeout=httpx.Timeout(30.0))
    assert "file not found" in out["error"].iloc[0]


def test_big_files_are_read_off_the_event_loop(server: str, tmp_path: Path) -> None:
    """A 60 MB file is hashed and decoded in a worker thread: small rows keep finishing meanwhile."""
    rec = speech_recording(60, seed=13)
    big = write_audio(tmp_path / "big.wav", np.tile(rec.samples, 6), rate=44_100, channels=2)  # ~64 MB
    small = [write_audio(tmp_path / f"s{i}.wav", noise_bursts(1, seed=100 + i)) for i in range(20)]
    df = pd.DataFrame({"path": [str(big)] + [str(s) for s in small]})
    out = run(df, server, concurrency=4)
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    assert out["chunks"].iloc[0] >= 1 and (out["chunks"].iloc[1:] == 1).all()


def test_parquet_keeps_the_chunks_column(server: str, speech: tuple[Path, float], tmp_path: Path) -> None:
    path, _ = speech
    out = run(pd.DataFrame({"path": [str(path)]}), server, chunk_seconds=30, output=tmp_path / "r.parquet")
    back = stt_frames.read_results(tmp_path / "r.parquet")
    assert str(back["chunks"].dtype) == "Int64" and back["chunks"].iloc[0] == out["chunks"].iloc[0]
    meta = back.attrs["stt_frames"]
    assert {"uploaded_bytes", "possibly_billed_twice", "requests"} <= set(meta)
    assert meta["parameters"]["chunk_seconds"] == 30
    assert json.dumps(meta)  # JSON-safe
    assert os.environ.get("OPENROUTER_API_KEY") is None


@pytest.mark.slow
def test_stitched_speech_scores_like_the_same_speech_clip_by_clip(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    """3 minutes of data/ speech cut into 45-second chunks on local/pocketsphinx-fast: one row, each chunk billed
    once, no request sent twice, and a corpus WER no more than 3 points above the clips transcribed one by one."""
    pytest.importorskip("pocketsphinx", reason="needs the local extra (pocketsphinx)")
    rec = speech_recording(180, seed=17)
    path = write_audio(tmp_path / "talk.flac", rec.samples)
    n = len(list(iter_chunks(str(path), max_seconds=45)))
    model = "local/pocketsphinx-fast"
    url = local_server()
    client = stt_frames.Client(base_url=url)
    long = stt_frames.transcribe_column(
        pd.DataFrame({"path": [str(path)], "reference": [rec.reference], "language": ["en"]}),
        model=model,
        client=client,
        chunk_seconds=45,
        progress=False,
        cache=False,
    )
    stats = get_stats(url)
    reset_stats(url)
    clips = stt_frames.transcribe_column(
        pd.DataFrame({"path": rec.clips, "reference": rec.references, "language": "en"}),
        model=model,
        client=client,
        progress=False,
        cache=False,
    )
    assert pd.isna(long["error"].iloc[0]) and long["chunks"].iloc[0] == n >= 4
    assert sent(stats) == n and sorted(stats["billed"].values()) == [1] * n  # each chunk once, none twice
    assert clips["error"].isna().all()
    stitched = stt_frames.score(long, reference="reference")
    one_by_one = stt_frames.score(clips, reference="reference")
    wer_long = stitched["word_errors"].sum() / stitched["ref_words"].sum()
    wer_clips = one_by_one["word_errors"].sum() / one_by_one["ref_words"].sum()
    print(f"stitched WER {wer_long:.3f} vs clip by clip {wer_clips:.3f} over {rec.seconds:.0f} s, {n} chunks")
    assert wer_long <= wer_clips + 0.03  # cutting at pauses costs no accuracy (here it is often a little better)


def test_a_progress_callback_sees_the_chunks_answered(server: str, speech: tuple[Path, float]) -> None:
    path, _ = speech
    seen: list[stt_frames.RunProgress] = []
    out = run(pd.DataFrame({"path": [str(path)]}), server, chunk_seconds=30, cache=False, progress=seen.append)
    n = int(out["chunks"].iloc[0])
    assert seen and seen[-1].done == 1 and seen[-1].answered == n and seen[-1].requests == n
    assert seen[0].chunks_expected >= n - 1  # estimated from the duration before the first chunk went out
    assert [p.answered for p in seen] == sorted(p.answered for p in seen)
    broken = run(pd.DataFrame({"path": [str(path)]}), server, progress=lambda p: 1 / 0)  # a bad callback loses nothing
    assert pd.isna(broken["error"].iloc[0])
