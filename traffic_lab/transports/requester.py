"""The requester: send recorded requests through a real client and pair each live response with
the recorded exchange; and a diff of recorded against live responses."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..exchange import Exchange
from ..protocols import Replay, exchanges_of
from ..redaction import REDACTED
from ..wire import rebased_text

__all__ = [
    "MISSING",
    "VOLATILE_HEADERS",
    "ReplayResult",
    "ResponseDiff",
    "areplay_requests",
    "build_replay_request",
    "diff_responses",
    "replay_requests",
]

#: Headers that differ between any two responses; left out of diffs by default.
VOLATILE_HEADERS = frozenset(
    {
        "date",
        "age",
        "expires",
        "last-modified",
        "etag",
        "set-cookie",
        "server-timing",
        "x-request-id",
        "x-amzn-requestid",
        "x-amzn-trace-id",
        "cf-ray",
        "report-to",
        "nel",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    }
)
# Headers the client must compute for the message it actually sends.
_HOP_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


#: Stands in a JSON diff for a value that one side does not have.
MISSING = "<missing>"


@dataclass(frozen=True, slots=True)
class ResponseDiff:
    """Differences between a recorded and a live response. Falsy when they agree.

    ``status`` is ``(recorded, live)`` or ``None``; ``headers`` lists
    ``(name, recorded values, live values)``; ``json`` lists ``(path, recorded, live)`` with
    JSONPath-like paths (``$.items[0].name``; a missing side is :data:`MISSING`); ``body`` is True
    when the bodies differ (for JSON bodies, exactly when ``json`` is non-empty).
    """

    status: tuple[int | None, int | None] | None = None
    headers: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    json: list[tuple[str, Any, Any]] = field(default_factory=list)
    body: bool = False

    def __bool__(self) -> bool:
        return self.status is not None or bool(self.headers) or self.body

    def __str__(self) -> str:
        if not self:
            return "no differences"
        lines = []
        if self.status is not None:
            lines.append(f"status: {self.status[0]} -> {self.status[1]}")
        for name, old, new in self.headers:
            lines.append(f"header {name}: {old} -> {new}")
        for path, old, new in self.json:
            lines.append(f"json {path}: {old!r} -> {new!r}")
        if self.body and not self.json:
            lines.append("body: differs")
        return "\n".join(lines)


def _header_map(headers: httpx.Headers, ignore: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        if name not in ignore:
            out.setdefault(name, []).append(value)
    return out


def _json_diff(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            sub = f"{path}.{key}"
            if key not in new:
                out.append((sub, old[key], MISSING))
            elif key not in old:
                out.append((sub, MISSING, new[key]))
            else:
                _json_diff(old[key], new[key], sub, out)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                out.append((sub, old[i], MISSING))
            elif i >= len(old):
                out.append((sub, MISSING, new[i]))
            else:
                _json_diff(old[i], new[i], sub, out)
    elif old != new or type(old) is not type(new):
        out.append((path, old, new))


def _decoded(response: httpx.Response) -> bytes:
    try:
        return response.content
    except httpx.ResponseNotRead:
        return response.read()


def diff_responses(
    recorded: Exchange | httpx.Response,
    live: httpx.Response,
    *,
    ignore_headers: Iterable[str] = VOLATILE_HEADERS,
) -> ResponseDiff:
    """Compare a recorded response with a live one: status, headers and body (JSON by value).

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> old = httpx.Response(200, json={"id": 1, "name": "a"})
    >>> new = httpx.Response(200, json={"id": 1, "name": "b", "extra": True})
    >>> print(tl.transports.diff_responses(old, new))
    json $.extra: '<missing>' -> True
    json $.name: 'a' -> 'b'
    """
    if isinstance(recorded, Exchange):
        if recorded.status_code is None:
            return ResponseDiff(status=(None, live.status_code), body=True)
        # A read response without an httpx.Request beside it: a diff needs neither.
        recorded_response = recorded.read_response()
    else:
        recorded_response = recorded
    ignore = frozenset(h.lower() for h in ignore_headers)
    status = (
        None
        if recorded_response.status_code == live.status_code
        else (recorded_response.status_code, live.status_code)
    )
    old_h = _header_map(recorded_response.headers, ignore)
    new_h = _header_map(live.headers, ignore)
    headers = [
        (name, old_h.get(name, []), new_h.get(name, []))
        for name in sorted(old_h.keys() | new_h.keys())
        if old_h.get(name) != new_h.get(name)
    ]
    old_body, new_body = _decoded(recorded_response), _decoded(live)
    json_changes: list[tuple[str, Any, Any]] = []
    body_differs = old_body != new_body
    if body_differs:
        try:
            old_doc, new_doc = json.loads(old_body), json.loads(new_body)
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            _json_diff(old_doc, new_doc, "$", json_changes)
            json_changes.sort(key=lambda change: change[0])
            body_differs = bool(json_changes)
    return ResponseDiff(status=status, headers=headers, json=json_changes, body=body_differs)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """A recorded exchange with what the live server answered when it was sent again."""

    recorded: Exchange
    response: httpx.Response | None
    error: Exception | None = None

    def diff(self, **options: Any) -> ResponseDiff:
        """:func:`diff_responses` of the recorded and the live response."""
        if self.response is None:
            raise ValueError(f"no live response to compare: {self.error!r}")
        return diff_responses(self.recorded, self.response, **options)


def build_replay_request(
    client: httpx.Client | httpx.AsyncClient, exchange: Exchange, base_url: str | None = None
) -> httpx.Request:
    """The request to send again: the recorded method, path, query, headers and body.

    ``Host``, ``Content-Length`` and ``Transfer-Encoding`` are left to the client, and headers
    whose value was redacted are dropped so the client's own credentials (``auth=``, default
    headers) apply.
    """
    redacted = REDACTED.encode()
    headers = [
        (name, value)
        for name, value in exchange.request_headers
        if name.lower() not in _HOP_HEADERS and redacted not in value
    ]
    return client.build_request(
        exchange.method,
        exchange.url if base_url is None else rebased_text(exchange.url, base_url),
        headers=headers,
        content=exchange.request_body or None,
    )


class _Pacer:
    """Spaces request starts to at most ``rate`` per second, on a fixed schedule.

    Start ``i`` is due at ``t0 + i / rate``, so a late start does not push the ones after it
    back and the rate holds over a run. Behind by more than a second (a stalled server), the
    schedule starts afresh rather than sending a burst to catch up.
    """

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive requests per second, got {rate}")
        self.interval = 1.0 / rate if rate else 0.0
        self.next_start: float | None = None
        self._lock = threading.Lock()

    def delay(self) -> float:
        """How long the caller must wait before starting its request."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            if self.next_start is None or now - self.next_start > 1.0:
                self.next_start = now
            wait = self.next_start - now
            self.next_start += self.interval
            return max(0.0, wait)


