"""A run fails fast, and costs nothing, when it cannot work: bad languages, result columns already there,
an output whose format is unknown. Each says what to do instead."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import stt_frames

NOWHERE = "http://127.0.0.1:9/api/v1"  # nothing listens: any request would fail loudly


def run(df: pd.DataFrame, **kw: object) -> pd.DataFrame:
    kw.setdefault("model", "fake/echo")
    return stt_frames.transcribe_column(
        df,
        client=stt_frames.Client(base_url=NOWHERE),
        progress=False,
        cache=False,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("value", "hint"), [("english", "'en'"), ("German", "'de'"), ("en-US", "'en'"), ("espanol", "'es'")]
)
def test_a_language_name_gets_one_error_that_suggests_the_code(value: str, hint: str) -> None:
    with pytest.raises(ValueError, match=f"not an ISO-639-1 code; did you mean {hint}"):
        run(pd.DataFrame({"path": ["a.wav"]}), language=value)


def test_language_column_values_are_checked_before_any_request() -> None:
    df = pd.DataFrame({"path": ["a.wav"] * 4, "lang": ["en", "english", None, "Deutsch"]})
    with pytest.raises(ValueError, match=r"'english' \(did you mean 'en'\?\), 'Deutsch' \(did you mean 'de'\?\)"):
        run(df, language_column="lang")


def test_language_codes_are_normalised(tmp_path: Path) -> None:
    df = pd.DataFrame({"path": [str(tmp_path / "missing.wav")], "lang": ["EN"]})
    assert "file not found" in run(df, language="FR", language_column="lang")["error"].iloc[0]


def test_existing_result_columns_are_not_overwritten_silently(tmp_path: Path) -> None:
    df = pd.DataFrame({"path": [str(tmp_path / "missing.wav")], "text": ["my own notes"]})
    with pytest.raises(ValueError, match=r"already has result columns \(text\).*prefix=.*overwrite=True"):
        run(df)
    assert run(df, prefix="stt_")["text"].iloc[0] == "my own notes"
    replaced = run(df, overwrite=True)
    assert pd.isna(replaced["text"].iloc[0]) and "file not found" in replaced["error"].iloc[0]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_output_writes_the_format_its_extension_names(tmp_path: Path, suffix: str) -> None:
    df = pd.DataFrame({"path": [str(tmp_path / "missing.wav")]}, index=["row-a"])
    target = tmp_path / f"out{suffix}"
    out = run(df, output=target)
    raw = target.read_bytes()
    if suffix == ".csv":
        back = pd.read_csv(target, index_col=0)
        assert list(back.index) == ["row-a"] and "file not found" in back["error"].iloc[0]
    elif suffix == ".jsonl":
        record = json.loads(raw.decode().splitlines()[0])
        assert record["error_type"] == "AudioError" and record["text"] is None
    else:
        assert raw[:4] == b"PAR1"
        assert stt_frames.read_results(target)["error"].iloc[0] == out["error"].iloc[0]


def test_an_unknown_output_format_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot tell the format from '\.xlsx'"):
        run(pd.DataFrame({"path": ["a.wav"]}), output=tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()


def test_no_key_for_a_remote_api_fails_before_any_file_is_read(tmp_path: Path) -> None:
    df = pd.DataFrame({"path": [str(tmp_path / f"{i}.wav") for i in range(10_000)]})
    cache = tmp_path / "cache"
    with pytest.raises(stt_frames.AuthenticationError, match=r"no API key for https://openrouter\.ai/api/v1"):
        stt_frames.transcribe_column(df, model="openai/whisper-1", progress=False, cache=cache)
    assert not cache.exists()  # not even the cache was opened


def test_an_unreachable_server_stops_the_run_at_once_naming_it() -> None:
    root = Path(__file__).resolve().parent.parent / "data"
    df = pd.DataFrame({"path": sorted(str(p) for p in (root / "en").glob("*.wav"))})
    with pytest.raises(stt_frames.APIConnectionError, match=r"cannot reach http://127\.0\.0\.1:9/api/v1") as info:
        run(df, concurrency=2)
    assert info.value.partial is not None and len(info.value.partial) == len(df)  # the rows, none sent


def test_the_same_400_on_row_after_row_stops_the_run(server_url: str) -> None:
    root = Path(__file__).resolve().parent.parent / "data"
    df = pd.DataFrame({"path": sorted(str(p) for p in (root / "en").glob("*.*"))})
    assert len(df) > 6
    with (
        stt_frames.Client(base_url=server_url) as client,
        pytest.raises(stt_frames.BadRequestError, match="the same 400 on 5 rows in a row") as info,
    ):
        stt_frames.transcribe_column(
            df, model="fake/echo", client=client, progress=False, cache=False, concurrency=1,
            extra_body={"temperature": 7},  # a parameter the server refuses, on every row
        )  # fmt: skip
    partial = info.value.partial
    types = partial["error_type"].value_counts().to_dict()
    assert types == {"BadRequestError": 5, "NotSentError": len(df) - 5} and partial["text"].isna().all()


@pytest.fixture
def server_url(local_server: Callable[..., str]) -> str:
    return local_server()
