"""The engine behind transcribe_column: plan the rows, answer what the cache knows, send the rest.

1. Plan (no audio read), in batches in a worker thread while the event loop sends what is already
   planned: each value becomes a path or a row error; ``stat`` checks it; files unchanged since they
   were last hashed (path, size, mtime) get their audio hash and duration from the cache without being
   read (one ``IN`` query per batch), and rows whose answer is cached are done at once (another).
   The progress bar counts the planned rows, so it moves within the first second.
2. Prepare (in a worker thread for files over 1 MiB): read and check the file, hash it, read its
   duration, and decide with the ``UploadPolicy`` whether it goes whole or in chunks.
3. Send: a whole file joins an identical request already in flight, or is sent under the adaptive
   limiter. A long or large file is decoded as a stream and cut into chunks; each chunk takes its own
   slot of the limiter, is looked up in the cache under its own key, and is sent concurrently with the
   rest. Every answer, whole or chunk, is queued for the cache as it arrives and committed with the
   others of the same ``FLUSH_INTERVAL`` (100 ms) in one transaction, and at the end, on a stop and on
   an interrupt; the stitched row is stored too, so a rerun of a long file reads one entry.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pandas as pd

from ._limits import AdaptiveLimiter, Budget
from ._progress import Progress
from ._spec import RunSpec
from .audio import AudioInput, check_file, check_header, read_audio
from .cache import FLUSH_ENTRIES, FLUSH_INTERVAL, Cache, CacheEntry, PendingEntry, hash_bytes, hash_file
from .chunking import Chunk, UploadPolicy, encode_chunk, format_clock, iter_chunks, probe_seconds
from .client import AsyncClient
from .errors import (
    APIConnectionError,
    APIStatusError,
    AudioError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CacheError,
    NotFoundError,
    NotSentError,
    PaymentRequiredError,
    RateLimitError,
    RunAborted,
    STTError,
)
from .schema import CHUNKS_FIELD, RowResult
from .timeouts import timeout_for
from .types import Transcription

__all__ = ["FATAL_ERRORS", "Runner", "prepare_file", "stitch"]

#: Connection failures, before any request got through, that stop a run: the base URL is unreachable.
UNREACHABLE_LIMIT = 3
#: The same 400 on this many rows in a row stops a run: a bad parameter, which every row would hit.
SAME_400_LIMIT = 5

#: Errors that every row would hit the same way: they stop the whole run at once.
FATAL_ERRORS: tuple[type[STTError], ...] = (AuthenticationError, PaymentRequiredError, NotFoundError, CacheError)


_USAGE_FIELDS = ("cost", "input_tokens", "output_tokens", "seconds", "total_tokens")


def stitch(answers: Sequence[Transcription]) -> dict[str, Any]:
    """The answers of a recording's chunks, in order, as one answer: texts joined, usage summed.

    A usage field is the sum over the chunks that report it, or None when none does.
    """
    text = " ".join(t.text.strip() for t in answers if t.text.strip())
    usage: dict[str, Any] = {}
    for name in _USAGE_FIELDS:
        values = [getattr(t.usage, name) for t in answers if getattr(t.usage, name) is not None]
        usage[name] = sum(values) if values else None
    if usage["seconds"] is not None and any(t.usage.seconds is None for t in answers):
        usage["seconds"] = None  # a partial sum would undercount: fall back to the audio's own duration
    return {"text": text, "usage": usage, CHUNKS_FIELD: len(answers)}


def as_path(value: Any) -> str:
    """A row's value as a path string, or AudioError saying what it is instead."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        raise AudioError("missing value (None/NaN) instead of a path")
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise AudioError(f"empty or non-text path {value!r:.60}")
        return os.path.expanduser(text) if text.startswith("~") else text
    raise AudioError(f"expected a path to an audio file, got {type(value).__name__}: {value!r:.60}")


