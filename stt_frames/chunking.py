"""Long and large recordings: decode as a stream, cut at the quietest point near each limit, encode each chunk.

A recording longer than ``chunk_seconds``, or whose upload would pass ``max_upload_bytes``, is never
held whole in memory. PyAV decodes it as a stream to 16 kHz mono PCM; when the buffer reaches the
limit, the cut goes in the quietest 200 ms of the last quarter of the chunk (at most the last 60 s),
so a word is not split where a pause exists. Each chunk is encoded on its own, as 16 kHz mono FLAC
(lossless) or Opus at 24 kbps in Ogg, and at most one chunk's PCM is held at a time.

Example::

    from stt_frames.chunking import UploadPolicy, iter_chunks, encode_chunk
    policy = UploadPolicy(chunk_seconds=120.0)
    for chunk in iter_chunks("interview.mp3", max_seconds=policy.chunk_limit()):
        clip = encode_chunk(chunk.pcm, "flac")
        print(chunk.index, chunk.span, len(clip.data))
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from .audio import AudioInput
from .errors import AudioError

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "SAMPLE_RATE",
    "UPLOAD_FORMATS",
    "Chunk",
    "UploadFormat",
    "UploadPolicy",
    "encode_chunk",
    "find_cut",
    "format_clock",
    "format_span",
    "iter_chunks",
    "probe_seconds",
]

#: Longest piece of audio sent in one request by default: 10 minutes (OpenAI's gpt-4o-transcribe takes
#: about 23 minutes; proxies cut a response after about 100 s, which a 10-minute chunk still needs to beat).
DEFAULT_CHUNK_SECONDS: Final = 600.0
#: Largest upload (the audio bytes, before base64) by default: 25 MiB, OpenAI's limit per file.
DEFAULT_MAX_UPLOAD_BYTES: Final = 25 * 2**20
#: ``upload_format`` choices: send files that fit as they are, or re-encode everything.
UPLOAD_FORMATS: Final = ("original", "flac", "opus")
UploadFormat = Literal["original", "flac", "opus"]
#: Sample rate of the chunks (speech models resample to 16 kHz anyway).
SAMPLE_RATE: Final = 16_000
#: Opus bit rate: 24 kbps, about 10 MB per hour of audio.
OPUS_BIT_RATE: Final = 24_000
#: The cut may move back from the limit by this fraction of the chunk, at most ``MAX_SEARCH_SECONDS``.
SEARCH_FRACTION: Final = 0.25
MAX_SEARCH_SECONDS: Final = 60.0
#: The quietest window of this length is where the cut goes.
PAUSE_SECONDS: Final = 0.2

# Worst-case bytes per second of audio of each chunk encoding: FLAC never exceeds raw 16-bit PCM by more
# than its framing; Opus is constant-bitrate-ish with Ogg pages around it.
_WORST_BYTES_PER_SECOND: Final = {"flac": 2 * SAMPLE_RATE * 1.02 + 64, "opus": OPUS_BIT_RATE / 8 * 1.25 + 64}
_CONTAINER: Final = {"flac": ("flac", "flac", "flac"), "opus": ("ogg", "libopus", "ogg")}


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """How audio is uploaded: when to cut a recording into chunks, and in which format.

    - ``chunk_seconds``: longest audio in one request (None: never cut; a file over
      ``max_upload_bytes`` is then an error before anything is uploaded).
    - ``max_upload_bytes``: largest audio upload per request (the file's bytes, before base64).
    - ``upload_format``: "original" sends a file that fits byte for byte and chunks as FLAC;
      "flac" and "opus" re-encode everything to 16 kHz mono.

    Example::

        UploadPolicy(chunk_seconds=120.0, upload_format="opus").chunk_limit()  # 120.0
    """

    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    upload_format: UploadFormat = "original"

    def __post_init__(self) -> None:
        cs = self.chunk_seconds
        if cs is not None and (isinstance(cs, bool) or not isinstance(cs, int | float) or not 1.0 <= cs <= 86_400):
            raise ValueError(f"chunk_seconds must be a number of seconds in [1, 86400] or None, got {cs!r}")
        mb = self.max_upload_bytes
        if isinstance(mb, bool) or not isinstance(mb, int) or mb < 64_000:
            raise ValueError(f"max_upload_bytes must be a whole number of bytes >= 64000, got {mb!r}")
        if self.upload_format not in UPLOAD_FORMATS:
            raise ValueError(f"upload_format must be one of {', '.join(UPLOAD_FORMATS)}, got {self.upload_format!r}")

    @property
    def chunk_encoding(self) -> str:
        """The encoding of chunks: "opus" when asked for, else lossless "flac"."""
        return "opus" if self.upload_format == "opus" else "flac"

    def chunk_limit(self) -> float:
        """Longest chunk in seconds: ``chunk_seconds``, shortened so that an encoded chunk fits ``max_upload_bytes``."""
        fits = (self.max_upload_bytes - 4096) / _WORST_BYTES_PER_SECOND[self.chunk_encoding]
        return max(1.0, min(self.chunk_seconds if self.chunk_seconds is not None else fits, fits))

    def sends_whole(self, size: int, seconds: float | None, *, where: str = "audio") -> bool:
        """Whether a file of ``size`` bytes and ``seconds`` of audio goes byte for byte in one request.

        Raises AudioError (its message starts with ``where``) when it cannot go whole and chunking is off.
        """
        if self.upload_format != "original":
            return False
        if size > self.max_upload_bytes:
            if self.chunk_seconds is None:
                raise AudioError(
                    f"{where}: file is {size / 2**20:.1f} MiB, over max_upload_bytes={self.max_upload_bytes:,} "
                    f"({self.max_upload_bytes / 2**20:.1f} MiB); set chunk_seconds (e.g. 600) to send it in chunks, "
                    "or raise max_upload_bytes if your provider accepts more"
                )
            return False
        return self.chunk_seconds is None or seconds is None or seconds <= self.chunk_seconds

    def key_part(self) -> dict[str, Any]:
        """What a chunked row's cache key depends on besides the audio and the request parameters."""
        return {"chunks": self.chunk_encoding, "limit": round(self.chunk_limit(), 3), "v": 1}


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a recording: its place (``index``, ``start``/``end`` seconds) and 16 kHz mono int16 PCM."""

    index: int
    start: float
    end: float
    pcm: bytes

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def span(self) -> str:
        """``"00:10:00-00:20:00"``: where the chunk lies in the recording."""
        return format_span(self.start, self.end)

    def sha256(self) -> str:
        """Hex sha256 of the samples: the content part of the chunk's cache key."""
        return hashlib.sha256(self.pcm).hexdigest()

    def __repr__(self) -> str:
        return f"Chunk(index={self.index}, span={self.span!r}, bytes={len(self.pcm)})"


def format_clock(seconds: float) -> str:
    """``"01:02:03"`` for a time in seconds."""
    t = round(seconds)
    return f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def format_span(start: float, end: float) -> str:
    """``"01:02:03-01:12:03"`` for a start and end in seconds."""
    return f"{format_clock(start)}-{format_clock(end)}"


def find_cut(samples: np.ndarray, lo: int, hi: int) -> int:
    """The sample index in ``[lo, hi]`` at the middle of the quietest ``PAUSE_SECONDS`` window (latest on ties).

    Example::

        find_cut(np.r_[loud, silence, loud], 0, len(...))  # inside the silence
    """
    frame = SAMPLE_RATE // 100  # 10 ms
    width = max(1, round(PAUSE_SECONDS * SAMPLE_RATE / frame))
    lo = max(0, lo)
    n = (hi - lo) // frame
    if n <= width:
        return hi
    span = samples[lo : lo + n * frame].astype(np.float32)
    energy = np.einsum("ij,ij->i", span.reshape(n, frame), span.reshape(n, frame))
    window = np.convolve(energy, np.ones(width, dtype=np.float32), mode="valid")
    quietest = len(window) - 1 - int(np.argmin(window[::-1]))  # latest minimum: chunks as long as possible
    return lo + (quietest + width // 2) * frame


def _open(source: str | os.PathLike[str] | bytes) -> Any:
    import av

    target: Any = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    return av.open(target, mode="r")


def _where(source: str | os.PathLike[str] | bytes) -> str:
    return "audio bytes" if isinstance(source, bytes) else os.fspath(source)


def _pcm_wav_seconds(data: bytes) -> float | None:
    """The duration of a plain PCM WAV file's bytes, read from its header as ``wave`` reads it; else None.

    ``wave.open`` costs about 20 microseconds a file; a request of a one-second clip costs a few hundred
    in all, so the common case (RIFF, ``fmt `` with format 1, then ``data``) is read here with ``struct``.
    Anything else (WAVE_FORMAT_EXTENSIBLE, odd layouts, a broken header) returns None and goes the slow way.
    """
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, framesize, rate = 12, 0, 0
    while pos + 8 <= len(data):
        name = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if name == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag != 1 or not channels or not bits:
                return None
            framesize = channels * ((bits + 7) // 8)
        elif name == b"data":
            if not framesize or not rate:
                return None
            return (size // framesize) / rate
        pos = body + size + (size & 1)
    return None


def probe_seconds(source: str | os.PathLike[str] | bytes) -> float | None:
    """The duration of a recording in seconds, from its header; None when the container does not say.

    WAV is read with the standard library, other formats with PyAV (a header read, not a decode).

    Example::

        probe_seconds("data/en/flite_slt_00.wav")  # 2.6
    """
    if isinstance(source, bytes):
        found = _pcm_wav_seconds(source)
        if found is not None:
            return found
    # wave raises wave.Error, EOFError, RuntimeError ... on files it cannot read: then PyAV tries
    with (
        contextlib.suppress(Exception),
        wave.open(io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)) as w,
    ):
        rate = w.getframerate()
        if rate:
            return w.getnframes() / rate
    try:
        with _open(source) as container:
            if container.duration is not None:
                return float(container.duration / 1_000_000)
            if container.streams.audio:
                stream = container.streams.audio[0]
                if stream.duration is not None and stream.time_base is not None:
                    return float(stream.duration * stream.time_base)
    except Exception:  # PyAV raises FFmpeg errors of many types on bad input; the decode will say what is wrong
        return None
    return None


def iter_chunks(source: str | os.PathLike[str] | bytes, *, max_seconds: float) -> Iterator[Chunk]:
    """Decode ``source`` (a path or a file's bytes) as a stream and yield chunks of at most ``max_seconds``.

    Only the current chunk's PCM is held in memory. Raises AudioError when the audio cannot be decoded
    or holds no samples.

    Example::

        [c.span for c in iter_chunks("lecture.flac", max_seconds=600)]
    """
    import av

    limit = max(SAMPLE_RATE, int(max_seconds * SAMPLE_RATE))
    search = int(min(MAX_SEARCH_SECONDS, SEARCH_FRACTION * max_seconds) * SAMPLE_RATE)
    where = _where(source)
    # one buffer, filled in place: a chunk's samples are copied once, into the chunk's bytes
    buf = np.empty(limit + 8 * SAMPLE_RATE, dtype=np.int16)
    buffered = 0
    start = 0  # samples before the buffer
    index = 0

    def cut(final: bool) -> Chunk:
        nonlocal buffered, start, index
        at = buffered if final else find_cut(buf, limit - search, limit)
        chunk = Chunk(index, start / SAMPLE_RATE, (start + at) / SAMPLE_RATE, buf[:at].tobytes())
        rest = buffered - at
        buf[:rest] = buf[at:buffered]
        buffered = rest
        start += at
        index += 1
        return chunk

    def add(block: np.ndarray) -> Iterator[Chunk]:
        nonlocal buf, buffered
        while len(block):
            room = min(len(block), limit + 1 - buffered)
            if room <= 0:
                yield cut(final=False)
                continue
            buf[buffered : buffered + room] = block[:room]
            buffered += room
            block = block[room:]
            if buffered > limit:
                yield cut(final=False)

    try:
        with _open(source) as container:
            if not container.streams.audio:
                raise AudioError(f"{where}: the file has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            frames = container.decode(audio=0)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    frame = None
                for out in resampler.resample(frame):
                    yield from add(out.to_ndarray().reshape(-1))
                if frame is None:
                    break
    except AudioError:
        raise
    except Exception as exc:  # FFmpeg errors, ValueError ... on bad input
        detail = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
        raise AudioError(f"{where}: cannot decode the audio ({detail})") from None
    if buffered:
        yield cut(final=True)
    elif index == 0:
        raise AudioError(f"{where}: the file decodes to no audio samples")


def encode_chunk(pcm: bytes, encoding: str) -> AudioInput:
    """16 kHz mono int16 PCM as a FLAC file or Opus-in-Ogg file (contract formats "flac" / "ogg").

    The bytes are the same for the same samples (FFmpeg's bitexact mode).

    Example::

        clip = encode_chunk(chunk.pcm, "opus")  # AudioInput(format='ogg', ...)
    """
    import av

    container_format, codec, contract_format = _CONTAINER[encoding]
    samples = np.frombuffer(pcm, dtype="<i2")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_format, options={"fflags": "+bitexact"}) as out:
        stream: Any = out.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        if encoding == "opus":
            stream.bit_rate = OPUS_BIT_RATE
        step = SAMPLE_RATE * 10  # hand the encoder 10 s at a time
        for i in range(0, len(samples), step):
            frame = av.AudioFrame.from_ndarray(samples[None, i : i + step], format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return AudioInput(data=buf.getvalue(), format=contract_format)
