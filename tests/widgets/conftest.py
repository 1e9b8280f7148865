"""Fixtures for the widget tests: a running demo API, and a Parquet capture recorded from it
plus a few hand-made exchanges (hostile text, binary and brotli bodies, a transport error)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import brotli
import httpx
import pytest

import traffic_lab as tl
from traffic_lab.demo import DemoAPI, generate_traffic
from traffic_lab.testing import make_exchange

HOSTILE = "<script>alert('x')</script>"
N_GENERATED = 160


@pytest.fixture(scope="session")
def demo_api() -> Iterator[DemoAPI]:
    with DemoAPI(slowness=0) as api:
        yield api


def special_exchanges() -> list[tl.Exchange]:
    """Exchanges the demo API does not make, one per rendering case."""
    at = datetime(2030, 1, 1, tzinfo=UTC)
    return [
        make_exchange(
            "POST",
            f"https://evil.example/search?q={HOSTILE}",
            request_headers={"X-Note": HOSTILE, "Content-Type": "text/html"},
            request_body=HOSTILE.encode(),
            response_headers={"Content-Type": "text/html", "X-Evil": HOSTILE},
            response_body=f"<html><body>{HOSTILE}</body></html>".encode(),
            started_at=at,
        ),
        make_exchange(
            url="https://files.example/blob.bin",
            response_headers={"Content-Type": "application/octet-stream"},
            response_body=bytes(range(256)) * 2,
            started_at=at + timedelta(seconds=1),
        ),
        make_exchange(
            url="https://files.example/data.json",
            response_headers={"Content-Type": "application/json", "Content-Encoding": "br"},
            response_body=brotli.compress(b'{"compressed": "with brotli", "n": [1, 2]}'),
            started_at=at + timedelta(seconds=2),
        ),
        make_exchange(
            url="https://files.example/page.json",
            response_headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            response_body=gzip.compress(b'{"compressed": "with gzip"}', mtime=0),
            started_at=at + timedelta(seconds=3),
        ),
        make_exchange(
            "POST",
            "https://payments.example/charges",
            status_code=None,
            started_at=at + timedelta(seconds=4),
        ),
    ]


@pytest.fixture(scope="session")
def capture(tmp_path_factory: pytest.TempPathFactory, demo_api: DemoAPI) -> Path:
    """A capture: the demo API's traffic, then the special exchanges (in 2030)."""
    folder = tmp_path_factory.mktemp("widgets") / "capture"
    with tl.ParquetStream(folder, flush_seconds=None) as stream:
        transport = tl.RecordingTransport(stream, httpx.HTTPTransport())
        with httpx.Client(transport=transport, base_url=demo_api.url) as client:
            generate_traffic(client, N_GENERATED, seed=3)
        for exchange in special_exchanges():
            stream.put(exchange)
    return folder


@pytest.fixture
def stream(capture: Path) -> tl.ParquetStream:
    return tl.ParquetStream(capture, create=False)
