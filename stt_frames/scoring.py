"""Word and character error rates per row, and the word alignment of one row.

``score`` adds to a results table, for every row, the error rates and the counts they come from:

==============  =========  ==========================================================================
column          dtype      meaning
==============  =========  ==========================================================================
``ref_words``   Int64      words in the normalised reference
``word_errors`` Int64      substitutions + deletions + insertions, word level
``wer``         Float64    ``word_errors / ref_words``
``ref_chars``   Int64      characters in the normalised reference (spaces between words included)
``char_errors`` Int64      substitutions + deletions + insertions, character level
``cer``         Float64    ``char_errors / ref_chars``
==============  =========  ==========================================================================

Rules:

* A row without a hypothesis (a failed request: text <NA>) or without a reference gets <NA> in all six
  columns. It is never dropped and never scored 0.
* An empty hypothesis (the model heard nothing) is scored: every reference word is a deletion.
* An empty reference (after normalisation) has ``ref_words == 0``: its ``wer`` is <NA>, not a division by
  zero, while its ``word_errors`` (all insertions) still count when a corpus is pooled.
* Corpus rates (``stt_frames.leaderboard``) pool the counts, ``sum(word_errors) / sum(ref_words)``, as
  jiwer does for a list of sentences and the Open ASR Leaderboard does; they are not the mean of ``wer``.

Rates are fractions (0.25 is 25 %). Texts are normalised first: see ``stt_frames.normalize``.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from ._extras import require
from .normalize import DEFAULT_NORMALIZER, Normalizer, NormalizerSpec, resolve_normalizer

__all__ = [
    "DEFAULT_HYPOTHESIS",
    "DEFAULT_LANGUAGE_COLUMN",
    "DEFAULT_REFERENCE",
    "SCORE_COLUMNS",
    "AlignedWord",
    "Alignment",
    "Alignments",
    "score",
    "show_alignment",
]

#: Column holding the reference transcripts, unless ``reference=`` says otherwise.
DEFAULT_REFERENCE: str = "reference"
#: Column holding the model's transcripts, unless ``hypothesis=`` says otherwise.
DEFAULT_HYPOTHESIS: str = "text"
#: Column whose language picks the normaliser when ``normalizer="auto"``. A missing column means <NA>.
DEFAULT_LANGUAGE_COLUMN: str = "language"

#: The columns ``score`` adds, in order.
SCORE_COLUMNS: tuple[str, ...] = ("ref_words", "word_errors", "wer", "ref_chars", "char_errors", "cer")

_OP_NAMES = {"equal": "=", "substitute": "S", "delete": "D", "insert": "I"}


def _jiwer() -> Any:
    return require("jiwer", "eval", "scoring")


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _normalizers(
    frame: pd.DataFrame, normalizer: NormalizerSpec, language_column: str | None
) -> list[Normalizer | None]:
    """The normaliser of every row of ``frame`` (one resolution per distinct language)."""
    if language_column is not None and language_column not in frame.columns:
        if language_column != DEFAULT_LANGUAGE_COLUMN:
            raise ValueError(f"language_column={language_column!r} is not a column; got columns {list(frame.columns)}")
        language_column = None
    if language_column is None:
        languages: Iterable[Any] = [None] * len(frame)
    else:
        languages = frame[language_column].tolist()
    resolved: dict[Any, Normalizer | None] = {}
    out = []
    for lang in languages:
        key = None if _missing(lang) else lang
        if key not in resolved:
            resolved[key] = resolve_normalizer(normalizer, key)
        out.append(resolved[key])
    return out


def _check_columns(frame: pd.DataFrame, *names: str) -> None:
    for name in names:
        if name not in frame.columns:
            raise ValueError(f"no column {name!r} in the results; got columns {list(frame.columns)}")


def _error_counts(output: Any) -> list[int]:
    """Substitutions + deletions + insertions of every sentence of a jiwer WordOutput/CharacterOutput."""
    counts = []
    for chunks in output.alignments:
        errors = 0
        for chunk in chunks:
            if chunk.type == "insert":
                errors += chunk.hyp_end_idx - chunk.hyp_start_idx
            elif chunk.type != "equal":  # substitute or delete: one error per reference token
                errors += chunk.ref_end_idx - chunk.ref_start_idx
        counts.append(errors)
    return counts


def score(
    results: pd.DataFrame,
    reference: str = DEFAULT_REFERENCE,
    hypothesis: str = DEFAULT_HYPOTHESIS,
    *,
    normalizer: NormalizerSpec = DEFAULT_NORMALIZER,
    language_column: str | None = DEFAULT_LANGUAGE_COLUMN,
) -> pd.DataFrame:
    """Return a copy of ``results`` with per-row ``wer``, ``cer`` and the counts behind them.

    Adds ``ref_words``, ``word_errors``, ``wer``, ``ref_chars``, ``char_errors``, ``cer`` (see the module
    docstring). Rows without a hypothesis or reference get <NA>. ``normalizer`` is ``"auto"`` (English rules
    where ``language_column`` says English, basic rules elsewhere), ``"whisper_english"``, ``"basic"``,
    ``None`` or a function.

    Example::

        scored = stt_frames.score(results, reference="reference")
        scored[["model", "text", "reference", "wer"]]
    """
    _check_columns(results, reference, hypothesis)
    normalizers = _normalizers(results, normalizer, language_column)
    positions: list[int] = []
    refs: list[str] = []
    hyps: list[str] = []
    for pos, (ref, hyp, norm) in enumerate(
        zip(results[reference].tolist(), results[hypothesis].tolist(), normalizers, strict=True)
    ):
        if _missing(ref) or _missing(hyp):
            continue
        ref, hyp = str(ref), str(hyp)
        if norm is not None:
            ref, hyp = norm(ref), norm(hyp)
        positions.append(pos)
        refs.append(ref)
        hyps.append(hyp)

    n = len(results)
    counts: dict[str, list[Any]] = {name: [pd.NA] * n for name in SCORE_COLUMNS}
    if positions:
        jiwer = _jiwer()
        words = jiwer.process_words(refs, hyps)
        chars = jiwer.process_characters(refs, hyps)
        for pos, ref_words, word_errors, ref_chars, char_errors in zip(
            positions,
            map(len, words.references),
            _error_counts(words),
            map(len, chars.references),
            _error_counts(chars),
            strict=True,
        ):
            counts["ref_words"][pos] = ref_words
            counts["word_errors"][pos] = word_errors
            counts["wer"][pos] = word_errors / ref_words if ref_words else pd.NA
            counts["ref_chars"][pos] = ref_chars
            counts["char_errors"][pos] = char_errors
            counts["cer"][pos] = char_errors / ref_chars if ref_chars else pd.NA

    out = results.copy()
    for name in SCORE_COLUMNS:
        dtype = "Float64" if name in ("wer", "cer") else "Int64"
        out[name] = pd.array(counts[name], dtype=dtype)
    return out


# --------------------------------------------------------------------------------------------- alignment


class AlignedWord(NamedTuple):
    """One step of a word alignment: ``op`` is ``"="`` (hit), ``"S"``, ``"D"`` or ``"I"``."""

    op: str
    ref: str | None
    hyp: str | None


def _width(text: str) -> int:
    """Display width in a monospaced terminal (East Asian wide characters take two cells)."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


