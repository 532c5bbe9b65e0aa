"""Child process of tests/test_reliability.py: one transcribe_column run, as a user's script would do it.

Usage::

    python tests/reliability_child.py PATHS_FILE BASE_URL CACHE_DIR CONCURRENCY OUTPUT [GO_FILE]

``PATHS_FILE`` holds one audio path per line. With ``GO_FILE``, the child imports everything, prints
``ready`` and waits until that file exists, so that two children can start their runs at the same moment.
On success it prints one JSON line: rows, errors, cached rows.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

import stt_frames


def main(argv: list[str]) -> int:
    paths_file, base_url, cache_dir, concurrency, output = argv[:5]
    go = Path(argv[5]) if len(argv) > 5 else None
    df = pd.DataFrame({"path": Path(paths_file).read_text().split("\n")})
    client = stt_frames.Client(base_url=base_url, max_retries=8)
    if go is not None:
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                return 3
            time.sleep(0.002)
    out = stt_frames.transcribe_column(
        df,
        model="fake/echo",
        client=client,
        cache=cache_dir,
        concurrency=int(concurrency),
        progress=False,
        output=output,
    )
    summary = {"rows": len(out), "errors": int(out["error"].notna().sum()), "cached": int(out["cached"].sum())}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
