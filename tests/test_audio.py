"""Audio input: paths and bytes in, checked bytes and a contract format out, or an AudioError that says why."""

from __future__ import annotations

import io
import os
import struct
import wave
from pathlib import Path
from typing import Any

import pytest

from stt_frames.audio import (
    FORMATS,
    AudioInput,
    detect_format,
    format_from_extension,
    prepare_audio,
    probe_duration,
    read_audio,
)
from stt_frames.errors import AudioError, STTError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def _wav_header() -> bytes:
    """A minimal RIFF/WAVE header with a fmt chunk and an empty data chunk, written by hand."""
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


#: The smallest headers that identify each contract format, built by hand (padding after them).
HEADERS: dict[str, bytes] = {
    "wav": _wav_header(),
    "mp3": b"\xff\xfb\x90\x64" + bytes(28),  # MPEG-1 Layer III frame header
    "flac": b"fLaC\x00\x00\x00\x22" + bytes(34),  # marker + STREAMINFO block header
    "m4a": b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isommp42\x00\x00\x00\x00",
    "ogg": b"OggS\x00\x02" + bytes(8) + b"\x01\x00\x00\x00" + bytes(8),
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm",
    "aac": b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(16),  # ADTS, MPEG-4 AAC LC
}
MORE_HEADERS: dict[str, bytes] = {
    "mp3-id3": b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + b"\xff\xfb\x90\x64" + bytes(8),
    "mp3-big-id3": b"ID3\x03\x00\x00\x00\x00\x40\x00" + bytes(64),  # an 8 kB tag: the frame is not in view
    "mp3-mpeg2": b"\xff\xf3\x44\xc4" + bytes(8),  # MPEG-2 Layer III
    "aac-mpeg2": b"\xff\xf9\x50\x80\x02\x1f\xfc" + bytes(8),  # ADTS, MPEG-2 id bit
    "wav-real": b"",  # filled below
}


def _real_wav(seconds: float = 0.25, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(seconds * rate))
    return buf.getvalue()


MORE_HEADERS["wav-real"] = _real_wav()


def _data_files() -> list[Path]:
    """One real file per extension from data/, when the dataset is there."""
    if not DATA.is_dir():
        return []
    chosen: dict[str, Path] = {}
    for p in sorted(DATA.rglob("*")):
        ext = p.suffix.lower()
        if p.is_file() and format_from_extension(p) is not None and ext not in chosen:
            chosen[ext] = p
    return list(chosen.values())


DATA_FILES = _data_files()


# --------------------------------------------------------------------------- recognising formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_contract_format_has_a_header(fmt: str) -> None:
    assert fmt in HEADERS


@pytest.mark.parametrize(("fmt", "data"), HEADERS.items(), ids=list(HEADERS))
def test_detect_format_hand_built_headers(fmt: str, data: bytes) -> None:
    assert detect_format(data) == fmt


@pytest.mark.parametrize(("name", "data"), MORE_HEADERS.items(), ids=list(MORE_HEADERS))
def test_detect_format_variants(name: str, data: bytes) -> None:
    assert detect_format(data) == name.split("-")[0]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 64, b"hello world, not audio", b"RIFF\x00\x00\x00\x00AVI LIST", b"<html>", b"\xff\xd8\xff\xe0JFIF"],
    ids=["empty", "zeros", "text", "avi", "html", "jpeg"],
)
def test_detect_format_unknown(data: bytes) -> None:
    assert detect_format(data) is None


@pytest.mark.parametrize(("fmt", "data"), HEADERS.items(), ids=list(HEADERS))
def test_bytes_input_sniffs_format(fmt: str, data: bytes) -> None:
    clip = prepare_audio(data)
    assert clip == AudioInput(data=data, format=fmt, path=None)
    assert prepare_audio(bytearray(data)).format == fmt
    assert prepare_audio(memoryview(data)).data == data


@pytest.mark.parametrize(("fmt", "data"), HEADERS.items(), ids=list(HEADERS))
def test_file_with_each_format(tmp_path: Path, fmt: str, data: bytes) -> None:
    p = tmp_path / f"clip.{fmt}"
    p.write_bytes(data)
    clip = read_audio(p)
    assert (clip.data, clip.format, clip.path) == (data, fmt, str(p))
    assert prepare_audio(str(p)) == clip


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.WAV", "wav"),
        ("a.Mp3", "mp3"),
        ("a.FLAC", "flac"),
        ("a.wave", "wav"),
        ("a.mp4", "m4a"),
        ("a.M4A", "m4a"),
        ("a.oga", "ogg"),
        ("a.opus", "ogg"),
        ("a.WebM", "webm"),
        ("a.AAC", "aac"),
    ],
)
def test_extension_is_case_insensitive_and_aliased(tmp_path: Path, name: str, fmt: str) -> None:
    assert format_from_extension(name) == fmt
    p = tmp_path / name
    p.write_bytes(HEADERS[fmt])
    assert read_audio(p).format == fmt


@pytest.mark.skipif(not DATA_FILES, reason="data/ is not there (the dataset is generated separately)")
@pytest.mark.parametrize("path", DATA_FILES, ids=[p.name for p in DATA_FILES])
def test_real_files_from_data(path: Path) -> None:
    expected = format_from_extension(path)
    clip = read_audio(path)
    assert clip.format == expected
    assert clip.data == path.read_bytes()
    assert detect_format(clip.data[:4096]) == expected
    assert prepare_audio(clip.data).format == expected  # sniffed from the bytes alone


