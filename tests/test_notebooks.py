"""Run each notebook in notebooks/ top to bottom in a real kernel (this venv's python) and check its outputs.

The kernel inherits the environment: no OPENROUTER_* variable, so every notebook runs against the bundled
local server, and a cache directory private to this module (shared by its notebooks, so the comparison
reuses the quickstart's answers, as it would for a user).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("starlette", reason="the notebooks start the local server ('server' extra)")
pytest.importorskip("pocketsphinx", reason="the notebooks use the local pocketsphinx engines ('local' extra)")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 600  # seconds per cell: a transcription cell loads Whisper in every worker on its first run
OWN_KERNEL = "stt-frames-venv"

pytestmark = pytest.mark.slow


def kernel_name() -> str:
    """'python3' when it runs this interpreter; else a kernelspec for it, installed into this venv."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        argv0 = manager.get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        argv0 = ""
    # jupyter_client runs a bare "python" / "python3" / "python3.X" as sys.executable.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if argv0 in bare or (argv0 and Path(argv0).absolute() == Path(sys.executable).absolute()):
        return "python3"
    # A user-level 'python3' kernel runs some other python: install one for this venv under its own name.
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", OWN_KERNEL],
        check=True,
        capture_output=True,
    )
    return OWN_KERNEL


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook-cache")


@pytest.fixture(autouse=True)
def _notebook_env(monkeypatch: pytest.MonkeyPatch, shared_cache: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("STT_FRAMES_CACHE_DIR", str(shared_cache))
    monkeypatch.setenv("STT_FRAMES_NOTEBOOK_OUT", str(tmp_path))


def run_notebook(name: str) -> tuple[object, str]:
    """Execute notebooks/<name>.ipynb; return the notebook and all its outputs as one string."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), (
        f"{name} is committed with outputs; clear them"
    )
    probe = "import sys, stt_frames\nprint('KERNEL', sys.executable)\nprint('PACKAGE', stt_frames.__file__)"
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name=kernel_name(), resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            texts.append(output.get("text", ""))
            texts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    text = "\n".join(texts)
    assert f"KERNEL {sys.executable}" in text
    assert f"PACKAGE {ROOT / 'stt_frames' / '__init__.py'}" in text
    return nb, text


def test_quickstart(tmp_path: Path) -> None:
    _, text = run_notebook("01_quickstart")
    assert "offline engines:" in text  # the notebook says which engines run (Whisper when installed)
    assert "the weather is nice today" in text.lower()  # a transcript of data/en/flite_slt_00.wav
    assert "quickstart.parquet 32 rows" in text and "'errors': 0" in text
    assert "True    32" in text  # the second run came from the cache
    assert (tmp_path / "quickstart.parquet").is_file()


def test_compare_models() -> None:
    nb, text = run_notebook("02_compare_models")
    assert "offline engines:" in text and "local/pocketsphinx" in text and "wer" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the leaderboard figure
    assert "REF" in text and "the weather is nice today so we can eat outside" in text  # the alignment


def _whisper_tiny_served() -> bool:
    from stt_frames.server.engines import build_engines

    return not build_engines()["local/whisper-tiny.en"].missing_modules()


def test_try_a_file() -> None:
    nb, text = run_notebook("03_try_a_file")
    engine = "local/whisper-tiny.en" if _whisper_tiny_served() else "local/pocketsphinx"
    assert f"offline engine: {engine}" in text  # the notebook says which engine it starts on
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) == 1
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert views[0] in states
    combos = [s["state"] for s in states.values() if s["model_name"] == "ComboboxModel"]
    models = next(c for c in combos if c.get("description") == "Model")
    files = next(c for c in combos if c.get("description") == "File")
    assert "local/pocketsphinx" in models["options"] and models["value"] == engine
    real = (ROOT / "data" / "real" / "real.csv").read_text(encoding="utf-8").count("\n") - 1
    assert files["value"] == "en/flite_slt_00.wav" and len(files["options"]) == 32 + real  # data/ and data/real/
    assert "sk-or-" not in json.dumps(states)  # no OpenRouter key (file names such as disk-m-tady.ogg hold "sk-")