def _check_concurrency(concurrency: int) -> None:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")


def replay_requests(
    replay: Replay | Iterable[Exchange],
    client: httpx.Client,
    *,
    base_url: str | None = None,
    concurrency: int = 1,
    rate: float | None = None,
) -> Iterator[ReplayResult]:
    """Send recorded requests through ``client`` and yield each recorded exchange with the live
    response, in recorded order.

    Parameters
    ----------
    replay
        A Replay (its ``exchanges()``) or any iterable of exchanges.
    client
        The client to send with (its transport, auth and default headers apply).
    base_url
        Send to this base URL instead of the recorded host (``http://127.0.0.1:8000/v2``).
    concurrency
        Requests in flight at once (threads).
    rate
        At most this many request starts per second.

    Transport errors do not stop the run: they come back in ``ReplayResult.error``.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.testing import json_handler
    >>> stream = tl.MemoryStream()
    >>> stream.put(tl.Exchange("GET", "https://api.example/items", status_code=200))
    >>> with httpx.Client(transport=httpx.MockTransport(json_handler())) as client:
    ...     results = list(tl.transports.replay_requests(stream, client, base_url="http://127.0.0.1:9"))
    >>> results[0].response.request.url, results[0].diff().status
    (URL('http://127.0.0.1:9/items'), None)
    """
    _check_concurrency(concurrency)
    exchanges = _exchanges_of(replay)
    pacer = _Pacer(rate)

    def send(exchange: Exchange) -> ReplayResult:
        wait = pacer.delay()
        if wait:
            time.sleep(wait)
        request = build_replay_request(client, exchange, base_url)
        try:
            response = client.send(request)
        except httpx.TransportError as exc:
            return ReplayResult(exchange, None, exc)
        return ReplayResult(exchange, response)

    if concurrency == 1:
        for exchange in exchanges:
            yield send(exchange)
        return
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        in_flight: deque[Future[ReplayResult]] = deque()
        for exchange in exchanges:
            in_flight.append(pool.submit(send, exchange))
            if len(in_flight) >= concurrency * 2:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


