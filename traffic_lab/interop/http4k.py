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

Untrusted trees: :func:`read_http4k` never follows a symbolic link, to a folder or to a file,
inside the tree (a linked ``request.txt`` is an error for its exchange, a linked folder is
skipped), and reads only through folders whose names match :data:`FOLDER_NAME` (URL path
characters, 1-255 bytes, not ``.`` or ``..``), at most :data:`MAX_TREE_DEPTH` levels deep; it
opens each folder and file relative to its parent, so neither a link swapped in while it reads
nor a path longer than the system allows gets in its way. Message files are read only when they
are regular files of at most ``max_bytes``, and a body that decodes to more than that is
refused. A bad exchange, folder or link is skipped with a
:class:`~traffic_lab.errors.SkippedEntryWarning` naming it (``strict=True`` raises the
:class:`~traffic_lab.errors.InteropError` instead). :func:`write_http4k` only creates folders that
match :data:`FOLDER_NAME`: in a ``DiskTree`` other characters of a URL path segment are
percent-encoded, and a segment of more than 255 bytes, or a path of more than
:data:`MAX_TREE_DEPTH` segments, is an error.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Literal

import h11

from ..errors import preview
from ..exchange import Exchange, check_storable
from ..wire import (
    BodyTooLargeError,
    body_consistent_headers,
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
    file_guard,
    normalize_http_version,
    parse_url,
    publish_directory,
    read_entries,
)

__all__ = ["FOLDER_NAME", "MAX_TREE_DEPTH", "Layout", "read_http4k", "write_http4k"]

#: How :func:`write_http4k` lays out folders: http4k's ``DiskStream`` or ``DiskTree``.
Layout = Literal["stream", "tree"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REQUEST = "request.txt"
_RESPONSE = "response.txt"
# h11 parses the header section behind a stand-in start line: http4k's start lines may say
# HTTP/2, which h11 refuses, and HTTP/1.0 spares us h11's rule that HTTP/1.1 needs a Host.
_STAND_IN = b"GET / HTTP/1.0\r\n"

#: The folder names read and written: URL path characters (as httpx leaves them in a raw
#: path, ``\`` left out), 1-255 of them; ``.`` and ``..`` never.
FOLDER_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%\[\]^|]{1,255}")
#: The deepest folder read or written, counted from the store's folder.
MAX_TREE_DEPTH = 64
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Reading walks the tree by folder descriptors and never follows a symlink: that needs
# O_DIRECTORY, O_NOFOLLOW and dir_fd support (POSIX). Elsewhere (Windows) read_http4k refuses
# to run rather than read a shared tree without those guarantees; importing still works.
_WALKABLE = all(hasattr(os, flag) for flag in ("O_DIRECTORY", "O_NOFOLLOW", "O_NONBLOCK"))
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_OPEN_DIR = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
# O_NONBLOCK: a FIFO named request.txt must not block the reader (it is refused by type).
_OPEN_FILE = os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _O_CLOEXEC


_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@%\[\]^|]")


def _folder_name_ok(name: str) -> bool:
    return FOLDER_NAME.fullmatch(name) is not None and name not in (".", "..")


def _locate(where: Where, name: str) -> tuple[Where, str]:
    # Where a value refused by check_storable came from: the request or the status line.
    if name in ("method", "url", "port"):
        return Where(os.path.join(where.path, _REQUEST), where.index), "request line"
    if name in ("status_code", "reason_phrase", "http_version"):
        return Where(os.path.join(where.path, _RESPONSE), where.index), "status line"
    return where, name


