"""Turn the cells of the audio column into local paths the runner plans, before the run starts.

Local paths resolve against ``base_dir``. In-memory audio (bytes, Hugging Face dicts, numpy arrays)
is written to the run's ``Spool`` under its content hash. A URL is looked at first (size and version,
no download): when the cache already knows its content and holds the answer, the row is answered from
the cache and nothing is downloaded; otherwise the file is streamed into the spool (several at once, off
the event loop), and its hash is remembered with its size and version for the next run.

Bad cells become failed rows here, with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ._progress import Progress
from ._spec import RunSpec
from .cache import Cache, CacheError
from .chunking import probe_seconds
from .errors import AudioError, RunAborted
from .schema import RowResult
from .sources import Source, Spool, classify

__all__ = ["resolve_inputs"]


async def resolve_inputs(
    values: Sequence[Any],
    languages: Sequence[str | None],
    spec: RunSpec,
    cache: Cache | None,
    endpoint: str,
    spool: Spool,
    bar: Progress,
) -> tuple[list[Any], dict[int, RowResult]]:
    """Each row's value as the runner takes it (a path), and the rows already settled here (failed or cached)."""
    out: list[Any] = list(values)
    settled: dict[int, RowResult] = {}
    urls: dict[str, list[int]] = {}
    plain_paths_stay = spec.base_dir is None
    for i, value in enumerate(values):
        if plain_paths_stay and type(value) is str and "://" not in value and value[:1] not in ("", " ", "~"):
            continue  # the common case, a plain local path: the runner checks it (no per-row work here)
        try:
            source = classify(value, base_dir=spec.base_dir, sample_rate=spec.sample_rate, row=i)
        except AudioError as exc:
            settled[i] = RowResult.failed(exc)
            if spec.on_error == "raise":
                raise RunAborted(exc) from exc
            continue
        if source.kind == "path":
            out[i] = source.path
        elif source.kind == "url":
            assert source.url is not None
            urls.setdefault(source.url, []).append(i)
        else:
            out[i] = await _spooled(spool, source)
    if urls:
        limit = asyncio.Semaphore(spec.concurrency)

        async def one(url: str, rows: list[int]) -> None:
            async with limit:
                await _fetch(url, rows, languages, spec, cache, endpoint, spool, out, settled)

        await asyncio.gather(*(one(url, rows) for url, rows in urls.items()))
    for result in settled.values():
        bar.update(1, cached=bool(result.cached), error=result.error is not None, seconds=result.seconds)
    failed = next((r for r in settled.values() if r.exception is not None), None)
    if failed is not None and spec.on_error == "raise":
        assert failed.exception is not None
        raise RunAborted(failed.exception)
    return out, settled


async def _spooled(spool: Spool, source: Source) -> str:
    if source.data is not None and len(source.data) < 1 << 20:
        return spool.write(source)
    return await asyncio.to_thread(spool.write, source)


async def _fetch(
    url: str,
    rows: list[int],
    languages: Sequence[str | None],
    spec: RunSpec,
    cache: Cache | None,
    endpoint: str,
    spool: Spool,
    out: list[Any],
    settled: dict[int, RowResult],
) -> None:
    """Answer ``url``'s rows from the cache when its content is known, else download it into the spool."""
    try:
        size, version = await asyncio.to_thread(spool.info, url)
        if cache is not None and not spec.refresh:
            known = cache.file_hashes({url: (size, version)}).get(url)
            if known is not None:
                sha, _fmt, seconds = known
                whole = _whole(spec, size, seconds)
                if whole is not None:
                    keys = {i: spec.cache_key(sha, languages[i], endpoint, chunked=not whole) for i in rows}
                    hits = cache.get_many(keys.values())
                    for i, key in keys.items():
                        if key in hits:
                            settled[i] = RowResult.from_entry(hits[key])
                    rows = [i for i in rows if i not in settled]
                    if not rows:
                        return  # every row answered: nothing downloaded
        path, sha = await asyncio.to_thread(spool.download, url)
        if cache is not None:
            seconds = await asyncio.to_thread(probe_seconds, path)
            cache.put_file_hash(url, size, version, sha, path.rsplit(".", 1)[-1], seconds)
    except AudioError as exc:
        for i in rows:
            settled[i] = RowResult.failed(exc)
        return
    except CacheError as exc:
        raise RunAborted(exc) from exc
    for i in rows:
        out[i] = path


def _whole(spec: RunSpec, size: int, seconds: float | None) -> bool | None:
    """Whether the file goes whole under ``spec`` (None: it depends on a duration not known)."""
    p = spec.upload
    if seconds is None and p.upload_format == "original" and p.chunk_seconds is not None and size <= p.max_upload_bytes:
        return None
    try:
        return p.sends_whole(size, seconds)
    except AudioError:
        return None
