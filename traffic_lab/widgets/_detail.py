"""The detail pane for one exchange, as a DevTools Network panel shows it: tabs for *Headers*,
*Payload*, *Response* (a collapsible JSON tree, text, an image, hex; or the raw wire bytes),
*Timing*, *Code* (curl, httpx, respx, pytest-httpx) and, after a replay, *Replay* (the live
response beside the recording and their structural diff).

:func:`detail_html` returns one self-contained piece of HTML that needs no JavaScript: tabs are
radio inputs and labels, the JSON tree is nested ``<details>``, and the styles
(``static/detail.css``) come inlined. The same HTML serves the live widgets (the browser's and
the stream player's detail pane) and static snapshots (nbconvert, a saved page).

A capture is untrusted input: every value is escaped, every body is cut to a bounded size (a
body that decodes to more than :data:`MAX_DECODED`, a decompression bomb, is shown as stored),
JSON trees stop at :data:`MAX_DEPTH` levels and :data:`MAX_NODES` nodes, and an image is shown
only when its content type is a raster type and its bytes start as that type does.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..exchange import Exchange
from ..transports.requester import ReplayResult
from ..wire import header_text
from ..wire.bodies import (
    CONTROL_CHARS,
    IMAGE_TYPES,
    body_kind,
    decoded,
    hexdump,
    media_type,
)
from ._html import (
    diff_html,
    esc,
    status_line,
)
from ._static import widget_css
from .snippets import to_curl, to_httpx_code, to_pytest_httpx_code, to_respx_code

__all__ = [
    "MAX_CHUNKS_SHOWN",
    "MAX_CODE_BODY",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_RAW",
    "MAX_RAW_HEX",
    "MAX_SHOWN",
    "TABS",
    "detail_css",
    "detail_html",
]

#: Decoded text shown for a body, in characters; the rest is cut with a note.
MAX_SHOWN = 256 * 1024
#: Wire bytes shown by the *raw* view as text (readable UTF-8) and as a hex dump.
MAX_RAW = 64 * 1024
MAX_RAW_HEX = 8 * 1024
#: A JSON body longer than this (decoded) is shown as text, not parsed into a tree.
MAX_TREE_BYTES = 2 << 20
#: Levels of a JSON tree shown as nodes; deeper values are shown as compact JSON text.
MAX_DEPTH = 24
#: JSON tree nodes shown; the rest of each container is counted in a note.
MAX_NODES = 2000
#: Bodies longer than this leave the code snippets that would inline them out of the pane.
MAX_CODE_BODY = 16 * 1024
#: Largest image shown inline (as a ``data:`` URL).
MAX_IMAGE = 4 << 20
#: Chunk arrivals of a streamed body listed in the Timing tab; the rest are counted in a note.
MAX_CHUNKS_SHOWN = 50
#: Levels of the tree open at first (DevTools opens the first).
_OPEN_LEVELS = 2

#: The tabs, in order: (key, label). *Replay* is shown only with a replay.
TABS = (
    ("headers", "Headers"),
    ("payload", "Payload"),
    ("response", "Response"),
    ("timing", "Timing"),
    ("code", "Code"),
    ("replay", "Replay"),
)
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
_UID_OK = re.compile(r"[^A-Za-z0-9_-]")
_COUNTER = itertools.count(1)


def detail_css() -> str:
    """The pane's style sheet (the palette and ``static/detail.css``), as text."""
    return widget_css("detail")


def _uid(uid: str) -> str:
    """Element-id material: ``uid`` with anything but letters, digits, ``_`` and ``-`` dropped,
    or a fresh one per call when empty (two panes on one page never share radio groups)."""
    clean = _UID_OK.sub("", uid)[:64]
    return clean or f"p{next(_COUNTER)}"


# -- bodies --------------------------------------------------------------------------------------


def _image_ok(data: bytes, mime: str) -> bool:
    """A raster type we show, and bytes that start as that type does."""
    if mime not in IMAGE_TYPES or len(data) > MAX_IMAGE:
        return False
    if mime == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return data.startswith(_MAGIC[mime])


