"""The ``stt-frames`` command line, run as real subprocesses against the local server.

Covers transcribe (CSV, Parquet, folder), compare, cache info/clear, exit codes, one-line errors,
Ctrl-C, the API key never shown, and that ``docs/cli.md`` matches the real ``--help`` text.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest

import stt_frames
from stt_frames.cli import help_markdown
from stt_frames.server import get_stats

pytest.importorskip("starlette", reason="the local server needs the 'server' extra")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
DOCS = ROOT / "docs" / "cli.md"
CANARY = "sk-or-canary-cli-5d2e8b"
N_SAMPLES = len(pd.read_csv(DATA / "samples.csv"))


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "stt_frames.cli", *args]


def cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stt_frames.cli ARGS`` with the test's environment (its private cache) plus ``env``."""
    return subprocess.run(
        cli_cmd(*args), capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout
    )


def cli_many(commands: Sequence[tuple[Sequence[str], Mapping[str, str]]]) -> list[subprocess.CompletedProcess[str]]:
    """Run several commands at once (each is ``(args, extra env)``); results in order."""
    procs = [
        subprocess.Popen(
            cli_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
        for args, env in commands
    ]
    done = []
    for (args, _), proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(list(args), proc.returncode, out, err))
    return done


def one_line_error(result: subprocess.CompletedProcess[str]) -> bool:
    return result.stderr.count("\n") == 1 and ": error: " in result.stderr and "Traceback" not in result.stderr


def billed(base_url: str) -> dict[str, int]:
    return get_stats(base_url)["billed"]


# -- transcribe ------------------------------------------------------------------------------------------


