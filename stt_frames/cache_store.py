"""An answer cache that a cluster can share: one small immutable object per answer, in any fsspec store.

``cache="s3://bucket/stt-cache"`` (or ``gs://``, ``az://``, a ``file://`` directory ...) opens an
``ObjectCache``. Each answer is one JSON object named by its request key, the same key as the SQLite cache's
(``cache.request_key``, ``KEY_VERSION`` prefix), holding the same fields as a row of the SQLite table plus
the SQLite schema version it matches::

    s3://bucket/stt-cache/v1/3f/3fa4...e1.json   {"key": "v1:3fa4...e1", "schema": 2, "model": ..., "response": {...}}

Writes are atomic: a ``file://`` directory gets a temporary file renamed into place; an object store's
single PUT is atomic by itself (a reader sees the whole object or none). Two workers writing the same key
write equivalent answers, so the last one wins and nothing is lost. Reads of many keys go out concurrently
(``fs.cat`` of a list). ``put`` hands the write to a small pool of writer threads and returns, so a slow
store never holds up the run's event loop; ``flush()`` (also called by ``close`` and
``flush_file_hashes``, i.e. at the end of every run) waits for every write and raises ``CacheError`` for
the first that failed.

What the SQLite cache keeps on disk and this one does not: the file-hash fast path (path, size, mtime ->
audio hash). Paths are local to each machine, so those are remembered in memory, for the life of the
object, and a new process reads each file once to hash it.

Credentials and endpoints come from the store's usual configuration (for S3: ``AWS_*`` variables,
``~/.aws``, an instance role), or from ``storage_options``::

    cache = ObjectCache("s3://bucket/stt-cache", storage_options={"client_kwargs": {"endpoint_url": url}})
    cache.info()      # {"path": "s3://bucket/stt-cache", "entries": ..., "models": {...}, "bytes": ...}
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from .cache import KEY_VERSION, MIGRATIONS, Cache, CacheEntry, _endpoint_identity
from .errors import CacheError
from .sources import is_url

__all__ = ["SCHEMA_VERSION", "ObjectCache", "copy_entries", "is_cache_url"]

#: The SQLite cache's schema version (``PRAGMA user_version``) whose fields each object holds.
SCHEMA_VERSION: Final = len(MIGRATIONS)
#: Writes in flight at once per ``ObjectCache``.
DEFAULT_WRITERS: Final = 16
_SUFFIX: Final = ".json"
#: Objects read per concurrent batch when listing the whole cache.
_READ_BATCH: Final = 1000


def is_cache_url(cache: object) -> bool:
    """Whether ``cache=`` names an object-store cache (an fsspec URL such as ``s3://...`` or ``file://...``)."""
    return isinstance(cache, str) and is_url(cache)


class ObjectCache(Cache):
    """A cache of answers as one object per key in an fsspec store; the interface of ``Cache``.

    Example::

        cache = ObjectCache("s3://my-bucket/stt-cache")
        out = stt_frames.transcribe_column(df, model="openai/whisper-1", cache=cache)
    """

    def __init__(
        self, url: str, *, storage_options: Mapping[str, Any] | None = None, writers: int = DEFAULT_WRITERS
    ) -> None:
        import fsspec

        if not is_cache_url(url):
            raise ValueError(f"an object-store cache needs a URL such as 's3://bucket/prefix', got {url!r}")
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self._writers = writers
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as exc:
            raise CacheError(f"cannot open the cache {self.url}: {exc}") from None
        self.root = self.root.rstrip("/")
        self._is_local = "file" in _protocols(self.fs)
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._failed: BaseException | None = None
        self._hashes: dict[str, tuple[int, int, str, str, float | None]] = {}
        if self._is_local:
            os.makedirs(self.root, exist_ok=True)

    # Cache.path is where the cache is; for an object store, that is its URL.
    @property  # type: ignore[override]
    def path(self) -> str:  # type: ignore[override]
        return self.url

    def __repr__(self) -> str:
        return f"ObjectCache({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its URL and options (for Dask workers): each process opens its own connection."""
        return (_reopen, (self.url, self.storage_options, self._writers))

    def _object(self, key: str) -> str:
        version, sep, digest = key.partition(":")
        if not sep or not digest.isalnum():
            raise CacheError(f"not a cache key: {key!r} (expected '{KEY_VERSION}:<sha256 hex>')")
        return f"{self.root}/{version}/{digest[:2]}/{digest}{_SUFFIX}"

    def documents(self, *, model: str | None = None) -> Iterator[dict[str, Any]]:
        """Every stored object as a dict (the SQLite row's fields), optionally only one model's."""
        self.flush()
        names = list(self._names())
        for lo in range(0, len(names), _READ_BATCH):
            batch = {n: _key_of(n) for n in names[lo : lo + _READ_BATCH]}
            for key, doc in self._read(batch).items():
                if model is None or doc.get("model") == model:
                    yield {**doc, "key": key}

    def _read(self, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """``{object name: key}`` -> ``{key: parsed object}`` for the objects that exist, read concurrently."""
        if not wanted:
            return {}
        try:
            found = self.fs.cat(list(wanted), on_error="omit")
        except Exception as exc:
            raise self._error("read", exc) from None
        stripped = {self.fs._strip_protocol(n): k for n, k in wanted.items()}
        out: dict[str, dict[str, Any]] = {}
        for name, data in found.items():
            key = wanted.get(name) or stripped.get(self.fs._strip_protocol(name))
            if key is not None and not isinstance(data, BaseException):
                out[key] = _parse(key, data)
        return out

    def _error(self, action: str, exc: BaseException) -> CacheError:
        return CacheError(
            f"cannot {action} the cache {self.url}: {type(exc).__name__}: {exc}; check the store's credentials "
            "and that it is writable, or pass another cache= (or cache=False)"
        )

    # -- answers ------------------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, CacheEntry]:
        """The cached entries for ``keys`` (missing keys are absent), read concurrently."""
        wanted = {self._object(k): k for k in dict.fromkeys(keys)}
        return {key: _entry(key, doc) for key, doc in self._read(wanted).items()}

    def get(self, key: str) -> CacheEntry | None:
        """One cached entry, or None."""
        try:
            data = self.fs.cat_file(self._object(key))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error("read", exc) from None
        return _entry(key, _parse(key, data))

    def put(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        audio_sha256: str,
        model: str,
        language: str | None,
        endpoint: str,
        audio_seconds: float | None = None,
        latency_s: float | None = None,
        created_at: float | None = None,
    ) -> None:
        """Store one answer: handed to a writer thread now, written atomically (see ``flush``)."""
        body = json.dumps(
            {
                "key": key,
                "schema": SCHEMA_VERSION,
                "audio_sha256": audio_sha256,
                "model": model,
                "language": language,
                "endpoint": _endpoint_identity(endpoint),
                "response": response,
                "audio_seconds": audio_seconds,
                "latency_s": latency_s,
                "created_at": time.time() if created_at is None else created_at,
            },
            separators=(",", ":"),
        ).encode()
        name = self._object(key)
        with self._lock:
            self._raise_failed()
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self._writers, thread_name_prefix="stt-cache-put")
            future = self._pool.submit(self._write, name, body)
            self._pending.add(future)
        future.add_done_callback(self._written)

    def put_many(self, entries: Iterable[Any]) -> None:
        """Store answers (each with the fields of ``put``), written concurrently; all are stored when this returns."""
        for e in entries:
            self.put(
                e.key, e.response, audio_sha256=e.audio_sha256, model=e.model, language=e.language,
                endpoint=e.endpoint, audio_seconds=e.audio_seconds, latency_s=e.latency_s,
            )  # fmt: skip
        self.flush()

    def _written(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
            exc = future.exception()
            if exc is not None and self._failed is None:
                self._failed = exc

    def _raise_failed(self) -> None:
        if self._failed is not None:
            exc, self._failed = self._failed, None
            raise self._error("write to", exc)

    def _write(self, name: str, body: bytes) -> None:
        if self._is_local:
            folder = os.path.dirname(name)
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                os.replace(tmp, name)
            except BaseException:
                _unlink(tmp)
                raise
        else:
            self.fs.pipe_file(name, body)  # one PUT: atomic on S3, GCS and Azure

    def flush(self) -> None:
        """Wait for every write handed out so far; raise ``CacheError`` for the first that failed."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                break
            concurrent.futures.wait(pending)
        with self._lock:
            self._raise_failed()

    def close(self) -> None:
        """Finish the writes (``flush``); the cache stays usable (a later put starts new writers)."""
        self.flush()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- the fast path, in memory ----------------------------------------------------------------------
    def file_hashes(self, stats: Mapping[str, tuple[int, int]]) -> dict[str, tuple[str, str, float | None]]:
        """For ``{abs_path: (size, mtime_ns)}``, the hashes this object has seen for files unchanged since."""
        out: dict[str, tuple[str, str, float | None]] = {}
        for path, stat in stats.items():
            known = self._hashes.get(path)
            if known is not None and known[:2] == stat:
                out[path] = known[2:]
        return out

    def put_file_hash(
        self, path: str, size: int, mtime_ns: int, sha256: str, format: str, seconds: float | None = None
    ) -> None:
        """Remember a file's hash (and duration) as it is now, in memory."""
        self._hashes[path] = (size, mtime_ns, sha256, format, seconds)

    def flush_file_hashes(self) -> None:
        """File hashes are kept in memory; this finishes the answers' writes (``flush``)."""
        self.flush()

    # -- inspection -----------------------------------------------------------------------------------
    def _names(self) -> Iterator[str]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._error("list", exc) from None
        for name, meta in found.items():
            base = name.rsplit("/", 1)[-1]
            if base.endswith(_SUFFIX) and not base.startswith(".") and meta.get("type") != "directory":
                yield name

    def keys(self) -> list[str]:
        """Every key the cache holds (one listing of the store)."""
        return [_key_of(name) for name in self._names()]

    def info(self) -> dict[str, Any]:
        """Where the cache is, how many answers it holds (in all and per model), and their size."""
        self.flush()
        names = list(self._names())
        sizes = self.fs.sizes(names) if names else []
        per_model: dict[str, int] = {}
        for doc in self.documents():
            name = str(doc.get("model"))
            per_model[name] = per_model.get(name, 0) + 1
        return {
            "path": self.url,
            "entries": len(names),
            "models": dict(sorted(per_model.items())),
            "files": len(self._hashes),
            "bytes": int(sum(s or 0 for s in sizes)),
        }

    def clear(self, *, model: str | None = None, older_than_days: float | None = None) -> int:
        """Delete cached answers (all, or one model's, or older ones); returns how many were deleted."""
        self.flush()
        names = list(self._names())
        if model is not None or older_than_days is not None:
            cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
            keep = {
                d["key"]
                for d in self.documents(model=model)
                if cutoff is None or float(d.get("created_at") or 0) < cutoff
            }
            names = [n for n in names if _key_of(n) in keep]
        if names:
            try:
                self.fs.rm(names)
            except Exception as exc:
                raise self._error("clear", exc) from None
        if model is None and older_than_days is None:
            self._hashes.clear()
        return len(names)

    # not SQLite: these Cache internals have no meaning here
    def _db(self) -> Any:  # pragma: no cover - never called: every public method is overridden
        raise NotImplementedError("an ObjectCache has no database")

    def _migrate(self) -> None:  # pragma: no cover
        raise NotImplementedError("an ObjectCache has no database")


def _entry(key: str, doc: Mapping[str, Any]) -> CacheEntry:
    try:
        return CacheEntry(key, doc["response"], doc.get("audio_seconds"), doc.get("latency_s"), doc["created_at"])
    except (KeyError, TypeError) as exc:
        raise CacheError(f"cache entry {key} is damaged (no {exc}); delete it or clear the cache") from None


def _parse(key: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CacheError(f"cache entry {key} is damaged ({exc}); delete it or clear the cache") from None
    if not isinstance(doc, dict):
        raise CacheError(f"cache entry {key} is damaged (not a JSON object); delete it or clear the cache")
    return doc


def _key_of(name: str) -> str:
    version, base = name.rsplit("/", 3)[-3], name.rsplit("/", 1)[-1]
    return f"{version}:{base.removesuffix(_SUFFIX)}"


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _reopen(url: str, storage_options: Mapping[str, Any], writers: int) -> ObjectCache:
    return ObjectCache(url, storage_options=storage_options, writers=writers)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


#: The SQLite table's columns, in order: the fields of every object too (plus ``key`` and ``schema``).
_FIELDS: Final = ("key", "audio_sha256", "model", "language", "endpoint", "response", "audio_seconds",
                  "latency_s", "created_at")  # fmt: skip


def _sqlite_docs(cache: Cache, model: str | None) -> Iterator[dict[str, Any]]:
    db = cache._db()
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version != SCHEMA_VERSION:
        raise CacheError(f"{cache.path} has schema version {version}, this stt_frames copies version {SCHEMA_VERSION}")
    sql = f"SELECT {', '.join(_FIELDS)} FROM responses" + (" WHERE model = ?" if model is not None else "")
    for row in db.execute(sql, (model,) if model is not None else ()):
        doc = dict(zip(_FIELDS, row, strict=True))
        doc["response"] = json.loads(doc["response"])
        yield doc


def _put_sqlite(cache: Cache, docs: Iterable[dict[str, Any]]) -> int:
    db = cache._db()
    rows = [
        tuple(json.dumps(d["response"], separators=(",", ":")) if f == "response" else d.get(f) for f in _FIELDS)
        for d in docs
    ]
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(f"INSERT OR REPLACE INTO responses VALUES ({', '.join('?' * len(_FIELDS))})", rows)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(rows)


def copy_entries(source: Cache, target: Cache, *, model: str | None = None) -> int:
    """Copy every answer (or one ``model``'s) from one cache to another, either backend; returns how many.

    Keys, answers and creation times are copied as they are, so a run against the target finds every
    answer it would have found in the source. Existing entries of the same keys are replaced.

    Example::

        copy_entries(Cache("~/.cache/stt_frames"), ObjectCache("s3://bucket/stt-cache"))
    """
    docs = source.documents(model=model) if isinstance(source, ObjectCache) else _sqlite_docs(source, model)
    if isinstance(target, ObjectCache):
        n = 0
        for d in docs:
            target.put(
                d["key"], d["response"], audio_sha256=d["audio_sha256"], model=d["model"], language=d["language"],
                endpoint=d["endpoint"], audio_seconds=d["audio_seconds"], latency_s=d["latency_s"],
                created_at=d["created_at"],
            )  # fmt: skip
            n += 1
        target.flush()
        return n
    try:
        return _put_sqlite(target, docs)
    except sqlite3.Error as exc:
        raise CacheError(f"cannot write to the cache {target.path}: {exc}") from None