# --------------------------------------------------------------------------- what goes wrong with a path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"missing\.wav: file not found"):
        read_audio(tmp_path / "missing.wav")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "folder.wav"
    d.mkdir()
    with pytest.raises(AudioError, match="is a directory"):
        read_audio(d)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    p.touch()
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        read_audio(p)


@pytest.mark.parametrize("name", ["notes.txt", "clip", "clip.wav.bak", "clip.aiff"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(HEADERS["wav"])
    with pytest.raises(AudioError, match="unsupported file extension") as info:
        read_audio(p)
    assert ".wav, .mp3" in str(info.value)  # says what is expected


@pytest.mark.parametrize(
    ("real", "named"),
    [
        ("wav", "mp3"),
        ("flac", "wav"),
        ("ogg", "webm"),
        ("mp3", "aac"),
        ("aac", "mp3"),
        ("m4a", "flac"),
        ("webm", "ogg"),
    ],
)
def test_extension_and_bytes_disagree(tmp_path: Path, real: str, named: str) -> None:
    p = tmp_path / f"clip.{named}"
    p.write_bytes(HEADERS[real])
    with pytest.raises(AudioError) as info:
        read_audio(p)
    msg = str(info.value)
    assert f"labelled {named} but the bytes are {real}" in msg
    assert f"format={real!r}" in msg  # says what to do
    assert str(p) in msg


def test_bytes_that_are_not_audio_under_an_audio_name(tmp_path: Path) -> None:
    p = tmp_path / "clip.wav"
    p.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(AudioError, match="not a recognisable wav file"):
        read_audio(p)


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    p = tmp_path / "locked.wav"
    p.write_bytes(HEADERS["wav"])
    p.chmod(0)
    try:
        with pytest.raises(AudioError, match=r"locked\.wav: cannot read file"):
            read_audio(p)
    finally:
        p.chmod(0o644)


def test_larger_than_max_bytes(tmp_path: Path) -> None:
    p = tmp_path / "big.wav"
    data = _real_wav()
    p.write_bytes(data)
    assert read_audio(p, max_bytes=len(data)).data == data  # the limit itself is allowed
    with pytest.raises(AudioError, match=r"over the .* limit; split or compress it, or raise max_bytes"):
        read_audio(p, max_bytes=len(data) - 1)
    with pytest.raises(AudioError, match="over the"):
        prepare_audio(str(p), max_bytes=100)
    with pytest.raises(AudioError, match="over the"):
        prepare_audio(data, max_bytes=100)


@pytest.mark.parametrize("thing", [42, None, 3.5, ["a.wav"], {"path": "a.wav"}])
def test_not_a_path(thing: Any) -> None:
    with pytest.raises(AudioError, match="expected a path to an audio file") as info:
        prepare_audio(thing)
    assert type(thing).__name__ in str(info.value)


def test_audio_error_is_an_stt_error_and_a_value_error() -> None:
    assert issubclass(AudioError, STTError)
    assert issubclass(AudioError, ValueError)


# --------------------------------------------------------------------------- bytes and format=


def test_empty_bytes() -> None:
    with pytest.raises(AudioError, match="empty"):
        prepare_audio(b"")


def test_unknown_bytes_need_format() -> None:
    data = b"\x00\x01\x02\x03 raw audio in a layout we cannot sniff"
    with pytest.raises(AudioError, match="pass format="):
        prepare_audio(data)
    # ... and format= is then trusted, as the message promises.
    assert prepare_audio(data, format="aac") == AudioInput(data=data, format="aac")


@pytest.mark.parametrize(("given", "expected"), [("WAV", "wav"), (".wav", "wav"), ("wave", "wav"), ("mp4", "m4a")])
def test_format_argument_is_normalised(given: str, expected: str) -> None:
    data = HEADERS[expected]
    assert prepare_audio(data, format=given).format == expected


def test_format_argument_disagreeing_with_bytes() -> None:
    with pytest.raises(AudioError, match="labelled mp3 but the bytes are wav"):
        prepare_audio(HEADERS["wav"], format="mp3")


def test_format_argument_disagreeing_with_file(tmp_path: Path) -> None:
    p = tmp_path / "clip.wav"
    p.write_bytes(HEADERS["wav"])
    assert prepare_audio(p, format="WAV").format == "wav"
    with pytest.raises(AudioError, match="labelled flac but the bytes are wav"):
        prepare_audio(p, format="flac")


@pytest.mark.parametrize("fmt", ["xyz", "pcm", "aiff"])
def test_unsupported_format_argument(fmt: str) -> None:
    with pytest.raises(AudioError, match=f"unsupported audio format '{fmt}'; expected one of wav, mp3"):
        prepare_audio(HEADERS["wav"], format=fmt)


def test_audio_input_repr_is_short() -> None:
    clip = prepare_audio(_real_wav(1.0))
    assert repr(clip) == "AudioInput(format='wav', bytes=32044, path=None)"


# --------------------------------------------------------------------------- duration


def test_probe_duration_wav() -> None:
    assert probe_duration(_real_wav(1.0), "wav") == pytest.approx(1.0)
    assert probe_duration(_real_wav(0.5, rate=8000), "wav") == pytest.approx(0.5)
    assert probe_duration(b"RIFF junk", "wav") is None


@pytest.mark.skipif(not DATA_FILES, reason="data/ is not there")
def test_probe_duration_other_formats() -> None:
    pytest.importorskip("av", reason="decoding non-WAV audio needs the 'local' extra (PyAV)")
    for path in DATA_FILES:
        clip = read_audio(path)
        seconds = probe_duration(clip.data, clip.format)
        assert seconds is not None, path
        assert 0.3 < seconds < 30, (path, seconds)
