"""Tee streams: pass a response body through to the client chunk by chunk and hand the wire
bytes (and when each chunk was read) to a callback exactly once, when the client has consumed or
closed the stream; paced streams: serve a recorded body in its chunks at the recorded pace."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal

import httpx

from ..exchange import Chunk, ChunkedByteStream, Exchange, chunks_from_reads

__all__ = [
    "MAX_GAP_US",
    "MAX_REPLAY_DELAY_US",
    "OnClose",
    "PacedStream",
    "TeeAsyncStream",
    "TeeSyncStream",
    "Timing",
    "replay_pace",
    "replay_schedule",
    "serve_exchange",
]

#: Called once with (wire body, truncated, error raised while reading or None, the chunks as
#: read or None for a body read in one piece).
OnClose = Callable[[bytes, bool, BaseException | None, "tuple[Chunk, ...] | None"], None]


def _as_read(pieces: list[bytes], times: list[float], t0: float) -> tuple[Chunk, ...] | None:
    if len(pieces) < 2:  # the usual, unstreamed body: nothing to keep
        return None
    return chunks_from_reads([len(p) for p in pieces], times, t0)


class TeeSyncStream(httpx.SyncByteStream):
    """Wraps a sync response stream, keeping a copy of the raw chunks the client reads."""

    __slots__ = (
        "_chunks",
        "_closed",
        "_complete",
        "_error",
        "_inner",
        "_on_close",
        "_t0",
        "_times",
    )

    def __init__(self, inner: httpx.SyncByteStream, on_close: OnClose) -> None:
        self._inner = inner
        self._on_close = on_close
        self._chunks: list[bytes] = []
        self._complete = False
        self._closed = False
        self._error: BaseException | None = None
        self._times: list[float] = []
        self._t0 = time.perf_counter()

    def __iter__(self) -> Iterator[bytes]:
        append = self._chunks.append
        mark = self._times.append
        clock = time.perf_counter
        try:
            for chunk in self._inner:
                mark(clock())
                append(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._error = exc
            raise
        self._complete = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.close()
        finally:
            self._on_close(
                b"".join(self._chunks),
                not self._complete,
                self._error,
                _as_read(self._chunks, self._times, self._t0),
            )


class TeeAsyncStream(httpx.AsyncByteStream):
    """Wraps an async response stream, keeping a copy of the raw chunks the client reads."""

    __slots__ = (
        "_chunks",
        "_closed",
        "_complete",
        "_error",
        "_inner",
        "_on_close",
        "_t0",
        "_times",
    )

    def __init__(self, inner: httpx.AsyncByteStream, on_close: OnClose) -> None:
        self._inner = inner
        self._on_close = on_close
        self._chunks: list[bytes] = []
        self._complete = False
        self._closed = False
        self._error: BaseException | None = None
        self._times: list[float] = []
        self._t0 = time.perf_counter()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        append = self._chunks.append
        mark = self._times.append
        clock = time.perf_counter
        try:
            async for chunk in self._inner:
                mark(clock())
                append(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._error = exc
            raise
        self._complete = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.aclose()
        finally:
            self._on_close(
                b"".join(self._chunks),
                not self._complete,
                self._error,
                _as_read(self._chunks, self._times, self._t0),
            )


#: The longest wait between two chunks on a replay at recorded pace, in µs: a longer recorded
#: gap (or a hostile offset) is cut to this.
MAX_GAP_US = 10_000_000
#: The longest a whole body's replay at recorded pace waits, in µs (before ``speed``).
MAX_REPLAY_DELAY_US = 300_000_000


def replay_schedule(chunks: tuple[Chunk, ...], speed: float) -> list[float]:
    """When to serve each chunk, in seconds from the response's start: the recorded offsets
    divided by ``speed``, each gap cut to :data:`MAX_GAP_US` and the total to
    :data:`MAX_REPLAY_DELAY_US`.

    >>> replay_schedule((Chunk(1, 0), Chunk(1, 50_000), Chunk(1, 3_600_000_000)), 2.0)
    [0.0, 0.025, 5.025]
    """
    at, last, times = 0, 0, []
    for chunk in chunks:
        at = min(at + min(chunk.offset_us - last, MAX_GAP_US), MAX_REPLAY_DELAY_US)
        last = chunk.offset_us
        times.append(at / 1_000_000 / speed)
    return times


class PacedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A recorded body served in its chunks at the recorded pace (``speed`` times faster):
    sync readers wait with ``time.sleep``, async ones with ``anyio.sleep``. The clock starts
    when the stream is built (when the response is handed back, as its headers were live).
    """

    def __init__(self, body: bytes, chunks: tuple[Chunk, ...], speed: float) -> None:
        self._pieces = ChunkedByteStream(body, chunks)
        self._times = replay_schedule(tuple(c for c in chunks if c.size), speed)
        self._t0 = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        for piece, due in zip(self._pieces.pieces(), self._times, strict=True):
            wait = self._t0 + due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import anyio

        for piece, due in zip(self._pieces.pieces(), self._times, strict=True):
            wait = self._t0 + due - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
            yield piece


#: How a replay serves a streamed body: ``"none"`` (its recorded chunks at once) or
#: ``"recorded"`` (at the recorded pace, times ``speed``).
Timing = Literal["none", "recorded"]


def replay_pace(timing: str, speed: float) -> float | None:
    """Check a ``timing=`` / ``speed=`` pair: the speed to pace replays at, or ``None`` for
    ``timing="none"``.

    >>> replay_pace("recorded", 2.0), replay_pace("none", 1.0)
    (2.0, None)
    """
    if timing not in ("none", "recorded"):
        raise ValueError(f"timing must be 'none' or 'recorded', not {timing!r}")
    if not (isinstance(speed, (int, float)) and 0 < speed < float("inf")):
        raise ValueError(f"speed must be a positive number, not {speed!r}")
    return float(speed) if timing == "recorded" else None


def serve_exchange(
    exchange: Exchange, extensions: Mapping[str, Any] | None, pace: float | None
) -> httpx.Response:
    """A fresh, unread response replaying ``exchange``: its body in the recorded chunks, at
    once (``pace`` None) or at the recorded pace times ``pace`` (see :class:`PacedStream`)."""
    response = exchange.new_response(extensions)
    chunks = exchange.chunks
    if pace is not None and chunks is not None:
        response.stream = PacedStream(exchange.response_body, chunks, pace)
    return response
