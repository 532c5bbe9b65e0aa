"""stt_frames.dask: partitions transcribed on a real two-process LocalCluster against the local server."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

import stt_frames
from stt_frames.errors import MissingExtraError
from stt_frames.results import RESULT_COLUMNS
from stt_frames.server import get_stats

dd = pytest.importorskip("dask.dataframe", reason="needs the 'dask' extra")
distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")
pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

import stt_frames.dask  # noqa: E402  (after the skips: it needs dask)

DATA = Path(__file__).resolve().parent.parent / "data"


def samples(n: int = 24) -> pd.DataFrame:
    df = pd.read_csv(DATA / "samples.csv").head(n)
    df["path"] = [str(DATA / p) for p in df["path"]]
    df.index = [f"clip-{i:02d}" for i in range(len(df))]  # a non-default index must survive
    return df


def test_the_module_is_a_submodule_and_does_not_shadow_dask() -> None:
    import dask

    assert stt_frames.dask.__name__ == "stt_frames.dask"
    assert dask.__name__ == "dask" and Path(dask.__file__).parent.name == "dask"
    assert "stt_frames" not in Path(dask.__file__).parts


def test_meta_is_the_input_plus_the_result_columns_and_nothing_runs(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    ddf = dd.from_pandas(samples(8), npartitions=2)
    url = local_server()
    out = stt_frames.dask.transcribe(
        ddf, model="fake/echo", client=stt_frames.Client(base_url=url), cache=tmp_path, prefix="m1_"
    )
    assert get_stats(url)["total_requests"] == 0  # lazy: nothing sent yet
    assert list(out.columns) == [*ddf.columns, *(f"m1_{name}" for name in RESULT_COLUMNS)]
    for name, (dtype, _) in RESULT_COLUMNS.items():
        assert str(out.dtypes[f"m1_{name}"]) == dtype, name
    assert out.npartitions == 2


def test_bad_arguments_fail_at_once() -> None:
    ddf = dd.from_pandas(samples(4), npartitions=2)
    with pytest.raises(KeyError, match="column 'audio' is not in the DataFrame"):
        stt_frames.dask.transcribe(ddf, "audio", model="fake/echo")
    with pytest.raises(KeyError, match="language_column 'lang'"):
        stt_frames.dask.transcribe(ddf, model="fake/echo", language_column="lang")
    with pytest.raises(TypeError, match=r"output=.*to_parquet"):
        stt_frames.dask.transcribe(ddf, model="fake/echo", output="x.parquet")
    with pytest.raises(TypeError, match=r"expected a dask\.dataframe\.DataFrame"):
        stt_frames.dask.transcribe(samples(2), model="fake/echo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model must be"):
        stt_frames.dask.transcribe(ddf, model=" ")
    with pytest.raises(ValueError, match="chunk_seconds must be"):
        stt_frames.dask.transcribe(ddf, model="fake/echo", chunk_seconds=0)
    with pytest.raises(ValueError, match="upload_format must be one of"):
        stt_frames.dask.transcribe(ddf, model="fake/echo", upload_format="mp3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be"):
        stt_frames.dask.transcribe(ddf, model="fake/echo", timeout=-1)
    with pytest.raises(TypeError, match="concurrencyy"):  # a misspelt option fails here, not on every worker
        stt_frames.dask.transcribe(ddf, model="fake/echo", concurrencyy=4)


def test_each_partition_is_identified_once(
    local_server: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send and assemble passes share one identify task per partition: no file is hashed twice there."""
    import dask

    calls: list[int] = []
    identify = stt_frames.dask.identify_partition

    def counting(part: pd.DataFrame, *args: object) -> pd.DataFrame:
        calls.append(len(part))
        return identify(part, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(stt_frames.dask, "identify_partition", counting)
    url = local_server()
    ddf = dd.from_pandas(samples(12), npartitions=3)
    out = stt_frames.dask.transcribe(ddf, model="fake/echo", client=stt_frames.Client(base_url=url), cache=tmp_path)
    with dask.config.set(scheduler="sync"):
        result = out.compute()
    assert result["error"].isna().all() and len(result) == 12
    assert sorted(calls) == [4, 4, 4]


def test_a_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    ddf = dd.from_pandas(samples(2), npartitions=1)
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)  # import dask.dataframe now fails
    with pytest.raises(MissingExtraError, match=r"stt-frames\[dask\]"):
        stt_frames.dask.transcribe(ddf, model="fake/echo")


