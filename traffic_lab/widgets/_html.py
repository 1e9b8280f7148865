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
from dataclasses import dataclass
from typing import Any

from ..exchange import Exchange
from ..transports.requester import MISSING, ResponseDiff
from ..wire import (
    BodyTooLargeError,
    content_codings,
    decode_body,
    header_values,
    supports,
)

#: Bodies longer than this are cut when rendered (the stored body is untouched).
MAX_TEXT = 200_000
#: Bytes shown in a hex dump.
MAX_HEX = 4096
#: A body that decodes to more than this is shown as stored (a decompression bomb stops here).
MAX_DECODED = 64 << 20
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_TEXT_TYPES = (
    "text/",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "image/svg+xml",
)
_CONTROL_CHARS = "\x00\x01\x02\x03\x04\x05\x06\x07\x08"  # in text, they mean binary


def esc(value: object) -> str:
    """``html.escape`` of ``str(value)``, quotes included."""
    return html.escape(str(value), quote=True)


def _header(pairs: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    """A header's values as one text, repeats joined with ``", "`` (``httpx.Headers.get``)."""
    values = header_values(pairs, name)
    return ", ".join(v.decode("latin-1") for v in values) if values else None


def _decoded(body: bytes, content_encoding: str | None) -> tuple[bytes, str | None]:
    """``body`` with its ``Content-Encoding`` undone (:func:`traffic_lab.wire.decode_body`),
    and a note: ``None`` when nothing needed doing, else what was done or why not (the bytes
    are then the stored ones).

    >>> import gzip
    >>> _decoded(gzip.compress(b"hi"), "gzip"), _decoded(b"hi", "gzip")[1]
    ((b'hi', 'decoded from gzip'), 'could not decode gzip (truncated or corrupt): shown as stored')
    """
    codings = content_codings([("content-encoding", content_encoding or "")])
    if not codings or not body:
        return body, None
    for coding in codings:
        if not supports(coding):
            why = "br needs brotli, zstd needs zstandard" if coding in ("br", "zstd") else "unknown"
            return body, f"content-encoding {coding!r} ({why}): shown as stored"
    try:
        data = decode_body(body, codings, limit=MAX_DECODED)
    except BodyTooLargeError as exc:
        return body, f"{content_encoding} body {exc}: shown as stored"
    if data is None:
        return body, f"could not decode {content_encoding} (truncated or corrupt): shown as stored"
    return data, f"decoded from {content_encoding}"


@dataclass(frozen=True, slots=True)
class BodyView:
    """A body ready to show.

    ``kind`` is ``"empty"``, ``"json"`` (``text`` is indented JSON), ``"text"``, ``"image"``
    (``data`` holds the image bytes, ``mime`` its type) or ``"binary"`` (``text`` is a hex
    dump). ``note`` says what was decoded or cut; ``size`` is the decoded size in bytes.
    """

    kind: str
    text: str
    data: bytes
    mime: str
    size: int
    note: str

    def to_html(self) -> str:
        """The body as escaped HTML (an image shows as a placeholder line: use ``data``)."""
        note = f'<div class="tl-note">{esc(self.note)}</div>' if self.note else ""
        if self.kind == "empty":
            return f'{note}<div class="tl-note">(empty body)</div>'
        if self.kind == "image":
            return f'{note}<div class="tl-note">{esc(self.mime)} image, {self.size} bytes</div>'
        return f'{note}<pre class="tl-body tl-{self.kind}">{esc(self.text)}</pre>'


def hexdump(data: bytes, limit: int = MAX_HEX) -> str:
    """A classic 16-bytes-a-line hex dump of the first ``limit`` bytes.

    Examples
    --------
    >>> print(hexdump(b"\\x89PNG\\r\\n"))
    00000000  89 50 4e 47 0d 0a                                .PNG..
    """
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit:,} more bytes")
    return "\n".join(lines)


def body_view(
    body: bytes, content_type: str | None = None, content_encoding: str | None = None
) -> BodyView:
    """Decode and pretty-print a body: indented JSON, text, an image, or a hex dump.

    Parameters
    ----------
    body
        The body as stored (wire bytes).
    content_type, content_encoding
        The message's ``Content-Type`` and ``Content-Encoding`` header values.

    Examples
    --------
    >>> print(body_view(b'{"id":1,"tags":["a"]}', "application/json").text)
    {
      "id": 1,
      "tags": [
        "a"
      ]
    }
    >>> body_view(b"\\x00\\x01", "application/octet-stream").kind
    'binary'
    """
    data, note = _decoded(body, content_encoding)
    mime = media_type(content_type or "")
    kind, text = _shown(data, mime)
    if len(text) > MAX_TEXT:
        cut = f"showing the first {MAX_TEXT:,} of {len(text):,} characters"
        text, note = text[:MAX_TEXT], f"{note}; {cut}" if note else cut
    return BodyView(kind, text, data, mime, len(data), note or "")


def _shown(data: bytes, mime: str) -> tuple[str, str]:
    """The kind of a decoded body, and its text."""
    if not data:
        return "empty", ""
    if mime in _IMAGE_TYPES:
        return "image", ""
    is_json = mime == "application/json" or mime.endswith("+json")
    if is_json or (not mime and data[:1] in (b"{", b"[")):
        try:
            return "json", json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # nested deeper than the parser's stack: as text
            pass
    textual = is_json or mime.startswith(_TEXT_TYPES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1") if textual else ""
    if textual or (text and not any(ch in text for ch in _CONTROL_CHARS)):
        return "text", text
    return "binary", hexdump(data)


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lower-cased: ``text/html; charset=x`` ->
    ``text/html``."""
    return content_type.split(";")[0].strip().lower()


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
    pairs, body = _side(exchange, side)
    return body_view(body, _header(pairs, "content-type"), _header(pairs, "content-encoding"))


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
