"""The result columns, declared once: ``RowResult`` is one row's result, and its fields are the columns.

Each field carries its pandas dtype, its Arrow type and a one-line description; ``RESULT_COLUMNS``,
the frame that ``transcribe_column`` returns, the Parquet schema (``results``) and the docs all derive
from it. Every dtype is nullable, so a failed row holds <NA> rather than a sentinel.

Example::

    from stt_frames.schema import RESULT_COLUMNS, describe_columns
    list(RESULT_COLUMNS)       # ['text', 'seconds', ..., 'chunks']
    print(describe_columns())  # a Markdown table of the columns
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

import pyarrow as pa

from .cache import CacheEntry
from .types import Transcription

__all__ = ["CHUNKS_FIELD", "GRID_COLUMNS", "RESULT_COLUMNS", "RowResult", "describe_columns"]

#: The field of a stitched answer (stored in the cache) that says how many chunks it joins.
CHUNKS_FIELD: Final = "stt_frames_chunks"


def _column(dtype: str, arrow: pa.DataType, doc: str) -> Any:
    return field(default=None, metadata={"dtype": dtype, "arrow": arrow, "doc": doc})


@dataclass(slots=True)
class RowResult:
    """One row's result; each field but ``exception`` is a column of ``transcribe_column``'s output.

    Treated as immutable (rows that share a file share one). It is not frozen because a frozen
    dataclass takes five times as long to build, and a cached rerun builds one per distinct file.
    """

    text: str | None = _column("string", pa.string(), "the transcript (chunks joined with a space)")
    seconds: float | None = _column("Float64", pa.float64(), "audio seconds: billed by the server, else measured")
    seconds_source: str | None = _column("string", pa.string(), '"server" or "audio": where `seconds` came from')
    input_tokens: int | None = _column("Int64", pa.int64(), "input tokens, for token-priced models")
    output_tokens: int | None = _column("Int64", pa.int64(), "output tokens, for token-priced models")
    total_tokens: int | None = _column("Int64", pa.int64(), "total tokens, for token-priced models")
    cost: float | None = _column("Float64", pa.float64(), "USD, as the server reported it (summed over chunks)")
    error: str | None = _column("string", pa.string(), "why the row failed; <NA> when it succeeded")
    error_type: str | None = _column(
        "string", pa.string(), "the class of that error (e.g. `RateLimitError`, `AudioError`)"
    )
    cached: bool | None = _column("boolean", pa.bool_(), "whether the answer came from the cache (no cost)")
    latency_s: float | None = _column("Float64", pa.float64(), "seconds the request took when it was sent")
    chunks: int | None = _column("Int64", pa.int64(), "requests the recording was sent in (1: whole)")
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @classmethod
    def failed(cls, error: BaseException, *, chunks: int | None = None) -> RowResult:
        """A failed row: the error's message and its class name."""
        return cls(error=str(error), error_type=type(error).__name__, cached=False, chunks=chunks, exception=error)

    @classmethod
    def from_answer(
        cls,
        t: Transcription,
        *,
        audio_seconds: float | None,
        latency_s: float | None,
        cached: bool,
        chunks: int = 1,
    ) -> RowResult:
        """A successful row from an answer; ``seconds`` falls back to ``audio_seconds`` when the server left it out."""
        u = t.usage
        if u.seconds is not None:
            seconds, source = u.seconds, "server"
        elif audio_seconds is not None:
            seconds, source = audio_seconds, "audio"
        else:
            seconds, source = None, None
        return cls(
            text=t.text,
            seconds=seconds,
            seconds_source=source,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            total_tokens=u.total_tokens,
            cost=u.cost,
            cached=cached,
            latency_s=latency_s,
            chunks=chunks,
        )

    @classmethod
    def from_entry(cls, entry: CacheEntry) -> RowResult:
        """A row answered from the cache (a stitched entry knows how many chunks it joins).

        Entries were checked when they were stored: a well-formed one is read directly (a cached rerun
        reads thousands per second); anything else goes through the full check and its clear error.
        """
        r = entry.response
        text, u, chunks = r.get("text"), r.get("usage") or _NO_USAGE, r.get(CHUNKS_FIELD, 1)
        if type(text) is str and type(u) is dict and type(chunks) is int:
            cost, seconds = u.get("cost"), u.get("seconds")
            tin, tout, ttotal = u.get("input_tokens"), u.get("output_tokens"), u.get("total_tokens")
            if (
                (cost is None or (type(cost) is float and _FINITE[0] < cost < _FINITE[1]))
                and (seconds is None or (type(seconds) is float and _FINITE[0] < seconds < _FINITE[1]))
                and (tin is None or type(tin) is int)
                and (tout is None or type(tout) is int)
                and (ttotal is None or type(ttotal) is int)
            ):
                audio = entry.audio_seconds
                return cls(
                    text,
                    seconds if seconds is not None else audio,
                    "server" if seconds is not None else None if audio is None else "audio",
                    tin,
                    tout,
                    ttotal,
                    cost,
                    None,
                    None,
                    True,
                    entry.latency_s,
                    chunks,
                )
        return cls.from_answer(
            Transcription.from_json(r),
            audio_seconds=entry.audio_seconds,
            latency_s=entry.latency_s,
            cached=True,
            chunks=chunks if isinstance(chunks, int) and not isinstance(chunks, bool) else 1,
        )


#: Bounds that a finite float lies strictly within (NaN compares false to both).
_FINITE: Final = (float("-inf"), float("inf"))
_NO_USAGE: Final[dict[str, Any]] = {}

_DECLARED = [f for f in fields(RowResult) if "dtype" in f.metadata]

#: name -> (pandas dtype, Arrow type) of every column transcribe_column adds, in order.
RESULT_COLUMNS: Final[dict[str, tuple[str, pa.DataType]]] = {
    f.name: (f.metadata["dtype"], f.metadata["arrow"]) for f in _DECLARED
}

#: Columns compare() adds around the result columns, typed the same way.
GRID_COLUMNS: Final[dict[str, tuple[str, pa.DataType]]] = {
    "model": ("string", pa.string()),
    "language": ("string", pa.string()),
    "run_wall_s": ("Float64", pa.float64()),
    "wer": ("Float64", pa.float64()),
    "cer": ("Float64", pa.float64()),
}


def describe_columns() -> str:
    """The result columns as a Markdown table (name, dtype, meaning), as the docs show them."""
    lines = ["| column | dtype | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{f.name}` | {f.metadata['dtype']} | {f.metadata['doc']} |" for f in _DECLARED]
    return "\n".join(lines)
