"""``requests`` support: transport adapters that record into and replay from the same stores.

:class:`RecordingAdapter` and :class:`CachingAdapter` are ``requests.adapters.HTTPAdapter``
subclasses, mounted on a ``requests.Session``. Each request is turned into an ``httpx.Request``
and sent through the very transports httpx clients use (:class:`~traffic_lab.RecordingTransport`,
:class:`~traffic_lab.CaptureTransport`), whose live leg is requests' own ``HTTPAdapter.send``:
the same store, matcher, redaction, record modes, streaming (``stream=True``, ``iter_content``)
and error recording, one implementation. Responses come back as requests builds them
(``HTTPAdapter.build_response`` over a urllib3 response reading the wire bytes), so cookies,
encodings, redirects and ``raise_for_status`` behave as live. A transport error is recorded and
re-raised; replayed, it raises the same ``requests`` exception class again.

``requests`` is an optional extra (``traffic_lab[requests]``); nothing else imports this module.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..protocols import ReadWriteCache, Sink
from ..redaction import Redactor
from .cache import CaptureTransport, RecordMode
from .record import RecordingTransport

__all__ = ["CachingAdapter", "HTTPAdapter", "RecordingAdapter", "patched_send"]

#: requests' own send, kept before tl.capture() patches it: the live leg of every adapter here.
_SEND = HTTPAdapter.send
_CHUNK = 64 * 1024
_Send = tuple[Any, Any, Any, Any, Any]  # stream, timeout, verify, cert, proxies


def to_httpx_request(prepared: requests.PreparedRequest) -> httpx.Request:
    """The ``httpx.Request`` a prepared requests request stands for (a streamed body is read,
    and kept on ``prepared`` so that the live send sends the same bytes)."""
    body: Any = prepared.body
    if body is None:
        content = b""
    elif isinstance(body, str):
        content = body.encode("utf-8")
    elif isinstance(body, bytes | bytearray | memoryview):
        content = bytes(body)
    else:
        data = body.read() if hasattr(body, "read") else b"".join(_as_bytes(c) for c in body)
        content = _as_bytes(data)
        prepared.body = content
    return httpx.Request(
        prepared.method or "GET",
        prepared.url or "",
        headers=[(_latin1(k), _latin1(v)) for k, v in prepared.headers.items()],
        content=content or None,
    )


def _latin1(text: str | bytes) -> bytes:
    """A header name or value as bytes (http.client and urllib3 decode them as Latin-1)."""
    return text.encode("latin-1") if isinstance(text, str) else text


def _as_bytes(chunk: bytes | str) -> bytes:
    return chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


class _RawStream(httpx.SyncByteStream):
    """A live requests response's wire body (urllib3 reads it undecoded), for the recorder."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.raw.stream(_CHUNK, decode_content=False)

    def close(self) -> None:
        self._response.close()


class _AdapterTransport(httpx.BaseTransport):
    """The live leg: requests' ``HTTPAdapter.send`` with the caller's arguments, its response
    as an unread ``httpx.Response`` of wire bytes."""

    def __init__(self, adapter: HTTPAdapter, prepared: requests.PreparedRequest, args: _Send):
        self._adapter = adapter
        self._prepared = prepared
        self._args = args

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _, timeout, verify, cert, proxies = self._args
        live = _SEND(self._adapter, self._prepared, True, timeout, verify, cert, proxies)
        raw = live.raw
        version = {10: b"HTTP/1.0", 20: b"HTTP/2"}.get(getattr(raw, "version", 11), b"HTTP/1.1")
        return httpx.Response(
            live.status_code,
            headers=[(_latin1(k), _latin1(v)) for k, v in raw.headers.items()],
            stream=_RawStream(live),
            extensions={
                "http_version": version,
                "reason_phrase": (live.reason or "").encode("latin-1", "replace"),
            },
        )


class _BodyReader(io.RawIOBase):
    """A file over an ``httpx.Response``'s wire bytes, for urllib3 to read and decode; closing
    it (or reading to the end) closes the response, which is when a recording is stored."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.iter_raw()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.close()
                return 0
            self._pending = chunk
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._response.close()


class _Original:
    """What requests and urllib3 read from an ``http.client.HTTPResponse``: the headers as a
    message (requests takes cookies from ``msg``), the method, and whether it is closed."""

    def __init__(self, msg: http.client.HTTPMessage, body: _BodyReader, method: str | None):
        self.msg = msg
        self._body = body
        self._method = method

    def isclosed(self) -> bool:
        return self._body.closed

    def close(self) -> None:
        self._body.close()


def to_requests_response(
    adapter: HTTPAdapter, prepared: requests.PreparedRequest, response: httpx.Response
) -> requests.Response:
    """What requests' own adapter would have returned for ``response`` (unread)."""
    headers = urllib3.HTTPHeaderDict()
    message = http.client.HTTPMessage()
    for name, value in response.headers.raw:
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
        message[name.decode("latin-1")] = value.decode("latin-1")
    version = {"HTTP/1.0": 10, "HTTP/2": 20}.get(response.http_version, 11)
    body = _BodyReader(response)
    raw = urllib3.HTTPResponse(
        body=body,
        original_response=_Original(message, body, prepared.method),  # type: ignore[arg-type]
        headers=headers,
        status=response.status_code,
        version=version,
        reason=response.reason_phrase,
        preload_content=False,
        decode_content=True,
        request_method=prepared.method,
        request_url=prepared.url,
    )
    return adapter.build_response(prepared, raw)


