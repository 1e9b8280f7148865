"""The HTTP/1.1 server the mock server and the proxy run on: asyncio and h11, nothing else.

Not uvicorn, which cannot send a status above 599 nor a recorded reason phrase (docs/cli.md).
HTTP/1.1 and 1.0 with keep-alive, ``Expect: 100-continue``, the ASGI 3 ``http`` and
``lifespan`` scopes, and a clean stop; no header of its own (``server``, ``date``), no
``X-Forwarded-*`` rewriting. An app passes a reason phrase as
:data:`~traffic_lab.servers.REASON_EXTENSION` says; else the standard phrase goes out.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import threading
from typing import Any
from urllib.parse import unquote

import h11

from ..wire import reason_phrase
from ._asgi import REASON_EXTENSION, ASGIApp, Message

__all__ = ["KEEP_ALIVE", "BackgroundServer", "ServerBindError", "bind_socket", "run_server"]

log = logging.getLogger("traffic_lab.servers")

#: Seconds a connection may wait for its next request (and take to send its request head).
KEEP_ALIVE = 5.0
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class ServerBindError(OSError):
    """The server could not listen on the address asked for (in use, not ours...)."""


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port; ``getsockname()`` says
    which), for :func:`run_server` or :class:`BackgroundServer`. Bound before the server runs,
    so a port in use fails here, and clients may connect at once (they wait in the backlog).

    Raises :class:`ServerBindError` when the address is in use or cannot be bound.

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


class _Connection:
    """One client connection: requests one after another, each handed to the app."""

    def __init__(self, server: _Server, reader: asyncio.StreamReader, writer: Any) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER)
        self.idle = True  # waiting for a request: closed at once when the server stops
        self.gone = False  # the client went away
        self.sent = asyncio.Event()
        self._reset(b"GET")

    def _reset(self, method: bytes) -> None:
        """Ready for the next request and response."""
        self.method = method
        self.started = self.complete = self.body_read = self.bodiless = False
        self.sent.clear()

    async def run(self) -> None:
        try:
            while not self.server.stopping:
                self.idle = True
                self._reset(b"GET")
                async with asyncio.timeout(KEEP_ALIVE):
                    event = await self._next_event()
                if not isinstance(event, h11.Request):
                    break  # the client closed the connection
                self.idle = False
                await self._cycle(event)
                async with asyncio.timeout(KEEP_ALIVE):  # a request body the app left unread
                    while self.conn.their_state is h11.SEND_BODY and not self.gone:
                        await self._next_event()
                if self.gone or not (self.conn.our_state is self.conn.their_state is h11.DONE):
                    break  # HTTP/1.0, "Connection: close", or a response cut short
                self.conn.start_next_cycle()
        except TimeoutError:
            pass  # idle for too long, or too slow to send a request
        except h11.RemoteProtocolError as exc:
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self.started:
                await self._answer(exc.error_status_hint, f"bad request: {exc}")
        finally:
            self.writer.close()

    async def _next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.reader.read(65536)
            except ConnectionError:
                data = b""
            self.conn.receive_data(data)  # b"": the end of the stream

    async def _cycle(self, request: h11.Request) -> None:
        raw_path, _, query = bytes(request.target).partition(b"?")
        self._reset(bytes(request.method))
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.http_version.decode("ascii"),
            "method": self.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(bytes(name), bytes(value)) for name, value in request.headers],
            "client": self.writer.get_extra_info("peername")[:2],
            "server": self.writer.get_extra_info("sockname")[:2],
            "extensions": {REASON_EXTENSION: {}},
        }
        try:
            await self.server.app(scope, self.receive, self.send)
        except Exception:
            log.exception("the app failed on %s %s", scope["method"], scope["path"])
        if not self.started and self.conn.our_state is h11.SEND_RESPONSE:
            await self._answer(500, "Internal Server Error")

    async def _answer(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def receive(self) -> Message:
        if not self.body_read and not self.gone:
            if self.conn.client_is_waiting_for_100_continue and not self.started:
                await self._write(
                    self.conn.send(
                        h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                    )
                )
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError:  # cut short (or garbled) by the client
                self.gone = True
                return {"type": "http.disconnect"}
            if isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            self.body_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # The request is read: tell the app when the client goes away before the response ends.
        if not self.gone and not self.complete:
            reading = asyncio.ensure_future(self.reader.read(65536))
            sent = asyncio.ensure_future(self.sent.wait())
            try:
                await asyncio.wait((reading, sent), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sent.cancel()
                reading.cancel()
                if reading.done() and not reading.cancelled():
                    data = b"" if reading.exception() else reading.result()
                    if data:
                        self.conn.receive_data(data)  # a pipelined request: kept for later
                    else:
                        self.gone = True
            if not self.gone:
                await self.sent.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        expected = "http.response.body" if self.started else "http.response.start"
        if self.complete or kind != expected:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if kind == "http.response.start":
            status = message["status"]
            reason = message.get("reason") or reason_phrase(status).encode("latin-1")
            headers = list(message["headers"])
            if self.server.stopping:
                headers.append((b"connection", b"close"))
            # Built first: a bad header raises here, with nothing sent and a 500 still possible.
            event = h11.Response(status_code=status, headers=headers, reason=reason)
            self.started = True
            self.bodiless = self.method == b"HEAD" or status in (204, 304)
            await self._write(self.conn.send(event))
            return
        data = b""
        if message.get("body") and not self.bodiless:
            data = self.conn.send(h11.Data(data=message["body"])) or b""
        if not message.get("more_body", False):
            self.complete = True
            data += self.conn.send(h11.EndOfMessage()) or b""
            self.sent.set()
        await self._write(data)

    async def _write(self, data: bytes | None) -> None:
        if self.gone or not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            self.gone = True


class _Lifespan:
    """The ASGI lifespan protocol: startup before the first connection, shutdown after the last."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Future[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception:
            log.debug("the app does not take the lifespan protocol", exc_info=True)
        finally:
            self.outbox.put_nowait({"type": "lifespan.ended"})

    async def event(self, name: str) -> None:
        """Send ``lifespan.<name>`` and wait for the app's answer."""
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())
        if self.task.done():
            return
        await self.inbox.put({"type": f"lifespan.{name}"})
        answer = await self.outbox.get()
        if answer["type"] == f"lifespan.{name}.failed":
            raise RuntimeError(f"the app's lifespan {name} failed: {answer.get('message', '')}")


