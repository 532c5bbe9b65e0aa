"""`transcribe_column` end to end against the project's own server, next to what a user would write instead.

Scenarios 1 and 2 of issues 4 and 7. The server is `stt_frames.serve_local(process=True, latency=L)`
(uvicorn with httptools in a child process, model `fake/echo`), one per scenario, shared by every
contender of that scenario. The clips are distinct one-second 16 kHz WAV files (32 kB; 43 kB of JSON
once base64-encoded), so no request is deduplicated or cached.

- `stt_frames.transcribe_column`: a DataFrame of paths in, the result DataFrame out; a fresh cache
  directory for every run (so file reading, hashing and cache writes are inside the timed region),
  progress bar off, default retries. Thread start-up, client creation and the result frame are timed too.
- (a) a sequential `httpx.Client` loop: read, base64, POST, parse, one clip after another. At 0.2 s a
  request it would take minutes for the whole column, so it runs on the first clips only; the table gives
  the measured time of that subset and, separately, the extrapolation to the whole column.
- (b) the official OpenRouter SDK (`openrouter` on PyPI, default settings) called from a thread pool as
  large as the concurrency; each task reads and encodes its clip.
- (c) plain `httpx.AsyncClient(limits=httpx.Limits(max_connections=C))` (httpx's own pool, which keeps
  20 idle connections), prebuilt request bodies, an `asyncio.Semaphore(C)`.
- (d) raw `aiohttp.ClientSession(connector=TCPConnector(limit=C))`, prebuilt request bodies: the practical
  ceiling of this machine and this server.
- (e) the ideal, N × latency / C: no client or server overhead at all.

The baselines (b), (c) and (d) each send one untimed warm-up request first.

Two diagnostic rows per scenario repeat `transcribe_column` and raw aiohttp against
`bench.latency_server` (a minimal aiohttp server, also in its own process, that costs almost nothing
per request): the difference from the rows above is what the project's server costs. The verdict is
always taken on the project's server, as the issue asks.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

import stt_frames
from bench import _harness as h
from bench.client_throughput import Outcome, _httpx_runner, run_aiohttp, start_latency_server
from stt_frames.server import get_stats, reset_stats

MODEL = "fake/echo"
SERVER = "stt-frames serve (fake/echo, own process)"
MINIMAL_SERVER = "bench.latency_server (minimal aiohttp, own process)"
OURS, RAW = "stt_frames.transcribe_column", "(d) aiohttp.ClientSession (raw)"
#: (number, latency s, concurrency, clips, clips for the sequential loop (0: none))
SCENARIOS: tuple[tuple[int, float, int, int, int], ...] = (
    (1, 0.2, 128, 2000, 100),
    (2, 0.0, 32, 2000, 0),
)
QUICK_N, QUICK_SEQUENTIAL = 200, 10
#: Scenario 1: stt_frames' median time must be within this fraction of the ideal.
TARGET_PCT_OF_IDEAL = 90.0
#: Scenario 2: stt_frames' rows/s must be at least this percentage of raw aiohttp's.
TARGET_PCT_OF_RAW = 60.0

COLUMNS = {
    "seconds": "median wall time of the runs (each contender runs 3 times, interleaved with the others; a run "
    f"over {h.SLOW_RUN:.0f} s is not repeated); for the sequential loop, the time of the clips it was given",
    "rps": "rows (requests) per second at the median time",
    "pct_of_ideal": "ideal time / measured time (for the sequential loop: / the extrapolated time)",
    "pct_of_raw_aiohttp": "rows/s as a percentage of raw aiohttp's rows/s in the same run",
    "best_s": "the fastest run (the machine is shared: the best run is the least disturbed one)",
    "extrapolated_s": "sequential loop only: measured time × (clips in the column / clips measured)",
    "target / verdict": "the scenario's target and whether the median met it",
    "client_cpu_us_per_req": "CPU time of the benchmark process per row, median over runs, in microseconds",
    "server_requests": "requests the server counted in the last run (warm-up excluded): no retries, nothing twice",
    "server_max_in_flight": "most requests the server held at once during the last run (with no latency it"
    " answers each request as soon as its body is read, so this stays low)",
}
LEADING = ("client", "seconds", "best_s", "rps", "pct_of_ideal", "pct_of_raw_aiohttp", "target", "verdict")

# --------------------------------------------------------------------------- what a user would write


def hand_body(path: Path) -> bytes:
    """The JSON request body a hand-written client sends for one WAV file."""
    audio = base64.b64encode(path.read_bytes()).decode("ascii")
    return json.dumps({"model": MODEL, "input_audio": {"data": audio, "format": "wav"}}).encode()


def _outcome_run(outcome: Outcome) -> h.Run:
    return h.Run(outcome.seconds, outcome.ok, outcome.errors, outcome.cpu_seconds, outcome.cut_off, outcome.first_error)


def run_transcribe_column(url: str, df: pd.DataFrame, concurrency: int) -> h.Run:
    """``stt_frames.transcribe_column`` over ``df["path"]`` with a fresh cache directory."""
    client = stt_frames.Client(base_url=url, api_key=None)
    try:
        with tempfile.TemporaryDirectory(prefix="stt-bench-cache-") as cache_dir:
            cpu, started = time.process_time(), time.perf_counter()
            cut_off = False
            try:
                with h.watchdog():
                    out = stt_frames.transcribe_column(
                        df,
                        column="path",
                        model=MODEL,
                        concurrency=concurrency,
                        cache=cache_dir,
                        progress=False,
                        client=client,
                    )
            except stt_frames.Interrupted as stop:
                out, cut_off = stop.partial, True
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        client.close()
    errors = out["error"].dropna()
    failed = len(errors)
    return h.Run(
        seconds,
        ok=len(out) - failed,
        errors=failed,
        cpu_seconds=cpu,
        cut_off=cut_off,
        first_error=str(errors.iloc[0])[:200] if failed else "",
        extra={"cached": int(out["cached"].fillna(False).sum())},
    )


def run_sequential(url: str, paths: list[Path]) -> h.Run:
    """(a): one ``httpx.Client``, one clip after another."""
    endpoint = f"{url}/audio/transcriptions"
    ok = errors = 0
    first = ""
    cut_off = False
    with httpx.Client(timeout=60.0) as http:
        cpu, started = time.process_time(), time.perf_counter()
        for path in paths:
            if time.perf_counter() - started > h.RUN_BUDGET:
                cut_off = True
                break
            try:
                r = http.post(endpoint, content=hand_body(path), headers={"Content-Type": "application/json"})
                r.raise_for_status()
                if not isinstance(r.json().get("text"), str):
                    raise ValueError(f"unexpected answer {r.text[:80]!r}")
                ok += 1
            except Exception as exc:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:200]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return h.Run(seconds, ok, errors, cpu, cut_off, first)


def run_sdk(url: str, paths: list[Path], concurrency: int) -> h.Run:
    """(b): the official SDK, ``client.stt.create_transcription`` in a ``concurrency``-thread pool."""
    from openrouter import OpenRouter

    def one(path: Path) -> None:
        audio = {"data": base64.b64encode(path.read_bytes()).decode("ascii"), "format": "wav"}
        result = sdk.stt.create_transcription(input_audio=audio, model=MODEL)
        if not isinstance(result.text, str):
            raise ValueError(f"unexpected answer {result!r:.80}")

    ok = errors = 0
    first = ""
    with OpenRouter(server_url=url) as sdk, concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        one(paths[0])  # warm-up: the SDK's lazy imports and its connection
        cpu, started = time.process_time(), time.perf_counter()
        futures = [pool.submit(one, p) for p in paths]
        done, pending = concurrent.futures.wait(futures, timeout=h.RUN_BUDGET)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        for f in pending:
            f.cancel()
        for f in done:
            exc = f.exception()
            if exc is None:
                ok += 1
            else:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:200]
    return h.Run(seconds, ok, errors, cpu, bool(pending), first)


def _with_server_stats(url: str, fn: Callable[[], h.Run]) -> Callable[[], h.Run]:
    """``fn`` with the server's request count and peak of requests in flight recorded (outside the timing)."""

    def run() -> h.Run:
        reset_stats(url)
        result = fn()
        stats = get_stats(url)
        result.extra["server_requests"] = stats["total_requests"]
        result.extra["server_max_in_flight"] = stats["max_in_flight"]
        return result

    return run


