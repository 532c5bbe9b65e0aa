"""The retry policy: what is retried, and how long to wait.

Retried: 408, 429, every 5xx, timeouts and connection errors. Never retried: 400, 401, 402, 404
and other 4xx. A response header ``x-should-retry: true|false`` overrides the status.
The wait honours ``retry-after-ms``, then ``Retry-After`` (seconds or an HTTP date), up to
``MAX_RETRY_AFTER`` seconds; otherwise exponential backoff with jitter:
``min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF) * (1 - 0.25 * random())``.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from typing import Final

__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "backoff",
    "parse_retry_after",
    "should_retry_status",
]

#: First backoff wait, in seconds.
INITIAL_BACKOFF: Final = 0.5
#: Longest backoff wait, in seconds.
MAX_BACKOFF: Final = 30.0
#: Longest server-requested wait we honour, in seconds; longer requests are clamped to it.
MAX_RETRY_AFTER: Final = 300.0
#: Statuses below 500 that are retried.
RETRY_STATUSES: Final = frozenset({408, 429})


def should_retry_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """Whether an error answer with this status (and headers) is worth another try."""
    if headers is not None:
        hint = headers.get("x-should-retry", "").strip().lower()
        if hint == "true":
            return True
        if hint == "false":
            return False
    return status in RETRY_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``Retry-After``; None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return min(value, MAX_RETRY_AFTER)
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        value = when.timestamp() - (time.time() if now is None else now)
    return min(max(value, 0.0), MAX_RETRY_AFTER)


def backoff(attempt: int, *, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based)."""
    r = (rng or random).random()
    return min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF) * (1 - 0.25 * r)