class _Server:
    def __init__(self, app: ASGIApp, sock: socket.socket, graceful_timeout: float | None) -> None:
        self.app = app
        self.sock = sock
        self.graceful_timeout = graceful_timeout
        self.stopping = False
        self.signal: int | None = None
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._connections: dict[_Connection, asyncio.Task[Any]] = {}

    async def serve(self, signals: bool = False) -> int | None:
        self.loop = asyncio.get_running_loop()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            lifespan = _Lifespan(self.app)
            await lifespan.event("startup")
            listener = await asyncio.start_server(self._connected, sock=self.sock)
            self.ready.set()
            await self._stop.wait()
            listener.close()
            await self._finish_in_flight()
            await lifespan.event("shutdown")
        finally:
            self.ready.set()
            if signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.loop.remove_signal_handler(sig)
        return self.signal

    async def _connected(self, reader: asyncio.StreamReader, writer: Any) -> None:
        if self.stopping:
            writer.close()
            return
        connection = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        try:
            await connection.run()
        except asyncio.CancelledError:
            pass  # cut short by a second stop: ends here, as asyncio's streams expect
        finally:
            del self._connections[connection]

    async def _finish_in_flight(self) -> None:
        """Close idle connections; let requests in flight finish, up to the graceful timeout
        (a second stop cuts it short, see :meth:`stop`); cancel what is left."""
        for connection in list(self._connections):
            if connection.idle:
                connection.writer.close()
        try:
            async with asyncio.timeout(self.graceful_timeout):
                while self._connections:
                    await asyncio.wait(list(self._connections.values()))
        except TimeoutError:
            self._cancel_all()
        await asyncio.gather(*self._connections.values(), return_exceptions=True)

    def _cancel_all(self) -> None:
        for task in self._connections.values():
            task.cancel()

    def _on_signal(self, sig: int) -> None:
        if self.signal is None:
            self.signal = sig
        self.stop()

    def stop(self) -> None:
        """Stop: at the first call, gracefully; at the second, at once (in the loop's thread)."""
        if self.stopping:
            self._cancel_all()
        self.stopping = True
        self._stop.set()

    def stop_threadsafe(self) -> None:
        self.ready.wait(10)
        if self.loop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.stop)
            except RuntimeError:  # the loop closed meanwhile: nothing to stop
                pass


def run_server(
    app: ASGIApp, sock: socket.socket, *, graceful_timeout: float | None = 30.0
) -> int | None:
    """Serve ``app`` on ``sock`` (from :func:`bind_socket`) in the foreground until SIGINT or
    SIGTERM, then stop cleanly; returns the number of the signal (``None`` if stopped otherwise).

    On a signal the server stops accepting, closes idle connections, lets requests in flight
    finish (up to ``graceful_timeout`` seconds, ``None``: no limit; a second Ctrl-C cuts that
    short), runs the app's lifespan shutdown, and returns, for the caller's own cleanup.

    The process is taken to be the server's: what exists when serving begins (the app's store,
    loaded) is moved out of the garbage collector's sight with ``gc.freeze()``.
    """
    server = _Server(app, sock, graceful_timeout)
    signals = threading.current_thread() is threading.main_thread()
    # What the app loaded (a cache's index, the exchanges of a MemoryCache) lives as long as the
    # server: frozen, the garbage collector never walks it again (a full collection over it
    # stalls every request in flight, for tens of milliseconds).
    gc.collect()
    gc.freeze()
    return asyncio.run(server.serve(signals))


class BackgroundServer:
    """Serve an ASGI app in a background thread (for tests, notebooks, benchmarks).

    The socket is bound (see :func:`bind_socket`) when the object is made; ``graceful_timeout``
    is how long :meth:`stop` lets requests in flight finish.

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
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        graceful_timeout: float | None = 30.0,
    ) -> None:
        self._sock = bind_socket(host, port)
        host, port = self._sock.getsockname()[:2]
        #: The base URL, e.g. ``http://127.0.0.1:54321``.
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._server = _Server(app, self._sock, graceful_timeout)
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundServer:
        """Start serving (clients may connect at once)."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()),
            name="traffic_lab-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish requests in flight, and wait for the thread."""
        if self._thread is not None:
            self._server.stop_threadsafe()
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.stop_threadsafe()  # a second stop cancels what is left
                self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
