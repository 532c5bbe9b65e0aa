"""How long a request may take: timeouts that follow the length of the audio.

A provider needs time in proportion to the audio it transcribes, so the default read timeout does too::

    read    = READ_BASE_SECONDS + READ_SECONDS_PER_AUDIO_SECOND * audio seconds   (120 s + 1x the audio;
              600 s when the duration is unknown)
    write   = WRITE_BASE_SECONDS + body bytes / WRITE_BYTES_PER_SECOND            (60 s + 100 kB/s)
    connect = CONNECT_SECONDS                                                     (10 s)

A 10-minute chunk may thus take 12 minutes: even a provider that runs at real time (or a local engine with
a queue) answers before it, and a request is not sent again, and billed again, because the client gave up
too early. ``timeout=`` (seconds, or an ``httpx.Timeout``) replaces all of this.

Example::

    from stt_frames.timeouts import timeout_for
    timeout_for(audio_seconds=600, body_bytes=15_000_000).read  # 720.0
"""

from __future__ import annotations

from typing import Final

import httpx

__all__ = [
    "CONNECT_SECONDS",
    "READ_BASE_SECONDS",
    "READ_SECONDS_PER_AUDIO_SECOND",
    "UNKNOWN_DURATION_READ_SECONDS",
    "WRITE_BASE_SECONDS",
    "WRITE_BYTES_PER_SECOND",
    "TimeoutArg",
    "as_timeout",
    "timeout_for",
]

CONNECT_SECONDS: Final = 10.0
READ_BASE_SECONDS: Final = 120.0
READ_SECONDS_PER_AUDIO_SECOND: Final = 1.0
UNKNOWN_DURATION_READ_SECONDS: Final = 600.0
WRITE_BASE_SECONDS: Final = 60.0
WRITE_BYTES_PER_SECOND: Final = 100_000.0

#: What ``timeout=`` accepts: seconds for everything (connect at most 10 s), or an ``httpx.Timeout``.
TimeoutArg = float | int | httpx.Timeout


def timeout_for(*, audio_seconds: float | None, body_bytes: int) -> httpx.Timeout:
    """The default timeout of one request carrying ``audio_seconds`` of audio in ``body_bytes`` (see above)."""
    if audio_seconds is None:
        read = UNKNOWN_DURATION_READ_SECONDS
    else:
        read = READ_BASE_SECONDS + READ_SECONDS_PER_AUDIO_SECOND * max(0.0, audio_seconds)
    write = WRITE_BASE_SECONDS + body_bytes / WRITE_BYTES_PER_SECOND
    return httpx.Timeout(connect=CONNECT_SECONDS, read=read, write=write, pool=read)


def as_timeout(value: TimeoutArg) -> httpx.Timeout:
    """``timeout=`` as an ``httpx.Timeout``: a number covers read, write and pool, connect at most 10 s.

    Raises ValueError for anything else.
    """
    if isinstance(value, httpx.Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"timeout must be a number of seconds > 0 or an httpx.Timeout, got {value!r}")
    return httpx.Timeout(float(value), connect=min(CONNECT_SECONDS, float(value)))
