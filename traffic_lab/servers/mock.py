"""A capture as an HTTP mock server: an ASGI app that answers with recorded responses.

It is :func:`traffic_lab.responder` over HTTP: by key from a Source, in recorded order from a
Replay. The recorded status (200-999), reason phrase (where the server can send it, see
:data:`~traffic_lab.servers.REASON_EXTENSION`), headers and body wire bytes go out; only
hop-by-hop headers are dropped, and the body is framed by ``Content-Length``. A client that
does not accept the body's content coding (``Accept-Encoding``; none sent means none accepted)
gets it decoded, unless it does not decode within :data:`MEMO_BYTES`.

Answers that are not recordings carry ``x-traffic-lab-mock``: ``miss`` (503 naming the nearest
recorded request, also in ``x-traffic-lab-nearest``; ``strict``: 404 and the three nearest),
``exhausted`` (503), ``recorded-error`` (502, 504 for a timeout, JSON naming the error) or
``unservable`` (502: a recorded 1xx final status). docs/cli.md (``serve``) has the details.

By key, the answer to a request is worked out once and kept for the next identical one (same
method, target, body, ``Accept-Encoding``, and headers when the matcher reads them), up to
:data:`MEMO_ENTRIES` answers and :data:`MEMO_BYTES` of bodies.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import anyio.to_thread
import httpx

from ..errors import RecordedTransportError, ReplayExhaustedError, UnmatchedRequestError
from ..exchange import REPLAYED, Chunk, ChunkedByteStream, Exchange, RecordedError
from ..matching import Matcher
from ..protocols import (
    Enumerable,
    KeyedLookup,
    NonBlockingLookup,
    Replay,
    Source,
    exchanges_of,
    matcher_of,
)
from ..transports.responder import NO_MORE_TRAFFIC, responder
from ..transports.stream_timing import PacedStream, Timing, replay_pace
from ..wire import BodyTooLargeError, content_codings, decode_body, header_values, response_reason
from ._asgi import (
    Receive,
    Scope,
    Send,
    error_answer,
    lifespan,
    read_body,
    request_target,
    send_prepared,
    send_start,
    wire_headers,
)

__all__ = ["MEMO_BYTES", "MEMO_ENTRIES", "MOCK_HEADER", "NEAREST_HEADER", "MockApp"]

#: Header on answers that are not recordings: ``miss``, ``exhausted``, ``recorded-error`` or
#: ``unservable``.
MOCK_HEADER = b"x-traffic-lab-mock"
#: Header on a miss naming the nearest recorded request and what differs (ASCII, at most
#: 256 characters).
NEAREST_HEADER = b"x-traffic-lab-nearest"
#: Bounds of the answers a by-key mock server keeps for repeated requests.
MEMO_ENTRIES = 65_536
MEMO_BYTES = 64 * 1024 * 1024
_NEAREST_CHARS = 256
_SAME_CODING = {"x-gzip": "gzip", "x-compress": "compress"}
_T = TypeVar("_T")


class _Answer(NamedTuple):
    """A response ready to send, and what it counts as (``recorded``, ``miss``...)."""

    kind: str
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reason: str
    #: How the recorded body arrived (sent at that pace with ``timing="recorded"``).
    chunks: tuple[Chunk, ...] | None = None


#: A recorded body up to this size is answered on the event loop when the store has it in memory
#: (re-encoding it for a client costs well under a millisecond); larger ones in the worker.
_ON_LOOP_BYTES = 64 * 1024


class MockApp:
    """An ASGI app that answers requests from recorded traffic, as :func:`~traffic_lab.responder`.

    Parameters
    ----------
    store
        A Source (answers by request key, e.g. :class:`~traffic_lab.ParquetCache`) or a Replay
        (answers in recorded order, e.g. :class:`~traffic_lab.ParquetStream`).
    strict
        A miss answers 404 with the three nearest recorded requests, not 503 and the nearest;
        in order, so does a request that differs from the next recorded one.
    matcher
        Default: the store's ``matcher``, else ``Matcher()``; for a Source, the store's own.
    origin
        Scheme, host and port (``"https://api.example"``) requests are taken to be for before
        matching (the recordings name the real server); ``None`` keeps the URL asked for.
    timing, speed
        ``"recorded"``: a streamed body (one recorded with its chunks, e.g. server-sent
        events) goes out chunk by chunk at the recorded pace, ``speed`` times faster (each gap
        and the whole wait capped, as for the transports); ``"none"`` (default): at once.

    The store is asked in the app's own worker thread, one request at a time, never on the
    event loop (``lookup`` of a :class:`~traffic_lab.protocols.KeyedLookup` Source first: the
    stored exchange goes out as recorded). A store that can answer from memory
    (:class:`~traffic_lab.protocols.NonBlockingLookup`: the memory stores, a ``ParquetCache``
    whose row group is at hand) answers a found exchange of up to 64 KiB on the loop instead.
    A miss on a Source is looked up among the recorded transport errors (read once) and answers
    502 for one; finding the nearest request reads every recorded request, once per distinct
    miss.

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
        timing: Timing = "none",
        speed: float = 1.0,
    ) -> None:
        self._pace = replay_pace(timing, speed)
        if not isinstance(store, Source | Enumerable):
            raise TypeError(
                f"MockApp needs a Source (get) or a Replay (exchanges); got {type(store).__name__}"
            )
        if matcher is None:
            matcher = matcher_of(store) or Matcher()
        self.store = store
        self.strict = strict
        self.matcher = matcher
        self.origin = _origin(origin) if origin is not None else None
        self._by_key = isinstance(store, Source)
        # The stored exchange itself where the store gives it: no httpx.Response to build.
        self._lookup = store.lookup if self._by_key and isinstance(store, KeyedLookup) else None
        # ... and from memory on the event loop where it can: the hand-over to the worker and
        # back costs ~100 us of CPU a request, more than decoding one row.
        self._nowait = (
            store.lookup_nowait
            if self._lookup is not None and isinstance(store, NonBlockingLookup)
            else None
        )
        # A Source is asked strictly whatever ``strict`` says: a miss then names the nearest
        # recorded requests, which every miss answer does.
        self._responder = responder(store, strict=strict or self._by_key, matcher=matcher)
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
        self._worker = _Worker()
        #: Requests answered, by outcome: ``recorded``, ``miss``, ``exhausted``, ``error``
        #: (a recorded transport error), ``unservable`` (a recorded 1xx final status).
        self.counts = dict.fromkeys(("recorded", "miss", "exhausted", "error", "unservable"), 0)

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
        values = header_values(scope["headers"], "accept-encoding")
        accept = b",".join(values) if values else None
        if self._by_key:
            answer = await self._answer_by_key(scope, body, accept)
        else:
            request = self._request(scope, body)
            answer = await self._worker.run(lambda: self._answer(request, accept))
        self.counts[answer.kind] += 1
        if self._pace is not None and answer.chunks is not None and scope["method"] != "HEAD":
            await _send_paced(scope, send, answer, answer.chunks, self._pace)
        else:
            await send_prepared(
                scope, send, answer.status, answer.headers, answer.body, answer.reason
            )

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

    # -- answering ---------------------------------------------------------------------------------
    async def _answer_by_key(self, scope: Scope, body: bytes, accept: bytes | None) -> _Answer:
        signature = (
            scope["method"],
            request_target(scope),
            body,
            None if self.origin is not None else self._netloc(scope),
            tuple(scope["headers"]) if self._key_headers else None,
            accept,
        )
        answer = self._memo.get(signature)
        if answer is not None:
            return answer
        request = self._request(scope, body)
        answer = self._answer_from_memory(request, accept)
        if answer is None:
            answer = await self._worker.run(lambda: self._answer(request, accept))
        self._remember(signature, answer, len(body))
        return answer

    def _answer_from_memory(self, request: httpx.Request, accept: bytes | None) -> _Answer | None:
        """The recorded answer when the store has it in memory and it is small (on the loop);
        ``None`` sends the request to the worker (file reads, misses, big bodies)."""
        if self._nowait is None:
            return None
        try:
            exchange = self._nowait(request)
        except BlockingIOError:
            return None
        if (
            exchange is None
            or exchange.status_code is None
            or len(exchange.response_body) > _ON_LOOP_BYTES
        ):
            return None
        status = exchange.status_code
        return _for_client(request.method, _stored(request.method, exchange, status), accept)

    def _answer(self, request: httpx.Request, accept: bytes | None) -> _Answer:
        """The answer to ``request`` for a client that accepts ``accept`` (in the worker)."""
        return _for_client(request.method, self._respond(request), accept)

    def _respond(self, request: httpx.Request) -> _Answer:
        """The responder's answer (in the worker thread: the store may read files)."""
        method = request.method
        if self._lookup is not None:
            exchange = self._lookup(request)
            if exchange is not None and exchange.status_code is not None:
                return _stored(method, exchange, exchange.status_code)
        try:
            response = self._responder(request)
        except UnmatchedRequestError as exc:
            error = self._recorded_error(request) if self._by_key else None
            return _error(method, error) if error is not None else self._miss(exc)
        except ReplayExhaustedError as exc:
            return _synthetic(method, 503, "exhausted", str(exc))
        except (httpx.TransportError, RecordedTransportError) as exc:
            # The recorded exchange failed in the transport: responder raised its error again.
            return _error(method, _recorded_error_of(exc))
        if not self._by_key and not response.extensions.get(REPLAYED):
            return _synthetic(method, 503, "exhausted", NO_MORE_TRAFFIC)  # the replay ran out
        return _from_response(method, response)

    def _miss(self, exc: UnmatchedRequestError) -> _Answer:
        request = exc.request
        extra = []
        nearest = "no recorded request to compare with"
        if exc.nearest:
            recorded, differences = exc.nearest[0]
            why = "; ".join(differences) or "its key matches, but the store does not serve it"
            described = f"{recorded.method} {recorded.url} ({why})"
            nearest = f"nearest recorded request: {described}"
            extra.append((NEAREST_HEADER, _header_value(described)))
        if self.strict:
            return _synthetic(request.method, 404, "miss", str(exc), extra)
        text = f"no recorded response matches {request.method} {request.url}\n{nearest}"
        return _synthetic(request.method, 503, "miss", text, extra)

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
                recorded = exchanges_of(self.store) if isinstance(self.store, Enumerable) else ()
                self._errors = {
                    self.matcher.key(ex): ex.error for ex in recorded if ex.error is not None
                }
        if not self._errors:
            return None
        return self._errors.get(self.matcher.key(request))


