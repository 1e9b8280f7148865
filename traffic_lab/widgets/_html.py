"""Text and HTML renderings of exchanges: decoded and pretty-printed bodies, header tables,
request and status lines, diffs (the request as code is in :mod:`.snippets`, the detail pane in
:mod:`._detail`).

Everything from a capture is data, never markup: HTML goes through :func:`html.escape`. Images
are shown only for raster types a browser cannot run code from (PNG, JPEG, GIF, WebP); SVG is
text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from ..exchange import Exchange
from ..transports.requester import MISSING, ResponseDiff
from ..wire.bodies import (  # the body views, shared with the CLI
    BodyView,
    message_body_view,
)


def esc(value: object) -> str:
    """``html.escape`` of ``str(value)``, quotes included."""
    return html.escape(str(value), quote=True)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def request_target(url: str) -> str:
    """The path and query of ``url`` (``/`` at least)."""
    rest = url.partition("://")[2]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    target = rest[cut:].partition("#")[0]
    if target.startswith("?"):
        target = "/" + target
    return target or "/"


def status_line(exchange: Exchange) -> str:
    """``HTTP/1.1 200 OK``, or the transport error for an exchange that failed."""
    if exchange.status_code is None:
        error = exchange.error
        return f"transport error: {error.type}: {error.message}" if error else "no response"
    line = f"{exchange.http_version} {exchange.status_code} {exchange.reason_phrase}".rstrip()
    return line + (" (truncated by the client)" if exchange.truncated else "")


def headers_html(pairs: Sequence[tuple[bytes, bytes]]) -> str:
    """Header pairs as an escaped two-column table, in wire order."""
    if not pairs:
        return '<div class="tl-note">(no headers)</div>'
    rows = "".join(
        f"<tr><th>{esc(name.decode('latin-1'))}</th><td>{esc(value.decode('latin-1'))}</td></tr>"
        for name, value in pairs
    )
    return f'<table class="tl-headers">{rows}</table>'


def _side(exchange: Exchange, side: str) -> tuple[Sequence[tuple[bytes, bytes]], bytes]:
    if side == "request":
        return exchange.request_headers, exchange.request_body
    return exchange.response_headers, exchange.response_body


def message_view(exchange: Exchange, side: str) -> BodyView:
    """The request's (``side="request"``) or the response's body, ready to show."""
    return message_body_view(*_side(exchange, side))


def message_html(exchange: Exchange, side: str, view: BodyView | None = None) -> str:
    """The request (``side="request"``) or response as HTML: first line, headers, body (an
    image as a placeholder line; ``view``: its :func:`message_view`, if already made)."""
    view = view or message_view(exchange, side)
    if side == "request":  # the request line, with the response's HTTP version
        first = f"{exchange.method} {request_target(exchange.url)} {exchange.http_version}"
        url = f"<div class='tl-url'>{esc(exchange.url)}</div>"
    else:
        first, url = status_line(exchange), ""
    return (
        f"{_STYLE}<div class='tl-message'><pre class='tl-first'>{esc(first)}</pre>{url}"
        f"{headers_html(_side(exchange, side)[0])}{view.to_html()}</div>"
    )


def exchange_summary_html(exchange: Exchange) -> str:
    """One line: method, URL, status, elapsed, sizes, start time."""
    status = exchange.status_code if exchange.status_code is not None else "error"
    ms = exchange.elapsed.total_seconds() * 1000
    return (
        f"{_STYLE}<div class='tl-summary'><b>{esc(exchange.method)}</b> {esc(exchange.url)} "
        f"&rarr; <b>{esc(status)}</b> &middot; {ms:,.1f} ms &middot; "
        f"{len(exchange.response_body):,} bytes &middot; "
        f"{esc(exchange.started_at.isoformat(timespec='milliseconds'))}</div>"
    )


def _value(value: Any) -> str:
    text = value if value is MISSING else json.dumps(value, ensure_ascii=False, default=str)
    return shorten(text, 120)


def diff_html(diff: ResponseDiff) -> str:
    """A :class:`~traffic_lab.transports.ResponseDiff` as an escaped table (recorded vs live)."""
    if not diff:
        return f"{_STYLE}<div class='tl-same'>no differences (volatile headers ignored)</div>"
    rows = []
    if diff.status is not None:
        rows.append(("status", str(diff.status[0]), str(diff.status[1])))
    for name, old, new in diff.headers:
        rows.append((f"header {name}", ", ".join(old) or MISSING, ", ".join(new) or MISSING))
    for path, old_value, new_value in diff.json:
        rows.append((f"json {path}", _value(old_value), _value(new_value)))
    if diff.body and not diff.json:
        rows.append(("body", "differs", "differs"))
    body = "".join(
        f"<tr><th>{esc(what)}</th><td class='tl-old'>{esc(old)}</td>"
        f"<td class='tl-new'>{esc(new)}</td></tr>"
        for what, old, new in rows
    )
    return (
        f"{_STYLE}<table class='tl-diff'><tr><th></th><th>recorded</th><th>live</th></tr>"
        f"{body}</table>"
    )


_STYLE = """<style>
.tl-message pre, .tl-body { white-space: pre-wrap; word-break: break-all; margin: 2px 0; }
.tl-first { font-weight: bold; }
.tl-headers, .tl-diff, .tl-table { border-collapse: collapse; font-size: 12px; }
.tl-headers th, .tl-headers td, .tl-diff th, .tl-diff td, .tl-table th, .tl-table td {
  border-bottom: 1px solid #ddd; padding: 1px 6px; text-align: left; vertical-align: top; }
.tl-headers td, .tl-diff td { word-break: break-all; }
.tl-note { color: #666; font-style: italic; font-size: 12px; }
.tl-url { color: #444; font-size: 12px; word-break: break-all; }
.tl-old { background: #fdecea; } .tl-new { background: #e7f5e8; }
.tl-same { color: #1b7a2e; }
.tl-table tr.tl-selected td { background: #fff3c4; }
.tl-s2 { color: #1b7a2e; } .tl-s3 { color: #1f5fa8; } .tl-s4 { color: #b35c00; }
.tl-s5 { color: #c62828; font-weight: bold; } .tl-serr { color: #6a1b9a; font-weight: bold; }
.tl-num { text-align: right; font-variant-numeric: tabular-nums; }
</style>"""
