"""ASGI middleware that records every HTTP exchange an app serves into a Sink.

Pure ASGI 3 (no Starlette, no server-specific code): ``receive`` and ``send`` are wrapped and
every message passes through unchanged and at once, so streams stream as before. Recorded:

- the request as the server gives it: ``scope["headers"]`` in order with duplicates, the URL
  from ``scheme``, the ``Host`` header (else ``server``), ``root_path`` + ``raw_path`` (else
  ``path``) and ``query_string``, and the body *as the app reads it*;
- the response as the app sends it, with the standard reason phrase (ASGI has none); headers
  the server adds itself (``date``, ``server``, ``transfer-encoding``) are not seen. The body
  is the payload, not the chunked framing.

The exchange is put into the Sink once, when the app returns or raises (so Starlette's "send a
500, then re-raise" is recorded with that 500; background tasks delay the recording, not the
response); ``elapsed`` stops at the last body chunk. ``truncated=True`` when the client
disconnected (``http.disconnect``, or ``send`` raised) or the app stopped early; chunks sent
after a disconnect are not recorded. ``Sink.put`` runs on the event loop: a sink that does I/O
should buffer.

Limits: a client that goes away is noticed only when the server says so; a server that silently
drops later chunks, with an app that never calls ``receive`` again, is recorded as complete.
Trailers pass through but are not recorded. ``http.response.pathsend`` and
``http.response.zerocopysend`` are hidden from the app (their bytes never pass through
``send``). Lifespan and WebSocket scopes pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias
from urllib.parse import quote

from ..wire import header_value, reason_phrase
from ._recorder import DEFAULT_PORTS, PATH_SAFE, PendingExchange, RecordingMiddleware, header_tuple

__all__ = ["RecordingASGIMiddleware"]

_Scope: TypeAlias = MutableMapping[str, Any]
_Message: TypeAlias = MutableMapping[str, Any]
_Receive: TypeAlias = Callable[[], Awaitable[_Message]]
_Send: TypeAlias = Callable[[_Message], Awaitable[None]]
_ASGIApp: TypeAlias = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

# Extensions whose body bytes never pass through ``send``: hidden so that the app sends bodies.
_HIDDEN_EXTENSIONS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


class RecordingASGIMiddleware(RecordingMiddleware[_ASGIApp]):
    """Record every HTTP exchange an ASGI app serves into a Sink (server-side ``RecordTo``).

    The client receives exactly what the app sends; a redacted copy of each exchange goes to
    the Sink (``put`` runs on the event loop) when the app has finished with it. Arguments:
    the ASGI 3 app, the Sink, then ``redactor`` (default :class:`~traffic_lab.Redactor`;
    ``Redactor.disabled()`` opts out) and ``tags`` (labels added to every exchange).

    Examples
    --------
    >>> import asyncio, httpx, traffic_lab as tl
    >>> from traffic_lab.middleware import RecordingASGIMiddleware
    >>> async def app(scope, receive, send):
    ...     await send({"type": "http.response.start", "status": 200,
    ...                 "headers": [(b"content-type", b"text/plain")]})
    ...     await send({"type": "http.response.body", "body": b"hello"})
    >>> stream = tl.MemoryStream()
    >>> recorded_app = RecordingASGIMiddleware(app, stream, tags={"service": "demo"})
    >>> async def main():
    ...     transport = httpx.ASGITransport(app=recorded_app)
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
    ...         return (await c.get("/hi", params={"x": 1})).text
    >>> asyncio.run(main())
    'hello'
    >>> ex = stream[0]
    >>> ex.url, ex.status_code, ex.reason_phrase, ex.response_body, dict(ex.tags)
    ('http://testserver/hi?x=1', 200, 'OK', b'hello', {'service': 'demo'})

    With Starlette, add it as a middleware (``Middleware(RecordingASGIMiddleware, sink=...)``)
    or wrap the whole app; it does not import Starlette.
    """

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        scope = _app_scope(scope)
        cycle = _Cycle(scope, receive, send)
        try:
            await self.app(scope, cycle.receive, cycle.send)
        except BaseException as exc:
            self._record(
                cycle.capture, exc, complete=cycle.complete, disconnected=cycle.disconnected
            )
            raise
        self._record(cycle.capture, complete=cycle.complete, disconnected=cycle.disconnected)


class _Cycle:
    """One request/response cycle: tees ``receive`` and ``send`` into a :class:`PendingExchange`."""

    __slots__ = ("_receive", "_send", "capture", "complete", "disconnected", "head", "trailers")

    def __init__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        method = str(scope.get("method", "GET"))
        headers = header_tuple(scope.get("headers") or ())
        version = f"HTTP/{scope.get('http_version', '1.1')}"
        self.capture = PendingExchange(method, _url(scope, headers), headers, version)
        self._receive = receive
        self._send = send
        self.head = method.upper() == "HEAD"
        self.complete = False
        self.disconnected = False
        self.trailers = False

    async def receive(self) -> _Message:
        message = await self._receive()
        kind = message.get("type")
        if kind == "http.request":
            body = message.get("body")
            if body:
                self.capture.request_chunks.append(bytes(body))
        elif kind == "http.disconnect" and not self.complete:
            # After a complete response, servers answer every receive with http.disconnect;
            # only before completion does it mean the client went away.
            self.disconnected = True
        return message

    async def send(self, message: _Message) -> None:
        kind = message.get("type")
        capture = self.capture
        if kind == "http.response.start":
            headers = message.get("headers") or ()
            if not isinstance(headers, list | tuple):
                # A one-shot iterable: read it once here and hand the server the same pairs.
                headers = list(headers)
                message = {**message, "headers": headers}
            pairs = header_tuple(headers)
            await self._send_through(message)
            status = int(message["status"])
            capture.status_code = status
            capture.reason_phrase = reason_phrase(status)
            capture.response_headers = pairs
            self.trailers = bool(message.get("trailers", False))
            return
        await self._send_through(message)
        if self.disconnected or self.complete:
            return
        if kind == "http.response.body":
            body = message.get("body")
            # HTTP forbids a body in a response to HEAD; servers drop what the app sends.
            if body and not self.head:
                capture.response_chunks.append(bytes(body))
            if not message.get("more_body", False) and not self.trailers:
                self._completed()
        elif kind == "http.response.trailers" and not message.get("more_trailers", False):
            self._completed()

    async def _send_through(self, message: _Message) -> None:
        try:
            await self._send(message)
        except OSError:
            # ASGI spec 2.4: send raises an OSError once the client has gone away.
            self.disconnected = True
            raise

    def _completed(self) -> None:
        self.complete = True
        self.capture.mark_finished()


def _app_scope(scope: _Scope) -> _Scope:
    """The scope the app sees: the server's own, unless it must change (then a shallow copy)."""
    changes: dict[str, Any] = {}
    headers = scope.get("headers")
    if headers is not None and not isinstance(headers, list | tuple):
        # A one-shot iterable: read it once here and give the app the same pairs.
        changes["headers"] = list(headers)
    extensions = scope.get("extensions")
    if extensions and not _HIDDEN_EXTENSIONS.isdisjoint(extensions):
        changes["extensions"] = {
            name: value for name, value in extensions.items() if name not in _HIDDEN_EXTENSIONS
        }
    return {**scope, **changes} if changes else scope


