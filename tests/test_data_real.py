"""data/real/: real human speech with exact transcripts; every clip is accounted for in SOURCES.md and real.csv."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
import wave
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parent.parent / "data" / "real"
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".webm", ".aac"}
COLUMNS = ["path", "language", "reference", "source", "license", "seconds"]
#: Licenses a clip may carry here (each named in SOURCES.md's table row).
KNOWN_LICENSES = ("public domain", "BSD-2-Clause", "CC0", "CC-BY-SA-3.0", "CC-BY", "GPL-2")
#: The license text that must travel with the clips of each license.
LICENSE_FILES = {
    "BSD-2-Clause": ("LICENSE-pocketsphinx.txt", "Carnegie Mellon University"),
    "CC-BY-SA-3.0": ("LICENSE-asterisk-core-sounds.txt", "Allison Smith"),
    "GPL-2": ("LICENSE-GPL-2.txt", "GNU GENERAL PUBLIC LICENSE"),
}
#: data/real/ stays small enough to live in git.
MAX_BYTES = 5_000_000


def _rows() -> list[dict[str, str]]:
    with open(REAL / "real.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return list(reader)


ROWS = _rows()
AUDIO = sorted(p.relative_to(REAL).as_posix() for p in REAL.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def _sources_rows() -> dict[str, str]:
    """SOURCES.md's table rows by the file they name (its first cell)."""
    rows = {}
    for line in (REAL / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_there_is_real_speech_in_english_and_in_two_other_languages() -> None:
    english = [r for r in ROWS if r["language"] == "en"]
    assert sum(float(r["seconds"]) for r in english) >= 300
    assert sum(len(r["reference"].split()) for r in english) >= 500
    for language in ("nl", "cs"):
        rows = [r for r in ROWS if r["language"] == language]
        assert len(rows) >= 20 and sum(float(r["seconds"]) for r in rows) >= 60, language


def test_the_pocketsphinx_clips_come_first() -> None:  # tests cut windows from the LibriVox clips
    assert [r["path"] for r in ROWS[:5]] == [
        f"en/librivox_sense_{n}.wav" for n in ("0870", "0880", "0890", "0920", "0930")
    ]


def test_data_real_is_small() -> None:
    assert sum(p.stat().st_size for p in REAL.rglob("*") if p.is_file()) <= MAX_BYTES


@pytest.mark.parametrize("path", AUDIO)
def test_every_clip_is_in_sources_md_with_its_license_and_duration(path: str) -> None:
    line = _sources_rows().get(path)
    assert line is not None, f"data/real/{path} is not listed in data/real/SOURCES.md"
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert any(name in cells[2] for name in KNOWN_LICENSES), f"no license for {path}: {cells[2]!r}"
    (row,) = [r for r in ROWS if r["path"] == path]
    assert cells[3] == row["seconds"]
    assert cells[4] == row["reference"]


def test_sources_md_and_real_csv_list_only_files_that_exist() -> None:
    assert sorted(_sources_rows()) == AUDIO
    assert sorted(r["path"] for r in ROWS) == AUDIO


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_duration_and_transcript_agree_with_the_file(row: dict[str, str]) -> None:
    path = REAL / row["path"]
    if path.suffix == ".wav":
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
    if importlib.util.find_spec("av") is not None:  # the duration the local server decodes
        from stt_frames.server.decode import decode_pcm16

        seconds = len(decode_pcm16(path.read_bytes(), path.suffix.lstrip("."))) / 32_000
        assert f"{seconds:.2f}" == row["seconds"]
    assert row["reference"] == row["reference"].strip() and len(row["reference"].split()) >= 2
    assert row["path"].split("/")[0] == row["language"]


@pytest.mark.parametrize("license", sorted(LICENSE_FILES))
def test_each_license_text_travels_with_its_clips(license: str) -> None:
    assert any(license in r["license"] for r in ROWS)
    name, marker = LICENSE_FILES[license]
    assert marker in (REAL / name).read_text(encoding="utf-8")


def test_make_real_pins_every_source_package_by_sha256() -> None:
    spec = importlib.util.spec_from_file_location("make_real", REAL / "make_real.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.PACKAGES) == 6
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in module.PACKAGES.values())
    assert module.sha256(REAL / "real.csv") == hashlib.sha256((REAL / "real.csv").read_bytes()).hexdigest()
