"""data/real/: real human speech with exact transcripts; every clip is accounted for in SOURCES.md and real.csv."""

from __future__ import annotations

import csv
import re
import wave
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parent.parent / "data" / "real"
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".webm", ".aac"}
COLUMNS = ["path", "language", "reference", "source", "license", "seconds"]
#: Licenses a clip may carry here (each named in SOURCES.md's table row).
KNOWN_LICENSES = ("public domain", "BSD-2-Clause", "CC0", "CC-BY", "GPL-2")


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


def test_there_is_real_speech() -> None:
    assert len(AUDIO) >= 10
    assert sum(float(r["seconds"]) for r in ROWS) >= 30


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
    with wave.open(str(REAL / row["path"])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        assert f"{w.getnframes() / w.getframerate():.2f}" == row["seconds"]
    assert row["reference"] == row["reference"].strip() and len(row["reference"].split()) >= 2
    assert row["path"].split("/")[0] == row["language"]


def test_bsd_notice_travels_with_the_cmu_clips() -> None:
    assert "Carnegie Mellon University" in (REAL / "LICENSE-pocketsphinx.txt").read_text(encoding="utf-8")