_HTML_COLOURS = {"S": "#fde68a", "D": "#fecaca", "I": "#bbf7d0", "=": "transparent"}
_HTML_TITLES = {"S": "substitution", "D": "deletion", "I": "insertion", "=": "hit"}


@dataclass(frozen=True, repr=False)
class Alignment:
    """The word alignment of one reference and one hypothesis, after normalisation.

    ``ops`` lists ``AlignedWord(op, ref, hyp)`` steps; ``wer`` is None when the hypothesis is missing or
    the reference is empty. Prints as REF/HYP lines with S/D/I markers; renders as HTML in a notebook.

    Example::

        a = stt_frames.show_alignment(results, 0)
        print(a)           # REF / HYP / markers
        a.substitutions, a.wer
    """

    ref: str
    hyp: str | None
    ops: tuple[AlignedWord, ...]
    label: str = ""
    error: str | None = None

    def _count(self, op: str) -> int:
        return sum(1 for step in self.ops if step.op == op)

    @property
    def hits(self) -> int:
        """Words that match."""
        return self._count("=")

    @property
    def substitutions(self) -> int:
        """Reference words replaced by another word."""
        return self._count("S")

    @property
    def deletions(self) -> int:
        """Reference words missing from the hypothesis."""
        return self._count("D")

    @property
    def insertions(self) -> int:
        """Hypothesis words with no reference word."""
        return self._count("I")

    @property
    def ref_words(self) -> int:
        """Words in the (normalised) reference."""
        return len(self.ref.split())

    @property
    def wer(self) -> float | None:
        """Word error rate of this row, None when there is no hypothesis or the reference is empty."""
        if self.hyp is None or not self.ref_words:
            return None
        return (self.substitutions + self.deletions + self.insertions) / self.ref_words

    def _summary(self) -> str:
        if self.hyp is None:
            return "no hypothesis" + (f" (error: {self.error})" if self.error else "")
        wer = "n/a (empty reference)" if self.wer is None else f"{self.wer:.1%}"
        return (
            f"WER {wer} (S {self.substitutions}, D {self.deletions}, I {self.insertions}, hits {self.hits}, "
            f"{self.ref_words} reference words)"
        )

    def __str__(self) -> str:
        head = f"{self.label}: {self._summary()}" if self.label else self._summary()
        if self.hyp is None:
            return f"{head}\nREF: {self.ref}\nHYP: <NA>"
        ref_line, hyp_line, op_line = ["REF:"], ["HYP:"], ["    "]
        for step in self.ops:
            width = max(_width(step.ref or ""), _width(step.hyp or ""), 1)
            ref_line.append(_pad(step.ref if step.ref is not None else "*" * width, width))
            hyp_line.append(_pad(step.hyp if step.hyp is not None else "*" * width, width))
            op_line.append(_pad("" if step.op == "=" else step.op, width))
        return "\n".join([head, *(" ".join(line).rstrip() for line in (ref_line, hyp_line, op_line))])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        cell = "display:inline-block;vertical-align:top;margin:0 2px 4px 0;padding:1px 3px;border-radius:3px"
        parts = [
            '<div class="stt-frames-alignment" style="font-family:monospace;line-height:1.5">',
            f"<div><b>{esc(self.label)}</b> {esc(self._summary())}</div>"
            if self.label
            else f"<div>{esc(self._summary())}</div>",
            f'<span style="{cell};color:#6b7280"><b>REF</b><br><b>HYP</b><br>&nbsp;</span>',
        ]
        if self.hyp is None:
            parts.append(f'<span style="{cell}">{esc(self.ref)}<br>&lt;NA&gt;<br>&nbsp;</span>')
        for step in self.ops:
            ref = esc(step.ref) if step.ref is not None else "<i>*</i>"
            hyp = esc(step.hyp) if step.hyp is not None else "<i>*</i>"
            mark = "&nbsp;" if step.op == "=" else f"<b>{step.op}</b>"
            parts.append(
                f'<span class="op-{"hit" if step.op == "=" else step.op}" title="{_HTML_TITLES[step.op]}" '
                f'style="{cell};background:{_HTML_COLOURS[step.op]}">{ref}<br>{hyp}<br>{mark}</span>'
            )
        parts.append("</div>")
        return "".join(parts)


