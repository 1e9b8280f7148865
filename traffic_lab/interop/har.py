"""HAR 1.2 (HTTP Archive) import and export, as Chrome, Firefox and mitmproxy write it.

``docs/interop.md`` maps each HAR field onto an :class:`~traffic_lab.Exchange` field and says
how bodies (decoded in HAR, as on the wire in an exchange), pages and timings are handled.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import warnings
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlencode

import httpx

from .._version import __version__
from ..errors import BodySizeWarning, preview
from ..exchange import Exchange, RecordedError, check_storable
from ..wire import BodyTooLargeError, content_charset, content_codings, decode_body, header_value
from ._entries import (
    DEFAULT_MAX_BYTES,
    Locator,
    Pairs,
    PathArg,
    Skips,
    check_max_bytes,
    check_method,
    check_reason,
    check_status,
    cut,
    encode_again,
    field,
    file_guard,
    load_json,
    normalize_http_version,
    open_input,
    parse_url,
    read_bounded,
    read_entries,
    utf8_text,
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
# Where a value refused by check_storable came from in a HAR entry.
_LOCATE = {
    "method": "request.method",
    "url": "request.url",
    "port": "request.url",
    "status_code": "response.status",
    "reason_phrase": "response.statusText",
    "http_version": "response.httpVersion",
    "elapsed": "time",
    "error.type": f"{_CUSTOM}.error.type",
}


def read_har(
    path: PathArg, *, strict: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Exchange]:
    """Read a HAR file (plain, gzip- or zlib-compressed) into exchanges, in entry order.

    Entries with status 0 (no response) become exchanges with an ``error``; bad entries are
    skipped with a warning, or raised with ``strict=True``. ``max_bytes`` bounds the HAR text,
    after decompression (1 GiB by default). A text body whose recorded size fits neither its
    UTF-8 nor its one-character-per-byte reading is kept as UTF-8, with a
    :class:`~traffic_lab.errors.BodySizeWarning`.
    Raises :class:`~traffic_lab.errors.InteropError` for a file that is not a HAR document.

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
    loc = Locator(str(file))
    with open_input(file, loc) as stream, file_guard(loc.path):
        raw = _read_text_bytes(stream, loc, max_bytes)
    with file_guard(loc.path):
        document = load_json(utf8_text(raw, loc), loc)
        del raw
        if not isinstance(document, dict):
            raise loc.error(f"a HAR document is a JSON object, not {type(document).__name__}")
        log = field(document, "log", dict, loc, "")
        entries = field(log, "entries", list, loc, "log")
        pages = _read_pages(log, loc)
        return read_entries(
            ((loc.at(i), entry) for i, entry in enumerate(entries)),
            lambda entry, at: _read_entry(entry, at, pages),
            Skips(loc.path, strict=strict),
            locate=_LOCATE,
        )


def _read_text_bytes(stream: BinaryIO, loc: Locator, max_bytes: int) -> bytes:
    """The HAR text's bytes: decompressed in bounded steps, never more than ``max_bytes``."""
    head = stream.read(2)
    stream.seek(0)
    if head == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=stream) as unzipped:
                return read_bounded(unzipped.read, loc, max_bytes, "decompresses to more than")
        except (OSError, EOFError, zlib.error) as exc:
            raise loc.error(f"cannot decompress the file: {cut(str(exc))}") from exc
    raw = read_bounded(stream.read, loc, max_bytes)
    if head[:1] != b"\x78":
        return raw
    # A zlib stream (mitmproxy's .zhar); JSON cannot start with "x".
    try:
        text = decode_body(raw, ["deflate"], limit=max_bytes)
    except BodyTooLargeError:
        raise loc.error(f"decompresses to more than max_bytes={max_bytes}") from None
    if text is None:
        raise loc.error("cannot decompress the file: not a whole zlib stream")
    return text


