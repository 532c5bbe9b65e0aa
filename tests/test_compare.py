"""compare() on data/ with the real pocketsphinx engines: shapes, WER, failures, the grid-wide cap, output."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

import stt_frames
from stt_frames.server import get_stats

pytest.importorskip("pocketsphinx", reason="local/pocketsphinx needs the 'local' extra")
pytest.importorskip("jiwer", reason="scoring needs the 'eval' extra")

DATA = Path(__file__).resolve().parent.parent / "data"
MODELS = ["local/pocketsphinx", "local/pocketsphinx-fast"]
LANGUAGES = [None, "en"]


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance, written out here independently of jiwer."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


@pytest.fixture(scope="module")
def grid(local_server: Callable[..., str]) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]]:
    df = pd.read_csv(DATA / "samples.csv")
    df = df[df["language"] == "en"].head(8).reset_index(drop=True)
    df["path"] = [str(DATA / p) for p in df["path"]]
    df.loc[len(df)] = {"path": str(DATA / "missing.wav"), "language": "en", "reference": "nothing here"}
    url = local_server()
    results = stt_frames.compare(
        df,
        models=MODELS,
        languages=LANGUAGES,
        reference="reference",
        client=stt_frames.Client(base_url=url),
        progress=False,
    )
    stats = get_stats(url)
    yield df, results, stats


def test_shape_one_row_per_input_model_language(grid: tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]) -> None:
    df, results, _ = grid
    assert len(results) == len(df) * len(MODELS) * len(LANGUAGES)
    cells = results.groupby(["model", "language"], dropna=False).size()
    assert len(cells) == 4 and (cells == len(df)).all()
    for col in (
        "model",
        "language",
        "text",
        "seconds",
        "cost",
        "error",
        "cached",
        "latency_s",
        "wer",
        "cer",
        "row_id",
        "run_wall_s",
        "input_language",
        "reference",
    ):
        assert col in results.columns, col
    assert results["language"].isna().sum() == len(df) * len(MODELS)  # None = auto-detect, kept as <NA>
    assert set(results["row_id"]) == set(df.index)


def test_wer_equals_an_independent_computation(grid: tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]) -> None:
    _, results, _ = grid
    board = stt_frames.leaderboard(results)
    for (model, language), cell in results.groupby(["model", "language"], dropna=False):
        ok = cell[cell["text"].notna()]
        errors = sum(_edit_distance(_words(r), _words(h)) for r, h in zip(ok["reference"], ok["text"], strict=True))
        words = sum(len(_words(r)) for r in ok["reference"])
        row = board[(board["model"] == model) & (board["language"] == ("auto" if pd.isna(language) else language))]
        assert row["wer"].iloc[0] == pytest.approx(errors / words, abs=1e-9), (model, language)
    full = board[board["model"] == "local/pocketsphinx"]["wer"]
    fast = board[board["model"] == "local/pocketsphinx-fast"]["wer"]
    assert (full < 0.35).all(), full  # real recognition on the English clips
    assert fast.min() > full.max()  # the fast model is a genuinely worse second model
    print("\npocketsphinx WER on English clips:\n", board[["model", "language", "wer", "cer"]].to_string())


def test_failed_rows_are_counted_not_dropped(grid: tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]) -> None:
    _, results, _ = grid
    board = stt_frames.leaderboard(results)
    assert (board["n_errors"] == 1).all() and (board["n"] == 9).all()
    failed = results[results["error"].notna()]
    assert len(failed) == 4 and failed["error"].str.contains("file not found").all()
    assert failed["wer"].isna().all()


def test_each_cell_sent_each_clip_once(grid: tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]) -> None:
    _, _, stats = grid
    billed = stats["billed"]
    assert isinstance(billed, dict) and len(billed) == 8
    assert set(billed.values()) == {4}  # 2 models x 2 languages, never twice in a cell


def test_plot_renders_png(grid: tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]) -> None:
    pytest.importorskip("matplotlib", reason="plots need the 'plot' extra")
    _, results, _ = grid
    fig = stt_frames.plot_leaderboard(results)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG") and len(fig.axes) == 2


def test_spending_cap_applies_to_the_whole_grid(local_server: Callable[..., str]) -> None:
    df = pd.read_csv(DATA / "samples.csv").head(6)
    df["path"] = [str(DATA / p) for p in df["path"]]
    url = local_server(prices={"fake/echo": 0.6})
    one = stt_frames.transcribe_column(
        df.head(1), model="fake/echo", client=stt_frames.Client(base_url=url), progress=False, cache=False
    )["cost"].iloc[0]
    before = get_stats(url)["cost"]
    cap = one * 8  # less than the grid's 6 clips x 2 languages
    results = stt_frames.compare(
        df,
        models=["fake/echo"],
        languages=["en", "fr"],
        max_cost=cap,
        client=stt_frames.Client(base_url=url),
        progress=False,
    )
    spent = get_stats(url)["cost"] - before
    assert spent <= cap + 1e-12
    assert results["error"].str.contains("max_cost", na=False).sum() >= 3
    assert results[results["language"] == "fr"]["error"].notna().any()


def test_long_recordings_are_chunked_in_every_cell(local_server: Callable[..., str], tmp_path: Path) -> None:
    """chunk_seconds, max_upload_bytes and upload_format reach every cell: the long file is cut into the
    same chunks for each language, the short clip goes whole, and the server gets one request per chunk."""
    from recordings import speech_recording, write_audio

    rec = speech_recording(40, seed=2)
    long = write_audio(tmp_path / "long.wav", rec.samples)
    df = pd.DataFrame({"path": [str(long), str(DATA / pd.read_csv(DATA / "samples.csv")["path"].iloc[0])]})
    url = local_server()
    results = stt_frames.compare(
        df,
        models=["fake/echo"],
        languages=[None, "en"],
        client=stt_frames.Client(base_url=url),
        progress=False,
        chunk_seconds=15,
        max_upload_bytes=2**20,
        upload_format="flac",
    )
    stats = get_stats(url)
    assert results["error"].isna().all(), results["error"].dropna().tolist()
    assert str(results["chunks"].dtype) == "Int64"
    chunks = results.groupby("row_id")["chunks"].agg(["min", "max"])
    assert chunks.loc[0, "min"] == chunks.loc[0, "max"] >= 3  # 40 s in chunks of at most 15 s, the same per cell
    assert (chunks.loc[1] == 1).all()  # a short clip goes in one request
    assert stats["total_requests"] == int(results["chunks"].sum()) == results.attrs["stt_frames"]["requests"]
    assert results.loc[results["row_id"] == 0, "seconds"].to_numpy(dtype=float) == pytest.approx(rec.seconds, abs=0.1)


def test_timeout_reaches_every_cell(local_server: Callable[..., str]) -> None:
    """A server slower than ``timeout=``: each cell's request is sent twice, then fails and says why."""
    df = pd.DataFrame({"path": [str(DATA / pd.read_csv(DATA / "samples.csv")["path"].iloc[0])]})
    url = local_server(latency=2.0)
    results = stt_frames.compare(
        df,
        models=["fake/echo"],
        languages=["en", "fr"],
        client=stt_frames.Client(base_url=url),
        progress=False,
        cache=False,
        timeout=0.3,
    )
    stats = get_stats(url)
    assert results["error"].str.contains("not sent a third time").all(), results["error"].tolist()
    assert stats["total_requests"] == 4  # 2 cells x 2 sends
