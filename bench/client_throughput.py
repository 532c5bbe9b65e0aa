"""AsyncClient throughput with many requests in flight, next to plain httpx and raw aiohttp in the same run.

The issue: with 128 requests in flight against a local server, ``stt_frames.AsyncClient`` must keep at
least 90% of ideal throughput. The server (``bench.latency_server``, a separate process) answers each
request after a fixed delay; the ideal time is ``N * latency / C``. With no delay there is no ideal, so
raw aiohttp (the practical ceiling on this machine) is the reference instead.

Clients, each sending the same one-second 16 kHz WAV clips (32 kB, base64 in a JSON body) with at most
``C`` in flight (an ``asyncio.Semaphore(C)``):

- ``stt_frames.AsyncClient``: the package's client with its default (aiohttp) transport. It is given
  file paths, so reading, checking and encoding each file is inside the timed region (as in real use);
  ``max_retries=0`` so that a failure shows up as an error instead of being retried away.
- ``httpx.AsyncClient`` with the aiohttp transport (``httpx-aiohttp``) and prebuilt bodies: what the
  transport costs by itself, without the client's own per-request work.
- ``httpx.AsyncClient``: plain httpx, ``limits=httpx.Limits(max_connections=C)`` (httpx keeps at most 20
  idle connections alive by default), prebuilt bodies; and the same with ``max_keepalive_connections=C``.
- the client's own per-request work (read, check, encode the file; parse the answer) over raw aiohttp, without
  httpx: what taking httpx out of the hot path would give.
- ``aiohttp.ClientSession``: raw aiohttp, ``TCPConnector(limit=C)``, prebuilt bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

import stt_frames
from bench import _harness
from stt_frames._http import build_body
from stt_frames.audio import prepare_audio, read_audio
from stt_frames.types import Transcription

#: (name, latency in seconds, requests in flight, requests in the full run)
SCENARIOS: tuple[tuple[str, float, int, int], ...] = (
    ("AsyncClient alone: latency 0.2 s, 128 in flight", 0.2, 128, 2000),
    ("AsyncClient alone: latency 0, 32 in flight", 0.0, 32, 2000),
)
QUICK_N = 200
#: Runs per client and scenario (the median is reported); a client slower than SLOW_RUN is run once.
REPEATS = _harness.REPEATS
SLOW_RUN = _harness.SLOW_RUN
#: stt_frames.AsyncClient's median time must be within this percentage of the ideal (with latency).
TARGET_PCT_OF_IDEAL = 90.0
#: What the columns of the results table mean (shown under the table's heading in results.md).
COLUMNS = {
    "seconds": f"median wall time of the runs (each client runs {REPEATS} times, interleaved; a run over "
    f"{SLOW_RUN:.0f} s is not repeated)",
    "rps": "requests per second at the median time",
    "pct_of_ideal": "ideal time / measured time (the 90% target applies here)",
    "pct_of_raw_aiohttp": "raw aiohttp's median time / measured time",
    "best_s": "the fastest run (the machine is shared: the best run is the least disturbed one)",
    "client_cpu_us_per_req": "CPU time of the client process per request, median over runs, in microseconds",
    "target / verdict": "the 90%-of-ideal target of stt_frames.AsyncClient and whether its median met it",
}
LEADING = ("client", "seconds", "best_s", "rps", "pct_of_ideal", "target", "verdict", "pct_of_raw_aiohttp")
#: No single run may take longer than this; a run cut off is reported with what it completed.
RUN_BUDGET = 120.0


# --------------------------------------------------------------------------- the server


@contextlib.contextmanager
def start_latency_server(latency: float) -> Iterator[str]:
    """Start ``bench.latency_server`` in a separate process; yield its base URL; stop it afterwards.

    This is the one place that knows how the server is started: swap it for the project's own
    ``stt-frames serve --latency`` by changing this function.
    """
    cmd = [sys.executable, "-m", "bench.latency_server", "--latency", str(latency), "--max-seconds", "1200"]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"the latency server did not start (said {line!r}, exit code {proc.poll()})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/api/v1"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server exits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def start_project_server(latency: float) -> Iterator[str]:
    """Start the project's own ``stt-frames serve --latency`` (model ``fake/echo``); yield its base URL."""
    exe = Path(sys.executable).with_name("stt-frames")
    cmd = [str(exe), "serve", "--port", "0", "--latency", str(latency), "--log-level", "critical"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if "serving http" not in line:
            raise RuntimeError(f"stt-frames serve did not start (said {line!r}, exit code {proc.poll()})")
        yield line.split("serving ", 1)[1].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


#: The servers to measure against: name -> (start(latency) yielding the base URL, the model id to send).
#: Choose with the environment variable STT_BENCH_SERVER (default: the minimal aiohttp server, which costs
#: the least CPU; on a 2-CPU machine a heavier server competes with the client for the second CPU).
SERVERS: dict[str, tuple[Callable[[float], contextlib.AbstractContextManager[str]], str]] = {
    "aiohttp": (start_latency_server, "bench/latency"),
    "stt-frames": (start_project_server, "fake/echo"),
}
SERVER_NAME = os.environ.get("STT_BENCH_SERVER", "aiohttp")
SERVER_DESCRIPTIONS = {
    "aiohttp": "bench.latency_server (minimal aiohttp, own process)",
    "stt-frames": "stt-frames serve (fake/echo, own process)",
}


def _model() -> str:
    return SERVERS[SERVER_NAME][1]


# --------------------------------------------------------------------------- the clips


def make_clips(directory: Path, n: int) -> list[Path]:
    """``n`` distinct one-second 16 kHz mono 16-bit WAV files (32,044 bytes each)."""
    paths = []
    for i in range(n):
        p = directory / f"clip_{i:05d}.wav"
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(os.urandom(32000))
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- the clients


@dataclass
class Outcome:
    seconds: float
    ok: int
    errors: int
    cpu_seconds: float = 0.0
    cut_off: bool = False
    first_error: str = ""


async def _drive(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> Outcome:
    """Run ``one(i)`` for i in range(n) with at most ``concurrency`` at a time; time it; stop at RUN_BUDGET."""
    sem = asyncio.Semaphore(concurrency)
    ok = errors = 0
    first_error = ""

    async def guarded(i: int) -> None:
        nonlocal ok, errors, first_error
        async with sem:
            try:
                await one(i)
                ok += 1
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"[:200]

    started, cpu_started = time.perf_counter(), time.process_time()
    tasks = [asyncio.ensure_future(guarded(i)) for i in range(n)]
    _, pending = await asyncio.wait(tasks, timeout=RUN_BUDGET)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return Outcome(seconds, ok, errors, cpu, cut_off=bool(pending), first_error=first_error)


def _check(payload: Any) -> None:
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise ValueError(f"unexpected answer {payload!r:.80}")


async def run_stt_frames(url: str, paths: list[Path], bodies: list[bytes], c: int) -> Outcome:
    async with stt_frames.AsyncClient(base_url=url, api_key=None, max_retries=0) as client:
        await client.transcribe(paths[0], model=_model())  # warm-up: lazy imports, session creation

        async def one(i: int) -> None:
            t = await client.transcribe(paths[i], model=_model())
            _check({"text": t.text})

        return await _drive(len(paths), c, one)


def _httpx_runner(
    keepalive: bool, aiohttp_transport: bool = False
) -> Callable[[str, list[Path], list[bytes], int], Awaitable[Outcome]]:
    async def run(url: str, paths: list[Path], bodies: list[bytes], c: int) -> Outcome:
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c if keepalive else 20)
        transport = None
        if aiohttp_transport:
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        endpoint = f"{url}/audio/transcriptions"
        async with httpx.AsyncClient(limits=limits, timeout=60.0, headers=headers, transport=transport) as client:
            (await client.post(endpoint, content=bodies[0])).raise_for_status()

            async def one(i: int) -> None:
                r = await client.post(endpoint, content=bodies[i])
                r.raise_for_status()
                _check(r.json())

            return await _drive(len(bodies), c, one)

    return run


async def run_aiohttp(url: str, paths: list[Path], bodies: list[bytes], c: int) -> Outcome:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    endpoint = f"{url}/audio/transcriptions"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c), timeout=timeout) as session:
        async with session.post(endpoint, data=bodies[0], headers=headers) as r:
            await r.read()

        async def one(i: int) -> None:
            async with session.post(endpoint, data=bodies[i], headers=headers) as r:
                r.raise_for_status()
                _check(json.loads(await r.read()))

        return await _drive(len(bodies), c, one)


