"""One request and one answer, independent of sync or async: the body we send, what we make of the reply.

Transport errors from httpx (and the aiohttp transport under it) are translated here, in one place.

The answer is data and is never altered: text, usage and the raw JSON (which the cache stores) are what
the server sent, byte for byte, even when it contains the API key (a server that echoes the key in a 200
answer, or a one-letter key that occurs in any word). The key is redacted only in the error messages built
here, and there only in the parts that quote the server, never in our own words.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import httpx

from ._settings import Settings, redact_strings
from .audio import AudioInput
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    MalformedResponseError,
    STTError,
    status_error,
)
from .retry import parse_retry_after
from .types import Transcription

__all__ = ["build_body", "map_transport_error", "parse_response"]

#: Stands in for the audio while the rest of the body is JSON-encoded (control characters: never in real input).
_AUDIO_PLACEHOLDER = "\x00stt-frames-audio\x00"
_AUDIO_PLACEHOLDER_JSON = json.dumps(_AUDIO_PLACEHOLDER).encode("ascii")

#: Field names of a 200 answer that an error message may quote; never redacted, so a short key cannot rename them.
_CONTRACT_FIELDS: frozenset[str] = frozenset(
    {"text", "usage", "cost", "input_tokens", "output_tokens", "seconds", "total_tokens"}
)


def build_body(
    clip: AudioInput,
    *,
    model: str,
    language: str | None = None,
    temperature: float | None = None,
    provider_options: Mapping[str, Any] | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON request body of the contract; ``extra_body`` keys are added last (and win)."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a non-empty string such as 'openai/whisper-1', got {model!r}")
    audio: dict[str, Any] = {"data": _AUDIO_PLACEHOLDER, "format": clip.format}
    body: dict[str, Any] = {"model": model, "input_audio": audio}
    if language is not None:
        body["language"] = language
    if temperature is not None:
        body["temperature"] = float(temperature)
    if provider_options:
        body["provider"] = {"options": dict(provider_options)}
    if extra_body:
        body.update(extra_body)
    encoded = json.dumps(body, separators=(",", ":")).encode("ascii")
    # The base64 text needs no JSON escaping: splice it in rather than have json scan ~43 kB per request
    # (the same bytes as encoding it with json, at a third of the CPU: see bench/).
    found = encoded.count(_AUDIO_PLACEHOLDER_JSON)
    if found == 0:  # extra_body replaced input_audio
        return encoded
    if found == 1 and body.get("input_audio") is audio:
        head, tail = encoded.split(_AUDIO_PLACEHOLDER_JSON)
        return b"".join((head, b'"', base64.b64encode(clip.data), b'"', tail))
    audio["data"] = base64.b64encode(clip.data).decode("ascii")
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def _snippet(content: bytes, limit: int = 120) -> str:
    text = content[:limit].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text + ("..." if len(content) > limit else "")


def _looks_like_html(content: bytes, content_type: str) -> bool:
    head = content[:200].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype", b"<html"))


def _error_from_status(response: httpx.Response, settings: Settings) -> APIStatusError:
    status = response.status_code
    content = response.content
    ctype = response.headers.get("content-type", "")
    retry_after = parse_retry_after(response.headers)
    code: int | str | None = None
    metadata: dict[str, Any] | None = None
    message: str
    try:
        payload = json.loads(content) if content else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        message = settings.redact(str(err.get("message") or "no message"))
        code = err.get("code")
        if isinstance(code, str):
            code = settings.redact(code)
        if isinstance(err.get("metadata"), dict):
            metadata = redact_strings(err["metadata"], settings.api_key)
    elif not content:
        message = f"the server answered {status} with an empty body"
    elif _looks_like_html(content, ctype):
        message = f"the server answered {status} with an HTML page instead of JSON (a proxy or gateway failed)"
    else:
        message = f"the server answered {status}: {settings.redact(_snippet(content))}"
    return status_error(status, message, code=code, metadata=metadata, retry_after=retry_after)


def parse_response(response: httpx.Response, settings: Settings) -> Transcription:
    """Turn a fully read response into a Transcription, or raise the matching STTError."""
    if response.status_code >= 400 or response.status_code < 200:
        raise _error_from_status(response, settings)
    content = response.content
    ctype = response.headers.get("content-type", "")
    if not content.strip():
        raise MalformedResponseError(
            f"{response.status_code}: the server answered with an empty body instead of JSON",
            status=response.status_code,
        )
    try:
        payload = json.loads(content)
    except ValueError:
        if _looks_like_html(content, ctype):
            what = "an HTML page instead of JSON (a proxy may be in the way; check base_url)"
        else:
            what = f"cut-off or invalid JSON ({len(content)} bytes: {settings.redact(_snippet(content, 60))})"
        raise MalformedResponseError(
            f"{response.status_code}: the server answered with {what}",
            status=response.status_code,
            body=settings.redact(_snippet(content, 500)),
        ) from None
    try:
        return Transcription.from_json(payload)  # the answer as sent: never redacted (it is data)
    except MalformedResponseError as exc:
        reason = _reason_without_key(payload, str(exc), settings)
        raise MalformedResponseError(
            f"{response.status_code}: malformed answer: {reason}", status=response.status_code
        ) from None


def _reason_without_key(payload: Any, reason: str, settings: Settings) -> str:
    """Why ``payload`` is malformed, quoting the server's strings with the key redacted and our words intact.

    The check runs again on a copy whose strings are redacted (same structure and types, so the same
    failure): "no 'text' field" stays that even when the key is "x".
    """
    if not settings.api_key or settings.api_key not in reason:
        return reason
    try:
        Transcription.from_json(redact_strings(payload, settings.api_key, keep=_CONTRACT_FIELDS))
    except MalformedResponseError as exc:
        return str(exc)
    return settings.redact(reason)  # not reached: the copy fails as the original did


def map_transport_error(exc: Exception, settings: Settings) -> STTError:
    """Translate an httpx transport error into APITimeoutError or APIConnectionError."""
    cause = exc.__cause__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"
    detail = settings.redact(detail.strip().rstrip(":"))
    where = settings.base_url
    # The aiohttp transport reports every aiohttp connection error (dropped, refused, reset) as a connect
    # timeout; only an aiohttp error that is a TimeoutError really is one.
    from_aiohttp = cause is not None and type(cause).__module__.split(".")[0] == "aiohttp"
    not_a_timeout = from_aiohttp and not isinstance(cause, TimeoutError)
    if isinstance(exc, httpx.TimeoutException) and not not_a_timeout:
        return APITimeoutError(f"no answer from {where} in time ({detail}); retry, or raise timeout=")
    return APIConnectionError(f"connection to {where} failed or was dropped ({detail}); check base_url and the network")
