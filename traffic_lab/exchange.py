"""The exchange record: one request, its response (or transport error) and metadata.

An :class:`Exchange` keeps the *wire form* of both messages as plain parts (method, URL, raw
header pairs, body bytes as they went over the wire, status, reason phrase, HTTP version) and
builds the ``httpx.Request`` / ``httpx.Response`` views from them on first access. Stores and the
Parquet writer work on the parts directly, so recording and bulk reads never pay for httpx
objects nobody looks at.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

import httpx

from .errors import InvalidExchangeError, RecordedTransportError, preview
from .wire import response_reason

__all__ = [
    "FROM_CACHE",
    "MAX_CHUNKS",
    "MAX_CHUNK_OFFSET_US",
    "MAX_ELAPSED",
    "REPLAYED",
    "Chunk",
    "ChunkedByteStream",
    "Exchange",
    "RecordedError",
    "check_chunks",
    "check_storable",
    "chunks_from_reads",
]

#: ``response.extensions`` key set on responses served from a store by lookup.
FROM_CACHE = "traffic_lab.from_cache"
#: ``response.extensions`` key set on responses served from a replay, in order.
REPLAYED = "traffic_lab.replayed"

_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})

#: The most chunks an exchange keeps (a capture is untrusted: a longer list is ignored on read).
MAX_CHUNKS = 100_000
#: The latest chunk offset an exchange keeps, in µs (one day).
MAX_CHUNK_OFFSET_US = 86_400 * 1_000_000


class Chunk(NamedTuple):
    """One piece of a streamed response body as the client read it.

    ``size`` is its length in bytes, ``offset_us`` when it arrived, in µs from the moment the
    response (its status and headers) came back.
    """

    size: int
    offset_us: int


def check_chunks(chunks: tuple[Chunk, ...], body_size: int) -> str | None:
    """Why ``chunks`` cannot describe a body of ``body_size`` bytes, or ``None`` if they can.

    Rules: 1 to :data:`MAX_CHUNKS` chunks; sizes are non-negative integers that sum to
    ``body_size``; offsets are integers from 0 to :data:`MAX_CHUNK_OFFSET_US`, never decreasing.

    >>> check_chunks((Chunk(2, 0), Chunk(3, 50_000)), 5) is None
    True
    >>> check_chunks((Chunk(2, 0), Chunk(3, 50_000)), 6)
    'chunk sizes sum to 5, not the body size 6'
    """
    if not 1 <= len(chunks) <= MAX_CHUNKS:
        return f"must be 1 to {MAX_CHUNKS} chunks, not {len(chunks)}"
    total = 0
    last = 0
    for chunk in chunks:
        if type(chunk) is not Chunk:
            return "must be Chunk(size, offset_us) values"
        size, offset = chunk
        if type(size) is not int or type(offset) is not int or size < 0:
            return f"invalid chunk {tuple(chunk)!r}"
        if not last <= offset <= MAX_CHUNK_OFFSET_US:
            return f"offsets must not decrease and stay in 0-{MAX_CHUNK_OFFSET_US} µs"
        last = offset
        total += size
    if total != body_size:
        return f"chunk sizes sum to {total}, not the body size {body_size}"
    return None


def chunks_from_reads(sizes: list[int], times: list[float], t0: float) -> tuple[Chunk, ...] | None:
    """The chunks of a streamed body read as ``sizes`` at ``times`` (``time.perf_counter()``
    values, the response back at ``t0``); ``None`` for a body read in one piece (what a
    non-streamed response is: it costs nothing to store)."""
    pieces = [(size, at) for size, at in zip(sizes, times, strict=True) if size]
    if len(pieces) < 2:
        return None
    last = 0
    chunks = []
    for size, at in pieces:
        # perf_counter is monotonic; max() keeps offsets ordered against float rounding.
        last = max(last, min(int((at - t0) * 1_000_000), MAX_CHUNK_OFFSET_US))
        chunks.append(Chunk(size, last))
    return tuple(chunks[:MAX_CHUNKS]) if len(chunks) <= MAX_CHUNKS else None


class ChunkedByteStream(httpx.ByteStream):
    """A body served in its recorded chunks, at once (sync and async).

    A ``ByteStream``: ``b"".join(stream)`` is the whole wire body, as for any replayed body.
    """

    def __init__(self, body: bytes, chunks: tuple[Chunk, ...]) -> None:
        super().__init__(body)
        self._body = body
        self.chunks = chunks
        self._sizes = [c.size for c in chunks]

    def pieces(self) -> Iterator[bytes]:
        """The body cut at the recorded chunk boundaries (empty chunks left out)."""
        body, at = self._body, 0
        for size in self._sizes:
            if size:
                yield body[at : at + size]
                at += size

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces():
            yield piece


_HeaderTuple = tuple[tuple[bytes, bytes], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedError:
    """A transport failure recorded in place of a response.

    ``type`` is the exception's qualified name (``"httpx.ConnectError"``), ``message`` its text.
    """

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> RecordedError:
        """Describe ``exc`` by its class's qualified name and its message."""
        klass = type(exc)
        module = klass.__module__
        # httpx defines its exceptions in a private module; name them as users import them.
        if module.startswith("httpx"):
            module = "httpx"
        return cls(type=f"{module}.{klass.__qualname__}", message=str(exc))

    def to_exception(self, request: httpx.Request | None = None) -> Exception:
        """Build the exception to raise again on replay.

        Only httpx's own exception classes are looked up (by name, in the ``httpx`` namespace),
        and ``requests``' (in ``requests.exceptions``, when the program has imported requests:
        what :class:`~traffic_lab.transports.requests_adapter.CachingAdapter` replays); any other
        recorded type becomes a :class:`~traffic_lab.errors.RecordedTransportError`. Nothing
        from a capture is imported or executed.
        """
        module, _, name = self.type.rpartition(".")
        klass = getattr(httpx, name, None) if module == "httpx" else None
        if isinstance(klass, type) and issubclass(klass, httpx.RequestError):
            return klass(self.message, request=request)
        if isinstance(klass, type) and issubclass(klass, httpx.TransportError):
            return klass(self.message)
        requests_errors = sys.modules.get("requests.exceptions")
        if module == "requests.exceptions" and requests_errors is not None:
            klass = getattr(requests_errors, name, None)
            base = requests_errors.RequestException
            if isinstance(klass, type) and issubclass(klass, base):
                return klass(self.message)  # type: ignore[no-any-return]
        return RecordedTransportError(f"recorded {self.type}: {self.message}")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_pairs(headers: Any) -> _HeaderTuple:
    if headers is None:
        return ()
    if isinstance(headers, httpx.Headers):
        return tuple(headers.raw)
    return tuple(httpx.Headers(headers).raw)


