"""stt_frames: transcribe a pandas column of audio files with OpenRouter speech-to-text.

Example::

    import pandas as pd, stt_frames
    df = pd.DataFrame({"path": ["data/en/flite_slt_00.wav"]})
    out = df.pipe(stt_frames.transcribe_column, column="path", model="openai/whisper-large-v3")

Names are imported lazily, so ``import stt_frames`` stays fast and optional extras load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> submodule that defines it
_LAZY: dict[str, str] = {
    "APIConnectionError": "errors",
    "APIStatusError": "errors",
    "APITimeoutError": "errors",
    "AsyncClient": "client",
    "AudioError": "errors",
    "AuthenticationError": "errors",
    "BadGatewayError": "errors",
    "BadRequestError": "errors",
    "BudgetExceededError": "errors",
    "CacheError": "errors",
    "Cache": "cache",
    "Client": "client",
    "InsecureTransportError": "errors",
    "InternalServerError": "errors",
    "Interrupted": "errors",
    "MalformedResponseError": "errors",
    "MissingExtraError": "errors",
    "NotFoundError": "errors",
    "NotSentError": "errors",
    "PaymentRequiredError": "errors",
    "RateLimitError": "errors",
    "RequestTimeoutError": "errors",
    "RunProgress": "_progress",
    "STTError": "errors",
    "ServiceUnavailableError": "errors",
    "TranscribeWidget": "widget",
    "Transcription": "types",
    "Usage": "types",
    "atranscribe_column": "frame",
    "cache_info": "cache",
    "clear_cache": "cache",
    "compare": "_compare",
    "estimate": "_estimate",
    "leaderboard": "_leaderboard",
    "plot_leaderboard": "plot",
    "read_results": "results",
    "score": "scoring",
    "serve_local": "server.launcher",
    "show_alignment": "scoring",
    "transcribe_column": "frame",
    "try_file": "widget",
    "write_dataset": "results",
    "write_results": "results",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._compare import compare
    from ._estimate import estimate
    from ._leaderboard import leaderboard
    from ._progress import RunProgress
    from .cache import Cache, cache_info, clear_cache
    from .client import AsyncClient, Client
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AudioError,
        AuthenticationError,
        BadGatewayError,
        BadRequestError,
        BudgetExceededError,
        CacheError,
        InsecureTransportError,
        InternalServerError,
        Interrupted,
        MalformedResponseError,
        MissingExtraError,
        NotFoundError,
        NotSentError,
        PaymentRequiredError,
        RateLimitError,
        RequestTimeoutError,
        ServiceUnavailableError,
        STTError,
    )
    from .frame import atranscribe_column, transcribe_column
    from .plot import plot_leaderboard
    from .results import read_results, write_dataset, write_results
    from .scoring import score, show_alignment
    from .server.launcher import serve_local
    from .types import Transcription, Usage
    from .widget import TranscribeWidget, try_file


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stt_frames' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