def _url(scope: _Scope, headers: tuple[tuple[bytes, bytes], ...]) -> str:
    scheme = str(scope.get("scheme") or "http")
    host = (header_value(headers, "host") or b"").decode("latin-1")
    if not host:
        host = _server_host(scope.get("server"), scheme)
    root_path = str(scope.get("root_path") or "")
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes) and raw_path.startswith(b"/"):
        path = raw_path.decode("latin-1")
        quoted_root = quote(root_path.encode("utf-8"), safe=PATH_SAFE)
        if root_path and not path.startswith(quoted_root):
            path = quoted_root + path
    else:
        decoded = str(scope.get("path") or "/")
        # Servers since ASGI 3 include root_path in path; older ones did not.
        if root_path and not decoded.startswith(root_path):
            decoded = root_path + decoded
        path = quote(decoded.encode("utf-8"), safe=PATH_SAFE)
    query = scope.get("query_string") or b""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    return f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"


def _server_host(server: object, scheme: str) -> str:
    if not isinstance(server, list | tuple) or len(server) != 2 or server[1] is None:
        # No server address (or a Unix socket path): nothing better than a placeholder.
        return "localhost"
    host, port = str(server[0]), int(server[1])
    if ":" in host:
        host = f"[{host}]"
    return host if DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
