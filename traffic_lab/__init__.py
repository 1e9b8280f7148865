"""traffic_lab: record, store, analyse and replay HTTP traffic on httpx.

http4k's five traffic concepts (Sink, Source, Replay, ReadWriteCache, ReadWriteStream), the
transports that record into them and serve from them, Parquet captures, pandas views and notebook
widgets. Heavy parts (pyarrow, pandas, ipywidgets) load only when first used.
"""

import typing

from ._version import __version__
from .errors import (
    CorruptCaptureError,
    InteropError,
    InvalidRecordModeError,
    RecordedTransportError,
    ReplayExhaustedError,
    SchemaVersionError,
    StoreError,
    StoreNotFoundError,
    TrafficLabError,
    UnmatchedRequestError,
)
from .exchange import FROM_CACHE, REPLAYED, Exchange, RecordedError
from .matching import Matcher
from .protocols import AsyncSource, ReadWriteCache, ReadWriteStream, Replay, Sink, Source
from .redaction import Redactor
from .stores.memory import MemoryCache, MemoryStream
from .transports import (
    NO_MORE_TRAFFIC,
    AsyncCachingTransport,
    AsyncCaptureTransport,
    AsyncRecordingTransport,
    CachingTransport,
    CaptureTransport,
    RecordingTransport,
    RecordMode,
    ReplayResult,
    ResponseDiff,
    areplay_requests,
    diff_responses,
    replay_requests,
    responder,
)

if typing.TYPE_CHECKING:
    from .frames import Where, read_capture, redact_capture, scan_secrets, write_capture
    from .middleware import RecordingASGIMiddleware, RecordingWSGIMiddleware
    from .stores.parquet import ParquetCache, ParquetStream, SkippedFileWarning

__all__ = [
    "__version__",
    "areplay_requests",
    "AsyncCachingTransport",
    "AsyncCaptureTransport",
    "AsyncRecordingTransport",
    "AsyncSource",
    "CachingTransport",
    "CaptureTransport",
    "CorruptCaptureError",
    "diff_responses",
    "Exchange",
    "FROM_CACHE",
    "InteropError",
    "InvalidRecordModeError",
    "Matcher",
    "MemoryCache",
    "MemoryStream",
    "NO_MORE_TRAFFIC",
    "ParquetCache",
    "ParquetStream",
    "read_capture",
    "ReadWriteCache",
    "ReadWriteStream",
    "RecordedError",
    "RecordedTransportError",
    "RecordingASGIMiddleware",
    "RecordingTransport",
    "RecordingWSGIMiddleware",
    "RecordMode",
    "redact_capture",
    "Redactor",
    "Replay",
    "replay_requests",
    "REPLAYED",
    "ReplayExhaustedError",
    "ReplayResult",
    "responder",
    "ResponseDiff",
    "scan_secrets",
    "SchemaVersionError",
    "Sink",
    "SkippedFileWarning",
    "Source",
    "StoreError",
    "StoreNotFoundError",
    "TrafficLabError",
    "UnmatchedRequestError",
    "Where",
    "write_capture",
]

# Names that live in modules with heavy dependencies (pyarrow, pandas): imported on first use.
_LAZY = {
    "ParquetCache": "traffic_lab.stores.parquet",
    "ParquetStream": "traffic_lab.stores.parquet",
    "RecordingASGIMiddleware": "traffic_lab.middleware",
    "RecordingWSGIMiddleware": "traffic_lab.middleware",
    "SkippedFileWarning": "traffic_lab.stores.parquet",
    "Where": "traffic_lab.frames",
    "read_capture": "traffic_lab.frames",
    "redact_capture": "traffic_lab.frames",
    "scan_secrets": "traffic_lab.frames",
    "write_capture": "traffic_lab.frames",
}


# Subpackages with heavy or optional dependencies: ``tl.interop``, ``tl.widgets``, ...
_LAZY_MODULES = frozenset({"frames", "interop", "middleware", "widgets"})


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY_MODULES:
        module = importlib.import_module(f"traffic_lab.{name}")
        globals()[name] = module
        return module
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'traffic_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