class Alignments(list[Alignment]):
    """Several alignments (one index label shared by many rows, e.g. one per model); prints them all.

    Example::

        for a in stt_frames.show_alignment(results, 0):
            print(a.label, a.wer)
    """

    def __str__(self) -> str:
        return "\n\n".join(map(str, self))

    __repr__ = __str__  # type: ignore[assignment]

    def _repr_html_(self) -> str:
        return "<hr>".join(a._repr_html_() for a in self)


def _align(ref: str, hyp: str) -> tuple[AlignedWord, ...]:
    output = _jiwer().process_words(ref, hyp)
    ref_words, hyp_words = output.references[0], output.hypotheses[0]
    steps: list[AlignedWord] = []
    for chunk in output.alignments[0]:
        op = _OP_NAMES[chunk.type]
        refs: Sequence[str | None] = ref_words[chunk.ref_start_idx : chunk.ref_end_idx]
        hyps: Sequence[str | None] = hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if op == "I":
            refs = [None] * len(hyps)
        elif op == "D":
            hyps = [None] * len(refs)
        steps.extend(AlignedWord(op, r, h) for r, h in zip(refs, hyps, strict=True))
    return tuple(steps)


def _label(row: pd.Series, index: Hashable) -> str:
    bits = [f"row {index!r}"]
    if "model" in row.index and not _missing(row["model"]):
        bits.append(str(row["model"]))
    if "language" in row.index:
        bits.append("auto" if _missing(row["language"]) else str(row["language"]))
    return " · ".join(bits)


def show_alignment(
    results: pd.DataFrame,
    row: Hashable,
    reference: str = DEFAULT_REFERENCE,
    hypothesis: str = DEFAULT_HYPOTHESIS,
    *,
    normalizer: NormalizerSpec = DEFAULT_NORMALIZER,
    language_column: str | None = DEFAULT_LANGUAGE_COLUMN,
) -> Alignment | Alignments:
    """Show the reference, the hypothesis and the S/D/I edits of the row with index label ``row``.

    Texts are normalised as ``score`` does. Returns an ``Alignment`` (HTML in a notebook, text with
    ``print``), or ``Alignments`` when several rows share the label (one per model and language after
    ``compare``).

    Example::

        stt_frames.show_alignment(results, 3)
    """
    _check_columns(results, reference, hypothesis)
    try:
        rows = results.loc[[row]]
    except KeyError:
        raise KeyError(f"row {row!r} is not in the results' index {list(results.index[:5])}...") from None
    normalizers = _normalizers(rows, normalizer, language_column)
    found: list[Alignment] = []
    for (index, values), norm in zip(rows.iterrows(), normalizers, strict=True):
        ref, hyp = values[reference], values[hypothesis]
        ref = "" if _missing(ref) else str(ref)
        ref = norm(ref) if norm is not None else ref
        label = _label(values, index)
        if _missing(hyp):
            error = values.get("error")
            found.append(Alignment(ref, None, (), label, None if _missing(error) else str(error)))
            continue
        hyp = norm(str(hyp)) if norm is not None else str(hyp)
        found.append(Alignment(ref, hyp, _align(ref, hyp), label))
    return found[0] if len(found) == 1 else Alignments(found)
