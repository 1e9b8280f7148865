"""HAR 1.2 (HTTP Archive) import and export, as Chrome, Firefox and mitmproxy write it.

What maps to what:

============================  ===========================================================
HAR                           :class:`~traffic_lab.Exchange`
============================  ===========================================================
``startedDateTime``           ``started_at`` (converted to UTC)
``time`` (ms)                 ``elapsed``
``request.method/url``        ``method``, ``url``
``request.headers``           ``request_headers`` (order and duplicates kept)
``request.postData``          ``request_body`` (``text`` encoded with the charset of
                              ``mimeType``; ``params`` only when there is no ``text``)
``response.status``           ``status_code``; ``0`` means no response: an ``error``
``response.statusText``       ``reason_phrase``
``response.httpVersion``      ``http_version`` (``h2`` / ``HTTP/2.0`` become ``HTTP/2``)
``response.headers``          ``response_headers``
``response.content``          ``response_body`` (see *Content codings* below)
``response._error``           ``error.message`` (Chrome and mitmproxy write it)
``pageref`` + page ``title``  tags ``har.page`` and ``har.page_title``
``timings``                   tag ``har.timings`` (compact JSON), unless they only restate
                              ``time``
``_trafficLab``               traffic_lab's own entry fields: other tags, ``truncated``,
                              the error type, and the wire bytes of an encoded body
============================  ===========================================================

HTTP/2 pseudo-headers (``:authority``, ``:path``...) that browsers list among request headers
are dropped on import: the method and URL already carry them, and an HTTP/1.1 client could not
send them. Header names and values are text in HAR; they become bytes as UTF-8, with
undecodable bytes kept as surrogates the way mitmproxy writes them, so a value that was not
UTF-8 comes back byte for byte.

Content codings
    HAR stores a response body *decoded* (``content.text``, base64 for binary bodies), while an
    Exchange stores the bytes that went over the wire. On import, a body whose headers say
    ``Content-Encoding: gzip`` (or ``deflate``, ``br``) is **re-encoded** with that coding, so
    headers and body agree and a replayed response decodes as the original did; the encoded
    bytes may differ from the original wire bytes, the decoded content is the same. When a
    coding cannot be applied (``zstd``, or ``br`` without the brotli package) the
    ``Content-Encoding`` header is **dropped** instead and the body kept decoded. An entry
    without ``content.text`` (browsers leave some bodies out) gets an empty body. Either way a
    ``Content-Length`` that no longer matches the body is set to its length (not for HEAD,
    1xx, 204 and 304 responses). HAR files written by :func:`write_har` also carry the wire
    bytes of encoded bodies (``_trafficLab.responseBody``), so their round trip is exact.

Compressed files: a HAR file may itself be gzip-compressed, or zlib-compressed as mitmproxy's
``.zhar``; :func:`read_har` recognises both by their first bytes, and :func:`write_har`
compresses when the path ends in ``.gz`` or ``.zhar``.

Untrusted files: :func:`read_har` decompresses in bounded steps and stops at ``max_bytes``
(1 GiB by default) of HAR text; an integer of more than 40 digits is refused as a number, and
nesting deeper than the JSON parser can follow is an error. An entry that cannot be read or
stored is skipped with a :class:`~traffic_lab.errors.SkippedEntryWarning` naming the file, the
entry and the field (``strict=True`` raises the :class:`~traffic_lab.errors.InteropError` instead).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlencode

import httpx

from .._version import __version__
from ..errors import preview
from ..exchange import Exchange, RecordedError, check_storable
from ..wire import (
    BodyTooLargeError,
    body_consistent_headers,
    content_charset,
    content_codings,
    decode_body,
    encode_body,
    header_value,
)
from ._common import (
    DEFAULT_MAX_BYTES,
    PathArg,
    Skips,
    Where,
    check_max_bytes,
    cut,
    field,
    fields_named,
    file_guard,
    header_bytes,
    header_text,
    load_json,
    normalize_http_version,
    open_input,
    optional,
    parse_url,
    read_entries,
    write_file_atomic,
)

__all__ = ["HAR_ERROR_TYPE", "read_har", "write_har"]

#: ``RecordedError.type`` of an error read from a HAR entry that traffic_lab did not write.
HAR_ERROR_TYPE = "har.error"

_TAG_PAGE = "har.page"
_TAG_PAGE_TITLE = "har.page_title"
_TAG_TIMINGS = "har.timings"
_HAR_TAGS = frozenset({_TAG_PAGE, _TAG_PAGE_TITLE, _TAG_TIMINGS})
_CUSTOM = "_trafficLab"
_NONE = type(None)
_ONE_MS = timedelta(milliseconds=1)
_CHUNK = 1 << 20
# Where a value refused by check_storable came from in a HAR entry.
_LOCATE = fields_named(
    {
        "method": "request.method",
        "url": "request.url",
        "port": "request.url",
        "status_code": "response.status",
        "reason_phrase": "response.statusText",
        "http_version": "response.httpVersion",
        "elapsed": "time",
        "error.type": f"{_CUSTOM}.error.type",
    }
)


# -- reading ------------------------------------------------------------------------------------
def read_har(
    path: PathArg, *, strict: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Exchange]:
    """Read a HAR file into a list of exchanges, in the file's entry order.

    The whole file is read and checked before anything is returned. A file that is not a HAR
    document raises :class:`~traffic_lab.errors.InteropError` naming the file. An entry that is
    invalid, or holds a value no store can hold (a port over 65535, a ``time`` of centuries:
    see :func:`~traffic_lab.exchange.check_storable`), is **skipped by default** with a
    :class:`~traffic_lab.errors.SkippedEntryWarning` naming the file, the entry index and
    the field, and the other entries are kept; ``strict=True`` raises the
    :class:`~traffic_lab.errors.InteropError` instead.

    Parameters
    ----------
    path
        A ``.har`` file (plain, gzip- or zlib-compressed).
    strict
        Raise on the first bad entry instead of skipping it.
    max_bytes
        The most bytes of HAR text read, after decompression (1 GiB by default); a larger
        file, or a gzip bomb, stops with an :class:`~traffic_lab.errors.InteropError` once past
        it, having decompressed no more than that.

    Returns
    -------
    list of Exchange
        One exchange per readable entry. Entries with status 0 (no response) become exchanges
        with an ``error``; see the module documentation for the rest of the mapping.

    Raises
    ------
    InteropError
        The file is not a valid HAR document, is over ``max_bytes``, or (with ``strict``)
        an entry is invalid. Nothing else escapes from a bad file.
    FileNotFoundError
        There is no such file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from traffic_lab.interop import read_har, write_har
    >>> from traffic_lab.testing import make_exchange
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "capture.har"
    >>> write_har([make_exchange(json={"id": 1})], path)
    1
    >>> [ex] = read_har(path)
    >>> ex.status_code, ex.response.json()
    (200, {'id': 1})
    """
    check_max_bytes(max_bytes)
    file = Path(path)
    where = Where(str(file))
    with open_input(file, where) as stream, file_guard(where.path):
        raw = _read_text_bytes(stream, where, max_bytes)
    with file_guard(where.path):
        document = _load(raw, where)
        del raw
        log = field(document, "log", dict, where, "")
        entries = field(log, "entries", list, where, "log")
        pages = _read_pages(log, where)

        def read(entry: Any, at: Where) -> Exchange:
            return _read_entry(entry, at, pages)

        return read_entries(
            ((where.at(i), entry) for i, entry in enumerate(entries)),
            read,
            Skips(where.path, strict=strict),
            locate=_LOCATE,
        )


def _read_text_bytes(stream: BinaryIO, where: Where, max_bytes: int) -> bytes:
    """The HAR text's bytes: decompressed in bounded steps, never more than ``max_bytes``."""
    head = stream.read(2)
    stream.seek(0)
    if head == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=stream) as unzipped:
                return _read_chunks(unzipped.read, where, max_bytes, "decompresses to more than")
        except (OSError, EOFError, zlib.error) as exc:
            raise where.error(f"cannot decompress the file: {cut(str(exc))}") from exc
    raw = _read_chunks(stream.read, where, max_bytes, "is larger than")
    if head[:1] != b"\x78":
        return raw
    # A zlib stream (mitmproxy's .zhar); JSON cannot start with "x".
    try:
        text = decode_body(raw, ["deflate"], limit=max_bytes)
    except BodyTooLargeError:
        raise where.error(f"decompresses to more than max_bytes={max_bytes}") from None
    if text is None:
        raise where.error("cannot decompress the file: not a whole zlib stream")
    return text