async def run_stt_frames_over_aiohttp(url: str, paths: list[Path], bodies: list[bytes], c: int) -> Outcome:
    """The client's own per-request work (read, check, encode, parse) over raw aiohttp: no httpx at all."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    endpoint = f"{url}/audio/transcriptions"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c), timeout=timeout) as session:

        async def one(i: int) -> None:
            body = build_body(prepare_audio(paths[i]), model=_model())
            async with session.post(endpoint, data=body, headers=headers) as r:
                r.raise_for_status()
                Transcription.from_json(json.loads(await r.read()))

        await one(0)
        return await _drive(len(paths), c, one)


CLIENTS: tuple[tuple[str, Callable[[str, list[Path], list[bytes], int], Awaitable[Outcome]], str], ...] = (
    ("stt_frames.AsyncClient (aiohttp transport)", run_stt_frames, "paths in: reads, checks, encodes per request"),
    (
        "httpx.AsyncClient + aiohttp transport",
        _httpx_runner(True, aiohttp_transport=True),
        "the transport stt_frames uses, alone: prebuilt bodies",
    ),
    ("httpx.AsyncClient (max_connections=C)", _httpx_runner(False), "httpx's own pool; keeps 20 idle connections"),
    ("httpx.AsyncClient (max_connections=C, keepalive=C)", _httpx_runner(True), "httpx's own pool"),
    (
        "stt_frames request code over raw aiohttp",
        run_stt_frames_over_aiohttp,
        "paths in, like the first row, but no httpx: what dropping httpx from the hot path would give",
    ),
    ("aiohttp.ClientSession (raw)", run_aiohttp, "the practical ceiling"),
)
OURS = CLIENTS[0][0]
HTTPX_POOL = CLIENTS[2][0]
RAW = CLIENTS[-1][0]


# --------------------------------------------------------------------------- the benchmark


def _log(msg: str) -> None:
    print(f"[client_throughput] {msg}", file=sys.stderr, flush=True)


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _scenario(
    name: str, latency: float, c: int, paths: list[Path], bodies: list[bytes], repeats: int
) -> list[dict[str, Any]]:
    n = len(paths)
    ideal = n * latency / c if latency > 0 else None
    runs: dict[str, list[Outcome]] = {label: [] for label, _, _ in CLIENTS}
    loads = [_load()]
    start, _ = SERVERS[SERVER_NAME]
    with start(latency) as url:
        for repeat in range(repeats):  # interleaved, so that a busy moment on the machine hits every client
            for label, runner, _ in CLIENTS:
                previous = runs[label]
                if repeat and (previous[-1].seconds > SLOW_RUN or previous[-1].cut_off):
                    continue  # slow enough that one run says it; keep the whole bench within minutes
                out = asyncio.run(runner(url, paths, bodies, c))
                previous.append(out)
                _log(f"{name} | {label}: {out.seconds:.2f} s, {out.ok} ok, {out.errors} errors")
            loads.append(_load())
    medians = {label: statistics.median(o.seconds for o in outs) for label, outs in runs.items()}
    load_note = f"1-min load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs during the runs"
    rows: list[dict[str, Any]] = []
    for label, _, note in CLIENTS:
        outs = runs[label]
        seconds = medians[label]
        best = min(o.seconds for o in outs)
        done = outs[-1].ok + outs[-1].errors
        rps = (done if outs[-1].cut_off else n) / seconds
        notes = [note]
        if any(o.cut_off for o in outs):
            notes.append(f"cut off at {RUN_BUDGET:.0f} s after {done}/{n} requests")
        errors = sum(o.errors for o in outs)
        if errors:
            notes.append(f"{errors} errors, first: {next(o.first_error for o in outs if o.first_error)}")
        extra: dict[str, Any] = {}
        if label == OURS and ideal is not None:
            pct = 100 * ideal / seconds
            extra = {
                "target": f">= {TARGET_PCT_OF_IDEAL:.0f}% of ideal",
                "verdict": _harness.verdict(pct >= TARGET_PCT_OF_IDEAL),
                "figure": f"{seconds:.2f} s = {pct:.1f}% of ideal (best run {100 * ideal / best:.1f}%)",
            }
        elif label in (RAW, HTTPX_POOL):
            short = "raw aiohttp" if label == RAW else "httpx.AsyncClient"
            rel = f"{100 * ideal / seconds:.0f}% of ideal" if ideal else f"{100 * medians[RAW] / seconds:.0f}% of raw"
            extra = {"figure": f"{short}: {seconds:.2f} s ({rel})"}
        if label == OURS:
            notes.append(load_note)
        rows.append(
            {
                "scenario": name,
                "client": label,
                "role": "stt_frames" if label == OURS else "baseline",
                "server": SERVER_DESCRIPTIONS[SERVER_NAME],
                **extra,
                "n": n,
                "concurrency": c,
                "latency_s": latency,
                "seconds": seconds,
                "rps": rps,
                "pct_of_ideal": 100 * ideal / seconds if ideal else None,
                "pct_of_raw_aiohttp": 100 * medians[RAW] / seconds,
                "best_s": best,
                "client_cpu_us_per_req": 1e6 * statistics.median(o.cpu_seconds for o in outs) / max(done, 1),
                "runs": len(outs),
                "runs_s": [round(o.seconds, 3) for o in outs],
                "ok": outs[-1].ok,
                "errors": errors,
                "loadavg": [round(x, 2) for x in loads],
                "notes": "; ".join(notes),
            }
        )
    if ideal is not None:
        rows.append(
            {
                "scenario": name,
                "client": "ideal (N x latency / C)",
                "n": n,
                "concurrency": c,
                "latency_s": latency,
                "seconds": ideal,
                "rps": n / ideal,
                "pct_of_ideal": 100.0,
                "pct_of_raw_aiohttp": 100 * medians[RAW] / ideal,
                "role": "ideal",
                "figure": f"ideal {ideal:.2f} s",
                "notes": "no client overhead at all",
            }
        )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """Every scenario with every client; one row per (scenario, client), plus the ideal."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stt-bench-") as tmp:
        n_max = QUICK_N if quick else max(s[3] for s in SCENARIOS)
        paths = make_clips(Path(tmp), n_max)
        bodies = [build_body(read_audio(p), model=_model()) for p in paths]
        _log(f"{n_max} clips of {paths[0].stat().st_size} bytes; request bodies of {len(bodies[0])} bytes")
        for name, latency, c, n in SCENARIOS:
            n = QUICK_N if quick else n
            rows += _scenario(name, latency, c, paths[:n], bodies[:n], _harness.repeats_for(quick))
    return rows
