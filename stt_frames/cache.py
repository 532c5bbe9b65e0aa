"""The answer cache: SQLite on disk, keyed by a hash of the audio bytes and the request parameters.

Every successful answer is stored as it arrives: ``transcribe_column`` commits the answers of each
``FLUSH_INTERVAL`` (100 ms, or ``FLUSH_ENTRIES`` answers, whichever comes first) in one transaction,
and at the end of the run, when stopped, and when interrupted. A run killed outright (``kill -9``,
a power cut) loses at most the answers of its last 100 ms; a rerun sends only what is missing.
``Cache.put`` commits at once. Only successes are cached. The API key is never part of a key or an
entry. Several processes may share one cache (SQLite WAL with a busy timeout).

Location: ``cache=path`` argument, else ``STT_FRAMES_CACHE_DIR``, else the user cache directory
(``~/.cache/stt_frames`` on Linux). The database file is ``cache.sqlite3`` inside that directory.

Example::

    stt_frames.cache_info()          # where it is, how many entries, size
    stt_frames.clear_cache(model="fake/echo")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._settings import is_loopback
from .errors import CacheError

log = logging.getLogger("stt_frames")

__all__ = [
    "CACHE_FILENAME",
    "FLUSH_ENTRIES",
    "FLUSH_INTERVAL",
    "KEY_VERSION",
    "Cache",
    "CacheError",
    "PendingEntry",
    "cache_info",
    "clear_cache",
    "default_cache_dir",
    "hash_bytes",
    "hash_file",
    "request_key",
    "request_keyer",
]

#: Bumped when the canonical form of a key changes; it prefixes every key.
KEY_VERSION: Final = "v1"
CACHE_FILENAME: Final = "cache.sqlite3"
_BUSY_TIMEOUT_S: Final = 60.0
_CHUNK: Final = 500
_HASH_BATCH: Final = 256
#: Longest time (seconds) an answer of ``transcribe_column`` waits in memory before it is committed:
#: the answers that arrive within one interval share one transaction. A process killed with ``kill -9``
#: loses at most the answers of this last interval (they are sent again by the next run).
FLUSH_INTERVAL: Final = 0.1
#: ... or as soon as this many answers wait: a commit every 32 answers instead of one per answer.
FLUSH_ENTRIES: Final = 32


def default_cache_dir() -> Path:
    """``STT_FRAMES_CACHE_DIR`` if set, else the platform's user cache directory for stt_frames."""
    env = os.environ.get("STT_FRAMES_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("stt_frames", appauthor=False))


def hash_bytes(data: bytes) -> str:
    """Hex sha256 of audio bytes: the content part of a cache key."""
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | os.PathLike[str], *, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks (a 2 GB recording is never held in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(block):
            h.update(data)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _endpoint_identity(base_url: str) -> str:
    """The endpoint as it enters a key; any loopback host and port counts as one local server."""
    parts = urlsplit(base_url.rstrip("/"))
    if parts.hostname and is_loopback(parts.hostname):
        return urlunsplit((parts.scheme, "loopback", parts.path, "", ""))
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, "", ""))


def request_key(
    audio_sha256: str,
    *,
    model: str,
    language: str | None,
    temperature: float | None,
    provider_options: Mapping[str, Any] | None,
    endpoint: str,
    extra_body: Mapping[str, Any] | None = None,
    upload: Mapping[str, Any] | None = None,
) -> str:
    """The cache key: version prefix + sha256 of canonical JSON of the audio hash and every parameter.

    ``upload`` says how audio that was not sent byte for byte was cut and encoded (see
    ``UploadPolicy.key_part``); it is left out of the JSON when None, so keys of whole files never change.
    """
    fields: dict[str, Any] = {
        "audio": audio_sha256,
        "model": model,
        "language": language,
        "temperature": temperature,
        "provider_options": provider_options or None,
        "extra_body": extra_body or None,
        "endpoint": _endpoint_identity(endpoint),
    }
    if upload is not None:
        fields["upload"] = dict(upload)
    canonical = json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return f"{KEY_VERSION}:{hashlib.sha256(canonical.encode()).hexdigest()}"