def test_transcribe_csv_resolves_paths_against_its_folder_and_reruns_from_cache(server: str, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    # cwd is tmp_path: the CSV's paths (en/...) exist only relative to data/, the CSV's folder
    args = ("transcribe", str(DATA / "samples.csv"), "--model", "fake/echo", "--base-url", server, "-o", str(out))
    first = cli(*args, "--language-column", "language", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""  # progress and the summary go to stderr
    assert "fake/echo:" in first.stderr and "100%" in first.stderr  # the progress bar
    assert f"{N_SAMPLES} rows, 0 failed, 0 cached, $" in first.stderr
    df = stt_frames.read_results(out)
    assert len(df) == N_SAMPLES and df["error"].isna().all()
    assert df["text"].str.startswith("echo ").all() and not df["cached"].any()
    assert all(Path(p).is_file() for p in df["path"]) and df["path"].str.startswith(str(DATA)).all()
    assert df.attrs["stt_frames"]["model"] == "fake/echo"
    assert df.attrs["stt_frames"]["language_column"] == "language"
    assert sorted(billed(server).values()) == [1] * N_SAMPLES

    again = cli(*args, "--language-column", "language", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.strip().endswith(f"{N_SAMPLES} rows, 0 failed, {N_SAMPLES} cached, $0.0000 spent")
    assert stt_frames.read_results(out)["cached"].all()
    assert sorted(billed(server).values()) == [1] * N_SAMPLES  # nothing sent twice


def test_transcribe_parquet_with_a_missing_file_exits_1(server: str, tmp_path: Path) -> None:
    df = pd.read_csv(DATA / "samples.csv").head(6)
    df["path"] = [str(DATA / p) for p in df["path"]]
    df.loc[3, "path"] = str(tmp_path / "gone.wav")
    src = tmp_path / "in.parquet"
    df.to_parquet(src)
    out = tmp_path / "out.parquet"
    result = cli("transcribe", str(src), "--model", "fake/echo", "--base-url", server, "--no-progress", "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert "6 rows, 1 failed" in result.stderr and f"{tmp_path / 'gone.wav'}: " in result.stderr
    back = stt_frames.read_results(out)
    assert len(back) == 6 and back["error"].notna().tolist() == [False, False, False, True, False, False]
    assert "not found" in back.loc[3, "error"]
    assert list(back["reference"]) == list(df["reference"])  # the input's columns are kept


def test_a_spending_cap_of_zero_sends_nothing_and_exits_1(server: str, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    args = ("transcribe", str(DATA / "en"), "--model", "fake/echo", "--base-url", server, "--max-cost", "0")
    result = cli(*args, "--no-progress", "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert billed(server) == {}
    assert "max_cost" in result.stderr and "more (see the error column)" in result.stderr
    assert stt_frames.read_results(out)["error"].str.contains("max_cost").all()


def test_transcribe_a_folder_finds_every_clip(server: str, tmp_path: Path, samples_dir: Path) -> None:
    out = tmp_path / "out.parquet"
    args = ("transcribe", str(samples_dir), "--model", "fake/echo", "--base-url", server, "--no-progress")
    result = cli(*args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    df = stt_frames.read_results(out)
    expected = sorted(str(samples_dir / p) for p in pd.read_csv(DATA / "samples.csv")["path"])
    assert list(df["path"]) == expected  # every contract format, recursively, sorted
    assert df["error"].isna().all() and df["text"].notna().all()


def test_interrupt_exits_130_and_the_same_command_resumes(
    local_server: Callable[..., str], tmp_path: Path, samples_dir: Path
) -> None:
    out = tmp_path / "out.parquet"
    url = local_server(latency=0.25)
    args = ("transcribe", str(samples_dir), "--model", "fake/echo", "--base-url", url, "--concurrency", "2")
    proc = subprocess.Popen(
        cli_cmd(*args, "--no-progress", "-o", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while get_stats(url)["total_requests"] < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert "interrupted" in line and "run the same command again to resume" in line
    finished = int(line.split(" rows finished")[0].rsplit(" ", 1)[1])
    assert 0 < finished < N_SAMPLES and not out.exists()

    again = cli(*args, "--no-progress", "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert f"{N_SAMPLES} rows, 0 failed, {finished} cached" in again.stderr


# -- compare ---------------------------------------------------------------------------------------------


def test_compare_writes_a_dataset_and_prints_the_leaderboard(server: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = cli(
        "compare", str(DATA / "samples.csv"), "--models", "fake/echo", "--languages", "auto,en",
        "--reference", "reference", "--base-url", server, "--no-progress", "-o", f"{runs}/",  # as the README writes it
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {runs}/ (" in result.stderr and "//" not in result.stderr  # once printed runs//
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:7] == ["model", "language", "n", "n_errors", "n_scored", "wer", "cer"]
    board = sorted(tuple(line.split()[:4]) for line in lines[1:])
    assert board == [("fake/echo", "auto", str(N_SAMPLES), "0"), ("fake/echo", "en", str(N_SAMPLES), "0")]
    assert f"{2 * N_SAMPLES} rows, 0 failed" in result.stderr
    results = stt_frames.read_results(runs)
    assert len(results) == 2 * N_SAMPLES
    assert sorted(results["language"].unique()) == ["auto", "en"]
    assert results["wer"].notna().all() and results["error"].isna().all()
    assert (runs / "model=fake%2Fecho" / "language=en").is_dir()


# -- long recordings -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV of one 40-second recording (1.3 MB of WAV) and one short clip."""
    from recordings import speech_recording, write_audio

    folder = tmp_path_factory.mktemp("long")
    long = write_audio(folder / "long.wav", speech_recording(40, seed=6).samples)
    short = DATA / pd.read_csv(DATA / "samples.csv")["path"].iloc[0]
    pd.DataFrame({"path": [str(long), str(short)], "reference": ["a long talk", "a short clip"]}).to_csv(
        folder / "in.csv", index=False
    )
    return folder / "in.csv"


def test_transcribe_chunks_a_long_recording_and_the_summary_counts_what_was_sent(
    server: str, tmp_path: Path, long_csv: Path
) -> None:
    out = tmp_path / "out.parquet"
    result = cli(
        "transcribe", str(long_csv), "--model", "fake/echo", "--base-url", server, "--no-progress", "-o", str(out),
        "--chunk-seconds", "15", "--max-upload-mb", "1.5", "--upload-format", "flac", "--timeout", "60",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    df = stt_frames.read_results(out)
    assert df["error"].isna().all(), df["error"].tolist()
    assert df.loc[0, "chunks"] >= 3 and df.loc[1, "chunks"] == 1  # 40 s in chunks of at most 15 s
    info = df.attrs["stt_frames"]
    params = info["parameters"]
    assert (params["chunk_seconds"], params["max_upload_bytes"], params["upload_format"]) == (15.0, 1_572_864, "flac")
    assert params["timeout"]["read"] == 60.0
    requests = get_stats(server)["total_requests"]
    assert requests == info["requests"] == int(df["chunks"].sum())
    mb = info["uploaded_bytes"] / 1e6
    assert result.stderr.strip().endswith(f" spent; {requests} requests sent, {mb:,.1f} MB uploaded")
    assert "possibly billed twice" not in result.stderr  # said only when it happened


def test_chunk_seconds_none_refuses_a_file_over_max_upload_mb_before_sending_it(
    server: str, tmp_path: Path, long_csv: Path
) -> None:
    result = cli(
        "transcribe", str(long_csv), "--model", "fake/echo", "--base-url", server, "--no-progress",
        "--chunk-seconds", "none", "--max-upload-mb", "0.5", "-o", str(tmp_path / "out.parquet"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    df = stt_frames.read_results(tmp_path / "out.parquet")
    size = Path(df.loc[0, "path"]).stat().st_size / 2**20
    assert f"long.wav: file is {size:.1f} MiB, over max_upload_bytes=524,288 (0.5 MiB)" in result.stderr
    assert df["error"].notna().tolist() == [True, False]
    assert df.attrs["stt_frames"]["parameters"]["chunk_seconds"] is None
    assert get_stats(server)["total_requests"] == 1  # the short clip only
    uploaded = df.attrs["stt_frames"]["uploaded_bytes"]
    assert uploaded == Path(df.loc[1, "path"]).stat().st_size  # sent as it is
    assert f" spent; 1 request sent, {uploaded / 1e6:,.1f} MB uploaded\n" in result.stderr


def test_timeout_and_the_possibly_billed_twice_count_in_the_summary(
    local_server: Callable[..., str], tmp_path: Path, long_csv: Path
) -> None:
    """A server slower than --timeout: each request goes out twice, then its row fails; the summary says so."""
    url = local_server(latency=2.0)
    result = cli(
        "transcribe", str(long_csv), "--model", "fake/echo", "--base-url", url, "--no-progress", "--no-cache",
        "--chunk-seconds", "off", "--timeout", "0.3", "-o", str(tmp_path / "out.parquet"),
    )  # fmt: skip
    sent = get_stats(url)["total_requests"]
    assert result.returncode == 1, result.stderr
    assert sent == 4  # 2 rows x 2 sends, never a third
    assert "2 requests sent" in result.stderr
    assert "2 possibly billed twice (sent again after a lost answer)" in result.stderr
    assert "not sent a third time" in result.stderr


def test_compare_passes_the_long_recording_options_to_every_cell(server: str, tmp_path: Path, long_csv: Path) -> None:
    runs = tmp_path / "runs"
    result = cli(
        "compare", str(long_csv), "--models", "fake/echo", "--languages", "auto,en", "--base-url", server,
        "--no-progress", "--chunk-seconds", "15", "--upload-format", "opus", "--timeout", "60", "-o", str(runs),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = stt_frames.read_results(runs)
    assert len(results) == 4 and results["error"].isna().all()
    long = results[results["path"].str.endswith("long.wav")]
    assert len(long) == 2 and (long["chunks"] >= 3).all() and long["chunks"].nunique() == 1
    # opus everywhere: even the short clip is re-encoded, so each cell sends 1 + the long file's chunks
    requests = get_stats(server)["total_requests"]
    assert requests == int(results["chunks"].sum())
    assert f"; {requests} requests sent, " in result.stderr  # the grid's total, not one cell's
    assert results.attrs["stt_frames"]["requests"] == requests  # and the dataset's metadata says the same


def test_bad_long_recording_options_exit_2() -> None:
    csv, out = str(DATA / "samples.csv"), "/nonexistent/o.parquet"
    cases = [
        (["--chunk-seconds", "0"], "argument --chunk-seconds: expected a number of seconds between 1 and 86400"),
        (["--chunk-seconds", "soon"], "or none/off to never cut, got 'soon'"),
        (["--max-upload-mb", "0"], "argument --max-upload-mb: expected a size in MiB >= 0.1"),
        (["--max-upload-mb", "nan"], "argument --max-upload-mb"),
        (["--upload-format", "mp3"], "argument --upload-format: invalid choice: 'mp3'"),
        (["--timeout", "-1"], "argument --timeout: expected a number of seconds > 0"),
    ]
    results = cli_many([(["transcribe", csv, "--model", "m", *args, "-o", out], {}) for args, _ in cases])
    for (args, fragment), result in zip(cases, results, strict=True):
        assert result.returncode == 2 and one_line_error(result), (args, result.stderr)
        assert fragment in result.stderr, (args, fragment, result.stderr)


# -- cache -----------------------------------------------------------------------------------------------


def test_cache_info_and_clear(server: str, tmp_path: Path, samples_dir: Path) -> None:
    cache_dir = tmp_path / "cache"
    args = ("transcribe", str(samples_dir), "--model", "fake/echo", "--base-url", server, "--no-progress")
    assert cli(*args, "--cache-dir", str(cache_dir), "-o", str(tmp_path / "a.parquet")).returncode == 0

    info = cli("cache", "info", "--json", "--cache-dir", str(cache_dir))
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["path"] == str(cache_dir / "cache.sqlite3")
    assert data["entries"] == N_SAMPLES and data["models"] == {"fake/echo": N_SAMPLES} and data["bytes"] > 0
    text = cli("cache", "info", "--cache-dir", str(cache_dir)).stdout
    assert f"entries  {N_SAMPLES}" in text and "fake/echo" in text

    refused, other, everything = (
        cli("cache", "clear", "--cache-dir", str(cache_dir)),  # no --yes and no terminal
        cli("cache", "clear", "--model", "openai/whisper-1", "--yes", "--cache-dir", str(cache_dir)),
        cli("cache", "clear", "--yes", "--cache-dir", str(cache_dir)),
    )
    assert refused.returncode == 2 and one_line_error(refused) and "--yes" in refused.stderr
    assert other.returncode == 0 and other.stdout.startswith("deleted 0 cached answers")
    assert everything.returncode == 0 and everything.stdout.startswith(f"deleted {N_SAMPLES} cached answers")
    assert json.loads(cli("cache", "info", "--json", "--cache-dir", str(cache_dir)).stdout)["entries"] == 0

    # the default cache is STT_FRAMES_CACHE_DIR (the test's private one here)
    default = json.loads(cli("cache", "info", "--json").stdout)
    assert default["path"] == str(Path(os.environ["STT_FRAMES_CACHE_DIR"]) / "cache.sqlite3")


# -- errors and exit codes -------------------------------------------------------------------------------


def test_bad_arguments_exit_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "junk.csv").write_bytes(b'"unclosed,\x00\xff\xfe\n1,2,3\n4')
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.json").write_text("{}")
    csv, out = str(DATA / "samples.csv"), str(tmp_path / "o.parquet")
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (["transcribe", str(tmp_path / "nope.csv"), "--model", "m", "-o", out], {}, "does not exist"),
        (["transcribe", csv, "--model", "m", "--column", "audio", "-o", out], {}, "--column 'audio' is not a column"),
        (["transcribe", csv, "--model", "m", "--language-column", "lang", "-o", out], {}, "'lang' is not a column"),
        (["transcribe", csv, "--model", "m", "--max-cost", "lots", "-o", out], {}, "argument --max-cost"),
        (["transcribe", csv, "--model", "m", "--max-cost", "-1", "-o", out], {}, "USD >= 0"),
        (["transcribe", csv, "--model", "m", "--concurrency", "0", "-o", out], {}, "argument --concurrency"),
        (["transcribe", csv, "--model", "m", "--base-url", "ftp://x", "-o", out], {}, "argument --base-url"),
        (["transcribe", str(tmp_path / "junk.csv"), "--model", "m", "-o", out], {}, "cannot read CSV"),
        (["transcribe", str(tmp_path / "bad.parquet"), "--model", "m", "-o", out], {}, "cannot read"),
        (["transcribe", str(tmp_path / "empty"), "--model", "m", "-o", out], {}, "no audio files"),
        (["transcribe", str(tmp_path / "notes.json"), "--model", "m", "-o", out], {}, "must be a .csv"),
        (["transcribe", csv, "--model", "m", "-o", str(tmp_path)], {}, "is a folder"),
        (["transcribe", csv, "-o", out], {}, "required: --model"),
        (["compare", csv, "--models", "a,,b", "-o", str(tmp_path / "r")], {}, "argument --models"),
        (["compare", csv, "--models", "a", "--languages", "en,??", "-o", out], {}, "argument --languages"),
        (["compare", csv, "--models", "a", "--reference", "ref", "-o", str(tmp_path / "r")], {}, "'ref' is not"),
        (["cache", "clear", "--older-than-days", "soon", "--yes"], {}, "number of days"),
        (["transcribe", csv, "--model", "m", "--frobnicate", "-o", out], {}, "unrecognized arguments"),
        # the key over plain http to a remote host is refused: a bad --base-url, not a request
        (
            ["transcribe", csv, "--model", "m", "--base-url", "http://example.com/api/v1", "-o", out],
            {"OPENROUTER_API_KEY": CANARY},
            "plain http",
        ),
    ]
    results = cli_many([(args, env) for args, env, _ in cases])
    for (args, _, fragment), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stderr)
        assert one_line_error(result), (args, result.stderr)
        assert result.stderr.startswith("stt-frames"), (args, result.stderr)
        assert fragment in result.stderr, (args, fragment, result.stderr)
        assert CANARY not in result.stderr + result.stdout
    assert not (tmp_path / "o.parquet").exists()


def test_a_cache_dir_whose_parent_is_missing_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "dir"
    csv, out = str(DATA / "samples.csv"), str(tmp_path / "o.parquet")
    results = cli_many(
        [
            (["transcribe", csv, "--model", "fake/echo", "--cache-dir", str(typo), "-o", out], {}),
            (["compare", csv, "--models", "fake/echo", "--cache-dir", str(typo), "-o", str(tmp_path / "r")], {}),
            (["cache", "info", "--cache-dir", str(typo)], {}),
            (["cache", "clear", "--yes", "--cache-dir", str(typo)], {}),
        ]
    )
    for result in results:
        assert result.returncode == 2, (result.args, result.stderr)
        assert one_line_error(result) and f"{typo.parent} of {str(typo)!r} does not exist" in result.stderr
    assert not (tmp_path / "typo").exists() and not Path(out).exists()
    # a missing cache folder inside an existing one is created, as before
    fresh = cli("cache", "info", "--json", "--cache-dir", str(tmp_path / "new-cache"))
    assert fresh.returncode == 0 and (tmp_path / "new-cache").is_dir(), fresh.stderr


def test_a_rejected_key_exits_3_and_is_never_shown(local_server: Callable[..., str], tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    url = local_server(api_key="k")
    result = cli(
        "transcribe", str(DATA), "--model", "fake/echo", "--base-url", url, "-o", str(out),
        env={"OPENROUTER_API_KEY": CANARY},
    )  # fmt: skip
    assert get_stats(url, api_key="k")["statuses"].get("401", 0) >= 1
    assert result.returncode == 3, result.stderr
    assert CANARY not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stt-frames transcribe: error: 401") and "OPENROUTER_API_KEY" in last
    assert "export it" in last and "api_key=" not in last  # shell advice, not Python's "pass api_key=..."
    assert "rerun to resume" in last and "Traceback" not in result.stderr
    assert not out.exists()


def test_api_errors_map_to_exit_codes() -> None:
    from stt_frames.cli import ExitCode, _status_of
    from stt_frames.errors import status_error

    assert {code: _status_of(status_error(code, "x")) for code in (401, 402, 404, 400, 500)} == {
        401: ExitCode.AUTH, 402: ExitCode.AUTH, 404: ExitCode.API, 400: ExitCode.API, 500: ExitCode.API,
    }  # fmt: skip


def test_no_key_for_openrouter_exits_3_before_sending_and_404_exits_4(server: str, tmp_path: Path) -> None:
    no_key, unknown_model, bad_output = cli_many(
        [
            (["transcribe", str(DATA), "--model", "openai/whisper-1", "-o", str(tmp_path / "a.parquet")], {}),
            (["transcribe", str(DATA), "--model", "no/such", "--base-url", server, "-o", str(tmp_path / "b.pq")], {}),
            (["transcribe", str(DATA), "--model", "no/such", "--base-url", server, "-o", str(tmp_path / "b.xlsx")], {}),
        ]
    )
    assert bad_output.returncode == 2 and one_line_error(bad_output), bad_output.stderr
    assert "cannot tell the format from '.xlsx'" in bad_output.stderr
    assert no_key.returncode == 3 and one_line_error(no_key) and "OPENROUTER_API_KEY is not set" in no_key.stderr
    assert unknown_model.returncode == 4, unknown_model.stderr
    assert "error: 404" in unknown_model.stderr.strip().splitlines()[-1]


# -- help and docs ---------------------------------------------------------------------------------------


def test_every_command_has_help() -> None:
    console_script = Path(sys.executable).with_name("stt-frames")
    commands = [[], ["transcribe"], ["compare"], ["cache"], ["cache", "info"], ["cache", "clear"], ["serve"]]
    results = cli_many([([*c, "--help"], {}) for c in commands])
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"usage: stt-frames {' '.join(command)}".rstrip()), command
    top = results[0].stdout
    for word in ("transcribe", "compare", "cache", "serve", "exit status", "130", "OPENROUTER_API_KEY"):
        assert word in top
    real = subprocess.run([str(console_script), "--help"], capture_output=True, text=True, timeout=60)
    assert real.returncode == 0 and real.stdout == top


def test_the_documented_concurrency_is_the_real_default() -> None:
    from stt_frames.cli._common import DOCUMENTED_CONCURRENCY
    from stt_frames.frame import DEFAULT_CONCURRENCY

    assert DOCUMENTED_CONCURRENCY == DEFAULT_CONCURRENCY
    assert f"(default {DEFAULT_CONCURRENCY};" in DOCS.read_text()


def test_the_documented_long_recording_defaults_are_the_real_ones() -> None:
    from stt_frames.chunking import DEFAULT_CHUNK_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, UPLOAD_FORMATS
    from stt_frames.cli._common import DOCUMENTED_CHUNK_SECONDS, DOCUMENTED_MAX_UPLOAD_MB

    assert DOCUMENTED_CHUNK_SECONDS == DEFAULT_CHUNK_SECONDS
    assert DOCUMENTED_MAX_UPLOAD_MB * 2**20 == DEFAULT_MAX_UPLOAD_BYTES
    assert f"--upload-format {{{','.join(UPLOAD_FORMATS)}}}" in DOCS.read_text()
    assert f"(default {DEFAULT_CHUNK_SECONDS:g});" in DOCS.read_text()


def test_no_command_prints_help_and_exits_2() -> None:
    result = cli()
    assert result.returncode == 2 and result.stderr.startswith("usage: stt-frames")


def test_the_documented_exit_codes_are_the_declared_ones() -> None:
    """docs/cli.md's exit-status table, --help's and the code's all come from ``ExitCode``."""
    from stt_frames.cli import ExitCode

    rows = re.findall(r"^\| (\d+) \| (.+) \|$", DOCS.read_text(), flags=re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == [(code.value, code.description) for code in ExitCode]
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 4, 130]
    top = cli("--help").stdout
    for code in ExitCode:
        assert f"  {code.value:<4} {code.description}" in top
    readme = (DOCS.parent.parent / "README.md").read_text()
    summary = readme.split("Exit codes: ", 1)[1].split(";", 1)[0]  # the README's one-line summary
    assert [int(n) for n in re.findall(r"(?<![\d/])(\d+) [a-z]", summary)] == [code.value for code in ExitCode]


def test_docs_cli_md_is_up_to_date() -> None:
    """Regenerate with: python -m stt_frames.cli --help-markdown > docs/cli.md"""
    assert DOCS.read_text() == help_markdown(), "docs/cli.md is stale: python -m stt_frames.cli --help-markdown"
    documented = DOCS.read_text()
    for command in ("## stt-frames transcribe", "## stt-frames compare", "## stt-frames cache info"):
        assert command in documented
    for option in ("--max-cost", "--base-url", "--no-progress", "--language-column", "--older-than-days", "--json"):
        assert option in documented
    for option in ("--chunk-seconds", "--max-upload-mb", "--upload-format", "--timeout"):
        assert documented.count(f"\n  {option} ") == 2, option  # described for transcribe and for compare


def test_help_markdown_from_the_real_command_matches_the_docs() -> None:
    result = cli("--help-markdown", env={"COLUMNS": "60"})
    assert result.returncode == 0 and result.stdout == DOCS.read_text()


def test_the_cli_errors_exit_with_their_declared_status() -> None:
    from stt_frames.cli import ExitCode
    from stt_frames.errors import CLIError, MissingKeyError, STTError, UsageError

    assert issubclass(CLIError, STTError)
    assert (UsageError.status, MissingKeyError.status) == (ExitCode.USAGE, ExitCode.AUTH)


def test_base_dir_says_what_relative_paths_are_relative_to(server: str, tmp_path: Path) -> None:
    table = tmp_path / "elsewhere" / "list.csv"
    table.parent.mkdir()
    table.write_text("path\nen/flite_slt_00.wav\n")  # relative to data/, not to the CSV's folder
    out = tmp_path / "o.parquet"
    default = cli("transcribe", str(table), "--model", "fake/echo", "--base-url", server, "-o", str(out))
    assert default.returncode == 1 and "file not found" in default.stderr
    given = cli("transcribe", str(table), "--model", "fake/echo", "--base-url", server, "-o", str(out),
                "--base-dir", str(DATA))  # fmt: skip
    assert given.returncode == 0, given.stderr
    assert pd.read_parquet(out)["text"].str.startswith("echo ").all()
