"""Real servers and clients for the server tests: traffic_lab's apps under uvicorn on 127.0.0.1,
spoken to with httpx and with curl."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

import pytest

import traffic_lab as tl

CURL = "/usr/bin/curl"
TIMEOUT = 10.0


@dataclass
class CurlResponse:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def curl(url: str, *args: str) -> CurlResponse:
    """GET ``url`` with curl (no decoding: the body as it came over the wire)."""
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--include", "--max-time", "10", *args, url],
        capture_output=True,
        timeout=TIMEOUT + 5,
        check=True,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return CurlResponse(lines[0], headers, body)  # type: ignore[arg-type]


class WaitingSink:
    """A MemoryStream that tests can wait on: the proxy records when a response closes."""

    def __init__(self) -> None:
        self.stream = tl.MemoryStream()
        self._cond = threading.Condition()

    def put(self, exchange: tl.Exchange) -> None:
        with self._cond:
            self.stream.put(exchange)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[tl.Exchange]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.stream) >= count, TIMEOUT)
        exchanges = list(self.stream.exchanges())
        assert ok, f"expected {count} exchanges, got {exchanges}"
        return exchanges


@pytest.fixture
def sink() -> WaitingSink:
    return WaitingSink()
