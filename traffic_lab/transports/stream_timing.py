"""Replaying streamed bodies with their timing: the recorded chunks at once (``timing="none"``)
or at the recorded pace, ``speed`` times faster (``timing="recorded"``).

Captures are untrusted, so a replay never waits as long as one says: each gap between two chunks
is cut to :data:`MAX_GAP_US` and the whole body's wait to :data:`MAX_REPLAY_DELAY_US`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

import httpx

from ..exchange import Chunk, ChunkedByteStream, Exchange

__all__ = [
    "MAX_GAP_US",
    "MAX_REPLAY_DELAY_US",
    "PacedStream",
    "Timing",
    "replay_pace",
    "replay_schedule",
    "serve_exchange",
]

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
