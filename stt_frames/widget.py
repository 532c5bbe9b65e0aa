"""``TranscribeWidget`` and ``try_file``: try one audio file on one or two models, in a notebook.

The widget runs the file through ``transcribe_column`` on a one-row DataFrame, so it uses the same
client settings, retries and cache as a whole-column run: a second click on the same file answers
from the cache (``from cache: yes``). The work runs in a background thread; the button is disabled and
says "Transcribing…" until it is done. The API key stays inside the client: no widget holds it.

Example::

    import stt_frames
    stt_frames.try_file("data/en/flite_slt_00.wav")   # last line of a cell: the widget shows

    w = stt_frames.TranscribeWidget(base_url="http://127.0.0.1:8787/api/v1")
    w   # pick a file and a model, press Transcribe; or from code:
    w.transcribe_now()[["model", "text", "cost", "cached"]]
"""

from __future__ import annotations

import concurrent.futures
import html
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import ipywidgets as widgets
import pandas as pd

from ._http import map_transport_error
from ._progress import RunProgress
from ._settings import NOT_GIVEN, NotGiven
from ._widget_view import (
    AUDIO_MIME_FORMAT,
    LANGUAGES,
    audio_files,
    error_html,
    friendly_error,
    result_html,
    usage_html,
)
from .audio import check_file, check_header, format_from_extension, read_audio
from .chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, UploadFormat, UploadPolicy
from .client import Client
from .errors import APIStatusError, STTError
from .frame import CacheArg, transcribe_column
from .results import RESULT_COLUMNS
from .timeouts import TimeoutArg, as_timeout

__all__ = ["PREFERRED_MODELS", "TranscribeWidget", "try_file"]

log = logging.getLogger("stt_frames.widget")

#: The model picked first when the server lists it (else the first model listed).
PREFERRED_MODELS: Final = ("openai/whisper-large-v3", "local/pocketsphinx", "fake/echo")

#: Columns of the rows ``transcribe_now`` returns.
ROW_COLUMNS: Final = ("model", "path", *RESULT_COLUMNS)

#: Browser MIME subtypes whose name is not the file extension.
_MIME_EXTENSIONS: Final = {
    "mpeg": "mp3",
    "x-wav": "wav",
    "wave": "wav",
    "vnd.wave": "wav",
    "mp4": "m4a",
    "x-m4a": "m4a",
}

#: One label column for every box with a description.
_STYLE: Final = {"description_width": "7em"}
_WIDE: Final = "34em"

_IDLE_LABEL: Final = "Transcribe"
_BUSY_LABEL: Final = "Transcribing…"


#: One model's outcome: (model, result row or None, exception or None).
_Outcome = tuple[str, dict[str, Any] | None, BaseException | None]


@dataclass(frozen=True)
class _Form:
    """What the user asked for, read from the widgets at click time."""

    path: Path
    models: tuple[str, ...]
    language: str | None
    temperature: float | None


def _plain(value: Any) -> Any:
    """A DataFrame cell as a plain Python value (<NA> and NaN become None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Result rows with the same nullable dtypes as transcribe_column's columns."""
    return pd.DataFrame(
        {
            "model": pd.array([r["model"] for r in records], dtype="string"),
            "path": pd.array([r["path"] for r in records], dtype="string"),
            **{name: pd.array([r[name] for r in records], dtype=dtype) for name, (dtype, _) in RESULT_COLUMNS.items()},
        }
    )


def _find_data_dir() -> Path | None:
    for folder in (Path.cwd() / "data", Path.cwd().parent / "data"):
        if folder.is_dir():
            return folder
    return None


def _listed_first(files: list[str], folder: Path | None) -> list[str]:
    """``files`` with those named in ``folder/samples.csv`` first, in its order (the dataset's own order)."""
    listing = folder / "samples.csv" if folder is not None else None
    if listing is None or not listing.is_file():
        return files
    try:
        named = [str(p) for p in pd.read_csv(listing, usecols=["path"])["path"]]
    except (ValueError, OSError):
        return files
    known = set(files)
    first = [p for p in dict.fromkeys(named) if p in known]
    return first + [p for p in files if p not in set(first)]


#: What one side of the widget is doing: set from the outcome's type (an exception or a row), never its text.
IDLE, RUNNING, DONE, FAILED = "idle", "running", "done", "failed"


