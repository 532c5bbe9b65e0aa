"""The progress bar of a run: rows done, cache hits, errors, audio seconds, cost so far, projected total.

The projection is spent cost plus the cost per audio second seen so far times the audio still to do
(estimated from the mean seconds per finished row); it is shown only while the run is going.
Requests sent, bytes uploaded and requests sent a second time after a lost answer
(``possibly_billed_twice``) are counted too. ``tqdm.auto`` picks the notebook or terminal bar; a
``listener`` gets a ``RunProgress`` snapshot instead (at most every 0.2 s, after every answer, and at the end).

Counting costs a few additions per row: the bar and the listener are refreshed at most every 0.1 s
and 0.2 s, so a cached rerun of 200,000 rows does not pay for 200,000 redraws. The planning pass
(checking the files, looking the cache up) is counted too (``planned``), so the bar moves within
the first second however many rows there are.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Progress", "ProgressListener", "RunProgress"]

log = logging.getLogger("stt_frames")


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where a run stands: what ``transcribe_column(progress=callback)`` passes to the callback.

    ``chunks_expected`` counts the requests the long recordings started so far will take (an estimate
    from their duration); ``answered`` counts requests answered, chunks included, cache hits too.

    Example::

        def show(p): print(f"{p.done}/{p.rows} rows, {p.answered}/{p.chunks_expected} chunks, ${p.cost:.4f}")
        stt_frames.transcribe_column(df, model="fake/echo", progress=show)
    """

    rows: int
    done: int
    cached: int
    errors: int
    requests: int
    answered: int
    chunks_expected: int
    audio_seconds: float
    cost: float
    possibly_billed_twice: int
    planned: int = 0


#: A callable that receives ``RunProgress`` snapshots.
ProgressListener = Callable[[RunProgress], None]


class Progress:
    """Counts what a run did and shows it on a tqdm bar (or nowhere, with ``enabled=False``)."""

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        desc: str = "transcribing",
        position: int | None = None,
        listener: ProgressListener | None = None,
    ):
        self.total = total
        self.listener = listener
        self.answered = 0
        self.chunks_expected = 0
        self.done = 0
        self.cached = 0
        self.errors = 0
        self.sent = 0
        self.requests = 0  # requests sent (a chunked row sends one per chunk)
        self.uploaded_bytes = 0  # audio bytes uploaded, before base64
        self.possibly_billed_twice = 0  # second sends of requests whose first send went out whole
        self.audio_seconds = 0.0
        self.cost = 0.0  # spent in this run (cache hits cost nothing)
        self._billed_seconds = 0.0
        self.planned = 0  # rows the planning pass has checked (stat, cache look-up)
        # the first refreshes come after these intervals (or at a forced refresh: an answer, the end)
        self._last = self._last_bar = time.monotonic()
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

    def count(
        self,
        *,
        requests: int = 0,
        uploaded: int = 0,
        resent: int = 0,
        answered: int = 0,
        chunks_expected: int = 0,
        spent: float | None = None,
        billed_seconds: float | None = None,
    ) -> None:
        """Record what one request did: sent (with ``uploaded`` bytes), sent again, or answered at a cost."""
        self.answered += answered
        self.chunks_expected += chunks_expected
        self.requests += requests
        self.uploaded_bytes += uploaded
        self.possibly_billed_twice += resent
        if spent is not None:
            self.cost += spent
            if billed_seconds:
                self._billed_seconds += billed_seconds
        if resent or answered or chunks_expected:
            self._refresh(force_listener=True)

    def update(
        self,
        n: int = 1,
        *,
        cached: bool = False,
        error: bool = False,
        seconds: float | None = None,
    ) -> None:
        """Record ``n`` finished rows that share one outcome."""
        self.done += n
        if error:
            self.errors += n
        elif cached:
            self.cached += n
        if seconds is not None and not error:
            self.audio_seconds += seconds * n
        end = self.done >= self.total
        self._refresh(force_bar=end, force_listener=end)

    def update_cached(self, n: int, audio_seconds: float) -> None:
        """Record ``n`` rows answered from the cache, with ``audio_seconds`` in all."""
        self.done += n
        self.cached += n
        self.audio_seconds += audio_seconds
        end = self.done >= self.total
        self._refresh(force_bar=end, force_listener=end)

    def plan(self, n: int) -> None:
        """Record ``n`` more rows checked by the planning pass (shown until the rows themselves finish)."""
        first = self.planned == 0
        self.planned += n
        # the first batch of a long planning pass is shown at once: the bar moves before the first second
        self._refresh(force_bar=first, force_listener=first and self.planned < self.total)

    def snapshot(self) -> RunProgress:
        """The counts now, as a ``RunProgress``."""
        return RunProgress(
            rows=self.total,
            done=self.done,
            cached=self.cached,
            errors=self.errors,
            requests=self.requests,
            answered=self.answered,
            chunks_expected=self.chunks_expected,
            audio_seconds=self.audio_seconds,
            cost=self.cost,
            possibly_billed_twice=self.possibly_billed_twice,
            planned=self.planned,
        )

    def _refresh(self, *, force_bar: bool = False, force_listener: bool = False) -> None:
        now = time.monotonic()
        if self._bar is not None and (force_bar or now - self._last_bar >= 0.1):
            self._last_bar = now
            self._draw(refresh=True)
        if self.listener is not None and (force_listener or now - self._last >= 0.2):
            self._last = now
            try:
                self.listener(self.snapshot())
            except Exception:  # a broken callback must not lose the run's work: say so once, then stop calling it
                log.exception("the progress callback raised; it is not called again in this run")
                self.listener = None

    def _draw(self, *, refresh: bool) -> None:
        """One redraw: the count and the summary together (``tqdm.update`` would draw a second time)."""
        bar = self._bar
        bar.set_postfix_str(self.summary(), refresh=False)
        bar.n = self.done
        if refresh:
            bar.refresh()

    def summary(self) -> str:
        """One line: cache hits, errors, audio seconds, cost so far and (while running) projected.

        Second sends that may have been billed twice are shown whenever there are any.
        """
        text = f"cached={self.cached} errors={self.errors} audio={self.audio_seconds:,.1f}s cost=${self.cost:.4f}"
        if self.planned < self.total:
            text = f"planning {self.planned:,}/{self.total:,} " + text
        if self.done < self.total:
            text += f" projected=${self.projected_cost():.4f}"
        if self.possibly_billed_twice:
            text += f" possibly_billed_twice={self.possibly_billed_twice}"
        return text

    def close(self) -> None:
        """Final refresh and close the bar."""
        if self._bar is not None:
            self._draw(refresh=True)
            self._bar.close()
            self._bar = None
