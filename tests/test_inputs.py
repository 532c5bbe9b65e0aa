"""Every form a dataset holds goes through transcribe_column the same way (issue 13): relative paths with
base_dir, s3:// on a real moto S3, http:// from a local server, bytes, Hugging Face dicts (both forms, and a
real ``datasets`` frame) and numpy arrays all give the same text and cost, and a rerun is fully cached."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recordings import decode
from test_sources import http_root, s3  # noqa: F401 - fixtures (a real S3 API and an HTTP server on loopback)

import stt_frames
from stt_frames.server import get_stats, reset_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
MODEL = "local/pocketsphinx-fast"  # a real engine: decoded arrays give the same words as the files
CLIPS = ["en/flite_slt_00.wav", "en/flite_kal_04.wav", "en/flite_awb_02.wav"]


@pytest.fixture
def server(local_server: Callable[..., str]) -> str:
    pytest.importorskip("pocketsphinx", reason="needs the local extra")
    return local_server(prices={MODEL: 0.006})


@pytest.fixture(scope="module")
def bucket(s3: dict[str, object]) -> dict[str, object]:  # noqa: F811
    import s3fs

    fs = s3fs.S3FileSystem(**s3)
    for clip in CLIPS:
        fs.pipe(f"audio/{clip}", (DATA / clip).read_bytes())
    return s3


def run(df: pd.DataFrame, url: str, **kw: object) -> pd.DataFrame:
    with stt_frames.Client(base_url=url) as client:
        return stt_frames.transcribe_column(df, model=MODEL, client=client, progress=False, **kw)  # type: ignore[arg-type]


def test_every_form_gives_the_same_text_and_cost(
    server: str,
    bucket: dict[str, object],
    http_root: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    forms = {
        "relative path": (CLIPS, {"base_dir": DATA}),
        "s3": ([f"s3://audio/{c}" for c in CLIPS], {"storage_options": bucket}),
        "http": ([f"{http_root}/{c}" for c in CLIPS], {}),
        "bytes": ([(DATA / c).read_bytes() for c in CLIPS], {}),
        "hf bytes": ([{"bytes": (DATA / c).read_bytes(), "path": c} for c in CLIPS], {}),
        "hf array": ([{"array": decode(DATA / c) / 32768, "sampling_rate": 16_000} for c in CLIPS], {}),
        "array": ([decode(DATA / c) for c in CLIPS], {"sample_rate": 16_000}),
    }  # fmt: skip
    outs = {}
    for name, (cells, kw) in forms.items():
        out = run(pd.DataFrame({"audio": cells}), server, column="audio", cache=tmp_path / "cache", **kw)
        assert out["error"].isna().all(), (name, out["error"].tolist())
        outs[name] = out
    reference = outs["relative path"]
    for name, out in outs.items():
        assert out["text"].tolist() == reference["text"].tolist(), name
        assert out["cost"].to_numpy() == pytest.approx(reference["cost"].to_numpy(), rel=1e-3), name
    # a rerun of each form is fully cached: nothing is sent, nothing downloaded is billed
    reset_stats(server)
    for name, (cells, kw) in forms.items():
        again = run(pd.DataFrame({"audio": cells}), server, column="audio", cache=tmp_path / "cache", **kw)
        assert again["cached"].all(), name
    assert get_stats(server)["total_requests"] == 0


def test_a_real_datasets_frame(server: str, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="needs the 'datasets' package (dev extra)")
    rows = [{"bytes": (DATA / c).read_bytes(), "path": c} for c in CLIPS]
    by_bytes = datasets.Dataset.from_dict({"audio": rows}).cast_column("audio", datasets.Audio()).to_pandas()
    by_path = datasets.Dataset.from_dict({"audio": [str(DATA / c) for c in CLIPS]})
    by_path = by_path.cast_column("audio", datasets.Audio()).to_pandas()
    a = run(by_bytes, server, column="audio", cache=False)
    b = run(by_path, server, column="audio", cache=False)
    assert a["error"].isna().all() and b["error"].isna().all()
    assert a["text"].tolist() == b["text"].tolist() and all(a["text"])


def test_bad_cells_are_rows_with_a_reason(server: str, http_root: str) -> None:  # noqa: F811
    cells = [np.zeros(100), {"text": "x"}, f"{http_root}/nope.wav", b"", str(DATA / CLIPS[0])]
    out = run(pd.DataFrame({"audio": cells}), server, column="audio", cache=False)
    errors = out["error"].tolist()
    assert "needs its sample rate" in errors[0]
    assert "a dict needs 'bytes'" in errors[1]
    assert "nope.wav: file not found" in errors[2]
    assert "bytes are empty" in errors[3]
    assert pd.isna(errors[4]) and out["text"].iloc[4]
    assert set(out["error_type"].dropna()) == {"AudioError"}
