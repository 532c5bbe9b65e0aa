"""Transcribe a Dask DataFrame: each partition runs through ``transcribe_column`` on the workers.

Needs the ``dask`` extra (``pip install 'stt-frames[dask]'``). Reach it as a submodule::

    import dask.dataframe as dd
    import stt_frames, stt_frames.dask

    ddf = dd.read_csv("clips-*.csv")                       # a "path" column of audio files
    out = stt_frames.dask.transcribe(ddf, model="openai/whisper-large-v3", cache="/shared/stt-cache")
    stt_frames.dask.to_parquet(out, "transcripts/")         # a Parquet dataset; read_results reads it back

How it runs:

- Each partition is one ``transcribe_column`` call on a worker, with its progress bar off; rows keep
  their partition, index and order, and failed rows are recorded in ``error`` as usual.
- ``meta`` is the input's columns plus the result columns of ``stt_frames.results.RESULT_COLUMNS``
  (nullable dtypes), so nothing is computed to find out the schema.
- One budget: ``max_cost`` is shared by every worker through one ``BudgetActor`` (``stt_frames._cluster``).
- One bill per distinct audio: the rows' audio hashes are computed on the workers, shuffled so each distinct
  (hash, language) is sent by one task, and every partition then reads its answers from the shared cache
  (nothing is sent in that last pass). With ``cache=False`` each partition sends its own rows.
- The cache: ``cache="s3://bucket/prefix"`` (any fsspec URL, ``file://`` included) is an ``ObjectCache``,
  one object per answer, shared by workers on any host. A path is SQLite, resolved here (``cache=`` path, else
  ``STT_FRAMES_CACHE_DIR``, else the user cache dir) and shared by the workers of one machine (not over NFS).
  See docs/dask.md for what is guaranteed.
- The endpoint and key: with ``client=`` (a ``Client``/``AsyncClient``), its settings, API key
  included, travel with the tasks to the workers. Without it, each worker resolves its own
  ``OPENROUTER_API_KEY`` / ``OPENROUTER_BASE_URL`` from its environment.
- ``concurrency`` applies to each send task.
- Long recordings: ``chunk_seconds``, ``max_upload_bytes``, ``upload_format`` and ``timeout`` work as in
  ``transcribe_column`` (they are checked here, before any task runs). A long file is cut and its chunks
  sent by the worker that holds its row, and every chunk is cached on its own in the shared cache.

The same thing by hand, with ``map_partitions`` and an explicit ``meta``::

    from dask.dataframe.utils import make_meta
    from stt_frames.results import empty_results

    meta = make_meta(ddf)
    meta = meta.assign(**empty_results(meta.index))
    out = ddf.map_partitions(
        stt_frames.transcribe_column, column="path", model="openai/whisper-large-v3",
        progress=False, cache="/shared/stt-cache", meta=meta,
    )

There the endpoint and key come from each worker's environment: Dask cannot hash a ``Client`` passed as
``client=`` to ``map_partitions`` (``TokenizationError``), which is why ``transcribe`` ships its settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._cluster import (
    ClusterBudget,
    LockedBudget,
    assemble_partition,
    gather_sends,
    identify_partition,
    identity_meta,
    run_partition,
    send_unique,
)
from ._extras import require
from ._spec import RunSpec
from .cache import Cache, default_cache_dir
from .chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, UploadFormat
from .results import empty_results
from .timeouts import TimeoutArg

if TYPE_CHECKING:
    import dask.dataframe as dd

    from ._settings import Settings
    from .client import AsyncClient, Client

__all__ = ["result_meta", "to_parquet", "transcribe"]

#: Options ``transcribe`` sets itself, or that make no sense per partition, with what to do instead.
_REFUSED: Mapping[str, str] = {
    "output": "each partition would overwrite one file; write the result with .to_parquet(folder)",
    "progress": "workers run without a progress bar; watch the Dask dashboard or distributed.progress()",
}


def result_meta(meta: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """The empty frame ``transcribe_column`` returns for input ``meta``: its columns plus the result columns.

    Example::

        result_meta(dask.dataframe.utils.make_meta(ddf)).dtypes
    """
    return meta.assign(**empty_results(meta.index, prefix))


def _cache_for_workers(cache: bool | str | os.PathLike[str] | Cache) -> bool | str | Cache:
    """The cache argument as the workers get it: False, an object store (URL or ``ObjectCache``, pickled as
    its URL and options), or one absolute SQLite path resolved here."""
    from .cache_store import ObjectCache, is_cache_url

    if cache is False or isinstance(cache, ObjectCache):
        return cache
    if isinstance(cache, str) and is_cache_url(cache):
        return cache
    if isinstance(cache, Cache):
        return str(cache.path)
    path = default_cache_dir() if cache is True else Path(cache)
    return str(path.expanduser().absolute())


def _send_tasks(ddf: dd.DataFrame) -> int:
    """How many send tasks: the cluster's worker threads (at most the partitions), else the partitions."""
    try:
        from distributed import get_client

        threads = sum(get_client().nthreads().values())
    except (ImportError, ValueError):
        return int(ddf.npartitions)
    return max(1, min(int(ddf.npartitions), threads))


