"""Audio decoding for the local server: WAV headers with the standard library, everything else with PyAV.

``wav_duration`` reads a RIFF/WAVE header without copying the samples (the cheap path of ``fake/echo``).
``decode_pcm16`` turns any contract format (wav, mp3, flac, m4a, ogg, webm, aac) into 16 kHz mono
signed 16-bit PCM, in memory, with PyAV's bundled FFmpeg: no system ffmpeg, no temporary files.

Example::

    from stt_frames.server.decode import decode_pcm16, wav_duration
    data = open("data/en/flite_slt_00.wav", "rb").read()
    wav_duration(data), len(decode_pcm16(data, "wav")) / 32000
"""

from __future__ import annotations

import io
import struct
from typing import Any

from .._extras import require
from .errors import AudioTooLong, DecodeError, UnsupportedWavEncoding

__all__ = [
    "DEFAULT_MAX_AUDIO_SECONDS",
    "SAMPLE_RATE",
    "AudioTooLong",
    "DecodeError",
    "UnsupportedWavEncoding",
    "decode_pcm16",
    "wav_duration",
]

#: Sample rate of the PCM the engines consume.
SAMPLE_RATE: int = 16_000

#: Longest audio a model takes in one request (25 minutes, about what OpenAI's models take);
#: longer audio is refused with a 400 that states the limit and the audio's duration.
DEFAULT_MAX_AUDIO_SECONDS: float = 1500.0

# FFmpeg demuxer for each contract format (a hint; FFmpeg still checks the bytes).
_DEMUXERS: dict[str, str] = {
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "m4a": "mp4",
    "ogg": "ogg",
    "webm": "webm",
    "aac": "aac",
}

# WAVE encodings whose duration follows from the header: PCM, IEEE float, A-law, mu-law, extensible.
_UNCOMPRESSED_WAV_TAGS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})


def check_duration(seconds: float, limit: float) -> float:
    """Return ``seconds``, or raise AudioTooLong when it is over ``limit``."""
    if seconds > limit:
        raise AudioTooLong(seconds, limit)
    return seconds


def wav_duration(data: bytes) -> float:
    """Duration in seconds of a RIFF/WAVE file, from its header, without touching the samples.

    A data chunk that claims more bytes than the file holds counts only the bytes present.

    Example::

        wav_duration(open("clip.wav", "rb").read())  # 2.5
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DecodeError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise DecodeError("WAV fmt chunk is too short")
            tag, channels, rate, _byte_rate, block_align = struct.unpack_from("<HHIIH", data, body)
            fmt = (tag, channels, rate, block_align)
        elif chunk_id == b"data":
            if fmt is None:
                raise DecodeError("WAV data chunk comes before its fmt chunk")
            tag, channels, rate, block_align = fmt
            if tag not in _UNCOMPRESSED_WAV_TAGS:
                raise UnsupportedWavEncoding(f"WAV encoding 0x{tag:04x} is compressed")
            if not channels or not rate or not block_align:
                raise DecodeError(
                    f"WAV fmt chunk is invalid (channels={channels}, rate={rate}, block_align={block_align})"
                )
            frames = min(size, len(data) - body) // block_align
            if frames == 0:
                raise DecodeError("the audio has no samples")
            return frames / rate
        pos = body + size + (size & 1)
    raise DecodeError("WAV file has no data chunk" if fmt else "WAV file has no fmt chunk")


def decode_pcm16(data: bytes, format: str, *, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> bytes:
    """Decode ``data`` (a whole file in a contract ``format``) to 16 kHz mono int16 little-endian PCM.

    Raises DecodeError when the bytes cannot be decoded or hold no audio, AudioTooLong when they run past
    ``max_seconds`` (with the duration the container states, else the decoded one), MissingExtraError when
    PyAV (the ``local`` extra) is not installed.

    Example::

        pcm = decode_pcm16(open("clip.mp3", "rb").read(), "mp3")
        seconds = len(pcm) / 32000
    """
    av = require("av", "local", f"decoding {format} audio")
    limit = int(max_seconds * SAMPLE_RATE)
    out = bytearray()
    try:
        with av.open(io.BytesIO(data), mode="r", format=_DEMUXERS.get(format)) as container:
            if not container.streams.audio:
                raise DecodeError("the file has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for chunk in resampler.resample(frame):
                    out += memoryview(chunk.planes[0])[: chunk.samples * 2]
                if len(out) > 2 * limit:
                    raise AudioTooLong(_stated_seconds(container, len(out) / (2 * SAMPLE_RATE)), max_seconds)
            for chunk in resampler.resample(None):
                out += memoryview(chunk.planes[0])[: chunk.samples * 2]
    except DecodeError:
        raise
    except Exception as exc:  # PyAV raises FFmpeg errors, ValueError, IndexError, ... on bad input
        detail = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
        raise DecodeError(detail) from None
    if not out:
        raise DecodeError("the file decodes to no samples")
    return bytes(out)


def _stated_seconds(container: Any, decoded: float) -> float:
    """The duration a container states (FFmpeg reads or estimates it), or the decoded length if larger."""
    duration = container.duration  # in microseconds (AV_TIME_BASE), None when unknown
    stated = duration / 1_000_000 if isinstance(duration, int) and duration > 0 else 0.0
    return max(stated, decoded)
