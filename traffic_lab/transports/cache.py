"""http4k's ``ServeCachedFrom`` and the record modes VCR.py users know, on httpx transports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import httpx

from ..errors import InvalidRecordModeError, UnmatchedRequestError
from ..exchange import FROM_CACHE
from ..matching import Matcher
from ..protocols import (
    AsyncSource,
    Clearable,
    Enumerable,
    KeyedLookup,
    NonBlockingLookup,
    ReadWriteCache,
    Source,
    matcher_of,
)
from ..redaction import Redactor
from .record import AsyncRecordingTransport, RecordingTransport
from .stream_timing import Timing, replay_pace, serve_exchange

_FROM_CACHE_EXT = {FROM_CACHE: True}

__all__ = [
    "AsyncCachingTransport",
    "AsyncCaptureTransport",
    "CachingTransport",
    "CaptureTransport",
    "RecordMode",
]


def _mark(response: httpx.Response) -> httpx.Response:
    if not response.extensions.get(FROM_CACHE):
        response.extensions = {**response.extensions, FROM_CACHE: True}
    return response


class CachingTransport(httpx.BaseTransport):
    """Answer from ``source`` when it has a response, else fall through (http4k ServeCachedFrom).

    Responses served from the source carry ``response.extensions["traffic_lab.from_cache"]``.
    Composed with :class:`RecordingTransport` over the same store, it is http4k's
    ``SimpleCachingFrom``: ``CachingTransport(cache, RecordingTransport(cache, HTTPTransport()))``.

    Parameters
    ----------
    source
        Any object with ``get(request) -> httpx.Response | None``.
    transport
        Where misses go; default ``httpx.HTTPTransport()``.
    timing, speed
        How a streamed body is served (from a store with ``lookup``): ``"none"`` (default) in
        its recorded chunks at once; ``"recorded"`` at the recorded pace, ``speed`` times
        faster (each gap and the whole wait are capped: see docs/capture-format.md).

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.testing import json_handler
    >>> cache = tl.MemoryCache()
    >>> live = httpx.MockTransport(json_handler())
    >>> transport = tl.CachingTransport(cache, tl.RecordingTransport(cache, live))
    >>> with httpx.Client(transport=transport) as client:
    ...     first = client.get("https://api.example/items")
    ...     second = client.get("https://api.example/items")
    >>> first.extensions.get("traffic_lab.from_cache"), second.extensions["traffic_lab.from_cache"]
    (None, True)
    """

    def __init__(
        self,
        source: Source,
        transport: httpx.BaseTransport | None = None,
        *,
        timing: Timing = "none",
        speed: float = 1.0,
    ) -> None:
        self._source = source
        self._get = _getter(source, replay_pace(timing, speed))
        self._inner = transport if transport is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        response = self._get(request)
        if response is not None:
            return _mark(response)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _getter(
    source: Source, pace: float | None = None
) -> Callable[[httpx.Request], httpx.Response | None]:
    """How a transport asks ``source``: by exchange when it can (a fresh, unread response for
    the client to read and decode as it would a live one, streamed in its recorded chunks),
    else through ``get``."""
    if not isinstance(source, KeyedLookup):
        return source.get
    lookup = source.lookup

    def serve(request: httpx.Request) -> httpx.Response | None:
        exchange = lookup(request)
        return None if exchange is None else serve_exchange(exchange, _FROM_CACHE_EXT, pace)

    return serve


def _async_getter(source: Source, pace: float | None = None) -> Callable[[httpx.Request], Any]:
    if isinstance(source, KeyedLookup) and (
        pace is not None or not isinstance(source, AsyncSource)
    ):
        lookup = source.lookup
        nowait = source.lookup_nowait if isinstance(source, NonBlockingLookup) else None

        async def serve(request: httpx.Request) -> httpx.Response | None:
            exchange: Any = BlockingIOError
            if nowait is not None:
                try:
                    exchange = nowait(request)
                except BlockingIOError:
                    pass
            if exchange is BlockingIOError:
                # A lookup that reads a file must not block the event loop.
                import anyio.to_thread

                exchange = await anyio.to_thread.run_sync(lookup, request)
            return None if exchange is None else serve_exchange(exchange, _FROM_CACHE_EXT, pace)

        return serve
    if isinstance(source, AsyncSource):
        return source.aget

    async def run_in_thread(request: httpx.Request) -> httpx.Response | None:
        # A store doing I/O in get() must not block the event loop.
        import anyio.to_thread

        return await anyio.to_thread.run_sync(source.get, request)

    return run_in_thread


class AsyncCachingTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`CachingTransport`.

    Uses the source's ``aget`` when it has one (memory stores answer without blocking);
    otherwise ``get`` runs in a worker thread so a store doing I/O never blocks the event loop.
    """

    def __init__(
        self,
        source: Source,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        timing: Timing = "none",
        speed: float = 1.0,
    ) -> None:
        self._source = source
        self._aget = _async_getter(source, replay_pace(timing, speed))
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self._aget(request)
        if response is not None:
            return _mark(response)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordMode(StrEnum):
    """When to record and when to replay (VCR.py's modes, plus ``rewrite``).

    ``once``
        An empty store records (and serves what it recorded in this session); a store that
        already held recordings when the transport was made only replays, and a miss raises.
    ``new_episodes``
        Replay what is recorded, record what is new.
    ``none``
        Replay only; a miss raises :class:`~traffic_lab.errors.UnmatchedRequestError` naming the
        nearest recorded requests. No request reaches the network.
    ``all``
        Every request goes to the network and is recorded; nothing is replayed.
    ``rewrite``
        Like ``all``, but the store's earlier recordings are cleared (``store.clear()``) before
        the first request, so the store ends up holding exactly this session's traffic.
    """

    ONCE = "once"
    NEW_EPISODES = "new_episodes"
    NONE = "none"
    ALL = "all"
    REWRITE = "rewrite"

    @classmethod
    def parse(cls, value: RecordMode | str) -> RecordMode:
        """The mode named by ``value``; an unknown name raises, listing the valid ones."""
        if isinstance(value, RecordMode):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise InvalidRecordModeError(
                f"unknown record mode {value!r}; valid modes: {valid}"
            ) from None