def _shared_budget(max_cost: float | None) -> ClusterBudget | LockedBudget | None:
    """One budget for every partition: a Dask Actor with a distributed client, else a locked one in-process."""
    if max_cost is None:
        return None
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return LockedBudget(max_cost)
    return ClusterBudget.create(max_cost, client)


def _settings_of(client: Client | AsyncClient | None) -> tuple[Settings | None, int]:
    from .audio import DEFAULT_MAX_AUDIO_BYTES

    if client is None:
        return None, DEFAULT_MAX_AUDIO_BYTES
    return client.settings, client.max_audio_bytes


def _client_for(settings: Settings | None, max_audio_bytes: int) -> Client | None:
    from .client import Client

    return None if settings is None else Client.from_settings(settings, max_audio_bytes=max_audio_bytes)


def _transcribe_partition(
    part: pd.DataFrame,
    column: str,
    *,
    spec: RunSpec,
    settings: Settings | None,
    max_audio_bytes: int,
    budget: ClusterBudget | LockedBudget | None,
    prefix: str,
) -> pd.DataFrame:
    """Run on a worker: one partition through ``run_frame`` (no cross-partition deduplication: cache=False)."""
    client = _client_for(settings, max_audio_bytes)
    try:
        return run_partition(part, column, spec, client=client, budget=budget, prefix=prefix)
    finally:
        if client is not None:
            client.close()


def _send_partition(
    unique: pd.DataFrame,
    spec: RunSpec,
    settings: Settings | None,
    max_audio_bytes: int,
    budget: ClusterBudget | LockedBudget | None,
) -> dict[str, Any]:
    client = _client_for(settings, max_audio_bytes)
    try:
        return send_unique(unique, spec, client=client, budget=budget)
    finally:
        if client is not None:
            client.close()


def _assemble_partition(
    part: pd.DataFrame,
    identities: pd.DataFrame,
    sends: dict[str, Any],
    column: str,
    *,
    spec: RunSpec,
    settings: Settings | None,
    max_audio_bytes: int,
    prefix: str,
) -> pd.DataFrame:
    client = _client_for(settings, max_audio_bytes)
    try:
        return assemble_partition(part, identities, sends, column, spec, client=client, prefix=prefix)
    finally:
        if client is not None:
            client.close()


