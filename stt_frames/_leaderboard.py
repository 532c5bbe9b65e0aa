"""One row per (model, language): corpus WER/CER, failures, cost, latency and throughput.

Columns of ``leaderboard`` (in order):

========================  =======  ========================================================================
column                    dtype    meaning
========================  =======  ========================================================================
``model``                 string   the model id
``language``              string   the requested language; ``"auto"`` where it was <NA> (auto-detect)
``n``                     Int64    rows in the group, failed ones included
``n_errors``              Int64    rows with an ``error`` (or, without that column, with no hypothesis)
``n_scored``              Int64    rows that carry scores (a hypothesis and a reference)
``wer``                   Float64  corpus WER: ``sum(word_errors) / sum(ref_words)`` over scored rows
``cer``                   Float64  corpus CER: ``sum(char_errors) / sum(ref_chars)`` over scored rows
``cost``                  Float64  total ``cost`` in USD, every row
``audio_seconds``         Float64  total ``seconds`` of the rows that succeeded (no ``error``)
``cost_per_audio_hour``   Float64  ``cost / audio_seconds * 3600``: USD per hour of transcribed audio
``latency_p50_s``         Float64  median of ``latency_s``
``latency_p95_s``         Float64  95th percentile of ``latency_s`` (linear interpolation)
``throughput``            Float64  audio seconds per second of latency: ``sum(seconds) / sum(latency_s)`` over
                                   the rows that succeeded and have both (x real time, one request at a time)
========================  =======  ========================================================================

Latency and throughput use ``latency_s`` as recorded when the answer was first transcribed: a row served
from the cache carries that first run's latency, so a rerun from the cache shows the same figures, and
neither the run's concurrency nor its cache hits change them.

Rows are sorted by ``wer`` then ``cer`` (ascending, <NA> last), then model and language. A rate whose
denominator is zero or missing is <NA>, never inf and never an exception. Rates are fractions (0.25 = 25 %).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .normalize import DEFAULT_NORMALIZER, NormalizerSpec
from .scoring import DEFAULT_HYPOTHESIS, score

__all__ = ["AUTO_LANGUAGE", "LEADERBOARD_COLUMNS", "leaderboard"]

#: How a <NA> language (auto-detect) is shown.
AUTO_LANGUAGE: str = "auto"

#: The columns of ``leaderboard``'s result, in order.
LEADERBOARD_COLUMNS: tuple[str, ...] = (
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

_INT_COLUMNS = ("n", "n_errors", "n_scored")


def _numbers(group: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as Float64 (all <NA> when the column is absent)."""
    if name not in group.columns:
        return pd.Series(pd.NA, index=group.index, dtype="Float64")
    return pd.to_numeric(group[name], errors="coerce").astype("Float64")


def _total(values: pd.Series) -> Any:
    """Sum of the non-missing values, <NA> when there are none."""
    values = values.dropna()
    return values.sum() if len(values) else pd.NA


def _ratio(numerator: Any, denominator: Any) -> Any:
    if pd.isna(numerator) or pd.isna(denominator) or denominator <= 0:
        return pd.NA
    return numerator / denominator


def _quantile(values: pd.Series, q: float) -> Any:
    values = values.dropna()
    return values.quantile(q) if len(values) else pd.NA


def _throughput(seconds: pd.Series, latency: pd.Series, failed: pd.Series) -> Any:
    """Audio seconds per second of recorded latency, over successful rows that have both; <NA> if none."""
    keep = ~failed.to_numpy(dtype=bool) & seconds.notna().to_numpy(dtype=bool) & latency.notna().to_numpy(dtype=bool)
    if not keep.any():
        return pd.NA
    return _ratio(_total(seconds[keep]), _total(latency[keep]))


def _summarise(group: pd.DataFrame, hypothesis: str) -> dict[str, Any]:
    if "error" in group.columns:
        failed = group["error"].notna()
    elif hypothesis in group.columns:
        failed = group[hypothesis].isna()
    else:
        failed = pd.Series(False, index=group.index)
    word_errors = _numbers(group, "word_errors")
    scored = word_errors.notna()
    # Pool over rows that have counts: an empty reference adds its insertions and 0 reference words.
    wer = _ratio(_total(word_errors[scored]), _total(_numbers(group, "ref_words")[scored]))
    char_errors = _numbers(group, "char_errors")
    cer = _ratio(_total(char_errors[char_errors.notna()]), _total(_numbers(group, "ref_chars")[char_errors.notna()]))
    cost = _total(_numbers(group, "cost"))
    audio_seconds = _total(_numbers(group, "seconds")[~failed.to_numpy(dtype=bool)])
    latency = _numbers(group, "latency_s")  # for a cache hit: the latency recorded when it was first sent
    return {
        "n": len(group),
        "n_errors": int(failed.sum()),
        "n_scored": int(scored.sum()),
        "wer": wer,
        "cer": cer,
        "cost": cost,
        "audio_seconds": audio_seconds,
        "cost_per_audio_hour": _ratio(cost, audio_seconds) * 3600,
        "latency_p50_s": _quantile(latency, 0.5),
        "latency_p95_s": _quantile(latency, 0.95),
        "throughput": _throughput(_numbers(group, "seconds"), latency, failed),
    }


def leaderboard(
    results: pd.DataFrame,
    *,
    reference: str | None = None,
    normalizer: NormalizerSpec = DEFAULT_NORMALIZER,
    hypothesis: str = DEFAULT_HYPOTHESIS,
) -> pd.DataFrame:
    """Summarise results per (model, language): corpus WER/CER, failures, cost, latency, throughput.

    Scores come from the ``word_errors``/``ref_words`` columns that ``score`` (and ``compare`` given a
    reference) adds. Pass ``reference=`` to score now against that column, with ``normalizer=``. Without
    either, ``wer``/``cer`` are <NA>. Failed rows stay in ``n`` and are counted in ``n_errors``.

    Example::

        results = stt_frames.compare(df, models=["openai/whisper-1", "google/chirp-3"], reference="ref")
        stt_frames.leaderboard(results)
    """
    if "model" not in results.columns:
        raise ValueError(
            f"leaderboard needs a 'model' column (the output of stt_frames.compare); "
            f"got columns {list(results.columns)}"
        )
    if reference is not None:
        results = score(results, reference, hypothesis, normalizer=normalizer)
    model = results["model"].astype("string").fillna("")
    if "language" in results.columns:
        language = results["language"].astype("string").fillna(AUTO_LANGUAGE)
    else:
        language = pd.Series(AUTO_LANGUAGE, index=results.index, dtype="string")
    keys = pd.DataFrame({"model": model.to_numpy(), "language": language.to_numpy()})
    frame = results.reset_index(drop=True)
    records = [
        {"model": m, "language": lang, **_summarise(frame.loc[rows], hypothesis)}
        for (m, lang), rows in keys.groupby(["model", "language"], sort=False, dropna=False).groups.items()
    ]
    board = pd.DataFrame.from_records(records, columns=list(LEADERBOARD_COLUMNS))
    for name in LEADERBOARD_COLUMNS:
        if name in ("model", "language"):
            dtype = "string"
        elif name in _INT_COLUMNS:
            dtype = "Int64"
        else:
            dtype = "Float64"
        board[name] = board[name].astype(dtype)
    board = board.sort_values(["wer", "cer", "model", "language"], na_position="last", kind="stable")
    return board.reset_index(drop=True)
