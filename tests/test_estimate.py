"""``estimate`` and ``dry_run``: what a run would send and cost, known before anything is sent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from recordings import speech_recording, write_audio

import stt_frames
from stt_frames._estimate import ESTIMATE_COLUMNS, price_per_minute
from stt_frames.server import get_stats

ROOT = Path(__file__).resolve().parent.parent
PRICE = 0.006  # USD per audio minute on the local server's fake/echo


@pytest.fixture
def server(local_server: Callable[..., str]) -> str:
    return local_server(prices={"fake/echo": PRICE})


def samples() -> pd.DataFrame:
    df = pd.read_csv(ROOT / "data" / "samples.csv")
    df["path"] = [str(ROOT / "data" / p) for p in df["path"]]
    return df


def test_the_estimate_matches_the_cost_the_run_then_reports(server: str, tmp_path: Path) -> None:
    df = samples()
    with stt_frames.Client(base_url=server) as client:
        _estimate_then_run(df, client, server, tmp_path)


def _estimate_then_run(df: pd.DataFrame, client: stt_frames.Client, server: str, tmp_path: Path) -> None:
    before = get_stats(server)["total_requests"]
    est = stt_frames.estimate(df, models=["fake/echo", "local/pocketsphinx"], client=client, cache=tmp_path)
    assert get_stats(server)["total_requests"] == before  # nothing was sent
    assert list(est.columns) == list(ESTIMATE_COLUMNS) and list(est["model"]) == ["fake/echo", "local/pocketsphinx"]
    row = est.iloc[0]
    assert row["rows"] == row["files"] == row["rows_to_send"] == row["requests"] == len(df)
    assert row["rows_cached"] == 0 and row["price_per_minute"] == pytest.approx(PRICE)
    assert row["upload_bytes"] == sum(Path(p).stat().st_size for p in df["path"])
    out = stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=tmp_path, progress=False)
    assert out["error"].isna().all()
    assert row["projected_cost"] == pytest.approx(out["cost"].sum(), rel=0.01)
    assert row["audio_hours"] * 3600 == pytest.approx(out["seconds"].sum(), rel=0.01)
    # the rerun is known to cost nothing
    again = stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=tmp_path, dry_run=True)
    assert again["rows_cached"].iloc[0] == len(df) and again["projected_cost"].iloc[0] == 0


def test_a_long_recording_is_counted_in_chunks(server: str, tmp_path: Path) -> None:
    rec = speech_recording(100, seed=31)
    path = write_audio(tmp_path / "talk.wav", rec.samples, rate=44_100, channels=2)
    with stt_frames.Client(base_url=server) as client:
        est = stt_frames.estimate(
            pd.DataFrame({"path": [str(path)]}), model="fake/echo", client=client, chunk_seconds=30, cache=False
        )
    assert est["requests"].iloc[0] == 4  # 100 s in chunks of at most 30 s
    assert est["upload_bytes"].iloc[0] < path.stat().st_size / 5  # 16 kHz mono FLAC, not the 44.1 kHz stereo WAV
    assert est["projected_cost"].iloc[0] == pytest.approx(rec.seconds / 60 * PRICE, rel=0.01)


def test_compare_dry_run_has_one_row_per_cell_and_sends_nothing(server: str) -> None:
    before = get_stats(server)["total_requests"]
    with stt_frames.Client(base_url=server) as client:
        est = stt_frames.compare(
            samples().head(3), models=["fake/echo"], languages=[None, "en"], dry_run=True, client=client, cache=False
        )
    assert get_stats(server)["total_requests"] == before
    assert est["model"].tolist() == ["fake/echo"] * 2 and est["language"].isna().tolist() == [True, False]


def test_bad_rows_and_unknown_prices() -> None:
    assert price_per_minute({"pricing": {"per_minute": "0.006"}}) == pytest.approx(0.006)
    assert price_per_minute({"pricing": {"audio": "0.0001"}}) == pytest.approx(0.006)
    assert price_per_minute({"pricing": {"prompt": "0"}}) is None and price_per_minute({}) is None
    df = pd.DataFrame({"path": ["/no/such.wav", 42]})
    with stt_frames.Client(base_url="http://127.0.0.1:9/api/v1") as client:
        est = stt_frames.estimate(df, model="x/y", client=client)
    assert est["rows_failing"].iloc[0] == 2 and pd.isna(est["projected_cost"].iloc[0])
    with pytest.raises(ValueError, match="model="):
        stt_frames.estimate(df)


def test_the_cli_dry_run_prints_the_estimate_and_sends_nothing(server: str) -> None:
    before = get_stats(server)["total_requests"]
    result = subprocess.run(
        [sys.executable, "-m", "stt_frames.cli", "transcribe", str(ROOT / "data" / "samples.csv"),
         "--model", "fake/echo", "--base-url", server, "--dry-run"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "projected_cost" in result.stdout and "fake/echo" in result.stdout
    assert "nothing was sent" in result.stderr
    assert get_stats(server)["total_requests"] == before
