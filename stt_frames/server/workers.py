"""Where the engines' blocking work runs: worker processes for recognition, a few threads for small jobs.

pocketsphinx holds the GIL while it searches, so the recognisers run in a
``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes (default: every CPU), started with
the ``spawn`` method (the server runs threads, so ``fork`` is unsafe) on the first job, and stopped by
``close()`` (the app's lifespan calls it at shutdown). A worker ignores Ctrl-C: the server stops it.
Work is addressed by module-level functions and plain arguments; each process keeps what it builds
(pocketsphinx decoders) in its own module globals, created lazily.

A job is cancelled when the request that asked for it goes away (``asyncio`` cancellation): a job not yet
handed to a process is dropped; one already running finishes and its result is discarded.
``map_in_processes`` keeps at most ``workers`` jobs of one request in flight, so that concurrent requests
share the processes, and reports to ``stats`` how many jobs ran and how many were dropped.

As with any use of ``spawn``: a script that starts the server must guard its top level with
``if __name__ == "__main__":`` (the worker processes import the main module; notebooks need nothing).

Example::

    from stt_frames.server.workers import EngineWorkers
    workers = EngineWorkers(processes=2)
    await workers.in_process(pow, 2, 10)  # 1024, computed in a worker process
    workers.close()
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

__all__ = ["DEFAULT_THREADS", "EngineWorkers", "JobCounter", "default_workers"]

T = TypeVar("T")

#: Threads for small blocking jobs kept in the server process (``fake/echo`` decoding a non-WAV file).
DEFAULT_THREADS: int = 4


def default_workers() -> int:
    """The default number of worker processes: every CPU of the machine."""
    return os.cpu_count() or 1


class JobCounter(Protocol):
    """What ``map_in_processes`` reports to: the number of jobs that ran and that were dropped."""

    def jobs(self, *, done: int = 0, cancelled: int = 0) -> None: ...


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C in a terminal reaches the whole process group; the server handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class EngineWorkers:
    """The worker processes and threads of one server; ``close()`` stops them (and waits for them)."""

    def __init__(self, processes: int, *, threads: int = DEFAULT_THREADS, stats: JobCounter | None = None) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ValueError(f"workers must be a positive integer, got {processes!r}")
        self.processes = processes
        self.threads = threads
        self._stats = stats
        self._lock = threading.Lock()
        self._process_pool: ProcessPoolExecutor | None = None
        self._thread_pool: ThreadPoolExecutor | None = None
        self._closed = False

    def __repr__(self) -> str:
        started = self._process_pool is not None
        return f"EngineWorkers(processes={self.processes}, started={started}, closed={self._closed})"

    def _processes(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the server's engine workers are closed")
            if self._process_pool is None:
                self._process_pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_ignore_interrupts,
                )
            return self._process_pool

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the server's engine workers are closed")
            if self._thread_pool is None:
                self._thread_pool = ThreadPoolExecutor(self.threads, thread_name_prefix="stt-engine")
            return self._thread_pool

    def pids(self) -> list[int]:
        """Process ids of the worker processes started so far (for tests and diagnostics)."""
        pool = self._process_pool
        return sorted(getattr(pool, "_processes", None) or {}) if pool is not None else []

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of the server process's threads."""
        return await asyncio.get_running_loop().run_in_executor(self._threads(), fn, *args)

    async def in_process(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker process; ``fn`` and the arguments must be picklable."""
        (result,) = await self.map_in_processes(fn, [args])
        return result

    async def map_in_processes(self, fn: Callable[..., T], jobs: Iterable[Sequence[Any]]) -> list[T]:
        """``[fn(*job) for job in jobs]`` in the worker processes, at most ``processes`` jobs at a time.

        Results keep the order of ``jobs``. When the caller is cancelled, the jobs not yet running are
        dropped (and counted as cancelled), then the cancellation goes on.
        """
        pool = self._processes()
        pending = list(jobs)
        results: list[Any] = [None] * len(pending)
        running: dict[asyncio.Future[T], tuple[Future[T], int]] = {}
        submitted = 0
        try:
            while submitted < len(pending) or running:
                while submitted < len(pending) and len(running) < self.processes:
                    job = pool.submit(fn, *pending[submitted])
                    running[asyncio.wrap_future(job)] = (job, submitted)
                    submitted += 1
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for waiter in done:
                    _, index = running.pop(waiter)
                    self._count(done=1)
                    results[index] = waiter.result()
        except BaseException:
            dropped = [job for job, _ in running.values() if job.cancel()]
            for waiter in running:  # a job still running finishes unobserved
                waiter.cancel()
            self._count(done=len(running) - len(dropped), cancelled=len(dropped) + len(pending) - submitted)
            raise
        return results

    def _count(self, *, done: int = 0, cancelled: int = 0) -> None:
        if self._stats is not None and (done or cancelled):
            self._stats.jobs(done=done, cancelled=cancelled)

    def close(self) -> None:
        """Stop the worker processes and threads; jobs not started are dropped, running ones are waited for."""
        with self._lock:
            self._closed = True
            processes, self._process_pool = self._process_pool, None
            threads, self._thread_pool = self._thread_pool, None
        if processes is not None:
            processes.shutdown(wait=True, cancel_futures=True)
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
