"""A two-panel chart of a leaderboard: cost per audio hour against WER, and WER per language.

Built with matplotlib's object API (``matplotlib.figure.Figure``), so it needs no pyplot state and no
display: it works headless and in threads. The figure shows itself in a notebook (it has ``_repr_png_``)
and saves with ``fig.savefig("board.png")``. Needs the ``plot`` extra.
"""

from __future__ import annotations

import io
from functools import cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._extras import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_leaderboard"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


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
    from .ranking import leaderboard

    board: pd.DataFrame = leaderboard(results, reference=reference)
    return board


def _no_data(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_leaderboard(results: pd.DataFrame, *, reference: str | None = None) -> Figure:
    """Plot cost per audio hour against WER, and WER per language as grouped bars; returns the Figure.

    ``results`` is either the long table from ``compare`` or a ``leaderboard`` frame. Points are labelled by
    model, one marker per language; colours follow the model in both panels. Groups with no WER (or no cost,
    on the left) are left out of that panel.

    Example::

        fig = stt_frames.plot_leaderboard(results, reference="reference")
        fig.savefig("leaderboard.png")
    """
    require("matplotlib", "plot", "plot_leaderboard")
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    board = results if _is_leaderboard(results) else _leaderboard(results, reference)
    models = sorted(set(board["model"].astype(str)))
    # Languages alphabetically, auto-detect last.
    languages = sorted(
        set(board["language"].astype("string").fillna("auto").astype(str)), key=lambda x: (x == "auto", x)
    )
    palette = colormaps["tab10"]
    colour = {m: palette(i % palette.N) for i, m in enumerate(models)}
    marker = {lang: _MARKERS[i % len(_MARKERS)] for i, lang in enumerate(languages)}

    fig = _figure_class()(figsize=(12, 4.8), layout="constrained")
    ax_cost, ax_wer = fig.subplots(1, 2)
    rows = [
        (str(r.model), "auto" if pd.isna(r.language) else str(r.language), r.wer, r.cost_per_audio_hour)
        for r in board.itertuples(index=False)
    ]

    # Left: cost per audio hour against WER.
    points = [(m, lang, w, c) for m, lang, w, c in rows if not pd.isna(w) and not pd.isna(c)]
    labelled: set[tuple[str, float, float]] = set()
    for m, lang, w, c in points:
        ax_cost.scatter([float(w)], [float(c)], color=colour[m], marker=marker[lang], s=60, zorder=3)
        if (m, float(w), float(c)) not in labelled:  # one label where a model's languages coincide
            labelled.add((m, float(w), float(c)))
            ax_cost.annotate(m, (float(w), float(c)), xytext=(5, 4), textcoords="offset points", fontsize=8)
    if points:
        handles = [
            Line2D([], [], linestyle="", marker=marker[lang], color="0.35", label=lang)
            for lang in dict.fromkeys(lang for _, lang, _, _ in points)
        ]
        ax_cost.legend(handles=handles, title="language", fontsize=8, title_fontsize=8)
    else:
        _no_data(ax_cost, "no group has both a WER and a cost\n(pass reference= to score)")
    ax_cost.set_xlabel("WER (lower is better)")
    ax_cost.set_ylabel("USD per audio hour")
    ax_cost.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax_cost.set_title("Cost against accuracy")
    ax_cost.grid(alpha=0.3)

    # Right: WER per language, one bar per model.
    wer = {(m, lang): float(w) for m, lang, w, _ in rows if not pd.isna(w)}
    if wer:
        bar_models = [m for m in models if any((m, lang) in wer for lang in languages)]
        width = 0.8 / len(bar_models)
        for i, m in enumerate(bar_models):
            xs = [j + (i - (len(bar_models) - 1) / 2) * width for j, lang in enumerate(languages) if (m, lang) in wer]
            heights = [wer[m, lang] for lang in languages if (m, lang) in wer]
            bars = ax_wer.bar(xs, heights, width=width, color=colour[m], label=m)
            ax_wer.bar_label(bars, labels=[f"{h:.1%}" for h in heights], fontsize=7, padding=2)
        ax_wer.set_xticks(range(len(languages)), languages)
        ax_wer.margins(y=0.1)
        ax_wer.legend(title="model", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        _no_data(ax_wer, "no WER to show\n(pass reference= to score)")
    ax_wer.set_xlabel("language")
    ax_wer.set_ylabel("WER (corpus, lower is better)")
    ax_wer.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax_wer.set_title("WER per language")
    ax_wer.grid(axis="y", alpha=0.3)
    figure: Figure = fig
    return figure
