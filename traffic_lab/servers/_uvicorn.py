"""Running the mock server and the proxy under uvicorn: in the foreground with a clean stop on
SIGINT / SIGTERM, or in a background thread.

uvicorn is configured to send nothing of its own: no ``server`` or ``date`` header (recorded
ones are replayed), no rewriting of the scope from ``X-Forwarded-*`` headers, no access log.
Its HTTP/1.1 protocol is extended by one thing ASGI lacks, the reason phrase: the app passes it
in a private header (see :data:`REASON_EXTENSION`), which the connection takes out again.

The same seam lets it send statuses 600 to 999, which HTTP/1.1 and h11 allow and some servers
use (999 is seen in the wild): uvicorn looks every status up in a table of 100-599 and drops
the connection on a miss, and has no option to widen it. So an ``http.response.start`` with
such a status goes to uvicorn as a placeholder 500 carrying the real status (and phrase) in
private headers, and the connection writes the real status line; the app sends the real
status as usual, and other servers see it unchanged.
"""

from __future__ import annotations

import asyncio
import errno
import http
import signal
import socket
import threading
from types import FrameType, TracebackType
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._asgi import REASON_EXTENSION, REASON_HEADER, ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BackgroundServer",
    "ServerBindError",
    "bind_socket",
    "run_server",
    "uvicorn_config",
]


class ServerBindError(OSError):
    """The server could not listen on the address asked for (in use, not ours...)."""


# The real status of a response uvicorn is handed as _PLACEHOLDER_STATUS (see the module doc).
_STATUS_HEADER = b"x-traffic-lab-status"
_PLACEHOLDER_STATUS = 500
_UVICORN_STATUSES = range(100, 600)  # what uvicorn's status-phrase table holds