class _Panel(widgets.VBox):
    """One model's answer: a title with the side's state, the transcript and the usage table."""

    def __init__(self) -> None:
        self.state = IDLE
        self.title = widgets.HTML()
        self.text = widgets.HTML(result_html(None, placeholder="The transcript will appear here."))
        self.usage = widgets.HTML()
        super().__init__([self.title, self.text, self.usage], layout=widgets.Layout(flex="1 1 0", min_width="0"))

    def _title(self, model: str, state: str) -> None:
        self.state = state
        self.title.value = (
            f"<b>{html.escape(model)}</b> <span class='stt-state stt-state-{state}' style='color:#555'>{state}</span>"
        )

    def running(self, model: str) -> None:
        self._title(model, RUNNING)
        self.text.value = result_html(None, placeholder="Transcribing…")
        self.usage.value = ""

    def progress(self, text: str) -> None:
        """While running: say how far the side is (chunks answered of a long recording)."""
        if self.state == RUNNING:
            self.text.value = result_html(None, placeholder=text)

    def clear(self) -> None:
        self.state = IDLE
        self.title.value = ""
        self.text.value = result_html(None, placeholder="The transcript will appear here.")
        self.usage.value = ""

    def show(self, model: str, row: dict[str, Any] | None, wall_s: float | None) -> None:
        """A row that came back is a success; ``None`` (the side raised) is a failure."""
        if row is None:
            self._title(model, FAILED)
            self.text.value = result_html(None, placeholder="No transcript: see the message above.")
            self.usage.value = ""
            return
        self._title(model, DONE)
        self.text.value = result_html(row.get("text"))
        self.usage.value = usage_html(row, wall_s=wall_s)


def _detail(exc: BaseException) -> str:
    """What the server or the file said, for one file: no Python hint, no batch advice ("rerun to resume")."""
    if isinstance(exc, APIStatusError):
        return f"{exc.status}: {exc.message}"
    return str(exc)


