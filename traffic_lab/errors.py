"""Errors raised by traffic_lab itself.

Errors from the wrapped httpx transport (``httpx.ConnectError``, ``httpx.ReadTimeout``...) are never
wrapped: they reach the caller unchanged. Each traffic_lab error also subclasses the builtin it
resembles, so ``except LookupError`` or ``except FileNotFoundError`` already works::

    TrafficLabError
    ├── StoreError                      (has .path)
    │   ├── StoreNotFoundError          (also FileNotFoundError)
    │   ├── CorruptCaptureError         (also ValueError)
    │   └── SchemaVersionError          (also ValueError)
    ├── UnmatchedRequestError           (also LookupError; has .request and .nearest)
    ├── ReplayExhaustedError            (also LookupError)
    ├── InvalidRecordModeError          (also ValueError)
    ├── RecordedTransportError          (a recorded error whose type is not an httpx error)
    ├── InvalidExchangeError            (also ValueError; has .field and .value)
    └── InteropError                    (also ValueError; has .path, .index and .field)

Warnings (``UserWarning`` subclasses), for bad input that is skipped while the rest is kept::

    SkippedFileWarning                  a capture file or log was skipped; names it
    SkippedEntryWarning                 one entry of a file (HAR entry, cassette interaction,
                                        durable-log record) was skipped; names file and entry
    BodySizeWarning                     an imported body's length matches none of the sizes
                                        its entry records; the entry is kept
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = [
    "preview",
    "BodySizeWarning",
    "CorruptCaptureError",
    "InteropError",
    "InvalidExchangeError",
    "InvalidRecordModeError",
    "RecordedTransportError",
    "ReplayExhaustedError",
    "SchemaVersionError",
    "SkippedEntryWarning",
    "SkippedFileWarning",
    "StoreError",
    "StoreNotFoundError",
    "TrafficLabError",
    "UnmatchedRequestError",
]


def preview(value: object, limit: int = 60) -> str:
    """A short, bounded ``repr`` of a value for error messages.

    Strings and bytes are cut *before* ``repr`` runs, so a preview of a huge or deeply nested value
    from a hostile file costs at most ``limit`` characters of work; containers are named by type
    and size only.
    """
    if isinstance(value, str | bytes | bytearray):
        cut = value[: limit + 1]
        text = repr(cut if len(cut) <= limit else cut[:limit])
        return text if len(value) <= limit else f"{text}... ({len(value)} long)"
    if isinstance(value, dict | list | tuple | set | frozenset):
        return f"<{type(value).__name__} of {len(value)}>"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<int of ~{int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class TrafficLabError(Exception):
    """Base for errors raised by traffic_lab itself."""


class StoreError(TrafficLabError):
    """A store or capture file could not be read or written. ``path`` names the file or folder."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The capture folder or file does not exist."""


class CorruptCaptureError(StoreError, ValueError):
    """A capture file is truncated, corrupt or has a foreign schema."""


class SchemaVersionError(StoreError, ValueError):
    """A capture file was written with a schema version this traffic_lab cannot read."""


class UnmatchedRequestError(TrafficLabError, LookupError):
    """No recorded exchange matches a request (strict responders, ``mode="none"``).

    ``nearest`` lists ``(recorded request, differences)`` for the closest recorded requests.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        nearest: Sequence[tuple[httpx.Request, Sequence[str]]] = (),
    ) -> None:
        lines = [message]
        if nearest:
            lines.append("nearest recorded requests:")
            for recorded, differences in nearest:
                lines.append(f"  {recorded.method} {recorded.url}")
                lines.extend(f"    - {d}" for d in differences)
        else:
            lines.append("the store holds no recorded requests to compare with")
        super().__init__("\n".join(lines))
        self.request = request
        self.nearest = list(nearest)


class ReplayExhaustedError(TrafficLabError, LookupError):
    """A strict replay responder was asked for more responses than were recorded."""


class InvalidRecordModeError(TrafficLabError, ValueError):
    """An unknown record mode; the message lists the valid ones."""


class InvalidExchangeError(TrafficLabError, ValueError):
    """An exchange that no store can hold (a port over 65535, a status over 999...).

    Raised by ``put()`` at once, before anything is buffered, so one bad exchange never costs the
    others. ``field`` names the part, ``value`` is a short preview of the offending value.
    """

    def __init__(self, message: str, *, field: str, value: str) -> None:
        super().__init__(f"cannot store this exchange: {field} = {value}: {message}")
        self.field = field
        self.value = value


class RecordedTransportError(TrafficLabError):
    """A recorded transport failure whose type is not an httpx exception, raised on replay.

    Recorded error types are looked up by name among httpx's own exceptions only; nothing from a
    capture is ever imported or executed.
    """


class InteropError(TrafficLabError, ValueError):
    """A foreign file (HAR, VCR.py cassette, http4k tree) is invalid; says where."""

    def __init__(
        self, message: str, *, path: str, index: int | None = None, field: str | None = None
    ) -> None:
        where = path
        if index is not None:
            where += f", entry {index}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.index = index
        self.field = field


class SkippedFileWarning(UserWarning):
    """A capture file was skipped: truncated, corrupt, foreign, or a crash's temporary file.

    The message starts with the file's path. Pass ``strict=True`` to a store to get a
    :class:`~traffic_lab.errors.CorruptCaptureError` instead.

    Examples
    --------
    >>> import warnings
    >>> from traffic_lab.errors import SkippedFileWarning
    >>> warnings.filterwarnings("ignore", category=SkippedFileWarning)  # skip quietly
    """


class SkippedEntryWarning(UserWarning):
    """One entry of a file was skipped and the others kept.

    Raised for a HAR entry, a cassette interaction, an http4k exchange or a durable-log record that
    cannot be stored. The message names the file, the entry and the field (as
    :class:`InteropError` does); pass ``strict=True`` where offered to get the error instead.
    """


class BodySizeWarning(UserWarning):
    """An imported body was kept, but no reading of it has the size its entry records.

    ``read_har`` warns so when a text body (no ``encoding``) is neither that size as UTF-8 nor
    as one character per byte (mitmproxy's form for binary bodies): the body may not be the
    bytes that went over the wire. The message names the file, the entry and the field.
    """
