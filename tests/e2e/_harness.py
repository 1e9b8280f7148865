"""What the real-browser tests share: Debian's chromium driven by Playwright (offline: any
request off loopback/file is aborted), and Voila serving one notebook on a free port of
127.0.0.1 with Jupyter's state kept in a temporary folder.

Missing voila, playwright or /usr/bin/chromium fails the test, never skips it: CI installs them
(``.ci/run``), and a skipped browser test would hide a broken notebook surface.
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
JUPYTER_DIRS = {
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "mpl",
    "TMPDIR": "tmp",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jupyter_env(work: Path, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment for a Jupyter process whose state lives under ``work``."""
    env = dict(os.environ)
    for name, folder in JUPYTER_DIRS.items():
        (work / folder).mkdir(parents=True, exist_ok=True)
        env[name] = str(work / folder)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env.pop("TRAFFIC_LAB_CAPTURE", None)
    env.update(extra)
    return env


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"the server did not answer {url} within {timeout} s")


@contextmanager
def _serve(
    module: str, args: list[str], cwd: Path, work: Path, env: dict[str, str]
) -> Iterator[str]:
    """``python -m module`` serving on a free port of 127.0.0.1 (``{port}`` in ``args``), its
    output in ``work/<module>.log``; yields the base URL once it answers, stops it (SIGTERM,
    so kernels shut down and connection files go) at the end."""
    try:
        __import__(module)
    except ImportError:
        pytest.fail(f"{module} is not installed: pip install {module} (CI installs it)")
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    with (work / f"{module}.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *(a.format(port=port) for a in args)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(url, process, timeout=60)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serve_voila(notebook: Path, work: Path, extra_env: Mapping[str, str] = {}) -> Iterator[str]:
    """Voila serving ``notebook`` (cwd: its folder) on 127.0.0.1; yields the page's URL."""
    args = [str(notebook), "--no-browser", "--port={port}", "--Voila.ip=127.0.0.1"]
    args.append("--show_tracebacks=True")
    with _serve("voila", args, notebook.parent, work, jupyter_env(work, extra_env)) as url:
        yield url


@contextmanager
def serve_jupyter(app: str, root: Path, work: Path) -> Iterator[str]:
    """JupyterLab (``app="lab"``) or Notebook 7 (``"notebook"``) on 127.0.0.1 serving
    ``root``, no token; yields the server's base URL."""
    module = {"lab": "jupyterlab", "notebook": "notebook"}[app]
    args = [
        "--no-browser",
        "--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with _serve(module, args, root, work, jupyter_env(work)) as url:
        yield url


@contextmanager
def chromium(viewport: Mapping[str, int] | None = None) -> Iterator[Any]:
    """A Playwright browser context on Debian's chromium; requests off loopback are aborted."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright (CI installs it)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (CI installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tl-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=dict(viewport or {"width": 1400, "height": 1000}),
        )
        # No internet here: anything that is not loopback or a local file fails fast.
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:", "http://127.0.0.1"))
                else route.abort()
            ),
        )
        try:
            yield context
        finally:
            context.close()
