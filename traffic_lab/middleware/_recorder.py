"""What the ASGI and WSGI middleware share (sans-IO): the exchange collected so far, and how it
becomes a redacted :class:`~traffic_lab.Exchange` in the Sink. The outcome rules are in the
package documentation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, TypeVar

from ..exchange import Exchange, RecordedError
from ..redaction import Redactor

if TYPE_CHECKING:
    from ..protocols import Sink


#: Recorded when the app returned without starting a response (the server answers on its own).
NO_RESPONSE = RecordedError(
    type="traffic_lab.middleware.NoResponse",
    message="the app returned without starting a response",
)
#: Recorded when the client went away before the app started a response.
DISCONNECTED = RecordedError(
    type="traffic_lab.middleware.ClientDisconnected",
    message="the client disconnected before the response started",
)
DEFAULT_PORTS = {"http": 80, "https": 443}
#: RFC 3986 pchar plus "/": what may stay unescaped in a path rebuilt from a decoded one.
PATH_SAFE = "/:@!$&'()*+,;="

_HeaderTuple = tuple[tuple[bytes, bytes], ...]
_App = TypeVar("_App")


def as_bytes(value: object) -> bytes:
    """A header name or value as bytes; servers accept ``str`` too, stored as latin-1."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes or str in a header, got {type(value).__name__}")


def header_tuple(pairs: Iterable[tuple[object, object]]) -> _HeaderTuple:
    """Header pairs as a tuple of ``(bytes, bytes)``."""
    return tuple((as_bytes(name), as_bytes(value)) for name, value in pairs)


@dataclass(slots=True)
class PendingExchange:
    """What one exchange has collected so far. ``response_chunks`` holds only the chunks the
    server has taken for the client, so a cut-off response records what was handed over."""

    method: str
    url: str
    request_headers: _HeaderTuple
    http_version: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=perf_counter)
    finished: float | None = None
    request_chunks: list[bytes] = field(default_factory=list)
    status_code: int | None = None
    reason_phrase: str = ""
    response_headers: _HeaderTuple = ()
    response_chunks: list[bytes] = field(default_factory=list)

    def mark_finished(self) -> None:
        """Stop the clock: the response is complete (elapsed ends here, not at recording)."""
        if self.finished is None:
            self.finished = perf_counter()


class RecordingMiddleware(Generic[_App]):
    """The base of both middleware: the wrapped app, where exchanges go, and the recording step."""

    def __init__(
        self,
        app: _App,
        sink: Sink,
        *,
        redactor: Redactor | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.sink = sink
        self.redactor = redactor if redactor is not None else Redactor()
        self.tags: Mapping[str, str] = MappingProxyType(dict(tags or {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.app!r}, sink={self.sink!r})"

    def _record(
        self,
        capture: PendingExchange,
        exc: BaseException | None = None,
        *,
        complete: bool,
        disconnected: bool,
        responded: bool | None = None,
    ) -> None:
        """Put the exchange (without response parts unless ``responded``) into the Sink; ``exc``
        is what the app raised (the caller re-raises
        it, so a Sink error becomes a note on it). A ``BaseException`` that is not an
        ``Exception`` (cancellation) is the recorded error only if no response was started."""
        if responded is None:
            responded = capture.status_code is not None
        truncated = disconnected or (responded and not complete)
        if exc is None:
            error = None if responded else DISCONNECTED if disconnected else NO_RESPONSE
        elif responded and not isinstance(exc, Exception):
            error = None
        else:
            error = RecordedError.from_exception(exc)
        end = capture.finished if capture.finished is not None else perf_counter()
        status = capture.status_code if responded else None
        try:
            exchange = Exchange(
                capture.method,
                capture.url,
                request_headers=capture.request_headers,
                request_body=b"".join(capture.request_chunks),
                status_code=status,
                reason_phrase=capture.reason_phrase if status is not None else "",
                http_version=capture.http_version,
                response_headers=capture.response_headers if status is not None else (),
                response_body=b"".join(capture.response_chunks) if status is not None else b"",
                started_at=capture.started_at,
                elapsed=timedelta(seconds=end - capture.t0),
                error=error,
                tags=self.tags or None,
                truncated=truncated,
            )
            self.sink.put(self.redactor.redact(exchange))
        except Exception as sink_exc:
            if exc is None:
                raise
            exc.add_note(f"traffic_lab: the Sink failed to record this exchange: {sink_exc!r}")
