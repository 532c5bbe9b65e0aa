"""``transcribe_column``: transcribe a DataFrame column of audio paths, concurrently, cached and resumable.

Example::

    import pandas as pd, stt_frames
    df = pd.read_csv("data/samples.csv")
    df["path"] = "data/" + df["path"]
    out = df.pipe(stt_frames.transcribe_column, column="path", model="openai/whisper-large-v3")
    out[["path", "text", "seconds", "cost", "error"]]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, Literal, TypeVar

import pandas as pd

from ._limits import Budget
from ._progress import Progress, ProgressListener
from ._runner import RowResult, RunAborted, Runner
from ._settings import resolve_settings
from .cache import Cache, CacheError
from .chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, UploadFormat, UploadPolicy
from .client import AsyncClient, Client
from .errors import STTError
from .results import RESULT_COLUMNS, write_results
from .timeouts import TimeoutArg, as_timeout

__all__ = ["DEFAULT_CONCURRENCY", "Interrupted", "atranscribe_column", "run_sync", "transcribe_column"]

log = logging.getLogger("stt_frames")

#: Requests in flight by default. OpenRouter's limits are per key and generous; raise it for big jobs.
DEFAULT_CONCURRENCY: Final = 16

T = TypeVar("T")
CacheArg = bool | str | os.PathLike[str] | Cache


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C / kernel interrupt). ``partial`` holds the rows finished so far.

    Everything finished is in the cache: run the same call again to resume where it stopped.
    """

    def __init__(self, message: str, partial: pd.DataFrame) -> None:
        super().__init__(message)
        self.partial = partial


def _open_cache(cache: CacheArg) -> Cache | None:
    if cache is False:
        return None
    if isinstance(cache, Cache):
        return cache
    return Cache(None if cache is True else cache)


def _progress_for(progress: bool | ProgressListener, rows: int, desc: str) -> Progress:
    """A tqdm bar (True), nothing (False), or snapshots passed to a callable."""
    if callable(progress):
        return Progress(rows, enabled=False, desc=desc, listener=progress)
    return Progress(rows, enabled=bool(progress), desc=desc)


def _languages(df: pd.DataFrame, language: str | None, language_column: str | None) -> list[str | None]:
    if language_column is None:
        return [language] * len(df)
    if language_column not in df.columns:
        raise KeyError(f"language_column {language_column!r} is not a column; columns are {list(df.columns)}")
    return [language if pd.isna(v) or not str(v).strip() else str(v).strip() for v in df[language_column]]


def _async_client_for(client: Client | AsyncClient | None, *, copy: bool) -> tuple[AsyncClient, bool]:
    """The AsyncClient to run with, and whether we own it (and must close it).

    A given AsyncClient is used as is on its own loop; on the worker loop of the sync call it is copied,
    because an aiohttp session belongs to the loop that made it.
    """
    if isinstance(client, AsyncClient) and not copy:
        return client, False
    if isinstance(client, Client | AsyncClient):
        transport = client._user_transport if isinstance(client, AsyncClient) else None
        copied = AsyncClient.from_settings(client.settings, max_audio_bytes=client.max_audio_bytes, transport=transport)
        return copied, True
    return AsyncClient.from_settings(resolve_settings()), True


def _assemble(df: pd.DataFrame, results: list[RowResult | None], prefix: str, missing: str) -> pd.DataFrame:
    out = df.copy()
    filled = [r if r is not None else RowResult.failed(missing) for r in results]
    for name, (dtype, _) in RESULT_COLUMNS.items():
        out[prefix + name] = pd.array([getattr(r, name) for r in filled], dtype=dtype)
    return out


