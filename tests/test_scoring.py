"""Per-row scoring, normalisers and the alignment view, checked against an independent edit distance."""

from __future__ import annotations

import pandas as pd
import pytest

import stt_frames
from stt_frames.normalize import basic, is_english, resolve_normalizer, whisper_english
from stt_frames.scoring import SCORE_COLUMNS, Alignment, Alignments

pytest.importorskip("jiwer", reason="scoring needs the eval extra")


def levenshtein(ref: list[str], hyp: list[str]) -> int:
    """Plain dynamic-programming edit distance (substitution, deletion, insertion all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def frame(refs: list[str | None], hyps: list[str | None], **extra: object) -> pd.DataFrame:
    return pd.DataFrame({"reference": pd.array(refs, dtype="string"), "text": pd.array(hyps, dtype="string"), **extra})


SENTENCES = [
    ("the cat sat on the mat", "the bat sat on mat"),
    ("alpha beta gamma delta", "beta gama delta epsilon"),
    ("one two three", "one two three"),
    ("a b", "x y z w"),
]


def test_score_matches_independent_levenshtein() -> None:
    refs, hyps = zip(*SENTENCES, strict=True)
    scored = stt_frames.score(frame(list(refs), list(hyps)), normalizer=None)
    for (ref, hyp), (_, row) in zip(SENTENCES, scored.iterrows(), strict=True):
        assert row["ref_words"] == len(ref.split())
        assert row["word_errors"] == levenshtein(ref.split(), hyp.split())
        assert row["wer"] == pytest.approx(levenshtein(ref.split(), hyp.split()) / len(ref.split()))
        assert row["ref_chars"] == len(ref)
        assert row["char_errors"] == levenshtein(list(ref), list(hyp))
        assert row["cer"] == pytest.approx(levenshtein(list(ref), list(hyp)) / len(ref))
    assert list(scored.columns[-len(SCORE_COLUMNS) :]) == list(SCORE_COLUMNS)
    assert str(scored["wer"].dtype) == "Float64"
    assert str(scored["word_errors"].dtype) == "Int64"


def test_score_returns_a_copy_with_the_same_index() -> None:
    df = frame(["a b", "c d"], ["a b", "c"]).set_axis(["x", "y"])
    scored = stt_frames.score(df)
    assert list(scored.index) == ["x", "y"]
    assert "wer" not in df.columns
    assert scored.loc["y", "wer"] == 0.5


def test_failed_rows_get_na_not_zero_and_stay() -> None:
    df = frame(
        ["hello world", "hello world"], ["hello world", None], error=pd.array([None, "502 boom"], dtype="string")
    )
    scored = stt_frames.score(df)
    assert len(scored) == 2
    assert scored.loc[0, "wer"] == 0
    for name in SCORE_COLUMNS:
        assert pd.isna(scored.loc[1, name])


def test_missing_reference_is_unscored() -> None:
    scored = stt_frames.score(frame([None], ["something"]))
    assert pd.isna(scored.loc[0, "wer"]) and pd.isna(scored.loc[0, "word_errors"])


def test_empty_reference_keeps_insertions_without_a_rate() -> None:
    scored = stt_frames.score(frame(["", "", "[music]"], ["two words", "", "la la"], language=["en"] * 3))
    assert list(scored["ref_words"]) == [0, 0, 0]
    assert list(scored["word_errors"]) == [2, 0, 2]  # "[music]" is dropped by the English normaliser
    assert scored["wer"].isna().all() and scored["cer"].isna().all()


def test_empty_hypothesis_is_all_deletions() -> None:
    scored = stt_frames.score(frame(["three little words"], [""]))
    assert scored.loc[0, "word_errors"] == 3 and scored.loc[0, "wer"] == 1.0


def test_whisper_english_normaliser() -> None:
    assert whisper_english("Don't SHOUT, it's fine!") == "do not shout it is fine"
    assert whisper_english("We're here [laughs] (inaudible) um, OK.") == "we are here ok"
    assert whisper_english("The colour is twenty five dollars") == "the color is $25"


def test_basic_normaliser_keeps_accents() -> None:
    assert basic("Él está aquí.") == "él está aquí"
    assert basic("  «Straße»,   ¿qué?  ") == "strasse qué"
    assert basic("नमस्ते दुनिया!") == "नमस्ते दुनिया"  # vowel signs (combining marks) survive


def test_auto_normaliser_follows_the_language_column() -> None:
    df = frame(["It's fine."] * 3, ["it is fine"] * 3, language=pd.array(["en", None, "fr"], dtype="string"))
    scored = stt_frames.score(df)
    assert scored.loc[0, "wer"] == 0  # English rules expand "it's"
    assert scored.loc[1, "wer"] == pytest.approx(1 / 3)  # basic: "it s fine" against "it is fine"
    assert scored.loc[2, "wer"] == pytest.approx(1 / 3)
    assert resolve_normalizer("auto", "en-GB") is whisper_english
    assert resolve_normalizer("auto", pd.NA) is basic
    assert is_english("English") and not is_english("es")


def test_no_normaliser_and_callable_normaliser() -> None:
    df = frame(["Hello, World"], ["hello world"])
    assert stt_frames.score(df, normalizer=None).loc[0, "wer"] == 1.0
    assert stt_frames.score(df, normalizer="basic").loc[0, "wer"] == 0
    assert stt_frames.score(df, normalizer=str.lower).loc[0, "word_errors"] == 1  # "hello," against "hello"
    assert resolve_normalizer(None) is None


def test_bad_arguments_say_what_was_given() -> None:
    df = frame(["a"], ["a"])
    with pytest.raises(ValueError, match="unknown normalizer 'klingon'"):
        stt_frames.score(df, normalizer="klingon")
    with pytest.raises(ValueError, match="no column 'ref'"):
        stt_frames.score(df, reference="ref")
    with pytest.raises(ValueError, match="language_column='lang'"):
        stt_frames.score(df, language_column="lang")


# ------------------------------------------------------------------------------------------- alignment


def test_alignment_text_marks_substitution_deletion_insertion() -> None:
    df = frame(["alpha beta gamma delta"], ["beta gama delta epsilon"])
    alignment = stt_frames.show_alignment(df, 0)
    assert isinstance(alignment, Alignment)
    assert [step.op for step in alignment.ops] == ["D", "=", "S", "=", "I"]
    assert (alignment.substitutions, alignment.deletions, alignment.insertions, alignment.hits) == (1, 1, 1, 2)
    assert alignment.wer == pytest.approx(3 / 4)
    ref_line, hyp_line, op_line = str(alignment).splitlines()[1:]
    assert ref_line == "REF: alpha beta gamma delta *******"
    assert hyp_line == "HYP: ***** beta gama  delta epsilon"
    assert op_line == "     D          S           I"
    assert repr(alignment) == str(alignment)


def test_alignment_html_escapes_and_shows_markers() -> None:
    df = frame(["say <script>alert(1)</script> now"], ["say hello now please"])
    page = stt_frames.show_alignment(df, 0, normalizer=None)._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "REF" in page and "HYP" in page
    assert "<b>S</b>" in page and "<b>I</b>" in page
    deleted = stt_frames.show_alignment(frame(["a b c"], ["a c"]), 0)._repr_html_()
    assert "<b>D</b>" in deleted


def test_alignment_of_a_shared_label_and_of_a_failed_row() -> None:
    df = frame(
        ["a b", "a b"],
        ["a b", None],
        model=["m1", "m2"],
        language=pd.array(["en", None], dtype="string"),
        error=pd.array([None, "429 rate limited"], dtype="string"),
    ).set_axis([7, 7])
    both = stt_frames.show_alignment(df, 7)
    assert isinstance(both, Alignments) and len(both) == 2
    assert both[0].wer == 0 and "m1 · en" in both[0].label
    assert both[1].wer is None and both[1].hyp is None
    text = str(both)
    assert "m2 · auto" in text and "429 rate limited" in text and "HYP: <NA>" in text
    assert both._repr_html_().count('class="stt-frames-alignment"') == 2
    with pytest.raises(KeyError, match="row 8"):
        stt_frames.show_alignment(df, 8)


def test_alignment_with_empty_reference() -> None:
    alignment = stt_frames.show_alignment(frame([""], ["hi there"]), 0)
    assert isinstance(alignment, Alignment)
    assert [step.op for step in alignment.ops] == ["I", "I"]
    assert alignment.wer is None
    assert "empty reference" in str(alignment)
