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
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pandas as pd

from ._inputs import resolve_inputs
from ._limits import Budget
from ._progress import Progress, ProgressListener
from ._runner import Runner
from ._settings import is_loopback, resolve_settings
from ._spec import DEFAULT_CONCURRENCY, CacheArg, OnError, RunSpec
from .cache import Cache
from .chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, UploadFormat
from .client import AsyncClient, Client
from .errors import AuthenticationError, CacheError, Interrupted, NotSentError, RunAborted, STTError
from .languages import check_languages
from .results import output_format, write_results
from .schema import RESULT_COLUMNS, RowResult
from .sources import Spool
from .timeouts import TimeoutArg

__all__ = [
    "DEFAULT_CONCURRENCY",
    "CacheArg",
    "RunContext",
    "atranscribe_column",
    "run_frame",
    "run_sync",
    "transcribe_column",
]

log = logging.getLogger("stt_frames")

T = TypeVar("T")


def _open_cache(cache: CacheArg) -> Cache | None:
    if cache is False:
        return None
    if isinstance(cache, Cache):
        return cache
    if isinstance(cache, str) and "://" in cache:  # s3://, file:// ...: one object per answer (cache_store.py)
        from .cache_store import ObjectCache

        return ObjectCache(cache)
    return Cache(None if cache is True else cache)


def _progress_for(progress: bool | ProgressListener, rows: int, desc: str) -> Progress:
    """A tqdm bar (True), nothing (False), or snapshots passed to a callable."""
    if callable(progress):
        return Progress(rows, enabled=False, desc=desc, listener=progress)
    return Progress(rows, enabled=bool(progress), desc=desc)


def _languages(df: pd.DataFrame, language: str | None, language_column: str | None) -> list[str | None]:
    """Each row's language: its ``language_column`` value (checked here, all at once), else ``language``."""
    if language_column is None:
        return [language] * len(df)
    values = df[language_column].tolist()
    check_languages(values, column=language_column)
    return [language if pd.isna(v) or not str(v).strip() else str(v).strip().lower() for v in values]


class _ThreadedSyncTransport(httpx.AsyncBaseTransport):
    """A sync ``httpx`` transport (given to a ``Client``) used from the run's event loop, one call per thread."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        def send() -> httpx.Response:
            sync_request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.read(),
                extensions=request.extensions,
            )
            response = self._transport.handle_request(sync_request)
            try:
                content = response.read()
            finally:
                response.close()
            return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

        return await asyncio.to_thread(send)


def _async_client_for(client: Client | AsyncClient | None, *, copy: bool) -> tuple[AsyncClient, bool]:
    """The AsyncClient to run with, and whether we own it (and must close it).

    A given AsyncClient is used as is on its own loop; on the worker loop of the sync call it is copied,
    because an aiohttp session belongs to the loop that made it. A ``Client``'s settings are kept, and its
    own transport (if it was given one) is used from worker threads.
    """
    if isinstance(client, AsyncClient) and not copy:
        return client, False
    if isinstance(client, AsyncClient):
        return AsyncClient.from_settings(
            client.settings, max_audio_bytes=client.max_audio_bytes, transport=client._user_transport
        ), True
    if isinstance(client, Client):
        sync = client._user_transport
        transport = _ThreadedSyncTransport(sync) if sync is not None else None
        return AsyncClient.from_settings(
            client.settings, max_audio_bytes=client.max_audio_bytes, transport=transport
        ), True
    return AsyncClient.from_settings(resolve_settings()), True


def _assemble(df: pd.DataFrame, results: list[RowResult | None], prefix: str, missing: BaseException) -> pd.DataFrame:
    out = df.copy()
    filled = [r if r is not None else RowResult.failed(missing) for r in results]
    for name, (dtype, _) in RESULT_COLUMNS.items():
        out[prefix + name] = pd.array([getattr(r, name) for r in filled], dtype=dtype)
    return out


def _check_frame(
    df: pd.DataFrame,
    column: str,
    spec: RunSpec,
    prefix: str,
    *,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> None:
    """Everything about the frame and the output that can be wrong, checked before anything is read or sent."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if column not in df.columns:
        raise KeyError(f"column {column!r} is not in the DataFrame; columns are {list(df.columns)}")
    if spec.language_column is not None and spec.language_column not in df.columns:
        raise KeyError(f"language_column {spec.language_column!r} is not a column; columns are {list(df.columns)}")
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string, got {prefix!r}")
    clash = [prefix + name for name in RESULT_COLUMNS if prefix + name in df.columns]
    if clash and not overwrite:
        shown = ", ".join(clash[:4]) + (" ..." if len(clash) > 4 else "")
        raise ValueError(
            f"the DataFrame already has result columns ({shown}); pass prefix='run2_' to keep both, "
            "or overwrite=True to replace them"
        )
    if column in [prefix + name for name in RESULT_COLUMNS]:
        raise ValueError(f"column {column!r} would be replaced by a result column; pass a prefix= such as 'stt_'")
    if output is not None:
        output_format(output)


