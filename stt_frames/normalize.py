"""Text normalisers applied to references and hypotheses before WER and CER are computed.

Word error rates depend as much on normalisation as on the model: "Don't!" against "do not" is two errors
raw and none after Whisper's English normaliser. stt_frames follows Hugging Face's Open ASR Leaderboard:

``"whisper_english"``
    OpenAI's English normaliser from the Whisper paper (appendix C), through the ``whisper-normalizer``
    package (the ``eval`` extra): lower-case; drop spans in ``[brackets]`` and ``(parentheses)`` and the
    fillers hmm/mm/mhm/mmm/uh/um; expand contractions ("won't" -> "will not", "it's" -> "it is") and titles
    ("Mr" -> "mister"); spell numbers and currencies as digits ("twenty five dollars" -> "$25"); British to
    American spelling ("colour" -> "color"); strip accents, punctuation and symbols; collapse whitespace.
``"basic"``
    For any language: Unicode NFKC, ``str.casefold``, every punctuation or symbol character (Unicode
    categories P* and S*) replaced by a space, whitespace collapsed. Accents and combining marks are kept
    ("Él está aquí." -> "él está aquí"), so Devanagari vowel signs survive, unlike Whisper's own basic one.
``"auto"`` (the default)
    Per row, from the language column: ``"whisper_english"`` where the language is English (``"en"``,
    ``"en-US"``, ``"english"`` ...), ``"basic"`` everywhere else, including <NA> (auto-detect). To score
    auto-detected English runs with the English rules, pass ``normalizer="whisper_english"`` or point
    ``language_column=`` at a column that holds the language of your references.
``None``
    The text is compared as it is (jiwer only splits it on whitespace).
a callable
    Any ``str -> str`` function, applied to both the reference and the hypothesis.

Example::

    from stt_frames.normalize import basic, whisper_english
    whisper_english("Don't panic, Mr. Smith!")  # 'do not panic mister smith'
    basic("Él está aquí.")                      # 'él está aquí'
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import cache
from typing import Any

import pandas as pd

from ._extras import require

__all__ = [
    "DEFAULT_NORMALIZER",
    "NORMALIZERS",
    "Normalizer",
    "NormalizerSpec",
    "basic",
    "is_english",
    "resolve_normalizer",
    "whisper_english",
]

#: A normaliser: any function from text to text.
Normalizer = Callable[[str], str]

#: What ``normalizer=`` accepts: a name from ``NORMALIZERS``, ``"auto"``, ``None`` or a callable.
NormalizerSpec = str | Normalizer | None

#: The default of ``normalizer=`` in scoring: English rules for English rows, basic rules for the rest.
DEFAULT_NORMALIZER: str = "auto"


@cache
def _english_normalizer() -> Normalizer:
    module = require("whisper_normalizer.english", "eval", "the Whisper English normaliser")
    normalizer: Normalizer = module.EnglishTextNormalizer()
    return normalizer


def whisper_english(text: str) -> str:
    """Normalise English text the way Whisper's paper and the Open ASR Leaderboard do.

    Example::

        whisper_english("It's twenty-five dollars [laughs]")  # 'it is $25'
    """
    return _english_normalizer()(text)


def basic(text: str) -> str:
    """Normalise text in any language: NFKC, casefold, punctuation and symbols to spaces; accents kept.

    Example::

        basic("Él está aquí.")  # 'él está aquí'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(text.split())


#: The normalisers that ``normalizer=`` can name.
NORMALIZERS: dict[str, Normalizer] = {"whisper_english": whisper_english, "basic": basic}


def is_english(language: Any) -> bool:
    """True when ``language`` names English: ``"en"``, ``"EN"``, ``"en-GB"``, ``"en_US"`` or ``"english"``.

    Example::

        is_english("en-US"), is_english(None)  # (True, False)
    """
    if language is None or (not isinstance(language, str) and pd.isna(language)):
        return False
    code = str(language).strip().lower().replace("_", "-")
    return code in ("en", "english") or code.startswith("en-")


def resolve_normalizer(spec: NormalizerSpec, language: Any = None) -> Normalizer | None:
    """Turn a ``normalizer=`` value into a function (None: no normalisation) for a row in ``language``.

    Example::

        resolve_normalizer("auto", "en") is whisper_english  # True
    """
    if spec is None or callable(spec):
        return spec
    if spec == "auto":
        return whisper_english if is_english(language) else basic
    try:
        return NORMALIZERS[spec]
    except KeyError:
        raise ValueError(
            f"unknown normalizer {spec!r}: expected 'auto', {', '.join(map(repr, NORMALIZERS))}, "
            "None or a function str -> str"
        ) from None
