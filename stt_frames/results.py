"""Parquet in and out with an explicit Arrow schema, derived from the result columns declared in ``schema``.

Every result column has a nullable dtype, so a failed row holds <NA> rather than a sentinel.

Example::

    out = df.pipe(stt_frames.transcribe_column, column="path", model="fake/echo", output="run.parquet")
    back = stt_frames.read_results("run.parquet")
    back.attrs["stt_frames"]["model"]
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ._version import __version__
from .schema import GRID_COLUMNS, RESULT_COLUMNS

__all__ = [
    "METADATA_KEY",
    "OUTPUT_FORMATS",
    "RESULT_COLUMNS",
    "empty_results",
    "output_format",
    "read_results",
    "result_schema",
    "write_dataset",
    "write_results",
]

#: The key of stt_frames' own entry in the Parquet file's key-value metadata.
METADATA_KEY: Final = b"stt_frames"


def empty_results(index: pd.Index, prefix: str = "") -> dict[str, pd.Series]:
    """All-<NA> result columns for ``index``, with their dtypes."""
    return {prefix + name: pd.Series(pd.NA, index=index, dtype=dtype) for name, (dtype, _) in RESULT_COLUMNS.items()}


def _known(prefix: str = "", *, grid: bool = True) -> dict[str, tuple[str, pa.DataType]]:
    """Column name -> (pandas dtype, Arrow type) for result columns under ``prefix`` (and grid columns)."""
    known = {prefix + name: spec for name, spec in RESULT_COLUMNS.items()}
    return {**known, **GRID_COLUMNS} if grid else known


def result_schema(df: pd.DataFrame, prefix: str = "") -> pa.Schema:
    """The Arrow schema of ``df``: result columns typed explicitly, the input's columns as pandas infers them."""
    inferred = pa.Schema.from_pandas(df, preserve_index=True)
    known = _known(prefix, grid="model" in df.columns and "row_id" in df.columns)
    fields = [pa.field(f.name, known[f.name][1]) if f.name in known else f for f in inferred]
    return pa.schema(fields, metadata=inferred.metadata)


def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with mixed-type object columns (e.g. paths next to ints) stored as strings, <NA> kept."""
    fixed = None
    for name in df.columns:
        col = df[name]
        if col.dtype != object:
            continue
        try:
            pa.array(col, from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            fixed = df.copy() if fixed is None else fixed
            fixed[name] = pd.array([None if pd.isna(v) else str(v) for v in col], dtype="string")
    return df if fixed is None else fixed


def _to_table(df: pd.DataFrame, prefix: str, metadata: Mapping[str, Any] | None) -> pa.Table:
    df = _arrow_safe(df)
    schema = result_schema(df, prefix)
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=True)
    meta = dict(table.schema.metadata or {})
    info = {
        "stt_frames_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "prefix": prefix,
        **(metadata or {}),
    }
    meta[METADATA_KEY] = json.dumps(info, default=str).encode()
    return table.replace_schema_metadata(meta)


#: ``output=`` file extensions and the format each writes.
OUTPUT_FORMATS: Final = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: str | os.PathLike[str]) -> str:
    """The format ``path``'s extension names ("parquet", "csv" or "jsonl"); ValueError for any other.

    Example::

        output_format("run.csv")  # 'csv'
    """
    suffix = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(suffix)
    if fmt is None:
        known = ", ".join(OUTPUT_FORMATS)
        what = repr(suffix) if suffix else "a name with no extension"
        raise ValueError(f"output {os.fspath(path)!r}: cannot tell the format from {what}; use one of {known}")
    return fmt


def write_results(
    df: pd.DataFrame, path: str | os.PathLike[str], *, prefix: str = "", metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write results to one file atomically, in the format its extension names (see ``OUTPUT_FORMATS``).

    Parquet gets an explicit schema and ``metadata`` (model, language, parameters ...) as JSON under the
    ``stt_frames`` key, with the stt_frames version and ``created_at``; never put secrets in it. CSV and
    JSON lines hold the columns only (the index as a column), with <NA> as an empty field / null.

    Example::

        stt_frames.write_results(out, "run.parquet", metadata={"model": "fake/echo"})
    """
    target = Path(path)
    fmt = output_format(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            pq.write_table(_to_table(df, prefix, metadata), tmp)
        elif fmt == "csv":
            df.to_csv(tmp, index=True)
        else:
            df.reset_index().to_json(tmp, orient="records", lines=True, force_ascii=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read results written by stt_frames (a file or a partitioned dataset), dtypes and index intact.

    The stt_frames metadata is in ``df.attrs["stt_frames"]``.

    Example::

        df = stt_frames.read_results("run.parquet")
    """
    p = Path(path)
    if p.is_dir():
        dataset = pq.ParquetDataset(p)
        table = dataset.read()
        schema_meta = dataset.schema.metadata or {}
    else:
        table = pq.read_table(p)
        schema_meta = table.schema.metadata or {}
    df = table.to_pandas()
    info = json.loads(schema_meta.get(METADATA_KEY, b"{}"))
    for name, (dtype, _) in _known(str(info.get("prefix", "")), grid="models" in info).items():
        if name in df.columns and str(df[name].dtype) != dtype:
            df[name] = df[name].astype(dtype)
    if info:
        df.attrs["stt_frames"] = info
    return df


def write_dataset(
    df: pd.DataFrame,
    root: str | os.PathLike[str],
    *,
    partition_cols: Sequence[str] = ("model", "language"),
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write long results as a hive-partitioned Parquet dataset (``model=.../language=.../``).

    pandas, pyarrow and DuckDB read it back (``read_parquet(root)``); <NA> language is written as
    ``auto``. Existing files of the same partitions are replaced.

    Example::

        stt_frames.write_dataset(results, "runs/2026-11")
    """
    root = Path(root)
    frame = df.copy()
    if "language" in partition_cols and "language" in frame:
        frame["language"] = frame["language"].astype("string").fillna("auto")
    table = _to_table(frame.reset_index(drop=True), "", metadata)
    pq.write_to_dataset(
        table,
        root,
        partition_cols=list(partition_cols),
        existing_data_behavior="delete_matching",
        basename_template="part-{i}.parquet",
    )
    return root