def _read_pages(log: Mapping[str, Any], loc: Locator) -> dict[str, str]:
    pages: dict[str, str] = {}
    for j, page in enumerate(field(log, "pages", list, loc, "log", [])):
        name = f"log.pages[{j}]"
        if not isinstance(page, dict):
            raise loc.error(f"must be an object, not {type(page).__name__}", name)
        pages[field(page, "id", str, loc, name)] = field(page, "title", str, loc, name, "")
    return pages


def _read_entry(entry: Any, loc: Locator, pages: Mapping[str, str]) -> Exchange:
    if not isinstance(entry, dict):
        raise loc.error(f"an entry must be an object, not {type(entry).__name__}")
    started_at = _read_started(field(entry, "startedDateTime", str, loc, ""), loc)
    elapsed_ms = field(entry, "time", (int, float), loc, "")
    try:
        if not math.isfinite(elapsed_ms) or elapsed_ms < 0:
            raise OverflowError
        elapsed = timedelta(milliseconds=elapsed_ms)
    except OverflowError:
        raise loc.error(
            f"must be a duration in ms (>= 0), not {preview(elapsed_ms)}", "time"
        ) from None
    request = field(entry, "request", dict, loc, "")
    response = field(entry, "response", dict, loc, "")
    custom = field(entry, _CUSTOM, dict, loc, "", {})

    method = check_method(field(request, "method", str, loc, "request"), loc, "request.method")
    url = field(request, "url", str, loc, "request")
    parse_url(url, loc, "request.url", ("http", "https", "ws", "wss"))
    request_headers = _read_headers(request, loc, "request")
    common: dict[str, Any] = {
        "request_headers": request_headers,
        "request_body": _read_post_data(request, request_headers, loc),
        "started_at": started_at,
        "elapsed": elapsed,
        "tags": _read_tags(entry, custom, pages, elapsed_ms, loc),
        "truncated": field(custom, "truncated", bool, loc, _CUSTOM, False),
    }
    error = field(custom, "error", dict, loc, _CUSTOM, None)
    if error is not None:
        prefix = f"{_CUSTOM}.error"
        error = RecordedError(
            field(error, "type", str, loc, prefix), field(error, "message", str, loc, prefix)
        )
    status = field(response, "status", int, loc, "response")
    if status == 0:
        if error is None:
            message = field(response, "_error", (str, _NONE), loc, "response", None)
            error = RecordedError(HAR_ERROR_TYPE, message or "no response (HAR status 0)")
        version = field(request, "httpVersion", str, loc, "request", "")
        version = normalize_http_version(version, loc, "request.httpVersion")
        return Exchange(method, url, http_version=version, error=error, **common)
    check_status(status, loc, "response.status")
    reason = field(response, "statusText", str, loc, "response", "")
    check_reason(reason, loc, "response.statusText")
    version = field(response, "httpVersion", str, loc, "response", "")
    version = normalize_http_version(version, loc, "response.httpVersion")
    truncated = common["truncated"]
    body, response_headers = _read_content(response, custom, method, status, truncated, loc)
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


def _read_started(text: str, loc: Locator) -> datetime:
    name = "startedDateTime"
    try:
        started = datetime.fromisoformat(text)
    except ValueError as exc:
        raise loc.error(f"is not an ISO 8601 date and time: {preview(text)}", name) from exc
    if started.tzinfo is None:
        raise loc.error(f"has no UTC offset: {preview(text)}", name)
    try:
        return started.astimezone(UTC)
    except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
        raise loc.error(f"is out of range in UTC: {preview(text)}", name) from None


def _read_headers(message: Mapping[str, Any], loc: Locator, prefix: str) -> Pairs:
    pairs: list[tuple[bytes, bytes]] = []
    for k, item in enumerate(field(message, "headers", list, loc, prefix)):
        name = f"{prefix}.headers[{k}]"
        if not isinstance(item, dict):
            raise loc.error(f"must be an object, not {type(item).__name__}", name)
        key = field(item, "name", str, loc, name)
        value = field(item, "value", str, loc, name)
        if not key:
            raise loc.error("is empty", f"{name}.name")
        if not key.startswith(":"):  # an HTTP/2 pseudo-header: the method and URL say it
            pairs.append((_bytes(key, loc, f"{name}.name"), _bytes(value, loc, f"{name}.value")))
    return tuple(pairs)


