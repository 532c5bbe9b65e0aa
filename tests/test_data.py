"""The committed sample dataset in data/: samples.csv, the clips it lists, their formats and sizes.

Rebuild the set with ``python data/make_samples.py``; see its docstring.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from stt_frames.audio import FORMATS, format_from_extension, read_audio

DATA = Path(__file__).resolve().parent.parent / "data"
CSV = DATA / "samples.csv"
COLUMNS = ["path", "language", "reference", "voice", "format"]
LANGUAGES = {"en", "es", "fr", "de"}
RATE = 16_000
MAX_TOTAL_BYTES = 8_000_000  # the synthetic clips (~1 MB) and data/real's licensed real speech (~4.6 MB)
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".webm", ".aac"}


def _read_csv() -> tuple[list[str], list[dict[str, str]]]:
    with open(CSV, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


HEADER, ROWS = _read_csv()
IDS = [row["path"] for row in ROWS]


def test_columns_exactly_in_order() -> None:
    assert HEADER == COLUMNS


def test_rows_are_complete_and_unique() -> None:
    assert 24 <= len(ROWS) <= 40, f"{len(ROWS)} clips"
    for row in ROWS:
        assert None not in row, f"{row['path']}: more fields than columns"
        assert all(row[c] and row[c].strip() for c in COLUMNS), f"empty field in {row}"
    assert len(set(IDS)) == len(IDS), "duplicate paths"


def test_every_contract_format_appears_at_least_twice() -> None:
    counts = Counter(row["format"] for row in ROWS)
    assert set(counts) == set(FORMATS), counts
    assert min(counts.values()) >= 2, counts


def test_languages() -> None:
    counts = Counter(row["language"] for row in ROWS)
    assert set(counts) >= LANGUAGES, counts
    assert all(len(code) == 2 and code.islower() for code in counts), counts


def test_every_audio_file_is_listed() -> None:
    on_disk = {
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and p.relative_to(DATA).parts[0] != "real"
    }  # data/real/ (real speech) has its own list, checked by test_data_real.py
    assert on_disk == set(IDS)


def test_total_size_under_limit() -> None:
    files = [p for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    total = sum(p.stat().st_size for p in files)
    assert total < MAX_TOTAL_BYTES, f"data/ is {total / 1e6:.2f} MB"


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_path_exists_and_is_relative(row: dict[str, str]) -> None:
    rel = Path(row["path"])
    assert not rel.is_absolute() and ".." not in rel.parts and "\\" not in row["path"]
    assert rel.parts[0] == row["language"], "clips live in a folder named after their language"
    assert (DATA / rel).is_file()


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_read_audio_accepts_and_agrees_with_csv(row: dict[str, str]) -> None:
    path = DATA / row["path"]
    assert format_from_extension(path) == row["format"]
    clip = read_audio(path)  # raises AudioError when the magic bytes do not match the extension
    assert clip.format == row["format"]
    assert len(clip.data) == path.stat().st_size


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_decodes_to_16k_mono(row: dict[str, str]) -> None:
    av = pytest.importorskip("av", reason="PyAV (the 'local' extra) decodes the clips")
    with av.open(str(DATA / row["path"])) as container:
        assert len(container.streams.audio) == 1
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if ctx.name == "opus":
            # Opus always decodes at 48 kHz; the rate it was encoded from is in the OpusHead
            # (bytes 12-15, little-endian "input sample rate").
            head = bytes(ctx.extradata or b"")
            assert head[:8] == b"OpusHead"
            assert int.from_bytes(head[12:16], "little") == RATE
            expected_rate = 48_000
        else:
            expected_rate = RATE
        samples = 0
        for frame in container.decode(stream):
            assert frame.sample_rate == expected_rate
            assert frame.layout.nb_channels == 1
            samples += frame.samples
    seconds = samples / expected_rate
    assert 2.0 <= seconds <= 5.0, f"{seconds:.2f} s"
