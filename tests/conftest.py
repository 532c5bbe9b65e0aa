"""Shared fixtures. Every test gets a private cache directory and a clean OPENROUTER_* environment.

Servers, over loopback: ``server`` (the default local server's URL), ``local_server(**options)`` (one running
server per set of options for the session, its stats zeroed on each call), ``fresh_server(**options)`` (a
server of the test's own, for a test that stops or restarts it). In-process, for ``httpx.ASGITransport``:
``make_app(**options)`` (closed after the test) and ``shared_app(**options)`` (one per set of options).
No test file starts a server any other way; the launcher's own tests (test_local_server.py,
test_server_options.py) aside.

Data: ``tmp_cache`` (a ``Cache`` in a fresh directory), ``samples_dir`` (a copy of data/ with exactly the
clips of samples.csv), ``wav_factory`` (a sine-tone WAV's bytes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from stt_frames.cache import Cache

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


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of data/ holding exactly samples.csv and its clips, at the same relative paths.

    For tests that count the files of a folder: data/real/ (and whatever data/ gains later) leaves it alone.
    """
    import csv
    import shutil

    folder = tmp_path_factory.mktemp("samples")
    shutil.copyfile(DATA / "samples.csv", folder / "samples.csv")
    with (DATA / "samples.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            (folder / row["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DATA / row["path"], folder / row["path"])
    return folder


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


# --- shared servers: every test that needs the local server gets it here --------------------------------------

#: The prices of the default server (``server`` fixture): fake/echo costs something, so cost columns are > 0.
DEFAULT_PRICES: dict[str, float] = {"fake/echo": 0.06}


def _options_key(options: Mapping[str, Any]) -> str:
    """A stable key for a set of options (mappings sorted, so ``prices`` given in any order share a server)."""

    def canon(value: Any) -> Any:
        if isinstance(value, Mapping):
            return sorted((k, canon(v)) for k, v in value.items())
        if isinstance(value, list | tuple):
            return tuple(canon(v) for v in value)
        return value

    return repr(canon(options))


@pytest.fixture(scope="session")
def local_server() -> Iterator[Callable[..., str]]:
    """``local_server(**options)``: the base URL of a running local server, its stats zeroed.

    Takes what ``serve_local`` takes (server options such as ``latency=``, ``fail_rate=``, ``prices=``, and
    ``process=True``). One server runs per distinct set of options for the whole session; each call zeroes its
    stats and restarts its fault sequence (``reset_stats``), so a test sees the server as if it were new.
    All of them stop at the end of the session.
    """
    import stt_frames
    from stt_frames.server import reset_stats

    servers: dict[str, str] = {}
    with contextlib.ExitStack() as stack:

        def get(**options: Any) -> str:
            key = _options_key(options)
            url = servers.get(key)
            if url is None:
                url = servers[key] = stack.enter_context(stt_frames.serve_local(**options))
            else:
                reset_stats(url, api_key=options.get("api_key"))
            return url

        yield get


@pytest.fixture
def server(local_server: Callable[..., str]) -> str:
    """The base URL of the default local server (fake/echo priced at ``DEFAULT_PRICES``), stats zeroed."""
    return local_server(prices=DEFAULT_PRICES)


@pytest.fixture
def fresh_server() -> Iterator[Callable[..., contextlib.AbstractContextManager[str]]]:
    """``with fresh_server(**options) as url:`` a server of the test's own, for a test that stops or restarts it.

    Takes what ``serve_local`` takes (``port=`` included, to start a second one where the first listened).
    Any still running when the test ends are stopped then. Every other test shares ``local_server``'s.
    """
    import stt_frames

    started: list[contextlib.ExitStack] = []

    @contextlib.contextmanager
    def start(**options: Any) -> Iterator[str]:
        stack = contextlib.ExitStack()
        started.append(stack)
        with stack:
            yield stack.enter_context(stt_frames.serve_local(**options))

    yield start
    for stack in started:  # a server the test left running (closing twice is a no-op)
        stack.close()


@pytest.fixture
def make_app() -> Iterator[Callable[..., Any]]:
    """``make_app(**options)``: a new in-process server app (``create_app``), closed after the test.

    For ``httpx.ASGITransport``; its worker processes (pocketsphinx) stop when the test ends.
    """
    from stt_frames.server import create_app

    apps: list[Any] = []

    def make(*args: Any, **options: Any) -> Any:
        app = create_app(*args, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.stt.close()


@pytest.fixture(scope="session")
def shared_app() -> Iterator[Callable[..., Any]]:
    """``shared_app(**options)``: one in-process app per distinct set of options for the session.

    For tests that never read its stats (fuzzing): build once, reuse, close at the end of the session.
    """
    from stt_frames.server import create_app

    apps: dict[str, Any] = {}

    def get(**options: Any) -> Any:
        key = _options_key(options)
        if key not in apps:
            apps[key] = create_app(**options)
        return apps[key]

    yield get
    for app in apps.values():
        app.state.stt.close()


@pytest.fixture
def tmp_cache(tmp_path: Path) -> Iterator[Cache]:
    """A ``Cache`` in a fresh directory of its own (``tmp_cache.path``), closed after the test."""
    from stt_frames.cache import Cache

    cache = Cache(tmp_path / "cache")
    yield cache
    cache.close()
