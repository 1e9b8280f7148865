"""The real-browser test: Voila serves notebook 04 with a live kernel, Debian's chromium (driven
by Playwright) filters by status, selects an exchange and replays it, and the detail pane and
the diff appear. The screenshot is kept in ``test-artifacts/``.

This test fails, never skips, when voila, playwright or /usr/bin/chromium is missing: CI
installs them (``.ci/run``), and a skipped browser test would hide a broken notebook surface.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04-browse-with-widgets.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"voila did not answer {url} within {timeout} s")


@pytest.fixture(scope="session")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Voila serving notebook 04 on a free port of 127.0.0.1; stopped by PID at the end."""
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.fail("voila is not installed: pip install voila (CI installs it)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (CI installs it)")
    work = tmp_path_factory.mktemp("voila")
    env = dict(os.environ)
    for name, folder in {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "MPLCONFIGDIR": "mpl",
        "TMPDIR": "tmp",
    }.items():
        (work / folder).mkdir()
        env[name] = str(work / folder)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env.pop("TRAFFIC_LAB_CAPTURE", None)
    port = free_port()
    log = (work / "voila.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            str(NOTEBOOK),
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--show_tracebacks=True",
        ],
        cwd=NOTEBOOK.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, timeout=60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        # SIGTERM: voila shuts its kernels down and removes its connection files.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def expected_5xx() -> int:
    from traffic_lab.frames import read_capture

    statuses = read_capture(ROOT / "data" / "sample-capture", columns=["response_status"])
    return int((statuses.response_status >= 500).sum())


def test_filter_select_replay_in_chromium(voila_url, expected_5xx):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright (CI installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="tl-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 2800},
        )
        # Voila asks a CDN for an icon font; there is no internet: fail it fast.
        context.route("https://**/*", lambda route: route.abort())
        try:
            page = context.new_page()
            page.goto(voila_url)
            status = page.locator(".tl-status select")
            status.wait_for(timeout=120_000)  # the kernel runs the whole notebook first
            header = page.locator(".tl-header")
            expect(header).to_contain_text("of 3,000 exchanges match", timeout=30_000)

            status.select_option(label="5xx")
            expect(header).to_contain_text(f"{expected_5xx} of 3,000 exchanges match")
            table = page.locator(".tl-table-view")
            expect(table.locator("td.tl-s5").first).to_have_text("500")

            rows = page.locator(".tl-row-select select")
            expect(rows.locator("option")).to_have_count(min(expected_5xx, 25) + 1)
            rows.select_option(index=1)
            summary = page.locator(".tl-summary")
            expect(summary).to_contain_text("/api/reports/")
            expect(summary).to_contain_text("500")
            # The Response tab is open: the recorded body, pretty-printed JSON.
            response = page.locator(".tl-message", has_text="HTTP/1.1 500 Internal Server Error")
            expect(response.first).to_be_visible()
            expect(response.first).to_contain_text('"error": "report generation failed"')

            page.locator("button.tl-replay").click()
            replayed = page.locator(".tl-replay-status")
            expect(replayed).to_contain_text("replayed GET http://127.0.0.1:", timeout=30_000)
            expect(replayed).to_contain_text("500")
            diff = page.locator(".tl-diff-view")
            expect(diff).to_be_visible()
            expect(diff).to_contain_text("no differences")
            page.screenshot(path=str(ARTIFACTS / "voila-04-browse.png"), full_page=True)
        finally:
            context.close()
