"""Client settings and their one resolution order: explicit argument, then environment variable, then default.

``OPENROUTER_API_KEY`` and ``OPENROUTER_BASE_URL`` are the environment variables. The key never
leaves this object in a repr, and it is refused over plain http to a host that is not loopback.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import httpx

from .errors import InsecureTransportError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "NOT_GIVEN",
    "NotGiven",
    "Settings",
    "is_loopback",
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

    def redact(self, text: str) -> str:
        """``text`` with the API key (if it appears) replaced by ``***``."""
        if self.api_key and self.api_key in text:
            return text.replace(self.api_key, "***")
        return text


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
