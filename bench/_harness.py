"""Machinery shared by the benchmark modules: interleaved repeats, medians, verdicts, clips, load, a watchdog.

Every timed thing runs ``REPEATS`` times, interleaved with the others of its scenario (so that a busy moment
on this shared machine hits every contender alike); the median is the figure and the best run is reported
next to it. A contender whose run took longer than ``SLOW_RUN`` seconds is not run again: one run of that
length says enough, and the whole ``make bench`` stays within about ten minutes.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import statistics
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Runs of each timed thing (interleaved); ``--quick`` runs each once.
REPEATS = 3
#: A contender whose run took longer than this (seconds) is not repeated.
SLOW_RUN = 25.0
#: No single run may take longer than this (seconds); a run cut off reports what it completed.
RUN_BUDGET = 120.0
#: Verdict words.
PASS, MISS = "PASS", "MISS"


@dataclass
class Run:
    """One timed run of one contender."""

    seconds: float
    ok: int = 0
    errors: int = 0
    cpu_seconds: float = 0.0
    cut_off: bool = False
    first_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def log(module: str, message: str) -> None:
    """Progress on stderr (results go to the files)."""
    print(f"[{module}] {message}", file=sys.stderr, flush=True)


def loadavg() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def load_note(loads: Sequence[float]) -> str:
    return f"1-min load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs during the runs"


def repeats_for(quick: bool) -> int:
    return 1 if quick else REPEATS


def interleave(
    contenders: Sequence[tuple[str, Callable[[], Run]]], *, repeats: int, module: str
) -> tuple[dict[str, list[Run]], list[float]]:
    """Run every contender ``repeats`` times, round-robin; returns the runs per label and the load averages."""
    runs: dict[str, list[Run]] = {label: [] for label, _ in contenders}
    loads = [loadavg()]
    for _ in range(repeats):
        for label, fn in contenders:
            previous = runs[label]
            if previous and (previous[-1].seconds > SLOW_RUN or previous[-1].cut_off):
                continue
            run = fn()
            previous.append(run)
            cut = " (cut off)" if run.cut_off else ""
            log(module, f"{label}: {run.seconds:.2f} s{cut}, {run.ok} ok, {run.errors} errors")
        loads.append(loadavg())
    return runs, loads


def timing(runs: Sequence[Run], n: int) -> dict[str, Any]:
    """The common columns of a timed row: median and best seconds, rows per second, runs, errors."""
    seconds = statistics.median(r.seconds for r in runs)
    last = runs[-1]
    done = last.ok + last.errors if last.cut_off else n
    errors = sum(r.errors for r in runs)
    notes = []
    if any(r.cut_off for r in runs):
        notes.append(f"cut off at {RUN_BUDGET:.0f} s after {done}/{n} rows")
    if errors:
        first = next((r.first_error for r in runs if r.first_error), "?")
        notes.append(f"{errors} errors over {len(runs)} runs, first: {first}")
    return {
        "n": n,
        "seconds": seconds,
        "best_s": min(r.seconds for r in runs),
        "rps": done / seconds if seconds > 0 else None,
        "runs": len(runs),
        "runs_s": [round(r.seconds, 3) for r in runs],
        "errors": errors,
        "client_cpu_us_per_req": 1e6 * statistics.median(r.cpu_seconds for r in runs) / max(done, 1)
        if any(r.cpu_seconds for r in runs)
        else None,
        "_notes": notes,
    }


def verdict(met: bool) -> str:
    return PASS if met else MISS


def notes(*parts: str | None, extra: Sequence[str] = ()) -> str:
    return "; ".join(p for p in (*parts, *extra) if p)


def write_wav(path: Path, frames: bytes, rate: int = 16000) -> Path:
    """A mono 16-bit WAV file holding ``frames``."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def distinct_wavs(directory: Path, n: int, seconds: float, prefix: str = "clip") -> list[Path]:
    """``n`` 16 kHz mono 16-bit WAV files of ``seconds`` each, every one with different (random) samples."""
    size = 2 * int(seconds * 16000)
    return [write_wav(directory / f"{prefix}_{i:05d}.wav", os.urandom(size)) for i in range(n)]


@contextlib.contextmanager
def watchdog(seconds: float = RUN_BUDGET) -> Iterator[threading.Event]:
    """Interrupt the main thread (as Ctrl-C would) if the block runs longer than ``seconds``.

    Yields an event that is set when the watchdog fired. ``transcribe_column`` answers an interrupt by
    stopping cleanly and raising ``stt_frames.Interrupted`` with the rows it finished.
    """
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall time and its process CPU time (every thread of this process)."""
    cpu, started = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started, time.process_time() - cpu
