"""Shared fixtures. Every test gets a private cache directory and a clean OPENROUTER_* environment."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "STT_FRAMES_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STT_FRAMES_CACHE_DIR", str(tmp_path_factory.mktemp("stt-cache")))
