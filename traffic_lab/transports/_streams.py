"""Tee streams: pass a response body through to the client chunk by chunk and hand the wire
bytes to a callback exactly once, when the client has consumed or closed the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx

__all__ = ["OnClose", "TeeAsyncStream", "TeeSyncStream"]

#: Called once with (wire body, truncated, error raised while reading or None).
OnClose = Callable[[bytes, bool, BaseException | None], None]


class TeeSyncStream(httpx.SyncByteStream):
    """Wraps a sync response stream, keeping a copy of the raw chunks the client reads."""

    __slots__ = ("_chunks", "_closed", "_complete", "_error", "_inner", "_on_close")

    def __init__(self, inner: httpx.SyncByteStream, on_close: OnClose) -> None:
        self._inner = inner
        self._on_close = on_close
        self._chunks: list[bytes] = []
        self._complete = False
        self._closed = False
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        append = self._chunks.append
        try:
            for chunk in self._inner:
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
            self._on_close(b"".join(self._chunks), not self._complete, self._error)


class TeeAsyncStream(httpx.AsyncByteStream):
    """Wraps an async response stream, keeping a copy of the raw chunks the client reads."""

    __slots__ = ("_chunks", "_closed", "_complete", "_error", "_inner", "_on_close")

    def __init__(self, inner: httpx.AsyncByteStream, on_close: OnClose) -> None:
        self._inner = inner
        self._on_close = on_close
        self._chunks: list[bytes] = []
        self._complete = False
        self._closed = False
        self._error: BaseException | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        append = self._chunks.append
        try:
            async for chunk in self._inner:
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
            self._on_close(b"".join(self._chunks), not self._complete, self._error)