def test_the_map_partitions_recipe_in_the_docstring_works(
    local_server: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dask.dataframe.utils import make_meta

    from stt_frames.results import empty_results

    ddf = dd.from_pandas(samples(6), npartitions=3)
    meta = make_meta(ddf)
    meta = meta.assign(**empty_results(meta.index))
    url = local_server()
    monkeypatch.setenv("OPENROUTER_BASE_URL", url)  # the recipe takes the endpoint from the environment
    out = ddf.map_partitions(
        stt_frames.transcribe_column, column="path", model="fake/echo", progress=False,
        cache=str(tmp_path), meta=meta,
    ).compute(scheduler="sync")  # fmt: skip
    assert out["error"].isna().all() and len(out) == 6


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_two_process_cluster_transcribes_each_clip_once_and_reruns_from_cache(
    local_server: Callable[..., str], tmp_path: Path
) -> None:
    df = samples(24)
    ddf = dd.from_pandas(df, npartitions=4)
    cache = tmp_path / "shared-cache"  # one cache for both worker processes, passed explicitly
    url = local_server()
    with (
        distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        client = stt_frames.Client(base_url=url)
        options = {"model": "fake/echo", "client": client, "cache": cache, "language_column": "language"}
        out = stt_frames.dask.transcribe(ddf, **options)
        with distributed.get_task_stream(dask_client) as stream:
            first = out.compute()
        # both worker processes transcribed partitions, against the one shared cache
        workers = {task["worker"] for task in stream.data if "assemble_partition" in str(task["key"])}
        assert len(workers) == 2, stream.data

        assert list(first.index) == list(df.index)  # order and labels kept (Dask may retype the index)
        assert first["error"].isna().all(), first["error"].dropna().tolist()
        assert first["text"].str.startswith("echo ").all() and not first["cached"].any()
        stats = get_stats(url)
        assert len(stats["billed"]) == 24 and set(stats["billed"].values()) == {1}  # each clip billed once
        sent = stats["total_requests"]

        again = stt_frames.dask.transcribe(ddf, **options).compute()
        assert again["cached"].all()
        assert get_stats(url)["total_requests"] == sent  # nothing sent again

        out.to_parquet(tmp_path / "transcripts")
        back = pd.read_parquet(tmp_path / "transcripts")
    assert len(back) == 24 and sorted(back.index) == sorted(df.index)
    assert back.loc[df.index, "text"].tolist() == first["text"].tolist()
    for name, (dtype, _) in RESULT_COLUMNS.items():
        assert str(back[name].dtype) == dtype, name


def test_a_long_recording_is_chunked_on_the_workers(local_server: Callable[..., str], tmp_path: Path) -> None:
    """chunk_seconds, max_upload_bytes and upload_format reach the partitions: the long file comes back
    as one row in as many chunks as the server got requests for it; the short clips go whole."""
    from recordings import speech_recording, write_audio

    rec = speech_recording(40, seed=4)
    df = samples(3)
    df.loc["long"] = {**df.iloc[0].to_dict(), "path": str(write_audio(tmp_path / "long.wav", rec.samples))}
    ddf = dd.from_pandas(df, npartitions=2)
    url = local_server()
    out = stt_frames.dask.transcribe(
        ddf,
        model="fake/echo",
        client=stt_frames.Client(base_url=url),
        cache=tmp_path / "cache",
        chunk_seconds=15,
        max_upload_bytes=2**20,
        upload_format="flac",
        timeout=httpx.Timeout(60.0, connect=5.0),
    ).compute(scheduler="sync")
    stats = get_stats(url)
    assert out["error"].isna().all(), out["error"].dropna().tolist()
    assert list(out.index) == list(df.index)
    assert str(out["chunks"].dtype) == "Int64"
    assert out.loc["long", "chunks"] >= 3 and (out.drop(index="long")["chunks"] == 1).all()
    assert out.loc["long", "text"].count("echo ") == out.loc["long", "chunks"]  # one answer per chunk, joined
    assert out.loc["long", "seconds"] == pytest.approx(rec.seconds, abs=0.1)
    assert stats["total_requests"] == int(out["chunks"].sum())


def test_timeout_reaches_the_workers(local_server: Callable[..., str], tmp_path: Path) -> None:
    """A server slower than ``timeout=``: each request is sent twice, then its row fails and says why."""
    ddf = dd.from_pandas(samples(2), npartitions=2)
    url = local_server(latency=2.0)
    out = stt_frames.dask.transcribe(
        ddf, model="fake/echo", client=stt_frames.Client(base_url=url), cache=False, timeout=0.3
    ).compute(scheduler="sync")
    stats = get_stats(url)
    assert out["error"].str.contains("not sent a third time").all(), out["error"].tolist()
    assert stats["total_requests"] == 4  # 2 rows x 2 sends
