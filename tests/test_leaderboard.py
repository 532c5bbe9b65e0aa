"""The leaderboard: corpus-pooled WER, failures kept visible, cost, latency and throughput arithmetic."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import stt_frames

DATA = Path(__file__).resolve().parent.parent / "data"

# Spelled out here, not imported: the spec the table must meet.
LEADERBOARD_COLUMNS = (
    "model",
    "language",
    "n",
    "n_errors",
    "n_scored",
    "wer",
    "cer",
    "cost",
    "audio_seconds",
    "cost_per_audio_hour",
    "latency_p50_s",
    "latency_p95_s",
    "throughput",
)
pytest.importorskip("jiwer", reason="scoring needs the eval extra")


def levenshtein(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def results(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A long results table shaped like compare's, with its nullable dtypes."""
    defaults: dict[str, Any] = {
        "model": "m",
        "language": None,
        "reference": "",
        "text": None,
        "error": None,
        "cost": None,
        "seconds": None,
        "latency_s": None,
        "run_wall_s": None,
    }
    df = pd.DataFrame([{**defaults, **row} for row in rows])
    dtypes = {"model": "string", "language": "string", "reference": "string", "text": "string"}
    dtypes |= {"error": "string", "cost": "Float64", "seconds": "Float64"}
    dtypes |= {"latency_s": "Float64", "run_wall_s": "Float64"}
    return df.astype(dtypes)


def test_corpus_wer_pools_errors_and_differs_from_the_mean() -> None:
    pairs = [
        ("a b c d e f g h i j", "a b c d e f g h i j"),  # 0 errors / 10 words
        ("k l", "k m"),  # 1 error / 2 words
        ("the quick brown fox", "the quack brown fox jumps"),  # 2 errors / 4 words
    ]
    df = results([{"reference": r, "text": h} for r, h in pairs])
    errors = sum(levenshtein(r.split(), h.split()) for r, h in pairs)
    words = sum(len(r.split()) for r, _ in pairs)
    mean_of_rows = sum(levenshtein(r.split(), h.split()) / len(r.split()) for r, h in pairs) / len(pairs)

    board = stt_frames.leaderboard(df, reference="reference", normalizer=None)
    assert board.loc[0, "wer"] == pytest.approx(errors / words) == pytest.approx(3 / 16)
    assert board.loc[0, "wer"] != pytest.approx(mean_of_rows)
    chars = [(list(r), list(h)) for r, h in pairs]
    expected_cer = sum(levenshtein(r, h) for r, h in chars) / sum(len(r) for r, _ in chars)
    assert board.loc[0, "cer"] == pytest.approx(expected_cer)
    # Already-scored results (what compare returns) give the same numbers without reference=.
    scored = stt_frames.score(df, normalizer=None)
    assert stt_frames.leaderboard(scored).loc[0, "wer"] == pytest.approx(errors / words)


def test_columns_and_dtypes() -> None:
    board = stt_frames.leaderboard(results([{"reference": "a", "text": "a"}]), reference="reference")
    assert tuple(board.columns) == LEADERBOARD_COLUMNS
    assert {str(board[c].dtype) for c in ("n", "n_errors", "n_scored")} == {"Int64"}
    assert str(board["wer"].dtype) == "Float64" and str(board["language"].dtype) == "string"


def test_failed_rows_are_counted_not_scored_and_not_dropped() -> None:
    df = results(
        [
            {"reference": "hello world", "text": "hello world", "seconds": 10.0},
            {"reference": "hello world", "text": "hello", "seconds": 10.0},
            {"reference": "hello world", "text": None, "error": "502: upstream failed", "seconds": 10.0},
        ]
    )
    row = stt_frames.leaderboard(df, reference="reference").iloc[0]
    assert (row["n"], row["n_errors"], row["n_scored"]) == (3, 1, 2)
    assert row["wer"] == pytest.approx(1 / 4)
    assert row["audio_seconds"] == 20.0  # audio that was transcribed


def test_empty_references_never_divide_by_zero() -> None:
    df = results(
        [
            {"model": "silent", "reference": "", "text": "ghost words"},
            {"model": "silent", "reference": "", "text": ""},
            {"model": "mixed", "reference": "", "text": "x y"},
            {"model": "mixed", "reference": "a b", "text": "a b"},
        ]
    )
    board = stt_frames.leaderboard(df, reference="reference").set_index("model")
    assert pd.isna(board.loc["silent", "wer"]) and pd.isna(board.loc["silent", "cer"])
    assert board.loc["silent", "n_scored"] == 2
    assert board.loc["mixed", "wer"] == pytest.approx(2 / 2)  # the empty reference's insertions count


def test_auto_language_sorting_and_unscored_groups_last() -> None:
    df = results(
        [
            {"model": "good", "language": None, "reference": "a b c d", "text": "a b c d"},
            {"model": "good", "language": "en", "reference": "a b c d", "text": "a b c x"},
            {"model": "bad", "language": "en", "reference": "a b c d", "text": "x y c d"},
            {"model": "broken", "language": "en", "reference": "a b c d", "error": "500: boom"},
        ]
    )
    board = stt_frames.leaderboard(df, reference="reference")
    assert list(zip(board["model"], board["language"], strict=True)) == [
        ("good", "auto"),
        ("good", "en"),
        ("bad", "en"),
        ("broken", "en"),
    ]
    assert list(board["wer"].iloc[:3]) == [0, 0.25, 0.5]
    assert pd.isna(board["wer"].iloc[3]) and board["n_errors"].iloc[3] == 1