def send_through(
    transport_for: Callable[[httpx.BaseTransport], httpx.BaseTransport],
    adapter: HTTPAdapter,
    prepared: requests.PreparedRequest,
    args: _Send,
) -> requests.Response:
    """Send ``prepared`` through ``transport_for(live leg)``; the response as requests gives it."""
    request = to_httpx_request(prepared)
    transport = transport_for(_AdapterTransport(adapter, prepared, args))
    out = to_requests_response(adapter, prepared, transport.handle_request(request))
    if not args[0]:
        out.content  # noqa: B018  (stream=False: read now, as HTTPAdapter does)
    return out


class _TransportAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` sending through a traffic_lab transport built over its live leg."""

    _over: Callable[[httpx.BaseTransport], httpx.BaseTransport]

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        return send_through(self._over, self, request, (stream, timeout, verify, cert, proxies))


class RecordingAdapter(_TransportAdapter):
    """Record every exchange a ``requests.Session`` sends into ``sink`` (http4k RecordTo).

    Mount it like any adapter: ``session.mount("https://", tl.RecordingAdapter(stream))``.
    ``redactor`` and ``tags`` as for :class:`~traffic_lab.RecordingTransport`; other keyword
    arguments go to ``HTTPAdapter`` (``max_retries``, ``pool_maxsize``...).

    Examples
    --------
    >>> import requests, traffic_lab as tl
    >>> from traffic_lab.testing import LoopbackServer
    >>> stream = tl.MemoryStream()
    >>> with LoopbackServer() as server, requests.Session() as session:
    ...     session.mount("http://", tl.RecordingAdapter(stream))
    ...     session.get(server.url + "/json?size=64").status_code
    200
    >>> len(stream)
    1
    """

    def __init__(
        self,
        sink: Sink,
        *,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        recording = RecordingTransport(
            sink, httpx.MockTransport(_never), redactor=redactor, tags=tags
        )
        self._over = recording.over


class CachingAdapter(_TransportAdapter):
    """Replay from and record into one store, under a record mode, for ``requests``.

    The requests twin of :class:`~traffic_lab.CaptureTransport` (same modes; default
    ``new_episodes``, http4k's ServeCachedFrom + RecordTo). Responses served from the store have
    ``response.raw`` reading the recorded wire bytes; a recorded connection error is raised
    again as the ``requests`` exception it was.

    Examples
    --------
    >>> import requests, traffic_lab as tl
    >>> from traffic_lab.testing import LoopbackServer
    >>> cache = tl.MemoryCache()
    >>> with LoopbackServer() as server, requests.Session() as session:
    ...     session.mount("http://", tl.CachingAdapter(cache))
    ...     first = session.get(server.url + "/json?size=64")
    ...     second = session.get(server.url + "/json?size=64")
    ...     hits = len(server.hits)
    >>> first.json() == second.json(), hits
    (True, 1)
    """

    def __init__(
        self,
        cache: ReadWriteCache,
        *,
        mode: RecordMode | str = RecordMode.NEW_EPISODES,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._capture = CaptureTransport(
            cache, httpx.MockTransport(_never), mode=mode, redactor=redactor, tags=tags
        )
        self._over = self._capture.over

    @property
    def mode(self) -> RecordMode:
        """The mode asked for."""
        return self._capture.mode

    @property
    def effective_mode(self) -> RecordMode:
        """What the mode resolved to (``once`` becomes ``new_episodes`` or ``none``)."""
        return self._capture.effective_mode


def _never(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("traffic_lab: an adapter template was asked to send")


def patched_send(original: Any) -> Any:
    """``HTTPAdapter.send`` while :func:`traffic_lab.capture` runs: through the active capture."""
    from .capturing import active_capture

    def send(
        self: HTTPAdapter,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        capture = active_capture()
        if capture is None:
            return original(self, request, stream, timeout, verify, cert, proxies)  # type: ignore[no-any-return]
        return send_through(
            capture._route_once, self, request, (stream, timeout, verify, cert, proxies)
        )

    send.__wrapped__ = original  # type: ignore[attr-defined]
    send.__doc__ = original.__doc__
    return send
