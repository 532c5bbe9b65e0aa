"""pocketsphinx through the local server: RTFx (audio seconds / compute seconds) and WER on `data/`.

Scenario 5 of issues 4 and 7. For `local/pocketsphinx` and `local/pocketsphinx-fast`:

- the engine alone, in this process: each file decoded to 16 kHz mono PCM with PyAV, then one
  `pocketsphinx.Decoder` (same options as the server's; created before timing) recognises it whole.
  The baseline: no HTTP, no JSON, no base64, no thread hop.
- through the server, `stt_frames.serve_local(process=True)` (its default worker threads), with
  `stt_frames.compare(df, models=[model], reference="reference", concurrency=C)` at C = 1 and 2, a
  fresh cache directory each run. The timed region is the whole `compare` call (it scores 32 short
  rows with jiwer too, a few milliseconds). One untimed warm-up per model loads the decoders first.

RTFx = the audio seconds of every clip in `data/` (all languages: pocketsphinx reads them all as
English, which costs the same) / the wall time. WER: `stt_frames.leaderboard` over the English clips
of the same `compare` result (corpus WER after Whisper's English normaliser).

The issue sets no RTFx target; this benchmark's own is that the server keeps at least 90% of the
engine's RTFx at concurrency 1 (the cost of HTTP, JSON and base64 around a decode).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import stt_frames
from bench import _harness as h

DATA = Path(__file__).resolve().parent.parent / "data"
MODELS = ("local/pocketsphinx", "local/pocketsphinx-fast")
CONCURRENCIES = (1, 2)
#: The server must keep at least this fraction of the engine's own RTFx at concurrency 1.
TARGET_FRACTION = 0.9
QUICK_CLIPS = 3
#: WER of each model on data/'s English clips as the README states it (a reference, not a target).
README_WER = {"local/pocketsphinx": "about 7 %", "local/pocketsphinx-fast": "about 56 %"}

COLUMNS = {
    "rtfx": "audio seconds / wall seconds at the median time (higher is faster)",
    "pct_of_engine": "RTFx as a percentage of the engine alone (in process, no server)",
    "speedup_vs_c1": "RTFx / RTFx at concurrency 1 through the same server",
    "wer_en": "corpus WER on the English clips (leaderboard of the compare result)",
    "seconds": "median wall time of the runs (3 interleaved; a run over 25 s is not repeated)",
}
LEADING = ("client", "rtfx", "pct_of_engine", "target", "verdict", "speedup_vs_c1", "wer_en", "seconds", "best_s")


def samples(quick: bool) -> pd.DataFrame:
    df = pd.read_csv(DATA / "samples.csv")
    df["path"] = [str(DATA / p) for p in df["path"]]
    if quick:
        df = df[df["language"] == "en"].head(QUICK_CLIPS).reset_index(drop=True)
    return df


def decode(data: bytes) -> bytes:
    """Any contract format to 16 kHz mono int16 PCM with PyAV (what a hand-written pipeline does)."""
    import av

    out = bytearray()
    with av.open(io.BytesIO(data)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in container.decode(audio=0):
            for chunk in resampler.resample(frame):
                out += bytes(chunk.planes[0])[: chunk.samples * 2]
        for chunk in resampler.resample(None):
            out += bytes(chunk.planes[0])[: chunk.samples * 2]
    return bytes(out)


def _decoder(model: str) -> Any:
    import pocketsphinx

    from stt_frames.server.engines import FAST_DECODER_OPTIONS

    options = FAST_DECODER_OPTIONS if model.endswith("-fast") else {}
    return pocketsphinx.Decoder(loglevel="ERROR", **options)


def run_engine(model: str, files: list[bytes]) -> h.Run:
    decoder = _decoder(model)

    def go() -> int:
        words = 0
        for data in files:
            decoder.start_utt()
            decoder.process_raw(decode(data), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            words += len(hyp.hypstr.split()) if hyp is not None else 0
        return words

    _, seconds, cpu = h.timed(go)
    return h.Run(seconds, ok=len(files), cpu_seconds=cpu)


def run_server(url: str, df: pd.DataFrame, model: str, concurrency: int) -> h.Run:
    client = stt_frames.Client(base_url=url, api_key=None)
    try:
        with tempfile.TemporaryDirectory(prefix="stt-bench-ps-cache-") as cache_dir:
            cpu, started = time.process_time(), time.perf_counter()
            try:
                with h.watchdog():
                    results = stt_frames.compare(
                        df,
                        models=[model],
                        reference="reference",
                        concurrency=concurrency,
                        cache=cache_dir,
                        progress=False,
                        client=client,
                    )
            except stt_frames.Interrupted:
                return h.Run(time.perf_counter() - started, cut_off=True, errors=len(df), first_error="cut off")
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        client.close()
    errors = results["error"].dropna()
    english = results[results["input_language"] == "en"]
    board = stt_frames.leaderboard(english)
    wer = board["wer"].iloc[0] if len(board) else None
    return h.Run(
        seconds,
        ok=len(results) - len(errors),
        errors=len(errors),
        cpu_seconds=cpu,
        first_error=str(errors.iloc[0])[:200] if len(errors) else "",
        extra={"wer_en": None if pd.isna(wer) else float(wer), "n_en": len(english)},
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """Every model: the engine alone, then the server at each concurrency; interleaved."""
    df = samples(quick)
    files = [Path(p).read_bytes() for p in df["path"]]
    audio_s = sum(len(decode(d)) for d in files) / 32000
    module = "pocketsphinx_rtfx"
    h.log(module, f"{len(df)} clips, {audio_s:.1f} s of audio")
    labels: dict[tuple[str, int], str] = {}
    contenders = []
    with stt_frames.serve_local(process=True, log_level="error") as url:
        shortest = df.assign(size=[len(f) for f in files]).nsmallest(2, "size").drop(columns="size")
        for model in MODELS:
            run_server(url, shortest, model, 2)  # warm-up: the server loads its decoders
            labels[(model, 0)] = f"{model}: engine alone (PyAV + Decoder, in process)"
            contenders.append((labels[(model, 0)], lambda m=model: run_engine(m, files)))
            for c in CONCURRENCIES:
                labels[(model, c)] = f"{model}: through the server, concurrency {c}"
                contenders.append((labels[(model, c)], lambda m=model, c=c: run_server(url, df, m, c)))
        runs, loads = h.interleave(contenders, repeats=h.repeats_for(quick), module=module)

    rows: list[dict[str, Any]] = []
    for model in MODELS:
        name = f"5. {model} on data/ ({len(df)} clips, {audio_s:.0f} s of audio)"
        engine_rtfx = audio_s / h.timing(runs[labels[(model, 0)]], len(df))["seconds"]
        c1_rtfx = audio_s / h.timing(runs[labels[(model, 1)]], len(df))["seconds"]
        wers = [o.extra["wer_en"] for c in CONCURRENCIES for o in runs[labels[(model, c)]] if "wer_en" in o.extra]
        wer = statistics.median(w for w in wers if w is not None) if any(w is not None for w in wers) else None
        for c in (0, *CONCURRENCIES):
            label = labels[(model, c)]
            t = h.timing(runs[label], len(df))
            rtfx = audio_s / t["seconds"]
            row: dict[str, Any] = {
                "scenario": name,
                "client": label,
                "role": "stt_frames" if c == 1 else "baseline",
                "server": "stt-frames serve (own process, default workers)" if c else "none",
                "concurrency": c or 1,
                "audio_s": audio_s,
                "rtfx": rtfx,
                "best_rtfx": audio_s / t["best_s"],
                "pct_of_engine": 100 * rtfx / engine_rtfx,
                **{k: v for k, v in t.items() if not k.startswith("_") and k != "rps"},
            }
            extra = list(t["_notes"])
            if c:
                row["speedup_vs_c1"] = rtfx / c1_rtfx
                row["wer_en"] = wer
            if c == 1:
                row["target"] = f"RTFx >= {100 * TARGET_FRACTION:.0f}% of the engine alone (the bench's own target)"
                row["verdict"] = h.verdict(rtfx >= TARGET_FRACTION * engine_rtfx and not t["errors"])
                wer_text = f"{100 * wer:.1f}%" if wer is not None else "n/a"
                row["figure"] = (
                    f"RTFx {rtfx:.1f} at concurrency 1 ({row['pct_of_engine']:.0f}% of the engine alone); "
                    f"English WER {wer_text}"
                )
                extra += [f"the README states an English WER of {README_WER[model]}", h.load_note(loads)]
            elif c:
                row["figure"] = f"server, concurrency {c}: RTFx {rtfx:.1f} ({row['speedup_vs_c1']:.2f}x concurrency 1)"
            else:
                row["figure"] = f"engine alone: RTFx {rtfx:.1f}"
            row["notes"] = h.notes(extra=extra)
            rows.append(row)
    return rows
