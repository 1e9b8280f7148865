"""What the interop readers and writers share: error locations, field checks, reading entries
(:func:`read_entries`), input limits, atomic writes. Body codings live in :mod:`traffic_lab.wire`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias, TypeVar

import httpx

from ..errors import InteropError, InvalidExchangeError, SkippedEntryWarning, preview
from ..exchange import Exchange, check_storable
from ..files import write_atomic
from ..wire import body_consistent_headers, encode_body

#: What readers and writers accept as a path.
PathArg: TypeAlias = str | os.PathLike[str]
#: Header pairs, as an :class:`~traffic_lab.Exchange` holds them.
Pairs: TypeAlias = tuple[tuple[bytes, bytes], ...]

_E = TypeVar("_E")
_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Locator:
    """Where in a foreign file a value came from: builds :class:`InteropError` s that say so."""

    path: str
    index: int | None = None

    def at(self, index: int) -> Locator:
        """The same file, entry ``index``."""
        return Locator(self.path, index)

    def error(self, message: str, field: str | None = None) -> InteropError:
        """An :class:`InteropError` naming this file, this entry and ``field`` (cut short)."""
        return InteropError(
            message, path=self.path, index=self.index, field=None if field is None else cut(field)
        )


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    bytes: "bytes",
    type(None): "null",
}


def _check(value: Any, kind: type | tuple[type, ...], loc: Locator, name: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # JSON and YAML booleans are Python ints: never let true/false pass for a number.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        if isinstance(value, HugeInteger):
            raise loc.error(
                f"has {value.digits} digits: numbers of more than {MAX_INT_DIGITS} are not read",
                name,
            )
        got = "null" if value is None else f"{type(value).__name__} {preview(value)}"
        wanted = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        if set(kinds) == {int, float}:
            wanted = "a number"
        raise loc.error(f"must be {wanted}, not {got}", name)
    return value


def field(
    obj: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    loc: Locator,
    prefix: str,
    default: Any = _REQUIRED,
) -> Any:
    """``obj[key]`` of ``kind``; if missing, ``default`` if given, else an error."""
    name = f"{prefix}.{key}" if prefix else key
    if key in obj:
        return _check(obj[key], kind, loc, name)
    if default is _REQUIRED:
        raise loc.error("is missing", name)
    return default


#: Integer literals longer than this (sign included) are read as a :class:`HugeInteger`: Python
#: refuses more than 4300 digits with a ``ValueError`` naming no file, and no field needs 20.
MAX_INT_DIGITS = 40

#: The default ``max_bytes`` of the readers that decompress: 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class HugeInteger:
    """An integer literal of more than :data:`MAX_INT_DIGITS` digits (not a number)."""

    digits: int


def parse_int(text: str) -> int | HugeInteger:
    """An integer literal from a JSON or YAML document, bounded by :data:`MAX_INT_DIGITS`."""
    return HugeInteger(len(text)) if len(text) > MAX_INT_DIGITS else int(text)


def cut(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, for messages built from foreign text."""
    return text if len(text) <= limit else text[:limit] + "..."


