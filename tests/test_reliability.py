"""Reliability of transcribe_column under chaos, crashes, a shared cache, bad inputs and a full or read-only disk.

Every test talks to the project's own local server (conftest's ``local_server``, in a thread of this process) or to
``scripted_server.ScriptedServer``; child processes are ``tests/reliability_child.py``.

The chaos test wraps the real server app in ``Tap``, an ASGI wrapper that records, for every transcription
request, the audio hash and whether its answer left the server whole. That gives a second accounting,
independent of the server's own ``/_stats``, of which answers were lost in transit.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import hashlib
import io
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scripted_server import Reply, ScriptedServer, serve_in_thread

import stt_frames
from stt_frames import errors, retry
from stt_frames.cache import CACHE_FILENAME, Cache, CacheError
from stt_frames.server import get_stats

pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

HERE = Path(__file__).resolve().parent
CHILD = HERE / "reliability_child.py"


# --------------------------------------------------------------------------- helpers


def make_clip(i: int, seconds: float = 0.05) -> bytes:
    """A distinct, deterministic 16 kHz mono WAV (noise seeded by ``i``)."""
    frames = random.Random(i).randbytes(int(seconds * 16_000) * 2)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(frames)
    return buf.getvalue()


def write_clips(folder: Path, n: int, *, start: int = 0, seconds: float = 0.05) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        p = folder / f"clip_{i:04d}.wav"
        p.write_bytes(make_clip(i, seconds))
        paths.append(str(p))
    return paths


def sha_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def db_path(cache_dir: Path) -> Path:
    return cache_dir / CACHE_FILENAME


def integrity(db: Path) -> str:
    con = sqlite3.connect(db, timeout=30)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def cached_hashes(db: Path) -> Counter[str]:
    """How many answers the cache holds per audio hash (read-only; safe while another process writes)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return Counter(sha for (sha,) in con.execute("SELECT audio_sha256 FROM responses"))
    finally:
        con.close()