def _text(raw: bytes) -> str:
    """Header bytes as HAR text: UTF-8, undecodable bytes as surrogates (mitmproxy's way)."""
    return raw.decode("utf-8", "surrogateescape")


def _bytes(text: str, loc: Locator, name: str) -> bytes:
    """The inverse of :func:`_text`."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise loc.error(f"cannot be encoded as header bytes: {exc.reason}", name) from exc


def _read_text(
    obj: Mapping[str, Any], prefix: str, headers: Pairs, sizes: set[int], loc: Locator
) -> bytes | None:
    """The body ``obj`` (``postData``, ``content``) holds as ``text``, or ``None``; of the
    charset's and the Latin-1 reading, the one of a recorded size (docs/interop.md)."""
    text: str | None = field(obj, "text", (str, _NONE), loc, prefix, None)
    if text is None:
        return None
    name = f"{prefix}.text"
    encoding = field(obj, "encoding", (str, _NONE), loc, prefix, None)
    if encoding == "base64":
        return _b64decode(text, loc, name)
    if encoding:
        raise loc.error(f"unsupported encoding {preview(encoding)}", f"{prefix}.encoding")
    mime = field(obj, "mimeType", (str, _NONE), loc, prefix, None)
    declared = content_charset(mime or header_value(headers, "content-type"), "")
    # surrogateescape undoes mitmproxy's get_text(strict=False) for bytes the charset lacks.
    try:
        codec = declared or "utf-8"
        body = text.encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        try:
            codec, body = "utf-8", text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise loc.error("cannot be encoded as UTF-8", name) from None
    if text.isascii() or not sizes or len(body) in sizes:
        return body
    latin = b""
    if not declared:  # mitmproxy's fallback for a type without a charset
        try:
            latin = text.encode("latin-1")
        except UnicodeEncodeError:
            pass
    if len(latin) in sizes:
        return latin
    readings = f"{len(body)} bytes as {codec}" + (f", {len(latin)} as Latin-1" if latin else "")
    recorded = " or ".join(map(str, sorted(sizes)))
    message = f"is {readings}, but the entry records {recorded} bytes: kept as {codec}"
    # Called by _read_entry, called by read_entries from read_har: 7 frames up is its caller.
    warnings.warn(str(loc.error(message, name)), BodySizeWarning, stacklevel=7)
    return body


def _sizes(headers: Iterable[tuple[bytes, bytes]], *recorded: Any) -> set[int]:
    """The ``recorded`` values that are sizes, and a ``Content-Length`` of the decoded body."""
    sizes = {size for size in recorded if type(size) is int and size >= 0}
    length = header_value(headers, "content-length")
    if length and length.isdigit() and len(length) < 20 and not content_codings(headers):
        sizes.add(int(length))
    return sizes


