"""Test helpers for traffic_lab and for your own tests: factories and a loopback HTTP server.

>>> import httpx, traffic_lab as tl
>>> from traffic_lab.testing import LoopbackServer
>>> with LoopbackServer() as server, httpx.Client(base_url=server.url) as client:
...     client.get("/json").json()["ok"]
True
"""

from __future__ import annotations

import base64
import gzip
import json
import json as _json
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import httpx

from .exchange import Exchange, RecordedError

__all__ = [
    "LoopbackServer",
    "QuietHandler",
    "QuietServer",
    "ServerThread",
    "free_port",
    "json_handler",
    "make_exchange",
    "make_request",
    "make_response",
    "sample_json",
]


def make_request(
    method: str = "GET",
    url: str = "https://api.example.test/items/1",
    *,
    headers: Any = None,
    content: bytes | None = None,
    json: Any = None,
    params: Any = None,
) -> httpx.Request:
    """An ``httpx.Request`` with its body read, for tests."""
    request = httpx.Request(method, url, headers=headers, content=content, json=json, params=params)
    request.read()
    return request


def make_response(
    status_code: int = 200,
    *,
    headers: Any = None,
    content: bytes | None = None,
    json: Any = None,
    text: str | None = None,
) -> httpx.Response:
    """An ``httpx.Response`` for tests (body held as wire bytes)."""
    return httpx.Response(status_code, headers=headers, content=content, json=json, text=text)


def make_exchange(
    method: str = "GET",
    url: str = "https://api.example.test/items/1",
    *,
    status_code: int | None = 200,
    request_headers: Any = None,
    request_body: bytes = b"",
    response_headers: Any = None,
    response_body: bytes | None = None,
    json: Any = None,
    started_at: datetime | None = None,
    elapsed_ms: float = 12.5,
    error: RecordedError | None = None,
    tags: Mapping[str, str] | None = None,
    truncated: bool = False,
) -> Exchange:
    """An :class:`~traffic_lab.Exchange` with sensible defaults, for tests.

    >>> make_exchange(json={"id": 1}).response.json()
    {'id': 1}
    """
    if started_at is None:
        started_at = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    response: dict[str, Any] = {}
    if status_code is None:
        if error is None:
            error = RecordedError("httpx.ConnectError", "[Errno 111] Connection refused")
    else:
        headers = httpx.Headers(response_headers)
        if json is not None:
            body = _json.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            body = response_body or b""
        if body:
            headers.setdefault("Content-Length", str(len(body)))
        response = {
            "status_code": status_code,
            "reason_phrase": httpx.codes.get_reason_phrase(status_code),
            "response_headers": headers.raw,
            "response_body": body,
            "truncated": truncated,
        }
    return Exchange(
        method,
        url,
        request_headers=httpx.Headers(request_headers).raw if request_headers is not None else [],
        request_body=request_body,
        started_at=started_at,
        elapsed=timedelta(milliseconds=elapsed_ms),
        error=error,
        tags=tags,
        **response,
    )


