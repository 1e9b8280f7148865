"""``tl.capture()``: record and replay every httpx (and ``requests``) client inside a block.

The patch point
---------------
One method per client class: ``httpx.Client._transport_for_url`` and
``httpx.AsyncClient._transport_for_url`` (and, when ``requests`` is installed,
``requests.adapters.HTTPAdapter.send``). httpx calls ``_transport_for_url`` once per request
*after* redirects, auth and event hooks have done their part, to pick the transport (the client's
own, or a mounted one) that sends it. While a capture is active in the calling context, the
patched method hands back that transport wrapped in a :class:`~traffic_lab.CaptureTransport`
over the capture's store, so:

- clients created before the block, or inside third-party code (SDKs), are covered: the method
  is looked up on the class at every request;
- redirects, auth flows and event hooks run exactly as live, each hop is one exchange;
- every transport is wrapped, mounted and custom ones included, so ``mode="none"`` lets nothing
  reach any transport;
- a client whose transport is already a traffic_lab transport is left alone (not recorded twice).

The patch is installed when the first capture starts and removed when the last one ends
(a reference count under a lock); the original functions are put back as they were (the same
objects), also after an exception. Outside every capture the patched method costs one context
variable lookup.

Scope
-----
A capture is a :mod:`contextvars` value: concurrent asyncio tasks and threads each see their own,
nested captures shadow outer ones (the inner wins). Threads do not inherit context variables:
a thread started inside the block is not captured unless it runs in a copy of the context
(``contextvars.copy_context().run``; ``asyncio.to_thread`` and ``anyio.to_thread`` do this).
``scope="process"`` makes a capture the default of every context and thread that has none of its
own (``%traffic on`` and the pytest plugin use it). :func:`no_capture` opts a block out.
"""

from __future__ import annotations

import contextvars
import html
import importlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx

from ..errors import UnmatchedRequestError
from ..exchange import FROM_CACHE
from ..matching import Matcher
from ..protocols import ReadWriteCache
from ..redaction import Redactor
from .cache import (
    AsyncCachingTransport,
    AsyncCaptureTransport,
    CachingTransport,
    CaptureTransport,
    RecordMode,
)
from .record import AsyncRecordingTransport, RecordingTransport
from .stream_timing import Timing

__all__ = ["Capture", "CaptureReport", "capture", "no_capture"]

log = logging.getLogger("traffic_lab.capture")


@dataclass(frozen=True, slots=True)
class CaptureReport:
    """What one capture did: requests recorded (sent live), replayed (served from the store,
    recorded errors included) and missed (no recording in a replay-only mode)."""

    recorded: int
    replayed: int
    missed: int
    target: str
    mode: str

    def __str__(self) -> str:
        return (
            f"traffic_lab: {self.recorded} recorded, {self.replayed} replayed, "
            f"{self.missed} missed ({self.target}, mode {self.mode})"
        )

    def _repr_html_(self) -> str:
        colour = "#b00020" if self.missed else "inherit"
        return (
            '<div class="traffic-lab-status" style="font-size:85%;opacity:.8;'
            f'color:{colour}">{html.escape(str(self))}</div>'
        )


