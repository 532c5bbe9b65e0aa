"""ISO-639-1 language codes, the values the API's ``language`` field takes, and a friendly check for them.

``check_language("english")`` raises ``ValueError: language 'english' is not an ISO-639-1 code; did you mean
'en'?``: a run fails once, before any request, instead of getting a 400 on every row.

Example::

    from stt_frames.languages import check_language, ISO_639_1
    check_language("EN")  # 'en'
    "de" in ISO_639_1     # True
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Final

__all__ = ["ISO_639_1", "LANGUAGE_NAMES", "check_language", "check_languages"]

_NAMES = """
    aa:afar ab:abkhazian ae:avestan af:afrikaans ak:akan am:amharic an:aragonese ar:arabic as:assamese
    av:avaric ay:aymara az:azerbaijani ba:bashkir be:belarusian bg:bulgarian bi:bislama bm:bambara bn:bengali
    bo:tibetan br:breton bs:bosnian ca:catalan ce:chechen ch:chamorro co:corsican cr:cree cs:czech
    cu:church_slavic cv:chuvash cy:welsh da:danish de:german dv:divehi dz:dzongkha ee:ewe el:greek en:english
    eo:esperanto es:spanish et:estonian eu:basque fa:persian ff:fulah fi:finnish fj:fijian fo:faroese fr:french
    fy:western_frisian ga:irish gd:scottish_gaelic gl:galician gn:guarani gu:gujarati gv:manx ha:hausa
    he:hebrew hi:hindi ho:hiri_motu hr:croatian ht:haitian hu:hungarian hy:armenian hz:herero ia:interlingua
    id:indonesian ie:interlingue ig:igbo ii:sichuan_yi ik:inupiaq io:ido is:icelandic it:italian iu:inuktitut
    ja:japanese jv:javanese ka:georgian kg:kongo ki:kikuyu kj:kuanyama kk:kazakh kl:kalaallisut km:khmer
    kn:kannada ko:korean kr:kanuri ks:kashmiri ku:kurdish kv:komi kw:cornish ky:kyrgyz la:latin
    lb:luxembourgish lg:ganda li:limburgish ln:lingala lo:lao lt:lithuanian lu:luba_katanga lv:latvian
    mg:malagasy mh:marshallese mi:maori mk:macedonian ml:malayalam mn:mongolian mr:marathi ms:malay mt:maltese
    my:burmese na:nauru nb:norwegian_bokmal nd:north_ndebele ne:nepali ng:ndonga nl:dutch nn:norwegian_nynorsk
    no:norwegian nr:south_ndebele nv:navajo ny:chichewa oc:occitan oj:ojibwa om:oromo or:oriya os:ossetian
    pa:punjabi pi:pali pl:polish ps:pashto pt:portuguese qu:quechua rm:romansh rn:rundi ro:romanian ru:russian
    rw:kinyarwanda sa:sanskrit sc:sardinian sd:sindhi se:northern_sami sg:sango si:sinhala sk:slovak
    sl:slovenian sm:samoan sn:shona so:somali sq:albanian sr:serbian ss:swati st:southern_sotho su:sundanese
    sv:swedish sw:swahili ta:tamil te:telugu tg:tajik th:thai ti:tigrinya tk:turkmen tl:tagalog tn:tswana
    to:tonga tr:turkish ts:tsonga tt:tatar tw:twi ty:tahitian ug:uyghur uk:ukrainian ur:urdu uz:uzbek ve:venda
    vi:vietnamese vo:volapuk wa:walloon wo:wolof xh:xhosa yi:yiddish yo:yoruba za:zhuang zh:chinese zu:zulu
"""

#: ISO-639-1 code -> English name, for every current two-letter code.
LANGUAGE_NAMES: Final[dict[str, str]] = dict(item.split(":") for item in _NAMES.split())

#: Every two-letter ISO-639-1 code (the withdrawn ``sh`` is left out).
ISO_639_1: Final[frozenset[str]] = frozenset(LANGUAGE_NAMES)

_BY_NAME: Final = {name.replace("_", " "): code for code, name in LANGUAGE_NAMES.items()} | {
    "farsi": "fa",
    "flemish": "nl",
    "mandarin": "zh",
    "cantonese": "zh",
    "castilian": "es",
    "filipino": "tl",
    "moldovan": "ro",
    "panjabi": "pa",
    "pushto": "ps",
    "sinhalese": "si",
    "valencian": "ca",
    "deutsch": "de",
    "espanol": "es",
    "español": "es",
    "francais": "fr",
    "français": "fr",
    "italiano": "it",
    "nederlands": "nl",
    "portugues": "pt",
    "português": "pt",
}


def _suggestion(value: str) -> str | None:
    text = value.strip().lower().replace("_", "-")
    head = text.split("-")[0]
    if len(head) == 2 and head in ISO_639_1:  # "en-US", "pt_BR"
        return head
    if text in _BY_NAME:
        return _BY_NAME[text]
    close = difflib.get_close_matches(text, list(_BY_NAME), n=1, cutoff=0.8)
    return _BY_NAME[close[0]] if close else None


def check_language(value: str | None, *, what: str = "language") -> str | None:
    """``value`` as a lower-case ISO-639-1 code (None stays None: auto-detect); ValueError with a suggestion.

    Example::

        check_language("German")  # ValueError: ... did you mean 'de'?
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be an ISO-639-1 code such as 'en' (or None to auto-detect), got {value!r}")
    code = value.strip().lower()
    if code in ISO_639_1:
        return code
    hint = _suggestion(value)
    advice = f"did you mean {hint!r}?" if hint else "use a two-letter code such as 'en', 'de' or 'fr'"
    raise ValueError(f"{what} {value!r} is not an ISO-639-1 code; {advice}")


def check_languages(values: Iterable[object], *, column: str) -> None:
    """Check every distinct value of a language column at once; one ValueError lists the bad ones (max 5)."""
    bad: dict[str, str] = {}
    for value in dict.fromkeys(values):
        if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
            continue  # missing: the run's ``language`` applies
        try:
            check_language(str(value))
        except ValueError:
            hint = _suggestion(str(value))
            bad[str(value)] = f"{value!r} (did you mean {hint!r}?)" if hint else repr(value)
    if bad:
        shown = ", ".join(list(bad.values())[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"language_column {column!r} holds values that are not ISO-639-1 codes: {shown}")
