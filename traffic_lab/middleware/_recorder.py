"""The sans-IO part of the server-side recorders: what one exchange has collected so far, and how
it becomes an :class:`~traffic_lab.Exchange` in a Sink. No awaits, sockets or files here; the
ASGI and WSGI shells feed it and decide when the exchange is over."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..exchange import Exchange, RecordedError
from ..redaction import Redactor

if TYPE_CHECKING:
    from ..protocols import Sink

__all__ = [
    "DISCONNECTED",
    "NO_RESPONSE",
    "PendingExchange",
    "Recorder",
    "as_bytes",
    "header_tuple",
]

#: Recorded when the app returned without starting a response (the server answers on its own,
#: usually with a 500).
NO_RESPONSE = RecordedError(
    type="traffic_lab.middleware.NoResponse",
    message="the app returned without starting a response",
)
#: Recorded when the client went away before the app started a response.
DISCONNECTED = RecordedError(
    type="traffic_lab.middleware.ClientDisconnected",
    message="the client disconnected before the response started",
)

_HeaderTuple = tuple[tuple[bytes, bytes], ...]


def as_bytes(value: object) -> bytes:
    """A header name or value as bytes; servers accept ``str`` too, stored as latin-1."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes or str in a header, got {type(value).__name__}")


class PendingExchange:
    """What one exchange has collected so far: request parts, then response parts as they pass.

    ``response_chunks`` holds only the bytes the server accepted for the client; the shells add
    a chunk once the server has taken it (ASGI: ``send`` returned; WSGI: the server asked for
    the next chunk), so a cut-off response records what was actually handed over.
    """

    __slots__ = (
        "_finished",
        "_t0",
        "http_version",
        "method",
        "reason_phrase",
        "request_chunks",
        "request_headers",
        "response_chunks",
        "response_headers",
        "started_at",
        "status_code",
        "url",
    )

    def __init__(
        self, method: str, url: str, request_headers: _HeaderTuple, http_version: str
    ) -> None:
        self.started_at = datetime.now(UTC)
        self._t0 = perf_counter()
        self._finished: float | None = None
        self.method = method
        self.url = url
        self.request_headers = request_headers
        self.http_version = http_version
        self.request_chunks: list[bytes] = []
        self.status_code: int | None = None
        self.reason_phrase = ""
        self.response_headers: _HeaderTuple = ()
        self.response_chunks: list[bytes] = []

    def mark_finished(self) -> None:
        """Stop the clock: the response is complete (elapsed ends here, not at recording)."""
        if self._finished is None:
            self._finished = perf_counter()

    def to_exchange(
        self,
        *,
        truncated: bool,
        error: RecordedError | None,
        tags: Mapping[str, str] | None,
        responded: bool,
    ) -> Exchange:
        """The exchange as recorded so far; ``responded=False`` drops any response parts."""
        end = self._finished if self._finished is not None else perf_counter()
        status = self.status_code if responded else None
        if status is None and error is None:
            error = NO_RESPONSE
        return Exchange(
            self.method,
            self.url,
            request_headers=self.request_headers,
            request_body=b"".join(self.request_chunks),
            status_code=status,
            reason_phrase=self.reason_phrase if status is not None else "",
            http_version=self.http_version,
            response_headers=self.response_headers if status is not None else (),
            response_body=b"".join(self.response_chunks) if status is not None else b"",
            started_at=self.started_at,
            elapsed=timedelta(seconds=end - self._t0),
            error=error,
            tags=tags,
            truncated=truncated,
        )


class Recorder:
    """Turns a finished :class:`PendingExchange` into a redacted exchange and puts it into the Sink.

    The outcome rules live here so that ASGI and WSGI record the same way:

    - the app finished and the response was complete: a plain exchange;
    - the response was started but not completed (the client went away, or the app stopped
      early): ``truncated=True`` with the body that was handed over;
    - the app raised: ``error`` is the exception; with no response started the exchange has
      no status (the server answers the client on its own, usually with a 500);
    - cancellation and other ``BaseException`` that are not ``Exception`` are recorded as an
      error only when no response was started (there is nothing else to record then).
    """

    __slots__ = ("redactor", "sink", "tags")

    def __init__(
        self, sink: Sink, redactor: Redactor | None, tags: Mapping[str, str] | None
    ) -> None:
        self.sink = sink
        self.redactor = redactor if redactor is not None else Redactor()
        self.tags: Mapping[str, str] | None = MappingProxyType(dict(tags)) if tags else None

    def finish(
        self,
        capture: PendingExchange,
        *,
        complete: bool,
        disconnected: bool,
        responded: bool | None = None,
    ) -> None:
        """Record an exchange whose app returned normally. Sink errors propagate."""
        if responded is None:
            responded = capture.status_code is not None
        if responded:
            truncated = disconnected or not complete
            error = None
        else:
            truncated = disconnected
            error = DISCONNECTED if disconnected else NO_RESPONSE
        self._put(capture, truncated=truncated, error=error, responded=responded)

    def fail(
        self,
        capture: PendingExchange,
        exc: BaseException,
        *,
        complete: bool,
        disconnected: bool,
        responded: bool | None = None,
    ) -> None:
        """Record an exchange whose app raised ``exc``; the caller re-raises ``exc``.

        The app's exception must reach the server unchanged, so a Sink that fails here does not
        replace it: the Sink's error is added to ``exc`` as a note instead.
        """
        if responded is None:
            responded = capture.status_code is not None
        error = RecordedError.from_exception(exc)
        if responded:
            truncated = disconnected or not complete
            recorded_error = error if isinstance(exc, Exception) else None
        else:
            truncated = disconnected
            recorded_error = error
        try:
            self._put(capture, truncated=truncated, error=recorded_error, responded=responded)
        except Exception as sink_exc:
            exc.add_note(f"traffic_lab: the Sink failed to record this exchange: {sink_exc!r}")

    def _put(
        self,
        capture: PendingExchange,
        *,
        truncated: bool,
        error: RecordedError | None,
        responded: bool,
    ) -> None:
        exchange = capture.to_exchange(
            truncated=truncated, error=error, tags=self.tags, responded=responded
        )
        self.sink.put(self.redactor.redact(exchange))


def header_tuple(pairs: Iterable[tuple[object, object]]) -> _HeaderTuple:
    """Header pairs as a tuple of ``(bytes, bytes)``."""
    return tuple((as_bytes(name), as_bytes(value)) for name, value in pairs)
