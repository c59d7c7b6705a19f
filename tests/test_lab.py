"""The series the way a learner meets it in `make lab`: JupyterLab on
127.0.0.1 in headless Chromium opens notebook 02 (the shortest), runs
every cell through the UI (Run > Run All Cells) in smoke mode, and shows
its figures without an error. The notebook runs on a copy (the committed
one keeps no outputs); a screenshot goes to build/site-shots/."""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _site import SHOTS, browser, require_browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02_parameters_vs_resnet.ipynb"
#: Smoke mode takes seconds alone; the shared CI machine may be slow.
RUN_TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 over a copy of notebook 02, with
    D2L_DENSENET_MODE=smoke; yields (url, token, folder)."""
    require_browser()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, D2L_DENSENET_MODE="smoke",
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               IPYTHONDIR=str(tmp_path / "ipython"))
    # every cell in the page (no windowing), so the test sees them all
    tracker = (tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
               / "tracker.jupyterlab-settings")
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    # the package under test, also where it is not installed (a worktree)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
           "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
           "--ServerApp.allow_root=True", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=work)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while f"127.0.0.1:{port}/lab" not in log.read_text():
            assert proc.poll() is None, "JupyterLab exited:\n" + \
                log.read_text()[-3000:]
            assert time.monotonic() < deadline, \
                "JupyterLab did not start in 120 s:\n" + log.read_text()
            time.sleep(0.5)
        yield url, token, work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _menu(page, menu: str, item: str) -> None:
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel",
                 has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel",
                 has_text=re.compile(f"^{re.escape(item)}$")).click()


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt",
        "els => els.map(e => e.textContent.trim())")


@pytest.mark.notebook
def test_notebook_02_runs_all_cells_in_jupyterlab(lab, tmp_path):
    url, token, work = lab
    saved = work / NOTEBOOK.name
    with browser(tmp_path / "chromium") as context:
        page = context.new_page()
        page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
        n_code = sum(c["cell_type"] == "code" for c in json.loads(
            NOTEBOOK.read_text(encoding="utf-8"))["cells"])
        # all cells loaded and the kernel started (status bar: "| Idle")
        page.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-CodeCell')"
            f".length == {n_code}", timeout=120_000)
        page.locator(".jp-StatusBar-TextItem",
                     has_text=re.compile(r"\| Idle$")).first.wait_for(
                         timeout=120_000)
        _menu(page, "Run", "Run All Cells")
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            prompts = _prompts(page)
            status = page.locator(
                ".jp-StatusBar-TextItem",
                has_text=re.compile(r"\| (Idle|Busy)")).first.inner_text()
            if status.endswith("Idle") and all(re.fullmatch(r"\[\d+\]:", p)
                                        for p in prompts):
                break
            assert time.monotonic() < deadline, \
                f"not finished in {RUN_TIMEOUT} s: {status}, {prompts}"
            time.sleep(1)
        images = page.locator(".jp-OutputArea .jp-RenderedImage img")
        assert images.count() >= 1, "no figure rendered"
        images.first.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-RenderedImage img')]"
            ".every(i => i.complete && i.naturalWidth > 0)")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "lab-02-figure.png"))
        # what the UI shows as an error: a traceback in an output area
        errors = page.locator(".jp-OutputArea-output", has_text=re.compile(
            r"Traceback \(most recent call last\)|Error: "))
        assert errors.count() == 0, errors.first.inner_text()[:2000]
        before = saved.stat().st_mtime
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 60
        while saved.stat().st_mtime == before:
            assert time.monotonic() < deadline, "Ctrl+S did not save"
            time.sleep(0.5)
    nb = json.loads(saved.read_text(encoding="utf-8"))
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"], \
        [o for o in outputs if o["output_type"] == "error"][0]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "smoke" in text, "the kernel did not run in smoke mode"


@pytest.mark.parametrize("ci", ["true", ""])
def test_without_chromium_skips_outside_ci_and_fails_under_ci(
        monkeypatch, ci):
    import _site
    monkeypatch.setattr(_site, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(_site.shutil, "which", lambda name, **kw: None)
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="make browser-deps"):
        _site.require_browser()
