"""http4k disk stores: the ``DiskTree`` and ``DiskStream`` folders of ``org.http4k.traffic``.

Both stores write each exchange as a folder holding ``request.txt`` and ``response.txt``: the
``toString()`` of the http4k message, that is the start line, the headers as ``Name: value``
lines, an empty line and the body, with CRLF line ends. Where the folders go:

- ``Sink.DiskStream(baseDir)`` (``ReadWriteStream.Disk``) puts each exchange in
  ``baseDir/<System.nanoTime()><random UUID>``, and ``Replay.DiskStream`` replays the folders
  sorted by name;
- ``Sink.DiskTree(baseDir)`` (``ReadWriteCache.Disk``) puts it in
  ``baseDir/<request path>/<base64 SHA-1 of request.txt, "/" replaced by "_">``, so that
  ``Source.DiskTree`` finds a response by recomputing the folder from a request.

Quirks of http4k's format that the reader handles:

- a message without headers has one extra CRLF before its body (http4k joins an empty header
  block, itself ending in CRLF, with CRLF);
- the request target is the request's ``Uri``: absolute for client-side traffic, only a path
  for server-side traffic (then the URL is rebuilt from ``base_url`` or the ``Host`` header);
- bodies were written as text (``String(bytes)``, UTF-8), so a binary body recorded by http4k
  is already damaged on disk; a body that does not decode under its ``Content-Encoding`` is
  taken as stored decoded and is encoded again, or, for a coding that cannot be applied
  (``zstd``), loses its ``Content-Encoding`` header, as for HAR files;
- nothing about time is stored: ``started_at`` is the modification time of ``request.txt``,
  ``elapsed`` is zero. :func:`write_http4k` sets that time to the exchange's start.

Header sections are parsed with h11, so header syntax is checked as strictly as on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Literal

import h11
import httpx

from ..exchange import Exchange
from ._common import (
    PathArg,
    Where,
    body_consistent_headers,
    content_codings,
    decode_body,
    encode_body,
    header_value,
    normalize_http_version,
    publish_directory,
)

__all__ = ["Layout", "read_http4k", "write_http4k"]

#: How :func:`write_http4k` lays out folders: http4k's ``DiskStream`` or ``DiskTree``.
Layout = Literal["stream", "tree"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REQUEST = "request.txt"
_RESPONSE = "response.txt"
# h11 parses the header section behind a stand-in start line: http4k's start lines may say
# HTTP/2, which h11 refuses, and HTTP/1.0 spares us h11's rule that HTTP/1.1 needs a Host.
_STAND_IN = b"GET / HTTP/1.0\r\n"


# -- reading ------------------------------------------------------------------------------------
def read_http4k(path: PathArg, *, base_url: str | None = None) -> list[Exchange]:
    """Read an http4k ``DiskStream`` or ``DiskTree`` folder into a list of exchanges.

    Every folder under ``path`` that holds a ``request.txt`` or a ``response.txt`` is one
    exchange and must hold both. Exchanges come in the order of their folders' relative paths,
    which for a ``DiskStream`` is http4k's own replay order (folder names, sorted); a
    ``DiskTree`` records no order. Everything is checked before anything is returned: an
    invalid message raises :class:`~traffic_lab.InteropError` naming the file, the exchange's
    index in that order and the part (``request line``, ``headers``...).

    Parameters
    ----------
    path
        The ``baseDir`` the http4k store wrote to.
    base_url
        Scheme and host (e.g. ``"https://api.example"``) for requests recorded with only a
        path as their target (server-side traffic); by default ``http://`` + their ``Host``.

    Returns
    -------
    list of Exchange
        See the module documentation for times and bodies.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from traffic_lab.interop import read_http4k
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> folder = root / "1700000000000000000c0ffee"
    >>> folder.mkdir()
    >>> _ = (folder / "request.txt").write_bytes(
    ...     b"GET https://api.example/users/1 HTTP/1.1\\r\\nAccept: */*\\r\\n\\r\\n")
    >>> _ = (folder / "response.txt").write_bytes(
    ...     b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n\\r\\n{\\"id\\":1}")
    >>> [ex] = read_http4k(root)
    >>> ex.method, ex.url, ex.status_code, ex.response.json()
    ('GET', 'https://api.example/users/1', 200, {'id': 1})
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(2, "no such http4k store folder", str(root))
    if not root.is_dir():
        raise Where(str(root)).error("an http4k store is a folder, not a file")
    folders = sorted(_exchange_folders(root), key=lambda p: p.relative_to(root).parts)
    return [_read_folder(folder, i, base_url) for i, folder in enumerate(folders)]


def _exchange_folders(root: Path) -> Iterable[Path]:
    for directory, _subdirs, files in os.walk(root):
        if _REQUEST in files or _RESPONSE in files:
            yield Path(directory)


def _read_folder(folder: Path, index: int, base_url: str | None) -> Exchange:
    request_file = folder / _REQUEST
    response_file = folder / _RESPONSE
    for file in (request_file, response_file):
        if not file.is_file():
            raise Where(str(file), index).error("is missing: an exchange folder needs both files")
    where = Where(str(request_file), index)
    start, request_headers, request_body = _parse(request_file.read_bytes(), where, "request")
    parts = start.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise where.error(f"must be 'METHOD target VERSION', not {start!r}", "request line")
    method, target, _version = parts
    url = _url(target, request_headers, base_url, where)

    where = Where(str(response_file), index)
    start, response_headers, body = _parse(response_file.read_bytes(), where, "response")
    status_parts = start.split(" ", 2)
    if len(status_parts) < 2 or not (status_parts[1].isascii() and status_parts[1].isdigit()):
        raise where.error(f"must be 'VERSION CODE REASON', not {start!r}", "status line")
    version = normalize_http_version(status_parts[0], where, "status line")
    status = int(status_parts[1])
    if not 100 <= status <= 999:
        raise where.error(f"is not an HTTP status code: {status}", "status line")
    reason = status_parts[2] if len(status_parts) == 3 else ""

    headers = tuple(response_headers)
    codings = content_codings(headers)
    if codings and body and decode_body(body, codings) is None:
        encoded = encode_body(body, codings)
        body = encoded if encoded is not None else body
        headers = body_consistent_headers(
            headers, body, method=method, status_code=status, drop_encoding=encoded is None
        )
    mtime_ns = request_file.stat().st_mtime_ns
    return Exchange(
        method,
        url,
        request_headers=request_headers,
        request_body=request_body,
        status_code=status,
        reason_phrase=reason,
        http_version=version,
        response_headers=headers,
        response_body=body,
        started_at=_EPOCH + timedelta(microseconds=mtime_ns // 1000),
    )


def _parse(data: bytes, where: Where, kind: str) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    """Start line, raw header pairs and body of one http4k message file."""
    start_field = "request line" if kind == "request" else "status line"
    if not data.strip():
        raise where.error("is empty")
    first, newline, rest = data.partition(b"\n")
    if not newline:
        raise where.error("has no line end after the start line", start_field)
    try:
        start = first.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise where.error("is not UTF-8 text", start_field) from exc
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(data) + 1024)
    connection.receive_data(_STAND_IN + rest)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        raise where.error(f"invalid header section: {exc}", "headers") from exc
    if not isinstance(event, h11.Request):
        raise where.error("the header section does not end with an empty line", "headers")
    headers = list(event.headers.raw_items())
    body = bytes(connection.trailing_data[0])
    if not headers and body.startswith(b"\r\n"):
        body = body[2:]  # http4k's extra CRLF after an empty header block
    return start, headers, body


def _url(
    target: str, headers: list[tuple[bytes, bytes]], base_url: str | None, where: Where
) -> str:
    if target.startswith("/"):
        if base_url is not None:
            base = base_url.rstrip("/")
        else:
            host = header_value(headers, b"host")
            if host is None:
                raise where.error(
                    f"the target {target!r} is only a path and there is no Host header; "
                    "pass base_url=",
                    "request line",
                )
            base = "http://" + host.decode("latin-1")
        url = base + target
    else:
        url = target
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise where.error(f"is not a valid URL: {exc}", "request line") from exc
    if not parsed.scheme or not parsed.host:
        raise where.error(f"is not an absolute URL: {url!r}", "request line")
    return url


# -- writing ------------------------------------------------------------------------------------
def write_http4k(
    exchanges: Iterable[Exchange],
    path: PathArg,
    *,
    layout: Layout = "stream",
    overwrite: bool = False,
) -> int:
    """Write exchanges as an http4k ``DiskStream`` or ``DiskTree`` folder, atomically.

    The folder is built beside ``path`` and renamed into place. Messages are written as http4k
    writes them (see the module documentation) with the wire bytes as bodies, and each
    ``request.txt`` gets the exchange's start as its modification time, which
    :func:`read_http4k` reads back.

    Parameters
    ----------
    exchanges
        What to write, in order. Exchanges without a response (transport errors) and truncated
        ones have no http4k form and raise :class:`~traffic_lab.InteropError`.
    path
        The folder to create.
    layout
        ``"stream"``: one folder per exchange named ``<19-digit sequence><UUID>``, sorting in
        the order given, as http4k's ``DiskStream``. ``"tree"``: http4k's ``DiskTree`` layout
        (request path + hash of ``request.txt``); a repeated request keeps only the last one,
        as in http4k's cache.
    overwrite
        Replace an existing folder; without it an existing one raises ``FileExistsError``.

    Returns
    -------
    int
        The number of exchange folders written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from traffic_lab.interop import read_http4k, write_http4k
    >>> from traffic_lab.testing import make_exchange
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "traffic"
    >>> write_http4k([make_exchange(url=f"https://api.example/{i}") for i in range(3)], root)
    3
    >>> [ex.path for ex in read_http4k(root)]
    ['/0', '/1', '/2']
    """
    if layout not in ("stream", "tree"):
        raise ValueError(f"layout must be 'stream' or 'tree', not {layout!r}")
    root = Path(path)
    where = Where(str(root))
    messages = []
    for i, exchange in enumerate(exchanges):
        if exchange.status_code is None:
            raise where.at(i).error("a transport error has no http4k form", "status_code")
        if exchange.truncated:
            raise where.at(i).error("a truncated response has no http4k form", "truncated")
        messages.append((exchange, _request_text(exchange), _response_text(exchange)))

    folders: set[str] = set()

    def fill(tmp: Path) -> None:
        previous = -1
        for exchange, request_text, response_text in messages:
            started_ns = (exchange.started_at - _EPOCH) // timedelta(microseconds=1) * 1000
            if layout == "stream":
                previous = max(previous + 1, started_ns)
                relative = PurePosixPath(f"{previous:019d}{uuid.uuid4()}")
            else:
                relative = _tree_folder(exchange.url, request_text)
            folder = tmp.joinpath(*relative.parts)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / _REQUEST).write_bytes(request_text)
            (folder / _RESPONSE).write_bytes(response_text)
            os.utime(folder / _REQUEST, ns=(started_ns, started_ns))
            folders.add(str(relative))

    publish_directory(root, fill, overwrite=overwrite)
    return len(folders)


def _message(start: str, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = b"".join(key + b": " + value + b"\r\n" for key, value in headers)
    # http4k joins start line, header block and body with CRLF, and an empty header block is
    # itself a CRLF: hence the extra line when there are no headers.
    return start.encode("utf-8") + b"\r\n" + (lines or b"\r\n") + b"\r\n" + body


def _request_text(exchange: Exchange) -> bytes:
    start = f"{exchange.method} {exchange.url} {exchange.http_version}"
    return _message(start, exchange.request_headers, exchange.request_body)


def _response_text(exchange: Exchange) -> bytes:
    start = f"{exchange.http_version} {exchange.status_code} {exchange.reason_phrase}"
    return _message(start, exchange.response_headers, exchange.response_body)


def _tree_folder(url: str, request_text: bytes) -> PurePosixPath:
    raw_path = httpx.URL(url).raw_path.split(b"?", 1)[0].decode("ascii")
    # Keep the tree inside its root whatever the URL says ("..", empty segments).
    segments = [s for s in raw_path.split("/") if s not in ("", ".", "..")]
    digest = hashlib.sha1(request_text, usedforsecurity=False).digest()
    name = base64.b64encode(digest).decode("ascii").replace("/", "_")
    return PurePosixPath(*segments, name)
