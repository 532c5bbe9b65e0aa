"""plot_leaderboard renders headless to PNG, from long results or from a leaderboard frame."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest

import stt_frames

pytest.importorskip("matplotlib", reason="plot_leaderboard needs the plot extra (matplotlib)")
pytest.importorskip("jiwer", reason="scoring needs the eval extra")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = {"openai/whisper-1": 0.006, "google/chirp-3": 0.016, "local/pocketsphinx": 0.0}


def results(languages: list[str | None]) -> pd.DataFrame:
    rows = []
    for i, (model, per_minute) in enumerate(MODELS.items()):
        for language in languages:
            for ref in ("the cat sat on the mat", "hello world"):
                words = ref.split()
                hyp = " ".join(["x"] * i + words[i:])  # model i gets its first i words wrong
                rows.append(
                    {
                        "model": model,
                        "language": language,
                        "reference": ref,
                        "text": hyp,
                        "cost": per_minute / 12,
                        "seconds": 5.0,
                        "latency_s": 0.5,
                        "run_wall_s": 2.0,
                    }
                )
    return pd.DataFrame(rows).astype({"language": "string", "text": "string"})


def png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def scatter_points(ax: Any) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def test_plot_renders_png_with_two_axes_and_a_labelled_point_per_model() -> None:
    fig = stt_frames.plot_leaderboard(results(["en"]), reference="reference")
    assert png(fig).startswith(PNG_SIGNATURE)
    assert len(fig.axes) == 2
    scatter, bars = fig.axes
    assert scatter_points(scatter) == len(MODELS)
    assert sorted(t.get_text() for t in scatter.texts) == sorted(MODELS)
    assert len(bars.patches) == len(MODELS)
    assert fig._repr_png_().startswith(PNG_SIGNATURE)  # type: ignore[attr-defined]  # notebook, no pyplot


def test_plot_accepts_a_leaderboard_and_several_languages() -> None:
    board = stt_frames.leaderboard(results(["en", "es", None]), reference="reference")
    fig = stt_frames.plot_leaderboard(board)
    scatter, bars = fig.axes
    assert scatter_points(scatter) == len(MODELS) * 3
    assert [t.get_text() for t in bars.get_xticklabels()] == ["en", "es", "auto"]
    assert len(bars.patches) == len(MODELS) * 3
    assert png(fig).startswith(PNG_SIGNATURE)


def test_plot_without_scores_still_renders() -> None:
    fig = stt_frames.plot_leaderboard(results(["en"]))
    assert scatter_points(fig.axes[0]) == 0
    assert "reference=" in fig.axes[1].texts[0].get_text()
    assert png(fig).startswith(PNG_SIGNATURE)