class _Unbound(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The placeholder inner transport of a capture's template; never sends."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("traffic_lab: a capture template was asked to send")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("traffic_lab: a capture template was asked to send")


_OWN = (
    CachingTransport,
    AsyncCachingTransport,
    CaptureTransport,
    AsyncCaptureTransport,
    RecordingTransport,
    AsyncRecordingTransport,
)


def _is_own(transport: object) -> bool:
    """A transport traffic_lab built (or marked ``traffic_lab_transport = True``)."""
    return isinstance(transport, _OWN) or getattr(transport, "traffic_lab_transport", False)


class _Route(httpx.BaseTransport):
    """What a sync client sends through inside a capture: its own transport, behind the
    capture's, with the capture counting what happened."""

    __slots__ = ("_capture", "_via")
    traffic_lab_transport = True

    def __init__(self, capture: Capture, via: CaptureTransport) -> None:
        self._capture = capture
        self._via = via

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        capture = self._capture
        try:
            response = self._via.handle_request(request)
        except BaseException as exc:
            capture._failed(exc)
            raise
        capture._answered(response)
        return response

    def close(self) -> None:
        pass  # the client closes its own transport


class _AsyncRoute(httpx.AsyncBaseTransport):
    """The async twin of :class:`_Route`."""

    __slots__ = ("_capture", "_via")
    traffic_lab_transport = True

    def __init__(self, capture: Capture, via: AsyncCaptureTransport) -> None:
        self._capture = capture
        self._via = via

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        capture = self._capture
        try:
            response = await self._via.handle_async_request(request)
        except BaseException as exc:
            capture._failed(exc)
            raise
        capture._answered(response)
        return response

    async def aclose(self) -> None:
        pass


class Capture:
    """A running (or finished) :func:`capture`: a context manager, sync and async.

    ``store`` is where it records; ``report`` is set on exit (a :class:`CaptureReport`);
    ``recorded``, ``replayed`` and ``missed`` count so far.
    """

    def __init__(
        self,
        target: ReadWriteCache | str | os.PathLike[str],
        mode: RecordMode | str = RecordMode.NEW_EPISODES,
        *,
        matcher: Matcher | None = None,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
        scope: Literal["context", "process"] = "context",
        report: bool = True,
        on_miss: Callable[[UnmatchedRequestError], None] | None = None,
        timing: Timing = "none",
        speed: float = 1.0,
    ) -> None:
        self.mode = RecordMode.parse(mode)
        if scope not in ("context", "process"):
            raise ValueError(f"scope must be 'context' or 'process', not {scope!r}")
        self._owns_store = isinstance(target, (str, os.PathLike))
        if isinstance(target, (str, os.PathLike)):
            from ..stores.parquet import ParquetCache

            self.store: ReadWriteCache = ParquetCache(target, matcher)
            self.target = os.fspath(target)
        else:
            if matcher is not None:
                raise TypeError(
                    "matcher= applies to a capture path; a store keys requests with its own "
                    "matcher (build it with the matcher instead)"
                )
            self.store = target
            self.target = str(getattr(target, "path", type(target).__name__))
        self._scope = scope
        self._show = report
        self._on_miss = on_miss
        self._template = CaptureTransport(
            self.store,
            _Unbound(),
            mode=self.mode,
            redactor=redactor,
            tags=tags,
            timing=timing,
            speed=speed,
        )
        self._sync: weakref.WeakKeyDictionary[object, _Route] = weakref.WeakKeyDictionary()
        self._async: weakref.WeakKeyDictionary[object, _AsyncRoute] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.recorded = self.replayed = self.missed = 0
        self.report: CaptureReport | None = None
        self._token: contextvars.Token[Capture | None] | None = None
        self._entered = False

    @property
    def effective_mode(self) -> RecordMode:
        """What the mode resolved to when the capture started (``once`` becomes
        ``new_episodes`` on an empty store, else ``none``)."""
        return self._template.effective_mode

    def retag(self, tags: Mapping[str, str] | None) -> None:
        """Tag what is recorded from now on with ``tags`` instead (``%traffic on`` names each
        cell this way). An exchange takes its tags when it is stored: a response read later
        gets the tags of that moment."""
        live = self._template._live
        if isinstance(live, RecordingTransport):
            live._core.tags = dict(tags) if tags else None

    # -- routing (called by the patched methods) ----------------------------------------------
    def _route(self, transport: httpx.BaseTransport) -> _Route:
        route = self._sync.get(transport)
        if route is None:
            route = self._sync[transport] = self._route_once(transport)
        return route

    def _route_once(self, transport: httpx.BaseTransport) -> _Route:
        """A route for a transport used once (requests' live leg is one per request)."""
        return _Route(self, self._template.over(transport))

    def _aroute_once(self, transport: httpx.AsyncBaseTransport) -> _AsyncRoute:
        """The async :meth:`_route_once` (httpx2's live leg is one per request)."""
        return _AsyncRoute(self, self._template.async_over(transport))

    def _aroute(self, transport: httpx.AsyncBaseTransport) -> _AsyncRoute:
        route = self._async.get(transport)
        if route is None:
            route = _AsyncRoute(self, self._template.async_over(transport))
            self._async[transport] = route
        return route

    def _answered(self, response: httpx.Response) -> None:
        with self._lock:
            if response.extensions.get(FROM_CACHE):
                self.replayed += 1
            else:
                self.recorded += 1

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            if isinstance(exc, UnmatchedRequestError):
                self.missed += 1
            elif self._template._core.record:
                self.recorded += 1  # a transport error, recorded and re-raised
            else:
                self.replayed += 1  # a recorded transport error, raised again
        if isinstance(exc, UnmatchedRequestError) and self._on_miss is not None:
            self._on_miss(exc)

    # -- the block ------------------------------------------------------------------------------
    def __enter__(self) -> Capture:
        if self._entered:
            raise RuntimeError("a Capture runs once; call tl.capture() again for another block")
        self._entered = True
        _PATCH.acquire()
        if self._scope == "process":
            with _PATCH.lock:
                _PROCESS.append(self)
        else:
            self._token = _CURRENT.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._token is not None:
                _CURRENT.reset(self._token)
                self._token = None
            else:
                with _PATCH.lock:
                    if self in _PROCESS:
                        _PROCESS.remove(self)
        finally:
            _PATCH.release()
            self._finish()

    async def __aenter__(self) -> Capture:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        flush = getattr(self.store, "close" if self._owns_store else "flush", None)
        if callable(flush):
            flush()
        self.report = CaptureReport(
            self.recorded, self.replayed, self.missed, self.target, self.effective_mode.value
        )
        if self._show:
            show_report(self.report)


def show_report(report: CaptureReport) -> None:
    """The report as a compact line under a notebook cell, or a log line elsewhere."""
    shell = _kernel_shell()
    if shell is None:
        log.info("%s", report)
        return
    from IPython.display import display

    bundle = {"text/plain": str(report), "text/html": report._repr_html_()}
    display(bundle, raw=True)  # type: ignore[no-untyped-call]


def _kernel_shell() -> Any:
    """The IPython shell of a running kernel, or None (imports nothing that is not loaded)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None


def capture(
    target: ReadWriteCache | str | os.PathLike[str],
    mode: RecordMode | str = RecordMode.NEW_EPISODES,
    *,
    matcher: Matcher | None = None,
    redactor: Redactor | None = None,
    tags: Mapping[str, str] | None = None,
    scope: Literal["context", "process"] = "context",
    report: bool = True,
    timing: Timing = "none",
    speed: float = 1.0,
) -> Capture:
    """Record and replay every httpx (and ``requests``) request made inside a ``with`` block.

    Clients built anywhere (your code, an SDK, before or during the block) send through a
    :class:`~traffic_lab.CaptureTransport` over ``target`` while the block runs in this context
    (see the module docstring for the patch point and its scope).

    Parameters
    ----------
    target
        A capture path (opened as a :class:`~traffic_lab.ParquetCache`, flushed and closed on
        exit) or any ReadWriteCache (flushed on exit if it can).
    mode
        A :class:`~traffic_lab.transports.RecordMode`: ``new_episodes`` (default), ``once``,
        ``none`` (nothing reaches the network; a miss raises
        :class:`~traffic_lab.errors.UnmatchedRequestError`), ``all``, ``rewrite``.
    matcher
        How requests are keyed, for a path target (a store brings its own).
    redactor, tags
        As for :class:`~traffic_lab.RecordingTransport`.
    scope
        ``"context"`` (default): this thread or task and what copies its context;
        ``"process"``: every context without a capture of its own.
    report
        Show "N recorded, M replayed, K missed" on exit (under the cell in a notebook, else a
        log line on ``traffic_lab.capture``); it is kept as ``.report`` either way.
    timing, speed
        How replayed streamed responses (SSE, chunked) arrive: ``"none"`` (default) in their
        recorded chunks at once; ``"recorded"`` at the recorded pace, ``speed`` times faster.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.testing import LoopbackServer
    >>> cache = tl.MemoryCache()
    >>> with LoopbackServer() as server, httpx.Client(base_url=server.url) as client:
    ...     with tl.capture(cache) as live:
    ...         client.get("/json?size=64").status_code
    ...     with tl.capture(cache, mode="none") as replay:
    ...         client.get("/json?size=64").status_code
    200
    200
    >>> print(live.report)
    traffic_lab: 1 recorded, 0 replayed, 0 missed (MemoryCache, mode new_episodes)
    >>> replay.replayed, replay.recorded
    (1, 0)
    """
    return Capture(
        target,
        mode,
        matcher=matcher,
        redactor=redactor,
        tags=tags,
        scope=scope,
        report=report,
        timing=timing,
        speed=speed,
    )


@contextmanager
def no_capture() -> Iterator[None]:
    """Send live inside this block, whatever capture is active around it (the opt-out)."""
    token = _CURRENT.set(_OFF)
    try:
        yield
    finally:
        _CURRENT.reset(token)


# -- the patch ----------------------------------------------------------------------------------
_CURRENT: contextvars.ContextVar[Capture | None] = contextvars.ContextVar(
    "traffic_lab.capture", default=None
)
_PROCESS: list[Capture] = []  # process-wide captures, the last one wins
_OFF = object.__new__(Capture)  # no_capture()'s marker: an unset Capture never routes


def active_capture() -> Capture | None:
    """The capture the current context sends through, or None."""
    current = _CURRENT.get()
    if current is None:
        return _PROCESS[-1] if _PROCESS else None
    return None if current is _OFF else current


class _Patch:
    """The patched methods, installed while at least one capture runs."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.count = 0
        self.saved: list[tuple[type, str, Any]] = []

    def acquire(self) -> None:
        with self.lock:
            if self.count == 0:
                self._install()
            self.count += 1

    def release(self) -> None:
        with self.lock:
            self.count -= 1
            if self.count == 0:
                self._uninstall()

    def _swap(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        self.saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def _install(self) -> None:
        try:
            self._swap(httpx.Client, "_transport_for_url", lambda f: _patch(f, "_route"))
            self._swap(httpx.AsyncClient, "_transport_for_url", lambda f: _patch(f, "_aroute"))
            try:
                # Through sys.modules, not the package's attributes: the requests loaded now.
                adapters = importlib.import_module(__package__ + ".requests_adapter")
            except ImportError:  # requests is an optional extra
                pass
            else:
                self._swap(adapters.HTTPAdapter, "send", adapters.patched_send)
            try:
                bridge = importlib.import_module(__package__ + ".httpx2_bridge")
            except ImportError:  # httpx2: what newer SDKs build on, when installed
                pass
            else:
                bridge.patch(self._swap, active_capture)
        except BaseException:
            self._uninstall()
            raise

    def _uninstall(self) -> None:
        while self.saved:
            owner, name, original = self.saved.pop()
            setattr(owner, name, original)


def _patch(original: Callable[[Any, httpx.URL], Any], route: str) -> Any:
    """``Client._transport_for_url`` (``route="_route"``) or ``AsyncClient``'s
    (``"_aroute"``): the client's transport, behind the active capture's."""

    def _transport_for_url(self: Any, url: httpx.URL) -> Any:
        transport = original(self, url)
        capture = active_capture()
        if capture is None or _is_own(transport):
            return transport
        return getattr(capture, route)(transport)

    _transport_for_url.__wrapped__ = original  # type: ignore[attr-defined]
    _transport_for_url.__doc__ = "traffic_lab.capture: " + (original.__doc__ or "").strip()
    return _transport_for_url


_PATCH = _Patch()
