"""Type aliases shared across traffic_lab."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import httpx

__all__ = ["AsyncHandler", "Handler", "HeaderPairs", "MatchKey"]

#: A handler answers a request; every handler is also a transport via ``httpx.MockTransport``.
Handler: TypeAlias = Callable[[httpx.Request], httpx.Response]
AsyncHandler: TypeAlias = Callable[[httpx.Request], Awaitable[httpx.Response]]
#: Headers as raw ordered (name, value) byte pairs: order, duplicates and non-UTF-8 bytes kept.
HeaderPairs: TypeAlias = list[tuple[bytes, bytes]]
#: A request's match key: a pure function of (request, matcher).
MatchKey: TypeAlias = str
