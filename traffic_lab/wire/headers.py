"""Header lookup, the charset of a ``Content-Type``, reason phrases, and headers that agree
with a body.

Header lists are ordered ``(name, value)`` pairs, all ``bytes`` (``httpx.Headers.raw``, an
:class:`~traffic_lab.Exchange`) or all ``str`` (a traffic frame); a lookup answers in the type
it was given, and names match in any case.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from email.message import Message
from typing import TypeVar

import httpx

__all__ = [
    "body_consistent_headers",
    "content_charset",
    "header_text",
    "header_value",
    "header_values",
    "reason_phrase",
    "response_reason",
    "with_content_length",
]

_S = TypeVar("_S", str, bytes)
_Pairs = tuple[tuple[bytes, bytes], ...]


def header_values(headers: Iterable[tuple[_S, _S]], name: str) -> list[_S]:
    """Every value of header ``name``, in order (repeated headers are not joined).

    >>> header_values([(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2")], "set-cookie")
    [b'a=1', b'b=2']
    """
    text = name.lower()
    size, wanted = len(text), (text.encode("latin-1"), text)
    # Comparing lengths first skips most names at a third of the cost of lower().
    return [value for key, value in headers if len(key) == size and key.lower() in wanted]


def header_value(headers: Iterable[tuple[_S, _S]], name: str) -> _S | None:
    """The first value of header ``name``, or ``None``.

    >>> header_value([("Content-Type", "text/html")], "content-type")
    'text/html'
    """
    values = header_values(headers, name)
    return values[0] if values else None


def header_text(headers: Iterable[tuple[_S, _S]], name: str) -> str | None:
    """Header ``name``'s values as one text, repeats joined with ``", "`` (what
    ``httpx.Headers.get`` answers; bytes read as latin-1), or ``None``.

    >>> pairs = [(b"Content-Encoding", b"gzip"), (b"content-encoding", b"br")]
    >>> header_text(pairs, "content-encoding")
    'gzip, br'
    >>> header_text([("Accept", "*/*")], "accept"), header_text([], "accept")
    ('*/*', None)
    """
    values = header_values(headers, name)
    if not values:
        return None
    return ", ".join(v.decode("latin-1") if isinstance(v, bytes) else v for v in values)


def content_charset(content_type: str | bytes | None, default: str = "utf-8") -> str:
    """The ``charset`` of a ``Content-Type`` value, as Python names the codec; ``default`` when
    there is none or Python has no such codec (httpx's rule for ``Response.encoding``).

    >>> content_charset('text/html; charset="ISO-8859-1"'), content_charset("text/plain; charset=x")
    ('iso8859-1', 'utf-8')
    """
    if not content_type:
        return default
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    message = Message()
    try:
        message["content-type"] = content_type
        charset = message.get_content_charset()
        return codecs.lookup(charset).name if charset else default
    except (LookupError, ValueError):  # no such codec; a value email cannot hold (a newline)
        return default


# httpx's table (``httpx.codes``), read once: a lookup per recorded response must be cheap.
_PHRASES: dict[int, str] = {int(code): code.phrase for code in httpx.codes}  # type: ignore[attr-defined]


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status``, as httpx gives it; ``""`` for a status that has
    none (such as 299, or 600-999, which HTTP allows but names nothing for).

    >>> reason_phrase(404), reason_phrase(418), reason_phrase(799)
    ('Not Found', "I'm a teapot", '')
    """
    return _PHRASES.get(status, "")


def response_reason(response: httpx.Response) -> str:
    """The reason phrase ``response`` came with (its bytes read as Latin-1, as sent), or the
    standard one when the transport gave none (a handler, ``httpx.MockTransport``).

    >>> response_reason(httpx.Response(200, extensions={"reason_phrase": b"Fine"}))
    'Fine'
    >>> response_reason(httpx.Response(201))
    'Created'
    """
    raw = response.extensions.get("reason_phrase")
    if isinstance(raw, bytes):
        return raw.decode("latin-1")
    return reason_phrase(response.status_code)


def with_content_length(pairs: _Pairs, length: int) -> _Pairs:
    """``pairs`` with each ``Content-Length`` that is not ``length`` set to it.

    >>> with_content_length(((b"Content-Length", b"9"), (b"X", b"1")), 3)
    ((b'Content-Length', b'3'), (b'X', b'1'))
    """
    value = str(length).encode()
    return tuple(
        (key, value) if key.lower() == b"content-length" and old.strip() != value else (key, old)
        for key, old in pairs
    )


def body_consistent_headers(
    pairs: _Pairs, body: bytes, *, method: str, status_code: int, drop_encoding: bool
) -> _Pairs:
    """Response headers that agree with ``body``.

    ``drop_encoding`` removes ``Content-Encoding`` (the body is stored decoded). A
    ``Content-Length`` that no longer matches is set to the body's length, except where the body
    is empty by definition (HEAD, 1xx, 204, 304).

    >>> body_consistent_headers(
    ...     ((b"Content-Encoding", b"gzip"), (b"Content-Length", b"30")), b"hello",
    ...     method="GET", status_code=200, drop_encoding=True)
    ((b'Content-Length', b'5'),)
    """
    if drop_encoding:
        pairs = tuple((k, v) for k, v in pairs if k.lower() != b"content-encoding")
    if method == "HEAD" or status_code < 200 or status_code in (204, 304):
        return pairs
    return with_content_length(pairs, len(body))
