"""Flow control for a run: an adaptive bound on requests in flight, and the spending cap.

``AdaptiveLimiter`` is additive-increase / multiplicative-decrease: a 429 halves the number of
requests allowed in flight and pauses new ones for the wait the server asked for; every success
lets it grow back by one per ``limit`` successes, up to ``concurrency``.

``Budget`` refuses a request when spent cost, plus estimates for what is in flight, plus this
request's estimate would exceed ``max_cost``. When the server lists the model's price per minute, the
estimate is the request's audio duration times that price (plus 2 %), so a cap is spent to within one
row's cost. Otherwise it is the highest cost per byte of audio seen so far times this file's size
(cautious on purpose: a cap is a promise), and until a first cost is seen only one request is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

__all__ = ["AdaptiveLimiter", "Budget"]


class AdaptiveLimiter:
    """Bound requests in flight; back off on 429, speed back up on success."""

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.max = concurrency
        self.limit = float(concurrency)
        self.in_flight = 0
        self._paused_until = 0.0
        self._cond = asyncio.Condition()

    async def acquire(self) -> None:
        """Wait for a free slot (and for any 429 pause to end)."""
        async with self._cond:
            while True:
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), timeout=wait)
                    continue
                if self.in_flight < max(1, int(self.limit)):
                    self.in_flight += 1
                    return
                await self._cond.wait()

    async def release(self, *, ok: bool) -> None:
        """Free a slot; ``ok`` grows the limit back toward ``concurrency``."""
        async with self._cond:
            self.in_flight -= 1
            if ok and self.limit < self.max:
                self.limit = min(self.max, self.limit + 1.0 / max(self.limit, 1.0))
            self._cond.notify(max(1, int(self.limit) - self.in_flight))

    def throttle(self, wait: float) -> None:
        """A 429 was seen: halve the limit and pause new requests for ``wait`` seconds.

        Called from the client's retry hook, on the event loop thread.
        """
        self.limit = max(1.0, self.limit / 2)
        self._paused_until = max(self._paused_until, time.monotonic() + wait)


@dataclass
class Budget:
    """The spending cap of one run (``max_cost`` in USD; None means no cap)."""

    max_cost: float | None
    spent: float = 0.0
    reserved: dict[int, float] = field(default_factory=dict)
    _rate: float = 0.0  # highest cost per byte seen
    _bytes_seen: int = 0
    _ticket: int = 0
    exhausted: bool = False

    def estimate(self, size: int) -> float:
        """Expected cost of a file of ``size`` bytes, from the highest cost per byte seen so far."""
        return self._rate * size

    @property
    def calibrated(self) -> bool:
        """Whether a first cost has been seen (before that, one request at a time under a cap)."""
        return self._bytes_seen > 0

    def reserve(self, size: int, estimate: float | None = None) -> int | None:
        """Reserve ``estimate`` (USD; default: from the cost per byte seen) for a request; None (and
        exhausted) when it would break the cap."""
        if self.max_cost is None:
            return 0
        if self.exhausted:
            return None
        est = estimate if estimate is not None else self.estimate(size)
        if self.spent + sum(self.reserved.values()) + est > self.max_cost or self.spent >= self.max_cost:
            self.exhausted = True
            return None
        self._ticket += 1
        self.reserved[self._ticket] = est
        return self._ticket

    def settle(self, ticket: int | None, *, cost: float | None, size: int) -> None:
        """Replace a reservation by what the request really cost (None: it failed, nothing spent)."""
        if ticket:
            self.reserved.pop(ticket, None)
        if cost is not None:
            self.spent += cost
            self._rate = max(self._rate, cost / size) if size else self._rate
            self._bytes_seen += size
