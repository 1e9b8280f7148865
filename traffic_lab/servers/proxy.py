"""A recording reverse proxy: an ASGI app that passes traffic to an upstream and records it.

Each request goes to the upstream base URL (path and query appended) through
:class:`~traffic_lab.AsyncRecordingTransport`, so a redacted copy of the exchange is recorded as
the proxy's upstream client saw it (``Host`` is the upstream's, the body in wire form). The
caller gets the response streamed through, less hop-by-hop headers, with the upstream's reason
phrase where the server can send one. An unreachable upstream answers 502 (504 for a timeout)
with a JSON body naming the error, recorded with that error; a caller that goes away stops the
upstream read, and the exchange is recorded ``truncated``. No ``httpx.AsyncClient`` in between:
it would share a cookie jar between callers and add headers of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import httpx

from ..protocols import Sink
from ..redaction import Redactor
from ..transports.record import AsyncRecordingTransport
from ..wire import response_reason
from ._asgi import (
    Receive,
    Scope,
    Send,
    error_answer,
    lifespan,
    read_body,
    request_target,
    send_prepared,
    send_start,
    strip_hop_by_hop,
    wire_headers,
)

__all__ = ["PROXY_HEADER", "ProxyApp"]

#: Header on the proxy's own answers (``upstream-error``), never on the upstream's.
PROXY_HEADER = b"x-traffic-lab-proxy"
# Request headers the proxy sets itself for the upstream connection.
_OWN_REQUEST_HEADERS = frozenset({b"host", b"content-length", b"expect"})


class ProxyApp:
    """An ASGI reverse proxy to ``upstream`` that records every exchange into ``sink``.

    ``upstream`` is the base URL (``"https://api.example/v2"``) the request's path and query
    are appended to; ``sink`` any ``put(exchange)``; ``redactor`` scrubs the recorded copy
    (default :class:`~traffic_lab.Redactor`); ``tags`` are stored with every exchange;
    ``timeout`` bounds the upstream connect and each read and write; ``transport`` is the
    upstream transport (default ``httpx.AsyncHTTPTransport()``, no retries).

    Examples
    --------
    >>> import asyncio, httpx, traffic_lab as tl
    >>> from traffic_lab.servers import ProxyApp
    >>> upstream = httpx.MockTransport(lambda request: httpx.Response(200, text=request.url.path))
    >>> stream = tl.MemoryStream()
    >>> app = ProxyApp("https://api.example", stream, transport=upstream)
    >>> async def main():
    ...     transport = httpx.ASGITransport(app)
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as c:
    ...         return (await c.get("/users/1")).text
    >>> asyncio.run(main()), [ex.url for ex in stream.exchanges()]
    ('/users/1', ['https://api.example/users/1'])
    """

    def __init__(
        self,
        upstream: str,
        sink: Sink,
        *,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base = httpx.URL(upstream)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"upstream must be an http(s) URL with a host, got {upstream!r}")
        if base.query or base.fragment:
            raise ValueError(f"upstream must not have a query or fragment, got {upstream!r}")
        self.upstream = base
        self._prefix = base.raw_path.rstrip(b"/")
        self._origin = f"{base.scheme}://".encode("ascii") + base.netloc
        inner = transport if transport is not None else httpx.AsyncHTTPTransport(retries=0)
        self._transport = AsyncRecordingTransport(sink, inner, redactor=redactor, tags=tags)
        self._timeout = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        #: Requests answered, by outcome: ``forwarded`` (any upstream status) or ``failed``.
        self.counts: dict[str, int] = {"forwarded": 0, "failed": 0}

    def __repr__(self) -> str:
        return f"<ProxyApp to {str(self.upstream)!r}>"

    async def aclose(self) -> None:
        """Close the upstream connections."""
        await self._transport.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send, self.aclose)
            return
        if kind != "http":
            return  # websockets are not proxied; the server closes the connection
        body = await read_body(receive)
        request = self._upstream_request(scope, body)
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TransportError as exc:
            # Recorded with its error by the recording transport; the caller gets a gateway error.
            self.counts["failed"] += 1
            status, headers, payload = error_answer(
                f"httpx.{type(exc).__name__}",
                str(exc),
                (PROXY_HEADER, b"upstream-error"),
                upstream=str(self.upstream),
            )
            headers = wire_headers(scope["method"], status, headers, payload)
            await send_prepared(scope, send, status, headers, payload)
            return
        self.counts["forwarded"] += 1
        await self._stream_back(scope, receive, send, response)

    def _upstream_request(self, scope: Scope, body: bytes) -> httpx.Request:
        headers = [
            (name, value)
            for name, value in strip_hop_by_hop(scope["headers"])
            if name.lower() not in _OWN_REQUEST_HEADERS
        ]
        url = httpx.URL((self._origin + self._prefix + request_target(scope)).decode("latin-1"))
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        request.extensions = {"timeout": self._timeout}
        return request

    async def _stream_back(
        self, scope: Scope, receive: Receive, send: Send, response: httpx.Response
    ) -> None:
        text = response_reason(response)
        headers = strip_hop_by_hop(response.headers.raw)
        if response.is_stream_consumed:
            # An upstream transport that answers with a read response (httpx.MockTransport,
            # handlers): it is recorded already; its wire bytes are still in its ByteStream.
            stream = response.stream
            body = b"".join(stream) if isinstance(stream, httpx.SyncByteStream) else b""
            await send_prepared(scope, send, response.status_code, headers, body, text)
            return
        complete = False
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                await send_start(scope, send, response.status_code, headers, text)
                async for chunk in response.aiter_raw():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                complete = True
            except httpx.TransportError:
                # The upstream failed mid-body: recorded with its error and truncated; the
                # caller's response cannot be completed, so the server closes the connection.
                pass
            finally:
                # Closing the response records the exchange (truncated if the caller left):
                # before the caller sees the end, so a caller that got a whole response
                # always finds it recorded.
                with anyio.CancelScope(shield=True):
                    await response.aclose()
            group.cancel_scope.cancel()
        if complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cancel_on_disconnect(receive: Receive, scope: Any) -> None:
    """Stop streaming when the caller goes away (the server says ``http.disconnect``)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
