"""The engine behind transcribe_column: plan the rows, answer what the cache knows, send the rest.

1. Plan (fast, no audio read): each value becomes a path or a row error; ``stat`` checks it; files
   unchanged since they were last hashed (path, size, mtime) get their audio hash from the cache
   without being read, and rows whose answer is cached are done at once.
2. Send: the other rows run under the adaptive limiter. Each reads and checks its file, hashes it,
   asks the cache again, joins an identical request already in flight, or sends one. Every answer is
   written to the cache the moment it arrives.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ._limits import AdaptiveLimiter, Budget
from ._progress import Progress
from .audio import check_file, probe_duration, read_audio
from .cache import Cache, CacheEntry, CacheError, hash_bytes, request_key
from .client import AsyncClient
from .errors import (
    AudioError,
    AuthenticationError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    STTError,
)
from .models import Transcription

__all__ = ["FATAL_ERRORS", "RowResult", "RunAborted", "Runner"]

#: Errors that every row would hit the same way: they stop the whole run at once.
FATAL_ERRORS: tuple[type[STTError], ...] = (AuthenticationError, PaymentRequiredError, NotFoundError, CacheError)


class RunAborted(Exception):
    """Internal: stop the run, carrying the error to raise once finished rows are gathered."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class RowResult:
    """What one row gets: the result columns (see ``results.RESULT_COLUMNS``)."""

    text: str | None = None
    seconds: float | None = None
    seconds_source: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    error: str | None = None
    cached: bool | None = None
    latency_s: float | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @classmethod
    def failed(cls, error: BaseException | str) -> RowResult:
        return cls(error=str(error), cached=False, exception=error if isinstance(error, BaseException) else None)

    @classmethod
    def from_answer(
        cls, t: Transcription, *, audio_seconds: float | None, latency_s: float | None, cached: bool
    ) -> RowResult:
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
        )

    @classmethod
    def from_entry(cls, entry: CacheEntry) -> RowResult:
        return cls.from_answer(
            Transcription.from_json(entry.response),
            audio_seconds=entry.audio_seconds,
            latency_s=entry.latency_s,
            cached=True,
        )


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


def _stat(path: str, max_bytes: int) -> tuple[str, int, int]:
    """Cheap checks without reading the file; returns (absolute path, size, mtime_ns)."""
    st, _ = check_file(path, max_bytes=max_bytes)
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


@dataclass
class _Item:
    """One unit of sending work: rows that share a file (and, when known, a cache key)."""

    rows: list[int]
    path: str
    size: int
    mtime_ns: int
    language: str | None
    key: str | None = None