def _note(text: str) -> str:
    return f'<div class="tl-d-note">{esc(text)}</div>' if text else ""


def _cut(text: str, limit: int = MAX_SHOWN) -> tuple[str, str]:
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"showing the first {limit // 1024:,} KB of {len(text):,} characters"


def _is_json(mime: str, data: bytes) -> bool:
    if mime == "application/json" or mime.endswith("+json"):
        return True
    return not mime and data.lstrip()[:1] in (b"{", b"[")


def body_html(body: bytes, content_type: str | None, content_encoding: str | None) -> str:
    """A body decoded and shown: a JSON tree, text, an image, a hex dump, or "(empty body)",
    with a note saying what was decoded, cut or could not be read. Never raises on bad input."""
    data, decode_note = decoded(body, content_encoding)
    notes = [decode_note] if decode_note else []
    mime = media_type(content_type or "")
    if not data:
        return _note("; ".join(notes)) + '<div class="tl-d-empty">(empty body)</div>'
    if decode_note and decode_note.endswith("shown as stored"):  # still encoded: bytes only
        notes.append(f"{len(data):,} bytes")
        return _note("; ".join(notes)) + f'<pre class="tl-d-hex">{esc(hexdump(data))}</pre>'
    if _is_json(mime, data):
        if len(data) <= MAX_TREE_BYTES:
            try:
                value = json.loads(data)
            except (ValueError, RecursionError):
                notes.append("not valid JSON: shown as text")
            else:
                tree = _JsonTree().render(value)
                return _note("; ".join(notes)) + f'<div class="tl-d-json">{tree}</div>'
        else:
            notes.append(f"{len(data):,} bytes of JSON: shown as text, not as a tree")
        text = data.decode("utf-8", errors="replace")
        text, cut = _cut(text)
        notes += [cut] if cut else []
        return _note("; ".join(notes)) + f'<pre class="tl-d-text">{esc(text)}</pre>'
    if mime in IMAGE_TYPES:
        if _image_ok(data, mime):
            url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            info = f"{mime}, {len(data):,} bytes"
            return (
                _note("; ".join(notes))
                + f'<div class="tl-d-image"><img src="{url}" alt="{esc(info)}">'
                f'<div class="tl-d-note">{esc(info)}</div></div>'
            )
        notes.append(f"not a {mime} image (or over {MAX_IMAGE >> 20} MB): shown as hex")
        return _note("; ".join(notes)) + f'<pre class="tl-d-hex">{esc(hexdump(data))}</pre>'
    head = _utf8_head(data, MAX_SHOWN)
    kind, text = body_kind(head, mime)
    if kind == "json":  # sniffed as JSON under a text type: shown as sent
        kind, text = "text", head.decode("utf-8", errors="replace")
    if kind == "binary":
        notes.append(f"{len(data):,} bytes of binary data")
        return _note("; ".join(notes)) + f'<pre class="tl-d-hex">{esc(text)}</pre>'
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        notes.append("not valid UTF-8: shown as latin-1")
    if len(head) < len(data):
        notes.append(f"showing the first {MAX_SHOWN // 1024:,} KB of {len(data):,} bytes")
    return _note("; ".join(notes)) + f'<pre class="tl-d-text">{esc(text)}</pre>'


