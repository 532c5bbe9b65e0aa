"""Results in and out (stt_frames/results.py): Parquet with the declared schema and run metadata, CSV, JSON lines,
and hive-partitioned datasets that pandas, pyarrow and DuckDB read back.

The frames here are built by hand (no server): what a run puts in them is tested in test_frame.py, and
test_schema.py checks a real run's file against the declaration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import stt_frames
from stt_frames.results import (
    METADATA_KEY,
    RESULT_COLUMNS,
    empty_results,
    output_format,
    read_results,
    result_schema,
    write_dataset,
    write_results,
)
from stt_frames.schema import GRID_COLUMNS


def results(prefix: str = "") -> pd.DataFrame:
    """Three rows as a run leaves them: one answered, one failed, one not run; a labelled index and an input
    column of mixed types."""
    index = pd.Index(["clip-a", "clip-b", "clip-c"], name="clip")
    df = pd.DataFrame({"path": ["a.wav", "b.wav", "c.wav"], "speaker": [1, "two", None]}, index=index)
    df = df.assign(**empty_results(index, prefix))
    p = prefix
    df.loc["clip-a", [f"{p}text", f"{p}seconds", f"{p}seconds_source", f"{p}cost", f"{p}cached", f"{p}chunks"]] = [
        "hello there", 1.5, "server", 0.0015, False, 1,
    ]  # fmt: skip
    df.loc["clip-a", [f"{p}input_tokens", f"{p}output_tokens", f"{p}total_tokens"]] = [15, 3, 18]
    df.loc["clip-b", [f"{p}error", f"{p}error_type", f"{p}cached"]] = ["file not found", "AudioError", False]
    return df


def long_results() -> pd.DataFrame:
    """A compare grid's long results: 2 models x 2 languages (one of them auto: <NA>) x 3 rows."""
    rows = []
    for model in ("fake/echo", "local/pocketsphinx"):
        for language in ("en", None):
            for row_id in range(3):
                rows.append({"row_id": row_id, "model": model, "language": language, "path": f"{row_id}.wav"})
    df = pd.DataFrame(rows)
    df["model"] = df["model"].astype("string")
    df["language"] = df["language"].astype("string")
    df = df.assign(**empty_results(df.index))
    df["text"] = pd.array([f"t{i}" for i in range(len(df))], dtype="string")
    df["wer"] = pd.array([i / 10 for i in range(len(df))], dtype="Float64")
    df["cost"] = pd.array([0.001] * len(df), dtype="Float64")
    return df


# --- one file ----------------------------------------------------------------------------------------------


def test_a_parquet_round_trip_keeps_values_dtypes_index_and_na(tmp_path: Path) -> None:
    df = results()
    target = write_results(df, tmp_path / "run.parquet", metadata={"model": "fake/echo"})
    assert target == tmp_path / "run.parquet"
    back = read_results(target)
    expected = df.assign(speaker=pd.array(["1", "two", pd.NA], dtype="string"))  # mixed types become text
    pd.testing.assert_frame_equal(back, expected)
    assert [str(back[name].dtype) for name in RESULT_COLUMNS] == [dtype for dtype, _ in RESULT_COLUMNS.values()]
    assert back.index.name == "clip" and list(back.index) == ["clip-a", "clip-b", "clip-c"]
    assert back.loc["clip-c"][list(RESULT_COLUMNS)].isna().all()  # not run: <NA> everywhere, no sentinel
    assert back["cached"].tolist() == [False, False, pd.NA]


def test_the_file_has_the_declared_arrow_types_even_for_empty_columns(tmp_path: Path) -> None:
    df = results()
    write_results(df, tmp_path / "run.parquet")
    schema = pq.read_schema(tmp_path / "run.parquet")
    for name, (_, arrow) in RESULT_COLUMNS.items():
        assert schema.field(name).type == arrow, name  # latency_s is all <NA>, still a double
    assert result_schema(df.drop(columns="speaker")).field("latency_s").type == RESULT_COLUMNS["latency_s"][1]


def test_metadata_is_json_under_the_stt_frames_key(tmp_path: Path) -> None:
    params = {"temperature": 0.2, "timeout": {"read": 60.0}}
    before = datetime.now(UTC).replace(microsecond=0)
    write_results(results(), tmp_path / "run.parquet", metadata={"model": "fake/echo", "parameters": params})
    raw = pq.read_schema(tmp_path / "run.parquet").metadata[METADATA_KEY]
    info = json.loads(raw)
    assert info["model"] == "fake/echo" and info["parameters"] == params and info["prefix"] == ""
    assert info["stt_frames_version"] == stt_frames.__version__
    assert before <= datetime.fromisoformat(info["created_at"]) <= datetime.now(UTC)
    assert read_results(tmp_path / "run.parquet").attrs["stt_frames"] == info
    assert b"pandas" in pq.read_schema(tmp_path / "run.parquet").metadata  # pandas' own (index, dtypes) kept


def test_a_prefix_is_recorded_and_its_columns_get_their_dtypes_back(tmp_path: Path) -> None:
    df = results(prefix="m1_")
    write_results(df, tmp_path / "run.parquet", prefix="m1_")
    schema = pq.read_schema(tmp_path / "run.parquet")
    assert schema.field("m1_chunks").type == RESULT_COLUMNS["chunks"][1]
    back = read_results(tmp_path / "run.parquet")
    assert back.attrs["stt_frames"]["prefix"] == "m1_"
    for name, (dtype, _) in RESULT_COLUMNS.items():
        assert str(back[f"m1_{name}"].dtype) == dtype, name
    assert "text" not in back.columns
    pd.testing.assert_frame_equal(back.drop(columns="speaker"), df.drop(columns="speaker"))


