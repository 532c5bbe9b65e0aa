"""Real speech (data/real/) through the local server: WER, RTFx, peak RSS and determinism of every local engine.

Scenario 9 (issue 14). For `local/pocketsphinx`, `local/pocketsphinx-fast`, `local/whisper-tiny.en` and, when
its extra is installed, `local/whisper-base`, each on a server of its own, started in its own process by
`stt_frames.serve_local(process=True)` with 2 worker processes (this machine's 2 cores):

- every English clip of `data/real/` (89 recordings of real English speech, 410 s, 1,017 words: LibriVox,
  CMU and Asterisk's telephone prompts; see data/real/SOURCES.md) is posted at once, 2 requests in flight
  (one per worker), straight over HTTP (httpx: the server is what is measured). One untimed warm-up loads
  the models first. All the servers are up at once and their runs are interleaved, so that the load of
  this shared machine falls on every configuration alike.
- RTFx = audio seconds / wall seconds of the whole set (median of the runs).
- WER: corpus WER over the set after Whisper's English normaliser (`stt_frames.normalize.whisper_english`),
  jiwer's counts summed over clips.
- peak RSS: the sum of the peak resident sizes (`VmHWM`) of the server process and its worker processes
  after the runs (an upper bound of what the server held at once).
- determinism: the set decoded once in order and once in reverse order; `same_text` says whether every clip
  got the same text both times.

For Whisper tiny.en the threading and the beam are measured too: 2 workers x 1 CTranslate2 thread (the
default) against 1 worker x 2 threads, and beam 5 (the default) against beam 1. The WER of each source
(pocketsphinx's clips, Asterisk's prompts) is in the notes.

`local/whisper-base`, when installed, is also run on the Dutch and Czech clips of `data/real/` (recorded game
dialogue, told the language): WER after Whisper's basic normaliser, one row per language.

Targets (issue 14): `local/whisper-tiny.en` at WER <= 8% and RTFx >= 4, clearly better than pocketsphinx.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

import stt_frames
from bench import _harness as h

REAL = Path(__file__).resolve().parent.parent / "data" / "real"
#: (label, model, workers, whisper threads, whisper beam)
CONFIGS: tuple[tuple[str, str, int, int, int], ...] = (
    ("local/pocketsphinx", "local/pocketsphinx", 2, 1, 5),
    ("local/pocketsphinx-fast", "local/pocketsphinx-fast", 2, 1, 5),
    ("local/whisper-tiny.en", "local/whisper-tiny.en", 2, 1, 5),
    ("local/whisper-tiny.en, 1 worker x 2 threads", "local/whisper-tiny.en", 1, 2, 5),
    ("local/whisper-tiny.en, beam 1", "local/whisper-tiny.en", 2, 1, 1),
    ("local/whisper-base", "local/whisper-base", 2, 1, 5),
)
TARGET_MODEL = "local/whisper-tiny.en"
TARGET_WER, TARGET_RTFX = 0.08, 4.0
QUICK_CLIPS = 4
BASE_MODEL = "local/whisper-base"
#: The other languages of data/real/ (whisper-base only, told the language).
OTHER_LANGUAGES = ("nl", "cs")


def _source(row: dict[str, str]) -> str:
    """Which collection a clip comes from: the first word of its file name (librivox, cmu, asterisk)."""
    return row["path"].split("/")[-1].split("_")[0]


COLUMNS = {
    "rtfx": "audio seconds / wall seconds for the whole set, median of the runs (higher is faster)",
    "wer": "corpus WER on data/real/ after Whisper's English normaliser",
    "peak_rss_mb": "sum of VmHWM of the server process and its workers after the runs",
    "same_text": "every clip got the same text decoded in order and in reverse order",
    "workers": "server worker processes",
    "threads": "CTranslate2 threads per worker (Whisper only)",
    "beam": "beam width (Whisper only)",
}
LEADING = ("client", "rtfx", "wer", "peak_rss_mb", "same_text", "workers", "threads", "beam", "target", "verdict")


def clips(quick: bool, language: str = "en") -> list[dict[str, str]]:
    """The clips of ``language`` in real.csv (quick: the first few)."""
    with open(REAL / "real.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["language"] == language]
    return rows[:QUICK_CLIPS] if quick else rows


def _format(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def server(workers: int, threads: int, beam: int) -> Iterator[str]:
    """A server in its own process; the Whisper knobs go to it (and its workers) through the environment."""
    saved = {k: os.environ.get(k) for k in ("STT_FRAMES_WHISPER_THREADS", "STT_FRAMES_WHISPER_BEAM_SIZE")}
    os.environ["STT_FRAMES_WHISPER_THREADS"] = str(threads)
    os.environ["STT_FRAMES_WHISPER_BEAM_SIZE"] = str(beam)
    try:
        with stt_frames.serve_local(process=True, workers=workers, log_level="error") as url:
            yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


Audio = tuple[bytes, str]  # (file bytes, contract format)


async def _post_all(url: str, model: str, files: list[Audio], concurrency: int, language: str | None) -> list[str]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one(audio: Audio) -> str:
            data, fmt = audio
            body: dict[str, Any] = {
                "model": model,
                "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt},
            }
            if language is not None:
                body["language"] = language
            async with gate:
                response = await client.post("/audio/transcriptions", json=body)
            response.raise_for_status()
            return str(response.json()["text"])

        return list(await asyncio.gather(*(one(d) for d in files)))


def transcribe(
    url: str, model: str, files: list[Audio], concurrency: int, language: str | None = None
) -> tuple[list[str], float]:
    started = time.perf_counter()
    texts = asyncio.run(_post_all(url, model, files, concurrency, language))
    return texts, time.perf_counter() - started


def corpus_wer(references: list[str], hypotheses: list[str], normalizer: str = "whisper_english") -> float:
    import jiwer

    from stt_frames import normalize

    norm = getattr(normalize, normalizer)
    errors = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        out = jiwer.process_words(norm(ref), norm(hyp) or "<empty>")
        errors += out.substitutions + out.deletions + out.insertions
        words += out.substitutions + out.deletions + out.hits
    return errors / words


def available(model: str) -> bool:
    from stt_frames.server.engines import build_engines

    return not build_engines()[model].missing_modules()


def run(quick: bool) -> list[dict[str, Any]]:
    """Every configuration on a server of its own, all up at once, their runs interleaved (same load for all)."""
    module = "whisper_real"
    rows_in = clips(quick)
    files = [((REAL / r["path"]).read_bytes(), _format(r["path"])) for r in rows_in]
    references = [r["reference"] for r in rows_in]
    audio_s = sum(float(r["seconds"]) for r in rows_in)
    h.log(module, f"{len(files)} clips of real speech, {audio_s:.1f} s of audio")
    configs = [c for c in CONFIGS if available(c[1])]
    for label, model, *_ in CONFIGS:
        if (label, model) not in [(c[0], c[1]) for c in configs]:
            h.log(module, f"{label}: not installed, skipped")
    urls: dict[str, str] = {}
    pids: dict[str, list[int]] = {}
    texts: dict[str, tuple[list[str], list[str]]] = {}
    other_texts: dict[str, tuple[list[str], float]] = {}
    with ExitStack() as stack:
        for label, model, workers, threads, beam in configs:
            before = set(_descendants(os.getpid()))
            urls[label] = stack.enter_context(server(workers, threads, beam))
            transcribe(urls[label], model, files[:2], workers)  # warm-up: workers start, models load
            pids[label] = sorted(set(_descendants(os.getpid())) - before)

        def contender(label: str, model: str, workers: int) -> Callable[[], h.Run]:
            def go() -> h.Run:
                forward, seconds = transcribe(urls[label], model, files, workers)
                texts[label] = (forward, texts.get(label, ([], []))[1])
                return h.Run(seconds, ok=len(forward))

            return go

        runs, loads = h.interleave(
            [(c[0], contender(c[0], c[1], c[2])) for c in configs], repeats=h.repeats_for(quick), module=module
        )
        for label, model, workers, *_ in configs:
            backward, _ = transcribe(urls[label], model, files[::-1], workers)
            texts[label] = (texts[label][0], backward[::-1])
        peaks = {label: sum(_vm_hwm_mb(p) for p in pids[label]) for label in pids}
        other = {lang: clips(quick, lang) for lang in OTHER_LANGUAGES}
        if BASE_MODEL in urls:  # whisper-base on the other languages, told the language
            for lang, lang_rows in other.items():
                audio = [((REAL / r["path"]).read_bytes(), _format(r["path"])) for r in lang_rows]
                hyps, wall = transcribe(urls[BASE_MODEL], BASE_MODEL, audio, 2, language=lang)
                other_texts[lang] = (hyps, wall)

    rows: list[dict[str, Any]] = []
    name = f"9. Real speech: data/real/ ({len(files)} clips, {audio_s:.0f} s of English)"
    for label, model, workers, threads, beam in configs:
        times = [r.seconds for r in runs[label]]
        seconds = statistics.median(times)
        forward, backward = texts[label]
        wer = corpus_wer(references, forward)
        by_source = {
            source: corpus_wer(
                [references[i] for i in range(len(rows_in)) if _source(rows_in[i]) == source],
                [forward[i] for i in range(len(rows_in)) if _source(rows_in[i]) == source],
            )
            for source in sorted({_source(r) for r in rows_in})
        }
        row: dict[str, Any] = {
            "scenario": name,
            "client": label,
            "role": "stt_frames" if label == TARGET_MODEL else "baseline",
            "server": "stt-frames serve (own process)",
            "rtfx": audio_s / seconds,
            "wer": wer,
            "peak_rss_mb": peaks[label],
            "same_text": forward == backward,
            "workers": workers,
            "threads": threads if "whisper" in model else None,
            "beam": beam if "whisper" in model else None,
            "seconds": seconds,
            "best_s": min(times),
            "runs_s": times,
        }
        if label == TARGET_MODEL:
            row["target"] = f"WER <= {100 * TARGET_WER:.0f}% and RTFx >= {TARGET_RTFX:g}"
            row["verdict"] = h.verdict(wer <= TARGET_WER and row["rtfx"] >= TARGET_RTFX)
        row["figure"] = f"{label}: WER {100 * wer:.1f}%, RTFx {row['rtfx']:.1f}, peak RSS {peaks[label]:.0f} MB"
        per_source = ", ".join(f"{k} {100 * v:.1f}%" for k, v in by_source.items())
        row["notes"] = h.notes(
            extra=[f"WER by source: {per_source}", h.load_note(loads), f"{len(pids[label])} server processes"]
        )
        rows.append(row)
    for lang, (hyps, wall) in other_texts.items():
        lang_rows = other[lang]
        lang_s = sum(float(r["seconds"]) for r in lang_rows)
        words = sum(len(r["reference"].split()) for r in lang_rows)
        wer = corpus_wer([r["reference"] for r in lang_rows], hyps, normalizer="basic")
        rows.append(
            {
                "scenario": f"9. Real speech: data/real/{lang}/ ({len(lang_rows)} clips, {lang_s:.0f} s, {words} words)",  # noqa: E501
                "client": f"{BASE_MODEL}, language={lang}",
                "role": "baseline",
                "server": "stt-frames serve (own process)",
                "rtfx": lang_s / wall,
                "wer": wer,
                "workers": 2,
                "figure": f"{BASE_MODEL} on {lang}: WER {100 * wer:.1f}% (basic normaliser), RTFx {lang_s / wall:.1f}",
                "notes": "one run; recorded game dialogue against its script (Fish Fillets NG, GPL-2)",
            }
        )
    return rows


def main() -> None:
    for row in run(quick=False):
        print(row["figure"], "| same text both orders:", row.get("same_text"), "|", row.get("notes", ""))


if __name__ == "__main__":
    main()
