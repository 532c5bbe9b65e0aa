"""Client settings and their one resolution order: explicit argument, then environment variable, then default.

``OPENROUTER_API_KEY`` and ``OPENROUTER_BASE_URL`` are the environment variables. The key never
leaves this object in a repr, and it is refused over plain http to a host that is not loopback.

Secrets policy: the key is redacted (replaced by ``***``) in what describes a request, never in what the
server answered. Error messages (the server's words quoted in them), log records and reprs never hold the
key; transcripts, usage, cache entries and Parquet files are kept byte for byte as the server sent them,
even when the key is one letter long ("x" must not turn "text" into "te***t"). While a ``Settings`` with a
key is alive, the records of the loggers in ``REDACTED_LOGGERS`` (ours, httpx's, httpcore's, which logs
response headers at DEBUG, and aiohttp's) have the key replaced too.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from .errors import InsecureTransportError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "NOT_GIVEN",
    "REDACTED_LOGGERS",
    "NotGiven",
    "Settings",
    "is_loopback",
    "redact",
    "redact_strings",
    "resolve_settings",
]

#: OpenRouter's API root.
DEFAULT_BASE_URL: Final = "https://openrouter.ai/api/v1"
#: 10 minutes to read an answer (long audio takes minutes to transcribe; a short timeout re-sends
#: and double-bills it), 10 s to connect, 60 s to write the upload.
DEFAULT_TIMEOUT: Final = httpx.Timeout(600.0, connect=10.0, write=60.0, pool=600.0)
#: Retries after the first attempt, for 408, 429, 5xx, timeouts and connection errors.
DEFAULT_MAX_RETRIES: Final = 5


class NotGiven:
    """Sentinel: "not given, use the environment or the default", as opposed to None ("none at all")."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Final = NotGiven()

#: Loggers whose records may describe a request or an answer; while a key is in use it is redacted in them.
#: (A filter acts on the logger a record is logged to, not on its parents: each one is named here.)
REDACTED_LOGGERS: Final = (
    "stt_frames",
    "stt_frames.client",
    "stt_frames.widget",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "aiohttp.client",
    "aiohttp.internal",
)

REDACTED: Final = "***"


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (``text`` itself when there is none)."""
    if secret and secret in text:
        return text.replace(secret, REDACTED)
    return text


def redact_strings(value: Any, secret: str | None, *, keep: frozenset[str] = frozenset()) -> Any:
    """A copy of parsed JSON with ``secret`` redacted in every string and in object keys not in ``keep``.

    Numbers, booleans, null and the structure stay as they were, so the copy fails a schema check exactly
    as the original does: an error message built from it quotes the server without the key.
    """
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, dict):
        return {
            (k if k in keep or not isinstance(k, str) else redact(k, secret)): redact_strings(v, secret, keep=keep)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_strings(v, secret, keep=keep) for v in value]
    return value


class _KeyFilter(logging.Filter):
    """Replaces every key in use in a log record's message (and its traceback) by ``***``."""

    def __init__(self) -> None:
        super().__init__("stt_frames.secrets")
        self._lock = threading.Lock()
        self._keys: collections.Counter[str] = collections.Counter()
        self._installed = False

    def add(self, key: str) -> None:
        with self._lock:
            self._keys[key] += 1
            if not self._installed:
                for name in REDACTED_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    def discard(self, key: str) -> None:
        with self._lock:
            self._keys[key] -= 1
            if self._keys[key] <= 0:
                del self._keys[key]

    def filter(self, record: logging.LogRecord) -> bool:
        keys = list(self._keys)
        if not keys:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it would
            return True
        clean = message
        for key in keys:
            clean = redact(clean, key)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            text = clean_text = logging.Formatter().formatException(record.exc_info)
            for key in keys:
                clean_text = redact(clean_text, key)
            if clean_text != text:
                record.exc_text = clean_text
        return True


_KEY_FILTER: Final = _KeyFilter()


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Resolved, immutable client settings. ``repr`` shows whether a key is set, never the key."""

    base_url: str
    api_key: str | None = field(repr=False)
    timeout: httpx.Timeout
    max_retries: int
    http_referer: str | None = None
    x_title: str | None = None

    def __repr__(self) -> str:
        return (
            f"Settings(base_url={self.base_url!r}, api_key={'<set>' if self.api_key else None}, "
            f"max_retries={self.max_retries})"
        )

    @property
    def endpoint(self) -> str:
        """The transcription URL."""
        return f"{self.base_url}/audio/transcriptions"

    def headers(self) -> dict[str, str]:
        """Request headers, with the bearer token when a key is set."""
        h = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if self.http_referer:
            h["HTTP-Referer"] = self.http_referer
        if self.x_title:
            h["X-Title"] = self.x_title
        return h

    def __post_init__(self) -> None:
        if self.api_key:  # the key stays out of the logs for as long as these settings are in use
            _KEY_FILTER.add(self.api_key)
            weakref.finalize(self, _KEY_FILTER.discard, self.api_key)

    def redact(self, text: str) -> str:
        """``text`` with the API key (if it appears) replaced by ``***``. For messages and logs, never for data."""
        return redact(text, self.api_key)


def resolve_settings(
    *,
    api_key: str | NotGiven | None = NOT_GIVEN,
    base_url: str | NotGiven | None = NOT_GIVEN,
    timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
    max_retries: int | NotGiven = NOT_GIVEN,
    http_referer: str | None = None,
    x_title: str | None = None,
) -> Settings:
    """Resolve each setting: argument, then environment variable, then default; check the key is safe."""
    key = os.environ.get("OPENROUTER_API_KEY") if isinstance(api_key, NotGiven) else api_key
    key = (key or "").strip() or None
    url = base_url if isinstance(base_url, str) else None
    if url is None:
        url = os.environ.get("OPENROUTER_BASE_URL") or DEFAULT_BASE_URL
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {url!r}")
    if key and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InsecureTransportError(
            f"refusing to send the API key over plain http to {parts.hostname!r}: "
            "use https, or a loopback address for a local server"
        )
    if isinstance(timeout, NotGiven):
        tmo = DEFAULT_TIMEOUT
    elif isinstance(timeout, httpx.Timeout):
        tmo = timeout
    else:
        tmo = httpx.Timeout(timeout, connect=None if timeout is None else min(10.0, timeout))
    retries = DEFAULT_MAX_RETRIES if isinstance(max_retries, NotGiven) else int(max_retries)
    if retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {retries}")
    return Settings(
        base_url=url,
        api_key=key,
        timeout=tmo,
        max_retries=retries,
        http_referer=http_referer,
        x_title=x_title,
    )
