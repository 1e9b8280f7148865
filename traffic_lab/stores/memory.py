"""In-memory stores: :class:`MemoryCache` and :class:`MemoryStream`; thread-safe, without I/O."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

import httpx

from ..exchange import FROM_CACHE, REPLAYED, Exchange, check_storable
from ..matching import Matcher
from ..redaction import Redactor
from ._pandas_views import PandasViews, ReplayViews

__all__ = ["FROM_CACHE", "REPLAYED", "MemoryCache", "MemoryStream"]

_FROM_CACHE_EXT = {FROM_CACHE: True}


class _Settling:
    """The memory stores' writes: exchanges in put order, redacted before any read.

    ``put_redacting`` (:class:`~traffic_lab.protocols.DeferredRedaction`) queues an exchange with
    its redactor, so a recorded request does not wait for the redaction; every read settles the
    queue first, under the lock, so no reader ever sees an unredacted exchange.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # readers and put(); put_redacting only appends
        self._pending: deque[tuple[Exchange, Redactor]] = deque()

    def _add(self, exchange: Exchange) -> None:  # called with the lock held
        raise NotImplementedError

    def _settle_locked(self) -> None:
        pending = self._pending
        while pending:
            exchange, redactor = pending.popleft()
            self._add(redactor.redact(exchange))

    def _settle(self) -> None:
        if self._pending:
            with self._lock:
                self._settle_locked()

    def put(self, exchange: Exchange) -> None:
        """Store an exchange (refused with :class:`~traffic_lab.errors.InvalidExchangeError`,
        before anything is stored, if no store can hold it)."""
        check_storable(exchange)
        with self._lock:
            self._settle_locked()
            self._add(exchange)

    def put_redacting(self, exchange: Exchange, redactor: Redactor) -> None:
        """Store ``redactor.redact(exchange)``; the redaction runs at the next read."""
        check_storable(exchange)
        self._pending.append((exchange, redactor))  # deque.append is atomic

    def _count(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._count() + len(self._pending)


class MemoryCache(_Settling, PandasViews):
    """A ReadWriteCache in memory: lookup by request key, the latest exchange for a key wins.

    Exchanges that failed in the transport or were truncated are kept (see :meth:`exchanges`)
    but never served: a cut gzip body cannot decode, and a cache answers with responses.

    Parameters
    ----------
    matcher
        How requests are keyed; default :class:`~traffic_lab.Matcher`.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> cache = tl.MemoryCache()
    >>> cache.put(tl.Exchange.from_httpx(httpx.Request("GET", "https://a.example/x"),
    ...                                  httpx.Response(200, text="hi")))
    >>> cache.get(httpx.Request("GET", "https://a.example/x")).text
    'hi'
    >>> cache.get(httpx.Request("GET", "https://a.example/y")) is None
    True
    """

    def __init__(self, matcher: Matcher | None = None) -> None:
        super().__init__()
        self.matcher = matcher if matcher is not None else Matcher()
        self._index: dict[str, Exchange] = {}
        self._all: list[Exchange] = []

    def _add(self, exchange: Exchange) -> None:
        self._all.append(exchange)
        if exchange.status_code is not None and not exchange.truncated:
            self._index[self.matcher.key(exchange)] = exchange

    def _count(self) -> int:
        return len(self._all)

    def get(self, request: httpx.Request) -> httpx.Response | None:
        """A fresh response for ``request``, body already read, or ``None`` on a miss."""
        exchange = self.lookup(request)
        return None if exchange is None else exchange.read_response(request, _FROM_CACHE_EXT)

    async def aget(self, request: httpx.Request) -> httpx.Response | None:
        """A fresh, unread response for the async transports (memory lookups never block)."""
        exchange = self.lookup(request)
        return None if exchange is None else exchange.new_response(_FROM_CACHE_EXT)

    def lookup(self, request: httpx.Request) -> Exchange | None:
        """The exchange that would answer ``request``, or ``None``."""
        self._settle()
        return self._index.get(self.matcher.key(request))

    lookup_nowait = lookup  # never reads a file (NonBlockingLookup)

    def __contains__(self, request: object) -> bool:
        return isinstance(request, httpx.Request) and self.lookup(request) is not None

    def keys(self) -> list[str]:
        """The keys that answer requests."""
        with self._lock:
            self._settle_locked()
            return list(self._index)

    def exchanges(self) -> Iterator[Exchange]:
        """Every exchange put, in the order it was put."""
        with self._lock:
            self._settle_locked()
            return iter(list(self._all))

    def clear(self) -> None:
        """Forget every exchange."""
        with self._lock:
            self._pending.clear()
            self._index.clear()
            self._all.clear()

    def __repr__(self) -> str:
        self._settle()
        return f"<MemoryCache {len(self._all)} exchanges, {len(self._index)} keys>"


class MemoryStream(_Settling, ReplayViews):
    """A ReadWriteStream in memory: exchanges in the order they were put.

    Iteration sees the exchanges present when it started; puts during iteration are kept
    for the next one.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> stream = tl.MemoryStream()
    >>> for i in range(3):
    ...     stream.put(tl.Exchange("GET", f"https://a.example/{i}", status_code=200))
    >>> [r.url.path for r in stream.requests()]
    ['/0', '/1', '/2']
    """

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Exchange] = []

    def _add(self, exchange: Exchange) -> None:
        self._items.append(exchange)

    def _count(self) -> int:
        return len(self._items)

    def exchanges(self) -> Iterator[Exchange]:
        """The exchanges in recorded order."""
        with self._lock:
            self._settle_locked()
            return iter(list(self._items))

    def __getitem__(self, index: int) -> Exchange:
        self._settle()
        return self._items[index]

    def clear(self) -> None:
        """Forget every exchange."""
        with self._lock:
            self._pending.clear()
            self._items.clear()

    def __repr__(self) -> str:
        return f"<MemoryStream {len(self)} exchanges>"
