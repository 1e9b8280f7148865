"""ASGI middleware that records every HTTP exchange an app serves into a Sink.

Pure ASGI 3: no Starlette, no server-specific code. The middleware wraps ``receive`` and ``send``
and passes every message through unchanged and at once, so streaming requests and responses
stream as before. What it sees and records:

- the request as the server gives it: ``scope["headers"]`` in order with duplicates (servers
  usually lowercase the names), the URL from ``scheme``, the ``Host`` header (else
  ``server``), ``root_path`` + ``raw_path`` (else ``path``) and ``query_string``, and the
  request body *as the app reads it* (a body the app never reads is not recorded);
- the response as the app sends it: status, headers and body chunks, with the standard reason
  phrase (ASGI has no reason phrase). Headers the server adds itself (``date``, ``server``,
  ``transfer-encoding``) are not visible to middleware and are not recorded. The body is the
  payload, not the chunked framing: the same bytes an httpx client reads as raw content.

When the exchange ends:

- the exchange is put into the Sink once, when the app returns (or raises), so an exception the
  app raises after sending a response (Starlette's error middleware sends a 500 and then
  re-raises) is recorded with that response. Background tasks the app runs after sending its
  response delay the recording, not the response. ``elapsed`` stops when the last body chunk
  was sent, not at recording;
- ``truncated=True`` when the response was not completed: the client disconnected (the server
  said ``http.disconnect``, or ``send`` raised) or the app stopped early. Chunks sent after a
  disconnect are not recorded (servers drop them);
- if the app raises, the exchange carries ``error`` and the exception propagates unchanged;
  with no response started the exchange has no status (the server answers with its own 500).

``Sink.put`` is synchronous and runs on the event loop, once per exchange. Memory stores are
cheap; a sink that does I/O should buffer and write from elsewhere. A Sink that raises does not
reach the app's code: the error propagates to the server after the app returned (the client
already has its response), or is added as a note to the app's own exception.

Limits: a client that goes away is noticed only when the server tells the app (``receive``
answers ``http.disconnect``, or ``send`` raises under ASGI spec 2.4); a server that silently
drops later chunks, with an app that never calls ``receive`` again, is recorded as complete.
Trailers (``http.response.trailers``) are passed through but not recorded. The zero-copy
extensions ``http.response.pathsend`` and ``http.response.zerocopysend`` are hidden from the
app (it falls back to ordinary body messages), because their bytes never pass through ``send``.
Lifespan and WebSocket scopes pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote

from ..wire import header_value, reason_phrase
from ._recorder import PendingExchange, Recorder, header_tuple

if TYPE_CHECKING:
    from ..protocols import Sink
    from ..redaction import Redactor

__all__ = ["RecordingASGIMiddleware"]

_Scope: TypeAlias = MutableMapping[str, Any]
_Message: TypeAlias = MutableMapping[str, Any]
_Receive: TypeAlias = Callable[[], Awaitable[_Message]]
_Send: TypeAlias = Callable[[_Message], Awaitable[None]]
_ASGIApp: TypeAlias = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 pchar plus "/": what may stay unescaped in a path we rebuild from a decoded one.
_PATH_SAFE = "/:@!$&'()*+,;="
# Extensions whose body bytes never pass through ``send``: hidden so that the app sends bodies.
_HIDDEN_EXTENSIONS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


class RecordingASGIMiddleware:
    """Record every HTTP exchange an ASGI app serves into a Sink (server-side ``RecordTo``).

    The client receives exactly what the app sends; a redacted copy of each exchange goes to
    the Sink when the app has finished with it. See the module documentation for what is
    recorded when a response is cut off or the app raises.

    Parameters
    ----------
    app
        The ASGI 3 application to wrap.
    sink
        Where exchanges go (any object with ``put(exchange)``); ``put`` runs on the event loop.
    redactor
        Applied to a copy of each exchange before the Sink sees it; default
        :class:`~traffic_lab.Redactor` (credentials scrubbed). ``Redactor.disabled()`` opts out.
    tags
        Labels added to every recorded exchange (a service name, a deployment...).

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

    def __init__(
        self,
        app: _ASGIApp,
        sink: Sink,
        *,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self._recorder = Recorder(sink, redactor, tags)

    @property
    def sink(self) -> Sink:
        """Where exchanges go."""
        return self._recorder.sink

    @property
    def redactor(self) -> Redactor:
        """The redactor applied before the Sink sees an exchange."""
        return self._recorder.redactor

    @property
    def tags(self) -> Mapping[str, str]:
        """Labels added to every recorded exchange."""
        return self._recorder.tags or {}

    def __repr__(self) -> str:
        return f"RecordingASGIMiddleware(app={self.app!r}, sink={self.sink!r})"

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        scope = _app_scope(scope)
        cycle = _Cycle(scope, receive, send)
        try:
            await self.app(scope, cycle.receive, cycle.send)
        except BaseException as exc:
            self._recorder.fail(
                cycle.capture, exc, complete=cycle.complete, disconnected=cycle.disconnected
            )
            raise
        self._recorder.finish(
            cycle.capture, complete=cycle.complete, disconnected=cycle.disconnected
        )


class _Cycle:
    """One request/response cycle: tees ``receive`` and ``send`` into a :class:`PendingExchange`."""

    __slots__ = ("_receive", "_send", "capture", "complete", "disconnected", "head", "trailers")

    def __init__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        method = str(scope.get("method", "GET"))
        headers = header_tuple(scope.get("headers") or ())
        self.capture = PendingExchange(method, _url(scope, headers), headers, _http_version(scope))
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


def _http_version(scope: _Scope) -> str:
    return f"HTTP/{scope.get('http_version', '1.1')}"


def _url(scope: _Scope, headers: tuple[tuple[bytes, bytes], ...]) -> str:
    scheme = str(scope.get("scheme") or "http")
    host = (header_value(headers, "host") or b"").decode("latin-1")
    if not host:
        host = _server_host(scope.get("server"), scheme)
    root_path = str(scope.get("root_path") or "")
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes) and raw_path.startswith(b"/"):
        path = raw_path.decode("latin-1")
        quoted_root = quote(root_path.encode("utf-8"), safe=_PATH_SAFE)
        if root_path and not path.startswith(quoted_root):
            path = quoted_root + path
    else:
        decoded = str(scope.get("path") or "/")
        # Servers since ASGI 3 include root_path in path; older ones did not.
        if root_path and not decoded.startswith(root_path):
            decoded = root_path + decoded
        path = quote(decoded.encode("utf-8"), safe=_PATH_SAFE)
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
    return host if _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
