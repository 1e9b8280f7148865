"""Tee streams: pass a response body through to the client chunk by chunk and hand the wire
bytes (and when each chunk was read) to a callback exactly once, when the client has consumed or
closed the stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from ..exchange import Chunk, chunks_from_reads

__all__ = ["OnClose", "TeeAsyncStream", "TeeSyncStream"]

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
