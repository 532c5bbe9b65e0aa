"""``compare``: run a grid of models × languages over a dataset and score it against references.

Each (model, language) cell runs through ``atranscribe_column``, so the cache, retries, spending cap
and error handling come with it; one progress bar covers the whole grid and ``max_cost`` caps the
whole grid. The result is long: one row per input row × model × language.

Example::

    results = stt_frames.compare(
        df, column="path", models=["local/pocketsphinx", "local/pocketsphinx-fast"],
        languages=[None, "en"], reference="reference",
    )
    stt_frames.leaderboard(results)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ._limits import Budget
from ._progress import ProgressListener
from ._spec import RunSpec
from .errors import Interrupted, STTError
from .frame import RunContext, _progress_for, run_frame, run_sync

__all__ = ["acompare", "compare"]

_FORBIDDEN = ("model", "language", "prefix", "output", "progress", "language_column")


def _cell_frame(out: pd.DataFrame, model: str, language: str | None, wall: float) -> pd.DataFrame:
    cell = out.rename(columns={c: f"input_{c}" for c in ("model", "language", "row_id") if c in out.columns})
    cell.insert(0, "row_id", cell.index)
    cell["model"] = pd.array([model] * len(cell), dtype="string")
    cell["language"] = pd.array([language] * len(cell), dtype="string")
    cell["run_wall_s"] = pd.array([wall] * len(cell), dtype="Float64")
    return cell


def _long(cells: list[pd.DataFrame], reference: str | None) -> pd.DataFrame:
    if not cells:
        return pd.DataFrame()
    results = pd.concat(cells, ignore_index=True)
    if reference is not None:
        from .scoring import score

        # normalise each reference by the clip's own language when the input says it
        lang = "input_language" if "input_language" in results.columns else "language"
        results = score(results, reference=reference, language_column=lang)
    return results


async def _grid(
    df: pd.DataFrame,
    column: str,
    *,
    models: Sequence[str],
    languages: Sequence[str | None],
    reference: str | None,
    max_cost: float | None,
    progress: bool | ProgressListener,
    output: str | os.PathLike[str] | None,
    options: dict[str, Any],
    context: RunContext,
) -> pd.DataFrame:
    """The one implementation of ``compare`` and ``acompare``: every cell through ``run_frame``."""
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty list of model ids, got {models!r}")
    if isinstance(languages, str) or not languages:
        raise ValueError(f"languages must be a non-empty list such as [None, 'en'], got {languages!r}")
    if reference is not None and reference not in df.columns:
        raise KeyError(f"reference column {reference!r} is not in the DataFrame; columns are {list(df.columns)}")
    bad = sorted(set(options) & set(_FORBIDDEN))
    if bad:
        raise TypeError(f"compare() sets {', '.join(bad)} itself; use models=/languages= instead")
    client = options.pop("client", None)
    overwrite = bool(options.pop("overwrite", False))
    dry_run = bool(options.pop("dry_run", False))
    # every cell's spec is built (and checked) before the first request
    specs = [RunSpec.build(model=m, language=lang, max_cost=max_cost, **options) for m in models for lang in languages]
    if dry_run:
        from ._estimate import estimate_specs

        return await asyncio.to_thread(estimate_specs, df, column, specs, client=client)
    bar = context.bar or _progress_for(progress, len(df) * len(specs), f"compare {len(models)}×{len(languages)}")
    cell_context = RunContext(bar=bar, budget=Budget(max_cost), interrupt=context.interrupt)
    cells: list[pd.DataFrame] = []
    try:
        for spec in specs:
            started = time.perf_counter()
            out = await run_frame(df, column, spec, client=client, overwrite=overwrite, context=cell_context)
            cells.append(_cell_frame(out, spec.model, spec.language, time.perf_counter() - started))
    except Interrupted as exc:
        raise Interrupted(
            f"{exc} (compare: {len(cells)} of {len(specs)} cells finished)", _long(cells, reference)
        ) from None
    except STTError as exc:
        exc.partial = _long(cells, reference)
        raise
    finally:
        if context.bar is None:
            bar.close()
    results = _long(cells, reference)
    # the whole grid's counts: every cell counted into the one bar and budget
    assert cell_context.budget is not None
    info = {
        "models": list(models),
        "languages": list(languages),
        "requests": bar.requests,
        "uploaded_bytes": bar.uploaded_bytes,
        "possibly_billed_twice": bar.possibly_billed_twice,
        "spent_cost": cell_context.budget.spent,
    }
    results.attrs["stt_frames"] = info
    if output is not None:
        from .results import write_dataset

        write_dataset(results, output, metadata=info)
    return results


async def acompare(
    df: pd.DataFrame,
    column: str = "path",
    *,
    models: Sequence[str],
    languages: Sequence[str | None] = (None,),
    reference: str | None = None,
    max_cost: float | None = None,
    progress: bool | ProgressListener = True,
    output: str | os.PathLike[str] | None = None,
    **transcribe_options: Any,
) -> pd.DataFrame:
    """The awaitable twin of ``compare`` (same arguments).

    Example::

        results = await stt_frames.acompare(df, models=["fake/echo"], reference="reference")
    """
    return await _grid(
        df, column, models=models, languages=languages, reference=reference, max_cost=max_cost,
        progress=progress, output=output, options=dict(transcribe_options), context=RunContext(),
    )  # fmt: skip


def compare(
    df: pd.DataFrame,
    column: str = "path",
    *,
    models: Sequence[str],
    languages: Sequence[str | None] = (None,),
    reference: str | None = None,
    max_cost: float | None = None,
    progress: bool | ProgressListener = True,
    output: str | os.PathLike[str] | None = None,
    **transcribe_options: Any,
) -> pd.DataFrame:
    """Transcribe ``df[column]`` with every model × language; one long row per input row and cell.

    Returns the input's columns (an input column named ``model``, ``language`` or ``row_id`` is renamed
    ``input_model``, ``input_language``, ``input_row_id``) plus ``row_id`` (the input's index label),
    ``model``, ``language`` (<NA> = auto-detect), the result columns of ``transcribe_column``,
    ``run_wall_s`` (wall time of the cell) and, when ``reference`` names a column of reference
    transcripts, ``wer`` and ``cer``.
    ``max_cost`` caps the whole grid; other keyword arguments go to ``transcribe_column`` for every cell
    (``concurrency``, ``cache``, ``client``, ``temperature`` ...), long recordings included:
    ``chunk_seconds`` (default 600; None: never cut), ``max_upload_bytes`` (default 25 MiB),
    ``upload_format`` ("original", "flac" or "opus") and ``timeout`` (seconds or ``httpx.Timeout``;
    default: follows the audio's duration), so a long file is cut into the same chunks for every model
    and the ``chunks`` column says into how many. ``output`` writes a hive-partitioned Parquet dataset
    (model=/language=). ``results.attrs["stt_frames"]`` (and the dataset's metadata) holds the whole
    grid's ``requests``, ``uploaded_bytes``, ``possibly_billed_twice`` and ``spent_cost``.
    ``dry_run=True`` sends nothing and returns ``stt_frames.estimate``'s frame, one row per cell.

    Example::

        results = stt_frames.compare(df, models=["local/pocketsphinx", "local/pocketsphinx-fast"],
                                     languages=[None, "en"], reference="reference")
    """
    cells = len(models) * len(languages) if not isinstance(models, str) and not isinstance(languages, str) else 0
    bar = _progress_for(progress, len(df) * cells, f"compare {len(models)}×{len(languages)}")
    return run_sync(
        lambda interrupt: _grid(
            df,
            column,
            models=models,
            languages=languages,
            reference=reference,
            max_cost=max_cost,
            progress=progress,
            output=output,
            options=dict(transcribe_options),
            context=RunContext(bar=bar, interrupt=interrupt),
        ),
        bar,
    )
