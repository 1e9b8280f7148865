"""The five traffic concepts of http4k (``org.http4k.traffic``) as structural protocols.

Write your own store (a database, an object store) by providing these methods; no subclassing or
import of traffic_lab is needed.

==================  ========================  ==========================================
http4k              traffic_lab               contract
==================  ========================  ==========================================
``Sink``            :class:`Sink`             ``put(exchange)`` stores one exchange
``Source``          :class:`Source`           ``get(request)`` -> stored response or None
``Replay``          :class:`Replay`           ``requests()/responses()/exchanges()``
``ReadWriteCache``  :class:`ReadWriteCache`   Sink + Source: lookup by request
``ReadWriteStream`` :class:`ReadWriteStream`  Sink + Replay: ordered iteration
==================  ========================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx

    from .exchange import Exchange
    from .matching import Matcher
    from .redaction import Redactor

__all__ = [
    "AsyncSource",
    "Clearable",
    "DeferredRedaction",
    "Enumerable",
    "KeyedLookup",
    "NonBlockingLookup",
    "Matched",
    "ReadWriteCache",
    "ReadWriteStream",
    "Replay",
    "Sink",
    "Source",
    "exchanges_of",
    "matcher_of",
]


@runtime_checkable
class Sink(Protocol):
    """Consumes exchanges for storage. ``put`` should be cheap: buffer rather than block."""

    def put(self, exchange: Exchange) -> None: ...


@runtime_checkable
class Source(Protocol):
    """Answers a request from storage: a fresh response, or ``None`` on a miss.

    The stores in traffic_lab return a response whose body is already read, so ``.json()``,
    ``.text`` and ``.content`` work at once; a response with a stream left to read works with
    every transport too.
    """

    def get(self, request: httpx.Request) -> httpx.Response | None: ...


@runtime_checkable
class AsyncSource(Protocol):
    """Optional: a Source that can answer without blocking an event loop.

    The async transports call ``aget`` when a source has it, and otherwise run ``get`` in a
    worker thread so that a store doing I/O never blocks the loop.
    """

    async def aget(self, request: httpx.Request) -> httpx.Response | None: ...


@runtime_checkable
class KeyedLookup(Protocol):
    """Optional: a Source that can return the stored *exchange* for a request.

    The transports use it to serve a fresh, unread response straight from the exchange (the
    client reads and decodes it as it would a live one), while ``get`` returns a response that
    is already read, ready for ``.json()`` in a notebook.
    """

    def lookup(self, request: httpx.Request) -> Exchange | None: ...


@runtime_checkable
class NonBlockingLookup(Protocol):
    """Optional: :class:`KeyedLookup` answered from memory alone, for an event loop.

    ``lookup_nowait`` returns what ``lookup`` would, or raises ``BlockingIOError`` when the
    answer needs a file read; the caller then asks ``lookup`` in a worker thread. The mock
    server answers most cold requests this way without handing them to its worker.
    """

    def lookup_nowait(self, request: httpx.Request) -> Exchange | None: ...


@runtime_checkable
class Replay(Protocol):
    """Recorded traffic in recorded order.

    ``responses()`` raises the recorded transport error again when it reaches an exchange that
    failed in the transport (as replaying that exchange would).
    """

    def requests(self) -> Iterator[httpx.Request]: ...

    def responses(self) -> Iterator[httpx.Response]: ...

    def exchanges(self) -> Iterator[Exchange]: ...


@runtime_checkable
class ReadWriteCache(Sink, Source, Protocol):
    """Storage optimised for lookup by request (http4k ``ReadWriteCache``)."""


@runtime_checkable
class ReadWriteStream(Sink, Replay, Protocol):
    """Storage optimised for ordered iteration (http4k ``ReadWriteStream``)."""


# -- capabilities a store may have beyond the five concepts ------------------------------------
# Small protocols, checked with isinstance() in one place each, instead of probing attributes.


@runtime_checkable
class Enumerable(Protocol):
    """A store that can list every exchange it holds (every store in traffic_lab can)."""

    def exchanges(self) -> Iterator[Exchange]: ...


@runtime_checkable
class Clearable(Protocol):
    """A store that can forget its recordings (record mode ``rewrite`` needs it)."""

    def clear(self) -> None: ...


@runtime_checkable
class Matched(Protocol):
    """A store that keys requests with a :class:`~traffic_lab.Matcher` of its own."""

    matcher: Matcher


@runtime_checkable
class DeferredRedaction(Protocol):
    """A Sink that takes an exchange with the redactor still to apply, and applies it before
    any reader sees the exchange (in a batch, off the recorded request's path).

    The recording transports hand exchanges over this way when the sink offers it and the
    redactor is a plain :class:`~traffic_lab.Redactor` (no ``extra`` step, which could raise).
    """

    def put_redacting(self, exchange: Exchange, redactor: Redactor) -> None: ...


def exchanges_of(source: Any, what: str = "this") -> Iterator[Exchange]:
    """The exchanges of a store (:class:`Enumerable`) or of an iterable of exchanges.

    ``what`` names the caller in the ``TypeError`` raised for anything else.
    """
    if isinstance(source, Enumerable):
        return iter(source.exchanges())
    if isinstance(source, Iterable) and not isinstance(source, str | bytes | bytearray):
        return iter(source)
    raise TypeError(
        f"{what} takes a store with exchanges() or an iterable of exchanges, "
        f"not {type(source).__name__}"
    )


def matcher_of(store: object) -> Matcher | None:
    """The store's own matcher (:class:`Matched`), or ``None``."""
    from .matching import Matcher

    if isinstance(store, Matched) and isinstance(store.matcher, Matcher):
        return store.matcher
    return None
