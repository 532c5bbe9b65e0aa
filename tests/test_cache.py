"""The answer cache (stt_frames/cache.py): keys, migrations, the file-hash fast path, concurrent writers, clearing.

Unit tests of ``Cache`` and ``request_key``; what a run does with the cache (reruns, resume after a kill, a
full or read-only disk) is tested end to end in test_frame.py and test_reliability.py.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import stt_frames
from stt_frames.cache import (
    CACHE_FILENAME,
    KEY_VERSION,
    MIGRATIONS,
    Cache,
    cache_info,
    clear_cache,
    hash_bytes,
    hash_file,
    request_key,
)
from stt_frames.errors import CacheError

HERE = Path(__file__).resolve().parent
AUDIO = "ab" * 32  # an audio sha256
PARAMS: dict[str, Any] = {
    "model": "fake/echo",
    "language": "en",
    "temperature": 0.0,
    "provider_options": {"openai": {"prompt": "x"}},
    "endpoint": "https://openrouter.ai/api/v1",
}


def key(**changes: Any) -> str:
    return request_key(changes.pop("audio", AUDIO), **{**PARAMS, **changes})


def put(cache: Cache, k: str, text: str = "hi", **kw: Any) -> None:
    kw.setdefault("model", "fake/echo")
    cache.put(k, {"text": text}, audio_sha256=AUDIO, language=None, endpoint="http://127.0.0.1:1/api/v1", **kw)


def user_version(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("PRAGMA user_version").fetchone()[0])


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])


# --- keys --------------------------------------------------------------------------------------------------


def test_a_key_is_stable_across_releases() -> None:
    """Pinned values: a change of the canonical form must come with a new KEY_VERSION (old entries then miss)."""
    assert KEY_VERSION == "v1"
    assert key() == "v1:959f069a12ab56653f2e0d018f6c27e9cc904c42af1617e32b51e6000ee49493"
    loopback = request_key(
        AUDIO, model="fake/echo", language=None, temperature=None, provider_options=None,
        endpoint="http://127.0.0.1:8787/api/v1",
    )  # fmt: skip
    assert loopback == "v1:e921d4c66c8bd1321c5963ff40b48f43aae30732dc8e3f6498f4b86636a2511a"


def test_a_key_is_the_version_and_a_sha256_of_canonical_json() -> None:
    fields = {
        "audio": AUDIO, "model": "fake/echo", "language": "en", "temperature": 0.0,
        "provider_options": {"openai": {"prompt": "x"}}, "extra_body": None,
        "endpoint": "https://openrouter.ai/api/v1",
    }  # fmt: skip
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    assert key() == f"{KEY_VERSION}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def test_every_parameter_changes_the_key_and_key_order_does_not() -> None:
    variants = [
        key(),
        key(audio="cd" * 32),
        key(model="openai/whisper-1"),
        key(language=None),
        key(language="fr"),
        key(temperature=0.2),
        key(temperature=None),
        key(provider_options={"openai": {"prompt": "y"}}),
        key(extra_body={"response_format": "verbose_json"}),
        key(endpoint="https://example.com/api/v1"),
        key(upload={"format": "flac", "chunk": [0, 30]}),
    ]
    assert len(set(variants)) == len(variants)
    a = key(provider_options={"openai": {"prompt": "x", "n": 1}, "groq": {}})
    assert a == key(provider_options={"groq": {}, "openai": {"n": 1, "prompt": "x"}})
    assert key(provider_options={}) == key(provider_options=None)  # empty is the same as none
    assert key(upload=None) == key()  # keys of whole files never change


def test_every_loopback_server_is_one_endpoint_and_remote_hosts_ignore_case() -> None:
    local = {
        key(endpoint=url)
        for url in (
            "http://127.0.0.1:8787/api/v1",
            "http://127.0.0.1:54321/api/v1/",
            "http://localhost:1/api/v1",
            "http://[::1]:9/api/v1",
        )
    }
    assert len(local) == 1  # a rerun on a restarted local server (another port) hits the cache
    assert key(endpoint="https://OpenRouter.ai/api/v1") == key(endpoint="https://openrouter.ai/api/v1")
    assert key(endpoint="https://openrouter.ai/api/v1") != key(endpoint="https://openrouter.ai/api/v2")


def test_hashes_of_bytes_and_of_a_file_in_blocks_agree(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # over one block of 1 MiB when read in small blocks
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    assert hash_bytes(data) == hash_file(path) == hash_file(path, block=4096) == hashlib.sha256(data).hexdigest()


# --- answers -----------------------------------------------------------------------------------------------


def test_put_then_get_many_returns_what_was_stored(tmp_cache: Cache) -> None:
    keys = [key(audio=f"{i:064x}") for i in range(1200)]  # more than one IN-query chunk
    for i, k in enumerate(keys[:700]):
        tmp_cache.put(
            k, {"text": f"t{i}", "usage": {"cost": 0.001}}, audio_sha256=f"{i:064x}", model="fake/echo",
            language="en", endpoint="http://127.0.0.1:1/api/v1", audio_seconds=1.5, latency_s=0.01,
        )  # fmt: skip
    found = tmp_cache.get_many([*keys, keys[0]])
    assert sorted(found) == sorted(keys[:700])
    entry = found[keys[3]]
    assert entry.response == {"text": "t3", "usage": {"cost": 0.001}}
    assert (entry.audio_seconds, entry.latency_s) == (1.5, 0.01) and entry.created_at <= time.time()
    assert tmp_cache.get(keys[900]) is None
    put(tmp_cache, keys[3], "replaced")  # the same key again replaces the answer
    assert tmp_cache.get(keys[3]).response == {"text": "replaced"}  # type: ignore[union-attr]


def test_a_damaged_answer_is_left_out_with_a_warning(tmp_cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    keys = [key(audio=f"{i:064x}") for i in range(3)]
    for i, k in enumerate(keys):
        put(tmp_cache, k, f"t{i}")
    db = tmp_cache._db()
    db.execute("UPDATE responses SET response = ? WHERE key = ?", ("not json", keys[1]))
    with caplog.at_level("WARNING", logger="stt_frames"):
        found = tmp_cache.get_many(keys)
    assert {k: e.response["text"] for k, e in found.items()} == {keys[0]: "t0", keys[2]: "t2"}
    assert "not valid JSON" in caplog.text and "treated as not cached" in caplog.text


def test_the_cache_lives_where_it_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Cache(tmp_path / "dir").path == tmp_path / "dir" / CACHE_FILENAME
    assert Cache(tmp_path / "mine.sqlite3").path == tmp_path / "mine.sqlite3"
    monkeypatch.setenv("STT_FRAMES_CACHE_DIR", str(tmp_path / "env"))
    assert Cache().path == tmp_path / "env" / CACHE_FILENAME
    assert repr(Cache()) == f"Cache({str(tmp_path / 'env' / CACHE_FILENAME)!r})"


def test_info_and_clear_by_model_and_age(tmp_cache: Cache) -> None:
    for i in range(3):
        put(tmp_cache, f"v1:echo{i}")
    put(tmp_cache, "v1:w", model="openai/whisper-1")
    tmp_cache.put_file_hash("/a.wav", 10, 1, AUDIO, "wav")
    tmp_cache.flush_file_hashes()
    info = tmp_cache.info()
    assert (info["entries"], info["models"], info["files"]) == (4, {"fake/echo": 3, "openai/whisper-1": 1}, 1)
    assert info["path"] == str(tmp_cache.path) and info["bytes"] > 0
    assert tmp_cache.clear(older_than_days=1) == 0  # everything is new
    assert tmp_cache.clear(model="openai/whisper-1") == 1
    assert tmp_cache.info()["files"] == 1  # clearing one model keeps the file hashes
    assert tmp_cache.clear(older_than_days=-1) == 3  # "older than tomorrow": all of them
    assert tmp_cache.info()["files"] == 1
    put(tmp_cache, "v1:again")
    assert tmp_cache.clear() == 1 and tmp_cache.info()["files"] == 0  # clearing everything forgets files too


def test_cache_info_and_clear_cache_open_and_close_the_default_cache() -> None:
    cache = Cache()
    put(cache, "v1:x")
    cache.close()
    assert cache_info()["entries"] == 1 and stt_frames.cache_info()["models"] == {"fake/echo": 1}
    assert clear_cache(model="other") == 0 and clear_cache() == 1 and cache_info()["entries"] == 0


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match="cannot create the cache directory") as info:
        Cache(blocker / "cache")
    assert "STT_FRAMES_CACHE_DIR" in str(info.value) and isinstance(info.value, stt_frames.STTError)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "cache.sqlite3"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(CacheError, match=r"cannot (open|initialise) the cache .*cache\.sqlite3"):
        Cache(bad)


# --- migrations --------------------------------------------------------------------------------------------


def test_a_new_cache_runs_every_migration(tmp_cache: Cache) -> None:
    assert user_version(tmp_cache.path) == len(MIGRATIONS) >= 2
    with sqlite3.connect(tmp_cache.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # several processes share it


def test_a_v1_cache_file_is_migrated_and_keeps_its_entries(tmp_path: Path) -> None:
    """A cache written before file durations existed (user_version 1) opens with every later step applied."""
    db = tmp_path / CACHE_FILENAME
    with sqlite3.connect(db) as con:
        MIGRATIONS[0](con)
        con.execute("PRAGMA user_version=1")
        con.execute(
            "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("v1:old", AUDIO, "fake/echo", "en", "http://loopback/api/v1", '{"text": "old"}', 2.0, 0.1, 1.0),
        )
        con.execute("INSERT INTO file_hashes VALUES (?, ?, ?, ?, ?)", ("/clip.wav", 100, 7, AUDIO, "wav"))
    con.close()
    cache = Cache(db)
    try:
        assert user_version(db) == len(MIGRATIONS)
        old = cache.get("v1:old")
        assert old is not None and old.response == {"text": "old"} and old.audio_seconds == 2.0
        assert cache.file_hashes({"/clip.wav": (100, 7)}) == {"/clip.wav": (AUDIO, "wav", None)}  # no duration yet
        cache.put_file_hash("/clip.wav", 100, 7, AUDIO, "wav", seconds=3.25)  # the new column is written
        cache.flush_file_hashes()
        assert cache.file_hashes({"/clip.wav": (100, 7)})["/clip.wav"] == (AUDIO, "wav", 3.25)
    finally:
        cache.close()
    Cache(db).close()  # opening a current file again runs nothing
    assert user_version(db) == len(MIGRATIONS)


# --- the fast path: (path, size, mtime) -> audio hash ------------------------------------------------------


def test_file_hashes_answer_only_for_unchanged_files(tmp_cache: Cache) -> None:
    tmp_cache.put_file_hash("/a.wav", 100, 1_000, "a" * 64, "wav", 1.5)
    tmp_cache.put_file_hash("/b.flac", 200, 2_000, "b" * 64, "flac")
    tmp_cache.flush_file_hashes()
    known = tmp_cache.file_hashes({"/a.wav": (100, 1_000), "/b.flac": (200, 2_001), "/c.mp3": (1, 1)})
    assert known == {"/a.wav": ("a" * 64, "wav", 1.5)}  # b was touched since, c was never seen
    assert tmp_cache.file_hashes({"/a.wav": (101, 1_000)}) == {}  # another size: hashed again
    tmp_cache.put_file_hash("/a.wav", 101, 1_000, "c" * 64, "wav")  # the new state replaces the old one
    tmp_cache.flush_file_hashes()
    assert tmp_cache.file_hashes({"/a.wav": (101, 1_000)}) == {"/a.wav": ("c" * 64, "wav", None)}
    assert tmp_cache.info()["files"] == 2


def test_file_hashes_are_buffered_and_written_in_batches_or_on_close(tmp_path: Path) -> None:
    from stt_frames import cache as cache_module

    batch = cache_module._HASH_BATCH
    writer, reader = Cache(tmp_path), Cache(tmp_path)
    try:
        for i in range(batch - 1):
            writer.put_file_hash(f"/f{i}.wav", i, i, AUDIO, "wav")
        assert reader.info()["files"] == 0  # still buffered: a crash here only costs a re-hash
        writer.put_file_hash("/last.wav", 1, 1, AUDIO, "wav")  # the batch is full: written now
        assert reader.info()["files"] == batch
        writer.put_file_hash("/after.wav", 1, 1, AUDIO, "wav")
        assert reader.info()["files"] == batch
        writer.close()  # close writes what is buffered
        assert reader.info()["files"] == batch + 1
    finally:
        writer.close()
        reader.close()


# --- several writers ---------------------------------------------------------------------------------------


def test_threads_share_one_cache_object(tmp_cache: Cache) -> None:
    """Each thread gets its own SQLite connection; 8 threads writing at once lose nothing."""
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for i in range(50):
                put(tmp_cache, f"v1:t{t}-{i}", f"{t}/{i}")
                tmp_cache.put_file_hash(f"/t{t}/{i}.wav", i, i, AUDIO, "wav")
            tmp_cache.flush_file_hashes()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    info = tmp_cache.info()
    assert (info["entries"], info["files"]) == (400, 400)
    assert tmp_cache.get("v1:t7-49").response == {"text": "7/49"}  # type: ignore[union-attr]


WRITER = """
import sys
from stt_frames.cache import Cache
cache = Cache(sys.argv[1])
for i in range(150):
    cache.put(f"v1:{sys.argv[2]}-{i}", {"text": sys.argv[2]}, audio_sha256="x", model="fake/echo",
              language=None, endpoint="http://127.0.0.1:1/api/v1")