def _utf8_head(data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of ``data``, cut before a UTF-8 sequence that would be split."""
    if len(data) <= limit:
        return data
    end = limit
    while end > limit - 4 and data[end] & 0xC0 == 0x80:  # a continuation byte
        end -= 1
    return data[:end]


def raw_html(body: bytes) -> str:
    """The wire bytes as stored: text when they are readable UTF-8, else a hex dump; cut to
    :data:`MAX_RAW` bytes."""
    if not body:
        return '<div class="tl-d-empty">(empty body)</div>'
    shown = _utf8_head(body, MAX_RAW)
    note = f"{len(body):,} bytes on the wire"
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"  # not text: a hex dump
    if any(ch in text for ch in CONTROL_CHARS):
        if len(body) > MAX_RAW_HEX:
            note += f"; showing the first {MAX_RAW_HEX // 1024} KB"
        return _note(note) + f'<pre class="tl-d-hex">{esc(hexdump(body, MAX_RAW_HEX))}</pre>'
    if len(shown) < len(body):
        note += f"; showing the first {MAX_RAW // 1024} KB"
    return _note(note) + f'<pre class="tl-d-text">{esc(text)}</pre>'


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _inline(value: dict[str, Any] | list[Any], limit: int = 60) -> str:
    """A one-line preview of a container, as DevTools shows a closed one:
    ``{id: 1, name: "a", tags: […]}``, cut at about ``limit`` characters."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    parts: list[str] = []
    used = 0
    for key, child in items:
        if isinstance(child, dict):
            shown = "{…}" if child else "{}"
        elif isinstance(child, list):
            shown = "[…]" if child else "[]"
        else:
            shown = _short(json.dumps(child, ensure_ascii=False))
        part = f"{_short(str(key))}: {shown}" if isinstance(value, dict) else shown
        if parts and used + len(part) > limit:
            parts.append("…")
            break
        parts.append(part)
        used += len(part) + 2
    open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return f"{open_}{', '.join(parts)}{close}"


class _JsonTree:
    """A parsed JSON value as nested ``<details>``: keys, strings, numbers, booleans and nulls
    in their highlight classes; bounded in depth and in node count."""

    def __init__(self) -> None:
        self.nodes = 0

    def render(self, value: Any) -> str:
        return "".join(self._node(None, value, 0))

    @staticmethod
    def _scalar(value: Any) -> str:
        if value is None:
            return '<span class="tl-j-null">null</span>'
        if value is True or value is False:
            return f'<span class="tl-j-bool">{"true" if value else "false"}</span>'
        if isinstance(value, int | float):
            return f'<span class="tl-j-num">{esc(json.dumps(value))}</span>'
        text, cut = _cut(json.dumps(value, ensure_ascii=False), 10_000)
        more = '<span class="tl-d-note"> (cut)</span>' if cut else ""
        return f'<span class="tl-j-str">{esc(text)}</span>{more}'

    @staticmethod
    def _key(key: str | int | None) -> str:
        if key is None:
            return ""
        if isinstance(key, int):
            return f'<span class="tl-j-idx">{key}</span>: '
        return f'<span class="tl-j-key">{esc(json.dumps(key, ensure_ascii=False))}</span>: '

    @staticmethod
    def _preview(value: dict[str, Any] | list[Any]) -> str:
        n = len(value)
        inline = f'<span class="tl-j-inline">{esc(_inline(value))}</span> '
        if isinstance(value, dict):
            return f'{inline}<span class="tl-j-count">{n:,} key{"s" * (n != 1)}</span>'
        return f'{inline}<span class="tl-j-count">{n:,} item{"s" * (n != 1)}</span>'

    def _node(self, key: str | int | None, value: Any, depth: int) -> Iterator[str]:
        self.nodes += 1
        if not isinstance(value, dict | list):
            yield f'<div class="tl-j-leaf">{self._key(key)}{self._scalar(value)}</div>'
            return
        if not value:
            empty = "{}" if isinstance(value, dict) else "[]"
            punct = f'<span class="tl-j-punct">{empty}</span>'
            yield f'<div class="tl-j-leaf">{self._key(key)}{punct}</div>'
            return
        if depth >= MAX_DEPTH:
            try:
                text = json.dumps(value, ensure_ascii=False)
            except RecursionError:
                text = "…"
            text, _ = _cut(text, 2000)
            yield (
                f'<div class="tl-j-leaf">{self._key(key)}<span class="tl-j-deep" '
                f'title="nested deeper than {MAX_DEPTH} levels">{esc(text)}</span></div>'
            )
            return
        is_open = " open" if depth < _OPEN_LEVELS else ""
        yield f"<details{is_open}><summary>{self._key(key)}{self._preview(value)}</summary>"
        yield '<div class="tl-j-children">'
        items: Sequence[tuple[str | int, Any]] = (
            list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        )
        for shown, (child_key, child) in enumerate(items):
            if self.nodes >= MAX_NODES:
                rest = len(items) - shown
                yield f'<div class="tl-d-note">… {rest:,} more not shown</div>'
                break
            yield from self._node(child_key, child, depth + 1)
        yield "</div></details>"


# -- tabs ----------------------------------------------------------------------------------------


def _pairs_table(pairs: Sequence[tuple[str, str]], css: str = "") -> str:
    if not pairs:
        return '<div class="tl-d-empty">(none)</div>'
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="tl-d-kv {css}">{rows}</table>'


def _text_pairs(pairs: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs]


def _section(title: str, body: str, extra: str = "") -> str:
    return (
        f'<details class="tl-d-section" open><summary>{esc(title)}{extra}</summary>{body}</details>'
    )


def _status_class(exchange: Exchange) -> str:
    code = exchange.status_code
    return "tl-d-serr" if code is None else f"tl-d-s{min(max(code // 100, 1), 5)}"


def _headers_tab(exchange: Exchange, uid: str) -> str:
    status = status_line(exchange)
    general = [("Request URL", exchange.url), ("Request Method", exchange.method)]
    general.append(
        (
            "Status Code",
            status
            if exchange.status_code is None
            else f"{exchange.status_code} {exchange.reason_phrase}".rstrip(),
        )
    )
    general.append(("HTTP Version", exchange.http_version))
    if exchange.truncated:
        general.append(("Note", "the client closed the response before its end"))
    sides = []
    for title, pairs in (
        ("Response Headers", exchange.response_headers),
        ("Request Headers", exchange.request_headers),
    ):
        text = _text_pairs(pairs)
        ordered = sorted(text, key=lambda pair: pair[0].lower())
        count = f' <span class="tl-d-count">({len(text)})</span>'
        body = _pairs_table(text, "tl-d-wire") + _pairs_table(ordered, "tl-d-sorted")
        sides.append(_section(title, body, count))
    toggle = (
        f'<input type="checkbox" class="tl-d-sort" id="tl-d-{uid}-sort">'
        f'<label class="tl-d-sortlabel" for="tl-d-{uid}-sort">sorted by name</label>'
    )
    return toggle + _section("General", _pairs_table(general)) + "".join(sides)


def _query_pairs(url: str) -> list[tuple[str, str]]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    return parse_qsl(query, keep_blank_values=True)


def _payload_tab(exchange: Exchange, uid: str) -> str:
    parts = []
    query = _query_pairs(exchange.url)
    if query:
        parts.append(_section("Query String Parameters", _pairs_table(query)))
    pairs = exchange.request_headers
    ctype, cenc = header_text(pairs, "content-type"), header_text(pairs, "content-encoding")
    body = exchange.request_body
    if body and media_type(ctype or "") == "application/x-www-form-urlencoded" and not cenc:
        form = parse_qsl(body[:MAX_SHOWN].decode("latin-1"), keep_blank_values=True)
        parts.append(_section("Form Data", _pairs_table(form)))
    if body or not query:
        title = "Request Payload" + (f" ({ctype})" if ctype else "")
        shown = body_html(body, ctype, cenc)
        if body:
            shown = _view_toggle(uid, "request", shown, raw_html(body))
        parts.append(_section(title, shown))
    return "".join(parts)


def _view_toggle(uid: str, side: str, preview: str, raw: str) -> str:
    """Preview / Raw radio pair and the two views (CSS shows the checked one)."""
    name = f"tl-d-{uid}-{side}-view"
    return (
        f'<div class="tl-d-views">'
        f'<input type="radio" class="tl-d-vpreview" name="{name}" id="{name}-p" checked>'
        f'<label for="{name}-p">Preview</label>'
        f'<input type="radio" class="tl-d-vraw" name="{name}" id="{name}-r">'
        f'<label for="{name}-r">Raw</label>'
        f'<div class="tl-d-preview">{preview}</div><div class="tl-d-raw">{raw}</div></div>'
    )


def _response_body(exchange: Exchange, uid: str, side: str = "response") -> str:
    if exchange.status_code is None:
        return f'<div class="tl-d-error">{esc(status_line(exchange))}</div>'
    pairs = exchange.response_headers
    preview = body_html(
        exchange.response_body,
        header_text(pairs, "content-type"),
        header_text(pairs, "content-encoding"),
    )
    truncated = (
        _note("truncated: the client closed the response early") if exchange.truncated else ""
    )
    return truncated + _view_toggle(uid, side, preview, raw_html(exchange.response_body))


def _ms(elapsed: timedelta) -> str:
    ms = elapsed.total_seconds() * 1000
    return f"{ms:,.1f} ms" if ms < 10_000 else f"{ms / 1000:,.2f} s"


def _timing_tab(exchange: Exchange) -> str:
    start = exchange.started_at
    end = start + exchange.elapsed
    rows = [
        ("Started", start.isoformat(timespec="milliseconds")),
        ("Finished", end.isoformat(timespec="milliseconds")),
        ("Total", _ms(exchange.elapsed)),
    ]
    label = "Error after" if exchange.status_code is None else "Request sent, response complete"
    bar = (
        '<div class="tl-d-timing"><div class="tl-d-tlabel">'
        f"{esc(label)}</div>"
        f'<div class="tl-d-track"><div class="tl-d-bar {_status_class(exchange)}"></div></div>'
        f'<div class="tl-d-tvalue">{esc(_ms(exchange.elapsed))}</div></div>'
    )
    tags = exchange.tags
    parts = [_section("Timing", bar + _pairs_table(rows))]
    if exchange.chunks:
        parts.append(_chunks_section(exchange))
    if tags:
        parts.append(_section("Tags", _pairs_table(sorted(tags.items()))))
    return "".join(parts)


def _chunks_section(exchange: Exchange) -> str:
    """A streamed body's chunk arrivals: when each came (from the response's start), its size,
    and a mark on a track as long as the stream (the first :data:`MAX_CHUNKS_SHOWN`)."""
    chunks = exchange.chunks or ()
    span = chunks[-1].offset_us or 1
    rows = "".join(
        f"<tr><td>{i}</td><td>{esc(_ms(timedelta(microseconds=c.offset_us)))}</td>"
        f"<td>{esc(_size(c.size))}</td>"
        f'<td class="tl-d-ctrack"><div class="tl-d-cmark" '
        f'style="margin-left:{100 * c.offset_us / span:.1f}%"></div></td></tr>'
        for i, c in enumerate(chunks[:MAX_CHUNKS_SHOWN], 1)
    )
    table = (
        '<table class="tl-d-chunks"><tr><th>#</th><th>at</th><th>size</th><th></th></tr>'
        f"{rows}</table>"
    )
    more = len(chunks) - MAX_CHUNKS_SHOWN
    if more > 0:
        table += _note(f"{more:,} more chunks not listed")
    last = _ms(timedelta(microseconds=chunks[-1].offset_us))
    return _section(f"Chunk arrivals ({len(chunks):,} chunks, the last at {last})", table)


def _code_tab(exchange: Exchange) -> str:
    # Code is shown whole or not at all (cut code would not run): a body over MAX_CODE_BODY
    # bytes leaves its snippets out, with a note naming the function that writes them.
    request_ok = len(exchange.request_body) <= MAX_CODE_BODY
    response_ok = request_ok and len(exchange.response_body) <= MAX_CODE_BODY
    blocks = (
        ("curl", to_curl, request_ok, "request"),
        ("Python (httpx)", to_httpx_code, request_ok, "request"),
        ("respx fixture", to_respx_code, response_ok, "exchange"),
        ("pytest-httpx fixture", to_pytest_httpx_code, response_ok, "exchange"),
    )
    parts = []
    for title, make, ok, what in blocks:
        if ok:
            body = f'<pre class="tl-d-code">{esc(make(exchange))}</pre>'
        else:
            body = _note(
                f"the {what} holds a body over {MAX_CODE_BODY // 1024} KB: too long to show "
                f"here; traffic_lab.widgets.snippets.{make.__name__}(exchange) writes it"
            )
        parts.append(_section(title, body))
    return "".join(parts)


def _replay_tab(replay: ReplayResult, uid: str) -> str:
    recorded = replay.recorded
    response = replay.response
    if response is None:
        error = replay.error
        what = f"{type(error).__name__}: {error}" if error is not None else "no response"
        return f'<div class="tl-d-error">replay failed: {esc(what)}</div>'
    live = Exchange.from_httpx(response.request, response)
    diff = replay.diff()
    verdict = (
        '<div class="tl-d-same">same as recorded (volatile headers ignored)</div>'
        if not diff
        else f'<div class="tl-d-differs">differs from the recording</div>{diff_html(diff)}'
    )
    columns = "".join(
        f'<div class="tl-d-col"><div class="tl-d-coltitle">{title} '
        f'<span class="{_status_class(ex)}">{esc(status_line(ex))}</span></div>'
        f"{_pairs_table(_text_pairs(ex.response_headers))}"
        f"{_response_body(ex, uid, side)}</div>"
        for title, ex, side in (("recorded", recorded, "rec"), ("replayed", live, "live"))
    )
    return verdict + f'<div class="tl-d-cols">{columns}</div>'


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def _top(exchange: Exchange) -> str:
    status = "failed" if exchange.status_code is None else str(exchange.status_code)
    return (
        '<div class="tl-d-top">'
        f'<span class="tl-d-method">{esc(exchange.method)}</span>'
        f'<span class="tl-d-status {_status_class(exchange)}">{esc(status)}</span>'
        f'<span class="tl-d-url" title="{esc(exchange.url)}">{esc(exchange.url)}</span>'
        f'<span class="tl-d-meta">{esc(_ms(exchange.elapsed))} · '
        f"{esc(_size(len(exchange.response_body)))}</span></div>"
    )


def detail_html(
    exchange: Exchange,
    *,
    replay: ReplayResult | None = None,
    uid: str = "",
    tab: str = "",
    style: bool = True,
) -> str:
    """The detail pane for ``exchange``: self-contained HTML, no JavaScript needed.

    Parameters
    ----------
    exchange
        The exchange to show.
    replay
        A replay of it (:class:`~traffic_lab.transports.ReplayResult`): adds the *Replay* tab,
        the replayed response beside the recorded one with their structural diff.
    uid
        Makes element ids unique when several panes share a page (letters, digits, ``_`` and
        ``-`` are kept); empty: a fresh one per call.
    tab
        The tab open at first (``"headers"``, ``"payload"``, ``"response"``, ``"timing"``,
        ``"code"``, ``"replay"``); default *Replay* with a replay, else *Headers*.
    style
        Inline the style sheet (:func:`detail_css`); a widget that loads it once passes False.

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> ex = tl.Exchange.from_httpx(httpx.Request("GET", "https://api.example/<b>"),
    ...                             httpx.Response(200, json={"id": 1}))
    >>> html = detail_html(ex, uid="a1")
    >>> '<span class="tl-j-key">&quot;id&quot;</span>' in html, "<b>" in html
    (True, False)
    """
    uid = _uid(uid)
    keys = [key for key, _ in TABS if key != "replay" or replay is not None]
    first = tab if tab in keys else ("replay" if replay is not None else "headers")
    panels = {
        "headers": lambda: _headers_tab(exchange, uid),
        "payload": lambda: _payload_tab(exchange, uid),
        "response": lambda: _response_body(exchange, uid),
        "timing": lambda: _timing_tab(exchange),
        "code": lambda: _code_tab(exchange),
        "replay": lambda: _replay_tab(replay, uid) if replay is not None else "",
    }
    labels = dict(TABS)
    name = f"tl-d-{uid}-tab"
    bar = "".join(
        f'<input type="radio" class="tl-d-tab tl-d-tab-{key}" name="{name}" id="{name}-{key}"'
        f'{" checked" if key == first else ""}><label for="{name}-{key}">{labels[key]}</label>'
        for key in keys
    )
    body = "".join(
        f'<div class="tl-d-panel tl-d-panel-{key}">{panels[key]()}</div>' for key in keys
    )
    css = f"<style>{detail_css()}</style>" if style else ""
    return f'{css}<div class="tl-detail" id="tl-d-{uid}">{_top(exchange)}{bar}{body}</div>'