#: Stands in for the audio hash while a key's canonical JSON is built once (hex digits never contain it).
_SHA_PLACEHOLDER: Final = "\x00audio\x00"


def request_keyer(
    *,
    model: str,
    language: str | None,
    temperature: float | None,
    provider_options: Mapping[str, Any] | None,
    endpoint: str,
    extra_body: Mapping[str, Any] | None = None,
    upload: Mapping[str, Any] | None = None,
) -> Callable[[str], str]:
    """``request_key`` with every parameter but the audio hash fixed: a function of the hash alone.

    The canonical JSON is built once, around a placeholder; each call only splices the hash in and
    hashes the result, so a run of 200,000 rows does not encode the same parameters 200,000 times.
    The keys are the same as ``request_key``'s (a test compares them).
    """
    fields: dict[str, Any] = {
        "audio": _SHA_PLACEHOLDER,
        "model": model,
        "language": language,
        "temperature": temperature,
        "provider_options": provider_options or None,
        "extra_body": extra_body or None,
        "endpoint": _endpoint_identity(endpoint),
    }
    if upload is not None:
        fields["upload"] = dict(upload)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    marker = json.dumps(_SHA_PLACEHOLDER)
    if canonical.count(marker) != 1:  # a parameter holds the placeholder itself: no shortcut
        return lambda sha: request_key(
            sha,
            model=model,
            language=language,
            temperature=temperature,
            provider_options=provider_options,
            endpoint=endpoint,
            extra_body=extra_body,
            upload=upload,
        )
    head, tail = (part.encode() for part in canonical.split(marker))
    sha256 = hashlib.sha256
    prefix = f"{KEY_VERSION}:"

    def key(audio_sha256: str) -> str:
        if not (audio_sha256.isascii() and audio_sha256.isalnum()):  # JSON would escape it: the general path
            return request_key(
                audio_sha256,
                model=model,
                language=language,
                temperature=temperature,
                provider_options=provider_options,
                endpoint=endpoint,
                extra_body=extra_body,
                upload=upload,
            )
        return prefix + sha256(b"".join((head, b'"', audio_sha256.encode(), b'"', tail))).hexdigest()

    return key


