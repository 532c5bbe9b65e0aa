"""Parsing and validating a ``POST /audio/transcriptions`` body, with a precise message for each fault.

Example::

    from stt_frames.server.request import RequestError, parse_transcription_request
    try:
        parse_transcription_request(b'{"model": "fake/echo"}')
    except RequestError as e:
        e.status, e.message  # (400, 'input_audio is required: ...')
"""

from __future__ import annotations

import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..audio import DEFAULT_MAX_AUDIO_BYTES, FORMATS, detect_format
from .errors import RequestError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "RequestError", "TranscriptionRequest", "parse_transcription_request"]

#: Largest request body the server accepts: a 25 MB file in base64 plus room for the JSON around it.
DEFAULT_MAX_BODY_BYTES: int = DEFAULT_MAX_AUDIO_BYTES * 4 // 3 + 1_000_000

_EXAMPLE = '{"data": "<base64 of the file bytes>", "format": "wav"}'


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """A valid transcription request; ``language`` and ``temperature`` are None when not given."""

    model: str
    audio: bytes
    format: str
    sha256: str
    language: str | None
    temperature: float | None


def _kind(value: Any) -> str:
    """JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise RequestError('request body is empty; expected a JSON object like {"model": ..., "input_audio": ...}')
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise RequestError("request body is not valid JSON: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError("request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None


def _decode_audio(input_audio: Any) -> tuple[bytes, str, str]:
    """Check ``input_audio`` and return (bytes, format, sha256)."""
    if input_audio is None:
        raise RequestError(f"input_audio is required: {_EXAMPLE}")
    if not isinstance(input_audio, dict):
        raise RequestError(f"input_audio must be an object like {_EXAMPLE}, got {_kind(input_audio)}")
    data = input_audio.get("data")
    if data is None:
        if "url" in input_audio:
            raise RequestError(
                "input_audio.url is not supported by this local server; send the file as base64 in input_audio.data"
            )
        raise RequestError(f"input_audio.data is required: {_EXAMPLE}")
    if not isinstance(data, str):
        raise RequestError(f"input_audio.data must be a base64 string, got {_kind(data)}")
    if not data:
        raise RequestError("input_audio.data is empty; it must hold the base64 of the audio file")
    if data[:5].lower() == "data:":
        raise RequestError("input_audio.data is a data URI; send raw base64 without the 'data:...;base64,' prefix")
    try:
        audio = binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except UnicodeEncodeError:
        raise RequestError("input_audio.data is not valid base64: it contains non-ASCII characters") from None
    except binascii.Error as exc:
        raise RequestError(f"input_audio.data is not valid base64: {exc}") from None
    if not audio:
        raise RequestError("input_audio.data decodes to zero bytes")
    sha256 = hashlib.sha256(audio).hexdigest()

    fmt = input_audio.get("format")
    if fmt is None:
        raise RequestError(f"input_audio.format is required: one of {', '.join(FORMATS)}", sha256=sha256)
    if not isinstance(fmt, str):
        raise RequestError(f"input_audio.format must be a string, got {_kind(fmt)}", sha256=sha256)
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise RequestError(
            f"input_audio.format {fmt[:40]!r} is not supported; expected one of {', '.join(FORMATS)}",
            metadata={"supported_formats": list(FORMATS)},
            sha256=sha256,
        )
    # Bytes recognised as another format are refused here; bytes not recognised at all go to the
    # decoder, which knows more variants than the magic-byte sniffer and says precisely what fails.
    sniffed = detect_format(audio[:4096])
    if sniffed is not None and sniffed != fmt:
        raise RequestError(
            f"input_audio.format is {fmt!r} but the bytes are {sniffed}; send format={sniffed!r}",
            metadata={"detected_format": sniffed},
            sha256=sha256,
        )
    return audio, fmt, sha256


def parse_transcription_request(body: bytes) -> TranscriptionRequest:
    """Validate a request body; raise RequestError (400) with a precise message when it is malformed.

    The model id is checked for type only: whether the server has it is the caller's business (404).

    Example::

        import base64
        wav = open("clip.wav", "rb").read()
        body = json.dumps({"model": "fake/echo",
                           "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}})
        parse_transcription_request(body.encode()).format  # 'wav'
    """
    payload = _load_json(body)
    if not isinstance(payload, dict):
        raise RequestError(f"request body must be a JSON object, got {_kind(payload)}")
    audio, fmt, sha256 = _decode_audio(payload.get("input_audio"))

    model = payload.get("model")
    if model is None:
        raise RequestError("model is required, e.g. 'fake/echo' (GET /models lists them)", sha256=sha256)
    if not isinstance(model, str):
        raise RequestError(f"model must be a string, got {_kind(model)}", sha256=sha256)
    if not model.strip():
        raise RequestError("model must not be empty", sha256=sha256)

    language = payload.get("language")
    if language is not None and not isinstance(language, str):
        raise RequestError(
            f"language must be an ISO-639-1 code string such as 'en', got {_kind(language)}", sha256=sha256
        )

    temperature = payload.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise RequestError(f"temperature must be a number, got {_kind(temperature)}", sha256=sha256)
        if not 0.0 <= temperature <= 1.0:  # also false for NaN and for 1e999 (infinity)
            raise RequestError(f"temperature must be between 0 and 1, got {temperature!r:.40}", sha256=sha256)
        temperature = float(temperature)

    provider = payload.get("provider")
    if provider is not None and not isinstance(provider, dict):
        raise RequestError(f"provider must be an object, got {_kind(provider)}", sha256=sha256)

    return TranscriptionRequest(
        model=model,
        audio=audio,
        format=fmt,
        sha256=sha256,
        language=language,
        temperature=temperature,
    )
