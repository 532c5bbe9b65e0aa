"""Child process of tests/test_cache.py: open a cache the moment GO_FILE appears, and store one answer.

Usage::

    python tests/cache_open_child.py CACHE_DIR GO_FILE NAME

Prints ``ready`` once imported, then ``ok`` or ``error: <message>``; exits 0 either way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from stt_frames.cache import Cache, CacheError


def main(argv: list[str]) -> int:
    cache_dir, go, name = argv[:3]
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.0005)
    try:
        cache = Cache(cache_dir)
        cache.put(f"v1:{name}", {"text": name}, audio_sha256=name, model="fake/echo", language=None, endpoint="x")
        cache.close()
    except CacheError as exc:
        print(f"error: {exc}", flush=True)
        return 0
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