class Exchange:
    """One recorded request and its response, with start time, elapsed time, error and tags.

    Build one from httpx objects with :meth:`from_httpx`, or from wire parts with the constructor.
    ``request`` and ``response`` are httpx objects built on first access and then kept; use
    :meth:`new_response` for a fresh, unread response to serve (responses are single-use streams).

    Parameters
    ----------
    method, url
        The request line. ``url`` is the full URL as a string.
    request_headers, response_headers
        Raw ``(name, value)`` byte pairs, in wire order, duplicates kept.
    request_body, response_body
        Bodies as they went over the wire: a gzip response body stays gzip.
    status_code
        ``None`` for an exchange that failed in the transport (see ``error``).
    reason_phrase, http_version
        As received, e.g. ``"Not Found"`` and ``"HTTP/1.1"``.
    started_at
        When the request was sent (timezone-aware UTC).
    elapsed
        Time until the response body was complete (or the error was raised).
    error
        The transport failure, for exchanges that got no response.
    tags
        Free-form labels (session, test name...).
    truncated
        The client closed the response before reading all of it; ``response_body`` holds what
        was read. Caches never serve a truncated exchange.
    chunks
        How a streamed body arrived: its :class:`Chunk` sizes (summing to the body's length) and
        offsets from the response's start; ``None`` for a body that came in one piece. Replays
        serve the body in these chunks (see ``timing=`` on the transports).

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> request = httpx.Request("GET", "https://api.example/users/1")
    >>> response = httpx.Response(200, json={"id": 1})
    >>> ex = tl.Exchange.from_httpx(request, response)
    >>> ex.status_code, ex.response.json()
    (200, {'id': 1})
    """

    __slots__ = (
        "_request",
        "_response",
        "_served",
        "chunks",
        "elapsed",
        "error",
        "http_version",
        "method",
        "reason_phrase",
        "request_body",
        "request_headers",
        "response_body",
        "response_headers",
        "started_at",
        "status_code",
        "tags",
        "truncated",
        "url",
    )

    method: str
    url: str
    request_headers: _HeaderTuple
    request_body: bytes
    status_code: int | None
    reason_phrase: str
    http_version: str
    response_headers: _HeaderTuple
    response_body: bytes
    started_at: datetime
    elapsed: timedelta
    error: RecordedError | None
    tags: Mapping[str, str]
    truncated: bool
    chunks: tuple[Chunk, ...] | None
    _request: httpx.Request | None
    _response: httpx.Response | None
    _served: tuple[httpx.Headers, dict[str, Any]] | None

    def __init__(
        self,
        method: str,
        url: str,
        *,
        request_headers: Iterable[tuple[bytes, bytes]] = (),
        request_body: bytes = b"",
        status_code: int | None = None,
        reason_phrase: str = "",
        http_version: str = "HTTP/1.1",
        response_headers: Iterable[tuple[bytes, bytes]] = (),
        response_body: bytes = b"",
        started_at: datetime | None = None,
        elapsed: timedelta = timedelta(0),
        error: RecordedError | None = None,
        tags: Mapping[str, str] | None = None,
        truncated: bool = False,
        chunks: tuple[Chunk, ...] | None = None,
    ) -> None:
        if status_code is None and error is None:
            raise ValueError("an exchange needs a status_code (a response) or an error")
        if started_at is None:
            started_at = _utcnow()
        elif started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware (UTC)")
        # The slots' own setters (bound below the class): object.__setattr__ costs 2.5x more,
        # and an exchange is built for every recorded request.
        _set_method(self, method.upper())
        _set_url(self, url)
        # tuple(x) and bytes(x) return x itself for exact types, at the cost of a call.
        if type(request_headers) is not tuple:
            request_headers = tuple(request_headers)
        if type(response_headers) is not tuple:
            response_headers = tuple(response_headers)
        if type(request_body) is not bytes:
            request_body = bytes(request_body)
        if type(response_body) is not bytes:
            response_body = bytes(response_body)
        _set_request_headers(self, request_headers)
        _set_request_body(self, request_body)
        _set_status_code(self, status_code)
        _set_reason_phrase(self, reason_phrase)
        _set_http_version(self, http_version)
        _set_response_headers(self, response_headers)
        _set_response_body(self, response_body)
        _set_started_at(self, started_at)
        _set_elapsed(self, elapsed)
        _set_error(self, error)
        _set_tags(self, MappingProxyType(dict(tags)) if tags else _EMPTY_TAGS)
        _set_truncated(self, truncated)
        _set_chunks(self, chunks)
        _set_request(self, None)
        _set_response(self, None)
        _set_served(self, None)

    # -- immutability ---------------------------------------------------------------------------
    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    _FIELDS = (
        "method",
        "url",
        "request_headers",
        "request_body",
        "status_code",
        "reason_phrase",
        "http_version",
        "response_headers",
        "response_body",
        "started_at",
        "elapsed",
        "error",
        "tags",
        "truncated",
        "chunks",
    )

    def replace(self, **changes: Any) -> Exchange:
        """A copy with some parts changed (like :func:`dataclasses.replace`).

        A new ``response_body`` of another length (a redacted one) drops the chunks, unless
        ``chunks`` are given too: they described the old body.
        """
        parts = {name: getattr(self, name) for name in self._FIELDS}
        chunks = self.chunks
        if (
            chunks is not None
            and "chunks" not in changes
            and len(changes.get("response_body", self.response_body)) != len(self.response_body)
        ):
            parts["chunks"] = None
        parts.update(changes)
        method = parts.pop("method")
        url = parts.pop("url")
        return Exchange(method, url, **parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Exchange):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._FIELDS)

    def __hash__(self) -> int:
        return hash((self.method, self.url, self.status_code, self.started_at))

    def __repr__(self) -> str:
        outcome = f"{self.status_code}" if self.status_code is not None else f"error {self.error}"
        ms = self.elapsed.total_seconds() * 1000
        flag = " truncated" if self.truncated else ""
        return f"<Exchange {self.method} {self.url} -> {outcome} ({ms:.1f} ms){flag}>"

    # -- conversions ----------------------------------------------------------------------------
    @classmethod
    def from_httpx(
        cls,
        request: httpx.Request,
        response: httpx.Response | None = None,
        *,
        started_at: datetime | None = None,
        elapsed: timedelta | None = None,
        error: RecordedError | BaseException | None = None,
        tags: Mapping[str, str] | None = None,
        truncated: bool = False,
    ) -> Exchange:
        """Build an exchange from httpx objects (they are copied, never kept or changed).

        The request body must be readable (``request.read()`` is called for sync streams). The
        response body is taken from its raw stream when that is still available (responses built
        with ``content=`` / ``json=``, or by a handler); a response that came back from a client
        has only its decoded body, so it is stored decoded and its ``Content-Encoding`` header is
        dropped to keep headers and body consistent.
        """
        request_body = _request_body(request)
        if isinstance(error, BaseException):
            error = RecordedError.from_exception(error)
        if response is None:
            if error is None:
                raise ValueError("from_httpx needs a response or an error")
            return cls(
                request.method,
                str(request.url),
                request_headers=request.headers.raw,
                request_body=request_body,
                started_at=started_at,
                elapsed=elapsed or timedelta(0),
                error=error,
                tags=tags,
                truncated=truncated,
            )
        body, headers = _response_wire_body(response)
        if elapsed is None:
            try:
                elapsed = response.elapsed
            except RuntimeError:
                elapsed = timedelta(0)
        return cls(
            request.method,
            str(request.url),
            request_headers=request.headers.raw,
            request_body=request_body,
            status_code=response.status_code,
            reason_phrase=response_reason(response),
            http_version=response.http_version,
            response_headers=headers,
            response_body=body,
            started_at=started_at,
            elapsed=elapsed,
            error=error,
            tags=tags,
            truncated=truncated,
        )

    @property
    def request(self) -> httpx.Request:
        """The request as an ``httpx.Request`` (built once, body already read)."""
        request = self._request
        if request is None:
            request = self.new_request()
            object.__setattr__(self, "_request", request)
        return request

    @property
    def response(self) -> httpx.Response | None:
        """The response as an ``httpx.Response``, or ``None`` for a failed exchange.

        Built once. Its ``content`` is decoded as the client decoded it live; the wire bytes are
        :attr:`response_body`. A body that cannot be decoded (a truncated gzip stream) is left
        unread, so ``.content`` raises ``httpx.ResponseNotRead``; use ``response_body``.
        """
        response = self._response
        if response is None and self.status_code is not None:
            response = self.new_response()
            response.request = self.request
            try:
                response.read()
            except httpx.DecodingError:
                response = self.new_response()
                response.request = self.request
            object.__setattr__(self, "_response", response)
        return response

    def new_request(self) -> httpx.Request:
        """A fresh ``httpx.Request`` with the recorded method, URL, headers and body."""
        request = httpx.Request(
            self.method,
            self.url,
            headers=list(self.request_headers),
            stream=httpx.ByteStream(self.request_body),
        )
        request.read()
        return request

    def new_response(self, extensions: Mapping[str, Any] | None = None) -> httpx.Response:
        """A fresh, unread ``httpx.Response`` with the recorded wire body, ready to serve.

        Raises the recorded transport error again for an exchange that has no response.
        """
        if self.status_code is None:
            assert self.error is not None
            raise self.error.to_exception(self.request)
        served = self._served
        if served is None:
            # Built once per exchange: httpx.Response copies a Headers object's list as it is,
            # where raw pairs are normalised one by one on every response served.
            served = (
                httpx.Headers(list(self.response_headers)),
                {
                    "http_version": self.http_version.encode("ascii"),
                    "reason_phrase": self.reason_phrase.encode("latin-1"),
                },
            )
            _set_served(self, served)
        headers, ext = served
        if extensions:
            ext = {**ext, **extensions}
        chunks = self.chunks
        body = self.response_body
        # httpx.Response copies both headers and extensions: the shared ones never leak.
        return httpx.Response(
            self.status_code,
            headers=headers,
            stream=httpx.ByteStream(body) if chunks is None else ChunkedByteStream(body, chunks),
            extensions=ext,
        )

    def read_response(
        self, request: httpx.Request | None = None, extensions: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """A fresh response with its body already read: ``.json()``, ``.text`` work at once.

        What :meth:`Source.get <traffic_lab.Source.get>` returns to a caller. ``request``
        becomes ``response.request`` (so ``raise_for_status()`` works). A body that cannot be
        decoded is left unread (``.content`` raises ``httpx.ResponseNotRead``, as
        :attr:`response` does); its wire bytes stay in :attr:`response_body`.
        """
        response = self.new_response(extensions)
        if request is not None:
            response.request = request
        try:
            response.read()
        except httpx.DecodingError:
            response = self.new_response(extensions)
            if request is not None:
                response.request = request
        return response

    # -- conveniences ---------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The request URL's host."""
        return httpx.URL(self.url).host

    @property
    def path(self) -> str:
        """The request URL's path."""
        return httpx.URL(self.url).path

    @property
    def ok(self) -> bool:
        """True when a response arrived and was complete (not an error, not truncated)."""
        return self.status_code is not None and not self.truncated


def _slot_setter(name: str) -> Callable[[Exchange, Any], None]:
    setter: Callable[[Exchange, Any], None] = Exchange.__dict__[name].__set__
    return setter


# Exchange's slot setters, bound once (see Exchange.__init__).
_set_method = _slot_setter("method")
_set_url = _slot_setter("url")
_set_request_headers = _slot_setter("request_headers")
_set_request_body = _slot_setter("request_body")
_set_status_code = _slot_setter("status_code")
_set_reason_phrase = _slot_setter("reason_phrase")
_set_http_version = _slot_setter("http_version")
_set_response_headers = _slot_setter("response_headers")
_set_response_body = _slot_setter("response_body")
_set_started_at = _slot_setter("started_at")
_set_elapsed = _slot_setter("elapsed")
_set_error = _slot_setter("error")
_set_tags = _slot_setter("tags")
_set_truncated = _slot_setter("truncated")
_set_chunks = _slot_setter("chunks")
_set_request = _slot_setter("_request")
_set_response = _slot_setter("_response")
_set_served = _slot_setter("_served")


def _request_body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        if isinstance(request.stream, httpx.SyncByteStream):
            return request.read()
        raise ValueError(
            "the request body is an unread async stream; await request.aread() first"
        ) from None


def _response_wire_body(response: httpx.Response) -> tuple[bytes, _HeaderTuple]:
    """The body as it came over the wire, and the headers that describe it."""
    stream = response.stream
    if isinstance(stream, httpx.ByteStream):
        # A ByteStream holds the wire bytes and can be iterated again, read or not.
        return b"".join(stream), tuple(response.headers.raw)
    try:
        content = response.content
    except httpx.ResponseNotRead:
        if response.is_stream_consumed:
            raise ValueError("the response stream was consumed and its body is lost") from None
        raw = b"".join(response.iter_raw())
        return raw, tuple(response.headers.raw)
    # Only the decoded body survives: drop the encoding and fix the length to match it.
    headers = [
        (k, v)
        for k, v in response.headers.raw
        if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
    ]
    headers.append((b"Content-Length", str(len(content)).encode()))
    return content, tuple(headers)


# -- what a store can hold ----------------------------------------------------------------------
#: The longest elapsed time a store accepts (a capture stores microseconds in 64 bits; a HAR
#: ``time`` of 1e16 ms is a corrupt entry, not a slow request).
MAX_ELAPSED = timedelta(days=366 * 100)
_LATEST_START = datetime.max.replace(tzinfo=UTC)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_HTTP_VERSION = re.compile(r"[ -~]{0,32}")
# scheme://[userinfo@](host)[:port]: the port digits, if any (IPv6 literals in brackets).
_PORT = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(?:\[[^\]/?#]*\]|[^/?#:\[\]]*)"
    r"(?::([^/?#]*))?(?=[/?#]|$)"
)


# The usual URL: http(s)/ws(s), an ASCII host name, printable ASCII after it. Such a URL always
# parses as httpx parses it; any other goes through httpx.URL (about 10 µs) in check_storable.
_PLAIN_URL = re.compile(
    r"(?:https?|wss?)://(?:[!$&'()*+,;=:A-Za-z0-9\-._~%]*@)?"
    r"((?:[A-Za-z0-9\-]+\.)*[A-Za-z0-9\-]+)(?::(\d{0,5}))?(?:[/?#][!-~]*)?"
)
_IPV4ISH = re.compile(r"[\d.]+")
# A dotted quad in its canonical form (no leading zeros, each part 0-255): parsed by httpx as
# written (127.0.0.1, the usual replay target, took the 10 µs path on every exchange).
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)
_MAX_URL = 65536  # httpx's own limit


def _plain_port(url: str) -> str | None:
    """The port text (maybe ``""``) of a plain URL, or ``None`` for any other URL."""
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    host = match.group(1)
    if "xn--" in host.lower():
        return None
    if _IPV4ISH.fullmatch(host) is not None and _IPV4.fullmatch(host) is None:
        return None
    return match.group(2) or ""


def _invalid(field: str, value: object, message: str) -> InvalidExchangeError:
    return InvalidExchangeError(message, field=field, value=preview(value))


def _check_headers(side: str, pairs: _HeaderTuple) -> None:
    try:  # the usual case in one unpacking loop; any doubt goes to the loop that names it
        for name, value in pairs:
            if type(name) is not bytes or type(value) is not bytes or not name:
                break
        else:
            return
    except (TypeError, ValueError):
        pass
    for pair in pairs:
        if len(pair) != 2 or type(pair[0]) is not bytes or type(pair[1]) is not bytes:
            raise _invalid(side, pair, "must be (name, value) pairs of bytes")
        if not pair[0]:
            raise _invalid(side, pair, "a header name must not be empty")


def _utf8(field: str, value: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _invalid(
                field, value, f"not valid Unicode text ({exc.reason} at {exc.start})"
            ) from None


def check_storable(exchange: Exchange) -> None:
    """Raise :class:`~traffic_lab.errors.InvalidExchangeError` unless every store can hold it.

    Every ``put()`` (memory and Parquet stores) and every importer calls this before anything is
    buffered, so a bad exchange is refused at once, by field, value and allowed range, and never
    poisons a buffer, a durable log or the good exchanges written with it. The checks are cheap
    (a few comparisons and one regular expression) because they run on every recorded request.

    Rules: the method is an HTTP token of 1-64 characters; the URL is ``scheme://host...`` text
    that encodes as UTF-8, with a port (if any) from 0 to 65535; a status is 100-999; the reason
    phrase is Latin-1 (it goes on the wire); the HTTP version is at most 32 printable ASCII
    characters; headers are ``(name, value)`` pairs of bytes, names not empty; ``elapsed`` is
    from 0 to :data:`MAX_ELAPSED`; tags and the recorded error are UTF-8 text; ``chunks``, if
    any, pass :func:`check_chunks`.

    >>> import traffic_lab as tl
    >>> try:
    ...     check_storable(tl.Exchange("GET", "https://a.example:99999/", status_code=200))
    ... except tl.errors.InvalidExchangeError as exc:
    ...     print(exc.field, exc.value, exc)
    port '99999' cannot store this exchange: port = '99999': must be 0-65535
    """
    method = exchange.method
    if _TOKEN.fullmatch(method) is None:
        raise _invalid("method", method, "must be an HTTP token of 1-64 characters")
    url = exchange.url
    if len(url) > _MAX_URL:
        raise _invalid("url", url, f"must be at most {_MAX_URL} characters")
    port = _plain_port(url)  # one regular expression for the usual URL
    plain = port is not None
    if port is None:
        _utf8("url", url)
        match = _PORT.match(url)
        if match is None:
            raise _invalid("url", url, "must be an absolute URL (scheme://host/...)")
        port = match.group(1) or ""
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        raise _invalid("port", port, "must be 0-65535")
    if not plain:
        # Anything unusual (IDNA or IP hosts, non-ASCII, spaces, control characters) must parse
        # as httpx parses it, since every stored URL becomes an httpx.URL again when read.
        try:
            host = httpx.URL(url).host  # the host is IDNA-decoded here
        except (httpx.InvalidURL, ValueError) as exc:  # IDNAError is a ValueError
            raise _invalid("url", url, str(exc)) from None
        if not host:
            raise _invalid("url", url, "must name a host")
    status = exchange.status_code
    if status is not None and not (type(status) is int and 100 <= status <= 999):
        raise _invalid("status_code", status, "must be 100-999")
    reason = exchange.reason_phrase
    if not reason.isascii():
        try:
            reason.encode("latin-1")
        except UnicodeEncodeError:
            raise _invalid("reason_phrase", reason, "must be Latin-1 text") from None
    if _HTTP_VERSION.fullmatch(exchange.http_version) is None:
        raise _invalid(
            "http_version", exchange.http_version, "must be at most 32 printable ASCII characters"
        )
    _check_headers("request_headers", exchange.request_headers)
    _check_headers("response_headers", exchange.response_headers)
    elapsed = exchange.elapsed
    if not (timedelta(0) <= elapsed <= MAX_ELAPSED):
        raise InvalidExchangeError(
            f"must be from 0 to {MAX_ELAPSED.days} days", field="elapsed", value=str(elapsed)
        )
    started_at = exchange.started_at
    if started_at.tzinfo is not UTC:
        try:
            (started_at + elapsed).astimezone(UTC)
            started_at.astimezone(UTC)
            out_of_range = False
        except OverflowError:
            out_of_range = True
    else:
        out_of_range = started_at > _LATEST_START - elapsed
    if out_of_range:
        raise InvalidExchangeError(
            "must be a time from year 1 to 9999 in UTC, start and end",
            field="started_at",
            value=started_at.isoformat(),
        )
    for name, value in exchange.tags.items():
        _utf8("tags", name)
        _utf8(f"tags[{preview(name)}]", value)
    error = exchange.error
    if error is not None:
        _utf8("error.type", error.type)
        _utf8("error.message", error.message)
    chunks = exchange.chunks
    if chunks is not None:
        if type(chunks) is not tuple:
            raise _invalid("chunks", chunks, "must be a tuple of Chunk(size, offset_us)")
        problem = check_chunks(chunks, len(exchange.response_body))
        if problem is not None:
            raise InvalidExchangeError(problem, field="chunks", value=f"{len(chunks)} chunks")
