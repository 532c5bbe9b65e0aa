"""The result columns are declared once (``stt_frames.schema``): the frame, Parquet and the docs follow it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import stt_frames
from stt_frames.cache import CacheEntry
from stt_frames.errors import MalformedResponseError
from stt_frames.schema import CHUNKS_FIELD, RESULT_COLUMNS, RowResult, describe_columns
from stt_frames.types import Transcription

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """A run that needs no server: both rows fail before any request (a missing file, not a path)."""
    df = pd.DataFrame({"path": [str(tmp_path / "missing.wav"), 42]})
    out_file = tmp_path / "out.parquet"
    out = stt_frames.transcribe_column(
        df, model="fake/echo", client=stt_frames.Client(base_url="http://127.0.0.1:9/api/v1"),
        progress=False, cache=False, output=out_file,
    )  # fmt: skip
    return out, out_file


def test_the_declaration_is_the_dataclass() -> None:
    declared = [f.name for f in fields(RowResult) if f.name != "exception"]
    assert list(RESULT_COLUMNS) == declared
    assert "error_type" in RESULT_COLUMNS and "chunks" in RESULT_COLUMNS


def test_the_frame_and_the_parquet_file_follow_it(tmp_path: Path) -> None:
    out, out_file = _run(tmp_path)
    assert list(out.columns) == ["path", *RESULT_COLUMNS]
    for name, (dtype, arrow) in RESULT_COLUMNS.items():
        assert str(out[name].dtype) == dtype, name
        assert pq.read_schema(out_file).field(name).type == arrow, name
    back = stt_frames.read_results(out_file)
    assert [str(back[n].dtype) for n in RESULT_COLUMNS] == [d for d, _ in RESULT_COLUMNS.values()]


def test_error_type_names_the_class_of_each_failure(tmp_path: Path) -> None:
    out, _ = _run(tmp_path)
    assert out["error_type"].tolist() == ["AudioError", "AudioError"]
    assert "file not found" in out["error"].iloc[0]
    assert isinstance(out["error"].iloc[1], str) and "expected a path" in out["error"].iloc[1]


def test_the_docs_list_the_columns_in_order() -> None:
    readme = (ROOT / "README.md").read_text()
    sentence = re.search(r"It adds (.*?)\(nullable dtypes", readme, re.S)
    assert sentence is not None
    assert re.findall(r"`(\w+)`", sentence.group(1)) == list(RESULT_COLUMNS)
    table = describe_columns()
    assert all(f"| `{name}` | {dtype} |" in table for name, (dtype, _) in RESULT_COLUMNS.items())
    doc = stt_frames.transcribe_column.__doc__ or ""
    assert all(f"``{name}``" in doc for name in RESULT_COLUMNS)


@pytest.mark.parametrize(
    "response",
    [
        {
            "text": "hi",
            "usage": {"cost": 0.25, "seconds": 1.5, "input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        },
        {"text": "hi", "usage": {"cost": 0, "seconds": 2}},  # integers where floats are declared
        {"text": "hi", "usage": {"input_tokens": 3.0, "total_tokens": 5.0}},  # whole floats where ints are
        {"text": "hi", "usage": None},
        {"text": ""},
        {"text": "joined", "usage": {"seconds": 4.0}, CHUNKS_FIELD: 3},
        {"text": "odd chunks", CHUNKS_FIELD: True},
    ],
)
@pytest.mark.parametrize("audio_seconds", [None, 2.5])
def test_a_cached_row_reads_as_the_checked_answer_would(response: dict[str, Any], audio_seconds: float | None) -> None:
    """``from_entry`` reads well-formed entries directly; the result is the one the full check gives."""
    entry = CacheEntry("v1:k", response, audio_seconds, 0.5, 0.0)
    chunks = response.get(CHUNKS_FIELD, 1)
    checked = RowResult.from_answer(
        Transcription.from_json(response), audio_seconds=audio_seconds, latency_s=0.5, cached=True,
        chunks=chunks if type(chunks) is int else 1,
    )  # fmt: skip
    got = RowResult.from_entry(entry)
    assert got == checked
    assert [type(getattr(got, f.name)) for f in fields(RowResult)] == [
        type(getattr(checked, f.name)) for f in fields(RowResult)
    ]


@pytest.mark.parametrize(
    "response",
    [{"text": 3}, {"usage": {}}, {"text": "x", "usage": {"cost": "1"}}, {"text": "x", "usage": {"cost": float("nan")}}],
)
def test_a_malformed_cached_entry_is_a_clear_error(response: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError):
        RowResult.from_entry(CacheEntry("v1:k", response, None, None, 0.0))
