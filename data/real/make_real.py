"""Rebuild data/real/ from the pocketsphinx 5.1.1 source distribution on PyPI (its test recordings).

    pip download --no-deps --no-binary :all: pocketsphinx==5.1.1 -d /tmp/ps
    python data/real/make_real.py /tmp/ps/pocketsphinx-5.1.1.tar.gz

Writes the clips under data/real/en/ and data/real/real.csv (path, language, reference, source, license,
seconds). The recordings are copied byte for byte (goforward.raw, headerless 16 kHz PCM, gets a WAV header);
the references are the transcripts that ship beside them, lowercased as they are. SOURCES.md says where
each clip comes from and under which license; tests/test_data_real.py checks that it lists every file.
"""

from __future__ import annotations

import csv
import io
import sys
import tarfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = "pocketsphinx-5.1.1/test/data"
LIBRIVOX = ["0870", "0880", "0890", "0920", "0930"]
CARDS = {  # test/data/cards/cards.transcription
    "001": "ten of clubs",
    "002": "four queen of clubs",
    "003": "seven of clubs",
    "004": "five five",
    "005": "eight of spades four of clubs seven of hearts",
}
LIBRIVOX_LICENSE = "public domain (LibriVox recording); shipped in pocketsphinx under BSD-2-Clause"
CMU_LICENSE = "BSD-2-Clause (Carnegie Mellon University, pocketsphinx test data)"


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def _pcm_to_wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return out.getvalue()


def main(sdist: str) -> None:
    rows = []
    with tarfile.open(sdist) as tar:

        def read(name: str) -> bytes:
            member = tar.extractfile(f"{ROOT}/{name}")
            assert member is not None, name
            return member.read()

        clips: list[tuple[str, bytes, str, str, str]] = []
        for n in LIBRIVOX:
            stem = f"librivox/sense_and_sensibility_01_austen_64kb-{n}"
            text = read(f"{stem}.txt").decode().strip()
            clips.append((f"librivox_sense_{n}.wav", read(f"{stem}.wav"), text, f"{stem}.wav", LIBRIVOX_LICENSE))
        for n, text in CARDS.items():
            clips.append((f"cmu_cards_{n}.wav", read(f"cards/{n}.wav"), text, f"cards/{n}.wav", CMU_LICENSE))
        goforward = _pcm_to_wav(read("goforward.raw"))
        clips.append(("cmu_goforward.wav", goforward, "go forward ten meters", "goforward.raw", CMU_LICENSE))
    (HERE / "en").mkdir(exist_ok=True)
    for name, data, text, source, license in clips:
        (HERE / "en" / name).write_bytes(data)
        rows.append([f"en/{name}", "en", text, f"{ROOT}/{source}", license, f"{_wav_seconds(data):.2f}"])
    with open(HERE / "real.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "language", "reference", "source", "license", "seconds"])
        writer.writerows(rows)


if __name__ == "__main__":
    main(sys.argv[1])
