"""transcribe_column against the real local server: columns, cache, resume, dedup, faults, cap, errors."""

from __future__ import annotations

import _thread
import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import stt_frames
from stt_frames.frame import Interrupted
from stt_frames.results import RESULT_COLUMNS
from stt_frames.server import get_stats

pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

DATA = Path(__file__).resolve().parent.parent / "data"
CANARY = "sk-or-canary-7f3e9a1c5b"


def samples(n: int | None = None, formats: tuple[str, ...] = ("wav", "flac")) -> pd.DataFrame:
    df = pd.read_csv(DATA / "samples.csv")
    df = df[df["format"].isin(formats)].reset_index(drop=True)
    df["path"] = [str(DATA / p) for p in df["path"]]
    return df.head(n) if n else df


def billed(base_url: str) -> dict[str, int]:
    return get_stats(base_url)["billed"]


def run(df: pd.DataFrame, base_url: str, **kw: object) -> pd.DataFrame:
    kw.setdefault("model", "fake/echo")
    kw.setdefault("progress", False)
    return stt_frames.transcribe_column(df, column="path", client=stt_frames.Client(base_url=base_url), **kw)


def test_columns_dtypes_index_and_order(server: str) -> None:
    df = samples().iloc[::-1]
    df.index = [f"clip-{i}" for i in range(len(df))]
    before = df.copy()
    out = run(df, server)
    pd.testing.assert_frame_equal(df, before)  # the input is untouched
    assert list(out.index) == list(df.index)
    assert list(out["path"]) == list(df["path"])
    for name, (dtype, _) in RESULT_COLUMNS.items():
        assert str(out[name].dtype) == dtype, name
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    assert out["text"].str.startswith("echo ").all()
    # fake/echo derives its text from the audio hash: distinct files get distinct text
    assert out["text"].nunique() == len(df)
    assert (out["seconds"] > 1).all() and (out["seconds_source"] == "server").all()
    assert (out["cost"] > 0).all() and not out["cached"].any()
    assert (out["total_tokens"] == out["input_tokens"] + out["output_tokens"]).all()
    assert (out["latency_s"] > 0).all()


def test_rerun_is_cached_and_sends_nothing(server: str) -> None:
    df = samples(6)
    first = run(df, server)
    assert sum(billed(server).values()) == 6
    second = run(df, server)
    assert second["cached"].all()
    assert sum(billed(server).values()) == 6  # nothing sent again
    pd.testing.assert_series_equal(first["text"], second["text"])
    pd.testing.assert_series_equal(first["cost"], second["cost"])


def test_identical_audio_is_sent_once(server: str, tmp_path: Path) -> None:
    src = samples(2)["path"].tolist()
    copy = tmp_path / "same_as_first.wav"
    copy.write_bytes(Path(src[0]).read_bytes())
    df = pd.DataFrame({"path": [src[0], src[1], src[0], str(copy), src[1]]})
    out = run(df, server)
    assert out["error"].isna().all()
    stats = billed(server)
    assert sorted(stats.values()) == [1, 1]  # two distinct audios, each billed once
    assert out["text"].iloc[0] == out["text"].iloc[2] == out["text"].iloc[3]


def test_bad_rows_are_recorded_and_the_run_goes_on(server: str, tmp_path: Path) -> None:
    good = samples(1)["path"].iloc[0]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.mp3").write_bytes(Path(good).read_bytes())  # WAV bytes named .mp3
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 4)
    (tmp_path / "big.wav").write_bytes(Path(good).read_bytes() * 3)
    rows = {
        "nan": float("nan"),
        "none": None,
        "int": 42,
        "missing": str(tmp_path / "nope.wav"),
        "dir": str(tmp_path),
        "empty": str(tmp_path / "empty.wav"),
        "ext": str(tmp_path / "notes.txt"),
        "mismatch": str(tmp_path / "fake.mp3"),
        "undecodable": str(tmp_path / "garbage.wav"),
        "big": str(tmp_path / "big.wav"),
        "good": good,
    }
    df = pd.DataFrame({"path": list(rows.values())}, index=list(rows))
    client = stt_frames.Client(base_url=server)
    out = stt_frames.transcribe_column(
        df,
        model="fake/echo",
        client=client,
        progress=False,
        chunk_seconds=None,  # no chunking: a file over max_upload_bytes is an error before any upload
        max_upload_bytes=len(Path(good).read_bytes()) * 2,
    )
    err = out["error"]
    expected = {
        "nan": "missing value",
        "none": "missing value",
        "int": "expected a path, URL, bytes, an audio dict or an array of samples, got int",
        "missing": "file not found",
        "dir": "is a directory",
        "empty": "file is empty",
        "ext": "unsupported file extension '.txt'",
        "mismatch": "labelled mp3 but the bytes are wav",
        "undecodable": "400",
        "big": "big.wav: file is 0.4 MiB, over max_upload_bytes=",
    }
    for name, text in expected.items():
        assert isinstance(err[name], str) and text in err[name], (name, err[name])
        assert pd.isna(out.loc[name, "text"])
    assert pd.isna(err["good"]) and out.loc["good", "text"].startswith("echo")


