"""A cluster run: two worker processes, a shared cache on a real (moto) S3, one budget, one bill per audio."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

import stt_frames
from stt_frames.server import get_stats

dd = pytest.importorskip("dask.dataframe", reason="needs the 'dask' extra")
distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")
pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

import stt_frames.dask  # noqa: E402  (after the skips: it needs dask)
from stt_frames.cache_store import ObjectCache  # noqa: E402

PRICE = 0.06  # USD per audio minute: each 0.5 s clip costs $0.0005
CLIP_SECONDS = 0.5
DISTINCT, DUPLICATES = 180, 20  # 200 rows, 10% of them the same audio as a row of another partition


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_options() -> Iterator[dict[str, object]]:
    """A real S3 API (moto) on loopback with one bucket, ``cache``; yields fsspec storage_options."""
    pytest.importorskip("s3fs", reason="needs the 'remote' extra")
    server_mod = pytest.importorskip("moto.server", reason="needs moto[server] (dev extra)")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="cache")  # fmt: skip
    yield {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    server.stop()


def clips(folder: Path, wav_factory: Callable[..., bytes]) -> pd.DataFrame:
    """200 rows: 180 distinct clips, and 20 copies (other paths, same bytes) placed in other partitions."""
    folder.mkdir()
    paths = []
    for i in range(DISTINCT):
        p = folder / f"clip-{i:03d}.wav"
        p.write_bytes(wav_factory(CLIP_SECONDS, freq=200 + 7 * i))
        paths.append(str(p))
    for j in range(DUPLICATES):
        source = paths[j * 9]  # spread over the partitions; the copy lands far away, at the end
        copy = folder / f"copy-{j:02d}.wav"
        shutil.copyfile(source, copy)
        paths.append(str(copy))
    return pd.DataFrame({"path": paths}, index=[f"row-{i:03d}" for i in range(len(paths))])


def cluster() -> distributed.LocalCluster:
    return distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_cluster_bills_each_audio_once_keeps_one_cap_and_reruns_from_s3_for_nothing(
    local_server: Callable[..., str], wav_factory: Callable[..., bytes], tmp_path: Path, s3_options: dict[str, object]
) -> None:
    df = clips(tmp_path / "clips", wav_factory)
    ddf = dd.from_pandas(df, npartitions=8)
    url = local_server(prices={"fake/echo": PRICE}, latency=0.02)
    cache = ObjectCache("s3://cache/run", storage_options=s3_options)
    total = DISTINCT * CLIP_SECONDS / 60 * PRICE
    cap = total / 2
    options = {"model": "fake/echo", "client": stt_frames.Client(base_url=url), "cache": cache, "concurrency": 8}
    with cluster() as c, distributed.Client(c):
        capped = stt_frames.dask.transcribe(ddf, max_cost=cap, **options).compute()
        stats = get_stats(url)
        # one cap for the cluster: 8 partitions capped on their own would have spent everything
        assert stats["cost"] <= cap + 1e-9, (stats["cost"], cap)
        assert stats["cost"] >= cap - 8 * 2 * total / DISTINCT  # it got near the cap: at most a few rows short
        assert set(stats["billed"].values()) == {1}  # each distinct audio billed once
        refused = capped["error_type"].eq("BudgetExceededError")
        assert refused.any() and capped["error"].notna().sum() == refused.sum()
        assert list(capped.index) == list(df.index)

        # the rest, on the same cluster without a cap: still each audio billed once in all
        full = stt_frames.dask.transcribe(ddf, **options).compute()
        stats = get_stats(url)
        assert full["error"].isna().all(), full["error"].dropna().unique()[:3]
        assert len(stats["billed"]) == DISTINCT and set(stats["billed"].values()) == {1}
        assert stats["total_requests"] == DISTINCT
        assert stats["cost"] == pytest.approx(total)
        copies = full.iloc[DISTINCT:]
        originals = full.loc[[f"row-{j * 9:03d}" for j in range(DUPLICATES)]]
        assert copies["text"].tolist() == originals["text"].tolist()  # duplicates got their original's answer
        stt_frames.dask.to_parquet(stt_frames.dask.transcribe(ddf, **options), tmp_path / "out")
    sent = get_stats(url)["total_requests"]
    assert sent == DISTINCT

    # a fresh cluster: everything comes from the S3 cache, nothing is sent
    with cluster() as c, distributed.Client(c):
        again = stt_frames.dask.transcribe(ddf, **options).compute()
    assert get_stats(url)["total_requests"] == sent
    assert again["cached"].all() and again["error"].isna().all()
    assert again["text"].tolist() == full["text"].tolist()
    assert cache.info()["entries"] == DISTINCT

    back = stt_frames.read_results(tmp_path / "out")
    assert back.attrs["stt_frames"]["model"] == "fake/echo" and back.attrs["stt_frames"]["requests"] == 0
    assert sorted(back.index) == sorted(df.index)
    assert back.loc[df.index, "text"].tolist() == full["text"].tolist()
    one_machine = stt_frames.transcribe_column(df.head(3), model="fake/echo", client=options["client"], cache=cache,
                                               progress=False, output=tmp_path / "one.parquet")  # fmt: skip
    assert get_stats(url)["total_requests"] == sent  # the one-machine path reads the same S3 cache
    assert one_machine["cached"].all()
    import pyarrow.parquet as pq

    assert pq.read_schema(tmp_path / "one.parquet").remove_metadata() == (
        pq.ParquetDataset(tmp_path / "out").schema.remove_metadata()
    )
    duckdb = pytest.importorskip("duckdb")
    [(n, cost)] = duckdb.sql(f"SELECT count(*), sum(cost) FROM read_parquet('{tmp_path / 'out'}/*.parquet')").fetchall()
    assert n == len(df) and cost == pytest.approx(full["cost"].sum())
