"""Scenarios 12-14: one budget, one bill and one shared cache across Dask workers (issue 18).

- **Throughput**, 1 vs 2 worker processes (``LocalCluster(processes=True)``, one thread each), 64 requests
  in flight per worker (``concurrency=64``), against ``bench.latency_server`` (0.2 s per request, its own
  process), 2,000 distinct 0.1 s clips, cache on a fresh ``file://`` object store each run. Reported:
  the whole ``dask.transcribe(...).compute()`` (identify, shuffle of the hashes, send, assemble) and the
  ratio 2 workers / 1 worker, of the medians of 3 interleaved runs each (1, 2, 1, 2, 1, 2; a fresh
  cluster and cache every run). Target: >= 1.7x.
- **Billing**, the 2,000-clip version of tests/test_dask_cluster.py on the project's server (priced
  fake/echo, 0.2 s latency) with a moto S3 cache: 10% of the rows repeat an audio of another partition,
  ``max_cost`` is half the total. Reported: requests, the largest bill of one audio (target 1), spend vs
  cap, and the requests of a rerun on a fresh cluster (target 0).
- **The budget primitive**: reserve+settle pairs per second from one task, through the ``BudgetActor``
  and through a ``distributed.Variable`` guarded by a ``distributed.Lock`` (what the Actor replaced).

Run alone: ``python -m bench --only dask_cluster --merge``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench import _harness as h

LATENCY = 0.2
IN_FLIGHT = 64
N, QUICK_N = 2000, 400
TARGET_RATIO = 1.7
MODULE = "dask_cluster"

COLUMNS = {
    "seconds": "median wall time of the whole dask.transcribe(...).compute() (billing: both runs)",
    "best_s": "the fastest run",
    "runs": "runs of each cluster size",
    "rps": "rows per second",
    "ratio": "rows/s of 2 workers / rows/s of 1 worker",
}
LEADING = ("client", "seconds", "rps", "ratio", "target", "verdict")


def _cluster(workers: int) -> Any:
    import distributed

    return distributed.LocalCluster(
        n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=50
    )


def _frame(folder: Path, n: int, duplicates: int = 0) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(p) for p in h.distinct_wavs(folder, n - duplicates, 0.1)]
    for j in range(duplicates):
        copy = folder / f"copy-{j:04d}.wav"
        shutil.copyfile(paths[(j * 7) % len(paths)], copy)
        paths.append(str(copy))
    return pd.DataFrame({"path": paths})


def _cluster_run(df: pd.DataFrame, workers: int, url: str, cache: str) -> float:
    """Seconds for one ``dask.transcribe(...).compute()`` on a fresh cluster of ``workers`` processes."""
    import dask.dataframe as dd
    import distributed

    import stt_frames
    import stt_frames.dask

    with _cluster(workers) as cluster, distributed.Client(cluster):
        ddf = dd.from_pandas(df, npartitions=8)
        out = stt_frames.dask.transcribe(
            ddf, model="fake/echo", client=stt_frames.Client(base_url=url), cache=cache, concurrency=IN_FLIGHT
        )
        started = time.perf_counter()
        result = out.compute()
        wall = time.perf_counter() - started
    assert result["error"].isna().all(), result["error"].dropna().unique()[:3]
    return wall


def throughput(quick: bool) -> list[dict[str, Any]]:
    from bench.client_throughput import start_latency_server

    n = QUICK_N if quick else N
    repeats = h.repeats_for(quick)
    name = f"12. Dask: 2 worker processes vs 1, {n:,} clips, {LATENCY} s latency, {IN_FLIGHT} in flight each"
    walls: dict[int, list[float]] = {1: [], 2: []}
    loads = [h.loadavg()]
    with tempfile.TemporaryDirectory() as tmp, start_latency_server(LATENCY) as url:
        df = _frame(Path(tmp) / "clips", n)
        for r in range(repeats):  # interleaved: a busy moment of the shared machine hits both alike
            for workers in (1, 2):
                wall = _cluster_run(df, workers, url, f"file://{tmp}/cache-{workers}-{r}")
                walls[workers].append(wall)
                h.log(MODULE, f"{workers} worker(s): {n} rows in {wall:.2f}s ({n / wall:.0f} rows/s)")
            loads.append(h.loadavg())
    rps = {w: n / statistics.median(v) for w, v in walls.items()}
    ratio = rps[2] / rps[1]
    each = ", ".join(f"{a / b:.2f}" for a, b in zip(walls[1], walls[2], strict=True))
    rows: list[dict[str, Any]] = []
    for workers in (2, 1):
        ideal = n * LATENCY / (IN_FLIGHT * workers)
        row: dict[str, Any] = {
            "scenario": name,
            "client": f"{workers} worker process{'es' if workers > 1 else ''} x {IN_FLIGHT} in flight",
            "role": "stt_frames" if workers == 2 else "baseline",
            "seconds": round(statistics.median(walls[workers]), 2),
            "best_s": round(min(walls[workers]), 2),
            "rps": round(rps[workers], 1),
            "runs": len(walls[workers]),
        }
        notes = [f"the send pass alone, with no overhead, would take {ideal:.2f} s (N x latency / in flight)"]
        if workers == 2:
            row.update(ratio=round(ratio, 2), target=f">= {TARGET_RATIO}x the rows/s of 1 worker")
            row["verdict"] = h.verdict(ratio >= TARGET_RATIO)
            row["figure"] = f"{rps[2]:,.0f} rows/s = {ratio:.2f}x 1 worker (runs: {each})"
            notes += [
                "a fresh cluster and a fresh file:// object-store cache for every run; identify, shuffle, send "
                "and assemble passes all timed",
                h.load_note(loads),
            ]
        else:
            row["figure"] = f"1 worker: {rps[1]:,.0f} rows/s ({statistics.median(walls[1]):.2f} s)"
        row["notes"] = h.notes(extra=notes)
        rows.append(row)
    return rows


@contextlib.contextmanager
def _moto() -> Iterator[dict[str, Any]]:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                 region_name="us-east-1").create_bucket(Bucket="cache")  # fmt: skip
    try:
        yield {"key": "x", "secret": "x", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    finally:
        server.stop()


def billing(quick: bool) -> list[dict[str, Any]]:
    import dask.dataframe as dd
    import distributed

    import stt_frames
    import stt_frames.dask
    from stt_frames.cache_store import ObjectCache
    from stt_frames.server import get_stats

    n = QUICK_N if quick else N
    price = 0.06
    with tempfile.TemporaryDirectory() as tmp, _moto() as s3, stt_frames.serve_local(
        prices={"fake/echo": price}, latency=LATENCY, process=True
    ) as url:  # fmt: skip
        df = _frame(Path(tmp) / "clips", n, duplicates=n // 10)
        distinct = n - n // 10
        total = distinct * 0.1 / 60 * price
        cache = ObjectCache("s3://cache/bench", storage_options=s3)
        options = {"model": "fake/echo", "client": stt_frames.Client(base_url=url), "cache": cache,
                   "concurrency": IN_FLIGHT}  # fmt: skip
        ddf = dd.from_pandas(df, npartitions=16)
        with _cluster(2) as cluster, distributed.Client(cluster):
            started = time.perf_counter()
            stt_frames.dask.transcribe(ddf, max_cost=total / 2, **options).compute()
            capped = get_stats(url)
            stt_frames.dask.transcribe(ddf, **options).compute()
            wall = time.perf_counter() - started
        full = get_stats(url)
        with _cluster(2) as cluster, distributed.Client(cluster):
            again = stt_frames.dask.transcribe(ddf, **options).compute()
        rerun = get_stats(url)["total_requests"] - full["total_requests"]
    worst = max(full["billed"].values())
    ok = worst == 1 and capped["cost"] <= total / 2 + 1e-9 and rerun == 0 and bool(again["cached"].all())
    return [{
        "scenario": f"13. Dask: one bill per audio, one cap, a free rerun ({n:,} rows, 2 workers, moto S3 cache)",
        "role": "stt_frames",
        "client": f"{n} rows ({n // 10} repeat another partition's audio), 2 workers, moto S3 cache",
        "seconds": round(wall, 2), "target": "each audio billed once; spend <= cap; rerun sends 0",
        "verdict": h.verdict(ok),
        "figure": f"at most {worst} bill per audio; spent ${capped['cost']:.4f} of a ${total / 2:.4f} cap; "
        f"rerun on a fresh cluster sent {rerun}",
        "notes": f"requests {full['total_requests']} for {distinct} distinct audios (max bills of one: {worst}); "
        f"capped run spent ${capped['cost']:.4f} of cap ${total / 2:.4f}; fresh-cluster rerun sent {rerun}",
    }]  # fmt: skip


def _actor_pairs(budget: Any, n: int) -> float:
    import threading

    bound = budget.bind()
    took: list[float] = []

    def run() -> None:  # from a thread of its own, as the run's event loop calls it
        started = time.perf_counter()
        for _ in range(n):
            bound.settle(bound.reserve(1000), cost=0.0, size=1000)
        took.append(time.perf_counter() - started)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return n / took[0]


def _variable_pairs(n: int) -> float:
    import distributed

    var, lock = distributed.Variable("bench-budget"), distributed.Lock("bench-budget")
    started = time.perf_counter()
    for _ in range(n):
        for delta in (0.001, -0.001):  # reserve, then settle: a read-modify-write under the lock each
            with lock:
                var.set(var.get() + delta)
    return n / (time.perf_counter() - started)


def primitive(quick: bool) -> list[dict[str, Any]]:
    import distributed

    from stt_frames._cluster import ClusterBudget

    n = 100 if quick else 500
    with _cluster(2) as cluster, distributed.Client(cluster) as client:
        budget = ClusterBudget.create(1e9, client)
        actor = client.submit(_actor_pairs, budget, n, pure=False).result()
        distributed.Variable("bench-budget").set(0.0)
        variable = client.submit(_variable_pairs, n, pure=False).result()
    return [
        {"scenario": "14. Dask: the cluster budget's primitive", "role": "stt_frames",
         "client": "budget: Dask Actor (stt_frames)", "rps": round(actor, 1),
         "figure": f"Actor: {actor:,.0f} reserve+settle pairs/s",
         "target": "more pairs/s than Variable + Lock (the issue: whichever measures better)",
         "verdict": h.verdict(actor > variable),
         "notes": "reserve+settle pairs per second from one task (one round trip each)"},
        {"scenario": "14. Dask: the cluster budget's primitive", "role": "baseline",
         "client": "budget: Variable + Lock", "rps": round(variable, 1),
         "figure": f"Variable + Lock: {variable:,.0f} pairs/s",
         "notes": "the same pairs as lock, get, set, unlock (four round trips each, through the scheduler)"},
    ]  # fmt: skip


def run(quick: bool) -> list[dict[str, Any]]:
    return [*throughput(quick), *billing(quick), *primitive(quick)]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