class _CaptureCore:
    """Sans-IO decisions shared by the sync and async capture transports."""

    def __init__(self, cache: ReadWriteCache, mode: RecordMode | str) -> None:
        self.mode = RecordMode.parse(mode)
        self.cache = cache
        effective = self.mode
        if effective is RecordMode.ONCE:
            try:
                empty = len(cache) == 0  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    f"record mode 'once' needs a store with len(); {type(cache).__name__} has none"
                ) from None
            effective = RecordMode.NEW_EPISODES if empty else RecordMode.NONE
        if effective is RecordMode.REWRITE and not isinstance(cache, Clearable):
            raise TypeError(
                f"record mode 'rewrite' needs a store with clear(); {type(cache).__name__} has none"
            )
        self.effective_mode = effective
        self.serve = effective in (RecordMode.NEW_EPISODES, RecordMode.NONE)
        self.record = effective is not RecordMode.NONE
        self._clear_pending = effective is RecordMode.REWRITE
        self._lock = threading.Lock()

    def before(self) -> None:
        if self._clear_pending:
            with self._lock:
                if self._clear_pending:
                    assert isinstance(self.cache, Clearable)  # checked when the mode was set
                    self.cache.clear()
                    self._clear_pending = False

    def miss(self, request: httpx.Request) -> Exception:
        """What a replay-only miss raises: the transport error recorded for this request, if
        that is all the store holds for it (caches never serve an error, so it is looked for
        here, on the miss path only), else :class:`UnmatchedRequestError`."""
        matcher = matcher_of(self.cache) or Matcher()
        candidates = list(self.cache.exchanges()) if isinstance(self.cache, Enumerable) else []
        failed = [ex for ex in candidates if ex.error is not None and ex.status_code is None]
        if failed:
            key = matcher.key(request)
            for exchange in reversed(failed):
                if matcher.key(exchange) == key:
                    assert exchange.error is not None
                    return exchange.error.to_exception(request)
        return UnmatchedRequestError(
            f"record mode {self.mode.value!r}: no recorded exchange matches "
            f"{request.method} {request.url}",
            request=request,
            nearest=matcher.nearest(request, candidates),
        )


class _Modes:
    _core: _CaptureCore

    @property
    def mode(self) -> RecordMode:
        """The mode asked for."""
        return self._core.mode

    @property
    def effective_mode(self) -> RecordMode:
        """What the mode resolved to (``once`` becomes ``new_episodes`` or ``none``)."""
        return self._core.effective_mode