class Runner:
    """Runs one column through the cache and the client; see the module docstring."""

    def __init__(
        self,
        client: AsyncClient,
        cache: Cache | None,
        progress: Progress,
        *,
        model: str,
        temperature: float | None,
        provider_options: Mapping[str, Any] | None,
        extra_body: Mapping[str, Any] | None,
        concurrency: int,
        refresh: bool,
        max_cost: float | None,
        on_error: str,
        budget: Budget | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.progress = progress
        self.model = model
        self.temperature = temperature
        self.provider_options = provider_options
        self.extra_body = extra_body
        self.refresh = refresh
        self.on_error = on_error
        self.limiter = AdaptiveLimiter(concurrency)
        self.budget = budget if budget is not None else Budget(max_cost)
        self._probe = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future[RowResult]] = {}
        self.results: list[RowResult | None] = []
        self.stopped = False  # set before RunAborted is raised: no new request goes out after it

    def _key(self, sha: str, language: str | None) -> str:
        return request_key(
            sha,
            model=self.model,
            language=language,
            temperature=self.temperature,
            provider_options=self.provider_options,
            endpoint=self.client.base_url,
            extra_body=self.extra_body,
        )

    def _finish(self, rows: Sequence[int], result: RowResult) -> None:
        for i in rows:
            self.results[i] = result
        self.progress.update(
            len(rows),
            cached=bool(result.cached),
            error=result.error is not None,
            seconds=result.seconds,
            cost=result.cost,
        )
        if result.error is not None and self.on_error == "raise":
            self.stopped = True
            raise RunAborted(result.exception or STTError(result.error))

    # -- 1. plan ----------------------------------------------------------------------------------------
    def plan(self, values: Sequence[Any], languages: Sequence[str | None]) -> list[_Item]:
        """Settle bad rows and cache hits; return the work left to send."""
        self.results = [None] * len(values)
        max_bytes = self.client.max_audio_bytes
        located: dict[int, tuple[str, int, int]] = {}
        for i, value in enumerate(values):
            try:
                located[i] = _stat(as_path(value), max_bytes)
            except AudioError as exc:
                self._finish([i], RowResult.failed(exc))
        known: dict[str, tuple[str, str]] = {}
        if self.cache is not None and located:
            known = self.cache.file_hashes({p: (s, m) for p, s, m in located.values()})
        # group rows that share a file and language: one item each
        items: dict[tuple[str, str | None], _Item] = {}
        for i, (path, size, mtime) in located.items():
            lang = languages[i]
            item = items.get((path, lang))
            if item is None:
                sha = known.get(path, (None, None))[0]
                item = items[(path, lang)] = _Item([], path, size, mtime, lang, self._key(sha, lang) if sha else None)
            item.rows.append(i)
        pending = list(items.values())
        if self.cache is not None and not self.refresh:
            hits = self.cache.get_many(it.key for it in pending if it.key)
            rest = []
            for it in pending:
                entry = hits.get(it.key) if it.key else None
                if entry is not None:
                    self._finish(it.rows, RowResult.from_entry(entry))
                else:
                    rest.append(it)
            pending = rest
        return pending

    # -- 2. send ----------------------------------------------------------------------------------------
    def on_retry(self, err: STTError, wait: float) -> None:
        """Client retry hook: a 429 slows the whole run down."""
        if isinstance(err, RateLimitError):
            self.limiter.throttle(wait)

    async def run(self, pending: Sequence[_Item]) -> None:
        """Send the pending items with ``concurrency`` workers; raises RunAborted for errors that end the run."""
        queue = collections.deque(pending)

        async def worker() -> None:
            while queue and not self.stopped:
                await self._work(queue.popleft())

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.limiter.max, len(queue)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, item: _Item) -> None:
        capped = self.budget.max_cost is not None
        if capped and not self.budget.calibrated:
            async with self._probe:  # until a first cost is known, one request at a time
                await self._work_slot(item)
            return
        await self._work_slot(item)

    async def _work_slot(self, item: _Item) -> None:
        if self.budget.exhausted:
            self._finish(item.rows, self._over_budget())
            return
        await self.limiter.acquire()
        ok = False
        try:
            if self.stopped:
                return
            ok = await self._send(item)
        finally:
            await self.limiter.release(ok=ok)

    def _over_budget(self) -> RowResult:
        b = self.budget
        return RowResult.failed(
            f"not sent: max_cost=${b.max_cost:.4f} would be exceeded (spent ${b.spent:.4f} in this run); "
            "raise max_cost and rerun: finished rows are cached and cost nothing"
        )

    async def _send(self, item: _Item) -> bool:
        try:
            clip = read_audio(item.path, max_bytes=self.client.max_audio_bytes)
        except AudioError as exc:
            self._finish(item.rows, RowResult.failed(exc))
            return False
        sha = hash_bytes(clip.data)
        key = self._key(sha, item.language)
        if self.cache is not None:
            try:
                self.cache.put_file_hash(item.path, item.size, item.mtime_ns, sha, clip.format)
                entry = self.cache.get(key) if not self.refresh and key != item.key else None
            except CacheError as exc:  # the cache failed (disk full ...): stop, keep what finished
                self.stopped = True
                raise RunAborted(exc) from exc
            if entry is not None:
                self._finish(item.rows, RowResult.from_entry(entry))
                return True
        shared = self._inflight.get(key)
        if shared is not None:  # identical audio already on its way: wait for that answer
            result = await asyncio.shield(shared)
            self._finish(item.rows, replace(result, cached=True) if result.error is None else result)
            return True
        ticket = self.budget.reserve(len(clip.data))
        if ticket is None:
            self._finish(item.rows, self._over_budget())
            return False
        future: asyncio.Future[RowResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            started = time.perf_counter()
            try:
                answer = await self.client.transcribe(
                    clip,
                    model=self.model,
                    language=item.language,
                    temperature=self.temperature,
                    provider_options=self.provider_options,
                    extra_body=self.extra_body,
                )
            except STTError as exc:
                self.budget.settle(ticket, cost=None, size=len(clip.data))
                result = RowResult.failed(exc)
                future.set_result(result)
                if isinstance(exc, FATAL_ERRORS):
                    for i in item.rows:
                        self.results[i] = result
                    self.stopped = True
                    raise RunAborted(exc) from exc
                self._finish(item.rows, result)
                return False
            latency = time.perf_counter() - started
            seconds = None if answer.usage.seconds is not None else probe_duration(clip.data, clip.format)
            self.budget.settle(ticket, cost=answer.usage.cost or 0.0, size=len(clip.data))
            if self.cache is not None:
                try:
                    self.cache.put(
                        key,
                        answer.raw,
                        audio_sha256=sha,
                        model=self.model,
                        language=item.language,
                        endpoint=self.client.base_url,
                        audio_seconds=seconds,
                        latency_s=latency,
                    )
                except CacheError as exc:
                    result = RowResult.from_answer(answer, audio_seconds=seconds, latency_s=latency, cached=False)
                    # the text is kept, but the row must not count among those stored in the cache
                    result = replace(result, error=f"answered but not stored: {exc}", exception=exc)
                    self._finish(item.rows, result)
                    future.set_result(result)
                    self.stopped = True
                    raise RunAborted(exc) from exc
            result = RowResult.from_answer(answer, audio_seconds=seconds, latency_s=latency, cached=False)
            future.set_result(result)
            self._finish(item.rows, result)
            return True
        finally:
            if not future.done():
                future.set_result(RowResult.failed("not run: the run stopped before this request finished"))
            self._inflight.pop(key, None)