cache.close()
"""


def test_processes_write_one_cache_at_the_same_time(tmp_path: Path) -> None:
    Cache(tmp_path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"p{i}"]) for i in range(4)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0, 0]
    db = tmp_path / CACHE_FILENAME
    assert integrity(db) == "ok"
    with sqlite3.connect(db) as con:
        per_writer = Counter(json.loads(r)["text"] for (r,) in con.execute("SELECT response FROM responses"))
    assert per_writer == {f"p{i}": 150 for i in range(4)}


def test_many_processes_create_one_cache_at_the_same_instant(tmp_path: Path) -> None:
    """Regression: ``PRAGMA journal_mode=WAL`` answers "database is locked" at once (no busy wait) while
    another process creates the same file; two notebooks starting on a fresh cache must both work."""
    script = HERE / "cache_open_child.py"
    outcomes: Counter[str] = Counter()
    for round_ in range(10):
        cache_dir, go = tmp_path / f"fresh{round_}", tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(cache_dir), str(go), f"p{i}"],
                stdout=subprocess.PIPE,
                text=True,
                cwd=HERE.parent,
            )
            for i in range(4)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        for proc in procs:
            stdout, _ = proc.communicate(timeout=60)
            outcomes[stdout.strip().replace(str(tmp_path), "<tmp>")] += 1
        db = cache_dir / CACHE_FILENAME
        assert integrity(db) == "ok" and user_version(db) == len(MIGRATIONS)
    assert outcomes == {"ok": 40}, outcomes
