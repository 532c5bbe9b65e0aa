"""Flow control (stt_frames/_limits.py): the adaptive limit on requests in flight, and the spending cap."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from stt_frames._limits import AdaptiveLimiter, Budget

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh loop, bounded in time (a limiter that never lets go fails, not hangs)."""

    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout=10)

    return asyncio.run(bounded())


async def acquired_within(limiter: AdaptiveLimiter, seconds: float) -> bool:
    """Whether one more slot can be had within ``seconds`` (it is kept if so)."""
    try:
        await asyncio.wait_for(limiter.acquire(), timeout=seconds)
    except TimeoutError:
        return False
    return True


# --- AdaptiveLimiter ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [0, -1])
def test_a_limiter_needs_at_least_one_slot(concurrency: int) -> None:
    with pytest.raises(ValueError, match=f"concurrency must be >= 1, got {concurrency}"):
        AdaptiveLimiter(concurrency)


def test_at_most_concurrency_slots_and_a_release_lets_the_next_one_in() -> None:
    async def go() -> None:
        limiter = AdaptiveLimiter(3)
        for _ in range(3):
            assert await acquired_within(limiter, 0.1)
        assert limiter.in_flight == 3
        assert not await acquired_within(limiter, 0.05)  # the fourth waits
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await limiter.release(ok=True)
        await asyncio.wait_for(waiter, 1)  # woken by the release
        assert limiter.in_flight == 3

    run(go)


def test_requests_in_flight_never_exceed_the_limit_under_load() -> None:
    async def go() -> int:
        limiter = AdaptiveLimiter(4)
        peak = 0

        async def one(i: int) -> None:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.001 * (i % 3))
            await limiter.release(ok=True)

        await asyncio.gather(*(one(i) for i in range(200)))
        assert limiter.in_flight == 0
        return peak

    assert run(go) == 4


def test_a_429_halves_the_limit_down_to_one() -> None:
    limiter = AdaptiveLimiter(16)
    seen = []
    for _ in range(6):
        limiter.throttle(0)
        seen.append(limiter.limit)
    assert seen == [8, 4, 2, 1, 1, 1]


def test_after_a_429_only_the_halved_limit_is_in_flight() -> None:
    async def go() -> None:
        limiter = AdaptiveLimiter(8)
        limiter.throttle(0)  # 8 -> 4
        for _ in range(4):
            assert await acquired_within(limiter, 0.1)
        assert not await acquired_within(limiter, 0.05)

    run(go)


def test_a_429_pauses_new_requests_for_the_wait_it_asked() -> None:
    async def go() -> float:
        limiter = AdaptiveLimiter(4)
        limiter.throttle(0.3)
        start = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - start

    waited = run(go)
    assert 0.28 <= waited < 2.0


def test_a_later_shorter_wait_does_not_shorten_the_pause() -> None:
    async def go() -> float:
        limiter = AdaptiveLimiter(4)
        limiter.throttle(0.3)
        limiter.throttle(0.0)
        start = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - start

    assert run(go) >= 0.28


def test_successes_grow_the_limit_back_slowly_and_never_past_concurrency() -> None:
    async def go() -> list[float]:
        limiter = AdaptiveLimiter(8)
        for _ in range(3):
            limiter.throttle(0)  # 8 -> 1
        limits = [limiter.limit]
        for _ in range(60):
            await limiter.acquire()
            await limiter.release(ok=True)
            limits.append(limiter.limit)
        return limits

    limits = run(go)
    assert limits[0] == 1 and limits[1] == 2  # one success at 1: +1/1
    assert limits[2] == pytest.approx(2.5)  # at 2: +1/2 (additive increase: about +1 per `limit` successes)
    assert all(b >= a for a, b in itertools.pairwise(limits))
    assert 8 > limits[20] > 4  # growing, not jumping back
    assert limits[-1] == 8 and max(limits) == 8


def test_a_failure_frees_its_slot_but_does_not_grow_the_limit() -> None:
    async def go() -> None:
        limiter = AdaptiveLimiter(4)
        limiter.throttle(0)
        limiter.throttle(0)  # 4 -> 1
        for _ in range(5):
            await limiter.acquire()
            await limiter.release(ok=False)
        assert (limiter.limit, limiter.in_flight) == (1, 0)

    run(go)


def test_a_release_that_raises_the_limit_wakes_enough_waiters() -> None:
    """Growing from 1 to 2 lets a second waiter in at once (notify wakes as many as there are free slots)."""

    async def go() -> None:
        limiter = AdaptiveLimiter(4)
        limiter.throttle(0)
        limiter.throttle(0)  # limit 1
        await limiter.acquire()
        waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert not any(w.done() for w in waiters)
        await limiter.release(ok=True)  # limit 2, nothing in flight: two may go
        await asyncio.sleep(0.01)
        assert sum(w.done() for w in waiters) == 2 and limiter.in_flight == 2
        for w in waiters:
            w.cancel()

    run(go)


# --- Budget ------------------------------------------------------------------------------------------------