def test_a_plain_pandas_reader_sees_the_same_values(tmp_path: Path) -> None:
    write_results(results(), tmp_path / "run.parquet")
    plain = pd.read_parquet(tmp_path / "run.parquet")
    assert plain.loc["clip-a", "text"] == "hello there" and plain.loc["clip-a", "total_tokens"] == 18
    assert pd.isna(plain.loc["clip-c", "cost"])


def test_writing_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "run.parquet"  # the folder is created
    write_results(results(), target)
    write_results(results().head(1), target)
    assert len(read_results(target)) == 1
    assert [p.name for p in target.parent.iterdir()] == ["run.parquet"]


def test_csv_and_json_lines_hold_the_columns_and_the_index(tmp_path: Path) -> None:
    df = results()
    write_results(df, tmp_path / "run.csv", metadata={"model": "ignored in CSV"})
    csv = pd.read_csv(tmp_path / "run.csv", index_col="clip")
    assert list(csv.columns) == list(df.columns) and list(csv.index) == list(df.index)
    assert csv.loc["clip-a", "text"] == "hello there" and pd.isna(csv.loc["clip-c", "text"])
    write_results(df, tmp_path / "run.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["clip"] for r in lines] == ["clip-a", "clip-b", "clip-c"]
    assert lines[0]["total_tokens"] == 18 and lines[1]["error_type"] == "AudioError"
    assert lines[2]["text"] is None and lines[2]["cached"] is None  # <NA> is null


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.csv", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl")],
)
def test_the_extension_names_the_format(name: str, fmt: str) -> None:
    assert output_format(name) == fmt


@pytest.mark.parametrize(("name", "shown"), [("run.xlsx", "'.xlsx'"), ("run", "a name with no extension")])
def test_an_unknown_extension_is_refused_with_the_known_ones(tmp_path: Path, name: str, shown: str) -> None:
    with pytest.raises(ValueError, match=f"cannot tell the format from {shown}") as info:
        write_results(results(), tmp_path / name)
    assert ".parquet, .pq, .csv, .jsonl, .ndjson" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


# --- a partitioned dataset ---------------------------------------------------------------------------------


def test_a_dataset_is_partitioned_by_model_and_language(tmp_path: Path) -> None:
    root = write_dataset(long_results(), tmp_path / "runs", metadata={"models": ["fake/echo", "local/pocketsphinx"]})
    parts = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert parts == [
        "model=fake%2Fecho/language=auto/part-0.parquet",  # <NA> language is written as auto
        "model=fake%2Fecho/language=en/part-0.parquet",
        "model=local%2Fpocketsphinx/language=auto/part-0.parquet",
        "model=local%2Fpocketsphinx/language=en/part-0.parquet",
    ]


def test_a_dataset_reads_back_with_pandas_and_read_results(tmp_path: Path) -> None:
    df = long_results()
    root = write_dataset(df, tmp_path / "runs", metadata={"models": ["fake/echo", "local/pocketsphinx"]})
    plain = pd.read_parquet(root)
    assert len(plain) == len(df)
    assert sorted(plain["model"].astype(str).unique()) == ["fake/echo", "local/pocketsphinx"]  # decoded
    ours = read_results(root)
    assert len(ours) == len(df) and ours.attrs["stt_frames"]["models"] == ["fake/echo", "local/pocketsphinx"]
    for name, (dtype, _) in {**RESULT_COLUMNS, **GRID_COLUMNS}.items():
        if name in ours.columns:
            assert str(ours[name].dtype) == dtype, name
    assert str(ours["model"].dtype) == "string" and str(ours["language"].dtype) == "string"  # not categories
    key = ["model", "language", "row_id"]
    mine = ours.sort_values(key).reset_index(drop=True)
    theirs = df.assign(language=df["language"].fillna("auto")).sort_values(key).reset_index(drop=True)
    assert mine["text"].tolist() == theirs["text"].tolist() and mine["wer"].tolist() == theirs["wer"].tolist()


def test_duckdb_reads_the_partitions(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb", reason="the DuckDB check needs duckdb")
    root = write_dataset(long_results(), tmp_path / "runs")
    query = (
        f"SELECT model, language, count(*) AS n, round(sum(cost), 6) AS cost "
        f"FROM read_parquet('{root}/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
    )
    assert duckdb.sql(query).fetchall() == [
        ("fake/echo", "auto", 3, 0.003),
        ("fake/echo", "en", 3, 0.003),
        ("local/pocketsphinx", "auto", 3, 0.003),
        ("local/pocketsphinx", "en", 3, 0.003),
    ]


def test_writing_a_partition_again_replaces_it_and_keeps_the_others(tmp_path: Path) -> None:
    df = long_results()
    root = write_dataset(df, tmp_path / "runs")
    rerun = df[df["model"] == "fake/echo"].copy()
    rerun["text"] = pd.array(["again"] * len(rerun), dtype="string")
    write_dataset(rerun, root)
    back = read_results(root)
    assert len(back) == len(df)  # replaced, not appended
    assert set(back.loc[back["model"] == "fake/echo", "text"]) == {"again"}
    assert "again" not in set(back.loc[back["model"] == "local/pocketsphinx", "text"])
