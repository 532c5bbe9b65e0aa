"""Regenerate the sample dataset in ``data/``: short synthetic speech clips plus ``samples.csv``.

The committed audio files are plain files and need none of the tools below; this script is only
for rebuilding (or extending) the set.

Needs (Debian/Ubuntu)::

    sudo apt-get install flite espeak-ng ffmpeg sox

flite provides the English voices (slt, rms, awb, kal16 and the 8 kHz kal), espeak-ng the Spanish,
French and German ones, sox resamples to 16 kHz mono, pads and normalises, and ffmpeg encodes to
the API contract's formats. The script itself uses only the standard library.

Run from the repository root::

    python data/make_samples.py              # rewrite data/{en,es,fr,de}/ and data/samples.csv
    python data/make_samples.py --out /tmp/s # build somewhere else (e.g. to diff against data/)
    python data/make_samples.py --wer        # score the English clips with pocketsphinx (no rebuild)

``--wer`` needs the ``local`` and ``eval`` extras (pocketsphinx, PyAV, jiwer). It decodes every
committed English clip with PyAV, resamples to 16 kHz mono s16, runs pocketsphinx's default US
English model on it and prints the corpus WER overall and per voice (lower-cased, punctuation
stripped).

Determinism: flite, espeak-ng and sox (no dither, ``-D``) are deterministic, and ffmpeg runs with
``-fflags +bitexact -flags:a +bitexact -map_metadata -1`` and fixed bitrates, so the same tool
versions rebuild byte-identical files. Other versions of the tools (ffmpeg, libopus, libvorbis,
lame in particular) may produce slightly different bytes; the ``samples.csv`` rows do not change.
Built with flite 2.2, espeak-ng 1.51, SoX 14.4.2 and ffmpeg 5.1 (Debian 12).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent
RATE = 16_000
PAD_SECONDS = "0.3"  # silence before and after each sentence
PEAK_DB = "-3"  # normalise every clip to this peak level

COLUMNS = ("path", "language", "reference", "voice", "format")

# Encoder settings per output format; every lossy one at a fixed, modest bitrate.
# ogg is Vorbis by default; a clip can ask for Opus in Ogg with fmt "ogg:opus".
ENCODERS: dict[str, list[str]] = {
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    "flac": ["-c:a", "flac", "-compression_level", "8", "-f", "flac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "32k", "-id3v2_version", "0", "-f", "mp3"],
    "m4a": ["-c:a", "aac", "-b:a", "32k", "-f", "ipod"],  # MP4 container, starts with an ftyp box
    "aac": ["-c:a", "aac", "-b:a", "32k", "-f", "adts"],  # raw ADTS stream
    "ogg": ["-c:a", "libvorbis", "-b:a", "32k", "-f", "ogg"],
    "ogg:opus": ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"],
    "webm": ["-c:a", "libopus", "-b:a", "32k", "-f", "webm"],
}

# English: one sentence per clip, voices in rotation (4 clips per voice), formats spread so that
# every voice appears in at least one lossy format.
EN_VOICES = ("slt", "rms", "awb", "kal16", "kal")
EN_FORMATS = (
    "wav", "flac", "wav", "flac", "wav",
    "mp3", "m4a", "ogg", "webm", "aac",
    "flac", "wav", "flac", "wav", "flac",
    "webm", "mp3", "m4a", "wav", "flac",
)  # fmt: skip
EN_SENTENCES = (
    "The weather is nice today, so we can eat outside.",
    "Please close the door when you leave the room.",
    "I would like a cup of coffee with a little milk.",
    "Excuse me, where is the train station?",
    "We are going home now because it is getting late.",
    "Can you help me carry these boxes to the car?",
    "The children are playing outside in the garden.",
    "It is raining again this morning, so take an umbrella.",
    "My brother lives in a big city near the sea.",
    "Turn left at the next street and walk straight ahead.",
    "I lost my keys yesterday and found them today.",
    "Dinner will be ready in about ten minutes.",
    "He drives to work every day at eight o'clock.",
    "Thank you very much for your help last week.",
    "The dog is sleeping on the floor by the fire.",
    "Let us meet after lunch in front of the library.",
    "I need to buy some bread and milk on the way home.",
    "We watched a movie with our friends last night.",
    "How much does this jacket cost?",
    "I like to walk in the park on Sunday morning.",
)

# Other languages: espeak-ng, the base voice and three variants each; (voice, format, sentence).
OTHER: dict[str, tuple[tuple[str, str, str], ...]] = {
    "es": (
        ("es", "mp3", "Buenos días, ¿cómo está usted esta mañana?"),
        ("es+f3", "ogg:opus", "Me gustaría un café con leche, por favor."),
        ("es+m3", "webm", "¿Dónde está la estación de tren más cercana?"),
        ("es+f4", "aac", "Hoy hace buen tiempo para dar un paseo por el parque."),
    ),
    "fr": (
        ("fr", "m4a", "Bonjour, comment allez-vous ce matin ?"),
        ("fr+f3", "webm", "Je voudrais un café et un croissant, s'il vous plaît."),
        ("fr+m3", "aac", "Où se trouve la gare la plus proche ?"),
        ("fr+f4", "flac", "Il fait beau aujourd'hui, allons nous promener au parc."),
    ),
    "de": (
        ("de", "mp3", "Guten Morgen, wie geht es Ihnen heute?"),
        ("de+f3", "ogg", "Ich hätte gern einen Kaffee mit Milch, bitte."),
        ("de+m3", "m4a", "Wo ist der nächste Bahnhof, bitte?"),
        ("de+f4", "wav", "Heute ist schönes Wetter, wir gehen im Park spazieren."),
    ),
}


@dataclass(frozen=True)
class Clip:
    path: str  # relative to data/, POSIX style
    language: str
    reference: str
    voice: str  # "flite:slt", "espeak-ng:es+f3"
    encoder: str  # key of ENCODERS

    @property
    def format(self) -> str:
        return self.encoder.split(":")[0]


def clips() -> list[Clip]:
    out: list[Clip] = []
    for i, (sentence, enc) in enumerate(zip(EN_SENTENCES, EN_FORMATS, strict=True)):
        voice = EN_VOICES[i % len(EN_VOICES)]
        ext = enc.split(":")[0]
        out.append(Clip(f"en/flite_{voice}_{i:02d}.{ext}", "en", sentence, f"flite:{voice}", enc))
    for lang, rows in OTHER.items():
        for i, (voice, enc, sentence) in enumerate(rows):
            ext = enc.split(":")[0]
            slug = voice.replace("+", "_")
            out.append(Clip(f"{lang}/espeak_{slug}_{i:02d}.{ext}", lang, sentence, f"espeak-ng:{voice}", enc))
    return out


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def synthesize(clip: Clip, raw_wav: Path) -> None:
    engine, voice = clip.voice.split(":", 1)
    if engine == "flite":
        run(["flite", "-voice", voice, "-t", clip.reference, "-o", str(raw_wav)])
    else:
        run(["espeak-ng", "-v", voice, "-w", str(raw_wav), clip.reference])


def build(out_dir: Path) -> list[Clip]:
    for tool in ("flite", "espeak-ng", "sox", "ffmpeg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found; install it with: sudo apt-get install flite espeak-ng ffmpeg sox")
    all_clips = clips()
    for lang in {c.language for c in all_clips}:
        lang_dir = out_dir / lang
        if lang_dir.exists():
            shutil.rmtree(lang_dir)
        lang_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="stt-samples-") as tmp:
        raw, clean = Path(tmp) / "raw.wav", Path(tmp) / "clean.wav"
        for clip in all_clips:
            synthesize(clip, raw)
            # 16 kHz mono s16, no dither, silence padding, peak-normalised.
            run(["sox", "-V1", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(clean),
                 "pad", PAD_SECONDS, PAD_SECONDS, "gain", "-n", PEAK_DB])  # fmt: skip
            run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(clean),
                 "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                 "-ac", "1", "-ar", str(RATE), *ENCODERS[clip.encoder], str(out_dir / clip.path)])  # fmt: skip
            print(f"{clip.path:32} {(out_dir / clip.path).stat().st_size:>7} B  {clip.voice}")
    with open(out_dir / "samples.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for c in all_clips:
            writer.writerow([c.path, c.language, c.reference, c.voice, c.format])
    return all_clips


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def english_wer(data_dir: Path) -> float:
    """Decode the English clips with pocketsphinx and print corpus WER, overall and per voice."""
    import av
    import jiwer
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RATE, logfn="/dev/null")
    with open(data_dir / "samples.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["language"] == "en"]
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    for row in rows:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        pcm = bytearray()
        with av.open(str(data_dir / row["path"])) as container:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pcm += out.to_ndarray().tobytes()
            for out in resampler.resample(None):
                pcm += out.to_ndarray().tobytes()
        decoder.start_utt()
        decoder.process_raw(bytes(pcm), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp().hypstr if decoder.hyp() is not None else ""
        ref = _normalise(row["reference"])
        hyp = _normalise(hyp)
        refs.setdefault(row["voice"], []).append(ref)
        hyps.setdefault(row["voice"], []).append(hyp)
        mark = " " if ref == hyp else "*"
        print(f"{mark} {row['path']:28} {hyp}")
    print()
    for voice in refs:
        print(f"{voice:12} WER {jiwer.wer(refs[voice], hyps[voice]):6.1%}  ({len(refs[voice])} clips)")
    all_refs = [r for v in refs.values() for r in v]
    all_hyps = [h for v in hyps.values() for h in v]
    total = jiwer.wer(all_refs, all_hyps)
    print(f"{'overall':12} WER {total:6.1%}  ({len(all_refs)} clips, {sum(len(r.split()) for r in all_refs)} words)")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DATA, help="output directory (default: data/)")
    parser.add_argument("--wer", action="store_true", help="score the English clips in --out, do not rebuild")
    args = parser.parse_args(argv)
    if args.wer:
        english_wer(args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    built = build(args.out)
    total = sum((args.out / c.path).stat().st_size for c in built)
    print(f"{len(built)} clips, {total / 1e6:.2f} MB, samples.csv written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
