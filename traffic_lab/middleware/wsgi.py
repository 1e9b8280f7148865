"""WSGI middleware that records every HTTP exchange an app serves into a Sink.

Pure PEP 3333: ``wsgi.input``, ``start_response`` (and its ``write``) and the response iterable
are wrapped, every chunk passing through at once. Recorded:

- the URL from ``wsgi.url_scheme``, ``HTTP_HOST`` (else ``SERVER_NAME``/``SERVER_PORT``) and the
  raw target ``RAW_URI`` / ``REQUEST_URI`` when the server gives one (gunicorn, Werkzeug,
  uWSGI, mod_wsgi); else ``SCRIPT_NAME`` + ``PATH_INFO`` re-quoted (``/a%2Fb`` then reads as
  ``/a/b``) and ``QUERY_STRING``;
- headers rebuilt from ``HTTP_*``, ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` in conventional case
  (``X-Api-Key``). WSGI loses what the wire had: environ order, duplicates joined with commas,
  ``-`` and ``_`` alike, values some servers invent (``wsgiref``'s ``text/plain``);
- the body *as the app reads it*; ``SERVER_PROTOCOL`` as the HTTP version; the status line,
  headers and body the app produces (not the server's ``Date``, ``Server``, ``Content-Length``,
  ``Transfer-Encoding``).

The exchange is put into the Sink once: when the server has taken the last chunk, else on
``close()`` (not waiting for ``close()`` matters with Werkzeug, which drains the socket first);
an error from the app's own ``close()`` after a complete body propagates but is not recorded.
``close()`` before the end means the client went away: ``truncated=True`` with the chunks the
server took (a chunk counts once the next is asked for). Until the first non-empty chunk the
server has sent nothing, so an app that raises then is recorded with no status.

The app gets a shallow copy of the environ with ``wsgi.input`` wrapped. ``Sink.put`` runs in
the server's worker threads, possibly several at once. The response is wrapped, so a server's
``wsgi.file_wrapper`` (``sendfile``) fast path is not taken; the bytes are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import quote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ._recorder import DEFAULT_PORTS, PATH_SAFE, PendingExchange, RecordingMiddleware, header_tuple

__all__ = ["RecordingWSGIMiddleware"]

_OptExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)
_Write: TypeAlias = Callable[[bytes], object]

# Request header names whose conventional spelling is not Title-Case.
_IRREGULAR_NAMES = {"TE": "TE", "DNT": "DNT", "CONTENT_MD5": "Content-MD5"}


class RecordingWSGIMiddleware(RecordingMiddleware[WSGIApplication]):
    """Record every HTTP exchange a WSGI app serves into a Sink (server-side ``RecordTo``).

    The client receives exactly what the app produces; a redacted copy of each exchange goes
    to the Sink (``put`` runs in the server's worker thread) when the server closes the
    response. Arguments: the WSGI app, the Sink, then ``redactor`` (default
    :class:`~traffic_lab.Redactor`; ``Redactor.disabled()`` opts out) and ``tags`` (labels
    added to every exchange). See the module documentation for what WSGI cannot tell about
    the request as it was on the wire.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.middleware import RecordingWSGIMiddleware
    >>> def app(environ, start_response):
    ...     body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    ...     start_response("201 Created", [("Content-Type", "text/plain")])
    ...     return [b"got ", body]
    >>> stream = tl.MemoryStream()
    >>> transport = httpx.WSGITransport(app=RecordingWSGIMiddleware(app, stream))
    >>> with httpx.Client(transport=transport, base_url="http://testserver") as client:
    ...     client.post("/upload", content=b"abc").text
    'got abc'
    >>> ex = stream[0]
    >>> ex.method, ex.url, ex.request_body, ex.status_code, ex.reason_phrase, ex.response_body
    ('POST', 'http://testserver/upload', b'abc', 201, 'Created', b'got abc')

    With Flask: ``app.wsgi_app = RecordingWSGIMiddleware(app.wsgi_app, sink)``.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        capture = PendingExchange(
            str(environ.get("REQUEST_METHOD") or "GET"),
            _url(environ),
            _headers(environ),
            str(environ.get("SERVER_PROTOCOL") or "HTTP/1.0"),
        )
        cycle = _Cycle(self, capture, start_response)
        stream = environ.get("wsgi.input")
        if stream is not None:
            # A copy: the server's own environ (and its wsgi.input) stay as they were.
            environ = {**environ, "wsgi.input": _TeeInput(stream, capture.request_chunks)}
        try:
            result = self.app(environ, cycle.start_response)
        except BaseException as exc:
            cycle.finished(exc)
            raise
        if hasattr(result, "__len__"):
            # Servers use len() == 1 to compute Content-Length (wsgiref does): keep it working.
            return _SizedResponse(result, cycle)
        return _Response(result, cycle)


class _Cycle:
    """One request/response cycle: wraps ``start_response``/``write`` and records the outcome."""

    __slots__ = (
        "_middleware",
        "_start_response",
        "_write",
        "capture",
        "complete",
        "head",
        "recorded",
        "sent_body",
    )

    def __init__(
        self,
        middleware: RecordingMiddleware[Any],
        capture: PendingExchange,
        start_response: StartResponse,
    ) -> None:
        self._middleware = middleware
        self._start_response = start_response
        self._write: _Write | None = None
        self.capture = capture
        self.head = capture.method.upper() == "HEAD"
        self.complete = False
        self.recorded = False
        self.sent_body = False

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: _OptExcInfo | None = None,
        /,
    ) -> _Write:
        if not isinstance(headers, list):
            headers = list(headers)  # PEP 3333 asks for a list; read a one-shot iterable once
        pairs = header_tuple(headers)
        if exc_info is None:
            write = self._start_response(status, headers)
        else:
            write = self._start_response(status, headers, exc_info)
        code, _, reason = status.partition(" ")
        capture = self.capture
        try:
            capture.status_code = int(code)
        except ValueError:
            capture.status_code = None
        capture.reason_phrase = reason
        capture.response_headers = pairs
        self._write = write
        return self.write

    def write(self, data: bytes) -> object:
        if self._write is None:
            raise AssertionError("write() called before start_response()")
        result = self._write(data)
        self.commit(data)
        return result

    def commit(self, data: bytes) -> None:
        """The server has taken ``data`` for the client."""
        if data:
            self.sent_body = True
            # HTTP forbids a body in a response to HEAD.
            if not self.head:
                self.capture.response_chunks.append(bytes(data))

    def exhausted(self) -> None:
        self.complete = True
        self.capture.mark_finished()
        # The server has taken every chunk: record now. Waiting for close() would tie the
        # recording to the server, and Werkzeug's calls close() only after draining the
        # socket, which blocks on a keep-alive client until it hangs up.
        self.finished()

    def finished(self, exc: BaseException | None = None) -> None:
        """Record the exchange, once: the app raised ``exc``, or the server is done with it."""
        if self.recorded:
            return
        self.recorded = True
        capture, complete = self.capture, self.complete
        if exc is None:
            # A close before the end: the server stopped asking, nearly always a client that left.
            self._middleware._record(capture, complete=complete, disconnected=not complete)
            return
        # Before the first non-empty chunk (or the end of an empty body) nothing went out, and
        # the server answers with its own error response: record no status then.
        responded = capture.status_code is not None and (self.sent_body or complete)
        self._middleware._record(
            capture, exc, complete=complete, disconnected=False, responded=responded
        )


