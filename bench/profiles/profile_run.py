"""Profile one workload of transcribe_column, for the flame graphs and cProfile tables in this folder.

Runs against whichever ``stt_frames`` is first on ``sys.path`` (``PYTHONPATH=/some/worktree`` profiles
another commit). The workloads mirror bench/cached_rerun.py and bench/end_to_end.py scenario 2:

    # once: write the clips (and, for "cached", fill a cache with fake/echo)
    python bench/profiles/profile_run.py prepare --data /tmp/prof-data
    # the timed part only, under cProfile (atranscribe_column on this thread)
    python bench/profiles/profile_run.py cached --data /tmp/prof-data --cprofile out.prof
    python bench/profiles/profile_run.py zero --data /tmp/prof-data --cprofile out.prof
    # or under py-spy (every thread; the server is a child process and is not sampled)
    py-spy record -r 1000 -o cached.svg -- python bench/profiles/profile_run.py cached --data /tmp/prof-data

``cached``: a fully cached rerun of N distinct 0.1 s clips (every row a cache hit, no server).
``zero``: N distinct one-second clips sent to ``serve_local(process=True, latency=0)`` (fake/echo), 32 in
flight, a fresh cache directory (so hashing and cache writes are in), progress off.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import pandas as pd

import stt_frames

MODEL = "fake/echo"


def _wavs(folder: Path, n: int, seconds: float) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    size = 2 * int(seconds * 16000)
    paths = []
    for i in range(n):
        p = folder / f"clip_{i:06d}.wav"
        if not p.exists():
            with wave.open(str(p), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(os.urandom(size))
        paths.append(str(p))
    return paths


def _frame(data: Path, kind: str, n: int) -> pd.DataFrame:
    folder = data / ("short" if kind == "cached" else "long")
    paths = sorted(str(p) for p in folder.glob("clip_*.wav"))[:n]
    return pd.DataFrame({"path": paths})


def prepare(data: Path, n_cached: int, n_zero: int) -> None:
    short = _wavs(data / "short", n_cached, 0.1)
    _wavs(data / "long", n_zero, 1.0)
    cache = data / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    with stt_frames.serve_local(process=True, log_level="error") as url:
        client = stt_frames.Client(base_url=url, api_key=None)
        df = pd.DataFrame({"path": short})
        out = stt_frames.transcribe_column(
            df, column="path", model=MODEL, concurrency=128, cache=str(cache), progress=False, client=client
        )
        client.close()
    print(f"cache filled: {len(out)} rows, {int(out['error'].notna().sum())} errors", file=sys.stderr)


async def _go(kind: str, df: pd.DataFrame, data: Path, url: str) -> pd.DataFrame:
    client = stt_frames.AsyncClient(base_url=url, api_key=None)
    try:
        if kind == "cached":
            return await stt_frames.atranscribe_column(
                df, column="path", model=MODEL, cache=str(data / "cache"), progress=False, client=client
            )
        with tempfile.TemporaryDirectory(prefix="stt-prof-") as cache_dir:
            return await stt_frames.atranscribe_column(
                df, column="path", model=MODEL, concurrency=32, cache=cache_dir, progress=False, client=client
            )
    finally:
        await client.aclose()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["prepare", "cached", "zero"])
    ap.add_argument("--data", type=Path, default=Path("/tmp/prof-data"))
    ap.add_argument("--n", type=int, default=0, help="rows (default 10,000 cached, 2,000 zero)")
    ap.add_argument("--cprofile", type=Path, help="write a cProfile dump here (and a text table beside it)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.kind == "prepare":
        prepare(args.data, args.n or 10_000, 2_000)
        return 0
    n = args.n or (10_000 if args.kind == "cached" else 2_000)
    df = _frame(args.data, args.kind, n)
    print(f"stt_frames from {stt_frames.__file__}; {len(df)} rows", file=sys.stderr)
    import contextlib

    server = (
        stt_frames.serve_local(process=True, latency=0, log_level="error")
        if args.kind == "zero"
        else contextlib.nullcontext("http://127.0.0.1:9/api/v1")
    )
    with server as url:
        asyncio.run(_go(args.kind, df.head(2), args.data, url))  # warm-up: imports, first connection
        for _ in range(args.repeat):
            prof = cProfile.Profile() if args.cprofile else None
            cpu, started = time.process_time(), time.perf_counter()
            if prof is not None:
                prof.enable()
            out = asyncio.run(_go(args.kind, df, args.data, url))
            if prof is not None:
                prof.disable()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            errors = int(out["error"].notna().sum())
            cached = int(out["cached"].fillna(False).sum())
            print(
                f"{args.kind}: {len(df)} rows in {wall:.3f} s ({len(df) / wall:,.0f} rows/s), "
                f"CPU {1e6 * cpu / len(df):.0f} us/row, {errors} errors, {cached} cached, "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    if args.cprofile is not None and prof is not None:
        prof.dump_stats(args.cprofile)
        with open(args.cprofile.with_suffix(".txt"), "w") as f:
            stats = pstats.Stats(str(args.cprofile), stream=f)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