@dataclass(slots=True)
class _Item:
    """One unit of sending work: rows that share a file (and, when known, a cache key)."""

    rows: Sequence[int]  # a tuple for one row (most items), a list once a second row shares the file
    path: str
    size: int
    mtime_ns: int
    format: str
    language: str | None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A file read and checked: its hash, duration, and either its bytes (sent whole) or None (chunks)."""

    sha: str
    seconds: float | None
    clip: AudioInput | None


#: Rows planned per batch (one stat pass, one IN-query for the file hashes, one for the answers).
_PLAN_BATCH = 2048
_FIRST_BATCH = 256

#: A row whose file exists: (row, absolute path, size, mtime_ns, format).
_Located = tuple[int, str, int, int, str]


@dataclass(frozen=True, slots=True)
class _Unstored:
    """An answer waiting to be committed, with the rows it answers (their results change if it cannot be)."""

    entry: PendingEntry
    rows: Sequence[int]
    result: RowResult | None


@dataclass(slots=True)
class _Plan:
    """The rows of a run before they are planned (``Runner.run`` plans them in batches)."""

    values: Sequence[Any]
    languages: Sequence[str | None]
    done: bool = False


#: Files up to this size are read and hashed on the event loop (a thread hop would cost more than the read).
_INLINE_BYTES = 1 << 20


def prepare_file(path: str, size: int, fmt: str, policy: UploadPolicy) -> _Prepared:
    """Read (or, for chunks, stream-hash) and check a file, and decide how it is sent. Blocking."""
    if policy.upload_format == "original" and size <= policy.max_upload_bytes:
        clip = read_audio(path, max_bytes=None)
        seconds = probe_seconds(clip.data)
        sha = hash_bytes(clip.data)
        return _Prepared(sha, seconds, clip if policy.sends_whole(size, seconds, where=path) else None)
    check_header(path, fmt)
    policy.sends_whole(size, None, where=path)  # raises when the file is too big and chunking is off
    return _Prepared(hash_file(path), probe_seconds(path), None)


class _ChunkFeed:
    """A recording's chunks, decoded one at a time in a worker thread (never two decodes at once)."""

    def __init__(self, path: str, max_seconds: float) -> None:
        self._chunks: Iterator[Chunk] = iter_chunks(path, max_seconds=max_seconds)
        self._pending: asyncio.Future[Chunk | None] | None = None

    async def next(self) -> Chunk | None:
        self._pending = asyncio.ensure_future(asyncio.to_thread(next, self._chunks, None))
        chunk = await asyncio.shield(self._pending)
        self._pending = None
        return chunk

    def close(self) -> None:
        """Stop decoding; a decode under way finishes in its thread first."""
        if self._pending is not None and not self._pending.done():
            self._pending.add_done_callback(lambda _f: self._chunks.close())  # type: ignore[attr-defined]
        else:
            self._chunks.close()  # type: ignore[attr-defined]