def test_works_inside_a_running_event_loop(server: str) -> None:
    df = samples(3)

    async def notebook_cell() -> pd.DataFrame:
        # what Jupyter does: the sync call happens while a loop is running in this thread
        return run(df, server)

    out = asyncio.run(notebook_cell())
    assert out["error"].isna().all() and len(out) == 3


def test_the_awaitable_twin(server: str) -> None:
    df = samples(3)

    async def main() -> pd.DataFrame:
        async with stt_frames.AsyncClient(base_url=server) as client:
            return await stt_frames.atranscribe_column(df, model="fake/echo", client=client, progress=False)

    out = asyncio.run(main())
    assert out["text"].notna().all()


def test_faults_every_good_row_succeeds_and_nothing_is_billed_twice(local_server: Callable[..., str]) -> None:
    # error statuses are answers: retried as often as max_retries allows. Lost answers ("drop") are sent
    # at most twice, which tests/test_long_audio.py covers.
    df = samples()
    url = local_server(fail_rate=0.3, seed=7, faults=("429", "500", "502", "503"))
    out = stt_frames.transcribe_column(
        df,
        model="fake/echo",
        client=stt_frames.Client(base_url=url, max_retries=8),
        progress=False,
        concurrency=8,
    )
    stats = get_stats(url)
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    assert sum(stats["faults"].values()) > 0, stats["faults"]
    assert max(stats["billed"].values()) == 1 and len(stats["billed"]) == len(df)


def test_rate_limits_slow_the_run_down_and_it_finishes(local_server: Callable[..., str]) -> None:
    df = samples()
    url = local_server(fail_rate=0.5, seed=3, faults=("429",), retry_after=0.05)
    client = stt_frames.Client(base_url=url, max_retries=12)
    out = stt_frames.transcribe_column(df, model="fake/echo", client=client, progress=False, concurrency=16)
    stats = get_stats(url)
    assert out["error"].isna().all()
    assert stats["faults"].get("429", 0) > 0


def test_spending_cap_stops_new_requests(server: str) -> None:
    df = samples()
    price_per_clip = run(df.head(1), server, cache=False)["cost"].iloc[0]
    cap = price_per_clip * 4.5
    before = get_stats(server)["cost"]
    out = run(df, server, max_cost=cap, concurrency=4, cache=False)
    spent = get_stats(server)["cost"] - before
    assert spent <= cap + 1e-12
    not_sent = out["error"].dropna()
    assert len(not_sent) > 0 and not_sent.str.contains("max_cost").all()
    assert out["text"].notna().sum() >= 3  # it spent most of the budget before stopping


def test_401_aborts_at_once_with_a_clear_error(local_server: Callable[..., str]) -> None:
    df = samples(8)
    url = local_server(api_key="right-key")
    client = stt_frames.Client(base_url=url, api_key=CANARY)
    with pytest.raises(stt_frames.AuthenticationError) as info:
        stt_frames.transcribe_column(df, model="fake/echo", client=client, progress=False, concurrency=1)
    stats = get_stats(url, api_key="right-key")
    assert "OPENROUTER_API_KEY" in str(info.value) and CANARY not in str(info.value)
    assert stats["total_requests"] == 1  # stopped after the first answer
    assert len(info.value.partial) == 8  # type: ignore[attr-defined]


