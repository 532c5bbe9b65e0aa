"""ISO-639-1 language codes, the values the contract's ``language`` field takes.

Example::

    from stt_frames.server.languages import ISO_639_1
    "en" in ISO_639_1  # True
"""

from __future__ import annotations

__all__ = ["ISO_639_1", "WHISPER_CODES", "WHISPER_LANGUAGES"]

#: Every two-letter ISO-639-1 code (the 183 current ones; the withdrawn ``sh`` is left out).
_CODES = """
    aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
    ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii
    ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi
    mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw
    sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk
    ur uz ve vi vo wa wo xh yi yo za zh zu
"""
ISO_639_1: frozenset[str] = frozenset(_CODES.split())

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
