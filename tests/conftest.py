"""Shared fixtures: a real loopback server, and a harness that runs one test body against
``httpx.Client`` and ``httpx.AsyncClient`` with the matching transport twins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import LoopbackServer


@pytest.fixture(scope="session")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _SyncClient:
    """An async facade over httpx.Client so one async test body drives both kinds."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(url, **kwargs)

    async def stream_read(self, url: str, limit: int | None = None) -> bytes:
        """Stream a GET; read everything, or stop after ``limit`` raw bytes and close."""
        out = b""
        with self.client.stream("GET", url) as response:
            for chunk in response.iter_raw(10):
                out += chunk
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def aclose(self) -> None:
        self.client.close()


class _AsyncClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(url, **kwargs)

    async def stream_read(self, url: str, limit: int | None = None) -> bytes:
        out = b""
        async with self.client.stream("GET", url) as response:
            async for chunk in response.aiter_raw(10):
                out += chunk
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def aclose(self) -> None:
        await self.client.aclose()


class Harness:
    """Builds transports and clients of one kind ("sync" or "async")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.is_async = kind == "async"

    def http(self, **kwargs: Any) -> Any:
        return (
            httpx.AsyncHTTPTransport(**kwargs) if self.is_async else httpx.HTTPTransport(**kwargs)
        )

    def mock(self, handler: Any) -> httpx.MockTransport:
        return httpx.MockTransport(handler)

    def recording(self, sink: Any, transport: Any = None, **kwargs: Any) -> Any:
        cls = tl.AsyncRecordingTransport if self.is_async else tl.RecordingTransport
        return cls(sink, transport if transport is not None else self.http(), **kwargs)

    def caching(self, source: Any, transport: Any = None) -> Any:
        cls = tl.AsyncCachingTransport if self.is_async else tl.CachingTransport
        return cls(source, transport if transport is not None else self.http())

    def capture(self, cache: Any, transport: Any = None, **kwargs: Any) -> Any:
        cls = tl.AsyncCaptureTransport if self.is_async else tl.CaptureTransport
        return cls(cache, transport if transport is not None else self.http(), **kwargs)

    def client(self, transport: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return _AsyncClient(httpx.AsyncClient(transport=transport, **kwargs))
        return _SyncClient(httpx.Client(transport=transport, **kwargs))

    def raw_client(self, **kwargs: Any) -> Any:
        return httpx.AsyncClient(**kwargs) if self.is_async else httpx.Client(**kwargs)


@pytest.fixture(params=["sync", "async"])
def harness(request: pytest.FixtureRequest) -> Harness:
    return Harness(request.param)