async def areplay_requests(
    replay: Replay | Iterable[Exchange],
    client: httpx.AsyncClient,
    *,
    base_url: str | None = None,
    concurrency: int = 1,
    rate: float | None = None,
) -> AsyncIterator[ReplayResult]:
    """The async twin of :func:`replay_requests`, for ``httpx.AsyncClient``.

    Up to ``concurrency`` requests are in flight at once (a new one starts as soon as one
    finishes, at most ``2 * concurrency`` ahead of the results taken); results come in recorded
    order. Under trio, requests go in batches of
    ``concurrency``.
    """
    import asyncio  # here: asyncio imports subprocess, which a Windows-less import cannot

    import anyio

    _check_concurrency(concurrency)
    pacer = _Pacer(rate)
    exchanges = _exchanges_of(replay)

    async def send(exchange: Exchange) -> ReplayResult:
        wait = pacer.delay()
        if wait:
            await anyio.sleep(wait)
        request = build_replay_request(client, exchange, base_url)
        try:
            return ReplayResult(exchange, await client.send(request))
        except httpx.TransportError as exc:
            return ReplayResult(exchange, None, exc)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio): anyio task groups cannot span a yield
        while batch := list(itertools.islice(exchanges, concurrency)):
            done: dict[int, ReplayResult] = {}

            async def into(i: int, exchange: Exchange, done: dict[int, ReplayResult]) -> None:
                done[i] = await send(exchange)

            async with anyio.create_task_group() as tg:
                for i, exchange in enumerate(batch):
                    tg.start_soon(into, i, exchange, done)
            for i in range(len(batch)):
                yield done[i]
        return
    # asyncio: `concurrency` workers take the exchanges in recorded order and run at most
    # 2 x concurrency ahead of what has been yielded; results come out in recorded order.
    results: dict[int, ReplayResult] = {}
    failures: list[Exception] = []
    finished = next_out = 0
    changed = asyncio.Condition()
    numbered = enumerate(exchanges)

    async def worker() -> None:
        nonlocal finished
        try:
            for i, exchange in numbered:
                async with changed:
                    await changed.wait_for(lambda: i < next_out + 2 * concurrency)  # noqa: B023
                result = await send(exchange)
                async with changed:
                    results[i] = result
                    changed.notify_all()
        except Exception as exc:  # a request that cannot be built: the caller gets it
            failures.append(exc)
        async with changed:
            finished += 1
            changed.notify_all()

    tasks = [loop.create_task(worker()) for _ in range(concurrency)]
    try:
        while True:
            async with changed:
                await changed.wait_for(
                    lambda: next_out in results or bool(failures) or finished == concurrency  # noqa: B023
                )
                if failures:
                    raise failures[0]
                if next_out not in results:
                    return
                result = results.pop(next_out)
                next_out += 1
                changed.notify_all()
            yield result
    finally:
        for task in tasks:
            task.cancel()


def _exchanges_of(replay: Replay | Iterable[Exchange]) -> Iterator[Exchange]:
    return exchanges_of(replay, "replay_requests()")
