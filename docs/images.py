"""Regenerate the images in docs/: ``make docs-images`` (or ``python docs/images.py``).

- ``docs/leaderboard.png``: ``plot_leaderboard`` of a ``compare`` run over ``data/`` on the bundled local
  server (two pocketsphinx models and fake/echo, auto-detect and English, with made-up prices).
- ``docs/widget_ab.png``: the try-a-file widget after an A/B try, taken in headless Chromium by
  ``tests/test_browser.py`` (needs Debian's chromium: ``apt-get install chromium``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Made-up USD per minute, so the cost axis has something to show (the local server is free).
PRICES = {"local/pocketsphinx": 0.004, "local/pocketsphinx-fast": 0.002, "fake/echo": 0.006}


def leaderboard_png(path: Path = DOCS / "leaderboard.png") -> Path:
    """Run compare on data/ against the local server and save its leaderboard plot."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    import stt_frames

    df = pd.read_csv(ROOT / "data" / "samples.csv")
    df["path"] = str(ROOT / "data") + "/" + df["path"]
    with (
        tempfile.TemporaryDirectory() as cache,
        stt_frames.serve_local(prices=PRICES) as url,
        stt_frames.Client(base_url=url) as client,
    ):
        results = stt_frames.compare(
            df, models=list(PRICES), languages=[None, "en"], reference="reference",
            client=client, cache=cache, concurrency=os.cpu_count() or 2, progress=False,
        )  # fmt: skip
    fig = stt_frames.plot_leaderboard(results)
    fig.savefig(path, dpi=110)
    return path


def widget_png() -> int:
    """Take the widget's screenshot with the browser test, into docs/."""
    env = {**os.environ, "STT_FRAMES_DOCS_DIR": str(DOCS)}
    test = "tests/test_browser.py::test_widget_states_errors_and_upload_in_the_browser"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", test], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    print(f"wrote {leaderboard_png().relative_to(ROOT)}")
    status = widget_png()
    if status == 0 and (DOCS / "widget_ab.png").is_file():
        print("wrote docs/widget_ab.png")
    sys.exit(status)
