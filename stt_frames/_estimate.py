"""``estimate``: what a run will send and cost, before anything is sent.

For each model it reports the files, the hours of audio (read from the files' headers, no decode), the
bytes that would be uploaded and the requests (chunks) they take, the rows the cache already answers and
the rows left to send, the price per audio minute the server lists in ``GET /models`` (``None`` when it
lists none), and the projected cost of the rows left: their audio minutes times that price.

Example::

    stt_frames.estimate(df, column="path", models=["openai/whisper-large-v3", "openai/whisper-1"])
    out = df.pipe(stt_frames.transcribe_column, model="openai/whisper-1", dry_run=True)  # the same, one model
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pandas as pd

from ._spec import RunSpec
from .audio import check_file
from .cache import Cache, hash_file
from .chunking import probe_seconds
from .client import AsyncClient, Client
from .errors import AudioError, STTError

log = logging.getLogger("stt_frames")

__all__ = ["ESTIMATE_COLUMNS", "estimate", "estimate_specs", "price_per_minute"]

#: The columns of ``estimate``'s frame, one row per model.
ESTIMATE_COLUMNS: Final = (
    "model",
    "language",
    "rows",
    "files",
    "audio_hours",
    "upload_bytes",
    "requests",
    "rows_cached",
    "rows_to_send",
    "rows_failing",
    "price_per_minute",
    "projected_cost",
)

#: Typical bytes per second of audio of a chunk (16 kHz mono): FLAC of speech compresses to about 55 %.
_TYPICAL_BYTES_PER_SECOND: Final = {"flac": 32_000 * 0.55, "opus": 24_000 / 8}


def price_per_minute(model: Mapping[str, Any]) -> float | None:
    """USD per audio minute from a ``GET /models`` entry's ``pricing`` (``per_minute``, else ``audio`` per
    second), or None when it lists no audio price."""
    pricing = model.get("pricing")
    if not isinstance(pricing, Mapping):
        return None
    for name, factor in (("per_minute", 1.0), ("audio", 60.0)):
        try:
            value = float(pricing[name]) * factor
        except (KeyError, TypeError, ValueError):
            continue
        if value >= 0 and math.isfinite(value):
            return value
    return None


@dataclass
class _File:
    path: str
    size: int
    seconds: float | None
    sha: str | None


def _look(path: str, cache: Cache | None) -> _File:
    st, _ = check_file(path, max_bytes=None)
    known = cache.file_hashes({path: (st.st_size, st.st_mtime_ns)}).get(path) if cache is not None else None
    seconds = known[2] if known is not None and known[2] is not None else probe_seconds(path)
    sha = known[0] if known is not None else (hash_file(path) if cache is not None else None)
    return _File(path, st.st_size, seconds, sha)


def _prices(client: Client, models: Sequence[str]) -> dict[str, float | None]:
    try:
        listed = {str(m.get("id")): m for m in client.list_models()}
    except (STTError, httpx.HTTPError) as exc:  # no price list: the projection is unknown, not an error
        log.info("no model list from %s (%s): prices unknown", client.base_url, type(exc).__name__)
        listed = {}
    return {m: price_per_minute(listed[m]) if m in listed else None for m in models}


def estimate(
    df: pd.DataFrame,
    column: str = "path",
    *,
    model: str | None = None,
    models: Sequence[str] | None = None,
    client: Client | AsyncClient | None = None,
    **options: Any,
) -> pd.DataFrame:
    """What transcribing ``df[column]`` with each model would send and cost; nothing is sent.

    ``options`` are those of ``transcribe_column`` that change what is sent (``language``,
    ``language_column``, ``cache``, ``chunk_seconds``, ``max_upload_bytes``, ``upload_format`` ...). Files
    are read to hash them (for the cache lookup) unless the cache already knows them; audio is never decoded.
    Columns: see ``ESTIMATE_COLUMNS``; ``projected_cost`` is <NA> when the server lists no price.

    Example::

        stt_frames.estimate(df, models=["local/pocketsphinx", "fake/echo"], client=client)
    """
    names = list(models) if models is not None else ([model] if model is not None else [])
    if not names or isinstance(models, str):
        raise ValueError("give model='...' or models=[...]")
    options = {k: v for k, v in options.items() if k not in ("progress", "output", "prefix", "overwrite")}
    return estimate_specs(df, column, [RunSpec.build(model=m, **options) for m in names], client=client)


def estimate_specs(
    df: pd.DataFrame, column: str, specs: Sequence[RunSpec], *, client: Client | AsyncClient | None = None
) -> pd.DataFrame:
    """``estimate`` for runs already described by their ``RunSpec`` (what ``dry_run=True`` uses)."""
    spec0 = specs[0]
    if column not in df.columns:
        raise KeyError(f"column {column!r} is not in the DataFrame; columns are {list(df.columns)}")
    from .frame import _languages

    languages = _languages(df, spec0.language, spec0.language_column)
    sync = client if isinstance(client, Client) else Client.from_settings(client.settings) if client else Client()
    from .frame import _open_cache

    cache = _open_cache(spec0.cache)  # the same cache the run would use, SQLite or an object store
    try:
        files: dict[str, _File | AudioError] = {}
        rows: list[tuple[_File | AudioError, str | None]] = []
        for value, lang in zip(df[column].tolist(), languages, strict=True):
            path = os.path.abspath(os.fspath(value)) if isinstance(value, str | os.PathLike) else None
            if path is None:
                rows.append((AudioError(f"not a path: {value!r:.60}"), lang))
                continue
            if path not in files:
                try:
                    files[path] = _look(path, cache)
                except AudioError as exc:
                    files[path] = exc
            rows.append((files[path], lang))
        prices = _prices(sync, list(dict.fromkeys(spec.model for spec in specs)))
        frame = pd.DataFrame([_one(spec, rows, cache, sync.base_url, prices[spec.model]) for spec in specs])
        return frame.astype({"language": "string", "price_per_minute": "Float64", "projected_cost": "Float64"})
    finally:
        if cache is not None and not isinstance(spec0.cache, Cache):
            cache.close()
        if sync is not client:
            sync.close()


def _one(
    spec: RunSpec,
    rows: list[tuple[_File | AudioError, str | None]],
    cache: Cache | None,
    endpoint: str,
    price: float | None,
) -> dict[str, Any]:
    policy = spec.upload
    good = [(f, lang) for f, lang in rows if isinstance(f, _File)]
    keys: dict[tuple[str, str | None], str | None] = {}
    for f, lang in good:
        if (f.path, lang) not in keys:
            whole = _sends_whole(spec, f)
            keys[(f.path, lang)] = spec.cache_key(f.sha, lang, endpoint, chunked=not whole) if f.sha else None
    hits = cache.get_many(k for k in keys.values() if k) if cache is not None and not spec.refresh else {}
    cached = {pl for pl, k in keys.items() if k in hits}
    to_send = [(f, lang) for f, lang in good if (f.path, lang) not in cached]
    distinct = {(f.sha or f.path, lang): f for f, lang in to_send}  # identical audio is sent once
    seconds = sum(f.seconds or 0.0 for f in distinct.values())
    upload = requests = 0
    for f in distinct.values():
        if _sends_whole(spec, f):
            upload, requests = upload + f.size, requests + 1
        else:
            n = max(1, math.ceil((f.seconds or 0.0) / policy.chunk_limit()))
            upload += int((f.seconds or 0.0) * _TYPICAL_BYTES_PER_SECOND[policy.chunk_encoding])
            requests += n
    all_seconds = sum(f.seconds or 0.0 for f in {f.path: f for f, _ in good}.values())
    return {
        "model": spec.model,
        "language": spec.language,
        "rows": len(rows),
        "files": len({f.path for f, _ in good}),
        "audio_hours": all_seconds / 3600,
        "upload_bytes": upload,
        "requests": requests,
        "rows_cached": len(good) - len(to_send),
        "rows_to_send": len(to_send),
        "rows_failing": len(rows) - len(good),
        "price_per_minute": price,
        "projected_cost": None if price is None else seconds / 60 * price,
    }


def _sends_whole(spec: RunSpec, f: _File) -> bool:
    try:
        return spec.upload.sends_whole(f.size, f.seconds)
    except AudioError:
        return True  # too big with chunking off: it fails before upload; counted as one (refused) request