class _ReasonConnection:
    """An ``h11.Connection`` that takes a response's reason phrase from :data:`REASON_HEADER`,
    and its status from ``_STATUS_HEADER`` when there is one."""

    __slots__ = ("_conn",)

    def __init__(self, conn: h11.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def send(self, event: Any) -> bytes | None:
        if type(event) is h11.Response:
            raw = event.headers.raw_items()
            if any(name.lower() in (REASON_HEADER, _STATUS_HEADER) for name, _ in raw):
                status = event.status_code
                reason = b""
                kept = []
                for name, value in raw:
                    lowered = name.lower()
                    if lowered == REASON_HEADER:
                        reason = value
                    elif lowered == _STATUS_HEADER:
                        status = int(value)
                    else:
                        kept.append((name, value))
                event = h11.Response(
                    status_code=status,
                    headers=kept,
                    reason=reason,
                    http_version=event.http_version,
                )
        data: bytes | None = self._conn.send(event)
        return data


def _advertising(app: Any) -> ASGIApp:
    async def with_reason(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = scope.get("extensions")
            if extensions is None:
                extensions = scope["extensions"] = {}
            extensions[REASON_EXTENSION] = {}
            send = _any_status(send)
        await app(scope, receive, send)

    return with_reason


def _any_status(send: Send) -> Send:
    """``send``, passing a status uvicorn has no phrase for (600-999) as a placeholder that
    :class:`_ReasonConnection` turns back into the real status line."""

    async def send_any_status(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            if status not in _UVICORN_STATUSES:
                headers = list(message.get("headers", ()))
                if not any(name.lower() == REASON_HEADER for name, _ in headers):
                    headers.append((REASON_HEADER, _standard_phrase(status)))
                headers.append((_STATUS_HEADER, str(int(status)).encode("ascii")))
                message = {**message, "status": _PLACEHOLDER_STATUS, "headers": headers}
        await send(message)

    return send_any_status


def _standard_phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class _ReasonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, able to send the reason phrase an app asks for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only when uvicorn's internals are as expected: otherwise the extension is not
        # advertised, apps send no private header, and responses get standard phrases.
        conn = getattr(self, "conn", None)
        if isinstance(conn, h11.Connection) and callable(getattr(self, "app", None)):
            self.conn = cast(h11.Connection, _ReasonConnection(conn))
            self.app = _advertising(self.app)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port).

    Bound before the server runs, so a port in use fails here with a clear error, and clients
    may connect at once: they wait in the backlog until the server accepts.

    Parameters
    ----------
    host
        Address to listen on; the default keeps the server on this machine.
    port
        TCP port; 0 lets the system pick a free one (``sock.getsockname()`` says which).

    Returns
    -------
    socket.socket
        Bound and listening, ready for :func:`run_server` or :class:`BackgroundServer`.

    Raises
    ------
    ServerBindError
        The address is in use or cannot be bound; the message says which.

    Examples
    --------
    >>> from traffic_lab.servers import bind_socket
    >>> sock = bind_socket("127.0.0.1", 0)
    >>> sock.getsockname()[0]
    '127.0.0.1'
    >>> sock.close()
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerBindError(f"cannot listen on {host}:{port}: unknown host ({exc})") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerBindError(f"cannot listen on {host}:{port}: the port is in use") from exc
        raise ServerBindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def uvicorn_config(
    app: ASGIApp, *, graceful_timeout: float | None = 30.0, **options: Any
) -> uvicorn.Config:
    """The uvicorn configuration traffic_lab's servers run with.

    Parameters
    ----------
    app
        The ASGI app.
    graceful_timeout
        Seconds to let requests in flight finish on shutdown (``None``: as long as they take).
    **options
        Any ``uvicorn.Config`` argument, overriding traffic_lab's settings: the reason-phrase
        protocol, no ``server``/``date`` headers, no proxy-header rewriting, no access log,
        lifespan on, no websockets.

    Returns
    -------
    uvicorn.Config
    """
    settings: dict[str, Any] = {
        "http": _ReasonH11Protocol,
        "ws": "none",
        "lifespan": "on",
        "log_config": None,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        "date_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": graceful_timeout,
    }
    settings.update(options)
    return uvicorn.Config(app, **settings)


class _SignalLatch:
    """Our own SIGINT/SIGTERM handlers, installed under uvicorn's.

    uvicorn catches both signals itself, shuts down gracefully, then restores the handlers it
    found and raises the signal again "to trigger the expected behaviour". Found handlers that
    only take note let the caller finish its own cleanup (flush and close a capture) instead of
    dying in ``KeyboardInterrupt`` or at the default SIGTERM action.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _note(self, sig: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = sig

    def __enter__(self) -> _SignalLatch:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_server(app: ASGIApp, sock: socket.socket, **options: Any) -> int | None:
    """Serve ``app`` on ``sock`` in the foreground until SIGINT or SIGTERM, then stop cleanly.

    On a signal the server stops accepting connections, lets requests in flight finish (up to
    ``graceful_timeout`` seconds; a second Ctrl-C cuts that short), runs the app's lifespan
    shutdown, and returns, leaving the process alive for the caller's own cleanup (flushing
    and closing a capture): neither ``KeyboardInterrupt`` nor the default SIGTERM action
    interrupts it.

    Parameters
    ----------
    app
        The ASGI app (:class:`MockApp`, :class:`ProxyApp`, your own).
    sock
        A listening socket, from :func:`bind_socket`.
    **options
        Passed to :func:`uvicorn_config`.

    Returns
    -------
    int or None
        The number of the signal that stopped the server, ``None`` if it stopped otherwise.
    """
    server = uvicorn.Server(uvicorn_config(app, **options))
    with _SignalLatch() as latch:
        server.run(sockets=[sock])
    return latch.received


class BackgroundServer:
    """Serve an ASGI app under uvicorn in a background thread (for tests, notebooks, benchmarks).

    Parameters
    ----------
    app
        The ASGI app.
    host, port
        Where to listen (see :func:`bind_socket`); the socket is bound when the object is made.
    **options
        Passed to :func:`uvicorn_config`.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.servers import BackgroundServer, MockApp
    >>> stream = tl.MemoryStream()
    >>> stream.put(tl.Exchange("GET", "https://api.example/", status_code=200, response_body=b"hi"))
    >>> with BackgroundServer(MockApp(stream)) as server:
    ...     httpx.get(server.url + "/anything").text
    'hi'
    """

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> None:
        self._sock = bind_socket(host, port)
        self._server = uvicorn.Server(uvicorn_config(app, **options))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> BackgroundServer:
        """Start serving (clients may connect at once)."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])),
            name="traffic_lab-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish requests in flight, and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
