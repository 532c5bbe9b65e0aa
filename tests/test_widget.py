"""TranscribeWidget's Python side against the real local server: models, text, usage, cache, errors, A/B, the key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ipywidgets
import pandas as pd
import pytest

import stt_frames
from stt_frames import errors
from stt_frames._widget_view import friendly_error
from stt_frames.widget import TranscribeWidget

pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

DATA = Path(__file__).resolve().parent.parent / "data"
CANARY = "sk-or-canary-3b9d71e0c4a2"
CLIP = "en/flite_slt_00.wav"


def make(base_url: str, **kw: Any) -> TranscribeWidget:
    kw.setdefault("model", "fake/echo")
    kw.setdefault("data_dir", DATA)
    return TranscribeWidget(base_url=base_url, **kw)


def walk(widget: ipywidgets.Widget, seen: set[str] | None = None) -> Iterator[ipywidgets.Widget]:
    """The widget and every widget reachable from its traits (children, layout, style ...)."""
    seen = set() if seen is None else seen
    if widget.model_id in seen:
        return
    seen.add(widget.model_id)
    yield widget
    for name in widget.keys:
        value = getattr(widget, name)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, ipywidgets.Widget):
                yield from walk(item, seen)


def state_text(widget: ipywidgets.Widget) -> str:
    """Everything the front end would be sent, as one string (bytes decoded byte for byte)."""
    parts = []
    for w in walk(widget):
        state = w.get_state()
        parts.append(json.dumps(state, default=lambda v: bytes(v).decode("latin-1")))
        parts.append(repr(w))
    return "\n".join(parts)


def test_models_come_from_the_server_and_files_from_data(server: str, samples_dir: Path) -> None:
    with stt_frames.Client(base_url=server) as client:
        listed = [m["id"] for m in client.list_models()]
    w = TranscribeWidget(base_url=server, data_dir=samples_dir)
    assert list(w.model.options) == listed
    assert "fake/echo" in listed and "local/pocketsphinx" in listed
    assert w.model.value == "local/pocketsphinx"  # preferred over the first listed
    assert w.model_b.value and w.model_b.value != w.model.value
    assert w.path.value == CLIP  # samples.csv's first clip
    clips = list(pd.read_csv(samples_dir / "samples.csv")["path"])
    assert list(w.path.options) == clips  # every clip, in samples.csv's order; not samples.csv itself
    assert w.audio.format == "wav" and w.audio.value[:4] == b"RIFF"  # the player has the file


def test_unreachable_server_still_allows_typing_a_model(tmp_path: Path) -> None:
    w = TranscribeWidget(base_url="http://127.0.0.1:9/api/v1", data_dir=tmp_path)
    assert list(w.model.options) == [] and w.model.value == ""
    assert "Could not list the models from http://127.0.0.1:9/api/v1" in w.status.value
    assert "Could not reach http://127.0.0.1:9/api/v1" in w.status.value and "unexpected" not in w.status.value
    w.path.value = str(DATA / CLIP)
    rows = w.transcribe_now()
    assert rows.empty and "Choose a model" in w.error.value


def test_transcribe_shows_text_and_usage_then_the_cache(server: str) -> None:
    w = make(server, path=CLIP)
    first = w.transcribe_now()
    assert list(first["model"]) == ["fake/echo"]
    row = first.iloc[0]
    assert pd.isna(row["error"]) and row["text"].startswith("echo ") and not row["cached"]
    assert row["text"] in w.result.value
    assert "from cache" in w.usage.value and ">no<" in w.usage.value
    assert f"{row['cost']:.6f} USD" in w.usage.value and row["cost"] > 0
    assert f"{row['seconds']:.2f} s" in w.usage.value
    assert f"{row['input_tokens']} / {row['output_tokens']} / {row['total_tokens']}" in w.usage.value
    assert w.error.value == ""

    second = w.transcribe_now()
    assert bool(second.iloc[0]["cached"]) and second.iloc[0]["text"] == row["text"]
    assert ">yes<" in w.usage.value and "from the cache" in w.status.value
    assert w.results is second


def test_same_cache_as_transcribe_column(server: str) -> None:
    client = stt_frames.Client(base_url=server)
    df = pd.DataFrame({"path": [str(DATA / CLIP)]})
    stt_frames.transcribe_column(df, model="fake/echo", client=client, progress=False)
    rows = make(server, path=str(DATA / CLIP), client=client).transcribe_now()
    assert bool(rows.iloc[0]["cached"])


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.wav", None, "No such file"),
        ("notes.wav", b"this is not audio at all", "cannot be transcribed"),
        ("song.xyz", b"RIFF....WAVE", "cannot be transcribed"),
    ],
)
def test_bad_file_shows_a_friendly_error(server: str, tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    w = make(server, path=str(path))
    w.compare.value = True
    w.model_b.value = "local/pocketsphinx"
    rows = w.transcribe_now()
    assert len(rows) == 2 and rows["error"].notna().all() and rows["text"].isna().all()
    assert expected in w.error.value
    assert w.error.value.count("stt-error") == 1  # one message for the file, not one per model
    assert "Traceback" not in w.error.value and "Traceback" not in state_text(w)
    assert "No transcript" in w.result.value and w.usage.value == ""
    assert not w.button.disabled


def test_unknown_model_says_404(server: str) -> None:
    w = make(server, path=CLIP, model="nobody/nothing")
    rows = w.transcribe_now()
    assert "not found" in rows.iloc[0]["error"] or "404" in rows.iloc[0]["error"]
    assert "(404)" in w.error.value and "nobody/nothing" in w.error.value


def test_a_b_shows_two_results_side_by_side(server: str) -> None:
    w = make(server, path=CLIP)
    assert w.model_b.layout.display == "none"
    w.compare.value = True
    assert w.model_b.layout.display == ""
    w.model.value, w.model_b.value = "fake/echo", "local/pocketsphinx"
    rows = w.transcribe_now()
    assert list(rows["model"]) == ["fake/echo", "local/pocketsphinx"]
    assert rows["error"].isna().all()
    assert rows.iloc[0]["text"] in w.result.value and "echo" in w.result.value
    assert rows.iloc[1]["text"] in w.result_b.value and "weather" in w.result_b.value
    assert "from cache" in w.usage.value and "from cache" in w.usage_b.value


def test_a_b_with_model_b_failing_says_so_and_the_next_try_clears_it(server: str) -> None:
    """Each side's state comes from its outcome's type: B failed, so the widget does not say "Done"."""
    w = make(server, path=CLIP)
    w.compare.value = True
    w.model.value, w.model_b.value = "fake/echo", "nobody/nothing"
    rows = w.transcribe_now()
    assert w.states == ("done", "failed")
    assert "stt-state-done" in w._panel_a.title.value and "stt-state-failed" in w._panel_b.title.value
    assert "Done" not in w.status.value and "nobody/nothing failed; fake/echo done in" in w.status.value
    assert w.error.value.count("stt-error") == 1 and "(404)" in w.error.value
    assert pd.isna(rows.iloc[0]["error"]) and rows.iloc[1]["error"].startswith("404")

    w.compare.value = False  # the next try: nothing of the previous one stays
    rows = w.transcribe_now()
    assert w.states == ("done",) and w.error.value == "" and w.status.value.count("Done in") == 1
    assert w._panel_b.state == "idle" and "nobody" not in w._panel_b.title.value + w.result_b.value
    w.path.value = ""
    w.transcribe_now()  # a form problem: the old transcript goes too
    assert "Choose a file" in w.error.value and rows.iloc[0]["text"] not in w.result.value


def test_wrong_key_shows_the_401_message_and_never_the_key(
    local_server: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    base_url = local_server(api_key="sk-the-right-one")
    w = make(base_url, path=CLIP)  # the key comes from the environment
    rows = w.transcribe_now()
    assert rows.iloc[0]["error"].startswith("401")
    assert "(401)" in w.error.value and "OPENROUTER_API_KEY" in w.error.value
    assert "rerun" not in w.error.value and "rerun" not in rows.iloc[0]["error"]  # batch advice, not for one file
    assert w.states == ("failed",) and w.status.value.endswith("Failed: see the message above.</span>")
    assert "Traceback" not in w.error.value
    assert CANARY not in state_text(w)


def test_429_after_retries_says_so(local_server: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    base_url = local_server(fail_rate=1.0, faults=("429",), retry_after=0.01)
    client = stt_frames.Client(base_url=base_url, max_retries=2)
    w = make(base_url, path=CLIP, client=client)
    rows = w.transcribe_now()
    assert rows.iloc[0]["error"].startswith("429")
    assert "Too many requests (429)" in w.error.value and "after 2 retries" in w.error.value


def test_canary_key_is_in_no_widget_state(monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    w = make(server, path=CLIP)
    w.compare.value = True
    w.model_b.value = "local/pocketsphinx"
    w.transcribe_now()
    w.path.value = "missing.wav"
    w.transcribe_now()
    explicit = make(server, path=CLIP, api_key=CANARY)
    explicit.transcribe_now()
    for widget in (w, explicit):
        text = state_text(widget)
        assert CANARY not in text and CANARY[6:] not in text
        assert sum(1 for _ in walk(widget)) > 20  # the walk reached every child, layout and style
        assert CANARY not in repr(widget._client)


def test_button_runs_in_the_background_then_is_enabled_again(local_server: Callable[..., str]) -> None:
    base_url = local_server(latency=0.8)
    w = make(base_url, path=CLIP)
    w.button.click()
    assert w.button.disabled and w.button.description == "Transcribing…"
    assert "Transcribing" in w.status.value and "spin" in w.button.icon
    w.button.click()  # a second click while running does nothing
    assert w.wait(timeout=30)
    assert not w.button.disabled and w.button.description == "Transcribe"
    assert len(w.results) == 1 and w.results.iloc[0]["text"] in w.result.value


def test_upload_is_written_with_its_extension_and_transcribed(server: str) -> None:
    data = (DATA / "en/flite_rms_01.flac").read_bytes()
    w = make(server)
    w.upload.value = (
        {"name": "my clip.flac", "type": "audio/flac", "size": len(data), "content": memoryview(data),
         "last_modified": datetime.now(UTC)},
    )  # fmt: skip
    assert w.path.value.endswith("my clip.flac") and Path(w.path.value).read_bytes() == data
    assert w.upload.value == ()  # the bytes are not kept in the widget (and the front end's counter resets)
    assert w.audio.format == "flac" and w.audio.value == data
    rows = w.transcribe_now()
    assert pd.isna(rows.iloc[0]["error"]) and rows.iloc[0]["text"].startswith("echo ")


def test_temperature_and_language_reach_the_request(server: str) -> None:
    w = make(server, path=CLIP)
    assert w.temperature.disabled
    w.default_temperature.value = False
    assert not w.temperature.disabled
    w.temperature.value = 0.3
    w.language.value = "en"
    first = w.transcribe_now()
    w.language.value = ""
    second = w.transcribe_now()
    assert not bool(first.iloc[0]["cached"]) and not bool(second.iloc[0]["cached"])  # different requests


def test_try_file_returns_the_widget(server: str) -> None:
    w = stt_frames.try_file(CLIP, base_url=server, data_dir=DATA)
    assert isinstance(w, TranscribeWidget) and isinstance(w, ipywidgets.VBox)
    assert w.path.value == CLIP
    w.close()


@pytest.mark.parametrize(
    ("cls", "words"),
    [
        (errors.BadRequestError, "(400)"),
        (errors.AuthenticationError, "(401)"),
        (errors.PaymentRequiredError, "no credits left (402)"),
        (errors.NotFoundError, "(404)"),
        (errors.RequestTimeoutError, "(408)"),
        (errors.RateLimitError, "Too many requests (429)"),
        (errors.InternalServerError, "(500)"),
        (errors.BadGatewayError, "(502)"),
        (errors.ServiceUnavailableError, "(503)"),
    ],
)
def test_every_status_error_has_a_human_message(cls: type[errors.APIStatusError], words: str) -> None:
    exc = cls("upstream said no")
    headline, detail = friendly_error(exc, model="m", base_url="u", retried=3)
    assert words in headline and "upstream said no" in detail
    # the type decides, never the text: the same words in a plain string are not read as a status
    text_only, _ = friendly_error(errors.STTError(str(exc)), model="m", base_url="u", retried=3)
    assert words not in text_only


def test_other_errors_have_human_messages() -> None:
    cases = {
        errors.APIConnectionError("connection to u failed"): "Could not reach",
        errors.APITimeoutError("no answer from u in time"): "No answer",
        errors.MalformedResponseError("200: html"): "not what the API promises",
        errors.InsecureTransportError("plain http"): "plain http",
        errors.BudgetExceededError("cap"): "spending cap",
        RuntimeError("boom"): "unexpected",
    }
    for exc, words in cases.items():
        assert words in friendly_error(exc, base_url="u")[0]
    assert "Could not reach" in friendly_error("connection to u failed or was dropped", base_url="u")[0]


def test_a_long_recording_goes_in_chunks_and_each_side_says_how_far_it_is(server: str, tmp_path: Path) -> None:
    """A file over 25 MB is not refused: it is cut into chunks, and the panel counts the chunks answered."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from recordings import speech_recording, write_audio

    rec = speech_recording(160, seed=21)
    path = write_audio(tmp_path / "master.wav", rec.samples, rate=44_100, channels=2)  # ~28 MB
    assert path.stat().st_size > 25_000_000
    seen: list[str] = []
    w = stt_frames.TranscribeWidget(base_url=server, model="fake/echo", path=str(path), chunk_seconds=30)
    w.result.observe(lambda change: seen.append(change["new"]), names="value")
    rows = w.transcribe_now()
    assert rows["error"].isna().all(), rows["error"].tolist()
    n = int(rows["chunks"].iloc[0])
    assert n >= 6 and rows["text"].iloc[0].count("echo ") == n
    assert any(f"of about {n} chunks answered" in v for v in seen), seen
    assert w.states == ("done",)
    with pytest.raises(ValueError, match="upload_format"):
        stt_frames.TranscribeWidget(base_url=server, upload_format="mp3")  # type: ignore[arg-type]
    w.close()
