"""``httpx2`` (the fork that newer SDKs build on) inside :func:`traffic_lab.capture`.

httpx2 has httpx's API under another name. While a capture runs, ``httpx2.Client`` and
``httpx2.AsyncClient`` get the same patch as httpx's (``_transport_for_url``); each request is
converted to an ``httpx.Request``, goes through the capture's transports (whose live leg is the
client's own httpx2 transport, with the original request and its extensions), and the response
comes back as an ``httpx2.Response`` over the same wire bytes. Loaded only when httpx2 is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import httpx2

from ..exchange import FROM_CACHE

if TYPE_CHECKING:
    from .capturing import Capture

__all__ = ["patch"]

_KEPT = ("http_version", "reason_phrase")


def _request(request: httpx2.Request) -> httpx.Request:
    return httpx.Request(
        request.method,
        str(request.url),
        headers=list(request.headers.raw),
        content=request.content or None,
    )


def _extensions(extensions: dict[str, Any]) -> dict[str, Any]:
    kept = {k: extensions[k] for k in _KEPT if k in extensions}
    if extensions.get(FROM_CACHE):
        kept[FROM_CACHE] = True
    return kept


class _Relay:
    """A response body passed through chunk by chunk, sync or async, closed with it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        self._inner.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Up(_Relay, httpx.SyncByteStream, httpx.AsyncByteStream):
    """An httpx2 response body, read as an httpx one (the live leg)."""


class _Down(_Relay, httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """An httpx response body (live, teed, or replayed), read as an httpx2 one."""


def _up(response: httpx2.Response) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=list(response.headers.raw),
        stream=_Up(response.stream),
        extensions=_extensions(response.extensions),
    )


def _down(response: httpx.Response) -> httpx2.Response:
    return httpx2.Response(
        response.status_code,
        headers=list(response.headers.raw),
        stream=_Down(response.stream),
        extensions=_extensions(response.extensions),
    )


class _Live(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The live leg of one request: the client's own httpx2 transport, sent the original."""

    def __init__(self, transport: Any, original: httpx2.Request) -> None:
        self._transport = transport
        self._original = original

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _up(self._transport.handle_request(self._original))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return _up(await self._transport.handle_async_request(self._original))


class _Route(httpx2.BaseTransport):
    def __init__(self, capture: Capture, transport: httpx2.BaseTransport) -> None:
        self._capture = capture
        self._transport = transport

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        route = self._capture._route_once(_Live(self._transport, request))
        return _down(route.handle_request(_request(request)))


class _AsyncRoute(httpx2.AsyncBaseTransport):
    def __init__(self, capture: Capture, transport: httpx2.AsyncBaseTransport) -> None:
        self._capture = capture
        self._transport = transport

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        route = self._capture._aroute_once(_Live(self._transport, request))
        return _down(await route.handle_async_request(_request(request)))


def patch(
    swap: Callable[[type, str, Callable[[Any], Any]], None],
    active: Callable[[], Capture | None],
) -> None:
    """Swap httpx2's two ``_transport_for_url`` methods through ``swap`` (the capture's)."""

    def make(kind: type) -> Callable[[Any], Any]:
        def wrap(original: Callable[[Any, Any], Any]) -> Any:
            def _transport_for_url(self: Any, url: Any) -> Any:
                transport = original(self, url)
                capture = active()
                if capture is None or isinstance(transport, (_Route, _AsyncRoute)):
                    return transport
                return kind(capture, transport)

            _transport_for_url.__wrapped__ = original  # type: ignore[attr-defined]
            return _transport_for_url

        return wrap

    swap(httpx2.Client, "_transport_for_url", make(_Route))
    swap(httpx2.AsyncClient, "_transport_for_url", make(_AsyncRoute))
