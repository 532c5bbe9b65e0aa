"""The local server's own exceptions (the client's are in ``stt_frames.errors``)::

    RequestError               a request the server refuses: status, message, metadata, audio sha256
    DecodeError (ValueError)   the audio bytes cannot be decoded
    ├── UnsupportedWavEncoding a WAV whose samples are compressed (its header does not give the duration)
    └── AudioTooLong           the audio runs past --max-audio-seconds
    WeightsMismatch            a pinned Whisper model.bin does not have its recorded sha256
    InjectedDisconnect         an in-process client's stand-in for a dropped connection (fault injection)

Example::

    from stt_frames.server.errors import RequestError
    RequestError("input_audio is required", status=400).status  # 400
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "AudioTooLong",
    "DecodeError",
    "InjectedDisconnect",
    "RequestError",
    "UnsupportedWavEncoding",
    "WeightsMismatch",
]


class RequestError(Exception):
    """A request the server refuses: ``status``, ``message``, optional ``metadata`` and audio ``sha256``."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        metadata: dict[str, Any] | None = None,
        sha256: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = metadata
        self.sha256 = sha256


class DecodeError(ValueError):
    """The audio bytes cannot be decoded; the message says why (the server prefixes what and where)."""


class UnsupportedWavEncoding(DecodeError):
    """A valid WAV file whose samples are compressed, so its header alone does not give the duration."""


class AudioTooLong(DecodeError):
    """The audio runs past the server's limit; ``seconds`` is its duration (None when unknown), ``limit`` the limit.

    Picklable (it crosses from the engine's worker process): its ``args`` are ``(seconds, limit)``.
    """

    def __init__(self, seconds: float | None, limit: float) -> None:
        super().__init__(seconds, limit)
        self.seconds = seconds
        self.limit = limit

    def __str__(self) -> str:
        length = "longer" if self.seconds is None else f"{self.seconds:.1f} s long,"
        return f"the audio is {length} over this server's limit of {self.limit:g} s per request (max_audio_seconds)"


class WeightsMismatch(RuntimeError):
    """A pinned model's ``model.bin`` does not have the recorded sha256: it is not loaded."""


class InjectedDisconnect(httpx.RemoteProtocolError):
    """Raised to an in-process client (``httpx.ASGITransport``) in place of a dropped connection."""
