"""Child process of bench/per_row.py: one contender of scenario 11 in a fresh interpreter (its own peak RSS).

Usage: ``python bench/_rerun_child.py stt|hand|floor PATHS_FILE CACHE_DIR BASE_URL``; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import time

import pandas as pd

import stt_frames
from stt_frames.cache import CACHE_FILENAME


def _hand(df: pd.DataFrame, cache_dir: str) -> pd.DataFrame:
    """stat each file, look (path, size, mtime) and the answers up in batches of 500, build the frame."""
    from stt_frames.cache import request_keyer

    db = sqlite3.connect(os.path.join(cache_dir, CACHE_FILENAME))
    key = request_keyer(model="fake/echo", language=None, temperature=None, provider_options=None, endpoint=sys.argv[4])
    texts: list[str | None] = []
    paths = df["path"].tolist()
    for lo in range(0, len(paths), 500):
        chunk = [os.path.abspath(p) for p in paths[lo : lo + 500]]
        stats = {p: os.stat(p) for p in chunk}
        marks = ",".join("?" * len(chunk))
        known = {
            p: sha
            for p, size, mtime, sha in db.execute(
                f"SELECT path, size, mtime_ns, sha256 FROM file_hashes WHERE path IN ({marks})", chunk
            )
            if (stats[p].st_size, stats[p].st_mtime_ns) == (size, mtime)
        }
        keys = [key(known[p]) if p in known else None for p in chunk]
        wanted = [k for k in keys if k]
        select = "SELECT key, json_extract(response, '$.text') FROM responses WHERE key IN"
        found = dict(db.execute(f"{select} ({','.join('?' * len(wanted))})", wanted))
        texts += [found.get(k) if k else None for k in keys]
    db.close()
    out = df.copy()
    out["text"] = pd.array(texts, dtype="string")
    return out


def _peak_mb() -> float:
    """This process's peak RSS: ``VmHWM``. (``ru_maxrss`` is not: Linux carries the parent's peak over exec.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    kind, listing, cache_dir, url = sys.argv[1:5]
    with open(listing) as f:
        df = pd.DataFrame({"path": f.read().split("\n")})
    first: list[float] = []
    cpu, started = time.process_time(), time.perf_counter()

    def seen(p: stt_frames.RunProgress) -> None:
        if not first and (p.planned or p.done):
            first.append(time.perf_counter() - started)

    if kind == "stt":
        client = stt_frames.Client(base_url=url, api_key=None)
        out = stt_frames.transcribe_column(df, model="fake/echo", cache=cache_dir, client=client, progress=seen)
        errors, cached = int(out["error"].notna().sum()), int(out["cached"].sum())
    elif kind == "hand":
        out = _hand(df, cache_dir)
        errors, cached = int(out["text"].isna().sum()), len(out)
    else:
        out, errors, cached = df, 0, 0
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = {
        "rows": len(out),
        "errors": errors,
        "cached": cached,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "first_update_s": first[0] if first else None,
        "maxrss_mb": _peak_mb(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