def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS responses (
            key TEXT PRIMARY KEY,
            audio_sha256 TEXT NOT NULL,
            model TEXT NOT NULL,
            language TEXT,
            endpoint TEXT NOT NULL,
            response TEXT NOT NULL,
            audio_seconds REAL,
            latency_s REAL,
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS file_hashes (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            format TEXT NOT NULL
        )"""
    )


def _m002_file_seconds(db: sqlite3.Connection) -> None:
    """Remember each file's duration, so a rerun knows without reading it whether it was sent in chunks."""
    db.execute("ALTER TABLE file_hashes ADD COLUMN seconds REAL")


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL. While another process creates or converts the same file, SQLite answers
    "database is locked" at once instead of waiting out the busy timeout: wait and try again."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _nearly_full(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` has less than 1 MB free."""
    try:
        return shutil.disk_usage(folder).free < 1_000_000
    except OSError:
        return False


#: Schema migrations, applied in order; ``PRAGMA user_version`` records how many ran.
MIGRATIONS: Final = (_m001_initial, _m002_file_seconds)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An answer waiting to be stored by ``Cache.put_many`` (the arguments of ``Cache.put``)."""

    key: str
    response: Mapping[str, Any]
    audio_sha256: str
    model: str
    language: str | None
    endpoint: str
    audio_seconds: float | None = None
    latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached answer: the server's JSON, the audio duration we measured, when it was made."""

    key: str
    response: dict[str, Any]
    audio_seconds: float | None
    latency_s: float | None
    created_at: float


def _parse_many(texts: Sequence[str], *, where: object) -> list[Any]:
    """The stored JSON answers, parsed in one call (a third of the time of one ``json.loads`` each).

    An answer that is not valid JSON (a damaged file) becomes None, is logged, and is sent again.
    """
    if not texts:
        return []
    with contextlib.suppress(ValueError):
        parsed = json.loads("[" + ",".join(texts) + "]")
        if len(parsed) == len(texts):
            return parsed  # type: ignore[no-any-return]
    out: list[Any] = []
    for text in texts:
        try:
            out.append(json.loads(text))
        except ValueError as exc:
            log.warning("a cached answer in %s is not valid JSON (%s): it is treated as not cached", where, exc)
            out.append(None)
    return out


class Cache:
    """A cache of transcription answers in one SQLite file.

    ``Cache()`` uses the default location; ``Cache("some/dir")`` or ``Cache("x.sqlite3")`` another.

    Example::

        cache = stt_frames.Cache()
        cache.info()
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        p = Path(path).expanduser() if path is not None else default_cache_dir()
        self.path = p if p.suffix in (".sqlite3", ".sqlite", ".db") else p / CACHE_FILENAME
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the cache directory {self.path.parent} ({exc.strerror or exc}); "
                "set STT_FRAMES_CACHE_DIR or pass cache=<writable dir> (or cache=False)"
            ) from None
        self._migrate()

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    # -- connection ---------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
                _enable_wal(db)
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise self._error("open", exc) from None
            self._local.db = db
        return db

    def _error(self, action: str, exc: Exception) -> CacheError:
        hint = "set STT_FRAMES_CACHE_DIR or pass cache=<writable dir> (or cache=False)"
        text = str(exc)
        if "full" in text:
            hint = "free disk space, then rerun: finished rows already stored are kept"
        elif _nearly_full(self.path.parent):  # SQLite says "disk I/O error" when it cannot grow its -shm file
            hint = "the disk is full: free disk space, then rerun: finished rows already stored are kept"
        elif "readonly" in text or "read-only" in text or "unable to open" in text:
            hint = f"the cache is not writable; {hint}"
        return CacheError(f"cannot {action} the cache {self.path}: {text}; {hint}")

    def _migrate(self) -> None:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            (done,) = db.execute("PRAGMA user_version").fetchone()
            for i, step in enumerate(MIGRATIONS[done:], start=done + 1):
                step(db)
                db.execute(f"PRAGMA user_version={i}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error("initialise", exc) from None

    def close(self) -> None:
        """Write what is buffered and close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            with contextlib.suppress(CacheError):
                self.flush_file_hashes()
            db.close()
            self._local.db = None

    # -- answers ------------------------------------------------------------------------------------
    def _select_in(self, select: str, column: str, values: list[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``select ... WHERE column IN (values)``, queried in chunks SQLite accepts."""
        db = self._db()
        try:
            for i in range(0, len(values), _CHUNK):
                chunk = values[i : i + _CHUNK]
                yield from db.execute(f"{select} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk)
        except sqlite3.Error as exc:
            raise self._error("read", exc) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, CacheEntry]:
        """The cached entries for ``keys`` (missing keys are absent from the result)."""
        rows = list(
            self._select_in(
                "SELECT key, response, audio_seconds, latency_s, created_at FROM responses",
                "key",
                list(dict.fromkeys(keys)),
            )
        )
        parsed = _parse_many([row[1] for row in rows], where=self.path)
        return {
            key: CacheEntry(key, response, secs, lat, made)
            for (key, _, secs, lat, made), response in zip(rows, parsed, strict=True)
            if response is not None
        }

    def get(self, key: str) -> CacheEntry | None:
        """One cached entry, or None."""
        return self.get_many([key]).get(key)

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
    ) -> None:
        """Store one successful answer now (committed before this returns)."""
        try:
            self._db().execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    audio_sha256,
                    model,
                    language,
                    _endpoint_identity(endpoint),
                    json.dumps(response, separators=(",", ":")),
                    audio_seconds,
                    latency_s,
                    time.time(),
                ),
            )
        except sqlite3.Error as exc:
            raise self._error("write to", exc) from None

    def put_many(self, entries: Sequence[PendingEntry]) -> None:
        """Store answers (and the buffered file hashes) in one transaction, committed before this returns.

        ``transcribe_column`` collects the answers of at most ``FLUSH_INTERVAL`` seconds and stores them
        here: one commit instead of one per answer.
        """
        now = time.time()
        rows = [
            (
                e.key,
                e.audio_sha256,
                e.model,
                e.language,
                _endpoint_identity(e.endpoint),
                json.dumps(e.response, separators=(",", ":")),
                e.audio_seconds,
                e.latency_s,
                now,
            )
            for e in entries
        ]
        pending = self._pending_hashes()
        hashes, pending[:] = list(pending), []
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if hashes:
                db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?)", hashes)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error("write to", exc) from None

    # -- the fast path: path, size and mtime -> audio hash -------------------------------------------
    def file_hashes(self, stats: Mapping[str, tuple[int, int]]) -> dict[str, tuple[str, str, float | None]]:
        """For ``{abs_path: (size, mtime_ns)}``, the known ``(sha256, format, seconds)`` of files unchanged since."""
        rows = self._select_in(
            "SELECT path, size, mtime_ns, sha256, format, seconds FROM file_hashes", "path", list(stats)
        )
        return {path: (sha, fmt, secs) for path, size, mtime, sha, fmt, secs in rows if stats[path] == (size, mtime)}

    def put_file_hash(
        self, path: str, size: int, mtime_ns: int, sha256: str, format: str, seconds: float | None = None
    ) -> None:
        """Remember the hash (and duration, when known) of a file as it is now (size and mtime).

        Buffered and written in batches (``flush_file_hashes``): losing some in a crash only costs a re-hash.
        """
        pending: list[tuple[str, int, int, str, str, float | None]] = self._pending_hashes()
        pending.append((path, size, mtime_ns, sha256, format, seconds))
        if len(pending) >= _HASH_BATCH:
            self.flush_file_hashes()

    def _pending_hashes(self) -> list[tuple[str, int, int, str, str, float | None]]:
        pending = getattr(self._local, "hashes", None)
        if pending is None:
            pending = self._local.hashes = []
        return pending

    def flush_file_hashes(self) -> None:
        """Write buffered file hashes now."""
        pending = self._pending_hashes()
        if not pending:
            return
        rows, pending[:] = list(pending), []
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error("write to", exc) from None

    # -- inspection -----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Where the cache is, how many answers it holds (in all and per model), and its size on disk."""
        db = self._db()
        try:
            (entries,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
            per_model = dict(db.execute("SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY model"))
            (files,) = db.execute("SELECT COUNT(*) FROM file_hashes").fetchone()
        except sqlite3.Error as exc:
            raise self._error("read", exc) from None
        size = sum(f.stat().st_size for f in self.path.parent.glob(self.path.name + "*") if f.is_file())
        return {"path": str(self.path), "entries": entries, "models": per_model, "files": files, "bytes": size}

    def clear(self, *, model: str | None = None, older_than_days: float | None = None) -> int:
        """Delete cached answers (all, or one model's, or older ones); returns how many were deleted."""
        where: list[str] = []
        args: list[str | float] = []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if older_than_days is not None:
            where.append("created_at < ?")
            args.append(time.time() - older_than_days * 86400)
        sql = "DELETE FROM responses" + (" WHERE " + " AND ".join(where) if where else "")
        try:
            db = self._db()
            n = db.execute(sql, args).rowcount
            if model is None and older_than_days is None:
                db.execute("DELETE FROM file_hashes")
        except sqlite3.Error as exc:
            raise self._error("clear", exc) from None
        return int(n)


def cache_info(cache: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where the cache is and what it holds.

    Example::

        stt_frames.cache_info()["entries"]
    """
    c = Cache(cache)
    try:
        return c.info()
    finally:
        c.close()


def clear_cache(
    cache: str | os.PathLike[str] | None = None, *, model: str | None = None, older_than_days: float | None = None
) -> int:
    """Delete cached answers; returns the number deleted.

    Example::

        stt_frames.clear_cache(model="openai/whisper-1")
    """
    c = Cache(cache)
    try:
        return c.clear(model=model, older_than_days=older_than_days)
    finally:
        c.close()
