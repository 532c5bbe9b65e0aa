"""ISO-639-1 language codes, the values the contract's ``language`` field takes.

Example::

    from stt_frames.server.languages import ISO_639_1
    "en" in ISO_639_1  # True
"""

from __future__ import annotations

from ..languages import ISO_639_1  # the one list of codes, shared with the client

__all__ = ["ISO_639_1", "WHISPER_CODES", "WHISPER_LANGUAGES"]

_WHISPER = """
    af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha he hi hr ht hu hy
    id is it ja jv ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro
    ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh
"""
#: The languages OpenAI Whisper's multilingual models know, as ISO-639-1 codes (Whisper's 99 but ``haw`` and
#: ``yue``, which have no two-letter code).
WHISPER_LANGUAGES: frozenset[str] = frozenset(_WHISPER.split())

#: ISO-639-1 codes that Whisper spells otherwise.
WHISPER_CODES: dict[str, str] = {"jv": "jw"}
