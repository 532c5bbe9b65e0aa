"""Shared fixtures. Every test gets a private cache directory and a clean OPENROUTER_* environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module- and session-scoped fixtures run before the per-test one: never let them touch ~/.cache."""
    saved = {k: os.environ.pop(k) for k in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL") if k in os.environ}
    old = os.environ.get("STT_FRAMES_CACHE_DIR")
    os.environ["STT_FRAMES_CACHE_DIR"] = str(tmp_path_factory.mktemp("stt-cache-session"))
    yield
    if old is None:
        os.environ.pop("STT_FRAMES_CACHE_DIR", None)
    else:
        os.environ["STT_FRAMES_CACHE_DIR"] = old
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "STT_FRAMES_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STT_FRAMES_CACHE_DIR", str(tmp_path_factory.mktemp("stt-cache")))


# --- local server helpers (tests/test_server*.py, test_local_server.py, test_openrouter_sdk.py) ---


def _make_wav(seconds: float = 1.0, *, rate: int = 16_000, freq: float = 440.0, channels: int = 1) -> bytes:
    """A 16-bit PCM sine-tone WAV file, built with the standard library."""
    import io
    import math
    import struct
    import wave

    n = round(seconds * rate)
    frame = [struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) * channels for i in range(n)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(frame))
    return buf.getvalue()


@pytest.fixture
def wav_factory() -> Callable[..., bytes]:
    """``wav_factory(seconds=1.0, rate=16000, freq=440.0, channels=1)``: a sine-tone WAV file's bytes."""
    return _make_wav