def utf8_text(data: bytes, loc: Locator) -> str:
    """A whole file's bytes as UTF-8 text (a byte-order mark dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise loc.error(f"is not UTF-8 text (bad byte at offset {exc.start})") from exc


def load_json(text: str, loc: Locator) -> Any:
    """A JSON document, integers bounded; any failure is an :class:`InteropError`."""
    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as exc:
        raise loc.error(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError:
        raise loc.error("is nested too deeply to read (JSON arrays and objects)") from None


def parse_url(url: str, loc: Locator, name: str, schemes: tuple[str, ...] = ()) -> httpx.URL:
    """``url`` parsed by httpx: absolute, a scheme in ``schemes`` (if given), a valid port."""
    if not url.isascii():
        try:
            url.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise loc.error(
                f"is not valid Unicode text ({exc.reason} at {exc.start}): {preview(url)}", name
            ) from None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise loc.error(f"is not a valid URL: {cut(str(exc))}", name) from exc
    port = parsed.port
    if port is not None and not 0 <= port <= 65535:
        raise loc.error(f"has a port outside 0-65535: {preview(url)}", name)
    if not parsed.scheme or not parsed.host or (schemes and parsed.scheme not in schemes):
        what = "an absolute http(s) URL" if schemes else "an absolute URL"
        raise loc.error(f"is not {what}: {preview(url)}", name)
    return parsed


def check_method(method: str, loc: Locator, name: str) -> str:
    """``method`` if it looks like an HTTP method (:func:`check_storable` has the full rule)."""
    if not method or not method.isascii() or any(c.isspace() for c in method):
        raise loc.error(f"is not an HTTP method: {preview(method)}", name)
    return method


def check_status(status: int, loc: Locator, name: str) -> int:
    """``status`` if it is 100-999."""
    if not 100 <= status <= 999:
        raise loc.error(f"is not an HTTP status code: {status}", name)
    return status


def check_reason(reason: str, loc: Locator, name: str) -> str:
    """``reason`` if it is Latin-1 text (it goes on the wire)."""
    try:
        reason.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise loc.error("must be Latin-1 text", name) from exc
    return reason


def from_mtime(mtime_ns: int) -> datetime:
    """A file's modification time (``st_mtime_ns``) as an exchange's ``started_at``."""
    return _EPOCH + timedelta(microseconds=mtime_ns // 1000)


def to_ns(moment: datetime) -> int:
    """The inverse of :func:`from_mtime`, for ``os.utime``."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def encode_again(
    decoded: bytes, headers: Pairs, codings: list[str], *, method: str, status: int
) -> tuple[bytes, Pairs]:
    """A decoded body encoded again with ``codings`` (or, where one cannot be applied, without
    ``Content-Encoding``), with a ``Content-Length`` that matches."""
    encoded = encode_body(decoded, codings) if codings and decoded else decoded
    body = decoded if encoded is None else encoded
    fixed = body_consistent_headers(
        headers, body, method=method, status_code=status, drop_encoding=encoded is None
    )
    return body, fixed


_VERSIONS = {
    "http/1.0": "HTTP/1.0",
    "http/1.1": "HTTP/1.1",
    "http/2": "HTTP/2",
    "http/2.0": "HTTP/2",
    "h2": "HTTP/2",
    "h2c": "HTTP/2",
    "http/3": "HTTP/3",
    "http/3.0": "HTTP/3",
    "h3": "HTTP/3",
}


def normalize_http_version(text: str, loc: Locator, name: str) -> str:
    """The protocol as httpx names it (``h2``, ``HTTP/2.0`` -> ``HTTP/2``; empty: HTTP/1.1)."""
    stripped = text.strip()
    if not stripped:
        return "HTTP/1.1"
    if not stripped.isascii():
        raise loc.error(f"is not an HTTP version: {preview(stripped)}", name)
    return _VERSIONS.get(stripped.lower(), stripped)


#: Where a field refused by :func:`check_storable` came from in the foreign file: a table of
#: exchange field -> the format's field, or a function of the entry's location and the field.
Locate: TypeAlias = Mapping[str, str] | Callable[[Locator, str], tuple[Locator, str]]

#: At most this many skipped entries of one file get a warning each; one more counts the rest.
MAX_ENTRY_WARNINGS = 20


@dataclass(slots=True)
class Skips:
    """What one reader skips in one file or tree: raised with ``strict``, else warned (the first
    :data:`MAX_ENTRY_WARNINGS` by name, the rest counted by :meth:`finish`). Both are called two
    frames below the public reader, so the warnings point at its caller."""

    source: str
    strict: bool
    count: int = 0

    def skip(self, error: InteropError, what: str = "entry skipped") -> None:
        """Raise ``error`` with ``strict``, else warn that it was skipped."""
        if self.strict:
            raise error
        self.count += 1
        if self.count <= MAX_ENTRY_WARNINGS:
            warnings.warn(f"{error} ({what})", SkippedEntryWarning, stacklevel=4)

    def finish(self) -> None:
        """One last warning for the skips past :data:`MAX_ENTRY_WARNINGS`."""
        if self.count > MAX_ENTRY_WARNINGS:
            warnings.warn(
                f"{self.source}: {self.count - MAX_ENTRY_WARNINGS} more entries skipped; only "
                f"the first {MAX_ENTRY_WARNINGS} are named (strict=True raises on the first "
                "bad entry)",
                SkippedEntryWarning,
                stacklevel=4,
            )