def _read_chunks(
    read: Callable[[int], bytes], where: Where, max_bytes: int, too_large: str
) -> bytes:
    # Chunk by chunk: read(max_bytes + 1) would reserve max_bytes up front.
    parts: list[bytes] = []
    size = 0
    while chunk := read(min(_CHUNK, max_bytes + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise where.error(f"{too_large} max_bytes={max_bytes}")
    return b"".join(parts)


def _load(raw: bytes, where: Where) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise where.error(f"is not UTF-8 text (bad byte at offset {exc.start})") from exc
    document = load_json(text, where)
    if not isinstance(document, dict):
        raise where.error(f"a HAR document is a JSON object, not {type(document).__name__}")
    return document


def _read_pages(log: Mapping[str, Any], where: Where) -> dict[str, str]:
    pages: dict[str, str] = {}
    for j, page in enumerate(optional(log, "pages", list, where, "log", [])):
        name = f"log.pages[{j}]"
        if not isinstance(page, dict):
            raise where.error(f"must be an object, not {type(page).__name__}", name)
        page_id = field(page, "id", str, where, name)
        pages[page_id] = optional(page, "title", str, where, name, "")
    return pages


def _read_entry(entry: Any, where: Where, pages: Mapping[str, str]) -> Exchange:
    if not isinstance(entry, dict):
        raise where.error(f"an entry must be an object, not {type(entry).__name__}")
    started_at = _read_started(field(entry, "startedDateTime", str, where, ""), where)
    elapsed_ms = field(entry, "time", (int, float), where, "")
    try:
        if not math.isfinite(elapsed_ms) or elapsed_ms < 0:
            raise OverflowError
        elapsed = timedelta(milliseconds=elapsed_ms)
    except OverflowError:
        raise where.error(
            f"must be a duration in ms (>= 0), not {preview(elapsed_ms)}", "time"
        ) from None
    request = field(entry, "request", dict, where, "")
    response = field(entry, "response", dict, where, "")
    custom = optional(entry, _CUSTOM, dict, where, "", {})

    method = field(request, "method", str, where, "request")
    if not method or not method.isascii() or any(c.isspace() for c in method):
        raise where.error(f"is not an HTTP method: {preview(method)}", "request.method")
    url = _read_url(field(request, "url", str, where, "request"), where)
    request_headers = _read_headers(request, where, "request")
    request_body = _read_post_data(request, request_headers, where)

    tags = _read_tags(entry, custom, pages, elapsed_ms, where)
    truncated = optional(custom, "truncated", bool, where, _CUSTOM, False)
    error = _read_custom_error(custom, where)
    status = field(response, "status", int, where, "response")
    common: dict[str, Any] = {
        "request_headers": request_headers,
        "request_body": request_body,
        "started_at": started_at,
        "elapsed": elapsed,
        "tags": tags,
        "truncated": truncated,
    }
    if status == 0:
        if error is None:
            message = optional(response, "_error", (str, _NONE), where, "response", None)
            error = RecordedError(HAR_ERROR_TYPE, message or "no response (HAR status 0)")
        version = normalize_http_version(
            optional(request, "httpVersion", str, where, "request", ""),
            where,
            "request.httpVersion",
        )
        return Exchange(method, url, http_version=version, error=error, **common)
    if not 100 <= status <= 999:
        raise where.error(f"is not an HTTP status code: {status}", "response.status")

    reason = optional(response, "statusText", str, where, "response", "")
    try:
        reason.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise where.error("must be Latin-1 text", "response.statusText") from exc
    version = normalize_http_version(
        optional(response, "httpVersion", str, where, "response", ""),
        where,
        "response.httpVersion",
    )
    body, response_headers = _read_content(
        response,
        _read_headers(response, where, "response"),
        custom,
        method,
        status,
        truncated,
        where,
    )
    return Exchange(
        method,
        url,
        status_code=status,
        reason_phrase=reason,
        http_version=version,
        response_headers=response_headers,
        response_body=body,
        error=error,
        **common,
    )


def _read_started(text: str, where: Where) -> datetime:
    try:
        started = datetime.fromisoformat(text)
    except ValueError as exc:
        raise where.error(
            f"is not an ISO 8601 date and time: {preview(text)}", "startedDateTime"
        ) from exc
    if started.tzinfo is None:
        raise where.error(f"has no UTC offset: {preview(text)}", "startedDateTime")
    try:
        return started.astimezone(UTC)
    except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
        raise where.error(f"is out of range in UTC: {preview(text)}", "startedDateTime") from None


def _read_url(url: str, where: Where) -> str:
    parsed = parse_url(url, where, "request.url")
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.host:
        raise where.error(f"is not an absolute http(s) URL: {preview(url)}", "request.url")
    return url


def _read_headers(
    message: Mapping[str, Any], where: Where, prefix: str
) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    for k, item in enumerate(field(message, "headers", list, where, prefix)):
        name = f"{prefix}.headers[{k}]"
        if not isinstance(item, dict):
            raise where.error(f"must be an object, not {type(item).__name__}", name)
        key = field(item, "name", str, where, name)
        value = field(item, "value", str, where, name)
        if not key:
            raise where.error("is empty", f"{name}.name")
        if key.startswith(":"):
            continue  # an HTTP/2 pseudo-header: the method and URL already say it
        pairs.append(
            (header_bytes(key, where, f"{name}.name"), header_bytes(value, where, f"{name}.value"))
        )
    return pairs


def _encode_text(text: str, charset: str, where: Where, name: str) -> bytes:
    # surrogateescape undoes mitmproxy's get_text(strict=False) for bytes the charset lacks.
    for codec in (charset, "utf-8"):
        try:
            return text.encode(codec, "surrogateescape")
        except UnicodeEncodeError:
            continue
    raise where.error("cannot be encoded as UTF-8", name)


def _length_agrees(headers: tuple[tuple[bytes, bytes], ...], body: bytes) -> bool:
    length = str(len(body)).encode()
    return all(v.strip() == length for k, v in headers if k.lower() == b"content-length")


def _text_of(body: bytes, charset: str, errors: str) -> str | None:
    """``body`` as text in ``charset`` if that text encodes back to exactly ``body`` (a UTF-16
    body without a byte-order mark would not), else ``None``: write it as base64."""
    try:
        text = body.decode(charset, errors)
        return text if text.encode(charset, errors) == body else None
    except (UnicodeError, LookupError):
        return None


def _b64decode(text: str, where: Where, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise where.error(f"is not valid base64: {cut(str(exc))}", name) from exc


def _read_post_data(
    request: Mapping[str, Any], headers: list[tuple[bytes, bytes]], where: Where
) -> bytes:
    post = optional(request, "postData", dict, where, "request", None)
    if post is None:
        return b""
    prefix = "request.postData"
    mime = optional(post, "mimeType", str, where, prefix, "")
    text = optional(post, "text", (str, _NONE), where, prefix, None)
    if text is not None:
        encoding = optional(post, "encoding", str, where, prefix, "")
        if encoding == "base64":
            return _b64decode(text, where, f"{prefix}.text")
        if encoding:
            raise where.error(f"unsupported encoding {preview(encoding)}", f"{prefix}.encoding")
        charset = content_charset(mime or header_value(headers, "content-type"))
        return _encode_text(text, charset, where, f"{prefix}.text")
    params: list[tuple[str, str]] = []
    for k, item in enumerate(optional(post, "params", list, where, prefix, [])):
        name = f"{prefix}.params[{k}]"
        if not isinstance(item, dict):
            raise where.error(f"must be an object, not {type(item).__name__}", name)
        if "fileName" in item:
            raise where.error("a multipart upload cannot be rebuilt from params", name)
        params.append(
            (field(item, "name", str, where, name), optional(item, "value", str, where, name, ""))
        )
    return urlencode(params).encode("ascii")


def _read_tags(
    entry: Mapping[str, Any],
    custom: Mapping[str, Any],
    pages: Mapping[str, str],
    elapsed_ms: float,
    where: Where,
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in optional(custom, "tags", dict, where, _CUSTOM, {}).items():
        if not isinstance(value, str):
            raise where.error("tag values must be strings", f"{_CUSTOM}.tags.{key}")
        tags[key] = value
    pageref = optional(entry, "pageref", str, where, "", None)
    if pageref is not None:
        if pageref not in pages:
            raise where.error(f"names no page in log.pages: {preview(pageref)}", "pageref")
        tags[_TAG_PAGE] = pageref
        if pages[pageref]:
            tags[_TAG_PAGE_TITLE] = pages[pageref]
    timings = optional(entry, "timings", dict, where, "", None)
    if timings is not None and timings != _plain_timings(elapsed_ms):
        tags[_TAG_TIMINGS] = json.dumps(timings, separators=(",", ":"))
    return tags


def _read_custom_error(custom: Mapping[str, Any], where: Where) -> RecordedError | None:
    error = optional(custom, "error", dict, where, _CUSTOM, None)
    if error is None:
        return None
    prefix = f"{_CUSTOM}.error"
    return RecordedError(
        field(error, "type", str, where, prefix), field(error, "message", str, where, prefix)
    )


def _read_content(
    response: Mapping[str, Any],
    headers: list[tuple[bytes, bytes]],
    custom: Mapping[str, Any],
    method: str,
    status: int,
    truncated: bool,
    where: Where,
) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    prefix = "response.content"
    content = field(response, "content", dict, where, "response")
    text = optional(content, "text", (str, _NONE), where, prefix, None)
    encoding = optional(content, "encoding", (str, _NONE), where, prefix, None)
    if text is None:
        decoded = b""
    elif encoding == "base64":
        decoded = _b64decode(text, where, f"{prefix}.text")
    elif not encoding:
        mime = optional(content, "mimeType", (str, _NONE), where, prefix, None)
        charset = content_charset(mime or header_value(headers, "content-type"))
        decoded = _encode_text(text, charset, where, f"{prefix}.text")
    else:
        raise where.error(f"unsupported encoding {preview(encoding)}", f"{prefix}.encoding")

    pairs = tuple(headers)
    codings = content_codings(pairs)
    wire_text = optional(custom, "responseBody", str, where, _CUSTOM, None)
    if wire_text is not None:
        wire = _b64decode(wire_text, where, f"{_CUSTOM}.responseBody")
        # Use the recorded wire bytes only while they still say what the HAR text says (a
        # tool may have edited the text since); decoding stops once past the text's length.
        if wire == decoded or _decodes_to(wire, codings, decoded):
            return wire, pairs
    if truncated:
        return decoded, pairs
    body = decoded
    drop = False
    if codings and decoded:
        encoded = encode_body(decoded, codings)
        if encoded is None:
            drop = True
        else:
            body = encoded
    fixed = body_consistent_headers(
        pairs, body, method=method, status_code=status, drop_encoding=drop
    )
    return body, fixed


def _decodes_to(wire: bytes, codings: list[str], decoded: bytes) -> bool:
    try:
        return decode_body(wire, codings, limit=len(decoded)) == decoded
    except BodyTooLargeError:
        return False


# -- writing ------------------------------------------------------------------------------------
def write_har(exchanges: Iterable[Exchange], path: PathArg, *, overwrite: bool = False) -> int:
    """Write exchanges to a HAR 1.2 file, atomically.

    Bodies are written decoded, as browsers do (``content.encoding: "base64"`` for bodies that
    are not text in their charset, ``content.compression`` for encoded ones); the wire bytes of
    encoded bodies also go in ``_trafficLab.responseBody`` so :func:`read_har` restores them
    exactly. Exchanges that failed in the transport become entries with status 0 and
    ``response._error``, as Chrome and mitmproxy write them. Pages come from the ``har.page``
    / ``har.page_title`` tags (a page starts when its earliest entry does; the first title
    found names it); timings from the ``har.timings`` tag, else from ``elapsed``
    (all of it counted as ``wait``). Other tags, ``truncated`` and the error type go in
    ``_trafficLab``. A path ending in ``.gz`` is gzip-compressed, ``.zhar`` zlib-compressed.

    Parameters
    ----------
    exchanges
        What to write, in order.
    path
        The file to create.
    overwrite
        Replace an existing file; without it an existing file raises ``FileExistsError``.

    Returns
    -------
    int
        The number of entries written.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from traffic_lab.interop import write_har
    >>> from traffic_lab.testing import make_exchange
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.har"
    >>> write_har([make_exchange(), make_exchange(status_code=None)], path)
    2
    >>> [e["response"]["status"] for e in json.loads(path.read_text())["log"]["entries"]]
    [200, 0]
    """
    entries: list[dict[str, Any]] = []
    pages: dict[str, dict[str, Any]] = {}
    for exchange in exchanges:
        check_storable(exchange)  # what no store can hold is not written either
        entry = _entry(exchange)
        page_id = exchange.tags.get(_TAG_PAGE)
        if page_id is not None:
            page = pages.get(page_id)
            if page is None:
                pages[page_id] = page = {
                    "startedDateTime": exchange.started_at,
                    "id": page_id,
                    "title": exchange.tags.get(_TAG_PAGE_TITLE, ""),
                    "pageTimings": {"onContentLoad": -1, "onLoad": -1},
                }
            page["startedDateTime"] = min(page["startedDateTime"], exchange.started_at)
            if not page["title"]:
                page["title"] = exchange.tags.get(_TAG_PAGE_TITLE, "")
            entry = {"pageref": page_id, **entry}
        entries.append(entry)
    for page in pages.values():
        page["startedDateTime"] = _iso(page["startedDateTime"])
    document = {
        "log": {
            "version": "1.2",
            "creator": {"name": "traffic_lab", "version": __version__},
            "pages": list(pages.values()),
            "entries": entries,
        }
    }
    # ensure_ascii keeps lone surrogates (undecodable header bytes) as valid \u escapes.
    data = json.dumps(document, indent=2).encode("ascii")
    file = Path(path)
    if file.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    elif file.suffix == ".zhar":
        data = zlib.compress(data, 9)
    write_file_atomic(file, data, overwrite=overwrite)
    return len(entries)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _plain_timings(elapsed_ms: float) -> dict[str, float]:
    return {
        "blocked": -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": 0,
        "wait": elapsed_ms,
        "receive": 0,
    }


def _entry(exchange: Exchange) -> dict[str, Any]:
    elapsed_ms = exchange.elapsed / _ONE_MS
    custom: dict[str, Any] = {}
    tags = {k: v for k, v in exchange.tags.items() if k not in _HAR_TAGS}
    if tags:
        custom["tags"] = tags
    if exchange.truncated:
        custom["truncated"] = True
    if exchange.error is not None:
        custom["error"] = {"type": exchange.error.type, "message": exchange.error.message}
    timings: Any = None
    if _TAG_TIMINGS in exchange.tags:
        try:
            timings = json.loads(exchange.tags[_TAG_TIMINGS])
        except ValueError:
            timings = None
    if not isinstance(timings, dict):
        timings = _plain_timings(elapsed_ms)
    entry: dict[str, Any] = {
        "startedDateTime": _iso(exchange.started_at),
        "time": elapsed_ms,
        "request": _request(exchange),
        "response": _response(exchange, custom),
        "cache": {},
        "timings": timings,
    }
    if custom:
        entry[_CUSTOM] = custom
    return entry


def _header_list(pairs: Iterable[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    return [{"name": header_text(k), "value": header_text(v)} for k, v in pairs]


def _request(exchange: Exchange) -> dict[str, Any]:
    headers = exchange.request_headers
    request: dict[str, Any] = {
        "method": exchange.method,
        "url": exchange.url,
        "httpVersion": exchange.http_version,
        "cookies": _request_cookies(headers),
        "headers": _header_list(headers),
        "queryString": [
            {"name": k, "value": v} for k, v in httpx.URL(exchange.url).params.multi_items()
        ],
        "headersSize": -1,
        "bodySize": len(exchange.request_body),
    }
    if exchange.request_body:
        content_type = header_text(header_value(headers, "content-type") or b"")
        # mitmproxy's way: text in the body's charset, undecodable bytes as lone surrogates;
        # base64 (as for response content) when the text would not give the same bytes back.
        body = exchange.request_body
        text = _text_of(body, content_charset(content_type), "surrogateescape")
        params: list[dict[str, str]] = []
        if text is None:
            request["postData"] = {
                "mimeType": content_type,
                "params": params,
                "text": base64.b64encode(body).decode("ascii"),
                "encoding": "base64",
            }
        else:
            if content_type.lower().startswith("application/x-www-form-urlencoded"):
                pairs = parse_qsl(text, keep_blank_values=True)
                params = [{"name": k, "value": v} for k, v in pairs]
            request["postData"] = {"mimeType": content_type, "params": params, "text": text}
    return request


def _response(exchange: Exchange, custom: dict[str, Any]) -> dict[str, Any]:
    if exchange.status_code is None:
        assert exchange.error is not None
        return {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": exchange.error.message,
        }
    headers = exchange.response_headers
    wire = exchange.response_body
    content_type = header_text(header_value(headers, "content-type") or b"")
    codings = content_codings(headers)
    decoded = decode_body(wire, codings)
    payload = wire if decoded is None else decoded
    content: dict[str, Any] = {"size": len(payload)}
    if codings or not _length_agrees(headers, wire):
        # The wire bytes, where the decoded text alone would not give back the same body and
        # headers (an encoded body; a Content-Length that does not say the body's length).
        custom["responseBody"] = base64.b64encode(wire).decode("ascii")
        if decoded is not None:
            content["compression"] = len(decoded) - len(wire)
    content["mimeType"] = content_type
    text = _text_of(payload, content_charset(content_type), "strict")
    if text is None:
        content["text"] = base64.b64encode(payload).decode("ascii")
        content["encoding"] = "base64"
    else:
        content["text"] = text
    return {
        "status": exchange.status_code,
        "statusText": exchange.reason_phrase,
        "httpVersion": exchange.http_version,
        "cookies": _response_cookies(headers),
        "headers": _header_list(headers),
        "content": content,
        "redirectURL": header_text(header_value(headers, "location") or b""),
        "headersSize": -1,
        "bodySize": len(wire),
    }


def _request_cookies(pairs: Iterable[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    cookies = []
    for key, value in pairs:
        if key.lower() == b"cookie":
            for part in header_text(value).split(";"):
                name, sep, val = part.strip().partition("=")
                if sep:
                    cookies.append({"name": name, "value": val})
    return cookies


def _response_cookies(pairs: Iterable[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    cookies = []
    for key, value in pairs:
        if key.lower() != b"set-cookie":
            continue
        first, *attributes = header_text(value).split(";")
        name, sep, val = first.strip().partition("=")
        if not sep:
            continue
        cookie: dict[str, Any] = {"name": name, "value": val}
        for attribute in attributes:
            attr_name, _, attr_value = attribute.strip().partition("=")
            lowered = attr_name.lower()
            if lowered in ("path", "domain"):
                cookie[lowered] = attr_value
            elif lowered == "httponly":
                cookie["httpOnly"] = True
            elif lowered == "secure":
                cookie["secure"] = True
        cookies.append(cookie)
    return cookies
