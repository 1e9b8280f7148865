"""httpx transports for http4k's traffic filters: RecordTo, ServeCachedFrom, the record modes,
the Responder and the requester."""

from .cache import (
    AsyncCachingTransport,
    AsyncCaptureTransport,
    CachingTransport,
    CaptureTransport,
    RecordMode,
)
from .record import AsyncRecordingTransport, RecordingTransport
from .requester import (
    VOLATILE_HEADERS,
    ReplayResult,
    ResponseDiff,
    areplay_requests,
    build_replay_request,
    diff_responses,
    replay_requests,
)
from .responder import NO_MORE_TRAFFIC, responder

__all__ = [
    "NO_MORE_TRAFFIC",
    "VOLATILE_HEADERS",
    "AsyncCachingTransport",
    "AsyncCaptureTransport",
    "AsyncRecordingTransport",
    "CachingTransport",
    "CaptureTransport",
    "RecordMode",
    "RecordingTransport",
    "ReplayResult",
    "ResponseDiff",
    "areplay_requests",
    "build_replay_request",
    "diff_responses",
    "replay_requests",
    "responder",
]
