"""Bodies ready to show, one home for the notebook widgets and the command line: the stored
bytes with their ``Content-Encoding`` undone (bounded: a decompression bomb stops at
:data:`MAX_DECODED` and is shown as stored), then indented JSON, text, an image or a hex dump,
cut at :data:`MAX_TEXT` characters. JSON nested deeper than the parser's stack is shown as text.

Core layer: the standard library and :mod:`traffic_lab.wire.codings` only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass

from .codings import BodyTooLargeError, content_codings, decode_body, supports
from .headers import header_text

__all__ = [
    "CONTROL_CHARS",
    "IMAGE_TYPES",
    "MAX_DECODED",
    "MAX_HEX",
    "MAX_TEXT",
    "BodyView",
    "body_kind",
    "body_view",
    "decoded",
    "hexdump",
    "message_body_view",
    "media_type",
]

#: Bodies longer than this are cut when rendered (the stored body is untouched).
MAX_TEXT = 200_000
#: Bytes shown in a hex dump.
MAX_HEX = 4096
#: A body that decodes to more than this is shown as stored (a decompression bomb stops here).
MAX_DECODED = 64 << 20
#: Raster image types shown as images (a browser runs no code from them; SVG is text).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXT_TYPES = (
    "text/",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "image/svg+xml",
)
CONTROL_CHARS = "\x00\x01\x02\x03\x04\x05\x06\x07\x08"  # in text, they mean binary


def decoded(
    body: bytes, content_encoding: str | None, limit: int = MAX_DECODED
) -> tuple[bytes, str | None]:
    """``body`` with its ``Content-Encoding`` undone (:func:`traffic_lab.wire.decode_body`),
    and a note: ``None`` when nothing needed doing, else what was done or why not (the bytes
    are then the stored ones).

    >>> import gzip
    >>> decoded(gzip.compress(b"hi"), "gzip"), decoded(b"hi", "gzip")[1]
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
        data = decode_body(body, codings, limit=limit)
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
        note = html.escape(self.note, quote=True)
        note = f'<div class="tl-note">{note}</div>' if note else ""
        if self.kind == "empty":
            return f'{note}<div class="tl-note">(empty body)</div>'
        if self.kind == "image":
            mime = html.escape(self.mime, quote=True)
            return f'{note}<div class="tl-note">{mime} image, {self.size} bytes</div>'
        text = html.escape(self.text, quote=True)
        return f'{note}<pre class="tl-body tl-{self.kind}">{text}</pre>'


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
    data, note = decoded(body, content_encoding)
    mime = media_type(content_type or "")
    kind, text = body_kind(data, mime)
    if len(text) > MAX_TEXT:
        cut = f"showing the first {MAX_TEXT:,} of {len(text):,} characters"
        text, note = text[:MAX_TEXT], f"{note}; {cut}" if note else cut
    return BodyView(kind, text, data, mime, len(data), note or "")


def message_body_view(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> BodyView:
    """:func:`body_view` of a message's stored ``body`` under its ``headers`` (their
    ``Content-Type`` and ``Content-Encoding``)."""
    return body_view(
        body, header_text(headers, "content-type"), header_text(headers, "content-encoding")
    )


def body_kind(data: bytes, mime: str) -> tuple[str, str]:
    """The kind of a decoded body, and its text."""
    if not data:
        return "empty", ""
    if mime in IMAGE_TYPES:
        return "image", ""
    is_json = mime == "application/json" or mime.endswith("+json")
    if is_json or (not mime and data[:1] in (b"{", b"[")):
        try:
            return "json", json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # nested deeper than the parser's stack: as text
            pass
    textual = is_json or mime.startswith(TEXT_TYPES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1") if textual else ""
    if textual or (text and not any(ch in text for ch in CONTROL_CHARS)):
        return "text", text
    return "binary", hexdump(data)


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lower-cased: ``text/html; charset=x`` ->
    ``text/html``."""
    return content_type.split(";")[0].strip().lower()