class _Response:
    """The app's response iterable, teed chunk by chunk; records on ``close()``."""

    __slots__ = ("_cycle", "_inner", "_iterator", "_pending")

    def __init__(self, inner: Iterable[bytes], cycle: _Cycle) -> None:
        self._inner = inner
        self._cycle = cycle
        self._iterator: Iterator[bytes] | None = None
        self._pending: bytes | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        cycle = self._cycle
        pending = self._pending
        if pending is not None:
            # The server asks for more: it has taken the previous chunk.
            self._pending = None
            cycle.commit(pending)
        try:
            iterator = self._iterator
            if iterator is None:
                iterator = self._iterator = iter(self._inner)
            chunk = next(iterator)
        except StopIteration:
            cycle.exhausted()
            raise
        except BaseException as exc:
            cycle.finished(exc)
            raise
        self._pending = chunk
        return chunk

    def close(self) -> None:
        inner_close = getattr(self._inner, "close", None)
        if inner_close is not None:
            try:
                inner_close()
            except BaseException as exc:
                self._cycle.finished(exc)
                raise
        self._cycle.finished()


class _SizedResponse(_Response):
    """A response whose iterable has a length (a list): servers may rely on ``len()``."""

    __slots__ = ()

    def __len__(self) -> int:
        inner: Any = self._inner
        return len(inner)


class _TeeInput:
    """``wsgi.input`` that keeps a copy of every byte the app reads; nothing is read ahead."""

    __slots__ = ("_chunks", "_inner")

    def __init__(self, inner: Any, chunks: list[bytes]) -> None:
        self._inner = inner
        self._chunks = chunks

    # Arguments are passed on exactly as given: some servers' streams take no size argument,
    # and read() with no size means "to the end" where read(-1) may not.
    def _keep(self, data: bytes) -> bytes:
        if data:
            self._chunks.append(bytes(data))
        return data

    def read(self, *args: Any) -> bytes:
        return self._keep(self._inner.read(*args))

    def readline(self, *args: Any) -> bytes:
        return self._keep(self._inner.readline(*args))

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._inner.readlines(*args)
        self._chunks.extend(bytes(line) for line in lines)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._inner:
            self._chunks.append(bytes(line))
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _native_bytes(text: str) -> bytes:
    # PEP 3333 native strings carry the wire bytes as latin-1; some servers decode UTF-8.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


@lru_cache(maxsize=512)
def _header_name(key: str) -> str:
    irregular = _IRREGULAR_NAMES.get(key)
    if irregular is not None:
        return irregular
    return "-".join(part.capitalize() for part in key.split("_"))


def _headers(environ: WSGIEnvironment) -> tuple[tuple[bytes, bytes], ...]:
    pairs: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            name = key[5:]
            if name in ("CONTENT_TYPE", "CONTENT_LENGTH") and environ.get(name):
                continue  # the CGI variable holds it; don't record it twice
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if not value:
                continue  # servers set these to "" when the client sent none
            name = key
        else:
            continue
        pairs.append((_header_name(name).encode("latin-1"), _native_bytes(value)))
    return tuple(pairs)


def _url(environ: WSGIEnvironment) -> str:
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = str(environ.get("SERVER_NAME") or "localhost")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = str(environ.get("SERVER_PORT") or "")
        if port and str(DEFAULT_PORTS.get(scheme)) != port:
            host = f"{host}:{port}"
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        # The request target as the client sent it (path and query, still percent-encoded).
        return f"{scheme}://{host}{raw}"
    decoded = str(environ.get("SCRIPT_NAME") or "") + str(environ.get("PATH_INFO") or "")
    path = quote(_native_bytes(decoded), safe=PATH_SAFE) or "/"
    query = str(environ.get("QUERY_STRING") or "")
    return f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"