class TranscribeWidget(widgets.VBox):
    """A notebook form to transcribe one audio file with one model, or two side by side.

    Options (keyword-only):

    - ``base_url``/``api_key``: as for ``Client`` (argument, then ``OPENROUTER_BASE_URL`` /
      ``OPENROUTER_API_KEY``, then OpenRouter). Or pass a ready ``client=`` instead.
    - ``models``: model ids for the model boxes; default: the server's ``/models`` list. Any id can be typed.
    - ``model``/``path``: what the boxes start with.
    - ``cache``: as for ``transcribe_column`` (default: the shared on-disk cache).
    - ``data_dir``: the folder whose audio files the path box offers; default ``./data`` or ``../data``.
    - ``chunk_seconds``, ``max_upload_bytes``, ``upload_format``, ``timeout``: as for ``transcribe_column``.
      A long recording is cut into chunks on its own; each side shows how many chunks are answered.

    Children: ``path``, ``upload``, ``model``, ``compare``, ``model_b``, ``language``, ``temperature``,
    ``default_temperature``, ``button``, ``status``, ``audio``, ``error``, ``result``, ``usage``,
    ``result_b``, ``usage_b``. ``results`` holds the last run's rows (also returned by ``transcribe_now``).

    Example::

        w = stt_frames.TranscribeWidget(base_url=base_url, model="fake/echo")
        w.path.value = "en/flite_slt_00.wav"
        w.transcribe_now()
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | NotGiven | None = NOT_GIVEN,
        models: Sequence[str] | None = None,
        model: str | None = None,
        path: str | os.PathLike[str] | None = None,
        cache: CacheArg = True,
        data_dir: str | os.PathLike[str] | None = None,
        client: Client | None = None,
        chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        upload_format: UploadFormat = "original",
        timeout: TimeoutArg | None = None,
    ) -> None:
        # checked here, so a bad option fails when the widget is made, not at the first click
        UploadPolicy(chunk_seconds=chunk_seconds, max_upload_bytes=max_upload_bytes, upload_format=upload_format)
        if timeout is not None:
            as_timeout(timeout)
        self._run_options: dict[str, Any] = {
            "chunk_seconds": chunk_seconds,
            "max_upload_bytes": max_upload_bytes,
            "upload_format": upload_format,
            "timeout": timeout,
        }
        self._client = client if client is not None else Client(base_url=base_url, api_key=api_key)
        self._own_client = client is None
        self._cache = cache
        self.data_dir = Path(data_dir) if data_dir is not None else _find_data_dir()
        self.results = _frame([])
        self._worker: threading.Thread | None = None
        self._busy = threading.Lock()
        self._uploads = Path(tempfile.mkdtemp(prefix="stt_frames-upload-"))
        self._uploaded = ""
        weakref.finalize(self, shutil.rmtree, self._uploads, True)

        files = _listed_first(audio_files(self.data_dir), self.data_dir)
        where = f" or pick one from {self.data_dir.name}/" if files and self.data_dir is not None else ""
        self.path = widgets.Combobox(
            options=files,
            value=os.fspath(path) if path is not None else (files[0] if files else ""),
            placeholder=f"path to an audio file{where}",
            description="File",
            ensure_option=False,
            continuous_update=False,
            style=_STYLE,
            layout=widgets.Layout(width=_WIDE),
        )
        self.upload = widgets.FileUpload(
            accept=",".join(["audio/*", *(f".{f}" for f in AUDIO_MIME_FORMAT)]),
            multiple=False,
            description="Upload",
        )
        self.model = widgets.Combobox(
            description="Model",
            placeholder="model id, e.g. openai/whisper-large-v3",
            ensure_option=False,
            style=_STYLE,
            layout=widgets.Layout(width=_WIDE),
        )
        self.compare = widgets.Checkbox(value=False, description="compare with a second model", indent=False)
        self.model_b = widgets.Combobox(
            description="Model B",
            placeholder="a second model id",
            ensure_option=False,
            style=_STYLE,
            layout=widgets.Layout(display="none", width=_WIDE),
        )
        self.language = widgets.Dropdown(options=list(LANGUAGES), value="", description="Language", style=_STYLE)
        self.default_temperature = widgets.Checkbox(value=True, description="model's default", indent=False)
        self.temperature = widgets.FloatSlider(
            value=0.0,
            min=0.0,
            max=1.0,
            step=0.05,
            description="Temperature",
            disabled=True,
            readout_format=".2f",
            style=_STYLE,
        )
        self.button = widgets.Button(description=_IDLE_LABEL, button_style="primary", icon="microphone")
        self.status = widgets.HTML()
        self.audio = widgets.Audio(
            value=b"",
            format="wav",
            autoplay=False,
            loop=False,
            layout=widgets.Layout(display="none", margin="2px 0 2px 7em"),
        )
        self.error = widgets.HTML()
        self._panel_a, self._panel_b = _Panel(), _Panel()
        self._panel_b.layout.display = "none"
        self.result, self.usage = self._panel_a.text, self._panel_a.usage
        self.result_b, self.usage_b = self._panel_b.text, self._panel_b.usage

        self._fill_models(models, model)
        self.path.observe(self._on_path, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.compare.observe(self._on_compare, names="value")
        self.default_temperature.observe(self._on_default_temperature, names="value")
        self.button.on_click(self._on_click)
        self._on_path()

        super().__init__(
            [
                widgets.HBox([self.path, self.upload]),
                self.audio,
                widgets.HBox([self.model, self.compare]),
                self.model_b,
                widgets.HBox([self.language]),
                widgets.HBox([self.temperature, self.default_temperature]),
                widgets.HBox([self.button, self.status]),
                self.error,
                widgets.HBox([self._panel_a, self._panel_b], layout=widgets.Layout(width="100%")),
            ]
        )
        self.add_class("stt-widget")

    # -- set-up -----------------------------------------------------------------------------------------
    def _fill_models(self, models: Sequence[str] | None, model: str | None) -> None:
        if models is None:
            try:
                models = [str(m["id"]) for m in self._list_models() if m.get("id")]
            except (STTError, httpx.HTTPError) as exc:
                models = []
                error = (
                    map_transport_error(exc, self._client.settings) if isinstance(exc, httpx.TransportError) else exc
                )
                headline, _ = friendly_error(error, base_url=self._client.base_url)
                self._say(f"Could not list the models from {self._client.base_url}: {headline} Type a model id.")
        options = list(dict.fromkeys(models))
        first = model or next((m for m in PREFERRED_MODELS if m in options), options[0] if options else "")
        self.model.options = options
        self.model.value = first
        self.model_b.options = options
        self.model_b.value = next((m for m in options if m != first), "")

    def _list_models(self) -> list[dict[str, Any]]:
        if not self._own_client:
            return self._client.list_models()
        s = self._client.settings  # a short-lived copy, so that no idle connection outlives the call
        with Client.from_settings(s, transport=self._client._user_transport) as client:
            return client.list_models()

    def _say(self, text: str) -> None:
        self.status.value = f"<span style='color:#555'>{html.escape(text)}</span>" if text else ""

    # -- events -----------------------------------------------------------------------------------------
    def _on_path(self, change: Any = None) -> None:
        if self.upload.value and self.path.value != self._uploaded:
            self.upload.value = ()  # another file was chosen: the Upload counter no longer describes it
        path = self._resolve(self.path.value)
        fmt = format_from_extension(path) if path is not None else None
        if path is None or fmt is None or not path.is_file():
            self.audio.layout.display = "none"
            self.audio.value = b""
            return
        try:
            clip = read_audio(path)
        except STTError:
            self.audio.layout.display = "none"
            self.audio.value = b""
            return
        self.audio.format = AUDIO_MIME_FORMAT.get(clip.format, clip.format)
        self.audio.value = clip.data
        self.audio.layout.display = ""

    def _on_upload(self, change: Any) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = Path(str(item.get("name") or "upload")).name or "upload"
        if format_from_extension(name) is None:  # no usable extension: take it from the MIME type
            subtype = str(item.get("type") or "").partition("/")[2].split(";")[0].strip().lower()
            name += "." + _MIME_EXTENSIONS.get(subtype, subtype or "bin")
        target = self._uploads / name
        target.write_bytes(bytes(item["content"]))
        self._uploaded = str(target)
        self.path.value = str(target)
        self._say(f"uploaded {name}")
        # The bytes are on disk now: do not keep a copy in the widget. The front end keeps its own count
        # until it hears a new value, so the reset is sent after this change is processed.
        self.upload.value = ()

    def _on_compare(self, change: Any) -> None:
        show = "" if change["new"] else "none"
        self.model_b.layout.display = show
        self._panel_b.layout.display = show

    def _on_default_temperature(self, change: Any) -> None:
        self.temperature.disabled = bool(change["new"])

    def _on_click(self, _button: Any) -> None:
        if not self._busy.acquire(blocking=False):
            return  # already running
        form = self._read_form()
        if form is None:
            self._busy.release()
            return
        self._begin(form)
        self._worker = threading.Thread(target=self._work_and_release, args=(form,), daemon=True, name="stt-widget")
        self._worker.start()

    def _work_and_release(self, form: _Form) -> None:
        try:
            self._work(form)
        finally:
            self._busy.release()

    # -- the run ----------------------------------------------------------------------------------------
    def transcribe_now(self) -> pd.DataFrame:
        """Do what the Transcribe button does, in this thread; return the rows (one per model).

        Example::

            w.transcribe_now()[["model", "text", "cached", "error"]]
        """
        with self._busy:
            form = self._read_form()
            if form is None:
                return self.results
            self._begin(form)
            return self._work(form)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a run started by the button; True when none is running any more."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def _resolve(self, text: str) -> Path | None:
        text = (text or "").strip()
        if not text:
            return None
        path = Path(text).expanduser()
        if path.is_absolute() or path.exists() or self.data_dir is None:
            return path
        in_data = self.data_dir / path
        return in_data if in_data.exists() else path

    def _read_form(self) -> _Form | None:
        path = self._resolve(self.path.value)
        models = [self.model.value.strip()]
        if self.compare.value:
            models.append(self.model_b.value.strip())
        problem = None
        if path is None:
            problem = "Choose a file first: type a path, pick one from the list, or upload one."
        elif not all(models):
            problem = "Choose a model first (type its id or pick one from the list)."
        if problem:
            self.error.value = error_html([("", problem, "")])
            self._say("")
            self._panel_a.clear()
            self._panel_b.clear()
            return None
        assert path is not None
        temperature = None if self.default_temperature.value else round(float(self.temperature.value), 2)
        return _Form(path, tuple(dict.fromkeys(models)), self.language.value or None, temperature)

    def _begin(self, form: _Form) -> None:
        self.button.disabled = True
        self.button.description = _BUSY_LABEL
        self.button.icon = "spinner spin"
        self.error.value = ""  # nothing of the previous try stays on screen
        for i, panel in enumerate((self._panel_a, self._panel_b)):
            if i < len(form.models):
                panel.running(form.models[i])
            else:
                panel.clear()
        self._say(f"Transcribing {form.path.name} with {' and '.join(form.models)}…")

    def _work(self, form: _Form) -> pd.DataFrame:
        started = time.perf_counter()
        try:
            try:
                # a bad file fails here, locally, with a typed error (a long one is fine: it goes in chunks)
                _, fmt = check_file(str(form.path), max_bytes=None)
                check_header(str(form.path), fmt)
            except STTError as exc:
                outcomes: list[_Outcome] = [(m, None, exc) for m in form.models]
                rows = self._show(form, outcomes, time.perf_counter() - started, shared_error=True)
            else:
                with concurrent.futures.ThreadPoolExecutor(len(form.models)) as pool:
                    outcomes = list(pool.map(lambda m: self._one(form, m), form.models))
                rows = self._show(form, outcomes, time.perf_counter() - started)
        except Exception as exc:  # never a traceback in the notebook: say what happened
            log.exception("the widget's run failed")
            headline, detail = friendly_error(exc)
            self.error.value = error_html([("", headline, self._client.settings.redact(detail))])
            rows = _frame([])
        finally:
            self.button.disabled = False
            self.button.description = _IDLE_LABEL
            self.button.icon = "microphone"
        self.results = rows
        return rows

    def _one(self, form: _Form, model: str) -> _Outcome:
        frame = pd.DataFrame({"path": [str(form.path)]})
        panel = self._panel_a if model == form.models[0] else self._panel_b

        def show_chunks(p: RunProgress) -> None:
            if p.chunks_expected > 1 and p.done < p.rows:
                panel.progress(f"Transcribing… {p.answered} of about {p.chunks_expected} chunks answered")

        try:
            out = transcribe_column(
                frame,
                "path",
                model=model,
                language=form.language,
                temperature=form.temperature,
                cache=self._cache,
                progress=show_chunks,
                client=self._client,
                on_error="raise",  # a failure comes back as its exception: its type decides what is shown
                **self._run_options,
            )
        except (STTError, ValueError) as exc:
            return model, None, exc
        row = {name: _plain(out[name].iloc[0]) for name in RESULT_COLUMNS}
        return model, row, None

    def _show(
        self, form: _Form, outcomes: list[_Outcome], wall_s: float, *, shared_error: bool = False
    ) -> pd.DataFrame:
        """Fill the panels and the error area; ``shared_error``: one message for all models (a bad file)."""
        # Errors from the client quote the server with the key already redacted, and our own words must stay
        # whole (a key "x" must not turn "text" into "te***t"): nothing is redacted again here.
        messages: list[tuple[str, str, str]] = []
        records = []
        failed: list[str] = []
        for i, (model, row, exc) in enumerate(outcomes):
            record = dict.fromkeys(RESULT_COLUMNS) | (row or {})
            if exc is None and row is not None and row.get("error") is not None:
                exc = STTError(str(row["error"]))  # recorded rather than raised (not expected with on_error="raise")
                row = None
            if exc is not None:
                failed.append(model)
                headline, _ = friendly_error(
                    exc, model=model, base_url=self._client.base_url, retried=self._client.settings.max_retries
                )
                label = model if len(outcomes) > 1 and not shared_error else ""
                if not (shared_error and messages):
                    messages.append((label, headline, _detail(exc)))
                record["error"] = _detail(exc)
            records.append({"model": model, "path": str(form.path), **record})
            (self._panel_a if i == 0 else self._panel_b).show(model, row if exc is None else None, wall_s)
        self.error.value = error_html(messages)
        done = [r for r in records if r["model"] not in failed]
        cached = sum(bool(r["cached"]) for r in done)
        took = f"{wall_s:.2f} s" + (f" ({cached} from the cache)" if cached else "")
        if not failed:
            note = f"Done in {took}"
        elif done:
            note = f"{' and '.join(failed)} failed; {' and '.join(str(r['model']) for r in done)} done in {took}"
        else:
            note = "Failed: see the message above."
        self._say(note)
        return _frame(records)

    @property
    def states(self) -> tuple[str, ...]:
        """Each side's state, model A first: ``"idle"``, ``"running"``, ``"done"`` or ``"failed"``."""
        sides = (self._panel_a, self._panel_b) if self.compare.value else (self._panel_a,)
        return tuple(panel.state for panel in sides)

    def close(self) -> None:
        """Close the widget (and the client it made)."""
        if getattr(self, "_own_client", False):  # False when __init__ failed early (ipywidgets' __del__ calls this)
            self._client.close()
        super().close()


def try_file(path: str | os.PathLike[str] | None = None, **options: Any) -> TranscribeWidget:
    """A ``TranscribeWidget`` for ``path`` (optional); as a cell's last line, it shows. Options as the widget's.

    Example::

        stt_frames.try_file("data/en/flite_slt_00.wav", base_url="http://127.0.0.1:8787/api/v1")
    """
    return TranscribeWidget(path=path, **options)