def _dry_run(df: pd.DataFrame, column: str, spec: RunSpec, client: Client | AsyncClient | None) -> pd.DataFrame:
    from ._estimate import estimate_specs

    return estimate_specs(df, column, [spec], client=client)


async def _price_per_second(client: AsyncClient, model: str) -> float | None:
    """The model's USD per audio second from ``GET /models`` (None when not listed or not reachable)."""
    from ._estimate import price_per_minute

    try:
        listed = await client.list_models()
    except (STTError, httpx.HTTPError) as exc:
        log.info("no price list from %s (%s): max_cost learns the price from the first answers", client.base_url, exc)
        return None
    entry = next((m for m in listed if m.get("id") == model), None)
    per_minute = price_per_minute(entry) if entry is not None else None
    return None if per_minute is None else per_minute / 60


@dataclass
class RunContext:
    """What a run shares with the runs around it: ``compare`` passes one bar and one budget to every cell.

    ``interrupt`` is set by the sync entry point when Ctrl-C stops the run (see ``run_sync``).
    """

    bar: Progress | None = None
    budget: Budget | None = None
    interrupt: threading.Event | None = None


async def run_frame(
    df: pd.DataFrame,
    column: str,
    spec: RunSpec,
    *,
    output: str | os.PathLike[str] | None = None,
    prefix: str = "",
    client: Client | AsyncClient | None = None,
    progress: bool | ProgressListener = True,
    overwrite: bool = False,
    context: RunContext | None = None,
) -> pd.DataFrame:
    """Run ``df[column]`` through ``spec``: the one implementation behind every entry point."""
    _check_frame(df, column, spec, prefix, output=output, overwrite=overwrite)
    ctx = context or RunContext()
    languages = _languages(df, spec.language, spec.language_column)
    aclient, owned = _async_client_for(client, copy=ctx.interrupt is not None)
    if not aclient.settings.api_key and not is_loopback(httpx.URL(aclient.base_url).host):
        if owned:
            await aclient.aclose()
        raise AuthenticationError(
            f"no API key for {aclient.base_url}, so nothing was read or sent (for the offline local server, "
            "use its loopback base_url)",
            status=401,
        )
    store = _open_cache(spec.cache)
    bar = ctx.bar if ctx.bar is not None else _progress_for(progress, len(df), f"{prefix}{spec.model}")
    runner = Runner(aclient, store, bar, spec, budget=ctx.budget)
    if spec.max_cost is not None:  # a cap is held to within one row when the price per minute is known
        runner.price_per_second = await _price_per_second(aclient, spec.model)
    previous_hook = aclient.on_retry
    aclient.on_retry = runner.on_retry
    started = time.perf_counter()
    # a compare() grid shares one bar and budget over its cells: this run's own counts are the differences
    before = (bar.requests, bar.uploaded_bytes, bar.possibly_billed_twice, runner.budget.spent)
    spool = Spool(spec.storage_options)
    settled: dict[int, RowResult] = {}
    todo: list[int] = []

    def results() -> list[RowResult | None]:
        """Every row's result so far: settled while resolving the inputs, or by the runner."""
        merged: list[RowResult | None] = [settled.get(i) for i in range(len(df))]
        for j, i in enumerate(todo):
            if j < len(runner.results):
                merged[i] = runner.results[j]
        return merged

    try:
        values, settled = await resolve_inputs(
            df[column].tolist(), languages, spec, store, aclient.base_url, spool, bar
        )
        todo = [i for i in range(len(df)) if i not in settled]
        pending = runner.plan([values[i] for i in todo], [languages[i] for i in todo])
        await runner.run(pending)
    except RunAborted as stop:
        err = stop.error
        partial = _assemble(df, results(), prefix, NotSentError(f"not run: the run stopped first ({err})"))
        done = sum(r is not None and r.error is None for r in results())
        note = (
            f"; {done} finished rows are stored in the cache: fix this and rerun to resume"
            if store is not None
            else f"; {done} rows had finished (cache=False, so a rerun sends them again); they are in .partial"
        )
        if isinstance(err, STTError):
            if note not in str(err):
                err.args = (f"{err}{note}",)
            err.partial = partial
        raise err from None
    except asyncio.CancelledError:
        if ctx.interrupt is None or not ctx.interrupt.is_set():
            raise
        partial = _assemble(df, results(), prefix, NotSentError("not run: interrupted"))
        done = sum(r is not None and r.error is None for r in results())
        stored = "are cached" if store is not None else "are in .partial (cache=False: a rerun sends them again)"
        raise Interrupted(
            f"interrupted: {done} of {len(df)} rows finished and {stored}; "
            "run the same call again to resume (only the missing rows are sent). "
            "The finished rows are in this exception's .partial",
            partial,
        ) from None
    finally:
        spool.close()
        aclient.on_retry = previous_hook
        if ctx.bar is None:
            bar.close()
        if owned:
            await aclient.aclose()
        if store is not None:
            if isinstance(spec.cache, Cache):
                # as in Cache.close(): a lost file hash costs a re-hash; never let it hide the run's result or error
                with contextlib.suppress(CacheError):
                    store.flush_file_hashes()
            else:
                store.close()
    out = _assemble(df, results(), prefix, NotSentError("not run"))
    wall = time.perf_counter() - started
    info: dict[str, Any] = {
        "model": spec.model,
        "language": spec.language,
        "language_column": spec.language_column,
        "column": column,
        "parameters": spec.parameters(),
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
    overwrite: bool = False,
    client: Client | AsyncClient | None = None,
    on_error: OnError = "record",
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    upload_format: UploadFormat = "original",
    timeout: TimeoutArg | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    sample_rate: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> pd.DataFrame:
    """The awaitable twin of ``transcribe_column`` (same arguments), for code already in an event loop.

    Example::

        out = await stt_frames.atranscribe_column(df, column="path", model="openai/whisper-1")
    """
    spec = RunSpec.build(
        model=model, language=language, language_column=language_column, temperature=temperature,
        provider_options=provider_options, extra_body=extra_body, concurrency=concurrency, cache=cache,
        refresh=refresh, max_cost=max_cost, on_error=on_error, chunk_seconds=chunk_seconds,
        max_upload_bytes=max_upload_bytes, upload_format=upload_format, timeout=timeout, base_dir=base_dir,
        sample_rate=sample_rate, storage_options=storage_options,
    )  # fmt: skip
    if dry_run:
        return await asyncio.to_thread(_dry_run, df, column, spec, client)
    return await run_frame(
        df, column, spec, output=output, prefix=prefix, client=client, progress=progress, overwrite=overwrite
    )


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
    overwrite: bool = False,
    client: Client | AsyncClient | None = None,
    on_error: OnError = "record",
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    upload_format: UploadFormat = "original",
    timeout: TimeoutArg | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    sample_rate: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> pd.DataFrame:
    """Transcribe the audio files named in ``df[column]``; return a copy with result columns added.

    Adds ``text``, ``seconds``, ``seconds_source``, ``input_tokens``, ``output_tokens``,
    ``total_tokens``, ``cost``, ``error``, ``error_type``, ``cached``, ``latency_s`` and ``chunks``
    (nullable dtypes, each name preceded by ``prefix``; see ``stt_frames.schema``), keeping the input's
    index and row order. Works in Jupyter.

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
    - ``output``: also write the result to this file, in the format its extension names: ``.parquet``
      (with the schema and run metadata; see ``read_results``), ``.csv`` or ``.jsonl``.
    - Cells may be local paths (relative ones resolve against ``base_dir``, default the working
      directory), URLs (``s3://``, ``gs://``, ``az://``, ``hf://``, ``https://``, ``file://``; read with
      fsspec and ``storage_options``, extra ``stt-frames[remote]``), bytes, Hugging Face audio dicts
      (``{"bytes", "path"}`` or ``{"array", "sampling_rate"}``) or numpy arrays (``sample_rate=``).
    - ``dry_run``: send nothing; return ``stt_frames.estimate``'s frame instead (files, audio hours, bytes
      and requests to send, rows already cached, price per minute and projected cost).
    - ``overwrite``: the frame already holds result columns (an earlier run): True replaces them; by
      default that is an error, and ``prefix=`` keeps both.
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
    spec = RunSpec.build(
        model=model, language=language, language_column=language_column, temperature=temperature,
        provider_options=provider_options, extra_body=extra_body, concurrency=concurrency, cache=cache,
        refresh=refresh, max_cost=max_cost, on_error=on_error, chunk_seconds=chunk_seconds,
        max_upload_bytes=max_upload_bytes, upload_format=upload_format, timeout=timeout, base_dir=base_dir,
        sample_rate=sample_rate, storage_options=storage_options,
    )  # fmt: skip
    _check_frame(df, column, spec, prefix, output=output, overwrite=overwrite)
    if dry_run:
        return _dry_run(df, column, spec, client)
    bar = _progress_for(progress, len(df), f"{prefix}{spec.model}")
    return run_sync(
        lambda interrupt: run_frame(
            df,
            column,
            spec,
            output=output,
            prefix=prefix,
            client=client,
            overwrite=overwrite,
            context=RunContext(bar=bar, interrupt=interrupt),
        ),
        bar,
    )
