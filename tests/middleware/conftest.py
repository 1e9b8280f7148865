"""Real servers for the middleware tests: uvicorn (ASGI) and wsgiref / Werkzeug (WSGI), each in a
background thread on a free 127.0.0.1 port, plus a Sink that tests can wait on."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import pytest
import uvicorn
from werkzeug.serving import make_server as werkzeug_make_server

import traffic_lab as tl

TIMEOUT = 10.0


class WaitingSink:
    """A MemoryStream that tests can wait on: servers record in their own thread, after the
    client may already have read the whole response."""

    def __init__(self) -> None:
        self.stream = tl.MemoryStream()
        self._cond = threading.Condition()

    def put(self, exchange: tl.Exchange) -> None:
        with self._cond:
            self.stream.put(exchange)
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self.stream)

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[tl.Exchange]:
        """The exchanges, once there are ``count`` of them (fails after ``timeout``)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.stream) >= count, timeout)
        exchanges = list(self.stream.exchanges())
        assert ok, f"expected {count} exchanges, got {exchanges}"
        return exchanges

    def one(self) -> tl.Exchange:
        """The single exchange recorded (fails if there are more)."""
        exchanges = self.wait_for(1)
        assert len(exchanges) == 1, exchanges
        return exchanges[0]

    def clear(self) -> None:
        self.stream.clear()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    """The middleware is pure ASGI: it runs under any event loop."""
    return request.param


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the server runs: clients connect at once and wait in the backlog, so
    # no test has to poll for "server started".
    sock.listen(128)
    return sock


@contextlib.contextmanager
def serve_asgi(app, *, lifespan: str = "off", **options) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields the base URL."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        loop="asyncio",
        lifespan=lifespan,
        log_config=None,
        log_level="critical",
        access_log=False,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


class _ServerHandler(ServerHandler):
    # wsgiref copies the process environment into every environ (the "httpoxy" problem): an
    # HTTP_PROXY variable would show up as a request header. Tests must not depend on it.
    os_environ: dict[str, str] = {}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass

    def handle(self):
        # WSGIRequestHandler.handle, with the handler class above.
        self.raw_requestline = self.rfile.readline(65537)
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        handler.run(self.server.get_app())


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextlib.contextmanager
def serve_wsgi(app, kind: str) -> Iterator[str]:
    """Serve ``app`` with ``kind`` ("wsgiref" or "werkzeug") in a thread; yields the base URL."""
    if kind == "wsgiref":
        server = _ThreadingWSGIServer(("127.0.0.1", 0), _QuietHandler)
        server.set_app(app)
    else:
        server = werkzeug_make_server("127.0.0.1", 0, app, threaded=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), f"{kind} did not stop"


def raw_request(base_url: str, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read the response until the server closes."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
