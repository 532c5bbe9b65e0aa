"""``RunSpec``: every argument of a run is checked once, up front, before any file is read or request sent."""

from __future__ import annotations

import inspect

import httpx
import pytest

import stt_frames
from stt_frames._spec import RunSpec


def test_a_spec_is_frozen_and_holds_what_it_was_given() -> None:
    spec = RunSpec.build(model=" fake/echo ", language="en", temperature=0, provider_options={"a": {"b": 1}},
                         chunk_seconds=120, upload_format="opus", timeout=30)  # fmt: skip
    assert spec.model == "fake/echo" and spec.temperature == 0.0
    assert spec.upload.chunk_limit() == 120.0 and spec.upload.chunk_encoding == "opus"
    assert spec.timeout == httpx.Timeout(30.0, connect=10.0)
    with pytest.raises(TypeError):
        spec.provider_options["a"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.model = "x"  # type: ignore[misc]
    assert spec.parameters()["upload_format"] == "opus"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model must be"),
        ({"model": "m", "temperature": 1.5}, "temperature must be"),
        ({"model": "m", "temperature": True}, "temperature must be"),
        ({"model": "m", "language": 7}, "language must be"),
        ({"model": "m", "concurrency": 0}, "concurrency must be"),
        ({"model": "m", "max_cost": -1}, "max_cost must be"),
        ({"model": "m", "on_error": "skip"}, "on_error must be"),
        ({"model": "m", "chunk_seconds": 0}, "chunk_seconds must be"),
        ({"model": "m", "upload_format": "mp3"}, "upload_format must be"),
        ({"model": "m", "timeout": -5}, "timeout must be"),
        ({"model": "m", "provider_options": [1]}, "provider_options must be a dict"),
    ],
)
def test_bad_arguments_fail_before_anything_runs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunSpec.build(**kwargs)  # type: ignore[arg-type]


def test_the_twins_have_the_same_signature_and_no_private_parameter() -> None:
    sync, twin = inspect.signature(stt_frames.transcribe_column), inspect.signature(stt_frames.atranscribe_column)
    assert sync.parameters.keys() == twin.parameters.keys()
    assert [p.default for p in sync.parameters.values()] == [p.default for p in twin.parameters.values()]
    public = [getattr(stt_frames, n) for n in stt_frames.__all__ if callable(getattr(stt_frames, n))]
    from stt_frames._compare import acompare
    from stt_frames.dask import transcribe as dask_transcribe

    public += [acompare, dask_transcribe]
    for fn in public:
        target = fn.__init__ if isinstance(fn, type) else fn
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        private = [p for p in params if p.startswith("_")]
        assert private == [], f"{getattr(fn, '__name__', fn)} has private parameters {private}"


def test_a_bad_argument_costs_nothing(tmp_path: object) -> None:
    import pandas as pd

    df = pd.DataFrame({"path": ["whatever.wav"]})
    with pytest.raises(ValueError, match="temperature"):
        stt_frames.transcribe_column(df, model="fake/echo", temperature=3, progress=False,
                                     client=stt_frames.Client(base_url="http://127.0.0.1:9/api/v1"))  # fmt: skip
