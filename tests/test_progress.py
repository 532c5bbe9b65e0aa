"""The progress of a run (stt_frames/_progress.py): counters, RunProgress snapshots for a callback, the bar's line.

A run's callback seeing the chunks of a long recording answered is tested end to end in test_long_audio.py.
"""

from __future__ import annotations

import logging

import pytest

from stt_frames._progress import Progress, RunProgress


def test_counts_add_up_in_the_snapshot() -> None:
    p = Progress(5, enabled=False)
    p.count(requests=2, uploaded=1000, chunks_expected=2)
    p.count(answered=1, spent=0.01, billed_seconds=30.0)
    p.count(answered=1, spent=0.02, billed_seconds=60.0, resent=1, requests=1, uploaded=500)
    p.update(seconds=90.0)
    p.update(2, cached=True, seconds=10.0)
    p.update(error=True, seconds=99.0)  # a failed row's seconds are not audio done
    snap = p.snapshot()
    assert isinstance(snap, RunProgress)
    assert (snap.rows, snap.done, snap.cached, snap.errors) == (5, 4, 2, 1)
    assert (snap.requests, snap.answered, snap.chunks_expected, snap.possibly_billed_twice) == (3, 2, 2, 1)
    assert snap.audio_seconds == pytest.approx(110.0) and snap.cost == pytest.approx(0.03)
    assert p.uploaded_bytes == 1500


def test_the_projection_adds_the_cost_of_the_rows_still_to_do() -> None:
    p = Progress(4, enabled=False)
    assert p.projected_cost() == 0.0  # nothing seen yet
    p.count(answered=1, spent=0.06, billed_seconds=60.0)  # $0.001 per audio second
    p.update(seconds=60.0)
    # 3 rows to go, 60 s each on average: 0.06 + 3 x 60 x 0.001
    assert p.projected_cost() == pytest.approx(0.24)
    p.update(3, cached=True, seconds=60.0)
    assert p.cost == pytest.approx(0.06)  # cache hits cost nothing


def test_a_listener_gets_a_snapshot_after_each_answer_and_at_the_end() -> None:
    seen: list[RunProgress] = []
    p = Progress(3, enabled=False, listener=seen.append)
    p.count(chunks_expected=4)
    assert seen[-1].chunks_expected == 4
    p.count(answered=1)
    assert seen[-1].answered == 1
    calls = len(seen)
    p.update(3)
    assert len(seen) == calls + 1 and seen[-1].done == 3  # the end is always reported


def test_a_listener_that_raises_is_dropped_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(snapshot: RunProgress) -> None:
        calls.append(snapshot)
        raise RuntimeError("boom")

    p = Progress(2, enabled=False, listener=broken)
    with caplog.at_level(logging.ERROR, logger="stt_frames"):
        p.count(answered=1)
        p.count(answered=1)
        p.update(2)
    assert len(calls) == 1 and p.listener is None
    assert p.snapshot().done == 2
    assert [r.getMessage() for r in caplog.records] == [
        "the progress callback raised; it is not called again in this run"
    ]


def test_the_summary_line_says_what_the_run_did() -> None:
    p = Progress(3, enabled=False)
    p.count(answered=1, spent=0.5, billed_seconds=10.0)
    p.update(seconds=10.0)
    p.update(cached=True, seconds=5.0)
    running = p.summary()
    assert "cached=1 errors=0 audio=15.0s cost=$0.5000" in running and "projected=$" in running
    assert "possibly_billed_twice" not in running  # said only when it happened
    p.count(resent=1)
    p.update(error=True)
    done = p.summary()
    assert "errors=1" in done and "projected" not in done  # finished: no projection
    assert done.endswith("possibly_billed_twice=1")
