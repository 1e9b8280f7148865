"""The browser's search over decoded bodies: bounded, in batches read back from the capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..wire.codings import BodyTooLargeError, content_codings, decode_body

if TYPE_CHECKING:
    from ..exchange import Exchange
    from ._browser_data import TrafficView

__all__ = ["BATCH", "BODY_SEARCH_LIMIT", "search_bodies"]

#: Bodies of at most this many exchanges are searched (the first ones in list order).
BODY_SEARCH_LIMIT = 20_000
#: Exchanges read back from the capture at a time.
BATCH = 1_000
#: A body that decodes to more than this is searched as stored.
MAX_DECODED = 16 << 20


def _text(body: bytes, headers: Any) -> bytes:
    codings = content_codings(headers)
    if not codings or not body:
        return body.lower()
    try:
        decoded = decode_body(body, codings, limit=MAX_DECODED)
    except BodyTooLargeError:
        decoded = None
    return (decoded if decoded is not None else body).lower()


def _matches(exchange: Exchange, needle: bytes) -> bool:
    return needle in _text(exchange.request_body, exchange.request_headers) or needle in _text(
        exchange.response_body, exchange.response_headers
    )


def search_bodies(
    view: TrafficView,
    rows: np.ndarray[Any, Any],
    text: str,
    url_hits: np.ndarray[Any, Any],
    report: Callable[[int, int, int], None],
    limit: int | None = None,
) -> np.ndarray[Any, Any]:
    """The ``rows`` (positions, kept in order) whose URL is among ``url_hits`` or whose decoded
    request or response body holds ``text`` (UTF-8, case folded). Only the first ``limit`` rows'
    bodies are read (default :data:`BODY_SEARCH_LIMIT`); ``report(done, total, hits)`` is
    called after each batch."""
    limit = BODY_SEARCH_LIMIT if limit is None else limit
    needle = text.lower().encode()
    keep = np.isin(rows, url_hits)
    searched = rows[:limit]
    for start in range(0, len(searched), BATCH):
        batch = searched[start : start + BATCH]
        found = [_matches(exchange, needle) for exchange in view.exchanges(batch)]
        keep[start : start + len(batch)] |= np.array(found, dtype=bool)
        report(start + len(batch), len(rows), int(keep[: start + len(batch)].sum()))
    result: np.ndarray[Any, Any] = rows[keep]
    return result