class CaptureTransport(_Modes, httpx.BaseTransport):
    """Record into and replay from one store, under a :class:`RecordMode`.

    Parameters
    ----------
    cache
        A ReadWriteCache (``MemoryCache``, ``ParquetCache``, your own).
    transport
        Where live requests go; default ``httpx.HTTPTransport()``.
    mode
        ``"once"`` (default), ``"new_episodes"``, ``"none"``, ``"all"`` or ``"rewrite"``.
    redactor, tags
        As for :class:`RecordingTransport`.
    timing, speed
        How replayed streamed bodies are served, as for :class:`CachingTransport`.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.testing import json_handler
    >>> cache = tl.MemoryCache()
    >>> live = httpx.MockTransport(json_handler())
    >>> with httpx.Client(transport=tl.CaptureTransport(cache, live, mode="once")) as client:
    ...     client.get("https://api.example/items").status_code
    200
    >>> with httpx.Client(transport=tl.CaptureTransport(cache, live, mode="none")) as client:
    ...     client.get("https://api.example/other")
    Traceback (most recent call last):
    ...
    traffic_lab.errors.UnmatchedRequestError: record mode 'none': no recorded exchange matches GET https://api.example/other
    nearest recorded requests:
      GET https://api.example/items
        - path: '/items' != '/other'
    """

    def __init__(
        self,
        cache: ReadWriteCache,
        transport: httpx.BaseTransport | None = None,
        *,
        mode: RecordMode | str = RecordMode.ONCE,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
        timing: Timing = "none",
        speed: float = 1.0,
    ) -> None:
        self._core = _CaptureCore(cache, mode)
        self._pace = replay_pace(timing, speed)
        self._get = _getter(cache, self._pace)
        inner = transport if transport is not None else httpx.HTTPTransport()
        self._live: httpx.BaseTransport = (
            RecordingTransport(cache, inner, redactor=redactor, tags=tags)
            if self._core.record
            else inner
        )

    def over(self, transport: httpx.BaseTransport) -> CaptureTransport:
        """This capture (store, mode, redactor, tags) sending its live requests through
        ``transport``: what :func:`traffic_lab.capture` puts in front of each client's own."""
        twin = object.__new__(CaptureTransport)
        twin._core, twin._get, twin._pace = self._core, self._get, self._pace
        live = self._live
        twin._live = live.over(transport) if isinstance(live, RecordingTransport) else transport
        return twin

    def async_over(self, transport: httpx.AsyncBaseTransport) -> AsyncCaptureTransport:
        """The async twin of :meth:`over`: the same decisions (a ``rewrite`` clears once, a
        ``once`` resolved once), for an ``httpx.AsyncClient``'s transport."""
        twin = object.__new__(AsyncCaptureTransport)
        twin._core, twin._aget = self._core, _async_getter(self._core.cache, self._pace)
        live = self._live
        twin._live = (
            AsyncRecordingTransport.sharing(live, transport)
            if isinstance(live, RecordingTransport)
            else transport
        )
        return twin

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        core = self._core
        core.before()
        if core.serve:
            response = self._get(request)
            if response is not None:
                return _mark(response)
            if not core.record:
                raise core.miss(request)
        return self._live.handle_request(request)

    def close(self) -> None:
        self._live.close()


class AsyncCaptureTransport(_Modes, httpx.AsyncBaseTransport):
    """The async twin of :class:`CaptureTransport`."""

    def __init__(
        self,
        cache: ReadWriteCache,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        mode: RecordMode | str = RecordMode.ONCE,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
        timing: Timing = "none",
        speed: float = 1.0,
    ) -> None:
        self._core = _CaptureCore(cache, mode)
        self._aget = _async_getter(cache, replay_pace(timing, speed))
        inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._live: httpx.AsyncBaseTransport = (
            AsyncRecordingTransport(cache, inner, redactor=redactor, tags=tags)
            if self._core.record
            else inner
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        core = self._core
        core.before()
        if core.serve:
            response = await self._aget(request)
            if response is not None:
                return _mark(response)
            if not core.record:
                raise core.miss(request)
        return await self._live.handle_async_request(request)

    async def aclose(self) -> None:
        await self._live.aclose()