def test_unknown_model_aborts(server: str) -> None:
    with pytest.raises(stt_frames.NotFoundError, match="404"):
        run(samples(2), server, model="nobody/nothing")


def test_parquet_round_trip_and_no_key_anywhere(
    local_server: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    cache_dir = tmp_path / "cache"
    url = local_server(api_key=CANARY)
    df = samples(4)
    target = tmp_path / "out.parquet"
    out = stt_frames.transcribe_column(
        df,
        model="fake/echo",
        client=stt_frames.Client(base_url=url),
        cache=cache_dir,
        output=target,
        progress=False,
    )
    back = stt_frames.read_results(target)
    pd.testing.assert_frame_equal(back, out)
    meta = back.attrs["stt_frames"]
    assert meta["model"] == "fake/echo" and meta["stt_frames_version"] == stt_frames.__version__
    assert "created_at" in meta and meta["rows"] == 4
    for f in [target, *cache_dir.iterdir()]:
        assert CANARY.encode() not in f.read_bytes(), f


def test_language_column_and_refresh(server: str) -> None:
    df = samples(2)
    df["lang"] = ["en", "fr"]
    run(df, server, language_column="lang")
    run(df, server, language="de")  # another language is another request
    assert sorted(billed(server).values()) == [2, 2]
    out = run(df, server, language="de", refresh=True)
    assert not out["cached"].any() and sorted(billed(server).values()) == [3, 3]


def test_fast_path_does_not_rehash_unchanged_files(server: str, tmp_path: Path) -> None:
    src = Path(samples(1)["path"].iloc[0])
    clip = tmp_path / "clip.wav"
    clip.write_bytes(src.read_bytes())
    first = run(pd.DataFrame({"path": [str(clip)]}), server)
    st = clip.stat()
    data = bytearray(clip.read_bytes())
    data[-1] ^= 0xFF  # same size, other content, same mtime: the fast path trusts (path, size, mtime)
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = run(pd.DataFrame({"path": [str(clip)]}), server)
    assert again["cached"].all() and again["text"].iloc[0] == first["text"].iloc[0]
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # touched: hashed again
    changed = run(pd.DataFrame({"path": [str(clip)]}), server)
    assert not changed["cached"].any() and changed["text"].iloc[0] != first["text"].iloc[0]


def test_files_that_recur_across_planning_batches_are_sent_once_and_answer_every_row(server: str) -> None:
    """Rows are planned in batches (256 first, then 2,048): a file seen again in a later batch joins
    the first row's request, and on a rerun the first row's cached answer."""
    files = samples(3)["path"].tolist()
    df = pd.DataFrame({"path": [files[i % 3] for i in range(2 * 2048 + 300)]})
    first = run(df, server)
    assert first["error"].isna().all()
    assert sorted(billed(server).values()) == [1, 1, 1]
    by_file = dict(zip(first["path"], first["text"], strict=True))
    assert len(set(by_file.values())) == 3
    assert (first["text"] == first["path"].map(by_file)).all()
    again = run(df, server)
    assert again["cached"].all() and sorted(billed(server).values()) == [1, 1, 1]
    pd.testing.assert_series_equal(first["text"], again["text"])
    assert again["seconds"].sum() == pytest.approx(first["seconds"].sum())


def test_a_damaged_cache_entry_is_sent_again_and_the_rest_stay_cached(server: str, tmp_path: Path) -> None:
    df = samples(3)
    cache_dir = tmp_path / "cache"
    first = run(df, server, cache=cache_dir)
    with sqlite3.connect(cache_dir / "cache.sqlite3") as db:
        (key,) = db.execute("SELECT key FROM responses ORDER BY key LIMIT 1").fetchone()
        db.execute("UPDATE responses SET response = ? WHERE key = ?", ('{"text": "cut off', key))
    db.close()
    again = run(df, server, cache=cache_dir)
    assert again["error"].isna().all()
    assert again["cached"].sum() == 2 and sum(billed(server).values()) == 4  # the damaged one only
    pd.testing.assert_series_equal(first["text"], again["text"])
    third = run(df, server, cache=cache_dir)
    assert third["cached"].all() and sum(billed(server).values()) == 4  # stored again, whole


def test_cache_helpers(server: str) -> None:
    run(samples(3), server)
    info = stt_frames.cache_info()
    assert info["entries"] == 3 and info["models"] == {"fake/echo": 3}
    assert Path(info["path"]).parent == Path(os.environ["STT_FRAMES_CACHE_DIR"])
    assert stt_frames.clear_cache(model="other/model") == 0
    assert stt_frames.clear_cache() == 3
    assert stt_frames.cache_info()["entries"] == 0


def test_interrupt_keeps_finished_rows_and_resume_sends_only_the_rest(local_server: Callable[..., str]) -> None:
    df = samples()
    url = local_server(latency=0.3)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(Interrupted) as info:
            run(df, url, concurrency=2)
    finally:
        timer.cancel()
    partial = info.value.partial
    done = int(partial["text"].notna().sum())
    assert 0 < done < len(df), done
    assert "run the same call again" in str(info.value)
    sent_before = get_stats(url)["total_requests"]
    out = run(df, url, concurrency=8)
    sent_after = get_stats(url)["total_requests"]
    assert out["error"].isna().all()
    assert out["cached"].sum() >= done
    # the rerun sent only rows that had not finished (requests in flight at the interrupt were lost)
    assert sent_after - sent_before == len(df) - int(out["cached"].sum())


CHILD = """
import sys, pandas as pd, stt_frames
df = pd.read_pickle(sys.argv[1])
stt_frames.transcribe_column(df, model="fake/echo", client=stt_frames.Client(base_url=sys.argv[2]),
                             progress=False, concurrency=2)
"""


def test_kill_9_mid_run_then_rerun_sends_only_what_is_missing(local_server: Callable[..., str], tmp_path: Path) -> None:
    df = samples()
    pickle = tmp_path / "df.pkl"
    df.to_pickle(pickle)
    db = Path(os.environ["STT_FRAMES_CACHE_DIR"]) / "cache.sqlite3"
    url = local_server(latency=0.25)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(pickle), url])
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline and stored < 4:
        time.sleep(0.1)
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    stored = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
    child.kill()
    child.wait(timeout=10)
    assert stored >= 4, "the child never stored answers"
    with sqlite3.connect(db) as con:
        survived = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert survived < len(df)
    sent_before = get_stats(url)["total_requests"]
    out = run(df, url, concurrency=8)
    sent_after = get_stats(url)["total_requests"]
    assert out["error"].isna().all()
    assert int(out["cached"].sum()) == survived
    assert sent_after - sent_before == len(df) - survived


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"column": "nope"}, "column 'nope' is not in the DataFrame"),
        ({"model": ""}, "model must be a model id"),
        ({"concurrency": 0}, "concurrency must be a whole number >= 1"),
        ({"max_cost": -1}, "max_cost must be a number of USD >= 0"),
        ({"on_error": "ignore"}, "on_error must be 'record' or 'raise'"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"language": 5}, "language must be an ISO-639-1 code"),
        ({"language_column": "lang"}, "language_column 'lang' is not a column"),
    ],
)
def test_bad_arguments_say_what_is_wrong_and_send_nothing(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"column": "path", "model": "fake/echo", "progress": False, **kwargs}
    df = pd.DataFrame({"path": ["a.wav"]})
    with pytest.raises((ValueError, KeyError), match=message):
        stt_frames.transcribe_column(df, **args)  # type: ignore[arg-type]


def test_402_out_of_credits_stops_the_run_after_storing_finished_rows(local_server: Callable[..., str]) -> None:
    df = samples(8)
    url = local_server(fail_rate=0.3, seed=2, faults=("402",))
    with pytest.raises(stt_frames.PaymentRequiredError) as info:
        run(df, url, concurrency=1)
    stats = get_stats(url)
    assert "402" in str(info.value) and "add credits" in str(info.value)
    assert stats["faults"] == {"402": 1}  # stopped at the first 402: nothing sent after it
    partial = info.value.partial  # type: ignore[attr-defined]
    done = int(partial["text"].notna().sum())
    assert 1 <= done == stats["total_billed"] and f"{done} finished rows are stored" in str(info.value)
    assert stt_frames.cache_info()["entries"] == done
