"""serve_local (thread and process) and the ``stt-frames serve`` command, over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytest.importorskip("uvicorn")

from stt_frames.cli import main
from stt_frames.server import get_stats, reset_stats, serve_local

STT_FRAMES = Path(sys.executable).with_name("stt-frames")


def payload(wav: bytes, model: str = "fake/echo") -> dict[str, object]:
    return {"model": model, "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}


def refused(base_url: str) -> bool:
    parts = urlsplit(base_url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return False
    except OSError:
        return True


# --- serve_local -------------------------------------------------------------------------------------------


def test_serve_local_starts_binds_loopback_and_stops(wav_factory: Callable[..., bytes]) -> None:
    before = {t.name for t in threading.enumerate()}
    with serve_local() as url:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.path == "/api/v1"
        assert parts.port and parts.port > 0
        with httpx.Client(base_url=url) as client:
            assert "fake/echo" in [m["id"] for m in client.get("/models").json()["data"]]
            r = client.post("/audio/transcriptions", json=payload(wav_factory(0.5)))
            assert r.status_code == 200 and r.json()["text"].endswith(" 0.50s")
            kept_open = httpx.Client(base_url=url)
            kept_open.get("/models")  # a keep-alive connection still open at shutdown
    assert refused(url)
    kept_open.close()
    assert {t.name for t in threading.enumerate()} <= before


def test_two_servers_side_by_side() -> None:
    with serve_local() as a, serve_local() as b:
        assert a != b
        assert httpx.get(f"{a}/models").status_code == httpx.get(f"{b}/models").status_code == 200


def test_restart_on_the_same_port(wav_factory: Callable[..., bytes]) -> None:
    with httpx.Client() as client:
        with serve_local() as url:
            port = urlsplit(url).port
            assert port is not None
            # keep-alive connections the server closes first: its side lingers in TIME_WAIT after shutdown
            client.post(f"{url}/audio/transcriptions", json=payload(wav_factory(0.1)))
        with serve_local(port=port) as again:
            assert again == url
            assert client.get(f"{again}/models").status_code == 200


def test_serve_local_checks_its_options_before_starting() -> None:
    with pytest.raises(ValueError, match="fail_rate"), serve_local(fail_rate=2.0):
        pass
    with pytest.raises(ValueError, match="unknown fault kind"), serve_local(faults=("nope",), process=True):
        pass


def test_stats_and_reset_over_http_need_the_key(wav_factory: Callable[..., bytes]) -> None:
    with serve_local(api_key="sk-k", prices={"fake/echo": 0.6}) as url:
        httpx.post(
            f"{url}/audio/transcriptions", json=payload(wav_factory(1.0)), headers={"authorization": "Bearer sk-k"}
        )
        with pytest.raises(httpx.HTTPStatusError):
            get_stats(url)
        stats = get_stats(url, api_key="sk-k")
        assert stats["total_billed"] == 1 and stats["cost"] == pytest.approx(0.01)
        assert reset_stats(url, api_key="sk-k")["total_billed"] == 0


def test_drop_closes_the_connection_without_a_byte(wav_factory: Callable[..., bytes]) -> None:
    raw = httpx.Request("POST", "http://x/api/v1/audio/transcriptions", json=payload(wav_factory(0.1)))
    head = "POST /api/v1/audio/transcriptions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    request = f"{head}content-length: {len(raw.content)}\r\n\r\n".encode() + raw.content
    with serve_local(fail_rate=1.0, faults=("drop",)) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            sock.sendall(request)
            assert sock.recv(65536) == b""  # closed, nothing sent
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            httpx.post(f"{url}/audio/transcriptions", json=payload(wav_factory(0.1)))
        assert get_stats(url)["faults"] == {"drop": 2}
        assert get_stats(url)["billed"] == {}


def test_truncate_sends_half_the_promised_body_then_closes(wav_factory: Callable[..., bytes]) -> None:
    with serve_local(fail_rate=1.0, faults=("truncate",)) as url:
        with pytest.raises(httpx.RemoteProtocolError, match=r"without sending complete message body"):
            httpx.post(f"{url}/audio/transcriptions", json=payload(wav_factory(0.1)))
        stats = get_stats(url)
    assert stats["faults"] == {"truncate": 1}
    assert stats["total_billed"] == 1  # the work was done and billed; the answer was lost


def test_429_headers_over_the_wire(wav_factory: Callable[..., bytes]) -> None:
    with serve_local(fail_rate=1.0, faults=("429",)) as url:
        r = httpx.post(f"{url}/audio/transcriptions", json=payload(wav_factory(0.1)))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1" and r.headers["retry-after-ms"] == "100"


def test_a_body_over_the_limit_gets_a_413_over_the_wire() -> None:
    with serve_local(max_body_bytes=1000) as url:
        r = httpx.post(f"{url}/audio/transcriptions", content=b"x" * 2_000_000)
    assert r.status_code == 413 and r.json()["error"]["code"] == 413


def test_many_requests_in_flight(wav_factory: Callable[..., bytes]) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    body = payload(wav_factory(1.0))

    async def run(url: str) -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

            async def one() -> None:
                async with session.post(f"{url}/audio/transcriptions", json=body) as r:
                    assert r.status == 200
                    await r.json()

            await asyncio.gather(*(one() for _ in range(256)))

    with serve_local(latency=0.05) as url:
        start = time.perf_counter()
        asyncio.run(run(url))
        elapsed = time.perf_counter() - start
        stats = get_stats(url)
    assert stats["total_billed"] == 256 and stats["max_in_flight"] >= 32
    assert elapsed < 10


def test_serve_local_in_a_separate_process(wav_factory: Callable[..., bytes]) -> None:
    wav = wav_factory(0.25)
    with serve_local(process=True, api_key="sk-p", prices={"fake/echo": 0.006}, latency=0.01) as url:
        assert urlsplit(url).hostname == "127.0.0.1"
        r = httpx.post(f"{url}/audio/transcriptions", json=payload(wav), headers={"authorization": "Bearer sk-p"})
        assert r.status_code == 200 and r.json()["usage"]["cost"] == pytest.approx(0.006 * 0.25 / 60)
        assert get_stats(url, api_key="sk-p")["total_billed"] == 1
    assert refused(url)


# --- the stt-frames command --------------------------------------------------------------------------------


@contextmanager
def serve_command(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``stt-frames serve --port 0 ARGS`` and yield (base URL, process); terminate it afterwards."""
    assert STT_FRAMES.exists(), f"console script not installed at {STT_FRAMES}"
    proc = subprocess.Popen(
        [str(STT_FRAMES), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(30), "no ready line within 30 s"
        line = proc.stdout.readline()
        assert line.startswith("stt-frames: serving http://127.0.0.1:"), line
        yield line.split()[-1], proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()


def test_serve_command_answers_and_stops(wav_factory: Callable[..., bytes]) -> None:
    secret = "sk-from-the-environment"
    env = {"STT_FRAMES_SERVE_API_KEY": secret}
    with serve_command("--price", "fake/echo=0.006", env=env) as (url, proc):
        headers = {"authorization": f"Bearer {secret}"}
        r = httpx.post(f"{url}/audio/transcriptions", json=payload(wav_factory(1.0)), headers=headers)
        assert r.status_code == 200 and r.json()["usage"]["cost"] == pytest.approx(0.0001)
        wrong = httpx.post(f"{url}/audio/transcriptions", json=payload(wav_factory(1.0)))
        assert wrong.status_code == 401
    assert proc.returncode in (0, -15)  # uvicorn shuts down gracefully, then re-raises SIGTERM
    assert refused(url)


def _children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_serve_command_stops_its_worker_processes() -> None:
    pytest.importorskip("pocketsphinx")
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc")
    wav = (Path(__file__).resolve().parent.parent / "data" / "en" / "flite_slt_00.wav").read_bytes()
    with serve_command("--workers", "2") as (url, proc):
        r = httpx.post(f"{url}/audio/transcriptions", json=payload(wav, "local/pocketsphinx-fast"), timeout=60)
        assert r.status_code == 200 and r.json()["text"]
        workers = _children(proc.pid)
        assert 1 <= len(workers) <= 3  # the workers a request used (and multiprocessing's resource tracker)
    assert proc.returncode in (0, -15)
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_serve_command_never_prints_the_key(tmp_path: Path) -> None:
    secret = "sk-never-printed-42"
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        proc = subprocess.Popen(
            [str(STT_FRAMES), "serve", "--port", "0", "--api-key", secret, "--log-level", "debug", "--access-log"],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while "serving" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            url = log.read_text().split("serving ")[1].split()[0]
            httpx.get(f"{url}/_stats", headers={"authorization": f"Bearer {secret}"})
            httpx.get(f"{url}/_stats", headers={"authorization": "Bearer wrong"})
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    text = log.read_text()
    assert "GET /api/v1/_stats" in text  # the access log ran ...
    assert secret not in text  # ... and never showed the key


def test_serve_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ["--host", "--port", "--api-key", "--latency", "--fail-rate", "--seed", "--faults", "--price"]:
        assert option in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["serve", "--port", "http"], "expected a port number"),
        (["serve", "--fail-rate", "1.5"], "between 0 and 1"),
        (["serve", "--latency", "soon"], "expected a number of seconds"),
        (["serve", "--price", "fake/echo"], "expected MODEL=USD_PER_MINUTE"),
        (["serve", "--faults", "429,boom"], "unknown fault kind"),
        (["serve", "--max-audio-seconds", "0"], "expected a positive number of seconds"),
        (["serve", "--max-audio-seconds", "long"], "expected a number of seconds"),
        (["serve", "--workers", "0"], "expected a positive integer"),
        (["serve", "--bogus"], "unrecognized arguments"),
        (["fly"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and err.startswith("stt-frames")


def test_bad_argument_from_the_real_command_has_no_traceback() -> None:
    result = subprocess.run([str(STT_FRAMES), "serve", "--fail-rate", "lots"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([str(STT_FRAMES), "serve", "--port", str(port)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


# --- without the server extras ------------------------------------------------------------------------------


def test_import_and_cli_work_without_the_server_extras() -> None:
    code = """
import sys
for name in ("starlette", "uvicorn", "pocketsphinx", "av"):
    sys.modules[name] = None
import stt_frames, stt_frames.server, stt_frames.server.launcher
from stt_frames.cli import build_parser
build_parser().parse_args(["serve", "--port", "0"])
try:
    from stt_frames.server import create_app
except stt_frames.MissingExtraError as exc:
    print(exc)
try:
    with stt_frames.serve_local():
        pass
except stt_frames.MissingExtraError as exc:
    print(exc)
from stt_frames.cli import main
sys.exit(main(["serve", "--port", "0"]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("pip install 'stt-frames[server]'") == 2, result.stdout
    assert result.stderr.count("\n") == 1 and "stt-frames[server]" in result.stderr
