"""``stt_frames.sources``: every form a cell may take, read from real servers (moto's S3, a local HTTP server)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from stt_frames.chunking import iter_chunks, probe_seconds
from stt_frames.errors import AudioError
from stt_frames.sources import Spool, classify, is_url

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "en" / "flite_slt_00.wav"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A real S3 API (moto) on loopback with one bucket; yields fsspec storage_options."""
    pytest.importorskip("s3fs", reason="needs the 'remote' extra")
    server_mod = pytest.importorskip("moto.server", reason="needs moto[server] (dev extra)")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}",
                                                                         "region_name": "us-east-1"}}  # fmt: skip
    import boto3
    import s3fs

    endpoint = options["client_kwargs"]["endpoint_url"]  # type: ignore[index]
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="audio")  # fmt: skip
    fs = s3fs.S3FileSystem(**options)
    fs.pipe("audio/en/slt.wav", CLIP.read_bytes())
    fs.pipe("audio/noext", CLIP.read_bytes())
    yield options
    server.stop()


@pytest.fixture(scope="module")
def http_root() -> Iterator[str]:
    """data/ served over plain http on loopback."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(ROOT / "data"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_form_is_classified(tmp_path: Path) -> None:
    assert classify("a.wav", base_dir=tmp_path).path == str(tmp_path / "a.wav")
    assert classify(tmp_path / "b.wav").path == str(tmp_path / "b.wav")
    assert classify("s3://bucket/a.wav").kind == "url" and is_url("https://x/a.mp3") and not is_url("c:/a.wav")
    assert classify(CLIP.read_bytes()).format == "wav"
    assert classify({"bytes": CLIP.read_bytes(), "path": "slt.wav"}).kind == "bytes"
    assert classify({"bytes": None, "path": str(CLIP)}).path == str(CLIP)
    arr = classify({"array": np.zeros(1600, dtype=np.float32), "sampling_rate": 16000})
    assert (arr.kind, arr.sample_rate) == ("array", 16000)
    assert classify(np.zeros((2, 800)), sample_rate=8000).sample_rate == 8000


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "missing value"),
        (b"", "bytes are empty"),
        (b"not audio at all", "cannot tell the audio format"),
        ({"text": "x"}, "a dict needs 'bytes'"),
        (np.zeros(10), "needs its sample rate"),
        ({"array": np.zeros((2, 2, 2)), "sampling_rate": 16000}, "1-D or 2-D"),
        ({"array": np.array([np.nan, 0.0]), "sampling_rate": 16000}, "NaN"),
        (3.5, "got float"),
    ],
)
def test_each_bad_form_says_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        classify(value)


def test_arrays_become_lossless_flac_at_their_own_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(16000) * 3000).astype(np.int16)
    spool = Spool()
    try:
        path = spool.write(classify(pcm, sample_rate=16000))
        assert path.endswith(".flac") and probe_seconds(path) == pytest.approx(1.0)
        assert b"".join(c.pcm for c in iter_chunks(path, max_seconds=60)) == pcm.tobytes()  # lossless
        stereo = spool.write(classify(np.stack([pcm, pcm]).T, sample_rate=44_100))  # samples x channels
        assert probe_seconds(stereo) == pytest.approx(16000 / 44_100, abs=1e-3)
        again = spool.write(classify(pcm, sample_rate=16000))
        assert again == path  # named by content
    finally:
        spool.close()
    assert not Path(path).exists()


def test_s3_files_are_streamed_and_hashed(s3: dict[str, str]) -> None:
    spool = Spool(s3)
    try:
        size, version = spool.info("s3://audio/en/slt.wav")
        assert size == CLIP.stat().st_size and version != 0
        path, sha = spool.download("s3://audio/en/slt.wav")
        assert Path(path).read_bytes() == CLIP.read_bytes() and sha == hashlib.sha256(CLIP.read_bytes()).hexdigest()
        no_ext, _ = spool.download("s3://audio/noext")  # the format comes from the bytes
        assert no_ext.endswith(".wav")
        with pytest.raises(AudioError, match="file not found"):
            spool.info("s3://audio/missing.wav")
    finally:
        spool.close()


def test_http_files_are_streamed(http_root: str) -> None:
    spool = Spool()
    try:
        path, sha = spool.download(f"{http_root}/en/flite_slt_00.wav")
        assert Path(path).exists() and sha == hashlib.sha256(CLIP.read_bytes()).hexdigest()
        assert spool.info(f"{http_root}/en/flite_slt_00.wav")[0] == CLIP.stat().st_size
        with pytest.raises(AudioError, match="not found"):
            spool.download(f"{http_root}/nope.wav")
    finally:
        spool.close()
