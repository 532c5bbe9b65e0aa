"""Child process of tests/test_cache_flush.py: one transcribe_column run that logs each answer as it arrives.

Usage::

    python tests/flush_child.py PATHS_FILE BASE_URL CACHE_DIR LOG_FILE

Every progress snapshot is appended to ``LOG_FILE`` as ``<time.monotonic()> <answered>`` with an
unbuffered write, so the lines survive a ``kill -9``: the parent knows how many answers had arrived by when.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

import stt_frames


def main(argv: list[str]) -> int:
    paths_file, base_url, cache_dir, log_file = argv[:4]
    df = pd.DataFrame({"path": Path(paths_file).read_text().split("\n")})
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def seen(p: stt_frames.RunProgress) -> None:
        os.write(fd, f"{time.monotonic():.6f} {p.answered}\n".encode())

    client = stt_frames.Client(base_url=base_url)
    stt_frames.transcribe_column(df, model="fake/echo", client=client, cache=cache_dir, concurrency=16, progress=seen)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
