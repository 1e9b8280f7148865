"""http4k's ``Responder``: a handler that answers from a Source, or from a Replay in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx

from .._types import Handler
from ..errors import ReplayExhaustedError, UnmatchedRequestError
from ..exchange import FROM_CACHE, REPLAYED, Exchange
from ..matching import Matcher
from ..protocols import Enumerable, KeyedLookup, Replay, Source, matcher_of
from .stream_timing import Timing, replay_pace, serve_exchange

__all__ = ["NO_MORE_TRAFFIC", "responder"]

#: The body of the 503 answered on a miss or an exhausted replay (as http4k does).
NO_MORE_TRAFFIC = "no more traffic to replay"


def _no_more_traffic() -> httpx.Response:
    return httpx.Response(503, text=NO_MORE_TRAFFIC)


def responder(
    store: Source | Replay,
    *,
    strict: bool = False,
    matcher: Matcher | None = None,
    timing: Timing = "none",
    speed: float = 1.0,
) -> Handler:
    """A handler that answers requests from recorded traffic.

    From a Source (an object with ``get``), each request is looked up by key. From a Replay (an
    object with ``exchanges()`` and no ``get``), the recorded responses are answered in recorded
    order, whatever is asked. A miss, or an exhausted replay, answers ``503 no more traffic to
    replay``; an exchange recorded with a transport error raises that error again.

    ``httpx.MockTransport(responder(x))`` serves both ``httpx.Client`` and ``httpx.AsyncClient``.

    Parameters
    ----------
    store
        A Source (lookup by request) or a Replay (answers in order).
    strict
        Raise instead of answering 503: :class:`~traffic_lab.errors.UnmatchedRequestError` for a
        miss
        (a Source), or for a request that differs from the next recorded one (a Replay); its
        message names the nearest recorded requests and what differed.
        :class:`~traffic_lab.errors.ReplayExhaustedError` once a Replay has no more responses.
    matcher
        For strict diagnostics; default: the store's ``matcher`` attribute, else ``Matcher()``.
    timing, speed
        ``"recorded"``: streamed bodies arrive at their recorded pace, ``speed`` times faster
        (a Replay, or a Source with ``lookup``); ``"none"`` (default): at once.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> stream = tl.MemoryStream()
    >>> stream.put(tl.Exchange("GET", "https://a.example/1", status_code=200))
    >>> with httpx.Client(transport=httpx.MockTransport(tl.responder(stream))) as client:
    ...     [client.get("https://a.example/1").status_code, client.get("https://a.example/2").text]
    [200, 'no more traffic to replay']
    """
    if matcher is None:
        matcher = matcher_of(store) or Matcher()
    pace = replay_pace(timing, speed)
    if isinstance(store, Source):
        return _SourceResponder(store, strict, matcher, pace)
    if isinstance(store, Enumerable):
        return _ReplayResponder(store, strict, matcher, pace)
    raise TypeError(
        f"responder() needs a Source (get) or a Replay (exchanges); got {type(store).__name__}"
    )


class _SourceResponder:
    def __init__(self, source: Source, strict: bool, matcher: Matcher, pace: float | None) -> None:
        self.source = source
        self.strict = strict
        self.matcher = matcher
        self.pace = pace

    def _get(self, request: httpx.Request) -> httpx.Response | None:
        source = self.source
        if self.pace is None or not isinstance(source, KeyedLookup):
            return source.get(request)
        exchange = source.lookup(request)
        return None if exchange is None else serve_exchange(exchange, None, self.pace)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self._get(request)
        if response is not None:
            if not response.extensions.get(FROM_CACHE):
                response.extensions = {**response.extensions, FROM_CACHE: True}
            return response
        if not self.strict:
            return _no_more_traffic()
        source = self.source
        candidates = list(source.exchanges()) if isinstance(source, Enumerable) else []
        raise UnmatchedRequestError(
            f"no recorded exchange matches {request.method} {request.url}",
            request=request,
            nearest=self.matcher.nearest(request, candidates),
        )


class _ReplayResponder:
    def __init__(self, replay: Replay, strict: bool, matcher: Matcher, pace: float | None) -> None:
        self.replay = replay
        self.pace = pace
        self.strict = strict
        self.matcher = matcher
        self._iterator: Iterator[Exchange] | None = None
        self._lock = threading.Lock()
        self.served = 0

    def _next(self) -> Exchange | None:
        with self._lock:
            if self._iterator is None:
                self._iterator = iter(self.replay.exchanges())
            exchange = next(self._iterator, None)
            if exchange is not None:
                self.served += 1
            return exchange

    def __call__(self, request: httpx.Request) -> httpx.Response:
        exchange = self._next()
        if exchange is None:
            if self.strict:
                raise ReplayExhaustedError(
                    f"{NO_MORE_TRAFFIC}: all {self.served} recorded responses were served; "
                    f"asked for {request.method} {request.url}"
                )
            return _no_more_traffic()
        if self.strict:
            differences = self.matcher.diff(exchange, request)
            if differences:
                raise UnmatchedRequestError(
                    f"request {self.served} of the replay differs from the recording: "
                    f"{request.method} {request.url}",
                    request=request,
                    nearest=[(exchange.request, differences)],
                )
        # Raises the recorded transport error again for an exchange that failed.
        return serve_exchange(exchange, {REPLAYED: True}, self.pace)
