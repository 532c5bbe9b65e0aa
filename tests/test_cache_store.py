"""stt_frames.cache_store: the object-store cache on a file:// folder and on a real (moto) S3; copies both ways."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import stt_frames
from stt_frames.cache import KEY_VERSION, MIGRATIONS, Cache, request_key
from stt_frames.cache_store import SCHEMA_VERSION, ObjectCache, copy_entries
from stt_frames.cli import main
from stt_frames.errors import CacheError
from stt_frames.server import get_stats

KEY = request_key("ab" * 32, model="fake/echo", language=None, temperature=None, provider_options=None,
                  endpoint="http://127.0.0.1:1/api/v1")  # fmt: skip
META = {"audio_sha256": "ab" * 32, "model": "fake/echo", "language": None, "endpoint": "http://127.0.0.1:1/api/v1"}


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
    client_kwargs = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    yield {"key": "testing", "secret": "testing", "client_kwargs": client_kwargs}
    server.stop()


def test_one_object_per_answer_named_by_its_key_with_the_sqlite_fields(tmp_path: Path) -> None:
    cache = ObjectCache(f"file://{tmp_path}/c")
    cache.put(KEY, {"text": "hi", "usage": {"cost": 0.01}}, audio_seconds=1.5, latency_s=0.2, **META)
    cache.flush()
    digest = KEY.removeprefix(f"{KEY_VERSION}:")
    stored = tmp_path / "c" / KEY_VERSION / digest[:2] / f"{digest}.json"
    doc = json.loads(stored.read_text())
    assert doc["key"] == KEY and doc["schema"] == SCHEMA_VERSION == len(MIGRATIONS)
    assert doc["response"]["text"] == "hi" and doc["audio_seconds"] == 1.5 and doc["model"] == "fake/echo"
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temporary file left behind
    assert cache.get(KEY).response["text"] == "hi"  # type: ignore[union-attr]
    assert set(cache.get_many([KEY, KEY.replace("ab", "cd")])) == {KEY}
    assert cache.info()["entries"] == 1 and cache.info()["models"] == {"fake/echo": 1}
    assert cache.clear(model="other/model") == 0 and cache.clear(model="fake/echo") == 1 and cache.get(KEY) is None


def test_a_damaged_object_and_an_unwritable_store_are_cache_errors(tmp_path: Path) -> None:
    cache = ObjectCache(f"file://{tmp_path}/c")
    cache.put(KEY, {"text": "hi"}, **META)
    cache.flush()
    next((tmp_path / "c").rglob("*.json")).write_text("{not json")
    with pytest.raises(CacheError, match="damaged"):
        cache.get(KEY)
    blocked = ObjectCache(f"file://{tmp_path}/blocked")
    (tmp_path / "blocked" / KEY_VERSION).write_text("a file where the folder of every answer must go")
    blocked.put(KEY, {"text": "hi"}, **META)  # handed to a writer: the failure comes with the flush
    with pytest.raises(CacheError, match="cannot write to the cache"):
        blocked.flush()
    blocked.flush()  # reported once


def test_a_run_on_s3_then_on_sqlite_after_a_copy_sends_nothing_again(
    server: str, samples_dir: Path, tmp_path: Path, s3_options: dict[str, object]
) -> None:
    import pandas as pd

    df = pd.DataFrame({"path": sorted(str(p) for p in samples_dir.rglob("*.wav"))[:6]})
    s3 = ObjectCache("s3://cache/one", storage_options=s3_options)
    client = stt_frames.Client(base_url=server)
    first = stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=s3, progress=False)
    assert first["error"].isna().all() and get_stats(server)["total_requests"] == 6
    again = stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=s3, progress=False)
    assert again["cached"].all() and get_stats(server)["total_requests"] == 6

    sqlite = Cache(tmp_path / "sqlite")
    assert copy_entries(s3, sqlite) == 6
    local = stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=sqlite, progress=False)
    assert local["cached"].all() and local["text"].tolist() == first["text"].tolist()
    back = ObjectCache(f"file://{tmp_path}/objects")
    assert copy_entries(sqlite, back) == 6
    assert back.info()["entries"] == 6 and get_stats(server)["total_requests"] == 6


def test_the_cli_copies_between_backends_and_reports_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = Cache(tmp_path / "sqlite")
    source.put(KEY, {"text": "hi"}, **META)
    source.close()
    target = f"file://{tmp_path}/objects"
    assert main(["cache", "copy", str(tmp_path / "sqlite"), target]) == 0
    assert "copied 1 cached answer" in capsys.readouterr().out
    assert main(["cache", "info", "--cache-dir", target, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["path"] == target
    assert main(["cache", "copy", target, str(tmp_path / "again"), "--model", "fake/echo"]) == 0
    assert Cache(tmp_path / "again").info()["entries"] == 1


def test_a_url_given_as_cache_opens_an_object_cache(server: str, samples_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from stt_frames.frame import _open_cache

    assert isinstance(_open_cache(f"file://{tmp_path}/x"), ObjectCache)
    df = pd.DataFrame({"path": [str(next(samples_dir.rglob("*.wav")))]})
    url = f"file://{tmp_path}/x"
    client = stt_frames.Client(base_url=server)
    stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=url, progress=False)
    out = stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=url, progress=False)
    assert out["cached"].all() and get_stats(server)["total_requests"] == 1
    assert len(list((tmp_path / "x").rglob("*.json"))) == 1