class _Worker:
    """One thread that runs the store's reads, one at a time and in order, and hands the answers
    back to their event loops, a batch per wake-up.

    A read never blocks the loop, and the handover costs about 10 µs of CPU a call, where
    ``anyio.to_thread.run_sync`` costs 60-140 µs; one at a time, a row group that several
    requests need is read once. The thread ends after :attr:`IDLE` seconds without work.
    Outside asyncio (trio), calls go to anyio's worker threads.
    """

    IDLE = 10.0

    def __init__(self) -> None:
        self._calls: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]]
        self._calls = []
        self._ready = threading.Condition()
        self._running = False

    async def run(self, call: Callable[[], _T]) -> _T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio
            return await anyio.to_thread.run_sync(call)
        future: asyncio.Future[_T] = loop.create_future()
        with self._ready:
            self._calls.append((loop, future, call))
            if self._running:
                self._ready.notify()
            else:
                self._running = True
                threading.Thread(target=self._serve, name="traffic_lab-mock", daemon=True).start()
        return await future

    def _serve(self) -> None:
        while True:
            with self._ready:
                if not self._ready.wait_for(lambda: self._calls, self.IDLE):
                    self._running = False
                    return
                calls, self._calls = self._calls, []
            done: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, Any]]] = {}
            for loop, future, call in calls:
                try:
                    outcome: tuple[asyncio.Future[Any], Any, Any] = (future, call(), None)
                except BaseException as exc:  # the thread lives on: later calls are answered
                    outcome = (future, None, exc)
                done.setdefault(loop, []).append(outcome)
            for loop, outcomes in done.items():
                try:
                    loop.call_soon_threadsafe(_settle, outcomes)
                except RuntimeError:
                    pass  # the loop closed meanwhile: nobody is waiting


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, Any]]) -> None:
    for future, result, exc in outcomes:
        if future.done():
            continue  # cancelled
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _origin(origin: str) -> tuple[bytes, bytes]:
    url = httpx.URL(origin)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"origin must be an http(s) URL with a host, got {origin!r}")
    return url.scheme.encode("ascii"), url.netloc


