"""Timeouts that follow the audio (stt_frames/timeouts.py): the default formula, and what ``timeout=`` accepts.

That a run passes them to each request, and that a slow server then gets a request at most twice, is tested
end to end in test_long_audio.py.
"""

from __future__ import annotations

import httpx
import pytest

from stt_frames.timeouts import (
    CONNECT_SECONDS,
    READ_BASE_SECONDS,
    UNKNOWN_DURATION_READ_SECONDS,
    WRITE_BASE_SECONDS,
    as_timeout,
    timeout_for,
)


def test_timeout_follows_the_audio() -> None:
    t = timeout_for(audio_seconds=600, body_bytes=20_000_000)
    assert (t.connect, t.read, t.write, t.pool) == (10.0, 720.0, 260.0, 720.0)
    assert timeout_for(audio_seconds=None, body_bytes=0).read == UNKNOWN_DURATION_READ_SECONDS == 600.0


def test_a_longer_recording_or_a_bigger_body_gets_more_time() -> None:
    short = timeout_for(audio_seconds=10, body_bytes=100_000)
    long = timeout_for(audio_seconds=3600, body_bytes=100_000)
    big = timeout_for(audio_seconds=10, body_bytes=50_000_000)
    assert short.read == READ_BASE_SECONDS + 10 and long.read == READ_BASE_SECONDS + 3600
    assert big.write == WRITE_BASE_SECONDS + 500 > short.write == WRITE_BASE_SECONDS + 1
    assert short.connect == long.connect == big.connect == CONNECT_SECONDS  # a dead host is found out fast
    assert timeout_for(audio_seconds=-5, body_bytes=0).read == READ_BASE_SECONDS  # a bad header is not < base


@pytest.mark.parametrize("seconds", [0.3, 5, 60.0, 3600])
def test_a_number_covers_read_write_and_pool_and_caps_connect(seconds: float) -> None:
    t = as_timeout(seconds)
    assert (t.read, t.write, t.pool) == (float(seconds),) * 3
    assert t.connect == min(CONNECT_SECONDS, float(seconds))


def test_an_httpx_timeout_is_used_as_given() -> None:
    given = httpx.Timeout(5.0, connect=1.0)
    assert as_timeout(given) is given


@pytest.mark.parametrize("bad", [0, -1, "10", True, None, float("nan")])
def test_anything_else_is_refused_with_what_was_given(bad: object) -> None:
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds > 0 or an httpx.Timeout, got "):
        as_timeout(bad)  # type: ignore[arg-type]