def count_entries(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def stats_delta(after: dict[str, Any], before: dict[str, Any], field: str) -> Counter[str]:
    delta = Counter(after[field])
    delta.subtract(before[field])
    return +delta


def start_child(
    paths: list[str], url: str, cache_dir: Path, tmp: Path, name: str, *, concurrency: int, go: Path | None = None
) -> subprocess.Popen[str]:
    listing = tmp / f"{name}.txt"
    listing.write_text("\n".join(paths))
    args = [
        sys.executable,
        str(CHILD),
        str(listing),
        url,
        str(cache_dir),
        str(concurrency),
        str(tmp / f"{name}.parquet"),
    ]
    if go is not None:
        args.append(str(go))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff from 50 ms up to 1 s instead of 0.5 s up to 30 s (the formula is tested in test_retry.py)."""
    monkeypatch.setattr(retry, "INITIAL_BACKOFF", 0.05)
    monkeypatch.setattr(retry, "MAX_BACKOFF", 1.0)


# --------------------------------------------------------------------------- chaos


class _SendTap:
    """Stands in for uvicorn's request cycle: records what is sent, delegates everything else to the cycle.

    The server's ``drop``/``truncate`` faults close the real connection through ``send.__self__``; this
    object forwards ``transport`` and ``disconnected`` to the real cycle, so those faults still happen.
    """

    def __init__(self, send: Any, record: dict[str, Any]) -> None:
        self._send = send
        self._cycle = getattr(send, "__self__", None)
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cycle, name)

    async def send(self, message: dict[str, Any]) -> None:
        await self._send(message)
        if message["type"] == "http.response.start":
            self._record["status"] = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self._record["complete"] = True


class Tap:
    """ASGI wrapper of the real server app: per transcription request, its audio hash and its answer's fate.

    Audio whose hash is in ``cursed`` never reaches the app: its connection is closed after the whole body
    arrived, without a byte of answer, exactly as the server's ``drop`` fault does. That makes one clip
    lose every answer, so the "sent at most twice" rule is exercised in every run, not only by chance.
    """

    def __init__(self, app: Any, cursed: set[str]) -> None:
        self.app = app
        self.cursed = cursed
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/audio/transcriptions"):
            await self.app(scope, receive, send)
            return
        messages: list[dict[str, Any]] = []  # the whole body first, then replayed to the app
        while not messages or (messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False)):
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages)

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        record: dict[str, Any] = {"sha": None, "status": None, "complete": False}
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record["sha"] = hashlib.sha256(base64.b64decode(json.loads(body)["input_audio"]["data"])).hexdigest()
        tap = _SendTap(send, record)
        try:
            if record["sha"] in self.cursed:
                from stt_frames.server.responses import CYCLE_SCOPE_KEY, DropResponse

                await DropResponse()({**scope, CYCLE_SCOPE_KEY: tap._cycle}, replay, tap.send)
            else:
                await self.app(scope, replay, tap.send)
        finally:
            with self._lock:
                self.records.append(record)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the records so far (the server thread keeps appending)."""
        with self._lock:
            return list(self.records)

    def answers(self) -> tuple[Counter[str], Counter[str]]:
        """(200s sent whole, 200s cut off) per audio hash."""
        seen = fates(self.snapshot())
        return seen["whole"], seen["cut"]


def fate(record: dict[str, Any]) -> str:
    """What became of one request's answer: "whole" (a 200 sent whole), "cut" (a 200 cut off), "dropped"
    (closed before any answer) or "status" (a 429/5xx fault, or any other status)."""
    if record["status"] is None:
        return "dropped"
    if record["status"] == 200:
        return "whole" if record["complete"] else "cut"
    return "status"


def fates(records: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per fate (see ``fate``), how many requests of each audio hash met it."""
    out: dict[str, Counter[str]] = {k: Counter() for k in ("whole", "cut", "dropped", "status")}
    for r in records:
        out[fate(r)][r["sha"]] += 1
    return out


def test_chaos_faults_truncation_and_a_server_restart(
    fresh_server: Callable[..., contextlib.AbstractContextManager[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fast_backoff: None,
) -> None:
    """30% faults of every kind plus a restart on the same port, and one clip whose every answer is lost.

    Every row ends with its text, or (after two lost answers) with "not sent a third time"; no audio is sent
    again after its answer arrived, nor a third time after two lost answers; every status fault is retried;
    the second sends are counted; and a rerun on the same cache sends exactly the failed audio."""
    from stt_frames.server import app as server_app

    taps: list[Tap] = []
    cursed: set[str] = set()
    real_create_app = server_app.create_app

    def tapped_create_app(*options: Any, **overrides: Any) -> Tap:
        tap = Tap(real_create_app(*options, **overrides), cursed)
        taps.append(tap)
        return tap

    monkeypatch.setattr(server_app, "create_app", tapped_create_app)
    caplog.set_level(logging.INFO, logger="stt_frames.client")  # one record per retry, with the error type

    paths = write_clips(tmp_path / "clips", 160)
    copy = tmp_path / "clips" / "copy_of_0.wav"
    copy.write_bytes(Path(paths[0]).read_bytes())
    rows = paths + paths[:20] + [str(copy)]  # repeated paths and a copy: one request per distinct audio
    df = pd.DataFrame({"path": rows})
    distinct = {sha_of(p) for p in paths}
    cursed.add(sha_of(paths[1]))  # rows 1 and 161: every answer lost
    options: dict[str, Any] = {
        "fail_rate": 0.3,
        "latency": 0.02,
        "faults": ("429", "500", "502", "503", "drop", "truncate"),
        "retry_after": 0.05,
    }
    restart: dict[str, Any] = {}

    with contextlib.ExitStack() as first:
        url = first.enter_context(fresh_server(seed=11, **options))
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        second = contextlib.ExitStack()

        def restart_mid_run() -> None:
            try:
                deadline = time.monotonic() + 60
                while sum(taps[0].answers()[0].values()) < 50 and time.monotonic() < deadline:
                    time.sleep(0.005)
                restart["billed_at_stop"] = sum(taps[0].answers()[0].values())
                down = time.monotonic()
                first.close()  # graceful: requests in flight finish, new connections are refused
                time.sleep(0.5)  # half a second with nothing listening
                for attempt in range(50):  # a client socket may hold the port for a moment (self-connect)
                    try:
                        second.enter_context(fresh_server(seed=12, port=port, **options))
                        break
                    except OSError:
                        if attempt == 49:
                            raise
                        time.sleep(0.1)
                restart["down_s"] = round(time.monotonic() - down, 2)
            except BaseException as exc:
                restart["error"] = exc

        restarter = threading.Thread(target=restart_mid_run)
        restarter.start()
        try:
            started = time.monotonic()
            client = stt_frames.Client(base_url=url, max_retries=10)
            out = stt_frames.transcribe_column(
                df, model="fake/echo", client=client, progress=False, concurrency=16, output=tmp_path / "chaos.parquet"
            )
            wall = time.monotonic() - started
            restarter.join(timeout=30)
            assert "error" not in restart, restart
            assert len(taps) == 2, "the server was not restarted"
            # the state after the first run, before the rerun adds to it
            snapshots = [tap.app.state.stats.snapshot() for tap in taps]  # the servers' own accounting
            first_run_records = [tap.snapshot() for tap in taps]
            logged = [r.getMessage() for r in caplog.records]
            # the rerun: the cursed clip is healed and only status faults remain, so every row can finish
            cursed.clear()
            taps[1].app.state.stt.faults.kinds = ("429", "500", "502", "503")
            billed_before_rerun = Counter(snapshots[1]["billed"])
            rerun = stt_frames.transcribe_column(df, model="fake/echo", client=client, progress=False)
            rerun_fates = fates(taps[1].snapshot()[len(first_run_records[1]) :])
            billed_by_rerun = Counter(taps[1].app.state.stats.snapshot()["billed"])
            billed_by_rerun.subtract(billed_before_rerun)
        finally:
            restarter.join(timeout=30)
            second.close()

    billed: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    for snap in snapshots:
        billed.update(snap["billed"])
        faults.update(snap["faults"])
    seen = fates([r for records in first_run_records for r in records])
    whole, cut, dropped = seen["whole"], seen["cut"], seen["dropped"]
    lost = cut + dropped  # answers lost in transit after the whole body arrived
    retried = Counter(m.split()[2] for m in logged if m.startswith("retrying after"))
    sent_again = sum(m.startswith("sending again after") for m in logged)
    meta = out.attrs["stt_frames"]
    failed = out["error"].notna()
    failed_shas = {sha_of(p) for p in out.loc[failed, "path"]}
    report = {
        "rows": len(df),
        "distinct": len(distinct),
        "faults": dict(faults),
        "wall_s": round(wall, 2),
        "billed_total": sum(billed.values()),
        "cut_total": sum(cut.values()),
        "lost_total": sum(lost.values()),
        "failed_rows": int(failed.sum()),
        "failed_audio": len(failed_shas),
        "possibly_billed_twice": meta["possibly_billed_twice"],
        **restart,
        "requests_per_server": [s["total_requests"] for s in snapshots],
        "retried": dict(retried),
    }
    print("chaos:", report)

    # every row has its text, or failed after two lost answers with the message that says so
    assert (out["text"].notna() == ~failed).all()
    assert out.loc[failed, "error"].str.contains("not sent a third time").all(), out.loc[failed, "error"].tolist()[:3]
    # identical audio has an identical outcome
    assert out["text"].iloc[0] == out["text"].iloc[160] == out["text"].iloc[-1]
    assert failed.iloc[1] and failed.iloc[161], "the clip that loses every answer did not fail"
    assert set(out.loc[~failed, "path"].map(sha_of)).isdisjoint(failed_shas)
    # the chaos really happened: every kind of fault, and both servers answered
    assert set(faults) == {"429", "500", "502", "503", "drop", "truncate"}, faults
    assert all(snap["total_billed"] > 0 for snap in snapshots), report
    assert 0 < restart["billed_at_stop"] < len(distinct)
    # every status fault was retried once, lost answers or not
    assert retried["RateLimitError"] == faults["429"]
    assert retried["InternalServerError"] == faults["500"]
    assert retried["BadGatewayError"] == faults["502"]
    assert retried["ServiceUnavailableError"] == faults["503"]
    # the second sends after a lost answer are counted, in the log, in attrs and in the Parquet metadata
    assert sent_again == meta["possibly_billed_twice"] >= len(failed_shas)
    assert (
        stt_frames.read_results(tmp_path / "chaos.parquet").attrs["stt_frames"]["possibly_billed_twice"]
        == (meta["possibly_billed_twice"])
    )
    # every lost answer was either sent again (counted) or ended its row (a client may also see a
    # keep-alive connection closed under it by the restart: then it counts a send the server never got)
    assert sum(lost.values()) <= meta["possibly_billed_twice"] + len(failed_shas), report
    # the refusals while the server was down were retried too, and not counted as possibly billed: nothing was sent
    assert retried["APIConnectionError"] > meta["possibly_billed_twice"], retried
    # the server's own fault counts match what the tap saw leave (the cursed clip is the tap's own doing)
    assert sum(cut.values()) == faults["truncate"], (cut, faults)
    assert sum(dropped.values()) - dropped[sha_of(paths[1])] == faults["drop"], (dropped, faults)
    # no audio was sent more than twice after a lost answer, and never again after the second
    per_sha: dict[str, list[str]] = {}
    for records in first_run_records:
        for r in records:
            per_sha.setdefault(r["sha"], []).append("lost" if fate(r) in ("cut", "dropped") else fate(r))
    for sha, seq in per_sha.items():
        assert seq.count("lost") <= 2, (sha, seq)
        if seq.count("lost") == 2:
            assert seq[-1] == "lost", ("sent again after its second lost answer", sha, seq)
    assert per_sha[sha_of(paths[1])] == ["lost", "lost"]  # the cursed clip: exactly two sends
    # the two accountings agree: what the server billed is what the tap saw leave as a 200
    assert billed == whole + cut
    # each clip that succeeded had its answer leave the server whole exactly once; a failed one never
    assert set(whole) == distinct - failed_shas and set(whole.values()) == {1}, whole.most_common(3)
    for sha in failed_shas:
        assert whole[sha] == 0 and 1 <= lost[sha] <= 2, (sha, per_sha[sha])
    # billed more than once only as often as its answer was lost in transit, and never more than twice
    for sha in distinct:
        assert billed[sha] <= min(2, 1 + cut[sha]), (sha, billed[sha], cut[sha])

    # the rerun on the same cache finishes every row and sends exactly the failed audio, each billed once
    assert rerun["error"].isna().all() and rerun["text"].notna().all(), rerun["error"].dropna().tolist()[:3]
    assert (rerun.loc[~failed, "text"] == out.loc[~failed, "text"]).all()
    assert (rerun["cached"] == ~failed).all()
    assert set(rerun_fates["whole"]) == failed_shas and set(rerun_fates["whole"].values()) == {1}
    assert not rerun_fates["cut"] and not rerun_fates["dropped"]
    assert +billed_by_rerun == Counter(dict.fromkeys(failed_shas, 1))
    assert rerun["text"].iloc[1] == rerun["text"].iloc[161]
    assert rerun.attrs["stt_frames"]["possibly_billed_twice"] == 0


# --------------------------------------------------------------------------- crash and resume


def wait_idle(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """The server's stats once no request is in flight (a killed client's last requests are still counted)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = get_stats(url)
        if stats["in_flight"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


def test_kill_9_three_times_during_write_bursts_then_the_rerun_sends_exactly_the_rest(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    """SIGKILL a concurrency-32 run three times while answers pour into the cache: the SQLite file stays
    intact, no killed run re-sends what was cached when it started, and the final rerun sends exactly
    the missing clips."""
    n = 400
    paths = write_clips(tmp_path / "clips", n)
    every = {sha_of(p) for p in paths}
    cache_dir = tmp_path / "cache"
    db = db_path(cache_dir)
    history = []
    url = local_server(latency=0.01)
    for k, grow_by in enumerate((40, 70, 100)):
        cached_before = cached_hashes(db) if db.exists() else Counter()
        stats_before = wait_idle(url)
        child = start_child(paths, url, cache_dir, tmp_path, f"killed{k}", concurrency=32)
        deadline = time.monotonic() + 60
        while count_entries(db) < len(cached_before) + grow_by and child.poll() is None:
            assert time.monotonic() < deadline, "the child stored nothing"
            time.sleep(0.002)
        child.kill()
        child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
        assert integrity(db) == "ok"
        cached_after = cached_hashes(db)
        sent = stats_delta(wait_idle(url), stats_before, "requests")
        history.append((len(cached_before), len(cached_after), sum(sent.values())))
        assert set(cached_after.values()) == {1}  # one answer per clip, never two
        assert set(cached_before) < set(cached_after) < every
        assert not set(sent) & set(cached_before), "a killed run re-sent a clip that was already cached"
        assert set(sent.values()) == {1}  # and sent each clip once
        assert set(cached_after) - set(cached_before) <= set(sent)
    survived = set(cached_hashes(db))
    stats_before = wait_idle(url)
    df = pd.DataFrame({"path": paths})
    client = stt_frames.Client(base_url=url)
    out = stt_frames.transcribe_column(
        df, model="fake/echo", client=client, cache=cache_dir, concurrency=32, progress=False
    )
    sent = stats_delta(wait_idle(url), stats_before, "requests")
    print("kills (cached before, cached after, sent):", history, "rerun sent:", sum(sent.values()))
    assert out["error"].isna().all() and out["text"].notna().all()
    assert sum(sent.values()) == n - len(survived)  # exact: the missing clips, each once
    assert set(sent) == every - survived
    assert int(out["cached"].sum()) == len(survived)
    assert set(out.loc[out["cached"].astype(bool), "path"].map(sha_of)) == survived
    assert integrity(db) == "ok" and set(cached_hashes(db)) == every


# --------------------------------------------------------------------------- a shared cache


def test_two_processes_share_one_cache_at_the_same_time(local_server: Callable[..., str], tmp_path: Path) -> None:
    """Two processes, overlapping DataFrames, one brand-new cache, started at the same instant."""
    paths = write_clips(tmp_path / "clips", 240)
    overlap, only_a, only_b = paths[:120], paths[120:180], paths[180:]
    rows_a = overlap + only_a
    rows_b = overlap[::2] + only_b + overlap[1::2]  # half the overlap raced head-on, half met later
    cache_dir = tmp_path / "shared-cache"  # does not exist yet: both create it
    go = tmp_path / "go"
    url = local_server(latency=0.01)
    children = [
        start_child(rows_a, url, cache_dir, tmp_path, "a", concurrency=16, go=go),
        start_child(rows_b, url, cache_dir, tmp_path, "b", concurrency=16, go=go),
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    results = [child.communicate(timeout=60) for child in children]
    for child, (stdout, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr[-2000:]
        assert json.loads(stdout)["errors"] == 0, stdout
    billed = Counter(wait_idle(url)["billed"])
    before_third = get_stats(url)["total_requests"]
    third = stt_frames.transcribe_column(
        pd.DataFrame({"path": rows_b}),
        model="fake/echo",
        client=stt_frames.Client(base_url=url),
        cache=cache_dir,
        progress=False,
    )
    after_third = get_stats(url)["total_requests"]
    db = db_path(cache_dir)
    assert integrity(db) == "ok"
    entries = cached_hashes(db)
    assert set(entries) == {sha_of(p) for p in paths} and set(entries.values()) == {1}
    out_a = stt_frames.read_results(tmp_path / "a.parquet")
    out_b = stt_frames.read_results(tmp_path / "b.parquet")
    for out, rows in ((out_a, rows_a), (out_b, rows_b)):
        assert list(out["path"]) == rows
        assert out["error"].isna().all() and out["text"].notna().all()
    text_a = dict(zip(out_a["path"], out_a["text"], strict=True))
    assert all(text_a[p] == t for p, t in zip(out_b["path"], out_b["text"], strict=True) if p in text_a)
    twice = sum(billed[sha_of(p)] == 2 for p in overlap)
    print(f"shared cache: {twice} of {len(overlap)} overlapping clips were sent by both processes")
    assert all(1 <= billed[sha_of(p)] <= 2 for p in overlap)
    assert all(billed[sha_of(p)] == 1 for p in only_a + only_b)
    assert third["cached"].all() and after_third == before_third  # the third run sends nothing


# --------------------------------------------------------------------------- a full disk, a read-only cache


@contextlib.contextmanager
def tiny_filesystem(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (root only); skips the test when it cannot be mounted."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small filesystem")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root")
    try:
        yield where
    finally:
        gc.collect()  # close SQLite connections left to the garbage collector
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of ``folder`` until ``leave`` bytes are free."""
    st = os.statvfs(folder)
    (folder / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


@pytest.mark.parametrize("given", ["path", "Cache object"])
def test_disk_full_mid_run_is_a_clear_error_and_loses_nothing(
    local_server: Callable[..., str], tmp_path: Path, given: str
) -> None:
    """The cache's disk fills up during a run: CacheError saying so, finished rows stay cached, the
    partial result accounts for every row, and once space is freed the rerun sends only what is missing."""
    # more answers than the 60 kB left can hold, however the WAL happens to be reused between commits
    paths = write_clips(tmp_path / "clips", 200)
    df = pd.DataFrame({"path": paths})
    url = local_server()
    with tiny_filesystem(tmp_path / "small", "256k") as small:
        client = stt_frames.Client(base_url=url)

        def run(frame: pd.DataFrame) -> pd.DataFrame:
            cache = Cache(small) if given == "Cache object" else small
            try:
                return stt_frames.transcribe_column(
                    frame, model="fake/echo", client=client, cache=cache, progress=False, concurrency=4
                )
            finally:
                if isinstance(cache, Cache):
                    cache.close()

        run(df.head(3))  # finished before the disk fills
        before = set(cached_hashes(db_path(small)))
        fill(small, leave=60_000)
        with pytest.raises(CacheError) as info:
            run(df)
        message = str(info.value)
        partial = info.value.partial  # type: ignore[attr-defined]
        stored = set(cached_hashes(db_path(small)))
        sent = sum(get_stats(url)["billed"].values())
        print(f"disk full: {message}")
        assert "disk is full" in message and "free disk space" in message
        assert "finished rows already stored are kept" in message
        assert before <= stored and len(stored) > len(before)  # some rows of this run were stored too
        shas = [sha_of(p) for p in paths]
        claimed = [sha for sha, e, t in zip(shas, partial["error"], partial["text"], strict=True) if pd.isna(e)]
        assert all(pd.notna(t) for t, e in zip(partial["text"], partial["error"], strict=True) if pd.isna(e))
        assert set(claimed) <= stored, "a row reported as finished is not in the cache"
        assert f"; {len(claimed)} finished rows are stored in the cache" in message
        for sha, text, error in zip(shas, partial["text"], partial["error"], strict=True):
            if sha in stored:
                assert pd.notna(text)
            elif pd.notna(text):  # answered but not stored: the row says why
                assert "cannot write to the cache" in error
            else:
                assert error.startswith("not run")
        # free the space: the rerun sends exactly what is not in the cache, and every row ends with text
        (small / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,size=8m", str(small)], check=True)  # room for the WAL to grow
        out = run(df)
        resent = sum(get_stats(url)["billed"].values()) - sent
    assert out["error"].isna().all() and out["text"].notna().all()
    assert resent == len(set(shas) - stored)
    assert int(out["cached"].sum()) == sum(sha in stored for sha in shas)


def test_disk_already_full_says_so_before_sending_anything(local_server: Callable[..., str], tmp_path: Path) -> None:
    paths = write_clips(tmp_path / "clips", 5)
    url = local_server()
    with tiny_filesystem(tmp_path / "small", "128k") as small:
        Cache(small).close()  # an existing cache, on a disk that is now full
        fill(small, leave=0)
        with pytest.raises(CacheError) as info:
            stt_frames.transcribe_column(
                pd.DataFrame({"path": paths}),
                model="fake/echo",
                client=stt_frames.Client(base_url=url),
                cache=small,
                progress=False,
            )
        requests = get_stats(url)["total_requests"]
    print(f"disk already full: {info.value}")
    assert str(small) in str(info.value) and "disk is full" in str(info.value)
    assert requests == 0


def test_read_only_cache_is_a_clear_error_before_anything_is_sent(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    """A cache on a filesystem remounted read-only (chmod does not stop root; a read-only mount does)."""
    paths = write_clips(tmp_path / "clips", 4)
    df = pd.DataFrame({"path": paths})
    url = local_server()
    with tiny_filesystem(tmp_path / "ro", "8m") as ro:
        client = stt_frames.Client(base_url=url)
        stt_frames.transcribe_column(df.head(2), model="fake/echo", client=client, cache=ro, progress=False)
        sent = get_stats(url)["total_requests"]
        remount = subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        with pytest.raises(OSError, match="Read-only"):
            (ro / "probe").write_text("x")  # the mount really is read-only, even for root
        with pytest.raises(CacheError) as info:
            stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=ro, progress=False)
        after = get_stats(url)["total_requests"]
    print(f"read-only cache: {info.value}")
    assert str(ro) in str(info.value) and "not writable" in str(info.value)
    assert "cache=False" in str(info.value)  # says how to go on without it
    assert after == sent  # refused before any request: nothing paid for and then lost


def test_cache_dir_under_a_regular_file_is_a_clear_error(
    local_server: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("STT_FRAMES_CACHE_DIR", str(blocker / "cache"))
    url = local_server()
    with pytest.raises(CacheError, match="cannot create the cache directory") as info:
        stt_frames.transcribe_column(
            pd.DataFrame({"path": write_clips(tmp_path / "clips", 2)}),
            model="fake/echo",
            client=stt_frames.Client(base_url=url),
            progress=False,
        )
    assert get_stats(url)["total_requests"] == 0
    assert "STT_FRAMES_CACHE_DIR" in str(info.value) and str(blocker) in str(info.value)


# --------------------------------------------------------------------------- bad inputs, bad answers


@dataclass(frozen=True)
class Bad:
    """One bad row or bad answer: the cell value (built in a temp dir), the server's scripted replies
    (none: the real local server answers), the text expected in ``error``, the exception on_error="raise" gives,
    and options for transcribe_column."""

    value: Callable[[Path], Any]
    error: str
    exc: type[Exception]
    replies: tuple[Reply, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


def _file(name: str, content: bytes) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        (tmp / name).write_bytes(content)
        return str(tmp / name)

    return make


def _clip(tmp: Path) -> str:
    return _file("fresh.wav", make_clip(99))(tmp)


HTML = b"<!DOCTYPE html><html><body>Sign in</body></html>"
BAD: dict[str, Bad] = {
    "nan": Bad(lambda t: float("nan"), "missing value (None/NaN) instead of a path", errors.AudioError),
    "none": Bad(lambda t: None, "missing value (None/NaN) instead of a path", errors.AudioError),
    "pd.NA": Bad(lambda t: pd.NA, "missing value (None/NaN) instead of a path", errors.AudioError),
    "int": Bad(
        lambda t: 42,
        "expected a path, URL, bytes, an audio dict or an array of samples, got int: 42",
        errors.AudioError,
    ),
    "blank": Bad(lambda t: "  ", "empty or non-text path", errors.AudioError),
    "missing": Bad(lambda t: str(t / "nope.wav"), "nope.wav: file not found", errors.AudioError),
    "directory": Bad(lambda t: str(t), "is a directory, not an audio file", errors.AudioError),
    "empty": Bad(_file("empty.wav", b""), "empty.wav: file is empty", errors.AudioError),
    "extension": Bad(_file("notes.txt", b"hello"), "unsupported file extension '.txt'", errors.AudioError),
    "lying-extension": Bad(_file("clip.mp3", make_clip(7)), "labelled mp3 but the bytes are wav", errors.AudioError),
    "not-audio": Bad(_file("text.wav", b"just text " * 20), "not a recognisable wav file", errors.AudioError),
    "too-large": Bad(  # chunking off: refused before upload (with chunking on it is cut: see below)
        _file("big.wav", make_clip(8, seconds=4.0)),
        "big.wav: file is 0.1 MiB, over max_upload_bytes=100,000 (0.1 MiB); set chunk_seconds",
        errors.AudioError,
        options={"chunk_seconds": None, "max_upload_bytes": 100_000},
    ),
    "undecodable": Bad(
        _file("garbage.wav", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 4),
        "400: input_audio.data cannot be decoded as wav",
        errors.BadRequestError,
    ),
    "html-200": Bad(
        _clip, "HTML page instead of JSON", errors.MalformedResponseError, (Reply.raw(200, HTML, "text/html"),)
    ),
    "cut-json-200": Bad(
        _clip,
        "cut-off or invalid JSON",
        errors.MalformedResponseError,
        (Reply.raw(200, b'{"text": "hel', "application/json"),),
    ),
    "no-text-200": Bad(_clip, "no 'text' field", errors.MalformedResponseError, (Reply.json({"transcript": "hi"}),)),
    "usage-type-200": Bad(
        _clip,
        "usage.cost should be a number, got str",
        errors.MalformedResponseError,
        (Reply.json({"text": "hi", "usage": {"cost": "0.01"}}),),
    ),
    "empty-200": Bad(
        _clip, "empty body instead of JSON", errors.MalformedResponseError, (Reply.raw(200, b"", "application/json"),)
    ),
    "html-502-retried": Bad(
        _clip,
        "502: the server answered 502 with an HTML page",
        errors.BadGatewayError,
        (Reply.raw(502, HTML, "text/html"),) * 3,
    ),
    "429-retried": Bad(
        _clip,
        "429: slow down",
        errors.RateLimitError,
        (Reply.error(429, "slow down", headers={"retry-after-ms": "10"}),) * 3,
    ),
}


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedServer, str]]:
    app = ScriptedServer()
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def local_url(local_server: Callable[..., str]) -> str:
    return local_server()


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("on_error", ["record", "raise"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_rows_and_bad_answers(
    case: str, on_error: str, tmp_path: Path, scripted: tuple[ScriptedServer, str], local_url: str
) -> None:
    bad = BAD[case]
    app, scripted_url = scripted
    app.reset()
    app.script(*bad.replies)
    url = scripted_url if bad.replies else local_url
    good = _file("good.wav", make_clip(1))(tmp_path)
    df = pd.DataFrame({"path": [bad.value(tmp_path), good]}, index=["bad", "good"])
    client = stt_frames.Client(base_url=url, max_retries=2)
    run = functools.partial(
        stt_frames.transcribe_column, df, model="fake/echo", client=client, progress=False, concurrency=1, **bad.options
    )
    if on_error == "raise":
        with pytest.raises(bad.exc) as info:
            run(on_error="raise")
        assert bad.error in str(info.value)
        partial = info.value.partial  # type: ignore[attr-defined]
        assert bad.error in partial.loc["bad", "error"] and pd.isna(partial.loc["bad", "text"])
        return
    out = run()
    error = out.loc["bad", "error"]
    assert isinstance(error, str) and bad.error in error, error
    for column in ("text", "seconds", "cost", "input_tokens", "latency_s"):
        assert pd.isna(out.loc["bad", column]), column
    assert not out.loc["bad", "cached"]
    assert pd.isna(out.loc["good", "error"]) and isinstance(out.loc["good", "text"], str)  # the run went on
    if bad.replies:
        assert len(app.requests) == len(bad.replies) + 1  # retried exactly as often as scripted, then the good row
        assert app.pending == 0


def test_too_large_file_is_refused_before_upload_without_chunking_and_chunked_with_it(
    tmp_path: Path, local_url: str
) -> None:
    """The "too-large" file above: nothing is sent with ``chunk_seconds=None``; with chunking on (the
    default) it goes as two chunks, each under ``max_upload_bytes``, and comes back as one row."""
    big = _file("big.wav", make_clip(8, seconds=4.0))(tmp_path)
    df = pd.DataFrame({"path": [big]})
    client = stt_frames.Client(base_url=local_url)
    run = functools.partial(
        stt_frames.transcribe_column, df, model="fake/echo", client=client, progress=False, max_upload_bytes=100_000
    )
    before = get_stats(local_url)
    off = run(chunk_seconds=None)
    middle = get_stats(local_url)
    on = run()
    after = get_stats(local_url)
    assert Path(big).stat().st_size > 100_000
    assert "over max_upload_bytes=100,000" in off.loc[0, "error"] and pd.isna(off.loc[0, "text"])
    assert middle["total_requests"] == before["total_requests"]  # refused before anything was uploaded
    assert pd.isna(on.loc[0, "error"]) and isinstance(on.loc[0, "text"], str) and on.loc[0, "text"]
    assert on.loc[0, "chunks"] == 2
    sent = stats_delta(after, middle, "requests")
    assert sum(sent.values()) == 2 and sha_of(big) not in sent  # two chunks, the file itself never whole
    info = on.attrs["stt_frames"]
    assert info["requests"] == 2 and 0 < info["uploaded_bytes"] <= 2 * 100_000