# -- reading ------------------------------------------------------------------------------------
def read_http4k(
    path: PathArg,
    *,
    base_url: str | None = None,
    strict: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Exchange]:
    """Read an http4k ``DiskStream`` or ``DiskTree`` folder into a list of exchanges.

    Every folder under ``path`` that holds a ``request.txt`` or a ``response.txt`` is one
    exchange and must hold both. Exchanges come in the order of their folders' relative paths,
    which for a ``DiskStream`` is http4k's own replay order (folder names, sorted); a
    ``DiskTree`` records no order. Everything is read and checked before anything is returned.
    An exchange that is invalid, or holds a value no store can hold (see
    :func:`~traffic_lab.exchange.check_storable`), is **skipped by default** with a
    :class:`~traffic_lab.errors.SkippedEntryWarning` naming the file, the exchange's index in
    that order and the part (``request line``, ``headers``...), and the others are kept;
    ``strict=True`` raises the :class:`~traffic_lab.errors.InteropError` instead. Symbolic links are
    never followed, and folders with names outside :data:`FOLDER_NAME` are not entered (both
    skipped with a warning, or raised with ``strict``): see the module documentation.

    Parameters
    ----------
    path
        The ``baseDir`` the http4k store wrote to.
    base_url
        Scheme and host (e.g. ``"https://api.example"``) for requests recorded with only a
        path as their target (server-side traffic); by default ``http://`` + their ``Host``.
    strict
        Raise on the first bad exchange, folder or link instead of skipping it.
    max_bytes
        The largest ``request.txt`` / ``response.txt`` read, and the most a response body
        may decode to under its ``Content-Encoding`` (1 GiB by default).

    Returns
    -------
    list of Exchange
        See the module documentation for times and bodies.

    Raises
    ------
    InteropError
        ``path`` is not a folder, or (with ``strict``) an exchange, folder or link is bad.
        Nothing else escapes from a bad tree.
    FileNotFoundError
        There is no such folder.

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
    check_max_bytes(max_bytes)
    root = Path(path)
    where = Where(str(root))
    if not _WALKABLE:
        raise where.error(
            "read_http4k needs a POSIX system: it walks the tree without following symlinks"
        )
    try:
        root_fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such http4k store folder", str(root)) from None
    except NotADirectoryError:
        raise where.error("an http4k store is a folder, not a file") from None
    except OSError as exc:
        raise where.error(f"cannot be opened: {exc.strerror or exc}") from exc
    try:
        with file_guard(where.path):
            skips = Skips(where.path, strict=strict)
            folders = sorted(_exchange_folders(root_fd, root, skips))

            def read(parts: tuple[str, ...], at: Where) -> Exchange:
                return _read_folder(root_fd, root.joinpath(*parts), parts, at, base_url, max_bytes)

            return read_entries(
                ((Where(str(root.joinpath(*parts)), i), parts) for i, parts in enumerate(folders)),
                read,
                skips,
                locate=_locate,
            )
    finally:
        os.close(root_fd)


def _open_folder(root_fd: int, parts: tuple[str, ...]) -> int:
    """A new descriptor of folder ``parts`` under the root, reached without following links."""
    fd = os.dup(root_fd)
    for name in parts:
        try:
            child = os.open(name, _OPEN_DIR, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _exchange_folders(root_fd: int, root: Path, skips: Skips) -> list[tuple[str, ...]]:
    """The folders (as name tuples) that hold a ``request.txt`` or a ``response.txt``.

    A folder that is a link, has a name outside :data:`FOLDER_NAME`, lies too deep or cannot be
    listed is handed to ``skips`` (raised with ``strict``, else skipped with a warning).
    """
    found: list[tuple[str, ...]] = []
    pending: list[tuple[str, ...]] = [()]
    while pending:
        parts = pending.pop()
        try:
            entries = _list_folder(root_fd, parts)
        except OSError as exc:
            if not parts:
                raise  # the store's own folder: the whole tree cannot be read
            place = os.path.join(root, *parts)
            skips.skip(Where(place).error(f"cannot be read: {exc.strerror or exc}"), "skipped")
            continue
        if any(name in (_REQUEST, _RESPONSE) for name, _link, _dir in entries):
            found.append(parts)
        for name, is_link, is_dir in entries:
            if name in (_REQUEST, _RESPONSE) or not (is_link or is_dir):
                continue  # message files are checked when read; other files are not ours
            place = os.path.join(root, *parts, name)
            if is_link:
                problem = "is a symbolic link: read_http4k never follows links"
            elif not _folder_name_ok(name):
                problem = "is not an http4k folder name (URL path characters, 1-255 bytes)"
            elif len(parts) >= MAX_TREE_DEPTH:
                problem = f"is more than {MAX_TREE_DEPTH} folders deep"
            else:
                pending.append((*parts, name))
                continue
            skips.skip(Where(place).error(problem), "skipped")
    return found


def _list_folder(root_fd: int, parts: tuple[str, ...]) -> list[tuple[str, bool, bool]]:
    """``(name, is a link, is a folder)`` for each entry of folder ``parts``."""
    fd = _open_folder(root_fd, parts)
    try:
        with os.scandir(fd) as listing:
            return [
                (entry.name, entry.is_symlink(), entry.is_dir(follow_symlinks=False))
                for entry in listing
            ]
    finally:
        os.close(fd)


def _read_message(folder_fd: int, name: str, where: Where, max_bytes: int) -> tuple[bytes, int]:
    """The bytes of message file ``name`` and its modification time: a regular file, never
    reached through a link, of at most ``max_bytes``."""
    try:
        fd = os.open(name, _OPEN_FILE, dir_fd=folder_fd)
    except FileNotFoundError:
        raise where.error("is missing: an exchange folder needs both files") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise where.error("is a symbolic link: read_http4k never follows links") from None
        raise where.error(f"cannot be opened: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise where.error("is not a regular file")
        if info.st_size > max_bytes:
            raise where.error(f"is larger than max_bytes={max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # it grew while we read
                raise where.error(f"is larger than max_bytes={max_bytes}")
        return b"".join(chunks), info.st_mtime_ns
    finally:
        os.close(fd)


def _read_folder(
    root_fd: int,
    folder: Path,
    parts: tuple[str, ...],
    at: Where,
    base_url: str | None,
    max_bytes: int,
) -> Exchange:
    request_where = Where(str(folder / _REQUEST), at.index)
    response_where = Where(str(folder / _RESPONSE), at.index)
    folder_fd = _open_folder(root_fd, parts)
    try:
        request_data, mtime_ns = _read_message(folder_fd, _REQUEST, request_where, max_bytes)
        response_data, _ = _read_message(folder_fd, _RESPONSE, response_where, max_bytes)
    finally:
        os.close(folder_fd)
    where = request_where
    start, request_headers, request_body = _parse(request_data, where, "request")
    parts_ = start.split(" ")
    if len(parts_) != 3 or not parts_[0] or not parts_[1]:
        raise where.error(f"must be 'METHOD target VERSION', not {preview(start)}", "request line")
    method, target, _version = parts_
    url = _url(target, request_headers, base_url, where)

    where = response_where
    start, response_headers, body = _parse(response_data, where, "response")
    status_parts = start.split(" ", 2)
    if len(status_parts) < 2 or not (status_parts[1].isascii() and status_parts[1].isdigit()):
        raise where.error(f"must be 'VERSION CODE REASON', not {preview(start)}", "status line")
    version = normalize_http_version(status_parts[0], where, "status line")
    if len(status_parts[1]) > 3:
        raise where.error(f"is not an HTTP status code: {preview(status_parts[1])}", "status line")
    status = int(status_parts[1])
    if not 100 <= status <= 999:
        raise where.error(f"is not an HTTP status code: {status}", "status line")
    reason = status_parts[2] if len(status_parts) == 3 else ""

    headers = tuple(response_headers)
    codings = content_codings(headers)
    if codings and body:
        try:
            decodes = decode_body(body, codings, limit=max_bytes) is not None
        except BodyTooLargeError:
            raise where.error(
                f"the body decodes to more than max_bytes={max_bytes}", "body"
            ) from None
        if not decodes:
            encoded = encode_body(body, codings)
            body = encoded if encoded is not None else body
            headers = body_consistent_headers(
                headers, body, method=method, status_code=status, drop_encoding=encoded is None
            )
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
        raise where.error(f"invalid header section: {cut(str(exc))}", "headers") from exc
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
            host = header_value(headers, "host")
            if host is None:
                raise where.error(
                    f"the target {preview(target)} is only a path and there is no Host header; "
                    "pass base_url=",
                    "request line",
                )
            base = "http://" + host.decode("latin-1")
        url = base + target
    else:
        url = target
    parsed = parse_url(url, where, "request line")
    if not parsed.scheme or not parsed.host:
        raise where.error(f"is not an absolute URL: {preview(url)}", "request line")
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
        ones have no http4k form and raise :class:`~traffic_lab.errors.InteropError`.
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
        check_storable(exchange)  # what no store can hold is not written either
        if exchange.status_code is None:
            raise where.at(i).error("a transport error has no http4k form", "status_code")
        if exchange.truncated:
            raise where.at(i).error("a truncated response has no http4k form", "truncated")
        request_text = _request_text(exchange)
        # Every folder name is known, and checked, before anything is written.
        tree = _tree_folder(exchange.url, request_text, where.at(i)) if layout == "tree" else None
        messages.append((exchange, request_text, _response_text(exchange), tree))

    folders: set[str] = set()

    def fill(tmp: Path) -> None:
        previous = -1
        for exchange, request_text, response_text, tree in messages:
            started_ns = (exchange.started_at - _EPOCH) // timedelta(microseconds=1) * 1000
            if tree is None:
                previous = max(previous + 1, started_ns)
                relative = PurePosixPath(f"{previous:019d}{uuid.uuid4()}")
            else:
                relative = tree
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


def _tree_folder(url: str, request_text: bytes, where: Where) -> PurePosixPath:
    """http4k's ``DiskTree`` folder of a request: its URL path, then a hash of ``request.txt``.

    Every name matches :data:`FOLDER_NAME`, so the tree stays inside its root whatever the URL
    says: ``..`` and empty segments are dropped, other characters are percent-encoded, and a
    segment named like a message file gets its dot encoded.
    """
    raw_path = parse_url(url, where, "url").raw_path.split(b"?", 1)[0].decode("ascii")
    segments = []
    for segment in raw_path.split("/"):
        if segment in ("", ".", ".."):
            continue
        if segment in (_REQUEST, _RESPONSE):
            segment = segment.replace(".", "%2E")
        segment = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", segment)
        if len(segment) > 255:
            raise where.error(
                f"has a path segment of {len(segment)} bytes: a folder name holds at most 255",
                "url",
            )
        segments.append(segment)
    if len(segments) >= MAX_TREE_DEPTH:
        raise where.error(
            f"has {len(segments)} path segments: an http4k tree is at most "
            f"{MAX_TREE_DEPTH} folders deep",
            "url",
        )
    digest = hashlib.sha1(request_text, usedforsecurity=False).digest()
    name = base64.b64encode(digest).decode("ascii").replace("/", "_")
    return PurePosixPath(*segments, name)
