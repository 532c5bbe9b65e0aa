"""Peak memory of `transcribe_column`: 100 vs 400 clips of 2 MB at the same concurrency.

Scenario 4 of issues 4 and 7. Memory must depend on the number of requests in flight, not on the
length of the column. 400 WAV files of 62 s (16 kHz 16-bit mono, 1,984,044 bytes each, random samples
so that every one is distinct) are written to a temporary directory and deleted afterwards. The server
is `stt_frames.serve_local(process=True, latency=0.05)` with `fake/echo` (its 34 MB body limit is far
above the 2.6 MB a request carries).

Each run is a fresh Python process (`python -m bench.memory --child ...`): it imports stt_frames,
pandas, httpx and aiohttp and builds the DataFrame, reads `ru_maxrss` (the baseline), runs
`transcribe_column` (concurrency 16, fresh cache directory, progress off), then reads `ru_maxrss`
again (the peak). The target applies to the run's own memory, peak minus baseline. The 100- and
400-clip runs alternate, 3 of each.

The reference rows are computed, not measured: what holding every clip in memory at once would take
(the clip bytes alone, before base64).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _harness as h

MODEL = "fake/echo"
CLIP_SECONDS = 62.0
SMALL, LARGE = 100, 400
QUICK_SMALL, QUICK_LARGE = 20, 40
CONCURRENCY = 16
LATENCY = 0.05
#: The large run's own memory (peak minus baseline) may exceed the small run's by at most this fraction.
TARGET_GROWTH = 0.25
CHILD_TIMEOUT = 300.0

COLUMNS = {
    "net_peak_mb": "peak RSS minus the baseline after imports, median of the runs (the target applies here)",
    "peak_mb": "peak RSS of the process (ru_maxrss at the end), median",
    "baseline_mb": "ru_maxrss after imports and building the DataFrame, before transcribe_column, median",
    "vm_hwm_mb": "VmHWM of /proc/self/status at the end, median: the same peak seen by the kernel (a cross-check)",
    "vs_small_run": "net peak / the 100-clip run's net peak",
    "seconds": "median wall time of transcribe_column in the child",
}
LEADING = ("client", "n", "net_peak_mb", "peak_mb", "baseline_mb", "vs_small_run", "target", "verdict")


def _vm_hwm_kb() -> int | None:
    """The peak RSS of this process's address space (``VmHWM``), a cross-check of ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def child(url: str, clips: Path, n: int, concurrency: int) -> dict[str, Any]:
    """The measured process: baseline after imports, then one transcribe_column run, then the peak."""
    import resource

    import aiohttp  # noqa: F401  (imported by the run anyway: count it in the baseline, not the peak)
    import httpx_aiohttp  # noqa: F401
    import pandas as pd

    import stt_frames

    paths = sorted(str(p) for p in clips.glob("*.wav"))[:n]
    df = pd.DataFrame({"path": paths})
    client = stt_frames.Client(base_url=url, api_key=None)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="stt-bench-mem-cache-") as cache_dir:
        started = time.perf_counter()
        out = stt_frames.transcribe_column(
            df, column="path", model=MODEL, concurrency=concurrency, cache=cache_dir, progress=False, client=client
        )
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = out["error"].dropna()
    hwm = _vm_hwm_kb()
    return {
        "n": len(paths),
        "baseline_kb": baseline,
        "peak_kb": peak,
        "vm_hwm_kb": hwm,
        "seconds": seconds,
        "errors": len(errors),
        "first_error": str(errors.iloc[0])[:200] if len(errors) else "",
    }


#: Starts the measured child from a small intermediate process. Linux carries a process's peak RSS across
#: fork and exec (the child's ru_maxrss starts at the parent's high-water mark, here the benchmark's own
#: few hundred MB); a child started by a fresh, small Python inherits only that one's ~10 MB.
_SPAWN = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def _spawn(url: str, clips: Path, n: int) -> h.Run:
    child_cmd = [sys.executable, "-m", "bench.memory", "--child", url, str(clips), str(n), str(CONCURRENCY)]
    cmd = [sys.executable, "-c", _SPAWN, *child_cmd]
    root = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return h.Run(time.perf_counter() - started, errors=n, cut_off=True, first_error="child timed out")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return h.Run(time.perf_counter() - started, errors=n, first_error=f"child failed: {tail[0][:200]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return h.Run(
        result["seconds"],
        ok=result["n"] - result["errors"],
        errors=result["errors"],
        first_error=result["first_error"],
        extra=result,
    )


def _mb(kb: float) -> float:
    return kb / 1024


