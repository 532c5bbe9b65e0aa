"""Reading audio input: a path or bytes in, checked bytes and a contract format out.

The format comes from the file extension (any case) and is checked against the magic bytes, so a
mislabelled file fails here, locally and for free, instead of at the provider.

Example::

    from stt_frames.audio import read_audio
    clip = read_audio("data/en/flite_slt_00.wav")
    clip.format, len(clip.data)
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import AudioError

__all__ = [
    "DEFAULT_MAX_AUDIO_BYTES",
    "FORMATS",
    "AudioInput",
    "check_file",
    "check_header",
    "detect_format",
    "find_audio",
    "format_from_extension",
    "prepare_audio",
    "probe_duration",
    "read_audio",
]

#: The formats the API contract lists.
FORMATS: tuple[str, ...] = ("wav", "mp3", "flac", "m4a", "ogg", "webm", "aac")

#: Default size limit for one file: 25 MB, the limit of OpenAI's Whisper API (the strictest common
#: provider behind OpenRouter). Base64 makes the request body about 33 MB. Override with ``max_bytes=``.
DEFAULT_MAX_AUDIO_BYTES: int = 25_000_000

_EXTENSIONS: dict[str, str] = {
    ".wav": "wav",
    ".wave": "wav",
    ".mp3": "mp3",
    ".flac": "flac",
    ".m4a": "m4a",
    ".mp4": "m4a",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".opus": "ogg",
    ".webm": "webm",
    ".aac": "aac",
}


@dataclass(frozen=True, slots=True)
class AudioInput:
    """Audio ready to send: the raw bytes, the contract format, and where it came from."""

    data: bytes
    format: str
    path: str | None = None

    def __repr__(self) -> str:
        return f"AudioInput(format={self.format!r}, bytes={len(self.data)}, path={self.path!r})"


def _skip_id3(head: bytes) -> bytes:
    """Return ``head`` after a leading ID3v2 tag, if there is one."""
    if head[:3] == b"ID3" and len(head) >= 10:
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        return head[10 + size :]
    return head


def detect_format(data: bytes) -> str | None:
    """Guess the contract format of ``data`` from its magic bytes; None when it is not recognised.

    Example::

        detect_format(open("clip.flac", "rb").read(64))  # 'flac'
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[4:8] == b"ftyp":
        return "m4a"
    body = _skip_id3(data)
    if len(body) >= 2 and body[0] == 0xFF:
        if body[1] & 0xF6 == 0xF0:  # ADTS sync word with layer bits 00
            return "aac"
        if body[1] & 0xE0 == 0xE0 and body[1] & 0x06:  # MPEG audio frame, layer I-III
            return "mp3"
    if data[:3] == b"ID3":
        return "mp3"  # a tag larger than what we were shown; ID3 is an MP3 convention
    return None


def format_from_extension(path: str | os.PathLike[str]) -> str | None:
    """The contract format for a file name's extension (any case), or None."""
    return _EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())


def _check_format(fmt: str, data: bytes, where: str, *, explicit: bool = False) -> str:
    """``fmt`` normalised, checked against the magic bytes; an ``explicit`` format (``format=``) is
    trusted when the bytes are not recognised, since sniffing cannot know every variant of a format."""
    fmt = fmt.lower().lstrip(".")
    fmt = _EXTENSIONS.get("." + fmt, fmt)
    if fmt not in FORMATS:
        raise AudioError(f"{where}: unsupported audio format {fmt!r}; expected one of {', '.join(FORMATS)}")
    sniffed = detect_format(data[:4096])
    if sniffed is None and explicit:
        return fmt
    if sniffed is None:
        raise AudioError(
            f"{where}: the bytes are not a recognisable {fmt} file (unknown header {data[:8]!r}); is it really audio?"
        )
    if sniffed != fmt:
        raise AudioError(
            f"{where}: labelled {fmt} but the bytes are {sniffed}; rename the file or pass format={sniffed!r}"
        )
    return fmt


