"""``RunSpec``: everything a run needs to know about how to send its rows, built and checked once.

The public entry points (``transcribe_column``, ``atranscribe_column``, ``compare``, the Dask entry,
the CLI and the widget) turn their keyword arguments into one ``RunSpec`` with ``RunSpec.build``; a
bad value fails there, before any file is read or any request is sent. The planner, the runner and the
client only read it.

Example::

    spec = RunSpec.build(model="fake/echo", language="en", chunk_seconds=120)
    spec.upload.chunk_limit()  # 120.0
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

import httpx

from .cache import Cache, request_keyer
from .chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, UploadFormat, UploadPolicy
from .languages import check_language
from .timeouts import TimeoutArg, as_timeout

__all__ = ["DEFAULT_CONCURRENCY", "CacheArg", "OnError", "RunSpec"]

#: Requests in flight by default. OpenRouter's limits are per key and generous; raise it for big jobs.
DEFAULT_CONCURRENCY: Final = 16

#: What ``cache=`` accepts: True (the default cache), False (none), a directory or file, or a ``Cache``.
CacheArg = bool | str | os.PathLike[str] | Cache
OnError = Literal["record", "raise"]


def _frozen(value: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class RunSpec:
    """How a run sends its rows: the request's parameters, flow control, the cache, timeouts and chunking."""

    model: str
    language: str | None = None
    language_column: str | None = None
    temperature: float | None = None
    provider_options: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    cache: CacheArg = True
    refresh: bool = False
    max_cost: float | None = None
    on_error: OnError = "record"
    upload: UploadPolicy = field(default_factory=UploadPolicy)
    timeout: httpx.Timeout | None = None
    base_dir: str | None = None
    sample_rate: int | None = None
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False)  # may hold credentials

    @classmethod
    def build(
        cls,
        *,
        model: str,
        language: str | None = None,
        language_column: str | None = None,
        temperature: float | None = None,
        provider_options: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        cache: CacheArg = True,
        refresh: bool = False,
        max_cost: float | None = None,
        on_error: OnError = "record",
        chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        upload_format: UploadFormat = "original",
        timeout: TimeoutArg | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        sample_rate: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> RunSpec:
        """Check every argument and return the spec; raises ValueError (TypeError for a wrong ``cache``)."""
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a model id such as 'openai/whisper-large-v3', got {model!r}")
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 1
        ):
            raise ValueError(f"temperature must be a number between 0 and 1, got {temperature!r}")
        language = check_language(language)
        if language_column is not None and not isinstance(language_column, str):
            raise ValueError(f"language_column must be a column name, got {language_column!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if max_cost is not None and (
            isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or not max_cost >= 0
        ):
            raise ValueError(f"max_cost must be a number of USD >= 0, got {max_cost!r}")
        if on_error not in ("record", "raise"):
            raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        if base_dir is not None and not isinstance(base_dir, str | os.PathLike):
            raise ValueError(f"base_dir must be a folder, got {base_dir!r}")
        if sample_rate is not None and (
            isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0
        ):
            raise ValueError(
                f"sample_rate must be a whole number of Hz > 0 (for columns of arrays), got {sample_rate!r}"
            )
        if not isinstance(cache, bool | str | os.PathLike | Cache):
            raise TypeError(f"cache must be True, False, a directory or a Cache, got {type(cache).__name__}")
        return cls(
            model=model.strip(),
            language=language,
            language_column=language_column,
            temperature=float(temperature) if temperature is not None else None,
            provider_options=_frozen(provider_options, "provider_options"),
            extra_body=_frozen(extra_body, "extra_body"),
            concurrency=concurrency,
            cache=cache,
            refresh=bool(refresh),
            max_cost=float(max_cost) if max_cost is not None else None,
            on_error=on_error,
            upload=UploadPolicy(
                chunk_seconds=chunk_seconds, max_upload_bytes=max_upload_bytes, upload_format=upload_format
            ),
            timeout=as_timeout(timeout) if timeout is not None else None,
            base_dir=os.fspath(base_dir) if base_dir is not None else None,
            sample_rate=sample_rate,
            storage_options=_frozen(storage_options, "storage_options"),
        )

    def keyer(
        self, language: str | None, endpoint: str, *, chunked: bool = False, chunk: str | None = None
    ) -> Callable[[str], str]:
        """The cache key as a function of the audio hash alone, for a whole file, a chunked row
        (``chunked``) or one chunk (``chunk``: its encoding); see ``cache.request_keyer``."""
        upload: dict[str, Any] | None = None
        if chunk is not None:
            upload = {"chunk": chunk}
        elif chunked:
            upload = self.upload.key_part()
        return request_keyer(
            model=self.model,
            language=language,
            temperature=self.temperature,
            provider_options=self.provider_options,
            endpoint=endpoint,
            extra_body=self.extra_body,
            upload=upload,
        )

    def cache_key(
        self, audio_sha256: str, language: str | None, endpoint: str, *, chunked: bool = False, chunk: str | None = None
    ) -> str:
        """The cache key of one request under this spec (see ``keyer``)."""
        return self.keyer(language, endpoint, chunked=chunked, chunk=chunk)(audio_sha256)

    def parameters(self) -> dict[str, Any]:
        """The spec as JSON-ready metadata for results (never a secret: the key is not part of a spec)."""
        return {
            "temperature": self.temperature,
            "provider_options": dict(self.provider_options or {}),
            "extra_body": sorted(self.extra_body or {}),
            "concurrency": self.concurrency,
            "max_cost": self.max_cost,
            "chunk_seconds": self.upload.chunk_seconds,
            "max_upload_bytes": self.upload.max_upload_bytes,
            "upload_format": self.upload.upload_format,
            "timeout": None if self.timeout is None else self.timeout.as_dict(),
            "base_dir": self.base_dir,
            "sample_rate": self.sample_rate,
        }
