"""http4k disk stores: the ``DiskTree`` and ``DiskStream`` folders of ``org.http4k.traffic``.

Each exchange is a folder of ``request.txt`` and ``response.txt``, the ``toString()`` of the
http4k messages; ``docs/interop.md`` describes both layouts, the format's quirks and how an
untrusted tree is walked (never following a symbolic link).
"""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Literal

import h11

from ..errors import preview
from ..exchange import Exchange, check_storable
from ..wire import BodyTooLargeError, content_codings, decode_body, header_value
from ._entries import (
    DEFAULT_MAX_BYTES,
    Locator,
    PathArg,
    Skips,
    check_max_bytes,
    check_status,
    cut,
    encode_again,
    file_guard,
    from_mtime,
    normalize_http_version,
    parse_url,
    publish_directory,
    read_bounded,
    read_entries,
    to_ns,
)

__all__ = ["FOLDER_NAME", "MAX_TREE_DEPTH", "Layout", "read_http4k", "write_http4k"]

#: How :func:`write_http4k` lays out folders: http4k's ``DiskStream`` or ``DiskTree``.
Layout = Literal["stream", "tree"]

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


def _locate(loc: Locator, name: str) -> tuple[Locator, str]:
    # Where a value refused by check_storable came from: the request or the status line.
    if name in ("method", "url", "port"):
        return Locator(os.path.join(loc.path, _REQUEST), loc.index), "request line"
    if name in ("status_code", "reason_phrase", "http_version"):
        return Locator(os.path.join(loc.path, _RESPONSE), loc.index), "status line"
    return loc, name


