"""What the site and browser tests share: the site built once per test
session in smoke mode, headless Chromium, a local HTTP server.

The site is built into build/site-test/ (a `make site` in build/site/ is
left alone) from the smoke-mode runs in build/run/smoke/: the notebook
tests write them (tests/test_notebooks.py). The build first waits for
the notebook tests of the same pytest session to end (conftest.py runs
them first), so a notebook is executed here only when no test of this
session runs it and no earlier run is fresh, or when its test failed.
The tests using the site are in one pytest-xdist group ("site"): one
worker builds it.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site-test"
SHOTS = ROOT / "build" / "site-shots"
CHROMIUM = "/usr/bin/chromium"
#: Chromium's switches: root needs --no-sandbox; nothing may reach the
#: network (this machine's is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
GROUP = pytest.mark.xdist_group("site")
#: This pytest session's token (conftest.py sets it, the same in every
#: pytest-xdist worker) and the smoke runs its notebook tests write.
SESSION = {"token": "", "runs": []}
#: How long the build waits for them at most, then executes what is
#: missing itself.
WAIT_S = 1800


def smoke_run(path: Path) -> Path:
    """Where the notebook test of ``path`` keeps its smoke-mode run."""
    from run_notebooks import edition_of, run_dir

    return run_dir("smoke", edition_of(path)) / path.name


def _ended(run: Path) -> Path:
    return run.with_name(run.name + ".ended")


def mark_ended(run: Path) -> None:
    """Say that this session's test of ``run`` has ended, passed or not."""
    run.parent.mkdir(parents=True, exist_ok=True)
    _ended(run).write_text(SESSION["token"], encoding="utf-8")


def wait_for_notebook_tests() -> None:
    """Until every notebook test of this session has ended (at most
    ``WAIT_S`` seconds in all)."""
    deadline = time.monotonic() + WAIT_S
    for run in SESSION["runs"]:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if _ended(run).read_text(encoding="utf-8") \
                        == SESSION["token"]:
                    break
            time.sleep(1)


def _missing(what: str) -> None:
    """Skip, naming what is missing; under CI (CI=true) fail instead: CI
    must run these tests (`make browser-deps` installs Chromium)."""
    message = (f"{what} is missing: run `make browser-deps` (Chromium and "
               f"a CJK font) and `pip install playwright`; browsers are "
               f"never downloaded (no `playwright install`)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: not skipped)")
    pytest.skip(message)


def require_browser() -> None:
    """Chromium and the playwright package, or skip/fail."""
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        _missing(f"Chromium ({CHROMIUM})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright")


def chromium_path() -> str:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which(
        "chromium")


@functools.cache
def built_site() -> dict:
    """``{"dir": build/site-test, "rows": [...], ...}``: the site, built
    in smoke mode once per test process."""
    import build_site
    from run_notebooks import locked

    src = ROOT / "build" / "site-test-src"
    wait_for_notebook_tests()
    with locked(SITE):
        laid = build_site.build("smoke", out=SITE, src=src)
    laid["dir"], laid["src"] = SITE, src
    return laid


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def browser(user_data_dir: Path, **context_options):
    """A fresh headless Chromium (Debian's, driven by playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=chromium_path(),
            headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, **context_options)
        try:
            yield context
        finally:
            context.close()