def _check_args(df: pd.DataFrame, column: str, concurrency: int, max_cost: float | None, on_error: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if column not in df.columns:
        raise KeyError(f"column {column!r} is not in the DataFrame; columns are {list(df.columns)}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    if max_cost is not None and not max_cost >= 0:
        raise ValueError(f"max_cost must be a number of USD >= 0, got {max_cost!r}")
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")


async def atranscribe_column(
    df: pd.DataFrame,
    column: str = "path",
    *,
    model: str,
    language: str | None = None,
    language_column: str | None = None,
    temperature: float | None = None,
    provider_options: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    cache: CacheArg = True,
    refresh: bool = False,
    progress: bool | ProgressListener = True,
    max_cost: float | None = None,
    output: str | os.PathLike[str] | None = None,
    prefix: str = "",
    client: Client | AsyncClient | None = None,
    on_error: Literal["record", "raise"] = "record",
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    upload_format: UploadFormat = "original",
    timeout: TimeoutArg | None = None,
    _interrupt: threading.Event | None = None,
    _bar: Progress | None = None,
    _budget: Budget | None = None,
) -> pd.DataFrame:
    """The awaitable twin of ``transcribe_column`` (same arguments), for code already in an event loop.

    Example::

        out = await stt_frames.atranscribe_column(df, column="path", model="openai/whisper-1")
    """
    _check_args(df, column, concurrency, max_cost, on_error)
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a model id such as 'openai/whisper-large-v3', got {model!r}")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, int | float)):
        raise ValueError(f"temperature must be a number between 0 and 1, got {temperature!r}")
    if language is not None and not isinstance(language, str):
        raise ValueError(f"language must be an ISO-639-1 code such as 'en' (or None to auto-detect), got {language!r}")
    languages = _languages(df, language, language_column)
    policy = UploadPolicy(chunk_seconds=chunk_seconds, max_upload_bytes=max_upload_bytes, upload_format=upload_format)
    if timeout is not None:
        as_timeout(timeout)  # a bad value fails here, before anything is read or sent
    store = _open_cache(cache)
    aclient, owned = _async_client_for(client, copy=_interrupt is not None)
    bar = _bar if _bar is not None else _progress_for(progress, len(df), f"{prefix or ''}{model}")
    runner = Runner(
        aclient,
        store,
        bar,
        model=model,
        temperature=temperature,
        provider_options=provider_options,
        extra_body=extra_body,
        concurrency=concurrency,
        refresh=refresh,
        max_cost=max_cost,
        on_error=on_error,
        budget=_budget,
        policy=policy,
        timeout=timeout,
    )
    previous_hook = aclient.on_retry
    aclient.on_retry = runner.on_retry
    started = time.perf_counter()
    # a compare() grid shares one bar and budget over its cells: this run's own counts are the differences
    before = (bar.requests, bar.uploaded_bytes, bar.possibly_billed_twice, runner.budget.spent)
    try:
        pending = runner.plan(df[column].tolist(), languages)
        await runner.run(pending)
    except RunAborted as stop:
        partial = _assemble(df, runner.results, prefix, "not run: the run was stopped by an earlier error")
        err = stop.error
        done = sum(r is not None and r.error is None for r in runner.results)
        note = (
            f"; {done} finished rows are stored in the cache: fix this and rerun to resume"
            if store is not None
            else f"; {done} rows had finished (cache=False, so a rerun sends them again); they are in .partial"
        )
        if isinstance(err, STTError) and note not in str(err):
            err.args = (f"{err}{note}",)
        err.partial = partial  # type: ignore[attr-defined]
        raise err from None
    except asyncio.CancelledError:
        if _interrupt is None or not _interrupt.is_set():
            raise
        partial = _assemble(df, runner.results, prefix, "not run: interrupted")
        done = sum(r is not None and r.error is None for r in runner.results)
        stored = "are cached" if store is not None else "are in .partial (cache=False: a rerun sends them again)"
        raise Interrupted(
            f"interrupted: {done} of {len(df)} rows finished and {stored}; "
            "run the same call again to resume (only the missing rows are sent). "
            "The finished rows are in this exception's .partial",
            partial,
        ) from None
    finally:
        aclient.on_retry = previous_hook
        if _bar is None:
            bar.close()
        if owned:
            await aclient.aclose()
        if store is not None:
            if isinstance(cache, Cache):
                # as in Cache.close(): a lost file hash costs a re-hash; never let it hide the run's result or error
                with contextlib.suppress(CacheError):
                    store.flush_file_hashes()
            else:
                store.close()
    out = _assemble(df, runner.results, prefix, "not run")
    wall = time.perf_counter() - started
    info: dict[str, Any] = {
        "model": model,
        "language": language,
        "language_column": language_column,
        "column": column,
        "parameters": {
            "temperature": temperature,
            "provider_options": dict(provider_options or {}),
            "extra_body": sorted(extra_body or {}),
            "concurrency": concurrency,
            "max_cost": max_cost,
            "chunk_seconds": chunk_seconds,
            "max_upload_bytes": max_upload_bytes,
            "upload_format": upload_format,
            "timeout": None if timeout is None else as_timeout(timeout).as_dict(),
        },
        "base_url": aclient.base_url,
        "rows": len(df),
        "errors": int(out[prefix + "error"].notna().sum()),
        "spent_cost": runner.budget.spent - before[3],
        "requests": bar.requests - before[0],
        "uploaded_bytes": bar.uploaded_bytes - before[1],
        "possibly_billed_twice": bar.possibly_billed_twice - before[2],
        "wall_s": wall,
    }
    run_line = (
        f"{info['requests']} requests, {info['uploaded_bytes'] / 1e6:,.1f} MB of audio uploaded, "
        f"{info['possibly_billed_twice']} possibly billed twice"
    )
    log.info("transcribed %d rows in %.2fs: %s; %s", len(df), wall, bar.summary(), run_line)
    out.attrs["stt_frames"] = info
    if output is not None:
        write_results(out, output, prefix=prefix, metadata=info)
    return out


def _run_in_thread(make: Any, interrupt: threading.Event) -> Any:
    """Run a coroutine on a fresh event loop in a worker thread; Ctrl-C cancels it cleanly.

    Works the same in a script and in Jupyter (whose loop is already running), with no nest_asyncio.
    """
    box: concurrent.futures.Future[Any] = concurrent.futures.Future()
    handles: dict[str, Any] = {}
    ready = threading.Event()

    def main() -> None:
        loop = asyncio.new_event_loop()
        try:
            coro: Coroutine[Any, Any, Any] = make()
            task = loop.create_task(coro)
            handles.update(loop=loop, task=task)
            ready.set()
            try:
                box.set_result(loop.run_until_complete(task))
            except BaseException as exc:
                box.set_exception(exc)
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=main, name="stt_frames-run", daemon=True)
    thread.start()
    try:
        while True:
            try:
                return box.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        ready.wait()
        interrupt.set()
        loop, task = handles.get("loop"), handles.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        try:
            return box.result(timeout=60)
        except Interrupted as exc:
            raise exc from None
        finally:
            thread.join(timeout=5)


def run_sync(make: Callable[[threading.Event], Coroutine[Any, Any, T]], bar: Progress) -> T:
    """Run ``make(interrupt)`` to completion from sync code (see ``_run_in_thread``), then close ``bar``.

    The bar is made by the caller, in the caller's thread, so that Jupyter shows it in the calling cell.
    """
    interrupt = threading.Event()
    try:
        result: T = _run_in_thread(lambda: make(interrupt), interrupt)
    finally:
        bar.close()
    return result


def transcribe_column(
    df: pd.DataFrame,
    column: str = "path",
    *,
    model: str,
    language: str | None = None,
    language_column: str | None = None,
    temperature: float | None = None,
    provider_options: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    cache: CacheArg = True,
    refresh: bool = False,
    progress: bool | ProgressListener = True,
    max_cost: float | None = None,
    output: str | os.PathLike[str] | None = None,
    prefix: str = "",
    client: Client | AsyncClient | None = None,
    on_error: Literal["record", "raise"] = "record",
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    upload_format: UploadFormat = "original",
    timeout: TimeoutArg | None = None,
) -> pd.DataFrame:
    """Transcribe the audio files named in ``df[column]``; return a copy with result columns added.

    Adds ``text``, ``seconds``, ``seconds_source``, ``input_tokens``, ``output_tokens``,
    ``total_tokens``, ``cost``, ``error``, ``cached``, ``latency_s`` and ``chunks`` (nullable dtypes,
    each name preceded by ``prefix``), keeping the input's index and row order. Works in Jupyter.

    - ``concurrency`` (default 16): requests in flight; halved on 429 and grown back on success.
    - ``cache`` (default True): the on-disk answer cache (``STT_FRAMES_CACHE_DIR`` or the user cache
      dir); a path or ``Cache`` for another, False for none. ``refresh=True`` re-sends and overwrites.
    - ``max_cost`` (USD): no new request once spent + in-flight estimates would exceed it; unsent
      rows get an error saying so.
    - ``language_column``: per-row language codes (``language`` fills missing ones).
    - ``progress``: True (default) shows a tqdm bar; False nothing; a callable gets a ``RunProgress``
      (rows, requests and chunks answered, cost ...) as the run goes, for your own display.
    - ``on_error``: "record" (default) puts each failed row's message in ``error`` and goes on;
      "raise" stops at the first. A 401, 402 or 404 (unknown model) always stops the run at once.
    - ``output``: also write the result to this Parquet file (see ``read_results``).
    - ``client``: a ``Client``/``AsyncClient`` whose settings to use (key, base_url, retries ...).
    - ``chunk_seconds`` (default 600): a recording longer than this, or larger than ``max_upload_bytes``
      (default 25 MiB), is decoded as a stream, cut at the quietest point near each limit, and sent as
      chunks (concurrently, each cached on its own); the row gets the joined text and summed cost,
      tokens and seconds, and ``chunks`` says how many. None: never cut (too large is then an error).
    - ``upload_format``: "original" (default) sends a file that fits byte for byte (chunks go as 16 kHz
      mono FLAC); "flac" or "opus" (24 kbps) re-encode everything to 16 kHz mono.
    - ``timeout``: seconds or ``httpx.Timeout`` per request. Default: 120 s + 1 s per second of the
      request's audio to read the answer, 10 s to connect (``stt_frames.timeouts``). A request whose
      body went out whole and then timed out or lost its connection is sent again at most once;
      ``out.attrs["stt_frames"]["possibly_billed_twice"]`` counts those second sends.

    Ctrl-C stops promptly with ``Interrupted`` (its ``.partial`` holds the finished rows); rerun
    the same call to resume: finished rows come from the cache and cost nothing.

    Example::

        out = df.pipe(stt_frames.transcribe_column, column="path", model="openai/whisper-large-v3")
    """
    _check_args(df, column, concurrency, max_cost, on_error)
    bar = _progress_for(progress, len(df), f"{prefix}{model}")

    def make(interrupt: threading.Event) -> Coroutine[Any, Any, pd.DataFrame]:
        return atranscribe_column(
            df,
            column,
            model=model,
            language=language,
            language_column=language_column,
            temperature=temperature,
            provider_options=provider_options,
            extra_body=extra_body,
            concurrency=concurrency,
            cache=cache,
            refresh=refresh,
            progress=progress,
            max_cost=max_cost,
            output=output,
            prefix=prefix,
            client=client,
            on_error=on_error,
            chunk_seconds=chunk_seconds,
            max_upload_bytes=max_upload_bytes,
            upload_format=upload_format,
            timeout=timeout,
            _interrupt=interrupt,
            _bar=bar,
        )

    return run_sync(make, bar)
