"""Fault injection: answer a reproducible share of transcription requests with a failure.

``create_app(fail_rate=0.2, seed=1, faults=("429", "drop"))`` picks, for each transcription request in
arrival order, whether it fails (``random.Random(seed).random() < fail_rate``) and which of ``faults``
it gets. Faults apply to requests that passed authentication and the body size limit (a 401 or 413 is
never replaced by a fault); latency is added first. The kinds:

==========  ==================================================================================
``429``     rate limited: contract error JSON, ``Retry-After`` (whole seconds, rounded up) and
            ``retry-after-ms`` headers; the wait is ``retry_after`` (default 0.1 s)
``500``     internal error, contract error JSON
``502``     bad gateway with an HTML body, as a proxy in front of the API would send
``503``     service unavailable, contract error JSON
``drop``    the connection is closed before any response byte (the client sees a disconnect)
``truncate`` the transcription runs and is billed, the headers promise its full length, half the body
            is sent and the connection is closed
``402``     out of credits, contract error JSON. Opt-in only (not in the default set): a client is
            meant to stop its whole run on it, which would end every chaos test
==========  ==================================================================================

Example::

    from stt_frames.server.faults import FaultInjector
    inj = FaultInjector(rate=0.5, seed=0)
    [inj.roll() for _ in range(4)]  # e.g. [None, '502', None, 'drop'], the same for every run
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable

__all__ = ["DEFAULT_FAULTS", "DEFAULT_RETRY_AFTER", "FAULT_KINDS", "FaultInjector", "parse_faults"]

#: Every fault kind, in a fixed order.
FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503", "drop", "truncate", "402")

#: Kinds drawn from by default: every transient one (402 only when asked for).
DEFAULT_FAULTS: tuple[str, ...] = ("429", "500", "502", "503", "drop", "truncate")

#: Seconds a 429 asks the client to wait.
DEFAULT_RETRY_AFTER: float = 0.1

BAD_GATEWAY_HTML: bytes = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def parse_faults(kinds: str | Iterable[str]) -> tuple[str, ...]:
    """Check fault kinds, given as an iterable or a comma-separated string, and return them as a tuple.

    Example::

        parse_faults("429,drop")  # ('429', 'drop')
    """
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    result = tuple(str(k).strip() for k in items if str(k).strip())
    unknown = [k for k in result if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(map(repr, unknown))}; choose from {', '.join(FAULT_KINDS)}")
    if not result:
        raise ValueError(f"no fault kinds given; choose from {', '.join(FAULT_KINDS)}")
    return result


class FaultInjector:
    """Decides, reproducibly from ``seed``, which transcription requests fail and how.

    Example::

        FaultInjector(rate=1.0, seed=0, kinds=("503",)).roll()  # '503'
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        seed: int = 0,
        kinds: str | Iterable[str] = DEFAULT_FAULTS,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"fail_rate must be a number between 0 and 1, got {rate!r}")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or not 0 <= retry_after < 3600:
            raise ValueError(f"retry_after must be a number of seconds in [0, 3600), got {retry_after!r}")
        self.rate = float(rate)
        self.seed = seed
        self.kinds = parse_faults(kinds)
        self.retry_after = float(retry_after)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def roll(self) -> str | None:
        """The fault for the next request, or None for a normal answer."""
        if self.rate <= 0.0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self.kinds[self._rng.randrange(len(self.kinds))]

    def reset(self) -> None:
        """Restart the sequence from ``seed``."""
        with self._lock:
            self._rng = random.Random(self.seed)