def test_no_cap_never_refuses_and_never_exhausts() -> None:
    budget = Budget(max_cost=None)
    tickets = [budget.reserve(10**9) for _ in range(100)]
    assert tickets == [0] * 100 and not budget.exhausted and budget.reserved == {}
    budget.settle(0, cost=5.0, size=10)
    assert budget.spent == 5.0 and budget.reserve(10**9) == 0


def test_before_a_first_cost_the_estimate_is_zero_and_a_request_may_go() -> None:
    budget = Budget(max_cost=1.0)
    assert not budget.calibrated and budget.estimate(1_000_000) == 0.0
    ticket = budget.reserve(1_000_000)
    assert ticket and budget.reserved == {ticket: 0.0}


def test_settle_replaces_the_reservation_by_the_real_cost_and_learns_the_rate() -> None:
    budget = Budget(max_cost=1.0)
    ticket = budget.reserve(1000)
    budget.settle(ticket, cost=0.01, size=1000)
    assert budget.calibrated and budget.spent == pytest.approx(0.01) and budget.reserved == {}
    assert budget.estimate(5000) == pytest.approx(0.05)  # cost per byte x size
    second = budget.reserve(5000)
    assert second and budget.reserved == {second: pytest.approx(0.05)}


def test_the_estimate_uses_the_highest_rate_seen() -> None:
    budget = Budget(max_cost=10.0)
    budget.settle(budget.reserve(1000), cost=0.02, size=1000)  # 2e-5 per byte
    budget.settle(budget.reserve(1000), cost=0.01, size=1000)  # cheaper: the rate stays
    assert budget.estimate(1000) == pytest.approx(0.02)
    assert budget.spent == pytest.approx(0.03)


def test_a_request_that_would_break_the_cap_is_refused_and_the_budget_is_exhausted() -> None:
    budget = Budget(max_cost=0.10)
    budget.settle(budget.reserve(1000), cost=0.03, size=1000)  # spent 0.03, 3e-5 per byte
    first = budget.reserve(1000)  # 0.03 + 0.03 reserved
    second = budget.reserve(1000)  # 0.03 + 0.06 = 0.09 <= 0.10
    assert first and second and first != second
    assert budget.reserve(1000) is None  # 0.12 > 0.10
    assert budget.exhausted
    assert budget.reserve(1) is None  # once exhausted, nothing more is sent, however small
    budget.settle(first, cost=0.03, size=1000)
    budget.settle(second, cost=None, size=1000)  # failed: nothing spent, the reservation is freed
    assert budget.spent == pytest.approx(0.06) and budget.reserved == {}
    assert budget.spent <= budget.max_cost  # type: ignore[operator]


def test_in_flight_reservations_count_against_the_cap() -> None:
    budget = Budget(max_cost=0.05)
    budget.settle(budget.reserve(100), cost=0.01, size=100)
    tickets = [budget.reserve(100) for _ in range(5)]
    assert sum(t is not None for t in tickets) == 4  # 0.01 spent + 4 x 0.01 reserved = the cap
    assert tickets[-1] is None and budget.exhausted


def test_a_cap_already_reached_refuses_even_a_free_request() -> None:
    budget = Budget(max_cost=0.0)
    assert budget.reserve(1000) is None and budget.exhausted  # max_cost=0: nothing is ever sent
    spent = Budget(max_cost=0.01)
    spent.settle(spent.reserve(0), cost=0.01, size=0)  # a cost on 0 bytes: no rate learned
    assert not spent.calibrated and spent.estimate(1000) == 0.0
    assert spent.reserve(1000) is None  # spent >= max_cost


def test_settling_an_unknown_or_empty_ticket_is_harmless() -> None:
    budget = Budget(max_cost=1.0)
    ticket = budget.reserve(10)
    budget.settle(None, cost=None, size=10)
    budget.settle(0, cost=None, size=10)
    budget.settle(12345, cost=None, size=10)
    assert budget.reserved == {ticket: 0.0} and budget.spent == 0.0


def test_a_given_estimate_is_reserved_instead_of_the_byte_rate() -> None:
    budget = Budget(max_cost=1.0)
    assert budget.reserve(10**9, estimate=0.6) is not None  # the duration x price, not the (unknown) byte rate
    assert budget.reserve(10, estimate=0.5) is None and budget.exhausted  # 0.6 + 0.5 > 1.0


def test_a_known_price_holds_the_cap_to_within_one_row(local_server: Callable[..., str]) -> None:
    """max_cost with the price listed by the server: spent stays under the cap and within one row of it."""
    from pathlib import Path

    import pandas as pd

    import stt_frames
    from stt_frames.server import get_stats

    root = Path(__file__).resolve().parent.parent / "data"
    df = pd.read_csv(root / "samples.csv")
    df["path"] = [str(root / p) for p in df["path"]]
    url = local_server(prices={"fake/echo": 0.05})
    with stt_frames.Client(base_url=url) as client:
        out = stt_frames.transcribe_column(
            df, model="fake/echo", client=client, cache=False, progress=False, max_cost=0.05, concurrency=8
        )
        spent = get_stats(url)["cost"]
    assert out["error_type"].isin(["BudgetExceededError"]).sum() > 0  # the cap did stop rows
    assert 0.05 - out["cost"].max() <= spent <= 0.05, spent
