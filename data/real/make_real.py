"""Rebuild data/real/ (real human speech with its transcripts) from packages on PyPI and Debian.

    mkdir /tmp/real && cd /tmp/real
    pip download --no-deps --no-binary :all: pocketsphinx==5.1.1 -d .
    apt-get download asterisk-core-sounds-en=1.6.1-1 asterisk-core-sounds-en-g722=1.6.1-1 \
        fillets-ng-data=1.0.1-1.1 fillets-ng-data-nl=1.0.1-1.1 fillets-ng-data-cs=1.0.1-1.1
    python data/real/make_real.py /tmp/real

Checks every package against the sha256 recorded in ``PACKAGES``, then writes the clips under
data/real/<language>/ and data/real/real.csv (path, language, reference, source, license, seconds), in this
order (tests rely on the pocketsphinx clips coming first):

1. **pocketsphinx** (BSD-2-Clause; LibriVox public domain): 11 English clips of its test data, copied byte
   for byte (goforward.raw, headerless 16 kHz PCM, gets a WAV header). References: the transcripts that ship
   beside them.
2. **asterisk-core-sounds-en** (CC-BY-SA-3.0, Allison Smith): English telephone prompts. Chosen by a rule that
   looks at the transcript only: every prompt of core-sounds-en.txt in the top folder whose transcript has
   no ``[`` or ``(`` (those mark tones and stage directions) and at least 4 words; of those, every
   ``ASTERISK_STEP``-th in the file's order. The G.722 recording (16 kHz, the wideband one) is decoded and
   re-encoded as Opus in Ogg (``OPUS_BIT_RATE``) to keep data/real/ small. References: the transcript line
   exactly as shipped.
3. **fillets-ng-data-nl / -cs** (GPL-2): recorded game dialogue in Dutch and Czech, with its script
   (``dialogStr`` in script/<level>/dialogs_<lang>.lua). Chosen by the script alone: lines of at least
   ``FILLETS_MIN_WORDS`` words, every ``FILLETS_STEP``-th in (level, file) order. The Vorbis recordings
   (22 kHz) are re-encoded as 16 kHz mono Opus. References: the script line exactly as shipped.

SOURCES.md says where each clip comes from and under which license (``python data/real/make_real.py
--sources`` prints its table from real.csv); tests/test_data_real.py checks that it lists every file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import wave
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ["path", "language", "reference", "source", "license", "seconds"]

#: Every source package, by file name, with its sha256 (checked before anything is read).
PACKAGES: dict[str, str] = {
    "pocketsphinx-5.1.1.tar.gz": "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
    "asterisk-core-sounds-en_1.6.1-1_all.deb": "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
    "asterisk-core-sounds-en-g722_1.6.1-1_all.deb": "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806",
    "fillets-ng-data_1.0.1-1.1_all.deb": "25de89afd8b1adf7bcace8290248a6a22c89cd42300317e69000e162c032cf84",
    "fillets-ng-data-nl_1.0.1-1.1_all.deb": "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10",
    "fillets-ng-data-cs_1.0.1-1.1_all.deb": "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14",
}

# --- pocketsphinx ----------------------------------------------------------------------------------------------
PS_ROOT = "pocketsphinx-5.1.1/test/data"
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

# --- asterisk --------------------------------------------------------------------------------------------------
ASTERISK_SOUNDS = "./usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_TEXT = "./usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
ASTERISK_LICENSE = "CC-BY-SA-3.0 (Allison Smith, Asterisk core sounds 1.6.1)"
#: Every how many eligible prompts one is taken.
ASTERISK_STEP = 3
ASTERISK_MIN_WORDS = 4

# --- fillets-ng --------------------------------------------------------------------------------------------------
FILLETS_ROOT = "./usr/share/games/fillets-ng"
FILLETS_LICENSE = "GPL-2 (Fish Fillets NG data 1.0.1, ALTAR interactive and the fillets-ng authors)"
FILLETS_MIN_WORDS = 6
#: Every how many eligible lines one is taken, per language.
FILLETS_STEP = {"nl": 20, "cs": 24}
_DIALOG = re.compile(
    r'dialogId\(\s*"([^"]+)"\s*,\s*(?:"[^"]*"|nil)\s*,\s*"(?:[^"\\]|\\.)*"\s*\)\s*dialogStr\(\s*"((?:[^"\\]|\\.)*)"\s*\)'
)

#: Opus bit rate of the re-encoded clips (16 kHz mono speech; about 4 kB a second).
OPUS_BIT_RATE = 32_000


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _deb_members(deb: Path) -> tarfile.TarFile:
    """The file system of a .deb, read with dpkg-deb (Debian's own tool)."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data))


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None, name
    return member.read()


def _pcm_to_wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return out.getvalue()


def _to_opus(data: bytes, format: str) -> bytes:
    """Decode ``data`` and encode it as 16 kHz mono Opus in Ogg at ``OPUS_BIT_RATE``."""
    import av

    out = io.BytesIO()
    bitexact = {"serial_offset": "1", "fflags": "+bitexact"}  # the same bytes on every run (no random serial)
    with av.open(io.BytesIO(data), format=format) as source, av.open(out, "w", format="ogg", options=bitexact) as sink:
        stream = sink.add_stream("libopus", rate=16_000)
        stream.layout = "mono"  # type: ignore[union-attr]
        stream.bit_rate = OPUS_BIT_RATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
        for frame in source.decode(audio=0):  # type: ignore[union-attr]
            for piece in resampler.resample(frame):
                sink.mux(stream.encode(piece))  # type: ignore[attr-defined]
        for piece in resampler.resample(None):
            sink.mux(stream.encode(piece))  # type: ignore[attr-defined]
        sink.mux(stream.encode(None))  # type: ignore[attr-defined]
    return out.getvalue()


def seconds_of(data: bytes, format: str) -> float:
    """Duration of a clip as the local server decodes it (16 kHz mono PCM)."""
    sys.path.insert(0, str(HERE.parent.parent))
    from stt_frames.server.decode import decode_pcm16

    return len(decode_pcm16(data, format)) / 32_000


Clip = tuple[str, bytes, str, str, str]  # (path under data/real, bytes, reference, source, license)


def pocketsphinx(folder: Path) -> Iterator[Clip]:
    with tarfile.open(folder / "pocketsphinx-5.1.1.tar.gz") as tar:

        def read(name: str) -> bytes:
            return _read(tar, f"{PS_ROOT}/{name}")

        for n in LIBRIVOX:
            stem = f"librivox/sense_and_sensibility_01_austen_64kb-{n}"
            text = read(f"{stem}.txt").decode().strip()
            yield f"en/librivox_sense_{n}.wav", read(f"{stem}.wav"), text, f"{PS_ROOT}/{stem}.wav", LIBRIVOX_LICENSE
        for n, text in CARDS.items():
            yield f"en/cmu_cards_{n}.wav", read(f"cards/{n}.wav"), text, f"{PS_ROOT}/cards/{n}.wav", CMU_LICENSE
        goforward = _pcm_to_wav(read("goforward.raw"))
        yield "en/cmu_goforward.wav", goforward, "go forward ten meters", f"{PS_ROOT}/goforward.raw", CMU_LICENSE


def asterisk_prompts(text: str) -> list[tuple[str, str]]:
    """(name, transcript) of the eligible prompts of core-sounds-en.txt, in its order (before the step)."""
    prompts = []
    for line in text.splitlines():
        if line.startswith(";") or ":" not in line:
            continue
        name, transcript = (part.strip() for part in line.split(":", 1))
        if "/" in name or "[" in transcript or "(" in transcript or len(transcript.split()) < ASTERISK_MIN_WORDS:
            continue
        prompts.append((name, transcript))
    return prompts


def asterisk(folder: Path) -> Iterator[Clip]:
    with _deb_members(folder / "asterisk-core-sounds-en_1.6.1-1_all.deb") as tar:
        text = gzip.decompress(_read(tar, ASTERISK_TEXT)).decode("utf-8")
    with _deb_members(folder / "asterisk-core-sounds-en-g722_1.6.1-1_all.deb") as tar:
        names = set(tar.getnames())
        eligible = [(n, t) for n, t in asterisk_prompts(text) if f"{ASTERISK_SOUNDS}/{n}.g722" in names]
        for name, transcript in eligible[::ASTERISK_STEP]:
            source = f"{ASTERISK_SOUNDS}/{name}.g722"
            yield f"en/asterisk_{name}.ogg", _to_opus(_read(tar, source), "g722"), transcript, source, ASTERISK_LICENSE


def fillets_lines(script: str) -> list[tuple[str, str]]:
    """(dialog id, line) of one dialogs_<lang>.lua, quotes unescaped."""
    return [(m.group(1), m.group(2).replace('\\"', '"').strip()) for m in _DIALOG.finditer(script)]


def fillets(folder: Path, language: str) -> Iterator[Clip]:
    with _deb_members(folder / "fillets-ng-data_1.0.1-1.1_all.deb") as tar:
        scripts = {
            name.split("/")[-2]: _read(tar, name).decode("utf-8")
            for name in tar.getnames()
            if name.startswith(f"{FILLETS_ROOT}/script/") and name.endswith(f"/dialogs_{language}.lua")
        }
    with _deb_members(folder / f"fillets-ng-data-{language}_1.0.1-1.1_all.deb") as tar:
        sounds = sorted(
            n
            for n in tar.getnames()
            if n.startswith(f"{FILLETS_ROOT}/sound/") and f"/{language}/" in n and n.endswith(".ogg")
        )
        eligible = []
        for sound in sounds:
            level, ident = sound.split("/")[-3], sound.split("/")[-1].removesuffix(".ogg")
            line = dict(fillets_lines(scripts.get(level, ""))).get(ident)
            if line and len(line.split()) >= FILLETS_MIN_WORDS:
                eligible.append((sound, level, ident, line))
        for sound, level, ident, line in eligible[:: FILLETS_STEP[language]]:
            data = _to_opus(_read(tar, sound), "ogg")
            source = f"{sound} (script/{level}/dialogs_{language}.lua)"
            yield f"{language}/fillets_{level}_{ident}.ogg", data, line, source, FILLETS_LICENSE


def main(folder: Path) -> None:
    for name, digest in PACKAGES.items():
        actual = sha256(folder / name)
        if digest and actual != digest:
            raise SystemExit(f"{name}: sha256 {actual}, expected {digest}")
    clips = [*pocketsphinx(folder), *asterisk(folder), *fillets(folder, "nl"), *fillets(folder, "cs")]
    rows = []
    for path, data, reference, source, license in clips:
        target = HERE / path
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(data)
        seconds = seconds_of(data, target.suffix.lstrip("."))
        rows.append([path, path.split("/")[0], reference, source, license, f"{seconds:.2f}"])
    with open(HERE / "real.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def sources_table() -> str:
    """SOURCES.md's table, one row per clip of real.csv."""
    with open(HERE / "real.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lines = ["| file | source | license | seconds | transcript |", "| --- | --- | --- | ---: | --- |"]
    for r in rows:
        source = r["source"].removeprefix("./")
        cells = [f"`{r['path']}`", f"`{source}`", r["license"], r["seconds"], r["reference"].replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--sources"]:
        print(sources_table())
    else:
        main(Path(sys.argv[1]))
