"""The README stays true: its Python blocks and shell commands run, offline, as the README says.

They run against the local server through ``OPENROUTER_BASE_URL`` with OpenRouter model ids swapped for
``fake/echo`` (the offline recipe the README gives), in a scratch folder that has ``data/`` and ``.venv``
(as a fresh clone has after ``make demo``). Shell lines run through bash exactly as written, with the
virtual environment NOT on ``PATH``: a bare ``stt-frames`` would be "command not found" for a newcomer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# OpenRouter ids (and, to keep the suite quick, the slower local model) become the instant fake engine
SWAPS = re.compile(r"openai/whisper-(?:large-v3|1)|local/pocketsphinx-fast")


def _blocks(lang: str) -> list[str]:
    """The bodies of the README's fenced blocks whose info string is ``lang``."""
    blocks, current, info = [], None, ""
    for line in README.splitlines():
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                if info == lang:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _offline(text: str) -> str:
    return SWAPS.sub("fake/echo", text)


@pytest.fixture(scope="module")
def offline_env(
    local_server: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    pytest.importorskip("starlette", reason="the local server needs the 'server' extra")
    work = tmp_path_factory.mktemp("readme")
    (work / "data").symlink_to(ROOT / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    env.update(OPENROUTER_BASE_URL=local_server(), STT_FRAMES_CACHE_DIR=str(work / "cache"), PYTHONPATH=str(ROOT))
    return work, env


def test_the_readme_opens_with_the_two_commands() -> None:
    first = _blocks("")[0]
    assert first.splitlines()[0].startswith("make demo") and first.splitlines()[1].startswith("make test")


def test_python_blocks_run(offline_env: tuple[Path, dict[str, str]]) -> None:
    work, env = offline_env
    blocks = _blocks("python")
    assert len(blocks) >= 5
    script = "\n\n".join(_offline(b) for b in blocks)
    script = "import matplotlib\nmatplotlib.use('Agg')\n" + script + "\nprint('README-OK', len(out))\n"
    # the alignment the README shows has something to show
    script += "assert results.loc[[worst], 'word_errors'].max() == results['word_errors'].max() > 0\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "README-OK" in proc.stdout
    assert (work / "transcripts.parquet").exists() and (work / "runs").is_dir()


def _shell_lines() -> list[str]:
    """Every command line of the README's plain fenced blocks, comments stripped."""
    lines = [ln.split("#")[0].strip() for b in _blocks("") for ln in b.splitlines()]
    return [ln for ln in lines if ln]


def _cli_commands() -> list[str]:
    return [ln for ln in _shell_lines() if ln.startswith(".venv/bin/stt-frames ") and " serve" not in ln]


def test_every_shell_line_runs_without_activating_the_venv() -> None:
    """Only make targets and .venv/bin/stt-frames: the README never asks the reader to activate .venv."""
    assert _cli_commands(), "no CLI command found in the README"
    for line in _shell_lines():
        assert line.startswith(("make ", ".venv/bin/stt-frames ")), line


def test_make_serve_runs_the_venv_command() -> None:
    dry = subprocess.run(["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and ".venv/bin/stt-frames serve" in dry.stdout, dry.stdout + dry.stderr


@pytest.mark.parametrize("command", _cli_commands())
def test_cli_commands_run(command: str, offline_env: tuple[Path, dict[str, str]]) -> None:
    work, env = offline_env
    if not (work / ".venv").exists():
        (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # what `make demo` made in the clone
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    proc = subprocess.run(
        ["bash", "-c", _offline(command)], cwd=work, env={**env, "PATH": path}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, (command, proc.stderr[-2000:])