def _b64decode(text: str, loc: Locator, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise loc.error(f"is not valid base64: {cut(str(exc))}", name) from exc


def _read_post_data(request: Mapping[str, Any], headers: Pairs, loc: Locator) -> bytes:
    post = field(request, "postData", dict, loc, "request", None)
    if post is None:
        return b""
    prefix = "request.postData"
    body = _read_text(post, prefix, headers, _sizes(headers, request.get("bodySize")), loc)
    if body is not None:
        return body
    params: list[tuple[str, str]] = []
    for k, item in enumerate(field(post, "params", list, loc, prefix, [])):
        name = f"{prefix}.params[{k}]"
        if not isinstance(item, dict):
            raise loc.error(f"must be an object, not {type(item).__name__}", name)
        if "fileName" in item:
            raise loc.error("a multipart upload cannot be rebuilt from params", name)
        key = field(item, "name", str, loc, name)
        params.append((key, field(item, "value", str, loc, name, "")))
    return urlencode(params).encode("ascii")


def _read_tags(
    entry: Mapping[str, Any],
    custom: Mapping[str, Any],
    pages: Mapping[str, str],
    elapsed_ms: float,
    loc: Locator,
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in field(custom, "tags", dict, loc, _CUSTOM, {}).items():
        if not isinstance(value, str):
            raise loc.error("tag values must be strings", f"{_CUSTOM}.tags.{key}")
        tags[key] = value
    pageref = field(entry, "pageref", str, loc, "", None)
    if pageref is not None:
        if pageref not in pages:
            raise loc.error(f"names no page in log.pages: {preview(pageref)}", "pageref")
        tags[_TAG_PAGE] = pageref
        if pages[pageref]:
            tags[_TAG_PAGE_TITLE] = pages[pageref]
    timings = field(entry, "timings", dict, loc, "", None)
    if timings is not None and timings != _plain_timings(elapsed_ms):
        tags[_TAG_TIMINGS] = json.dumps(timings, separators=(",", ":"))
    return tags


def _read_content(
    response: Mapping[str, Any],
    custom: Mapping[str, Any],
    method: str,
    status: int,
    truncated: bool,
    loc: Locator,
) -> tuple[bytes, Pairs]:
    headers = _read_headers(response, loc, "response")
    prefix = "response.content"
    content = field(response, "content", dict, loc, "response")
    # Browsers record the decoded size; mitmproxy the wire size, plus what decoding added.
    size, compression = content.get("size"), content.get("compression")
    plus = size + compression if type(size) is int and type(compression) is int else None
    decoded = _read_text(content, prefix, headers, _sizes(headers, size, plus), loc) or b""
    codings = content_codings(headers)
    wire_text = field(custom, "responseBody", str, loc, _CUSTOM, None)
    if wire_text is not None:
        wire = _b64decode(wire_text, loc, f"{_CUSTOM}.responseBody")
        # The recorded wire bytes, while they still say what the HAR text says (a tool may
        # have edited the text since); decoding stops once past the text's length.
        if wire == decoded or _decodes_to(wire, codings, decoded):
            return wire, headers
    if truncated:
        return decoded, headers
    return encode_again(decoded, headers, codings, method=method, status=status)


def _decodes_to(wire: bytes, codings: list[str], decoded: bytes) -> bool:
    try:
        return decode_body(wire, codings, limit=len(decoded)) == decoded
    except BodyTooLargeError:
        return False


def write_har(exchanges: Iterable[Exchange], path: PathArg, *, overwrite: bool = False) -> int:
    """Write exchanges to a HAR 1.2 file, atomically; return the number of entries written.

    Bodies are written decoded, as browsers do, and the wire bytes of encoded ones also go in
    ``_trafficLab.responseBody`` for an exact round trip. A path ending in ``.gz`` is
    gzip-compressed, ``.zhar`` zlib-compressed. ``FileExistsError`` unless ``overwrite=True``.

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
            title = exchange.tags.get(_TAG_PAGE_TITLE, "")
            page = pages.setdefault(
                page_id,
                {
                    "startedDateTime": exchange.started_at,
                    "id": page_id,
                    "title": title,
                    "pageTimings": {"onContentLoad": -1, "onLoad": -1},
                },
            )
            # A page starts when its earliest entry does; the first title found names it.
            page["startedDateTime"] = min(page["startedDateTime"], exchange.started_at)
            page["title"] = page["title"] or title
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
    """Timings that only restate ``time`` (all of it ``wait``)."""
    return dict(blocked=-1, dns=-1, connect=-1, ssl=-1, send=0, wait=elapsed_ms, receive=0)


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
    try:
        timings = json.loads(exchange.tags.get(_TAG_TIMINGS, "null"))
    except ValueError:
        timings = None
    entry: dict[str, Any] = {
        "startedDateTime": _iso(exchange.started_at),
        "time": elapsed_ms,
        "request": _request(exchange),
        "response": _response(exchange, custom),
        "cache": {},
        "timings": timings if isinstance(timings, dict) else _plain_timings(elapsed_ms),
    }
    if custom:
        entry[_CUSTOM] = custom
    return entry


def _header_list(pairs: Iterable[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    return [{"name": _text(k), "value": _text(v)} for k, v in pairs]


def _request(exchange: Exchange) -> dict[str, Any]:
    headers = exchange.request_headers
    request: dict[str, Any] = {
        "method": exchange.method,
        "url": exchange.url,
        "httpVersion": exchange.http_version,
        "cookies": _cookies(headers, b"cookie"),
        "headers": _header_list(headers),
        "queryString": [
            {"name": k, "value": v} for k, v in httpx.URL(exchange.url).params.multi_items()
        ],
        "headersSize": -1,
        "bodySize": len(exchange.request_body),
    }
    body = exchange.request_body
    if body:
        content_type = _text(header_value(headers, "content-type") or b"")
        # mitmproxy's way: text in the body's charset, undecodable bytes as lone surrogates;
        # base64 (as for response content) when the text would not give the same bytes back.
        post: dict[str, Any] = {"mimeType": content_type, "params": []}
        post.update(_text_or_base64(body, content_charset(content_type), "surrogateescape"))
        form = content_type.lower().startswith("application/x-www-form-urlencoded")
        if form and "encoding" not in post:
            pairs = parse_qsl(post["text"], keep_blank_values=True)
            post["params"] = [{"name": k, "value": v} for k, v in pairs]
        request["postData"] = post
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
    content_type = _text(header_value(headers, "content-type") or b"")
    codings = content_codings(headers)
    decoded = decode_body(wire, codings)
    payload = wire if decoded is None else decoded
    content: dict[str, Any] = {"size": len(payload)}
    length = str(len(wire)).encode()
    if codings or any(v.strip() != length for k, v in headers if k.lower() == b"content-length"):
        # The wire bytes, where the decoded text alone would not give back the same body and
        # headers (an encoded body; a Content-Length that does not say the body's length).
        custom["responseBody"] = base64.b64encode(wire).decode("ascii")
        if decoded is not None:
            content["compression"] = len(decoded) - len(wire)
    content["mimeType"] = content_type
    content.update(_text_or_base64(payload, content_charset(content_type), "strict"))
    return {
        "status": exchange.status_code,
        "statusText": exchange.reason_phrase,
        "httpVersion": exchange.http_version,
        "cookies": _cookies(headers, b"set-cookie"),
        "headers": _header_list(headers),
        "content": content,
        "redirectURL": _text(header_value(headers, "location") or b""),
        "headersSize": -1,
        "bodySize": len(wire),
    }


def _text_or_base64(body: bytes, charset: str, errors: str) -> dict[str, str]:
    """``text``: ``body`` in ``charset`` if that encodes back to ``body``, else base64."""
    try:
        text = body.decode(charset, errors)
        if text.encode(charset, errors) == body:
            return {"text": text}
    except (UnicodeError, LookupError):
        pass
    return {"text": base64.b64encode(body).decode("ascii"), "encoding": "base64"}


def _values(pairs: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    return [_text(value) for key, value in pairs if key.lower() == name]


def _cookies(pairs: Iterable[tuple[bytes, bytes]], header: bytes) -> list[dict[str, Any]]:
    """The cookies of the ``Cookie`` or ``Set-Cookie`` headers, as HAR lists them."""
    cookies: list[dict[str, Any]] = []
    for value in _values(pairs, header):
        parts = [part.strip().partition("=") for part in value.split(";")]
        if header == b"cookie":
            cookies += [{"name": name, "value": val} for name, sep, val in parts if sep]
            continue
        (name, sep, val), *attributes = parts
        if not sep:
            continue
        cookie: dict[str, Any] = {"name": name, "value": val}
        for attribute, _, attribute_value in attributes:
            lowered = attribute.lower()
            if lowered in ("path", "domain"):
                cookie[lowered] = attribute_value
            elif lowered in ("httponly", "secure"):
                cookie["httpOnly" if lowered == "httponly" else "secure"] = True
        cookies.append(cookie)
    return cookies
