"""Fixtures for the frames tests: real Parquet captures, recorded from the demo shop API and the
loopback server, and a constructed capture with known values."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.demo import DemoAPI, generate_traffic

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
N_DEMO = 240


def exchange(
    i: int,
    *,
    host: str = "api.example",
    method: str = "GET",
    path: str | None = None,
    status: int | None = 200,
    elapsed_ms: float = 10.0,
    body: bytes | None = None,
    started_at: datetime | None = None,
    tags: dict[str, str] | None = None,
    content_type: str = "application/json",
    request_body: bytes = b"",
    truncated: bool = False,
) -> tl.Exchange:
    """Exchange number ``i``; started ``i`` seconds after T0 unless told otherwise."""
    extra = {}
    if status is None:
        extra["error"] = tl.exchange.RecordedError("httpx.ConnectError", "refused")
    body = body if body is not None else f'{{"id": {i}}}'.encode()
    return tl.Exchange(
        method,
        f"https://{host}{path if path is not None else f'/items/{i}'}",
        request_headers=[(b"Host", host.encode()), (b"Accept", b"*/*")],
        request_body=request_body,
        status_code=status,
        reason_phrase="OK" if status == 200 else "",
        response_headers=[(b"Content-Type", content_type.encode())] if status else [],
        response_body=body if status else b"",
        started_at=started_at if started_at is not None else T0 + timedelta(seconds=i),
        elapsed=timedelta(microseconds=round(elapsed_ms * 1000)),
        tags=tags,
        truncated=truncated,
        **extra,
    )


@pytest.fixture
def make() -> Callable[..., tl.Exchange]:
    return exchange


def write(folder: Path, exchanges, **options) -> Path:
    with tl.ParquetStream(folder, flush_seconds=None, **options) as stream:
        for ex in exchanges:
            stream.put(ex)
    return folder


@pytest.fixture
def write_capture_dir(tmp_path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def go(exchanges, **options) -> Path:
        return write(tmp_path / f"capture-{next(counter)}", exchanges, **options)

    return go


def record_demo(folder: Path, *, n: int = N_DEMO, redactor: tl.Redactor | None = None) -> Path:
    """Record ``generate_traffic`` against a DemoAPI (search and report delays scaled down)."""
    with (
        DemoAPI(slowness=0.2) as api,
        tl.ParquetStream(folder, flush_seconds=None) as stream,
        httpx.Client(
            base_url=api.url, transport=tl.RecordingTransport(stream, redactor=redactor)
        ) as client,
    ):
        assert generate_traffic(client, n) == n
    return folder


@pytest.fixture(scope="session")
def demo_capture_session(tmp_path_factory) -> Path:
    return record_demo(tmp_path_factory.mktemp("demo") / "capture")


@pytest.fixture
def demo_capture(demo_capture_session, tmp_path) -> Path:
    """A private copy of the recorded demo capture (tests may write beside it)."""
    copy = tmp_path / "demo"
    shutil.copytree(demo_capture_session, copy)
    return copy
