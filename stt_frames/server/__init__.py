"""A local server that speaks OpenRouter's speech-to-text API, for demos, notebooks and tests.

No API key and no network: ``fake/echo`` answers instantly and deterministically, and
``local/pocketsphinx`` (plus ``-fast``) recognise English offline. It needs the ``server`` extra
(starlette, uvicorn); the pocketsphinx engines and non-WAV audio need the ``local`` extra.

Routes, under ``/api/v1``: ``POST /audio/transcriptions`` (the contract), ``GET /models``,
``GET /_stats`` and ``DELETE /_stats`` (accounting per audio hash, see ``stats``).

It behaves like a real provider: each model refuses a body over ``max_body_bytes`` (413) and audio over
``max_audio_seconds`` (400, default 1,500 s), in OpenRouter's error shape with the limit in ``metadata``,
and lists both under ``limits`` in ``GET /models``; a client that goes away cancels its request's work;
the pocketsphinx engines run in ``workers`` processes (default: every CPU) and decode a long recording
utterance by utterance, cut at pauses (see ``engines`` and ``workers``).

Usage in each 200 (see ``pricing``): ``seconds`` is the decoded duration; ``input_tokens`` = 10 audio
tokens per second (rounded up); ``output_tokens`` = characters of text / 4 (rounded up);
``total_tokens`` their sum; ``cost`` = the model's USD-per-minute price x minutes (0 unless set).

Start it from a shell with ``stt-frames serve`` or from Python::

    import stt_frames
    with stt_frames.serve_local(prices={"fake/echo": 0.006}) as base_url:
        ...  # base_url == "http://127.0.0.1:<port>/api/v1"

and read its accounting with ``stt_frames.server.get_stats(base_url)`` (``reset_stats`` zeroes it),
or build the ASGI app yourself::

    from stt_frames.server import create_app
    app = create_app(api_key="sk-test", fail_rate=0.1, seed=7, faults=("429", "drop"))

Every option is declared once, in ``ServerOptions`` (see ``options``): ``create_app``, ``serve_local`` and
``stt-frames serve`` all take the same ones. The launcher (``serve_local``, ``get_stats``, ``reset_stats``)
is in ``launcher``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "API_PREFIX",
    "DEFAULT_FAULTS",
    "DEFAULT_MAX_AUDIO_SECONDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_RETRY_AFTER",
    "FAULT_KINDS",
    "MODELS",
    "ServerOptions",
    "ServerState",
    "ServerStats",
    "create_app",
    "get_stats",
    "reset_stats",
    "serve_local",
]

#: Path prefix of every route, as on openrouter.ai.
API_PREFIX: str = "/api/v1"

#: The model ids the server knows (the pocketsphinx ones need the ``local`` extra, the Whisper ones the
#: ``whisper`` and ``whisper-base`` extras; each folder of ``$STT_FRAMES_WHISPER_MODELS`` adds one more).
MODELS: tuple[str, ...] = (
    "fake/echo",
    "local/pocketsphinx",
    "local/pocketsphinx-fast",
    "local/whisper-base",
    "local/whisper-tiny.en",
)

_LAZY: dict[str, str] = {
    "DEFAULT_FAULTS": "faults",
    "DEFAULT_MAX_AUDIO_SECONDS": "decode",
    "DEFAULT_MAX_BODY_BYTES": "request",
    "DEFAULT_RETRY_AFTER": "faults",
    "FAULT_KINDS": "faults",
    "ServerOptions": "options",
    "ServerState": "app",
    "ServerStats": "stats",
    "create_app": "app",
    "get_stats": "launcher",
    "reset_stats": "launcher",
    "serve_local": "launcher",
}

if TYPE_CHECKING:  # pragma: no cover
    from .app import ServerState, create_app
    from .decode import DEFAULT_MAX_AUDIO_SECONDS
    from .faults import DEFAULT_FAULTS, DEFAULT_RETRY_AFTER, FAULT_KINDS
    from .launcher import get_stats, reset_stats, serve_local
    from .options import ServerOptions
    from .request import DEFAULT_MAX_BODY_BYTES
    from .stats import ServerStats


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stt_frames.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