def _header_value(text: str) -> bytes:
    """``text`` as a header value: ASCII (others escaped), printable, at most 256 characters."""
    safe = text.encode("ascii", "backslashreplace").decode("ascii")
    safe = "".join(c if " " <= c < "\x7f" else "?" for c in safe).strip()
    if len(safe) > _NEAREST_CHARS:
        safe = safe[: _NEAREST_CHARS - 3] + "..."
    return safe.encode("ascii")


def _accepts(accept: bytes | None, codings: Sequence[str]) -> bool:
    """Whether a client that sent ``Accept-Encoding: accept`` takes a body with ``codings``.

    RFC 9110 12.5.3, except that no header (``None``) means no coding is accepted.

    >>> _accepts(b"gzip, br;q=0", ["gzip"]), _accepts(b"*;q=0.5, br;q=0", ["br"])
    (True, False)
    >>> _accepts(None, ["gzip"]), _accepts(b"", ["gzip"]), _accepts(b"*", ["gzip", "br"])
    (False, False, True)
    """
    if accept is None:
        return False
    weights: dict[str, float] = {}
    for item in accept.decode("latin-1").split(","):
        name, *params = item.split(";")
        name = name.strip().lower()
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[_SAME_CODING.get(name, name)] = weight
    anything = weights.get("*", 0.0)
    return all(weights.get(_SAME_CODING.get(c, c), anything) > 0 for c in codings)