def transcribe(
    ddf: dd.DataFrame,
    column: str = "path",
    *,
    model: str,
    client: Client | AsyncClient | None = None,
    cache: bool | str | os.PathLike[str] | Cache = True,
    prefix: str = "",
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    upload_format: UploadFormat = "original",
    timeout: TimeoutArg | None = None,
    **transcribe_options: Any,
) -> dd.DataFrame:
    """Transcribe ``ddf[column]`` partition by partition on the Dask workers; lazy, like any Dask DataFrame.

    Returns the input's columns plus the result columns of ``transcribe_column`` (``text``, ``seconds``,
    ``cost``, ``error``, ``cached`` ...). Other keyword arguments (``language``, ``language_column``,
    ``concurrency``, ``max_cost``, ``refresh``, ``temperature`` ...) go to ``transcribe_column`` for each
    partition. ``cache`` is resolved here and shared by every worker (see the module docstring).
    ``chunk_seconds`` (default 600; None: never cut), ``max_upload_bytes`` (default 25 MiB),
    ``upload_format`` ("original", "flac", "opus") and ``timeout`` (seconds or ``httpx.Timeout``; default:
    follows the audio) are those of ``transcribe_column``; a long file comes back as one row, ``chunks``
    saying into how many pieces it was cut.

    Example::

        out = stt_frames.dask.transcribe(ddf, model="fake/echo", client=stt_frames.Client(base_url=url))
        out.to_parquet("transcripts/")
    """
    dd_ = require("dask.dataframe", "dask", "stt_frames.dask")
    from dask.dataframe.utils import make_meta

    if not isinstance(ddf, dd_.DataFrame):
        kind = type(ddf).__name__
        raise TypeError(f"expected a dask.dataframe.DataFrame, got {kind}; for pandas use transcribe_column")
    refused = sorted(set(transcribe_options) & set(_REFUSED))
    if refused:
        why = "; ".join(f"{name}=: {_REFUSED[name]}" for name in refused)
        raise TypeError(f"stt_frames.dask.transcribe() does not take {why}")
    columns = list(ddf.columns)
    for what, name in (("column", column), ("language_column", transcribe_options.get("language_column"))):
        if name is not None and name not in columns:
            raise KeyError(f"{what} {name!r} is not in the DataFrame; columns are {columns}")
    # the run's spec is built (and checked) here: a bad value or a misspelt option fails now, not in every task
    spec = RunSpec.build(
        model=model,
        cache=cache,
        chunk_seconds=chunk_seconds,
        max_upload_bytes=max_upload_bytes,
        upload_format=upload_format,
        timeout=timeout,
        **transcribe_options,
    )
    spec = replace(spec, cache=_cache_for_workers(cache))
    settings, max_audio_bytes = _settings_of(client)
    budget = _shared_budget(spec.max_cost)
    meta = result_meta(make_meta(ddf), prefix)
    common = {"spec": spec, "settings": settings, "max_audio_bytes": max_audio_bytes}
    if spec.cache is False:  # no shared cache: each partition sends its own rows, under the one budget
        return ddf.map_partitions(
            _transcribe_partition, column, budget=budget, prefix=prefix, meta=meta, enforce_metadata=True, **common
        )
    import dask

    # 1. identify: each row's audio hash and language, on the workers. As delayed tasks, so that the send and
    # assemble passes share them (with map_partitions, Dask fuses a copy into each pass: every file hashed twice)
    parts = ddf.to_delayed()
    identify = dask.delayed(identify_partition, pure=True)
    id_parts = [identify(part, column, spec) for part in parts]
    ids = dd_.from_delayed(id_parts, meta=identity_meta(meta.index), divisions=ddf.divisions, verify_meta=False)
    # 2. send: each distinct (audio, language) once, after a shuffle of the (small) identities on the hash
    # as many send tasks as worker threads: each keeps `concurrency` requests in flight for its whole share
    unique = ids.dropna(subset=["sha"]).drop_duplicates(subset=["sha", "language"], split_out=_send_tasks(ddf))
    send = dask.delayed(_send_partition, pure=False)
    sends = dask.delayed(gather_sends)(
        [send(part, spec, settings, max_audio_bytes, budget) for part in unique.to_delayed()]
    )
    # 3. assemble: every partition's rows from the shared cache, in their order; nothing is sent here
    assemble = dask.delayed(_assemble_partition, pure=False)
    return dd_.from_delayed(
        [
            assemble(part, part_ids, sends, column, prefix=prefix, **common)
            for part, part_ids in zip(parts, id_parts, strict=True)
        ],
        meta=meta,
        divisions=ddf.divisions,
    )


def _write_part(part: pd.DataFrame, target: str, prefix: str) -> int:
    import fsspec
    import pyarrow.parquet as pq

    from .results import _to_table

    table = _to_table(part, prefix, part.attrs.get("stt_frames"))
    with fsspec.open(target, "wb") as f:
        pq.write_table(table, f)
    return len(part)


def to_parquet(out: dd.DataFrame, path: str | os.PathLike[str], *, prefix: str = "") -> str:
    """Write ``transcribe``'s result as a Parquet dataset (``part.0.parquet`` ...), one file per partition,
    each with the schema and run metadata of the one-machine ``output=``; ``read_results`` and DuckDB read it.

    Computes ``out``. Each file's metadata holds the run's parameters and the send pass's counts
    (``requests``, ``spent_cost`` ...), and ``rows``/``errors`` of its own partition.

    Example::

        stt_frames.dask.to_parquet(stt_frames.dask.transcribe(ddf, model="fake/echo"), "s3://bucket/run-1/")
        stt_frames.read_results("run-1/")          # a local folder; for S3, pyarrow or DuckDB read it
    """
    import dask
    import fsspec

    root = os.fspath(path).rstrip("/")
    fs, folder = fsspec.core.url_to_fs(root)
    fs.makedirs(folder, exist_ok=True)
    write = dask.delayed(_write_part, pure=False)
    dask.compute(*(write(part, f"{root}/part.{i}.parquet", prefix) for i, part in enumerate(out.to_delayed())))
    return root
