"""Notebook 01 in a real JupyterLab and a real browser: Run All, then click the mode toggle.

nbval checks what the kernel computes; this checks what a student sees. It found that the toggle
once rendered without its table (ipywidgets' interactive() does not display return values).

Needs Debian's chromium (/usr/bin/chromium; `.ci/run` installs it) and the playwright package
(the ``browser`` extra); skipped, with the reason, without them. It never downloads a browser.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "01-share-anon-page-without-allocating.ipynb"
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyterlab(tmp_path):
    """A JupyterLab server on a copy of the notebooks, with all its state in tmp_path."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at /usr/bin/chromium (Debian: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (extra 'browser')")
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns(".src", ".ipynb_checkpoints"))
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        env[var] = str(tmp_path / var.lower())
    port, token = _free_port(), uuid.uuid4().hex
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
           "--LabApp.news_url=None", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start within 60 s")
                time.sleep(0.3)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _figures(text: str) -> dict[str, int]:
    """{'B': 64, '(charged to no cgroup)': 0, ...} from the widget table's text."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(?:memcg|ksm)?\s*(\(charged to no cgroup\)|\w+)\s+(\d+)\s*$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def test_run_all_then_toggle_the_mode(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/workspaces/{uuid.uuid4().hex}/tree/{NOTEBOOK}?reset&token={token}")
            page.wait_for_function("document.body.innerText.includes('Idle')", timeout=90_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            page.wait_for_selector(".widget-toggle-buttons button", timeout=120_000)
            output = page.locator(".widget-vbox .widget-output").first
            page.wait_for_function("document.querySelector('.widget-vbox .widget-output')"
                                   ".innerText.includes('charged pages')", timeout=60_000)
            upgrade = _figures(output.inner_text())
            assert upgrade["B"] == 64 and upgrade["(charged to no cgroup)"] == 0, upgrade
            page.click(".widget-toggle-buttons button:text-is('before: allocate')")
            page.wait_for_function("document.querySelector('.widget-vbox .widget-output')"
                                   ".innerText.match(/no cgroup\\)\\s+64/)", timeout=60_000)
            allocate = _figures(output.inner_text())
            assert allocate["B"] == 0 and allocate["(charged to no cgroup)"] == 64, allocate
            assert allocate["pages_shared"] == upgrade["pages_shared"] == 64
            page.wait_for_function("document.body.innerText.includes('Idle')", timeout=60_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                                  ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.all_inner_texts()
        finally:
            browser.close()
