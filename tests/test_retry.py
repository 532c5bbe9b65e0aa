"""The retry policy (``stt_frames.retry``): what is retried and how long to wait. End-to-end retries are in
test_client.py, against a real server."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from stt_frames import retry


def test_parse_retry_after_seconds_ms_and_dates() -> None:
    now = 1_700_000_000.0
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": "1.5"})) == 1.5
    assert retry.parse_retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    both = httpx.Headers({"Retry-After": "9", "retry-after-ms": "120"})
    assert retry.parse_retry_after(both) == 0.12
    bad_ms = httpx.Headers({"Retry-After": "4", "retry-after-ms": "soon"})
    assert retry.parse_retry_after(bad_ms) == 4.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": date}), now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": past}), now=now) == 0.0
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": "86400"})) == retry.MAX_RETRY_AFTER
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": "-5"})) == 0.0
    assert retry.parse_retry_after(httpx.Headers({"Retry-After": "whenever"})) is None
    assert retry.parse_retry_after(httpx.Headers({})) is None


class _FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_is_exponential_capped_and_jittered() -> None:
    no_jitter = [retry.backoff(n, rng=_FixedRandom(0.0)) for n in range(12)]
    assert no_jitter[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(no_jitter) == retry.MAX_BACKOFF
    assert no_jitter == sorted(no_jitter)
    most_jitter = [retry.backoff(n, rng=_FixedRandom(0.999999)) for n in range(12)]
    for full, jittered in zip(no_jitter, most_jitter, strict=True):
        assert full * 0.75 <= jittered < full
    real = {retry.backoff(3) for _ in range(50)}
    assert len(real) > 1  # jitter: retries from many rows do not stampede together
    assert all(3.0 <= w <= 4.0 for w in real)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (400, None, False),
        (401, None, False),
        (402, None, False),
        (404, None, False),
        (408, None, True),
        (429, None, True),
        (500, None, True),
        (502, None, True),
        (503, None, True),
        (599, None, True),
        (503, {"x-should-retry": "false"}, False),
        (400, {"x-should-retry": "true"}, True),
        (400, {"x-should-retry": "maybe"}, False),
    ],
)
def test_should_retry_status(status: int, headers: dict[str, str] | None, expected: bool) -> None:
    assert retry.should_retry_status(status, httpx.Headers(headers) if headers else None) is expected
