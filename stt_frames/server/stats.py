"""Request accounting of the local server: what was asked for, and what was billed, per audio hash.

The audio hash is the SHA-256 (hex) of the decoded ``input_audio.data`` bytes, the same key a client
would cache on. ``billed`` counts the requests the engine completed with a 200, i.e. what a real
provider would charge for, including a ``truncate`` fault (the work was done, the answer was lost).

A client that goes away while its request waits (``latency``) or is being transcribed stops the work:
the request is counted under ``statuses["cancelled"]`` and is not billed, since no answer was made.
(Work that had finished before the client left stays billed, like ``truncate``.) ``jobs`` counts the
engines' jobs in the worker processes (``done``) and those dropped unstarted because their request was
cancelled (``cancelled``); see ``workers``.

Example::

    from stt_frames.server import get_stats
    get_stats(base_url)["billed"]  # {'3f0a...': 1}
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["ServerStats"]


class ServerStats:
    """Thread-safe counters behind ``GET /api/v1/_stats``; ``snapshot()`` and ``reset()`` are public."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.requests: Counter[str] = Counter()
        self.billed: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.total_requests = 0
        self.cost = 0.0
        self.seconds = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.jobs_done = 0
        self.jobs_cancelled = 0

    def started(self) -> None:
        """Count a transcription request that arrived."""
        with self._lock:
            self.total_requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self, status: int | str) -> None:
        """Count the answer of a request counted by ``started``: an HTTP status, or a fault like 'drop'."""
        with self._lock:
            self.in_flight -= 1
            self.statuses[str(status)] += 1

    def audio(self, sha256: str) -> None:
        """Count a request whose audio decoded from base64 to bytes with this hash."""
        with self._lock:
            self.requests[sha256] += 1

    def fault(self, kind: str) -> None:
        """Count an injected fault."""
        with self._lock:
            self.faults[kind] += 1

    def bill(self, sha256: str, model: str, cost: float, seconds: float) -> None:
        """Count a completed, billable transcription."""
        with self._lock:
            self.billed[sha256] += 1
            self.models[model] += 1
            self.cost += cost
            self.seconds += seconds

    def jobs(self, *, done: int = 0, cancelled: int = 0) -> None:
        """Count engine jobs that ran in a worker process, and jobs dropped before they started."""
        with self._lock:
            self.jobs_done += done
            self.jobs_cancelled += cancelled

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every counter (the body of ``GET /api/v1/_stats``).

        Example::

            app.state.stats.snapshot()["total_billed"]
        """
        with self._lock:
            return {
                "requests": dict(self.requests),
                "billed": dict(self.billed),
                "statuses": dict(self.statuses),
                "faults": dict(self.faults),
                "models": dict(self.models),
                "total_requests": self.total_requests,
                "total_billed": sum(self.billed.values()),
                "cost": round(self.cost, 10),
                "seconds": round(self.seconds, 6),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "jobs": {"done": self.jobs_done, "cancelled": self.jobs_cancelled},
            }

    def reset(self) -> None:
        """Zero every counter (requests still in flight keep being counted out)."""
        with self._lock:
            in_flight = self.in_flight
            self._clear()
            self.in_flight = in_flight
