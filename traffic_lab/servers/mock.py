"""A capture as an HTTP mock server: an ASGI app that answers with recorded responses.

It follows :func:`traffic_lab.responder`: from a Source (a cache), each request is looked up by
key; from a Replay (a stream), recorded responses are answered in recorded order whatever is
asked. What goes over the wire is what was recorded: the status, the reason phrase (when the
server can send one, see :data:`~traffic_lab.servers.REASON_EXTENSION`), the headers in order
with duplicates, and the body's wire bytes (a gzip body stays gzip, with its headers). Only
hop-by-hop headers are left out, and the body is framed by ``Content-Length``.

Answers that are not recordings carry an ``x-traffic-lab-mock`` header saying why:

=================  ======  ===================================================================
why                status  body
=================  ======  ===================================================================
``miss``           503     ``no more traffic to replay`` (``strict``: 404 and the nearest
                           recorded requests, with what differs)
``exhausted``      503     ``no more traffic to replay`` (``strict``: the number served too)
``recorded-error`` 502     JSON naming the recorded transport error (504 for a timeout)
``unservable``     502     ``recorded status 101 cannot be served...``: a recorded final
                           status of 100-199 (a 1xx response is informational: HTTP/1.1 has
                           no way to send one as the answer, and a client would wait on)
=================  ======  ===================================================================

Every other recorded status, 200 to 999, is served as recorded with its reason phrase (600-999
included, by :func:`~traffic_lab.servers.run_server`).

A mock server serves a capture that does not change while it runs, so by key the answer to a
request is worked out once (URL parsing, key, lookup, header framing: about 100 µs) and kept
for the next identical request, up to :data:`MEMO_ENTRIES` answers and :data:`MEMO_BYTES` of
bodies. Identical means the same method, target, body, and the headers when the matcher looks
at them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple

import httpx

from ..errors import RecordedTransportError, ReplayExhaustedError, UnmatchedRequestError
from ..exchange import Exchange, RecordedError
from ..matching import Matcher
from ..protocols import Replay, Source
from ..transports.responder import NO_MORE_TRAFFIC, responder
from ._asgi import (
    Receive,
    Scope,
    Send,
    error_body,
    lifespan,
    read_body,
    request_target,
    send_prepared,
    status_for_error,
    text_response,
    wire_headers,
)

__all__ = ["MEMO_BYTES", "MEMO_ENTRIES", "MOCK_HEADER", "MockApp"]

#: Header on answers that are not recordings: ``miss``, ``exhausted``, ``recorded-error`` or
#: ``unservable``.
MOCK_HEADER = b"x-traffic-lab-mock"
#: Bounds of the answers a by-key mock server keeps for repeated requests.
MEMO_ENTRIES = 65_536
MEMO_BYTES = 64 * 1024 * 1024


class _Answer(NamedTuple):
    """A response ready to send, and what it counts as (``recorded``, ``miss``...)."""

    kind: str
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reason: str


class MockApp:
    """An ASGI app that answers requests from recorded traffic, as :func:`~traffic_lab.responder`.

    Parameters
    ----------
    store
        A Source (``get``; answers by request key, e.g. :class:`~traffic_lab.ParquetCache`) or
        a Replay (``exchanges()``; answers in recorded order, e.g.
        :class:`~traffic_lab.ParquetStream`).
    strict
        A miss answers 404 with the nearest recorded requests and what differs, instead of
        503; in order, a request that differs from the next recorded one answers 404 too.
    matcher
        How requests are keyed and compared; default: the store's ``matcher``, else
        ``Matcher()``. It must be the store's own for a Source.
    origin
        Scheme, host and port (``"https://api.example"``) that requests are taken to be for
        before they are matched: clients talk to the mock server, the recordings name the real
        server. ``None`` keeps the URL the client asked for.

    Notes
    -----
    A Source's ``aget`` is used when it has one (:class:`~traffic_lab.MemoryCache` answers at
    once, :class:`~traffic_lab.ParquetCache` reads files in a worker thread); a plain ``get``
    runs in a worker thread. Caches never serve exchanges that failed in the transport, so for a
    Source the mock server looks a miss up among the recorded transport errors (read once, on
    the first miss, in a worker thread) and answers 502 for one.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.servers import MockApp
    >>> cache = tl.MemoryCache()
    >>> cache.put(tl.Exchange("GET", "https://api.example/users/1", status_code=200,
    ...                       response_body=b'{"id": 1}'))
    >>> app = MockApp(cache, origin="https://api.example")
    >>> async def main():
    ...     transport = httpx.ASGITransport(app)
    ...     async with httpx.AsyncClient(transport=transport, base_url="http://mock") as c:
    ...         return (await c.get("/users/1")).json(), (await c.get("/users/2")).status_code
    >>> import asyncio; asyncio.run(main())
    ({'id': 1}, 503)
    """

    def __init__(
        self,
        store: Source | Replay,
        *,
        strict: bool = False,
        matcher: Matcher | None = None,
        origin: str | None = None,
    ) -> None:
        if matcher is None:
            own = getattr(store, "matcher", None)
            matcher = own if isinstance(own, Matcher) else Matcher()
        self.store = store
        self.strict = strict
        self.matcher = matcher
        self.origin = _origin(origin) if origin is not None else None
        self._by_key = callable(getattr(store, "get", None))
        self._aget = _async_getter(store) if self._by_key else None
        if not self._by_key and not callable(getattr(store, "exchanges", None)):
            raise TypeError(
                f"MockApp needs a Source (get) or a Replay (exchanges); got {type(store).__name__}"
            )
        # Headers change a request's key only when the matcher reads them.
        self._key_headers = bool(
            matcher.all_headers
            or matcher.headers
            or matcher.body == "auto"
            or matcher.function is not None
        )
        self._memo: OrderedDict[tuple[Any, ...], _Answer] = OrderedDict()
        self._memo_bytes = 0
        self._errors: dict[str, RecordedError] | None = None
        self._lock = threading.Lock()
        self._order: Iterator[Exchange] | None = None
        self._served = 0
        self._strict_replay = (
            responder(store, strict=True, matcher=matcher) if strict and not self._by_key else None
        )
        #: Requests answered, by outcome: ``recorded``, ``miss``, ``exhausted``, ``error``
        #: (a recorded transport error), ``unservable`` (a recorded 1xx final status).
        self.counts: dict[str, int] = {
            "recorded": 0,
            "miss": 0,
            "exhausted": 0,
            "error": 0,
            "unservable": 0,
        }

    def __repr__(self) -> str:
        mode = "by key" if self._by_key else "in order"
        return f"<MockApp {mode} from {self.store!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets: not recorded traffic; the server closes the connection
        body = await read_body(receive)
        if self._by_key:
            answer = await self._answer_by_key(scope, body)
        elif self._strict_replay is not None:
            answer = self._answer_strictly_in_order(scope, body)
        else:
            answer = self._answer_in_order(scope["method"])
        self.counts[answer.kind] += 1
        await send_prepared(scope, send, answer.status, answer.headers, answer.body, answer.reason)

    # -- the request -------------------------------------------------------------------------------
    def _netloc(self, scope: Scope) -> tuple[bytes, bytes]:
        if self.origin is not None:
            return self.origin
        scheme = scope.get("scheme", "http").encode("ascii")
        netloc = next((v for k, v in scope["headers"] if k.lower() == b"host"), b"")
        if not netloc:
            server = scope.get("server") or ("localhost", None)
            netloc = f"{server[0]}:{server[1]}".encode() if server[1] else server[0].encode()
        return scheme, netloc

    def _request(self, scope: Scope, body: bytes) -> httpx.Request:
        scheme, netloc = self._netloc(scope)
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        if self.origin is not None:
            headers = [(k, netloc if k.lower() == b"host" else v) for k, v in headers]
        url = (scheme + b"://" + netloc + request_target(scope)).decode("latin-1")
        return httpx.Request(scope["method"], httpx.URL(url), headers=headers, content=body)

    # -- answering by key (a Source) -----------------------------------------------------------
    async def _answer_by_key(self, scope: Scope, body: bytes) -> _Answer:
        signature = (
            scope["method"],
            request_target(scope),
            body,
            None if self.origin is not None else self._netloc(scope),
            tuple(scope["headers"]) if self._key_headers else None,
        )
        answer = self._memo.get(signature)
        if answer is not None:
            return answer
        request = self._request(scope, body)
        assert self._aget is not None
        response = await self._aget(request)
        if response is not None:
            answer = _from_response(request.method, response)
        else:
            import anyio.to_thread

            answer = await anyio.to_thread.run_sync(self._miss, request)
        self._remember(signature, answer, len(body))
        return answer

    def _miss(self, request: httpx.Request) -> _Answer:
        """The answer when the store has none (in a worker thread: this may read files)."""
        method = request.method
        error = self._recorded_error(request)
        if error is not None:
            return _error(method, error)
        if self.strict:
            return _synthetic(method, 404, "miss", self._explain_miss(request))
        return _synthetic(method, 503, "miss", NO_MORE_TRAFFIC)

    def _remember(self, signature: tuple[Any, ...], answer: _Answer, request_bytes: int) -> None:
        size = len(answer.body) + request_bytes
        with self._lock:
            if signature in self._memo:
                return
            self._memo[signature] = answer
            self._memo_bytes += size
            while len(self._memo) > MEMO_ENTRIES or self._memo_bytes > MEMO_BYTES:
                old_signature, old = self._memo.popitem(last=False)
                self._memo_bytes -= len(old.body) + len(old_signature[2])

    def _recorded_error(self, request: httpx.Request) -> RecordedError | None:
        with self._lock:
            if self._errors is None:
                self._errors = {
                    self.matcher.key(ex): ex.error
                    for ex in _failed_exchanges(self.store)
                    if ex.error is not None
                }
        if not self._errors:
            return None
        return self._errors.get(self.matcher.key(request))

    def _explain_miss(self, request: httpx.Request) -> str:
        exchanges = getattr(self.store, "exchanges", None)
        candidates = list(exchanges()) if callable(exchanges) else []
        error = UnmatchedRequestError(
            f"no recorded exchange matches {request.method} {request.url}",
            request=request,
            nearest=self.matcher.nearest(request, candidates),
        )
        return str(error)

    # -- answering in order (a Replay) ---------------------------------------------------------
    def _answer_in_order(self, method: str) -> _Answer:
        # What is asked does not matter: no request is built.
        with self._lock:
            if self._order is None:
                self._order = iter(self.store.exchanges())  # type: ignore[union-attr]
            exchange = next(self._order, None)
        if exchange is None:
            return _synthetic(method, 503, "exhausted", NO_MORE_TRAFFIC)
        if exchange.status_code is None:
            assert exchange.error is not None
            return _error(method, exchange.error)
        return _recorded(method, exchange)

    def _answer_strictly_in_order(self, scope: Scope, body: bytes) -> _Answer:
        assert self._strict_replay is not None
        method = scope["method"]
        try:
            response = self._strict_replay(self._request(scope, body))
        except ReplayExhaustedError as exc:
            return _synthetic(method, 503, "exhausted", str(exc))
        except UnmatchedRequestError as exc:
            return _synthetic(method, 404, "miss", str(exc))
        except (httpx.TransportError, RecordedTransportError) as exc:
            # The recorded exchange failed in the transport: responder raised its error again.
            return _error(method, _recorded_error_of(exc))
        return _from_response(method, response)


def _async_getter(source: Any) -> Callable[[httpx.Request], Awaitable[httpx.Response | None]]:
    aget = getattr(source, "aget", None)
    if callable(aget):
        return aget  # type: ignore[no-any-return]

    async def run_in_thread(request: httpx.Request) -> httpx.Response | None:
        import anyio.to_thread

        response: httpx.Response | None = await anyio.to_thread.run_sync(source.get, request)
        return response

    return run_in_thread


def _origin(origin: str) -> tuple[bytes, bytes]:
    url = httpx.URL(origin)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"origin must be an http(s) URL with a host, got {origin!r}")
    return url.scheme.encode("ascii"), url.netloc


def _recorded(method: str, exchange: Exchange) -> _Answer:
    assert exchange.status_code is not None
    if exchange.status_code < 200:
        return _unservable(method, exchange.status_code)
    body = exchange.response_body
    headers = wire_headers(method, exchange.status_code, exchange.response_headers, body)
    return _Answer("recorded", exchange.status_code, headers, body, exchange.reason_phrase)


def _from_response(method: str, response: httpx.Response) -> _Answer:
    stream = response.stream
    # Responses from a store hold their wire bytes in a ByteStream: iterate it, never decode.
    body = b"".join(stream) if isinstance(stream, httpx.SyncByteStream) else response.content
    reason = response.extensions.get("reason_phrase", b"")
    text = reason.decode("latin-1") if isinstance(reason, bytes) else str(reason)
    status = response.status_code
    if status < 200:
        return _unservable(method, status)
    headers = wire_headers(method, status, response.headers.raw, body)
    return _Answer("recorded", status, headers, body, text)


def _error(method: str, error: RecordedError) -> _Answer:
    status = status_for_error(error.type)
    body = error_body(error.type, error.message, recorded="true")
    headers = [(b"content-type", b"application/json"), (MOCK_HEADER, b"recorded-error")]
    return _Answer("error", status, wire_headers(method, status, headers, body), body, "")


def _unservable(method: str, status: int) -> _Answer:
    text = (
        f"recorded status {status} cannot be served: a 1xx response is informational, "
        "never a final answer"
    )
    return _synthetic(method, 502, "unservable", text)


def _synthetic(method: str, status: int, why: str, text: str) -> _Answer:
    headers, body = text_response(text + "\n")
    headers.append((MOCK_HEADER, why.encode("ascii")))
    return _Answer(why, status, wire_headers(method, status, headers, body), body, "")


def _recorded_error_of(exc: BaseException) -> RecordedError:
    if isinstance(exc, RecordedTransportError):
        # "recorded <type>: <message>", as RecordedError.to_exception words it.
        text = str(exc).removeprefix("recorded ")
        kind, _, message = text.partition(": ")
        return RecordedError(kind, message)
    return RecordedError.from_exception(exc)


def _failed_exchanges(store: object) -> Sequence[Exchange]:
    """The exchanges of ``store`` that failed in the transport (reads as little as it can)."""
    to_arrow = getattr(store, "to_arrow", None)
    if callable(to_arrow):
        import pyarrow.compute as pc

        from ..stores.parquet import table_to_exchanges

        table = to_arrow(filter=pc.field("error_type").is_valid())
        return list(table_to_exchanges(table))
    exchanges = getattr(store, "exchanges", None)
    if not callable(exchanges):
        return []
    return [ex for ex in exchanges() if ex.error is not None]