def _for_client(method: str, answer: _Answer, accept: bytes | None) -> _Answer:
    """``answer``, with its body decoded if the client does not accept its content coding."""
    codings = content_codings(answer.headers)
    if not codings or not answer.body or _accepts(accept, codings):
        return answer
    try:
        body = decode_body(answer.body, codings, limit=MEMO_BYTES)
    except BodyTooLargeError:
        body = None
    if body is None:
        return answer  # not decodable (or a bomb): the recorded bytes, with their coding
    headers = [
        (name, value) for name, value in answer.headers if name.lower() != b"content-encoding"
    ]
    return answer._replace(
        headers=wire_headers(method, answer.status, headers, body), body=body, chunks=None
    )


async def _send_paced(
    scope: Scope, send: Send, answer: _Answer, chunks: tuple[Chunk, ...], pace: float
) -> None:
    """Send ``answer`` with its body in its recorded chunks, at the recorded pace times
    ``pace`` (the waits capped as :func:`~traffic_lab.transports.replay_schedule` caps them)."""
    await send_start(scope, send, answer.status, answer.headers, answer.reason)
    stream = PacedStream(answer.body, chunks, pace)
    async for piece in stream:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _from_response(method: str, response: httpx.Response) -> _Answer:
    stream = response.stream
    # Responses from a store hold their wire bytes in a ByteStream: iterate it, never decode.
    body = b"".join(stream) if isinstance(stream, httpx.SyncByteStream) else response.content
    answer = _recorded(
        method, response.status_code, response.headers.raw, body, response_reason(response)
    )
    if isinstance(stream, ChunkedByteStream) and answer.kind == "recorded":
        return answer._replace(chunks=stream.chunks)
    return answer


def _stored(method: str, exchange: Exchange, status: int) -> _Answer:
    """The answer of a stored exchange whose response has ``status``."""
    answer = _recorded(
        method,
        status,
        exchange.response_headers,
        exchange.response_body,
        exchange.reason_phrase,
    )
    if exchange.chunks is not None and answer.kind == "recorded":
        return answer._replace(chunks=exchange.chunks)
    return answer


def _recorded(
    method: str, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes, reason: str
) -> _Answer:
    if status < 200:
        text = (
            f"recorded status {status} cannot be served: a 1xx response is informational, "
            "never a final answer"
        )
        return _synthetic(method, 502, "unservable", text)
    return _Answer("recorded", status, wire_headers(method, status, headers, body), body, reason)


def _error(method: str, error: RecordedError) -> _Answer:
    header = (MOCK_HEADER, b"recorded-error")
    status, headers, body = error_answer(error.type, error.message, header, recorded="true")
    return _Answer("error", status, wire_headers(method, status, headers, body), body, "")


def _synthetic(
    method: str, status: int, why: str, text: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> _Answer:
    body = (text + "\n").encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (MOCK_HEADER, why.encode())]
    headers.extend(extra)
    return _Answer(why, status, wire_headers(method, status, headers, body), body, "")


def _recorded_error_of(exc: BaseException) -> RecordedError:
    if isinstance(exc, RecordedTransportError):
        # "recorded <type>: <message>", as RecordedError.to_exception words it.
        text = str(exc).removeprefix("recorded ")
        kind, _, message = text.partition(": ")
        return RecordedError(kind, message)
    return RecordedError.from_exception(exc)