# --------------------------------------------------------------------------- the scenarios


@dataclass(frozen=True)
class _Contender:
    label: str
    short: str  # the name in the summary line
    role: str  # stt_frames | baseline | diagnostic
    server: str  # "ours" | "minimal"
    note: str
    make: Callable[[], h.Run]


def _scenario(number: int, latency: float, c: int, paths: list[Path], n_seq: int, repeats: int) -> list[dict[str, Any]]:
    n = len(paths)
    name = (
        f"{number}. transcribe_column, {n:,} clips, "
        + (f"{latency:g} s latency" if latency else "no latency")
        + f", {c} in flight"
    )
    bodies = [hand_body(p) for p in paths]
    df = pd.DataFrame({"path": [str(p) for p in paths]})
    ideal = n * latency / c if latency else None
    module = "end_to_end"
    with (
        stt_frames.serve_local(process=True, latency=latency, log_level="error") as url,
        start_latency_server(latency) as diag_url,
    ):
        h.log(module, f"{name}: server at {url}, minimal aiohttp server at {diag_url}")
        for u in (url, diag_url):  # untimed warm-up: lazy imports (aiohttp, sqlite), first connections
            run_transcribe_column(u, df.head(2), 2)

        def aio(runner: Any, base: str) -> Callable[[], h.Run]:
            return lambda: _outcome_run(asyncio.run(runner(base, paths, bodies, c)))

        contenders = [
            _Contender(
                OURS,
                "stt_frames",
                "stt_frames",
                "ours",
                "paths in, DataFrame out; fresh cache dir each run; progress off",
                _with_server_stats(url, lambda: run_transcribe_column(url, df, c)),
            ),
            _Contender(
                RAW,
                "raw aiohttp",
                "baseline",
                "ours",
                "prebuilt bodies; the practical ceiling",
                _with_server_stats(url, aio(run_aiohttp, url)),
            ),
            _Contender(
                "(c) httpx.AsyncClient (max_connections=C)",
                "httpx.AsyncClient",
                "baseline",
                "ours",
                "prebuilt bodies; httpx's own pool keeps 20 idle connections",
                _with_server_stats(url, aio(_httpx_runner(False), url)),
            ),
            _Contender(
                f"(b) openrouter SDK in a {c}-thread pool",
                f"SDK, {c} threads",
                "baseline",
                "ours",
                "paths in: each task reads and encodes its clip; the SDK's default httpx pool (100 connections)",
                _with_server_stats(url, lambda: run_sdk(url, paths, c)),
            ),
        ]
        if n_seq:
            contenders.append(
                _Contender(
                    f"(a) sequential httpx.Client loop, first {n_seq} clips",
                    "sequential httpx",
                    "baseline",
                    "ours",
                    f"paths in; measured on the first {n_seq} of {n:,} clips",
                    _with_server_stats(url, lambda: run_sequential(url, paths[:n_seq])),
                )
            )
        contenders += [
            _Contender(
                f"{OURS}, minimal aiohttp server",
                "[minimal server] stt_frames",
                "diagnostic",
                "minimal",
                "diagnostic: the same call against bench.latency_server, to tell client costs from server costs",
                lambda: run_transcribe_column(diag_url, df, c),
            ),
            _Contender(
                f"{RAW}, minimal aiohttp server",
                "[minimal server] raw aiohttp",
                "diagnostic",
                "minimal",
                "diagnostic: the ceiling of this machine with a server that costs almost nothing",
                aio(run_aiohttp, diag_url),
            ),
        ]
        runs, loads = h.interleave([(k.label, k.make) for k in contenders], repeats=repeats, module=module)

    raw_rps = {
        "ours": n / h.timing(runs[RAW], n)["seconds"],
        "minimal": n / h.timing(runs[f"{RAW}, minimal aiohttp server"], n)["seconds"],
    }
    rows: list[dict[str, Any]] = []
    for k in contenders:
        outs = runs[k.label]
        sequential = k.short == "sequential httpx"
        count = n_seq if sequential else n
        t = h.timing(outs, count)
        row: dict[str, Any] = {
            "scenario": name,
            "client": k.label,
            "role": k.role,
            "server": SERVER if k.server == "ours" else MINIMAL_SERVER,
            "concurrency": 1 if sequential else c,
            "latency_s": latency,
            **{key: v for key, v in t.items() if not key.startswith("_")},
        }
        whole = t["seconds"] * n / count  # the whole column (extrapolated for the sequential loop)
        extra = list(t["_notes"])
        if sequential:
            row["extrapolated_s"] = whole
            extra.insert(0, f"extrapolated to {n:,} clips: {whole:,.0f} s (not measured)")
        if ideal:
            row["pct_of_ideal"] = 100 * ideal / whole
        elif t["rps"]:
            row["pct_of_raw_aiohttp"] = 100 * t["rps"] / raw_rps[k.server]
        rel = f"{row['pct_of_ideal']:.1f}% of ideal" if ideal else f"{row.get('pct_of_raw_aiohttp', 0):.1f}% of raw"
        last = outs[-1].extra
        row["server_requests"] = last.get("server_requests")
        row["server_max_in_flight"] = last.get("server_max_in_flight")
        if k.role == "stt_frames":
            if ideal:
                met = row["pct_of_ideal"] >= TARGET_PCT_OF_IDEAL
                row["target"] = f">= {TARGET_PCT_OF_IDEAL:.0f}% of ideal"
                row["figure"] = f"{t['seconds']:.2f} s = {rel} (best run {100 * ideal / t['best_s']:.1f}%)"
            else:
                met = row["pct_of_raw_aiohttp"] >= TARGET_PCT_OF_RAW
                row["target"] = f">= {TARGET_PCT_OF_RAW:.0f}% of raw aiohttp's rows/s"
                row["figure"] = f"{t['rps']:,.0f} rows/s = {rel} aiohttp ({t['seconds']:.2f} s)"
            row["verdict"] = h.verdict(met and not t["errors"])
            extra.append(h.load_note(loads))
        elif sequential:
            row["figure"] = (
                f"sequential httpx: {t['seconds']:.1f} s measured for {n_seq} clips, "
                f"{whole:,.0f} s extrapolated to {n:,}"
            )
        else:
            row["figure"] = f"{k.short}: {t['seconds']:.2f} s ({t['rps']:,.0f} rows/s, {rel})"
        row["notes"] = h.notes(k.note, extra=extra)
        rows.append(row)
    if ideal:
        rows.append(
            {
                "scenario": name,
                "client": "(e) ideal: N x latency / C",
                "role": "ideal",
                "n": n,
                "concurrency": c,
                "latency_s": latency,
                "seconds": ideal,
                "rps": n / ideal,
                "pct_of_ideal": 100.0,
                "figure": f"ideal {ideal:.2f} s",
                "notes": "no client or server overhead at all",
            }
        )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """Scenarios 1 and 2; one row per contender, plus the ideal."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stt-bench-e2e-") as tmp:
        n_max = QUICK_N if quick else max(s[3] for s in SCENARIOS)
        paths = h.distinct_wavs(Path(tmp), n_max, 1.0)
        for number, latency, c, n, n_seq in SCENARIOS:
            n = QUICK_N if quick else n
            n_seq = min(n_seq, QUICK_SEQUENTIAL) if quick else n_seq
            rows += _scenario(number, latency, c, paths[:n], n_seq, h.repeats_for(quick))
    return rows