class Runner:
    """Runs one column through the cache and the client; see the module docstring."""

    def __init__(
        self,
        client: AsyncClient,
        cache: Cache | None,
        progress: Progress,
        spec: RunSpec,
        *,
        budget: Budget | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.progress = progress
        self.spec = spec
        self.policy = spec.upload
        self.limiter = AdaptiveLimiter(spec.concurrency)
        self.budget = budget if budget is not None else Budget(spec.max_cost)
        self._probe = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future[RowResult]] = {}
        self._unstored: list[_Unstored] = []  # answers not committed yet (at most FLUSH_INTERVAL old)
        self._unstored_keys: dict[str, _Unstored] = {}
        self._flush_soon = asyncio.Event()  # FLUSH_ENTRIES answers wait: commit them now
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None  # commits, one at a time
        self._keyers: dict[tuple[str | None, bool, str | None], Callable[[str], str]] = {}
        self.results: list[RowResult | None] = []
        self.stopped = False  # set before RunAborted is raised: no new request goes out after it
        #: USD per second of audio, when the server lists the model's price (set by run_frame): a capped
        #: run then reserves each request's duration times it, and needs no first request to calibrate.
        self.price_per_second: float | None = None
        self._reached = False  # whether any request got an answer (even an error status) in this run
        self._unreachable = 0  # connection failures before any answer
        self._same_400: tuple[str | None, int] = (None, 0)  # the last 400's message, and how many in a row

    def _key(self, sha: str, language: str | None, *, chunked: bool = False, chunk: str | None = None) -> str:
        keyer = self._keyers.get((language, chunked, chunk))
        if keyer is None:
            keyer = self._keyers[(language, chunked, chunk)] = self.spec.keyer(
                language, self.client.base_url, chunked=chunked, chunk=chunk
            )
        return keyer(sha)

    def _timeout_for(self, seconds: float | None, body_bytes: int) -> httpx.Timeout:
        if self.spec.timeout is not None:
            return self.spec.timeout
        if self.client._timeout_given:
            return self.client.settings.timeout
        return timeout_for(audio_seconds=seconds, body_bytes=body_bytes)

    def _finish(self, rows: Sequence[int], result: RowResult) -> None:
        for i in rows:
            self.results[i] = result
        self.progress.update(
            len(rows),
            cached=bool(result.cached),
            error=result.error is not None,
            seconds=result.seconds,
        )
        if result.error is not None and self.spec.on_error == "raise":
            self.stopped = True
            raise RunAborted(result.exception or STTError(result.error))

    # -- 1. plan ----------------------------------------------------------------------------------------
    def plan(self, values: Sequence[Any], languages: Sequence[str | None]) -> _Plan:
        """The rows to plan; ``run`` plans them in batches off the event loop while it sends what is left."""
        self.results = [None] * len(values)
        return _Plan(values, languages)

    def _locate(self, values: Sequence[Any], start: int) -> tuple[list[tuple[int, AudioError]], list[_Located]]:
        """Check a batch of rows without reading them (stat, extension, size); blocking."""
        policy = self.policy
        failed: list[tuple[int, AudioError]] = []
        located: list[_Located] = []
        abspath = os.path.abspath
        for i, value in enumerate(values, start):
            try:
                path = as_path(value)
                st, fmt = check_file(path, max_bytes=None)
                if policy.chunk_seconds is None:
                    policy.sends_whole(st.st_size, None, where=path)  # too big to go whole: an error before any upload
                full = abspath(path)
                located.append((i, path if full == path else full, st.st_size, st.st_mtime_ns, fmt))
            except AudioError as exc:
                failed.append((i, exc))
        return failed, located

    def _look_up(
        self, rows: Sequence[_Located], languages: Sequence[str | None]
    ) -> tuple[list[str | None], list[RowResult | None]]:
        """The cache keys of a batch of distinct files (None: not known without reading the file), and
        their cached answers; blocking."""
        assert self.cache is not None
        known = self.cache.file_hashes({path: (size, mtime) for _, path, size, mtime, _ in rows})
        planned_key = self._planned_key
        keys = [planned_key(known, path, size, languages[i]) for i, path, size, _, _ in rows]
        if self.spec.refresh:
            return keys, [None] * len(rows)
        hits = self.cache.get_many(k for k in keys if k)
        entries = [hits.get(k) if k else None for k in keys]
        from_entry = RowResult.from_entry
        return keys, [from_entry(e) if e is not None else None for e in entries]

    async def _plan(self, plan: _Plan, queue: collections.deque[_Item], more: asyncio.Event) -> None:
        """Plan ``plan`` in batches in a worker thread; settle bad rows and cache hits, queue the rest."""
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stt-frames-plan")
        try:
            languages = plan.languages
            # one entry per distinct file (and language): the first row's, with the others in ``also``;
            # keyed by path alone when every row has the same language (200,000 tuples less to hold)
            distinct: list[_Located] = []
            first: dict[str | tuple[str, str | None], int] = {}
            also: dict[int, list[int]] = {}
            one_language = len(set(languages)) <= 1
            # a small first batch, so that the bar moves at once however many rows there are
            bounds = [0, *range(_FIRST_BATCH, len(plan.values), _PLAN_BATCH), len(plan.values)]
            for lo, hi in itertools.pairwise(bounds):
                batch = plan.values[lo:hi]
                failed, located = await loop.run_in_executor(pool, self._locate, batch, lo)
                for i, exc in failed:
                    self._finish((i,), RowResult.failed(exc))
                for row in located:
                    n = len(distinct)
                    j = first.setdefault(row[1] if one_language else (row[1], languages[row[0]]), n)
                    if j == n:
                        distinct.append(row)
                    else:
                        also.setdefault(j, []).append(row[0])
                self.progress.plan(len(batch) - len(failed))
            del first

            def item(j: int, key: str | None) -> _Item:
                i, path, size, mtime, fmt = distinct[j]
                more_rows = also.get(j)
                return _Item((i, *more_rows) if more_rows else (i,), path, size, mtime, fmt, languages[i], key)

            if self.cache is None:
                queue.extend(item(j, None) for j in range(len(distinct)))
                more.set()
                return
            for lo in range(0, len(distinct), _PLAN_BATCH):
                batch_rows = distinct[lo : lo + _PLAN_BATCH]
                keys, found = await loop.run_in_executor(pool, self._look_up, batch_rows, languages)
                self._finish_hits(
                    ((i, *also.get(lo + k, ())), result)
                    for k, ((i, *_), result) in enumerate(zip(batch_rows, found, strict=True))
                    if result is not None
                )
                queue.extend(
                    item(lo + k, key) for k, (key, result) in enumerate(zip(keys, found, strict=True)) if result is None
                )
                more.set()
        finally:
            if self.cache is not None:  # the planning thread's own connection
                pool.submit(self.cache.close)
            pool.shutdown(wait=False)
            plan.done = True
            more.set()

    def _finish_hits(self, hits: Iterator[tuple[tuple[int, ...], RowResult]]) -> None:
        """Settle rows answered from the cache, with one update of the bar for all of them."""
        results = self.results
        rows = 0
        seconds = 0.0
        for where, result in hits:
            for i in where:
                results[i] = result
            rows += len(where)
            if result.seconds is not None:
                seconds += result.seconds * len(where)
        if rows:
            self.progress.update_cached(rows, seconds)

    def _planned_key(
        self, known: Mapping[str, tuple[str, str, float | None]], path: str, size: int, lang: str | None
    ) -> str | None:
        """The cache key of a file whose hash (and duration) the cache remembers, else None."""
        found = known.get(path)
        if found is None:
            return None
        sha, _fmt, seconds = found
        p = self.policy
        if (
            seconds is None
            and p.upload_format == "original"
            and p.chunk_seconds is not None
            and size <= p.max_upload_bytes
        ):
            return None  # whole or chunks depends on the duration, not known yet
        return self._key(sha, lang, chunked=not p.sends_whole(size, seconds))

    # -- 2. send ----------------------------------------------------------------------------------------
    def _estimate(self, seconds: float | None) -> float | None:
        """What a request of ``seconds`` of audio will cost, when the price is known (2 % of margin)."""
        if self.price_per_second is None or seconds is None:
            return None
        return seconds * self.price_per_second * 1.02

    def on_retry(self, err: STTError, wait: float) -> None:
        """Client retry hook: a 429 slows the whole run down; a second send after a lost answer is counted."""
        if isinstance(err, RateLimitError):
            self.limiter.throttle(wait)
        if isinstance(err, APIConnectionError) and err.request_sent:
            self.progress.count(resent=1)
        elif isinstance(err, APIConnectionError) and not self._reached:
            # nothing got through yet: an unreachable base URL fails fast, not after every row's retries
            self._unreachable += 1
            if self._unreachable >= UNREACHABLE_LIMIT:
                self.stopped = True
                raise RunAborted(
                    APIConnectionError(
                        f"cannot reach {self.client.base_url}: {UNREACHABLE_LIMIT} connection attempts failed and "
                        f"no request got through ({err}); check base_url and that the server is running"
                    )
                )

    async def run(self, plan: _Plan) -> None:
        """Plan and send the rows with ``concurrency`` workers; raises RunAborted for errors that end the run."""
        queue: collections.deque[_Item] = collections.deque()
        more = asyncio.Event()

        async def worker() -> None:
            while not self.stopped:
                if queue:
                    await self._work(queue.popleft())
                elif plan.done:
                    return
                else:
                    more.clear()
                    await more.wait()

        finished = asyncio.Event()

        async def send_all() -> None:
            try:
                workers = [worker() for _ in range(max(1, min(self.limiter.max, len(plan.values))))]
                await asyncio.gather(self._plan(plan, queue, more), *workers)
            finally:
                finished.set()
                self._flush_soon.set()  # the flusher stops now, not at its next tick

        tasks = [asyncio.ensure_future(send_all()), asyncio.ensure_future(self._flush_every(FLUSH_INTERVAL, finished))]
        try:
            await asyncio.gather(*tasks)
            self._flush()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._close_writer()  # a commit under way in the writer thread finishes first
            if self._unstored:  # stopped, interrupted or failed: keep what was answered
                with contextlib.suppress(RunAborted):
                    self._flush()

    async def _work(self, item: _Item) -> None:
        capped = self.budget.max_cost is not None
        if capped and self.price_per_second is None and not self.budget.calibrated:
            async with self._probe:  # until a first cost is known, one request at a time
                await self._work_item(item)
            return
        await self._work_item(item)

    def _over_budget(self) -> RowResult:
        return RowResult.failed(self._over_budget_error())

    def _over_budget_error(self) -> BudgetExceededError:
        b = self.budget
        return BudgetExceededError(
            f"not sent: max_cost=${b.max_cost:.4f} would be exceeded (spent ${b.spent:.4f} in this run); "
            "raise max_cost and rerun: finished rows are cached and cost nothing"
        )

    async def _work_item(self, item: _Item) -> None:
        if self.budget.exhausted:
            self._finish(item.rows, self._over_budget())
            return
        if self.stopped:
            return
        try:
            if item.size <= _INLINE_BYTES:
                prepared = prepare_file(item.path, item.size, item.format, self.policy)
            else:
                prepared = await asyncio.to_thread(prepare_file, item.path, item.size, item.format, self.policy)
        except AudioError as exc:
            self._finish(item.rows, RowResult.failed(exc))
            return
        chunked = prepared.clip is None
        key = self._key(prepared.sha, item.language, chunked=chunked)
        if self.cache is not None:
            try:
                self.cache.put_file_hash(
                    item.path, item.size, item.mtime_ns, prepared.sha, item.format, prepared.seconds
                )
                entry = self._lookup(key) if not self.spec.refresh and key != item.key else None
            except CacheError as exc:  # the cache failed (disk full ...): stop, keep what finished
                self.stopped = True
                raise RunAborted(exc) from exc
            if entry is not None:
                self._finish(item.rows, RowResult.from_entry(entry))
                return
        shared = self._inflight.get(key)
        if shared is not None:  # identical audio already on its way: wait for that answer
            result = await asyncio.shield(shared)
            self._finish(item.rows, replace(result, cached=True) if result.error is None else result)
            return
        future: asyncio.Future[RowResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            if chunked:
                result = await self._send_chunks(item, prepared, key)
            else:
                assert prepared.clip is not None
                result = await self._send_whole(item, prepared.clip, prepared.seconds, prepared.sha, key)
            future.set_result(result)
            self._finish(item.rows, result)
        finally:
            if not future.done():
                future.set_result(
                    RowResult.failed(NotSentError("not run: the run stopped before this request finished"))
                )
            self._inflight.pop(key, None)

    def _lookup(self, key: str) -> CacheEntry | None:
        """A cached answer: one that waits to be committed, else one in the cache."""
        waiting = self._unstored_keys.get(key)
        if waiting is not None:
            e = waiting.entry
            return CacheEntry(e.key, dict(e.response), e.audio_seconds, e.latency_s, time.time())
        assert self.cache is not None
        return self.cache.get(key)

    def _store(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        rows: Sequence[int] = (),
        result: RowResult | None = None,
        audio_sha256: str,
        language: str | None,
        audio_seconds: float | None,
        latency_s: float | None,
    ) -> None:
        """Queue one answer for the cache; the queue is committed every ``FLUSH_INTERVAL`` or ``FLUSH_ENTRIES``.

        Raises RunAborted when that commit fails (the rows of the answers not stored say so).
        """
        if self.cache is None:
            return
        entry = PendingEntry(
            key, response, audio_sha256, self.spec.model, language, self.client.base_url, audio_seconds, latency_s
        )
        waiting = _Unstored(entry, rows, result)
        self._unstored.append(waiting)
        self._unstored_keys[key] = waiting
        if len(self._unstored) >= FLUSH_ENTRIES:
            self._flush_soon.set()

    def _flush(self) -> None:
        """Commit the queued answers now, from this thread (at the end of a run, or when it stops)."""
        if not self._unstored or self.cache is None:
            return
        batch, self._unstored = self._unstored, []
        self._committed(batch, self._commit(batch))

    def _commit(self, batch: Sequence[_Unstored]) -> list[tuple[_Unstored, CacheError]]:
        """Store a batch in one transaction; blocking. Returns the answers that could not be stored.

        When the transaction fails (disk full ...), the answers are stored one by one, so that as many
        as fit are kept.
        """
        assert self.cache is not None
        try:
            self.cache.put_many([w.entry for w in batch])
            return []
        except CacheError:
            pass
        failed: list[tuple[_Unstored, CacheError]] = []
        for w in batch:
            try:
                self.cache.put_many([w.entry])
            except CacheError as exc:
                failed.append((w, exc))
        return failed

    def _committed(self, batch: Sequence[_Unstored], failed: Sequence[tuple[_Unstored, CacheError]]) -> None:
        """After a commit, on the event loop: rows whose answer was not stored say so, and the run stops."""
        for w in batch:
            if self._unstored_keys.get(w.entry.key) is w:
                del self._unstored_keys[w.entry.key]
        for w, exc in failed:
            self._not_stored(w, exc)
        if failed:
            self.stopped = True
            raise RunAborted(failed[0][1]) from failed[0][1]

    def _not_stored(self, waiting: _Unstored, exc: CacheError) -> None:
        """Rows answered whose answer could not be stored: the text is kept, the row says why."""
        result = waiting.result
        if result is None:
            return
        failed = replace(result, error=f"answered but not stored: {exc}", exception=exc)
        for i in waiting.rows:
            if self.results[i] is None or self.results[i] is result:
                self.results[i] = failed

    async def _flush_every(self, interval: float, finished: asyncio.Event) -> None:
        """Commit the queued answers every ``interval`` seconds, or at once when ``FLUSH_ENTRIES`` wait, until
        ``finished`` is set. Each commit runs in the writer thread, one at a time, while the requests go on:
        an object store's writes take tens of milliseconds, which the event loop would otherwise wait out."""
        loop = asyncio.get_running_loop()
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_soon.wait(), interval)
            self._flush_soon.clear()
            if not self._unstored or self.cache is None:
                continue
            batch, self._unstored = self._unstored, []
            if self._writer is None:
                self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stt-frames-commit")
            try:
                failed = await asyncio.shield(loop.run_in_executor(self._writer, self._commit, batch))
            except asyncio.CancelledError:
                self._unstored[:0] = batch  # the run is ending: stored at the end, from the run's own thread
                raise
            self._committed(batch, failed)

    def _close_writer(self) -> None:
        """Wait for the writer thread's commit, if any, and close its cache connection."""
        writer, self._writer = self._writer, None
        if writer is not None:
            if self.cache is not None:
                writer.submit(self.cache.close)
            writer.shutdown(wait=True)

    async def _request(
        self, clip: AudioInput, language: str | None, seconds: float | None
    ) -> tuple[Transcription, float]:
        """One request through the client, under the run's timeout; returns the answer and its latency."""
        started = time.perf_counter()
        self.progress.count(requests=1, uploaded=len(clip.data))
        spec = self.spec
        try:
            answer = await self.client.transcribe(
                clip,
                model=spec.model,
                language=language,
                temperature=spec.temperature,
                provider_options=spec.provider_options,
                extra_body=spec.extra_body,
                timeout=self._timeout_for(seconds, len(clip.data) * 4 // 3),
            )
        except APIStatusError:
            self._reached = True  # the server answered, if with an error
            raise
        self._reached = True
        self._same_400 = (None, 0)
        return answer, time.perf_counter() - started

    def _fatal(self, exc: STTError, rows: Sequence[int], result: RowResult) -> None:
        if isinstance(exc, BadRequestError):  # the same 400 on row after row: a bad parameter, not a bad file
            last, n = self._same_400
            self._same_400 = (exc.message, n + 1 if exc.message == last else 1)
            if self._same_400[1] >= SAME_400_LIMIT:
                for i in rows:
                    self.results[i] = result
                self.stopped = True
                exc.args = (f"{exc}; the same 400 on {SAME_400_LIMIT} rows in a row: the run stopped there",)
                raise RunAborted(exc) from exc
        if isinstance(exc, FATAL_ERRORS):
            for i in rows:
                self.results[i] = result
            self.stopped = True
            raise RunAborted(exc) from exc

    async def _send_whole(self, item: _Item, clip: AudioInput, seconds: float | None, sha: str, key: str) -> RowResult:
        """Send a file byte for byte in one request under one limiter slot."""
        await self.limiter.acquire()
        ok = False
        try:
            if self.stopped:
                return RowResult.failed(NotSentError("not run: the run stopped before this request was sent"))
            ticket = self.budget.reserve(len(clip.data), self._estimate(seconds))
            if ticket is None:
                return self._over_budget()
            try:
                answer, latency = await self._request(clip, item.language, seconds)
            except STTError as exc:
                self.budget.settle(ticket, cost=None, size=len(clip.data))
                result = RowResult.failed(exc)
                self._fatal(exc, item.rows, result)
                return result
            self.budget.settle(ticket, cost=answer.usage.cost or 0.0, size=len(clip.data))
            result = RowResult.from_answer(answer, audio_seconds=seconds, latency_s=latency, cached=False)
            self.progress.count(answered=1, spent=answer.usage.cost, billed_seconds=result.seconds)
            self._store(
                key,
                answer.raw,
                rows=item.rows,
                result=result,
                audio_sha256=sha,
                language=item.language,
                audio_seconds=seconds,
                latency_s=latency,
            )
            ok = True
            return result
        finally:
            await self.limiter.release(ok=ok)

    async def _send_chunks(self, item: _Item, prepared: _Prepared, key: str) -> RowResult:
        """Cut a recording into chunks and send them concurrently, each under its own slot; stitch the answers."""
        started = time.perf_counter()
        feed = _ChunkFeed(item.path, self.policy.chunk_limit())
        answers: dict[int, tuple[Transcription, bool]] = {}
        spans: dict[int, str] = {}
        failure: list[tuple[int, BaseException]] = []
        tasks: list[asyncio.Task[None]] = []
        total_seconds = 0.0
        count = 0
        total = f" of {format_clock(prepared.seconds)}" if prepared.seconds else ""
        if prepared.seconds:
            self.progress.count(chunks_expected=max(1, math.ceil(prepared.seconds / self.policy.chunk_limit())))
        try:
            while not self.stopped and not failure:
                await self.limiter.acquire()
                released = False
                try:
                    chunk = await feed.next()
                    if chunk is None or self.stopped or failure:
                        break
                    count += 1
                    total_seconds = chunk.end
                    spans[chunk.index] = chunk.span
                    csha = chunk.sha256()
                    ckey = self._key(csha, item.language, chunk=self.policy.chunk_encoding)
                    entry = None
                    if self.cache is not None and not self.spec.refresh:
                        try:
                            entry = self._lookup(ckey)
                        except CacheError as exc:
                            self.stopped = True
                            raise RunAborted(exc) from exc
                    if entry is not None:
                        answers[chunk.index] = (Transcription.from_json(entry.response), True)
                        self.progress.count(answered=1)
                        continue
                    clip = await asyncio.to_thread(encode_chunk, chunk.pcm, self.policy.chunk_encoding)
                    ticket = self.budget.reserve(len(clip.data), self._estimate(chunk.seconds))
                    if ticket is None:
                        failure.append((chunk.index, self._over_budget_error()))
                        break
                    send = self._send_chunk(
                        item, chunk.index, chunk.seconds, clip, ckey, csha, ticket, answers, failure
                    )
                    released = True  # the task releases the slot
                    if (
                        self.budget.max_cost is not None
                        and self.price_per_second is None
                        and not self.budget.calibrated
                    ):
                        await send  # the first cost is not known yet: one request at a time
                    else:
                        tasks.append(asyncio.ensure_future(send))
                finally:
                    if not released:
                        await self.limiter.release(ok=True)
            if tasks:
                await asyncio.gather(*tasks)
        except AudioError as exc:
            failure.append((count, exc))
        finally:
            feed.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if failure:
            index, error = min(failure, key=lambda f: f[0])
            where = f"chunk {index + 1} ({spans[index]}{total})" if index in spans else f"chunk {index + 1}"
            result = replace(RowResult.failed(error, chunks=count), error=f"{where}: {error}")
            if isinstance(error, STTError):
                self._fatal(error, item.rows, result)
            return result
        ordered = [answers[i] for i in range(count)]
        stitched = stitch([t for t, _ in ordered])
        latency = time.perf_counter() - started
        all_cached = all(c for _, c in ordered)
        result = RowResult.from_answer(
            Transcription.from_json(stitched),
            audio_seconds=total_seconds,
            latency_s=latency,
            cached=all_cached,
            chunks=count,
        )
        self._store(
            key,
            stitched,
            rows=item.rows,
            result=result,
            audio_sha256=prepared.sha,
            language=item.language,
            audio_seconds=total_seconds,
            latency_s=latency,
        )
        return result

    async def _send_chunk(
        self,
        item: _Item,
        index: int,
        seconds: float,
        clip: AudioInput,
        key: str,
        sha: str,
        ticket: int,
        answers: dict[int, tuple[Transcription, bool]],
        failure: list[tuple[int, BaseException]],
    ) -> None:
        """Send one chunk (its limiter slot is already held) and store its answer."""
        ok = False
        try:
            try:
                answer, latency = await self._request(clip, item.language, seconds)
            except STTError as exc:
                self.budget.settle(ticket, cost=None, size=len(clip.data))
                failure.append((index, exc))
                return
            self.budget.settle(ticket, cost=answer.usage.cost or 0.0, size=len(clip.data))
            self.progress.count(answered=1, spent=answer.usage.cost, billed_seconds=answer.usage.seconds or seconds)
            answers[index] = (answer, False)
            self._store(
                key, answer.raw, audio_sha256=sha, language=item.language, audio_seconds=seconds, latency_s=latency
            )
            ok = True
        finally:
            await self.limiter.release(ok=ok)