def test_cost_per_audio_hour_latency_percentiles_and_throughput() -> None:
    rows = [
        {"cost": 0.01, "seconds": 30.0, "latency_s": float(i), "run_wall_s": 30.0, "text": "t"} for i in range(1, 11)
    ]
    rows[0]["cost"] = None  # a provider that reported no cost for one row
    row = stt_frames.leaderboard(results(rows)).iloc[0]
    assert row["cost"] == pytest.approx(0.09)
    assert row["audio_seconds"] == 300.0
    assert row["cost_per_audio_hour"] == pytest.approx(0.09 / 300 * 3600)
    assert row["latency_p50_s"] == pytest.approx(5.5)
    assert row["latency_p95_s"] == pytest.approx(9.55)  # linear interpolation between 9 and 10
    assert row["throughput"] == pytest.approx(300 / 55)  # 300 s of audio in 1 + 2 + ... + 10 s of latency
    assert pd.isna(row["wer"])  # no reference given, no scores present


def test_missing_measurements_give_na_not_errors() -> None:
    df = results(
        [
            {"model": "zero-wall", "text": "t", "seconds": 5.0, "latency_s": 0.0, "cost": 0.0},
            {"model": "nothing", "text": "t"},
        ]
    )
    board = stt_frames.leaderboard(df).set_index("model")
    assert pd.isna(board.loc["zero-wall", "throughput"])
    assert board.loc["zero-wall", "cost_per_audio_hour"] == 0
    for name in ("cost", "audio_seconds", "cost_per_audio_hour", "latency_p50_s", "throughput"):
        assert pd.isna(board.loc["nothing", name])
    bare = stt_frames.leaderboard(pd.DataFrame({"model": ["m"], "text": ["hi"]})).iloc[0]
    assert (bare["language"], bare["n"], bare["n_errors"]) == ("auto", 1, 0)


def test_needs_a_model_column() -> None:
    with pytest.raises(ValueError, match="'model' column"):
        stt_frames.leaderboard(pd.DataFrame({"text": ["hi"]}))


def test_the_function_is_not_shadowed_by_its_module() -> None:
    """``import stt_frames.plot`` (or scoring) must leave ``stt_frames.leaderboard`` the function."""
    code = (
        "import stt_frames.plot, stt_frames.scoring, stt_frames._leaderboard, stt_frames._compare, stt_frames\n"
        "assert callable(stt_frames.leaderboard), stt_frames.leaderboard\n"
        "assert callable(stt_frames.compare), stt_frames.compare\n"
        "assert stt_frames.leaderboard.__name__ == 'leaderboard'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_throughput_and_latency_of_cached_rows_come_from_their_first_run() -> None:
    """A cache hit carries the latency recorded when it was first transcribed: a rerun from the cache shows the
    same throughput and latency as the run that sent it (once <NA> when every row came from the cache)."""

    def run(cached: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": ["m", "m", "m"],
                "language": pd.array([pd.NA] * 3, dtype="string"),
                "text": ["a", "b", None],
                "seconds": pd.array([10.0, 30.0, 50.0], dtype="Float64"),
                "latency_s": pd.array([1.0, 3.0, 9.0], dtype="Float64"),
                "cached": pd.array([cached, cached, False], dtype="boolean"),
                "error": pd.array([None, None, "500: failed"], dtype="string"),
                "run_wall_s": pd.array([0.01 if cached else 3.0] * 3, dtype="Float64"),
            }
        )

    first, rerun = (stt_frames.leaderboard(run(cached)).iloc[0] for cached in (False, True))
    assert first["throughput"] == pytest.approx(40 / 4)  # the failed row is left out
    assert rerun["throughput"] == pytest.approx(first["throughput"])
    assert (rerun["latency_p50_s"], rerun["latency_p95_s"]) == (first["latency_p50_s"], first["latency_p95_s"])
    assert rerun["audio_seconds"] == 40.0


def test_throughput_of_a_cached_compare_rerun_is_recorded(local_server: Callable[..., str], tmp_path: Path) -> None:
    """End to end: compare twice on the local server; the second run is all cache hits and keeps its throughput."""
    pytest.importorskip("starlette", reason="the local server needs the 'server' extra")
    df = pd.read_csv(DATA / "samples.csv").head(4)
    df["path"] = str(DATA) + "/" + df["path"]
    with stt_frames.Client(base_url=local_server()) as client:
        boards = []
        for _ in range(2):
            results = stt_frames.compare(df, models=["fake/echo"], client=client, cache=tmp_path, progress=False)
            boards.append(stt_frames.leaderboard(results).iloc[0])
        assert results["cached"].all()
    assert pd.notna(boards[1]["throughput"]) and boards[1]["throughput"] == pytest.approx(boards[0]["throughput"])
    assert boards[1]["latency_p50_s"] == pytest.approx(boards[0]["latency_p50_s"])
