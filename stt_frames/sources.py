"""What a cell of the audio column may hold, and how each becomes a file the run can send.

- a local path (``str`` or ``PathLike``); a relative one resolves against ``base_dir`` (default: the
  working directory in Python, the input file's folder in the CLI);
- a URL: ``file://``, ``s3://``, ``gs://``/``gcs://``, ``az://``/``abfs://``, ``hf://``, ``http(s)://``,
  read through fsspec with ``storage_options`` (the ``remote`` extra);
- ``bytes``, ``bytearray`` or ``memoryview`` of an audio file;
- a Hugging Face ``datasets`` Audio dict: ``{"bytes": ..., "path": ...}`` or decoded ``{"array": ...,
  "sampling_rate": ...}``;
- a 1-D (mono) or 2-D (channels x samples, or samples x channels) numpy array, with ``sample_rate=``.

In-memory audio is written once to a spool folder, named by its content hash (decoded arrays as lossless
FLAC); a remote file is streamed there, hashed on the way. From then on it is a local file like any
other: whole or in chunks, cached by content. A remote file's size and version (ETag, or modification
time) are remembered with its hash, so a rerun finds cached answers without downloading anything.

Example::

    from stt_frames.sources import classify
    classify("s3://bucket/a.wav").kind      # 'url'
    classify({"array": samples, "sampling_rate": 16000}).kind  # 'array'
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ._extras import require
from .audio import detect_format, format_from_extension
from .errors import AudioError

__all__ = ["REMOTE_SCHEMES", "Source", "Spool", "classify", "is_url"]

#: URL schemes read through fsspec.
REMOTE_SCHEMES: Final = ("file", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "hf", "http", "https")

Kind = Literal["path", "url", "bytes", "array"]


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL of a scheme fsspec reads (``s3://...``, ``https://...``, ``file://...``)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in REMOTE_SCHEMES


@dataclass(frozen=True)
class Source:
    """One cell, classified: a local ``path``, a ``url``, audio file ``data`` or decoded ``samples``."""

    kind: Kind
    label: str
    path: str | None = None
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    format: str | None = None
    samples: Any = field(default=None, repr=False)
    sample_rate: int | None = None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is _pd_na()


def _pd_na() -> Any:
    import pandas as pd

    return pd.NA


def _array(value: Any, sample_rate: Any, label: str) -> Source:
    import numpy as np

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float | np.integer) or sample_rate <= 0:
        raise AudioError(f"{label}: an array of samples needs its sample rate (sample_rate=16000, for example)")
    samples = np.asarray(value)
    if samples.ndim not in (1, 2) or samples.size == 0:
        raise AudioError(f"{label}: expected a 1-D or 2-D array of samples, got shape {samples.shape}")
    if not (np.issubdtype(samples.dtype, np.floating) or np.issubdtype(samples.dtype, np.integer)):
        raise AudioError(f"{label}: expected numbers, got an array of {samples.dtype}")
    if np.issubdtype(samples.dtype, np.floating) and not np.isfinite(samples).all():
        raise AudioError(f"{label}: the samples hold NaN or infinity")
    return Source("array", label, samples=samples, sample_rate=int(sample_rate))


def _bytes(data: bytes, label: str, name: str | None = None) -> Source:
    if not data:
        raise AudioError(f"{label}: the audio bytes are empty")
    fmt = detect_format(data[:4096]) or (format_from_extension(name) if name else None)
    if fmt is None:
        raise AudioError(f"{label}: cannot tell the audio format from the bytes (header {data[:8]!r})")
    return Source("bytes", label, data=data, format=fmt)


def classify(
    value: Any, *, base_dir: str | os.PathLike[str] | None = None, sample_rate: int | None = None, row: Any = None
) -> Source:
    """What ``value`` is, or AudioError saying what it is instead (``row`` names it in messages)."""
    label = f"row {row!r}" if row is not None else "value"
    if _missing(value):
        raise AudioError("missing value (None/NaN) instead of a path")
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise AudioError(f"empty or non-text path {value!r:.60}")
        if is_url(text):
            return Source("url", text, url=text)
        path = os.path.expanduser(text)
        if base_dir is not None and not os.path.isabs(path):
            path = os.path.join(os.fspath(base_dir), path)
        return Source("path", path, path=path)
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes(bytes(value), label)
    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            name = value.get("path")
            return _bytes(bytes(value["bytes"]), f"{label} ({name})" if name else label, name)
        if value.get("array") is not None:
            return _array(value["array"], value.get("sampling_rate"), label)
        if isinstance(value.get("path"), str) and value["path"]:
            return classify(value["path"], base_dir=base_dir, row=row)
        keys = ", ".join(sorted(map(str, value))) or "none"
        raise AudioError(
            f"{label}: a dict needs 'bytes' (and 'path'), or 'array' and 'sampling_rate', as Hugging Face "
            f"datasets give them; got keys {keys}"
        )
    if type(value).__module__.split(".")[0] == "numpy":
        return _array(value, sample_rate, label)
    raise AudioError(
        f"expected a path, URL, bytes, an audio dict or an array of samples, got {type(value).__name__}: {value!r:.60}"
    )


class Spool:
    """A folder where in-memory and remote audio becomes files, named by content; removed by ``close()``."""

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        self._dir: Path | None = None
        self.storage_options = dict(storage_options or {})

    @property
    def folder(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="stt_frames-spool-"))
        return self._dir

    def write(self, source: Source) -> str:
        """A local file holding ``source`` (bytes as they are, arrays as 16-bit FLAC); returns its path."""
        if source.kind == "bytes":
            assert source.data is not None and source.format is not None
            return self._put(source.data, source.format)
        if source.kind == "array":
            return self._put(_flac(source.samples, source.sample_rate or 0), "flac")
        raise ValueError(f"nothing to spool for a {source.kind}")

    def _put(self, data: bytes, fmt: str) -> str:
        target = self.folder / f"{hashlib.sha256(data).hexdigest()}.{fmt}"
        if not target.exists():
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return str(target)

    def info(self, url: str) -> tuple[int, int]:
        """``(size, version)`` of a remote file without reading it; version is a hash of its ETag or mtime."""
        fs, path = _filesystem(url, self.storage_options)
        try:
            meta = fs.info(path)
        except FileNotFoundError:
            raise AudioError(f"{url}: file not found") from None
        except Exception as exc:  # each backend raises its own errors (permissions, network ...)
            raise AudioError(f"{url}: cannot read ({type(exc).__name__}: {exc})") from None
        if meta.get("type") == "directory":
            raise AudioError(f"{url}: is a directory, not an audio file")
        size = int(meta.get("size") or 0)
        version = next((str(meta[k]) for k in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "created")
                        if meta.get(k) is not None), "")  # fmt: skip
        digest = hashlib.sha256(version.encode()).digest()
        return size, int.from_bytes(digest[:7], "big")

    def download(self, url: str) -> tuple[str, str]:
        """Stream ``url`` into the spool, hashing it on the way; returns ``(local path, sha256)``."""
        fs, path = _filesystem(url, self.storage_options)
        fmt = format_from_extension(path.split("?")[0])
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            if fmt is None:
                with open(tmp, "rb") as f:
                    fmt = detect_format(f.read(4096))
            if fmt is None:
                raise AudioError(f"{url}: unsupported file (no audio extension, unknown header)")
            sha = digest.hexdigest()
            target = self.folder / f"{sha}.{fmt}"
            os.replace(tmp, target)
            return str(target), sha
        except AudioError:
            Path(tmp).unlink(missing_ok=True)
            raise
        except FileNotFoundError:
            Path(tmp).unlink(missing_ok=True)
            raise AudioError(f"{url}: file not found") from None
        except Exception as exc:
            Path(tmp).unlink(missing_ok=True)
            raise AudioError(f"{url}: cannot read ({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        if self._dir is not None:
            import shutil

            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _filesystem(url: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    fsspec = require("fsspec", "remote", f"reading {url.partition('://')[0]}:// URLs")
    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as exc:  # the backend (s3fs, gcsfs, adlfs, aiohttp ...) is missing
        raise AudioError(f"{url}: {exc}; install stt-frames[remote]") from None


def _flac(samples: Any, rate: int) -> bytes:
    """Samples (float in [-1, 1] or integers) as a 16-bit FLAC file, channels kept."""
    import av
    import numpy as np

    x = np.asarray(samples)
    if x.ndim == 2 and x.shape[0] > x.shape[1]:
        x = x.T  # samples x channels -> channels x samples
    x = x.reshape(1, -1) if x.ndim == 1 else x
    if np.issubdtype(x.dtype, np.floating):
        x = np.clip(np.rint(x * 32767.0), -32768, 32767)
    elif x.dtype.itemsize > 2:
        x = x // (2 ** (8 * x.dtype.itemsize - 16))
    pcm = np.ascontiguousarray(x.astype("<i2"))
    if pcm.shape[0] > 8:
        raise AudioError(f"an array of samples with {pcm.shape[0]} channels is not audio we can send")
    layout = "mono" if pcm.shape[0] == 1 else "stereo" if pcm.shape[0] == 2 else f"{pcm.shape[0]}c"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac", options={"fflags": "+bitexact"}) as out:
        stream: Any = out.add_stream("flac", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
