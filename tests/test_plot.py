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


def label_boxes(fig: Any) -> list[tuple[Any, list[Any]]]:
    """Each panel with the display boxes of its model labels, as the saved PNG draws them."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    return [(ax, [t.get_window_extent(renderer) for t in ax.texts]) for ax in fig.axes]


def overlap(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def test_one_panel_per_language_by_default_with_a_labelled_point_per_model() -> None:
    board = stt_frames.leaderboard(results(["en", "es", None]), reference="reference")
    fig = stt_frames.plot_leaderboard(board)
    assert [ax.get_title() for ax in fig.axes] == ["language: en", "language: es", "language: auto"]
    for ax in fig.axes:
        assert scatter_points(ax) == len(MODELS)
        assert sorted(t.get_text() for t in ax.texts) == sorted(MODELS)
    assert png(fig).startswith(PNG_SIGNATURE)
    assert fig._repr_png_().startswith(PNG_SIGNATURE)  # type: ignore[attr-defined]  # notebook, no pyplot
    only = stt_frames.plot_leaderboard(board, languages=["es"])
    assert [ax.get_title() for ax in only.axes] == ["language: es"]
    with pytest.raises(ValueError, match="not in the results"):
        stt_frames.plot_leaderboard(board, languages=["fr"])


def test_axes_start_at_zero_and_hold_every_point() -> None:
    """A free model (cost 0) sat on a negative cost axis; WER and price are never negative."""
    fig = stt_frames.plot_leaderboard(results(["en"]), reference="reference")
    ax = fig.axes[0]  # the only panel: one language
    assert len(fig.axes) == 1
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert (x0, y0) == (0, 0)
    points = ax.collections[0].get_offsets().tolist() + [p for c in ax.collections[1:] for p in c.get_offsets()]
    assert all(0 <= x <= x1 and 0 <= y <= y1 for x, y in points)
    assert any(y == 0 for _, y in points)  # the free model is on the axis, not under it


def test_labels_of_coinciding_models_do_not_overlap_and_stay_in_their_panel() -> None:
    """Models with equal or nearly equal WER and cost: their labels once sat on top of each other."""
    rows = [
        {"model": f"vendor/model-{i}", "language": lang, "reference": "a b c d", "text": hyp, "cost": cost,
         "seconds": 60.0, "latency_s": 1.0}
        for lang in ("en", None)
        for i, (hyp, cost) in enumerate([("a b c d", 0.01), ("a b c d", 0.01), ("a b c d", 0.0101), ("a b c x", 0.01),
                                         ("a b c d", 0.0), ("a x c d", 0.0), ("a b c d", 0.0099)])
    ]  # fmt: skip
    fig = stt_frames.plot_leaderboard(pd.DataFrame(rows).astype({"language": "string"}), reference="reference")
    panels = label_boxes(fig)
    assert len(panels) == 2
    for ax, boxes in panels:
        assert len(boxes) == 7
        frame = ax.get_window_extent()
        for i, a in enumerate(boxes):
            assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1, ax.texts[i]
            for j, b in enumerate(boxes[:i]):
                assert not overlap(a, b), (ax.texts[i].get_text(), ax.texts[j].get_text())


def test_plot_without_scores_still_renders() -> None:
    fig = stt_frames.plot_leaderboard(results(["en"]))
    assert scatter_points(fig.axes[0]) == 0
    assert "reference=" in fig.axes[0].texts[0].get_text()
    assert fig.axes[0].get_xlim()[0] == 0 and fig.axes[0].get_ylim()[0] == 0
    assert png(fig).startswith(PNG_SIGNATURE)
