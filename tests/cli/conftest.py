"""The ``traffic-lab`` console script, run as a subprocess (as users run it), on captures with
known content; long-running commands (serve, record) are started and stopped with signals."""

from __future__ import annotations

import gzip
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import traffic_lab as tl
from traffic_lab.testing import make_exchange

TL = str(Path(sys.executable).with_name("traffic-lab"))
TIMEOUT = 60.0
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
ORDERS = b'{"orders":[{"id":1},{"id":2}]}'


def run(*args: object, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``traffic-lab ARGS`` to completion; stdout and stderr as text."""
    return subprocess.run(
        [TL, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_bytes(*args: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [TL, *map(str, args)], capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL
    )


class Running:
    """A long-running ``traffic-lab`` command (serve, record): started, then signalled."""

    def __init__(self, *args: object) -> None:
        self.process = subprocess.Popen(
            [TL, *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        #: What it printed up to the line saying where it listens.
        self.notes: list[str] = []
        self.url: str | None = None
        self._read_until_listening()

    def _read_until_listening(self) -> None:
        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.notes.append(line.rstrip("\n"))
                match = re.search(r" at (http://[\d.:]+); Ctrl-C to stop$", self.notes[-1])
                if match:
                    self.url = match.group(1)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        if reader.is_alive():
            self.process.kill()
            raise AssertionError(f"traffic-lab did not start listening: {self.notes}")

    @property
    def first_line(self) -> str:
        return self.notes[-1] if self.url else self.notes[0]

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Send ``sig``; the exit code and the rest of stderr."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        return self.process.returncode, err

    def wait(self) -> tuple[int, str]:
        _, err = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, err


@pytest.fixture
def running():
    """Start ``traffic-lab`` commands; any still running at the end are killed."""
    started: list[Running] = []

    def start(*args: object) -> Running:
        process = Running(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.communicate()


def sample_exchanges() -> list[tl.Exchange]:
    """Six exchanges with known times, sizes and outcomes (one of them a transport error)."""
    gz = gzip.compress(ORDERS, mtime=0)
    return [
        make_exchange(
            url="https://api.example.test/users/1",
            json={"id": 1, "name": "Ada"},
            started_at=T0,
            elapsed_ms=12.5,
            tags={"session": "s1"},
        ),
        make_exchange(
            url="https://api.example.test/orders?page=2",
            started_at=T0 + timedelta(seconds=1),
            elapsed_ms=20,
            response_body=gz,
            response_headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        ),
        make_exchange(
            "POST",
            "https://api.example.test/users",
            status_code=201,
            request_headers={"Content-Type": "application/json"},
            request_body=b'{"name":"Bob"}',
            json={"id": 2, "name": "Bob"},
            started_at=T0 + timedelta(seconds=2),
            elapsed_ms=30,
        ),
        make_exchange(
            url="https://api.example.test/img/1.png",
            response_body=PNG,
            response_headers={"Content-Type": "image/png"},
            started_at=T0 + timedelta(seconds=3),
            elapsed_ms=5,
        ),
        make_exchange(
            url="https://api.example.test/reports/9",
            status_code=500,
            json={"error": "failed"},
            started_at=T0 + timedelta(seconds=4),
            elapsed_ms=100,
        ),
        make_exchange(
            url="https://other.example.test/health",
            status_code=None,
            started_at=T0 + timedelta(seconds=5),
            elapsed_ms=1,
        ),
    ]


def write_capture(path: Path, exchanges: list[tl.Exchange], *, files: int = 1) -> Path:
    """A capture of ``exchanges`` in ``files`` Parquet files (one per writer session)."""
    per_file = -(-len(exchanges) // files)
    for start in range(0, len(exchanges), per_file):
        with tl.ParquetStream(path) as stream:
            for exchange in exchanges[start : start + per_file]:
                stream.put(exchange)
    return path


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """A read-only capture of :func:`sample_exchanges` (tests must not write to it)."""
    return write_capture(tmp_path_factory.mktemp("sample") / "capture", sample_exchanges())