def read_http4k(
    path: PathArg,
    *,
    base_url: str | None = None,
    strict: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Exchange]:
    """Read an http4k ``DiskStream`` or ``DiskTree`` folder into a list of exchanges.

    Every folder under ``path`` holding a ``request.txt`` or a ``response.txt`` is one exchange
    and must hold both; they come in the order of the folders' relative paths (for a
    ``DiskStream``, http4k's replay order). ``base_url`` (e.g. ``"https://api.example"``)
    completes a request target that is only a path; by default ``http://`` + its ``Host``.
    ``max_bytes`` bounds each message file and what a body decodes to (1 GiB by default). A bad
    exchange, folder or link is skipped with a warning, or raised with ``strict=True``. Raises
    :class:`~traffic_lab.errors.InteropError` if ``path`` is not a folder or the system not POSIX.

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
    loc = Locator(str(root))
    if not _WALKABLE:
        raise loc.error(
            "read_http4k needs a POSIX system: it walks the tree without following symlinks"
        )
    try:
        root_fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such http4k store folder", str(root)) from None
    except NotADirectoryError:
        raise loc.error("an http4k store is a folder, not a file") from None
    except OSError as exc:
        raise loc.error(f"cannot be opened: {exc.strerror or exc}") from exc
    try:
        with file_guard(loc.path):
            skips = Skips(loc.path, strict=strict)
            folders = sorted(_exchange_folders(root_fd, root, skips))
            return read_entries(
                ((Locator(str(root.joinpath(*p)), i), p) for i, p in enumerate(folders)),
                lambda parts, at: _read_folder(root_fd, parts, at, base_url, max_bytes),
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
    """The folders (as name tuples) holding a message file; bad ones go to ``skips``."""
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
            skips.skip(Locator(place).error(f"cannot be read: {exc.strerror or exc}"), "skipped")
            continue
        if any(name in (_REQUEST, _RESPONSE) for name, _link, _dir in entries):
            found.append(parts)
        for name, is_link, is_dir in entries:
            if name in (_REQUEST, _RESPONSE) or not (is_link or is_dir):
                continue  # message files are checked when read; other files are not ours
            place = os.path.join(root, *parts, name)
            if is_link:
                problem = "is a symbolic link: read_http4k never follows links"
            elif FOLDER_NAME.fullmatch(name) is None or name in (".", ".."):
                problem = "is not an http4k folder name (URL path characters, 1-255 bytes)"
            elif len(parts) >= MAX_TREE_DEPTH:
                problem = f"is more than {MAX_TREE_DEPTH} folders deep"
            else:
                pending.append((*parts, name))
                continue
            skips.skip(Locator(place).error(problem), "skipped")
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


def _read_message(folder_fd: int, name: str, loc: Locator, max_bytes: int) -> tuple[bytes, int]:
    """Bytes and mtime of message file ``name``: regular, not a link, at most ``max_bytes``."""
    try:
        fd = os.open(name, _OPEN_FILE, dir_fd=folder_fd)
    except FileNotFoundError:
        raise loc.error("is missing: an exchange folder needs both files") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise loc.error("is a symbolic link: read_http4k never follows links") from None
        raise loc.error(f"cannot be opened: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise loc.error("is not a regular file")
        if info.st_size > max_bytes:
            raise loc.error(f"is larger than max_bytes={max_bytes}")
        # Bounded again: it may grow while we read.
        return read_bounded(functools.partial(os.read, fd), loc, max_bytes), info.st_mtime_ns
    finally:
        os.close(fd)


def _read_folder(
    root_fd: int, parts: tuple[str, ...], at: Locator, base_url: str | None, max_bytes: int
) -> Exchange:
    request_loc = Locator(os.path.join(at.path, _REQUEST), at.index)
    loc = Locator(os.path.join(at.path, _RESPONSE), at.index)
    folder_fd = _open_folder(root_fd, parts)
    try:
        request_data, mtime_ns = _read_message(folder_fd, _REQUEST, request_loc, max_bytes)
        response_data, _ = _read_message(folder_fd, _RESPONSE, loc, max_bytes)
    finally:
        os.close(folder_fd)
    start, request_headers, request_body = _parse(request_data, request_loc, "request line")
    words = start.split(" ")
    if len(words) != 3 or not words[0] or not words[1]:
        raise request_loc.error(
            f"must be 'METHOD target VERSION', not {preview(start)}", "request line"
        )
    method, target, _version = words
    url = _url(target, request_headers, base_url, request_loc)

    start, response_headers, body = _parse(response_data, loc, "status line")
    words = start.split(" ", 2)
    if len(words) < 2 or not (words[1].isascii() and words[1].isdigit()):
        raise loc.error(f"must be 'VERSION CODE REASON', not {preview(start)}", "status line")
    version = normalize_http_version(words[0], loc, "status line")
    if len(words[1]) > 3:
        raise loc.error(f"is not an HTTP status code: {preview(words[1])}", "status line")
    status = check_status(int(words[1]), loc, "status line")
    headers = tuple(response_headers)
    codings = content_codings(headers)
    if codings and body:
        try:
            decodes = decode_body(body, codings, limit=max_bytes) is not None
        except BodyTooLargeError:
            raise loc.error(
                f"the body decodes to more than max_bytes={max_bytes}", "body"
            ) from None
        if not decodes:  # stored decoded (http4k wrote text): encode it again, as for HAR
            body, headers = encode_again(body, headers, codings, method=method, status=status)
    return Exchange(
        method,
        url,
        request_headers=request_headers,
        request_body=request_body,
        status_code=status,
        reason_phrase=words[2] if len(words) == 3 else "",
        http_version=version,
        response_headers=headers,
        response_body=body,
        started_at=from_mtime(mtime_ns),
    )


def _parse(
    data: bytes, loc: Locator, start_field: str
) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    """Start line, raw header pairs and body of one http4k message file."""
    if not data.strip():
        raise loc.error("is empty")
    first, newline, rest = data.partition(b"\n")
    if not newline:
        raise loc.error("has no line end after the start line", start_field)
    try:
        start = first.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise loc.error("is not UTF-8 text", start_field) from exc
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(data) + 1024)
    connection.receive_data(_STAND_IN + rest)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError as exc:
        raise loc.error(f"invalid header section: {cut(str(exc))}", "headers") from exc
    if not isinstance(event, h11.Request):
        raise loc.error("the header section does not end with an empty line", "headers")
    headers = list(event.headers.raw_items())
    body = bytes(connection.trailing_data[0])
    if not headers and body.startswith(b"\r\n"):
        body = body[2:]  # http4k's extra CRLF after an empty header block
    return start, headers, body


def _url(
    target: str, headers: list[tuple[bytes, bytes]], base_url: str | None, loc: Locator
) -> str:
    host = header_value(headers, "host")
    if target.startswith("/") and base_url is None and host is None:
        message = f"the target {preview(target)} is only a path and there is no Host header"
        raise loc.error(f"{message}; pass base_url=", "request line")
    if target.startswith("/"):
        host_url = "http://" + (host or b"").decode("latin-1")
        target = (host_url if base_url is None else base_url.rstrip("/")) + target
    parse_url(target, loc, "request line")
    return target


def write_http4k(
    exchanges: Iterable[Exchange],
    path: PathArg,
    *,
    layout: Layout = "stream",
    overwrite: bool = False,
) -> int:
    """Write exchanges as an http4k ``DiskStream`` or ``DiskTree`` folder, atomically; return
    the number of exchange folders written.

    Each ``request.txt`` gets the exchange's start as its modification time. ``layout="stream"``
    names one folder per exchange ``<19-digit sequence><UUID>``, sorting in the order given
    (http4k's ``DiskStream``); ``"tree"`` is http4k's ``DiskTree`` (request path + hash of
    ``request.txt``: a repeated request keeps only the last one). Raises
    :class:`~traffic_lab.errors.InteropError` for an exchange without a response, a truncated one,
    or a URL path too long for folder names; ``FileExistsError`` unless ``overwrite=True``.

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
    loc = Locator(str(root))
    messages = []
    for i, exchange in enumerate(exchanges):
        check_storable(exchange)  # what no store can hold is not written either
        if exchange.status_code is None:
            raise loc.at(i).error("a transport error has no http4k form", "status_code")
        if exchange.truncated:
            raise loc.at(i).error("a truncated response has no http4k form", "truncated")
        request_text = _request_text(exchange)
        # Every folder name is known, and checked, before anything is written.
        tree = _tree_folder(exchange.url, request_text, loc.at(i)) if layout == "tree" else None
        messages.append((exchange, request_text, _response_text(exchange), tree))

    folders: set[str] = set()

    def fill(tmp: Path) -> None:
        previous = -1
        for exchange, request_text, response_text, tree in messages:
            started_ns = to_ns(exchange.started_at)
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


def _tree_folder(url: str, request_text: bytes, loc: Locator) -> PurePosixPath:
    """http4k's ``DiskTree`` folder of a request, each name matching :data:`FOLDER_NAME`."""
    raw_path = parse_url(url, loc, "url").raw_path.split(b"?", 1)[0].decode("ascii")
    segments = []
    for segment in raw_path.split("/"):
        if segment in ("", ".", ".."):
            continue
        if segment in (_REQUEST, _RESPONSE):
            segment = segment.replace(".", "%2E")
        segment = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", segment)
        if len(segment) > 255:
            raise loc.error(
                f"has a path segment of {len(segment)} bytes: a folder name holds at most 255",
                "url",
            )
        segments.append(segment)
    if len(segments) >= MAX_TREE_DEPTH:
        raise loc.error(
            f"has {len(segments)} path segments: an http4k tree is at most "
            f"{MAX_TREE_DEPTH} folders deep",
            "url",
        )
    digest = hashlib.sha1(request_text, usedforsecurity=False).digest()
    name = base64.b64encode(digest).decode("ascii").replace("/", "_")
    return PurePosixPath(*segments, name)