def check_file(
    path: str, *, max_bytes: int | None = DEFAULT_MAX_AUDIO_BYTES, limit_name: str = "max_bytes"
) -> tuple[os.stat_result, str]:
    """Check a file without reading it; returns its stat and format (from the extension).

    Raises ``AudioError`` when it is missing, a directory, empty, larger than ``max_bytes`` (None: no
    limit; ``limit_name`` is the setting the message tells the user to raise) or has an extension that is
    not a contract format.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{path}: file is empty")
    if max_bytes is not None and st.st_size > max_bytes:
        raise AudioError(
            f"{path}: file is {st.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
            f"split or compress it, or raise {limit_name}"
        )
    fmt = format_from_extension(path)
    if fmt is None:
        suffix = os.path.splitext(path)[1]
        raise AudioError(
            f"{path}: unsupported file extension {suffix or '(none)'!r}; "
            f"expected one of {', '.join('.' + f for f in FORMATS)}"
        )
    return st, fmt


def find_audio(folder: str | os.PathLike[str], *, limit: int | None = None) -> list[str]:
    """The audio files under ``folder`` (recursively, sorted, hidden ones skipped), as paths under it.

    A file is audio when its extension names a contract format (see ``format_from_extension``). The CLI
    (a folder as INPUT) and the widget (its file list) both use this.

    Example::

        find_audio("data")[:1]  # ['data/de/espeak_de_00.mp3']
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    found = sorted(
        str(p)
        for p in root.rglob("*")
        if format_from_extension(p) is not None
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )
    return found if limit is None else found[:limit]


def check_header(path: str, fmt: str) -> str:
    """Read the first 4 kB of ``path`` and check its bytes are a ``fmt`` file; returns the format.

    Raises ``AudioError`` when they are not (a mislabelled file fails here, without reading the rest).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return _check_format(fmt, head, path)


def read_audio(
    path: str | os.PathLike[str], *, max_bytes: int | None = DEFAULT_MAX_AUDIO_BYTES, limit_name: str = "max_bytes"
) -> AudioInput:
    """Read an audio file, check it, and return its bytes and format.

    Raises ``AudioError`` with a message that names the file when it is missing, a directory, empty,
    unreadable, larger than ``max_bytes`` (default 25 MB), of an unknown format, or when its bytes do
    not match its extension.

    Example::

        clip = read_audio("meeting.mp3")
    """
    if not isinstance(path, str | os.PathLike):
        raise AudioError(f"expected a path to an audio file, got {type(path).__name__}: {path!r:.80}")
    where = os.fspath(path)
    _, fmt = check_file(where, max_bytes=max_bytes, limit_name=limit_name)
    try:
        with open(where, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AudioError(f"{where}: cannot read file ({exc.strerror or exc})") from None
    return AudioInput(data=data, format=_check_format(fmt, data, where), path=where)


def prepare_audio(
    audio: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    format: str | None = None,
    max_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
) -> AudioInput:
    """Turn a path or raw bytes into checked ``AudioInput``; for bytes the format is given or sniffed."""
    if isinstance(audio, bytes | bytearray | memoryview):
        data = bytes(audio)
        if not data:
            raise AudioError("audio bytes are empty")
        if len(data) > max_bytes:
            raise AudioError(f"audio is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit")
        if format is None:
            sniffed = detect_format(data[:4096])
            if sniffed is None:
                raise AudioError(
                    f"cannot tell the audio format from the bytes (header {data[:8]!r}); pass format='wav' etc."
                )
            return AudioInput(data=data, format=sniffed)
        return AudioInput(data=data, format=_check_format(format, data, "audio bytes", explicit=True))
    clip = read_audio(audio, max_bytes=max_bytes)
    if format is not None and format.lower() != clip.format:
        return AudioInput(data=clip.data, format=_check_format(format, clip.data, str(audio)), path=clip.path)
    return clip


def probe_duration(data: bytes, format: str) -> float | None:
    """Duration in seconds read from the audio itself, or None when it cannot be had cheaply.

    WAV is read with the standard library; other formats use PyAV when the ``local`` extra is installed.
    """
    if format == "wav":
        import wave

        try:
            with wave.open(io.BytesIO(data)) as w:
                rate = w.getframerate()
                return w.getnframes() / rate if rate else None
        except (wave.Error, EOFError):
            return None
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if container.duration is not None:
                return container.duration / 1_000_000
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except Exception:
        return None
    return None