def read_entries(
    entries: Iterable[tuple[Locator, _E]],
    read: Callable[[_E, Locator], Exchange],
    skips: Skips,
    *,
    locate: Locate,
) -> list[Exchange]:
    """Each entry read by ``read(entry, loc)`` and checked with :func:`check_storable`; one that
    fails in any way goes to ``skips``. Call it from the public reader itself."""
    exchanges: list[Exchange] = []
    for loc, entry in entries:
        try:
            exchange = read(entry, loc)
            check_storable(exchange)
        except InteropError as exc:
            error = exc
        except InvalidExchangeError as exc:
            name = exc.field
            at, name = locate(loc, name) if callable(locate) else (loc, locate.get(name, name))
            error = at.error(str(exc), name)
        except RecursionError:
            error = loc.error("is nested too deeply to read")
        except Exception as exc:  # one bad entry, of any kind, costs only itself
            error = loc.error(f"cannot be read: {type(exc).__name__}: {cut(str(exc))}")
        else:
            exchanges.append(exchange)
            continue
        skips.skip(error)
    skips.finish()
    return exchanges


@contextlib.contextmanager
def file_guard(path: str) -> Iterator[None]:
    """Any exception inside but an :class:`InteropError`, a warning raised as an error and an
    ``ImportError`` (a missing optional package) becomes an :class:`InteropError` naming
    ``path``: nothing raw (``KeyError``, ``RecursionError``, ``OSError``...) escapes a reader."""
    try:
        yield
    except (InteropError, Warning, ImportError):
        raise
    except RecursionError:
        raise InteropError("is nested too deeply to read", path=path) from None
    except MemoryError:
        raise InteropError("does not fit in memory", path=path) from None
    except OSError as exc:
        raise InteropError(f"cannot be read: {exc.strerror or exc}", path=path) from exc
    except Exception as exc:
        raise InteropError(
            f"cannot be read: {type(exc).__name__}: {cut(str(exc))}", path=path
        ) from exc


def open_input(file: Path, loc: Locator) -> BinaryIO:
    """``file`` opened; a failure but ``FileNotFoundError`` is an :class:`InteropError`."""
    try:
        return open(file, "rb")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise loc.error(f"cannot be opened: {exc.strerror or exc}") from exc


def read_bounded(
    read: Callable[[int], bytes], loc: Locator, max_bytes: int, too_large: str = "is larger than"
) -> bytes:
    """What ``read`` gives, 1 MiB at a time, up to ``max_bytes`` (then an error)."""
    parts: list[bytes] = []
    size = 0
    while chunk := read(min(1 << 20, max_bytes + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise loc.error(f"{too_large} max_bytes={max_bytes}")
    return b"".join(parts)


def check_max_bytes(max_bytes: int) -> int:
    """``max_bytes`` if it is a positive integer, else ``ValueError``."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive integer, not {preview(max_bytes)}")
    return max_bytes


def write_file_atomic(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` whole or not at all (:func:`traffic_lab.files.write_atomic`)."""
    if not write_atomic(path, data, overwrite=overwrite):
        raise _exists(path)


def publish_directory(path: Path, fill: Callable[[Path], None], *, overwrite: bool) -> None:
    """Build a folder with ``fill(tmp)`` beside ``path``, then rename it into place."""
    if not overwrite and os.path.lexists(path):
        raise _exists(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if not os.path.lexists(path):
            os.rename(tmp, path)
            return
        if not overwrite:
            raise _exists(path)
        trash = path.parent / f".{path.name}.{uuid.uuid4().hex}.old"
        os.rename(path, trash)
        try:
            os.rename(tmp, path)
        except OSError:
            os.rename(trash, path)  # put the old tree back
            raise
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash)
        else:
            trash.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _exists(path: Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists; pass overwrite=True to replace it", str(path))