def run(quick: bool) -> list[dict[str, Any]]:
    """Alternate small and large runs in fresh processes; one row per size, plus computed references."""
    import stt_frames

    small, large = (QUICK_SMALL, QUICK_LARGE) if quick else (SMALL, LARGE)
    module = "memory"
    name = f"4. peak memory, {small} vs {large} clips of 2 MB, {CONCURRENCY} in flight"
    with tempfile.TemporaryDirectory(prefix="stt-bench-mem-") as tmp:
        clips = Path(tmp)
        paths = h.distinct_wavs(clips, large, CLIP_SECONDS, prefix="long")
        clip_bytes = paths[0].stat().st_size
        with stt_frames.serve_local(process=True, latency=LATENCY, log_level="error") as url:
            labels = {small: f"transcribe_column, {small} clips", large: f"transcribe_column, {large} clips"}
            contenders = [(labels[k], lambda k=k: _spawn(url, clips, k)) for k in (small, large)]
            runs, loads = h.interleave(contenders, repeats=h.repeats_for(quick), module=module)

    def med(outs: list[h.Run], key: str) -> float:
        return statistics.median(o.extra.get(key, float("nan")) for o in outs)

    def net(outs: list[h.Run]) -> float:
        return statistics.median(o.extra["peak_kb"] - o.extra["baseline_kb"] for o in outs if "peak_kb" in o.extra)

    small_runs, large_runs = runs[labels[small]], runs[labels[large]]
    ok_runs = all("peak_kb" in o.extra for o in small_runs + large_runs)
    small_net = net(small_runs) if ok_runs else float("nan")
    rows: list[dict[str, Any]] = []
    for k, outs in ((small, small_runs), (large, large_runs)):
        t = h.timing(outs, k)
        n_net = net(outs) if ok_runs else float("nan")
        row: dict[str, Any] = {
            "scenario": name,
            "client": labels[k],
            "role": "stt_frames" if k == large else "baseline",
            "server": f"stt-frames serve (fake/echo, latency {LATENCY} s, own process)",
            "n": k,
            "concurrency": CONCURRENCY,
            "net_peak_mb": _mb(n_net),
            "peak_mb": _mb(med(outs, "peak_kb")),
            "baseline_mb": _mb(med(outs, "baseline_kb")),
            "vm_hwm_mb": _mb(med(outs, "vm_hwm_kb")) if all(o.extra.get("vm_hwm_kb") for o in outs) else None,
            "vs_small_run": n_net / small_net if small_net else None,
            "seconds": t["seconds"],
            "runs": t["runs"],
            "runs_net_mb": [round(_mb(o.extra["peak_kb"] - o.extra["baseline_kb"]), 1) for o in outs if ok_runs],
            "errors": t["errors"],
        }
        extra = list(t["_notes"])
        if k == large:
            growth = n_net / small_net - 1 if small_net else float("nan")
            row["target"] = f"net peak within {100 * TARGET_GROWTH:.0f}% of the {small}-clip run's"
            row["verdict"] = h.verdict(ok_runs and growth <= TARGET_GROWTH and not t["errors"])
            row["figure"] = (
                f"{_mb(n_net):.0f} MB net peak for {large} clips vs {_mb(small_net):.0f} MB for {small} "
                f"({100 * growth:+.1f}%); raw peaks {row['peak_mb']:.0f} vs {_mb(med(small_runs, 'peak_kb')):.0f} MB"
            )
            extra.append(h.load_note(loads))
        else:
            row["figure"] = f"{small} clips: {_mb(small_net):.0f} MB net peak (baseline {row['baseline_mb']:.0f} MB)"
        row["notes"] = h.notes(extra=extra)
        rows.append(row)
    for k in (small, large):
        rows.append(
            {
                "scenario": name,
                "client": f"reference: {k} clips all in memory at once (computed)",
                "role": "reference",
                "n": k,
                "net_peak_mb": _mb(k * clip_bytes / 1024),
                "figure": f"all {k} clips in memory: {k * clip_bytes / 2**20:,.0f} MB (computed)",
                "notes": f"{k} × {clip_bytes:,} bytes, before the 4/3 of base64; not measured",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="the measured child process of bench.memory")
    ap.add_argument("--child", nargs=4, metavar=("URL", "CLIPS", "N", "CONCURRENCY"), required=True)
    args = ap.parse_args(argv)
    url, clips, n, concurrency = args.child
    print(json.dumps(child(url, Path(clips), int(n), int(concurrency))))


if __name__ == "__main__":
    main()
