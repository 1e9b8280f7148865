"""Fixtures for the store tests: exchange factories and a moto S3 server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

import traffic_lab as tl

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def exchange(i: int, *, status: int | None = 200, body: bytes | None = None, **kw) -> tl.Exchange:
    """Exchange number ``i``: GET /items/i, started i milliseconds after T0."""
    extra = (
        {"error": tl.exchange.RecordedError("httpx.ConnectError", "refused")}
        if status is None
        else {}
    )
    extra.update(kw)
    return tl.Exchange(
        "GET",
        f"https://api.example/items/{i}?page={i % 3}",
        request_headers=[(b"Host", b"api.example"), (b"Accept", b"*/*")],
        status_code=status,
        reason_phrase="OK" if status == 200 else "",
        response_headers=[(b"Content-Type", b"application/json")],
        response_body=body if body is not None else f'{{"id": {i}}}'.encode(),
        started_at=extra.pop("started_at", T0 + timedelta(milliseconds=i)),
        elapsed=timedelta(microseconds=1500 + i),
        **extra,
    )


@pytest.fixture
def make_exchange() -> Callable[..., tl.Exchange]:
    return exchange


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session; killed at the end."""
    # The moto beside this interpreter (a moto_server earlier on PATH may be another version).
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(server):
        server = shutil.which("moto_server") or "moto_server"
    port = _free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; the standard AWS variables point at moto. Returns the bucket name."""
    from pyarrow import fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    name = f"bucket-{_free_port()}"
    s3 = fs.S3FileSystem(
        endpoint_override=moto_endpoint,
        scheme="http",
        access_key="x",
        secret_key="x",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    s3.create_dir(name)
    return name
