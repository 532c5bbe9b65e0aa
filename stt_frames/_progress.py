"""The progress bar of a run: rows done, cache hits, errors, audio seconds, cost so far, projected total.

The projection is spent cost plus the cost per audio second seen so far times the audio still to do
(estimated from the mean seconds per finished row). ``tqdm.auto`` picks the notebook or terminal bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """Counts what a run did and shows it on a tqdm bar (or nowhere, with ``enabled=False``)."""

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "transcribing", position: int | None = None):
        self.total = total
        self.done = 0
        self.cached = 0
        self.errors = 0
        self.sent = 0
        self.audio_seconds = 0.0
        self.cost = 0.0  # spent in this run (cache hits cost nothing)
        self._billed_seconds = 0.0
        self._last = 0.0
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="row", dynamic_ncols=True, file=sys.stderr, position=position)

    def projected_cost(self) -> float:
        """Spent cost plus the expected cost of the rows not done yet."""
        if self.done == 0 or self._billed_seconds == 0:
            return self.cost
        per_second = self.cost / self._billed_seconds
        remaining_seconds = (self.total - self.done) * (self.audio_seconds / max(self.done - self.errors, 1))
        return self.cost + per_second * remaining_seconds

    def update(
        self,
        n: int = 1,
        *,
        cached: bool = False,
        error: bool = False,
        seconds: float | None = None,
        cost: float | None = None,
    ) -> None:
        """Record ``n`` finished rows that share one outcome."""
        self.done += n
        if error:
            self.errors += n
        elif cached:
            self.cached += n
        if seconds is not None and not error:
            self.audio_seconds += seconds * n
        if cost is not None and not cached and not error:
            self.cost += cost
            if seconds:
                self._billed_seconds += seconds
        if self._bar is not None:
            self._bar.update(n)
            now = time.monotonic()
            if now - self._last > 0.2 or self.done >= self.total:
                self._last = now
                self._bar.set_postfix_str(self.summary(), refresh=False)

    def summary(self) -> str:
        """One line: cache hits, errors, audio seconds, cost so far and projected."""
        return (
            f"cached={self.cached} errors={self.errors} audio={self.audio_seconds:,.1f}s "
            f"cost=${self.cost:.4f} projected=${self.projected_cost():.4f}"
        )

    def close(self) -> None:
        """Final refresh and close the bar."""
        if self._bar is not None:
            self._bar.set_postfix_str(self.summary(), refresh=True)
            self._bar.close()
            self._bar = None
