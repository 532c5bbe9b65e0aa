"""The try-a-file notebook served by Voilà on loopback, driven in headless Chromium: pick a file, transcribe, read.

Needs Debian's Chromium at /usr/bin/chromium (CI installs it with apt-get), the ``playwright`` package (its
driver only: no browser is downloaded) and ``voila``; without them the test is skipped and says why.
The screenshot goes to test-artifacts/browser_try_a_file.png.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "03_try_a_file.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 30.0  # seconds for Voilà to answer
STEP_TIMEOUT_MS = 30_000  # per browser wait

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"
    for module, extra in (("playwright", "dev"), ("voila", "dev"), ("starlette", "server"), ("pocketsphinx", "local")):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module!r} is not installed (pip install -e '.[{extra}]')"
    return None


if (why := _missing()) is not None:
    pytest.skip(why, allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def jupyter_env(home: Path) -> dict[str, str]:
    """This process's environment (private cache, no OPENROUTER_*) with Jupyter's dirs under ``home``,
    and a 'python3' kernelspec that runs this interpreter first on the kernel search path."""
    kernel = home / "path" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (stt_frames venv)",
        "language": "python",
    }
    (kernel / "kernel.json").write_text(json.dumps(spec))
    env = dict(os.environ)
    env.update(
        JUPYTER_PATH=str(home / "path"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    return env


def _voila(notebook: Path, tmp_path: Path) -> Iterator[str]:
    """Serve ``notebook`` with Voilà on a free loopback port; yield its URL, stop it afterwards."""
    port = free_port()
    log = (tmp_path / "voila.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.token=",
        "--Voila.port_retries=0",
        "--show_tracebacks=True",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=jupyter_env(tmp_path / "jupyter"), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}:\n{(tmp_path / 'voila.log').read_text()}")
            try:
                if httpx.get(url + "api/status", timeout=1.0).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log_text = (tmp_path / "voila.log").read_text()
                pytest.fail(f"voila did not answer within {STARTUP_TIMEOUT:g} s:\n{log_text}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print((tmp_path / "voila.log").read_text()[-4000:])  # shown by pytest when the test fails


@pytest.fixture
def voila_url(tmp_path: Path) -> Iterator[str]:
    yield from _voila(NOTEBOOK, tmp_path)


@pytest.mark.timeout(90)
def test_transcribe_a_data_file_in_the_browser(voila_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser_try_a_file.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            # Hermetic: loopback only (the page would fetch icon fonts from a CDN otherwise).
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    else route.abort()
                ),
            )  # fmt: skip
            page.goto(voila_url, wait_until="domcontentloaded")
            button = page.get_by_role("button", name="Transcribe")
            expect(button).to_be_enabled()
            model = page.get_by_label("Model", exact=True)
            # filled from the local server's /models: notebook 03 starts on Whisper tiny.en when it is installed
            expect(model).to_have_value(re.compile(r"local/(whisper-tiny\.en|pocketsphinx)"))

            path = page.get_by_label("File", exact=True)
            path.fill("en/flite_rms_01.flac")  # "Please close the door when you leave the room."
            path.press("Enter")
            expect(page.locator("audio")).to_be_visible()
            button.click()

            text, usage = page.locator(".stt-text").first, page.locator(".stt-usage").first
            expect(usage).to_contain_text("from cache")
            expect(text).to_contain_text("door")
            expect(usage.locator(".stt-from")).to_have_text("no")
            expect(usage.locator(".stt-tokens")).to_have_text(re.compile(r"^\d+ / \d+ / \d+$"))
            expect(usage.locator(".stt-audio")).to_contain_text(" s")
            expect(page.locator(".stt-error")).to_have_count(0)
            expect(button).to_be_enabled()

            button.click()  # the same file again: from the cache
            expect(usage.locator(".stt-from")).to_have_text("yes")
            expect(text).to_contain_text("door")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


# -- the widget's states, stale output and errors, in a notebook made for the test ---------------------------

#: The widget after an A/B try, for the README (``make docs-images`` writes it to docs/ instead).
WIDGET_SHOT = "widget_ab.png"


def _notebook(path: Path, base_url: str) -> Path:
    """A notebook with two widgets: one on the local server at ``base_url``, one on a URL where nothing listens."""
    import nbformat

    cells = [
        "import stt_frames\n"
        f"stt_frames.TranscribeWidget(base_url={base_url!r}, data_dir={str(ROOT / 'data')!r}, "
        "model='local/pocketsphinx', path='en/flite_rms_01.flac')",
        f"stt_frames.TranscribeWidget(base_url='http://127.0.0.1:9/api/v1', data_dir={str(ROOT / 'data')!r})",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def widget_page_url(local_server: Callable[..., str], tmp_path: Path) -> Iterator[str]:
    yield from _voila(_notebook(tmp_path / "widget.ipynb", local_server()), tmp_path)


@pytest.mark.timeout(120)
def test_widget_states_errors_and_upload_in_the_browser(widget_page_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = Path(os.environ.get("STT_FRAMES_DOCS_DIR") or ARTIFACTS) / WIDGET_SHOT
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    else route.abort()
                ),
            )  # fmt: skip
            page.goto(widget_page_url, wait_until="domcontentloaded")
            expect(page.locator(".stt-widget")).to_have_count(2)
            live, dead = page.locator(".stt-widget").nth(0), page.locator(".stt-widget").nth(1)

            # the model list could not be fetched: the message names the URL, not "ConnectError"
            expect(dead).to_contain_text("Could not list the models from http://127.0.0.1:9/api/v1")
            expect(dead).to_contain_text("Could not reach http://127.0.0.1:9/api/v1")
            expect(dead).not_to_contain_text("unexpected")

            # A/B where model B fails: A is done, B failed, and the status does not say "Done"
            button = live.get_by_role("button", name="Transcribe")
            expect(live.get_by_label("Model", exact=True)).to_have_value("local/pocketsphinx")
            live.get_by_label("compare with a second model").check()
            model_b = live.get_by_label("Model B", exact=True)
            model_b.fill("nobody/nothing")
            model_b.press("Enter")
            button.click()
            expect(live.locator(".stt-state-failed")).to_have_count(1)
            expect(live.locator(".stt-state-done")).to_have_count(1)
            expect(live.locator(".stt-error")).to_have_count(1)
            expect(live.locator(".stt-error")).to_contain_text("(404)")
            expect(live.locator(".stt-error")).not_to_contain_text("rerun")
            expect(live).to_contain_text("nobody/nothing failed; local/pocketsphinx done in")
            expect(live).not_to_contain_text("Done in")
            expect(live.locator(".stt-text").first).to_contain_text("door")

            # the next try: the previous error is gone, both sides are done
            model_b.fill("fake/echo")
            model_b.press("Enter")
            button.click()
            expect(live.locator(".stt-state-done")).to_have_count(2)
            expect(live.locator(".stt-error")).to_have_count(0)
            expect(live).to_contain_text("Done in")
            expect(live.locator(".stt-text").nth(1)).to_contain_text("echo ")
            expect(button).to_be_enabled()
            live.screenshot(path=str(shot))

            # upload a file: the counter tells of it; choosing another file resets the counter
            upload = live.locator(".widget-upload")
            with page.expect_file_chooser() as chooser:  # the widget's <input type=file> is not in the DOM
                upload.click()
            chooser.value.set_files(str(ROOT / "data" / "en" / "flite_slt_00.wav"))
            path = live.get_by_label("File", exact=True)
            expect(path).to_have_value(re.compile(r"flite_slt_00\.wav$"))
            expect(live).to_contain_text("uploaded flite_slt_00.wav")
            expect(upload).to_have_text(re.compile(r"Upload \(0\)"))
            path.fill("en/flite_rms_01.flac")
            path.press("Enter")
            expect(upload).to_have_text(re.compile(r"Upload \(0\)"))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
