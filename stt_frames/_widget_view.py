"""What the widget shows: friendly error messages, the usage table, the transcript, the file list.

Pure functions from results to HTML strings, so they are tested without a kernel. The error messages
follow the exception tree in ``errors``; a row error that transcribe_column recorded as text
(``"429: ...; hint"``) is read back by its status.

Example::

    from stt_frames._widget_view import friendly_error
    friendly_error(stt_frames.RateLimitError("slow down"), model="openai/whisper-1", base_url="...")
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .audio import FORMATS, find_audio
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AudioError,
    BudgetExceededError,
    InsecureTransportError,
    MalformedResponseError,
    STTError,
)

__all__ = [
    "AUDIO_MIME_FORMAT",
    "LANGUAGES",
    "audio_files",
    "error_html",
    "friendly_error",
    "result_html",
    "usage_html",
]

#: The language menu: (label, ISO 639-1 code); "" is auto-detect (no ``language`` sent).
LANGUAGES: Final[tuple[tuple[str, str], ...]] = (
    ("auto-detect", ""),
    ("English (en)", "en"),
    ("Spanish (es)", "es"),
    ("French (fr)", "fr"),
    ("German (de)", "de"),
    ("Italian (it)", "it"),
    ("Portuguese (pt)", "pt"),
    ("Dutch (nl)", "nl"),
    ("Polish (pl)", "pl"),
    ("Swedish (sv)", "sv"),
    ("Turkish (tr)", "tr"),
    ("Russian (ru)", "ru"),
    ("Ukrainian (uk)", "uk"),
    ("Arabic (ar)", "ar"),
    ("Hindi (hi)", "hi"),
    ("Chinese (zh)", "zh"),
    ("Japanese (ja)", "ja"),
    ("Korean (ko)", "ko"),
)

#: Contract format -> the subtype the browser's <audio> element wants (``audio/<subtype>``).
AUDIO_MIME_FORMAT: Final[Mapping[str, str]] = {
    "wav": "wav",
    "mp3": "mpeg",
    "flac": "flac",
    "m4a": "mp4",
    "ogg": "ogg",
    "webm": "webm",
    "aac": "aac",
}

_BOX = "padding:6px 10px;border-radius:4px;margin:4px 0;"
_ERROR_STYLE = _BOX + "background:#fdecea;border:1px solid #f5c2c0;color:#611a15;"


def audio_files(folder: Path | None, *, limit: int = 500) -> list[str]:
    """Audio files under ``folder``, as sorted paths relative to it (at most ``limit``): ``audio.find_audio``."""
    if folder is None:
        return []
    return [Path(p).relative_to(folder).as_posix() for p in find_audio(folder, limit=limit)]


def _status_of(error: BaseException | str) -> int | None:
    """The HTTP status an error stands for, from its type (never from its text)."""
    return error.status if isinstance(error, APIStatusError) else None


def _by_status(status: int, *, model: str, base_url: str, retried: int | None) -> str:
    after = f" after {retried} retries" if retried else " after retrying"
    if status == 400:
        return "The server could not use this request (400): is the file really audio, and is the language supported?"
    if status == 401:
        return (
            "The API key is missing or was rejected (401). Set OPENROUTER_API_KEY in the environment the "
            "notebook's kernel runs in (or pass api_key=... to the widget), then try again."
        )
    if status == 402:
        return (
            "The account has no credits left (402). Add credits on openrouter.ai, then try again; "
            "results already finished are cached and cost nothing."
        )
    if status == 404:
        return f"Model {model!r} was not found on {base_url} (404). Pick a model from the list."
    if status == 408:
        return "The server timed out waiting for the upload (408). Try again."
    if status == 413:
        return "The file is too large for this server (413). Try a shorter or compressed file."
    if status == 429:
        return (
            f"Too many requests (429): the server was still rate-limiting{after}. "
            "Wait a minute and try again; finished results are cached."
        )
    if status >= 500:
        return f"The server or the model's provider failed ({status}){after}. Try again later, or another model."
    return f"The server answered with an error ({status})."


def friendly_error(
    error: BaseException | str, *, model: str = "", base_url: str = "", retried: int | None = None
) -> tuple[str, str]:
    """A (headline, detail) pair for a human: what went wrong and what to do, then the raw message.

    ``error`` is an exception, or the text transcribe_column recorded in a row's ``error`` column.
    Neither part ever contains a traceback.
    """
    detail = str(error)
    status = _status_of(error)
    if status is not None:
        return _by_status(status, model=model, base_url=base_url, retried=retried), detail
    if isinstance(error, AudioError) and detail.endswith("file not found"):
        return "No such file: check the path, or pick a file from the list or upload one.", detail
    if isinstance(error, AudioError):
        kinds = ", ".join(f.upper() for f in FORMATS)
        return f"This file cannot be transcribed. Pick an audio file ({kinds}) up to 25 MB.", detail
    if isinstance(error, APITimeoutError) or (isinstance(error, str) and error.startswith("no answer from")):
        return f"No answer from {base_url} in time. Try again, or a shorter file.", detail
    if isinstance(error, APIConnectionError) or (isinstance(error, str) and error.startswith("connection to")):
        return f"Could not reach {base_url}. Is the server running and the network up?", detail
    if isinstance(error, InsecureTransportError):
        return "Refusing to send the API key over plain http. Use an https base URL.", detail
    if isinstance(error, BudgetExceededError) or (isinstance(error, str) and error.startswith("not sent: max_cost")):
        return "Not sent: it would go over the spending cap.", detail
    if isinstance(error, MalformedResponseError):
        return "The server's answer was not what the API promises. Check the base URL.", detail
    if isinstance(error, STTError | str):
        return "The transcription failed.", detail
    return f"Something unexpected went wrong ({type(error).__name__}).", detail


def error_html(messages: list[tuple[str, str, str]]) -> str:
    """The error area: one block per (label, headline, detail); "" when there is nothing to say."""
    blocks = []
    for label, headline, detail in messages:
        who = f"<b>{html.escape(label)}</b>: " if label else ""
        more = f"<div style='font-size:85%;opacity:.8;margin-top:2px'>{html.escape(detail)}</div>" if detail else ""
        blocks.append(f"<div class='stt-error' style='{_ERROR_STYLE}'>{who}{html.escape(headline)}{more}</div>")
    return "".join(blocks)


def result_html(text: str | None, *, placeholder: str = "") -> str:
    """The transcript in a readable box (escaped); the placeholder in grey when there is none."""
    if text is None:
        return f"<div class='stt-text' style='{_BOX}color:#888'>{html.escape(placeholder)}</div>"
    shown = html.escape(text) if text.strip() else "<i>(the model heard no speech)</i>"
    return (
        f"<div class='stt-text' style='{_BOX}background:#f6f8fa;border:1px solid #d0d7de;"
        f"white-space:pre-wrap;font-size:110%'>{shown}</div>"
    )


def _num(value: Any, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    try:
        return format(value, fmt) + unit
    except (TypeError, ValueError):
        return "—"


def usage_html(row: Mapping[str, Any], *, wall_s: float | None = None) -> str:
    """The usage table for one result row: seconds, tokens, cost, latency and whether it was cached."""
    seconds = _num(row.get("seconds"), ".2f", " s")
    if row.get("seconds_source") == "audio":
        seconds += " (measured locally)"
    tokens = " / ".join(_num(row.get(k), "d") for k in ("input_tokens", "output_tokens", "total_tokens"))
    cached = row.get("cached")
    cells = [
        ("audio", seconds),
        ("tokens in / out / total", tokens),
        ("cost", _num(row.get("cost"), ".6f", " USD") if row.get("cost") is not None else "—"),
        ("latency", _num(row.get("latency_s"), ".2f", " s") + (" (when first sent)" if cached else "")),
        ("from cache", "yes" if cached else "no"),
    ]
    if wall_s is not None:
        cells.append(("this run took", _num(wall_s, ".2f", " s")))
    body = "".join(
        f"<tr><th style='text-align:left;padding:1px 12px 1px 0;font-weight:normal;color:#555'>{html.escape(k)}</th>"
        f"<td class='stt-{html.escape(k.split()[0])}' style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in cells
    )
    return f"<table class='stt-usage' style='border-collapse:collapse;margin:4px 0'>{body}</table>"
