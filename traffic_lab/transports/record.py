"""http4k's ``RecordTo``: transports that record every exchange passing through into a Sink."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx

from ..exchange import Chunk, Exchange, RecordedError, _response_wire_body
from ..protocols import DeferredRedaction, Sink
from ..redaction import Redactor
from ..wire import response_reason
from ._streams import OnClose, TeeAsyncStream, TeeSyncStream

__all__ = ["AsyncRecordingTransport", "RecordingTransport"]


def _http_version(response: httpx.Response) -> str:
    # response.http_version, without the KeyError it raises and catches when the transport
    # (MockTransport, a handler) sets no version.
    version = response.extensions.get("http_version")
    if version is None and "http_version" not in response.extensions:
        return "HTTP/1.1"
    return response.http_version


class _Pending:
    """What is known of an exchange once its request is sent."""

    __slots__ = ("body", "headers", "method", "started_at", "t0", "url")

    def __init__(self, request: httpx.Request) -> None:
        self.method = request.method
        self.url = str(request.url)
        # A copy: the caller's Headers object is mutable.
        self.headers = tuple(request.headers.raw)
        self.body = request.content
        self.started_at = datetime.now(UTC)
        self.t0 = time.perf_counter()


def _ends_an_event(response: httpx.Response, body: bytes) -> bool:
    """Whether a body the client closed early is a whole event stream all the same.

    SSE clients (the LLM SDKs) stop reading at their last event (``data: [DONE]``,
    ``message_stop``) and close before the server's end of message: an uncompressed
    ``text/event-stream`` read up to an event boundary is recorded as complete, and a replay
    serves the events the client read.
    """
    headers = response.headers
    return (
        headers.get("content-type", "").startswith("text/event-stream")
        and "content-encoding" not in headers
        and body.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
    )


class _Recorder:
    """The sans-IO core shared by the sync and async recording transports."""

    __slots__ = ("deferred", "redactor", "sink", "tags")

    def __init__(self, sink: Sink, redactor: Redactor | None, tags: Mapping[str, str] | None):
        self.sink = sink
        self.redactor = redactor if redactor is not None else Redactor()
        self.tags = dict(tags) if tags else None
        # A sink that redacts before anyone reads (the memory stores) takes the exchange as it
        # is, and the request's path skips the redaction; a redactor with steps of its own runs
        # here, where what it raises reaches the caller.
        plain = type(self.redactor) is Redactor and self.redactor.extra is None
        self.deferred = sink if plain and isinstance(sink, DeferredRedaction) else None

    def store(self, exchange: Exchange) -> None:
        if self.deferred is not None:
            self.deferred.put_redacting(exchange, self.redactor)
        else:
            self.sink.put(self.redactor.redact(exchange))

    def fail(self, pending: _Pending, exc: BaseException) -> None:
        exchange = Exchange(
            pending.method,
            pending.url,
            request_headers=pending.headers,
            request_body=pending.body,
            started_at=pending.started_at,
            elapsed=timedelta(0, time.perf_counter() - pending.t0),
            error=RecordedError.from_exception(exc),
            tags=self.tags,
        )
        self.store(exchange)

    def on_close(self, pending: _Pending, response: httpx.Response) -> OnClose:
        """What a tee stream calls when the client is done with ``response``'s body (sync and
        async alike): finish ``pending`` with what was read."""

        def close(
            body: bytes,
            truncated: bool,
            error: BaseException | None,
            chunks: tuple[Chunk, ...] | None,
        ) -> None:
            self.finish(pending, response, body, truncated, error, chunks=chunks)

        return close

    def finish(
        self,
        pending: _Pending,
        response: httpx.Response,
        body: bytes,
        truncated: bool,
        error: BaseException | None = None,
        headers: tuple[tuple[bytes, bytes], ...] | None = None,
        chunks: tuple[Chunk, ...] | None = None,
    ) -> None:
        if truncated and error is None and _ends_an_event(response, body):
            truncated = False
        exchange = Exchange(
            pending.method,
            pending.url,
            request_headers=pending.headers,
            request_body=pending.body,
            status_code=response.status_code,
            reason_phrase=response_reason(response),
            http_version=_http_version(response),
            response_headers=response.headers.raw if headers is None else headers,
            response_body=body,
            started_at=pending.started_at,
            # timedelta(days, seconds): positional is half the cost of seconds=.
            elapsed=timedelta(0, time.perf_counter() - pending.t0),
            error=RecordedError.from_exception(error) if error is not None else None,
            tags=self.tags,
            truncated=truncated,
            chunks=chunks,
        )
        self.store(exchange)

    def finish_read(self, pending: _Pending, response: httpx.Response) -> None:
        """Record a response that arrived already read (``MockTransport``, handlers): the
        client will never iterate or close its stream, so record it now."""
        body, headers = _response_wire_body(response)
        self.finish(pending, response, body, False, headers=headers)


class RecordingTransport(httpx.BaseTransport):
    """Record every exchange that passes through ``transport`` into ``sink`` (http4k RecordTo).

    The caller gets the live response unchanged, streaming included; the exchange is recorded
    once the body has been read or the response closed (a response closed early is recorded as
    far as it was read, with ``truncated=True``). A transport error is recorded with its error
    and re-raised unchanged. A copy of each exchange goes through ``redactor`` (default
    :class:`~traffic_lab.Redactor`) before the sink sees it.

    Parameters
    ----------
    sink
        Where exchanges go: any object with ``put(exchange)``.
    transport
        The transport to wrap; default ``httpx.HTTPTransport()``.
    redactor
        Secret scrubbing before storage; ``Redactor.disabled()`` to store everything.
    tags
        Labels stored with every exchange (e.g. ``{"session": "nightly"}``).

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.testing import json_handler
    >>> stream = tl.MemoryStream()
    >>> transport = tl.RecordingTransport(stream, httpx.MockTransport(json_handler()))
    >>> with httpx.Client(transport=transport) as client:
    ...     client.get("https://api.example/items").status_code
    200
    >>> len(stream)
    1
    """

    def __init__(
        self,
        sink: Sink,
        transport: httpx.BaseTransport | None = None,
        *,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._core = _Recorder(sink, redactor, tags)
        self._inner = transport if transport is not None else httpx.HTTPTransport()

    def over(self, transport: httpx.BaseTransport) -> RecordingTransport:
        """This recorder (sink, redactor, tags) in front of another transport."""
        twin = object.__new__(RecordingTransport)
        twin._core, twin._inner = self._core, transport
        return twin

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        pending = _Pending(request)
        core = self._core
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            core.fail(pending, exc)
            raise
        if response.is_stream_consumed:
            core.finish_read(pending, response)
            return response
        stream = response.stream
        if not isinstance(stream, httpx.SyncByteStream):
            raise TypeError(f"expected a sync response stream, got {type(stream).__name__}")

        response.stream = TeeSyncStream(stream, core.on_close(pending, response))
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncRecordingTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`RecordingTransport`, for ``httpx.AsyncClient``.

    Examples
    --------
    >>> import asyncio, httpx, traffic_lab as tl
    >>> from traffic_lab.testing import json_handler
    >>> stream = tl.MemoryStream()
    >>> async def main():
    ...     transport = tl.AsyncRecordingTransport(stream, httpx.MockTransport(json_handler()))
    ...     async with httpx.AsyncClient(transport=transport) as client:
    ...         return (await client.get("https://api.example/items")).status_code
    >>> asyncio.run(main()), len(stream)
    (200, 1)
    """

    def __init__(
        self,
        sink: Sink,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._core = _Recorder(sink, redactor, tags)
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()

    @classmethod
    def sharing(
        cls, recorder: RecordingTransport, transport: httpx.AsyncBaseTransport
    ) -> AsyncRecordingTransport:
        """``recorder``'s sink, redactor and tags, in front of an async transport."""
        twin = object.__new__(cls)
        twin._core, twin._inner = recorder._core, transport
        return twin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        pending = _Pending(request)
        core = self._core
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            core.fail(pending, exc)
            raise
        if response.is_stream_consumed:
            core.finish_read(pending, response)
            return response
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError(f"expected an async response stream, got {type(stream).__name__}")

        response.stream = TeeAsyncStream(stream, core.on_close(pending, response))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
