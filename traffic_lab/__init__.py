"""traffic_lab: record, store, analyse and replay HTTP traffic on httpx.

http4k's five traffic concepts (Sink, Source, Replay, ReadWriteCache, ReadWriteStream), the
transports that record into them and serve from them, Parquet captures, pandas views and notebook
widgets. Heavy parts (pyarrow, pandas, ipywidgets) load only when first used.

The top level holds the concepts, the stores, the transports, ``open_capture`` (questions about
captures of any size, run by DuckDB), ``read_capture`` / ``write_capture``
/ ``Where``, ``Matcher`` / ``Redactor`` and the base error. Everything else lives in its module:
errors in :mod:`traffic_lab.errors`; ``FROM_CACHE``, ``REPLAYED`` and ``RecordedError`` in
:mod:`traffic_lab.exchange`; replay (``replay_requests``, ``diff_responses``, ``RecordMode``) in
:mod:`traffic_lab.transports`; ``redact_capture`` and ``scan_secrets`` in
:mod:`traffic_lab.frames`; the ASGI/WSGI recorders in :mod:`traffic_lab.middleware`.
``capture`` / ``no_capture`` (every client in a block), the ``requests`` adapters and
``%load_ext traffic_lab`` (the ``%%traffic`` magics) load on first use.
"""

import typing

from . import errors as errors
from ._lazy import lazy_exports as _lazy_exports
from ._version import __version__
from .errors import TrafficLabError
from .exchange import Exchange
from .matching import Matcher
from .protocols import AsyncSource, ReadWriteCache, ReadWriteStream, Replay, Sink, Source
from .redaction import Redactor
from .stores.memory import MemoryCache, MemoryStream
from .transports import (
    AsyncCachingTransport,
    AsyncCaptureTransport,
    AsyncRecordingTransport,
    CachingTransport,
    CaptureTransport,
    RecordingTransport,
    responder,
)

if typing.TYPE_CHECKING:
    from .engine import open_capture
    from .frames import Where, read_capture, write_capture
    from .stores.parquet import ParquetCache, ParquetStream
    from .transports.capturing import capture, no_capture
    from .transports.requests_adapter import CachingAdapter, RecordingAdapter

__all__ = [
    "__version__",
    "AsyncCachingTransport",
    "AsyncCaptureTransport",
    "AsyncRecordingTransport",
    "AsyncSource",
    "CachingAdapter",
    "CachingTransport",
    "capture",
    "CaptureTransport",
    "Exchange",
    "load_ipython_extension",
    "Matcher",
    "MemoryCache",
    "MemoryStream",
    "no_capture",
    "open_capture",
    "ParquetCache",
    "ParquetStream",
    "read_capture",
    "ReadWriteCache",
    "ReadWriteStream",
    "RecordingAdapter",
    "RecordingTransport",
    "Redactor",
    "Replay",
    "responder",
    "Sink",
    "Source",
    "TrafficLabError",
    "Where",
    "write_capture",
]

# pyarrow, pandas and ipywidgets load only when one of these is first used.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    {
        "ParquetCache": ".stores.parquet",
        "ParquetStream": ".stores.parquet",
        "CachingAdapter": ".transports.requests_adapter",
        "RecordingAdapter": ".transports.requests_adapter",
        "Where": ".frames",
        "capture": ".transports.capturing",
        "no_capture": ".transports.capturing",
        "open_capture": ".engine",
        "read_capture": ".frames",
        "write_capture": ".frames",
    },
    modules=("engine", "frames", "interop", "middleware", "spark", "widgets"),
)


def load_ipython_extension(ipython: typing.Any) -> None:
    """``%load_ext traffic_lab``: the ``%%traffic`` cell magic and ``%traffic on|off``."""
    from .transports.magics import register

    register(ipython)
