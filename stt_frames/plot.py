"""A chart of a leaderboard: one panel per language, cost per audio hour against WER, one labelled point per model.

Built with matplotlib's object API (``matplotlib.figure.Figure``), so it needs no pyplot state and no
display: it works headless and in threads. The figure shows itself in a notebook (it has ``_repr_png_``)
and saves with ``fig.savefig("board.png")``. Needs the ``plot`` extra.

Every panel's axes start at 0 (a WER or a price is never negative), and model labels are placed so that
no two overlap and none leaves its panel: each label tries a few positions around its point, nearest
first, and takes the first that is free.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from ._extras import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_leaderboard"]

#: Panels per row of the figure.
MAX_COLUMNS: Final = 3
#: Where a label may go around its point, in points (x, y), nearest first.
_LABEL_OFFSETS: Final = tuple(
    (round(r * math.cos(math.radians(a))), round(r * math.sin(math.radians(a))))
    for r in (7, 14, 24, 36)
    for a in (30, -30, 150, -150, 90, -90, 0, 180)
)
#: Head room above the highest point and right of the rightmost one, as a fraction of the axis.
_MARGIN: Final = 0.25


@cache
def _figure_class() -> type[Any]:
    from matplotlib.figure import Figure

    class LeaderboardFigure(Figure):
        """A Figure that a notebook displays as PNG even when pyplot was never imported."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    return LeaderboardFigure


#: Columns that tell a leaderboard frame apart from the long results table.
_BOARD_COLUMNS = frozenset({"model", "language", "n", "n_errors", "wer", "cost_per_audio_hour"})


def _is_leaderboard(frame: pd.DataFrame) -> bool:
    return set(frame.columns) >= _BOARD_COLUMNS and "text" not in frame.columns


def _leaderboard(results: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    from ._leaderboard import leaderboard

    board: pd.DataFrame = leaderboard(results, reference=reference)
    return board


def _no_data(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _upper(values: list[float], minimum: float) -> float:
    """An axis top: the largest value plus head room, at least ``minimum`` (so all-zero data still shows)."""
    top = max(values, default=0.0)
    return max(top * (1 + _MARGIN), minimum)


def _overlaps(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def _place_labels(ax: Any, points: list[tuple[str, float, float, Any]], renderer: Any) -> None:
    """Annotate each (label, x, y, colour) where its box overlaps no other label or point and stays inside ``ax``."""
    frame = ax.get_window_extent(renderer)
    taken: list[Any] = []
    dots = [ax.transData.transform((x, y)) for _, x, y, _ in points]
    for label, x, y, colour in points:
        choice = None
        for dx, dy in _LABEL_OFFSETS:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            note = ax.annotate(
                label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, ha=ha, va=va, color="0.15"
            )
            note.set_in_layout(False)
            box = note.get_window_extent(renderer).expanded(1.06, 1.15)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            on_dot = any(box.x0 - 3 < px < box.x1 + 3 and box.y0 - 3 < py < box.y1 + 3 for px, py in dots)
            if inside and not on_dot and not any(_overlaps(box, other) for other in taken):
                choice = (note, box)
                break
            note.remove()
        if choice is None:  # crowded: the last resort is far out, with a leader line to its point
            note = ax.annotate(
                label,
                (x, y),
                xytext=(0, 48 + 12 * len(taken)),
                textcoords="offset points",
                fontsize=8,
                ha="center",
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6},
            )
            note.set_in_layout(False)
            choice = (note, note.get_window_extent(renderer))
        taken.append(choice[1])


def plot_leaderboard(
    results: pd.DataFrame, *, reference: str | None = None, languages: Sequence[str] | None = None
) -> Figure:
    """Plot cost per audio hour against WER, one panel per language, one labelled point per model.

    ``results`` is either the long table from ``compare`` or a ``leaderboard`` frame. Every language in it
    gets a panel (auto-detect is ``"auto"``, shown last), unless ``languages=`` picks some. Colours follow
    the model across panels. Groups with no WER or no cost are left out of their panel, which says so.

    Example::

        fig = stt_frames.plot_leaderboard(results, reference="reference")
        fig.savefig("leaderboard.png")
    """
    require("matplotlib", "plot", "plot_leaderboard")
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import PercentFormatter

    board = results if _is_leaderboard(results) else _leaderboard(results, reference)
    rows = [
        (str(r.model), "auto" if pd.isna(r.language) else str(r.language), r.wer, r.cost_per_audio_hour)
        for r in board.itertuples(index=False)
    ]
    models = sorted({m for m, _, _, _ in rows})
    present = sorted({lang for _, lang, _, _ in rows}, key=lambda x: (x == "auto", x))
    if languages is not None:
        wanted = ["auto" if lang is None else str(lang) for lang in languages]
        missing = [lang for lang in wanted if lang not in present]
        if missing:
            raise ValueError(f"languages {missing} are not in the results; they have {present}")
        present = wanted
    shown = present or ["auto"]
    palette = colormaps["tab10"]
    colour = {m: palette(i % palette.N) for i, m in enumerate(models)}

    columns = min(len(shown), MAX_COLUMNS)
    lines = math.ceil(len(shown) / columns)
    fig = _figure_class()(figsize=(4.6 * columns + 0.4, 3.9 * lines + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(lines, columns, squeeze=False).ravel().tolist()
    for ax in axes[len(shown) :]:
        ax.remove()
    scored = [(m, lang, float(w), float(c)) for m, lang, w, c in rows if not pd.isna(w) and not pd.isna(c)]
    wer_top = _upper([w for _, _, w, _ in scored], 0.05)
    cost_top = _upper([c for _, _, _, c in scored], 0.01)
    panels: list[tuple[Any, list[tuple[str, float, float, Any]]]] = []
    for ax, lang in zip(axes, shown, strict=False):
        points = [(m, w, c, colour[m]) for m, la, w, c in scored if la == lang]
        for _, w, c, col in points:
            ax.scatter([w], [c], color=col, s=55, zorder=3, edgecolor="white", linewidth=0.6, clip_on=False)
        if not points:
            _no_data(ax, "no group has both a WER and a cost\n(pass reference= to score)")
        ax.set_xlim(0, wer_top)  # shared limits: panels compare at a glance
        ax.set_ylim(0, cost_top)
        ax.set_title(f"language: {lang}", fontsize=10)
        ax.set_xlabel("WER (lower is better)")
        ax.set_ylabel("USD per audio hour")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
        panels.append((ax, points))
    fig.draw_without_rendering()  # settle the layout: labels are placed in their final display coordinates
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax, points in panels:
        _place_labels(ax, points, renderer)
    figure: Figure = fig
    return figure