def sample_json(size: int = 1024, seed: int = 0) -> dict[str, Any]:
    """A JSON-able document of about ``size`` bytes when serialised."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    doc: dict[str, Any] = {"ok": True, "seed": seed, "items": items}
    while len(json.dumps(doc)) < size:
        n = len(items)
        items.append({"id": n, "name": f"item-{n}-{rng.randrange(10**6)}", "price": n * 1.25})
    return doc


def json_handler(size: int = 1024, headers: int = 20) -> Callable[[httpx.Request], httpx.Response]:
    """A handler for ``httpx.MockTransport``: a ~``size``-byte JSON body and ``headers`` headers."""
    body = json.dumps(sample_json(size)).encode()
    extra = [(f"X-Header-{i}", f"value-{i}") for i in range(max(0, headers - 2))]
    pairs = [("Content-Type", "application/json"), *extra]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=pairs, content=body)

    return handler


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class QuietHandler(BaseHTTPRequestHandler):
    """A stdlib HTTP/1.1 request handler that logs nothing, sends without Nagle delays, and
    routes every method to ``_route``; the base of the test and demo servers' handlers."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _route(self) -> None:
        raise NotImplementedError

    def _send(
        self, status: int, body: bytes, headers: list[tuple[str, str]], reason: str | None = None
    ) -> None:
        self.send_response(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        if status in (204, 304) or status < 200:
            # These responses have no body, and 204 must not even announce one.
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET


class QuietServer(ThreadingHTTPServer):
    """A threaded stdlib HTTP server for :class:`QuietHandler` subclasses, with a ``lock``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 resets bursts of concurrent clients

    def __init__(self, address: tuple[str, int], handler: type[QuietHandler]) -> None:
        super().__init__(address, handler)
        self.lock = threading.Lock()


_JSON = [("Content-Type", "application/json")]


class _Handler(QuietHandler):
    server: _Server

    def _route(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        with self.server.lock:
            self.server.hits.append((self.command, self.path))
        segments = [s for s in parts.path.split("/") if s]
        name = segments[0] if segments else ""
        if "ms" in query:
            time.sleep(float(query["ms"]) / 1000)
        if name == "json":
            size = int(query.get("size", "1024"))
            payload = json.dumps(sample_json(size, int(query.get("seed", "0")))).encode()
            self._send(200, payload, _JSON)
        elif name in ("gzip", "deflate", "brotli"):
            payload = json.dumps(sample_json(int(query.get("size", "2048")))).encode()
            if name == "gzip":
                encoded, coding = gzip.compress(payload, mtime=0), "gzip"
            elif name == "deflate":
                encoded, coding = zlib.compress(payload), "deflate"
            else:
                import brotli

                encoded, coding = brotli.compress(payload), "br"
            self._send(200, encoded, [*_JSON, ("Content-Encoding", coding)])
        elif name == "bytes":
            n = int(query.get("n", "1024"))
            payload = random.Random(int(query.get("seed", "1"))).randbytes(n)
            self._send(200, payload, [("Content-Type", "application/octet-stream")])
        elif name == "stream":
            chunks = int(query.get("chunks", "5"))
            size = int(query.get("size", "100"))
            delay = float(query.get("delay_ms", "0")) / 1000
            sse = query.get("sse") == "1"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream" if sse else "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for i in range(chunks):
                    data = (f"{i:04d}" * (size // 4 + 1))[:size].encode()
                    if sse:
                        data = b"data: " + data + b"\n\n"
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    if delay:
                        time.sleep(delay)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        elif name == "redirect":
            n = int(segments[1]) if len(segments) > 1 else 1
            target = f"/redirect/{n - 1}" if n > 1 else "/json?size=64"
            self._send(302, b"", [("Location", target)])
        elif name == "status":
            code = int(segments[1]) if len(segments) > 1 else 200
            self._send(code, json.dumps({"status": code}).encode(), _JSON)
        elif name == "headers":
            self._send(
                200,
                b"dup",
                [
                    ("Content-Type", "text/plain"),
                    ("Set-Cookie", "a=1; Path=/"),
                    ("X-Dup", "first"),
                    ("Set-Cookie", "b=2; Path=/"),
                    ("X-Dup", "second"),
                    ("X-Latin", b"caf\xe9".decode("latin-1")),
                ],
            )
        elif name == "reason":
            self._send(299, b"ok", [], "Custom Reason")
        elif name == "echo":
            doc = {
                "method": self.command,
                "path": parts.path,
                "query": parts.query,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": base64.b64encode(body).decode(),
            }
            self._send(200, json.dumps(doc).encode(), _JSON)
        elif name == "close":
            # Hang up without a response: the client sees a protocol error.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._send(404, b'{"error":"not found"}', _JSON)

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()


class _Server(QuietServer):
    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.hits: list[tuple[str, str]] = []


class ServerThread:
    """A stdlib HTTP server serving from a background thread; the base of :class:`LoopbackServer`
    and :class:`traffic_lab.demo.DemoAPI`. A context manager: serving inside, stopped after."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LoopbackServer(ServerThread):
    """A real HTTP/1.1 server on 127.0.0.1 (stdlib, threaded) with routes for tests.

    Routes: ``/json?size=N&seed=S``, ``/gzip``, ``/deflate``, ``/brotli`` (encoded JSON),
    ``/bytes?n=N&seed=S`` (binary), ``/stream?chunks=N&size=S&delay_ms=D`` (chunked; with
    ``&sse=1`` each chunk is one server-sent event ``data: ...``), ``/redirect/N`` (N hops
    then ``/json``), ``/status/CODE``, ``/headers`` (duplicate and non-UTF-8 headers),
    ``/reason`` (status 299 "Custom Reason"), ``/echo`` (the request as JSON,
    body base64), ``/close`` (hangs up without answering). Any route takes ``?ms=N`` to sleep.
    ``hits`` lists ``(method, path)`` of every request served.
    """

    _server: _Server

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Server((host, port)))

    @property
    def hits(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each request served, in order."""
        with self._server.lock:
            return list(self._server.hits)
