"""Pieces the interop readers and writers share: error locations, strict field access on parsed
documents, the one way every reader turns entries into exchanges (:func:`read_entries`: checked,
bad ones skipped or raised), input limits, atomic writes, header text and HTTP versions. Content
codings, charsets and header lookup live in :mod:`traffic_lab.wire`.

Nothing here is public API: the public names live in :mod:`traffic_lab.interop`.
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
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias, TypeVar

import httpx

from ..errors import InteropError, InvalidExchangeError, SkippedEntryWarning, preview
from ..exchange import Exchange, check_storable
from ..files import write_atomic

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_INT_DIGITS",
    "HugeInteger",
    "Locate",
    "MAX_ENTRY_WARNINGS",
    "Skips",
    "PathArg",
    "Where",
    "cut",
    "check_max_bytes",
    "field",
    "fields_named",
    "file_guard",
    "load_json",
    "parse_int",
    "parse_url",
    "open_input",
    "read_entries",
    "header_bytes",
    "header_text",
    "normalize_http_version",
    "optional",
    "publish_directory",
    "write_file_atomic",
]

#: What readers and writers accept as a path.
PathArg: TypeAlias = str | os.PathLike[str]

_T = TypeVar("_T")


class Where:
    """Where in a foreign file a value came from: builds :class:`InteropError` s that say so."""

    __slots__ = ("index", "path")

    def __init__(self, path: str, index: int | None = None) -> None:
        self.path = path
        self.index = index

    def at(self, index: int) -> Where:
        """The same file, entry ``index``."""
        return Where(self.path, index)

    def error(self, message: str, field: str | None = None) -> InteropError:
        """An :class:`InteropError` naming this file, this entry and ``field``.

        A field name built from foreign text (a header name) is cut to a bounded length.
        """
        if field is not None:
            field = cut(field)
        return InteropError(message, path=self.path, index=self.index, field=field)


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


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def _check(value: Any, kind: type | tuple[type, ...], where: Where, name: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # JSON and YAML booleans are Python ints: never let true/false pass for a number.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        if value is None:
            got = "null"
        elif isinstance(value, HugeInteger):
            raise where.error(
                f"has {value.digits} digits: numbers of more than {MAX_INT_DIGITS} are not read",
                name,
            )
        else:
            got = f"{type(value).__name__} {preview(value)}"
        raise where.error(f"must be {_kind_name(kind)}, not {got}", name)
    return value


def field(
    obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: Where, prefix: str
) -> Any:
    """``obj[key]``, which must exist and be of ``kind``; errors name ``prefix.key``."""
    name = f"{prefix}.{key}" if prefix else key
    if key not in obj:
        raise where.error("is missing", name)
    return _check(obj[key], kind, where, name)


def optional(
    obj: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: Where,
    prefix: str,
    default: _T,
) -> Any:
    """``obj[key]`` if present (and then of ``kind``), else ``default``."""
    if key not in obj:
        return default
    name = f"{prefix}.{key}" if prefix else key
    return _check(obj[key], kind, where, name)


# -- limits and parsing ---------------------------------------------------------------------------
#: Integer literals longer than this (sign included) are not turned into ``int``: Python itself
#: refuses more than 4300 digits, with a ``ValueError`` that names no file, and no field of these
#: formats needs more than 20. Such a literal is read as a :class:`HugeInteger`.
MAX_INT_DIGITS = 40

#: The default ``max_bytes`` of the readers that decompress: 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30

#: The longest text taken from an exception into an error message.
_MESSAGE_LIMIT = 200


class HugeInteger:
    """Stands for an integer literal of more than :data:`MAX_INT_DIGITS` digits.

    A field that must be a number refuses it by type, naming the entry and the field, and a
    field that no reader looks at costs nothing.
    """

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def parse_int(text: str) -> int | HugeInteger:
    """An integer literal from a JSON or YAML document, bounded by :data:`MAX_INT_DIGITS`."""
    if len(text) > MAX_INT_DIGITS:
        return HugeInteger(len(text))
    return int(text)


def cut(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, for messages built from foreign text."""
    return text if len(text) <= limit else text[:limit] + "..."


def load_json(text: str, where: Where) -> Any:
    """Parse a JSON document; every failure is an :class:`InteropError` naming the file.

    Integers are bounded (:func:`parse_int`); nesting deeper than the parser can follow (the
    interpreter's recursion limit, about 1000 levels) is an error, not a ``RecursionError``.
    """
    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as exc:
        raise where.error(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError:
        raise where.error("is nested too deeply to read (JSON arrays and objects)") from None


def parse_url(url: str, where: Where, name: str) -> httpx.URL:
    """``url`` parsed by httpx, or an :class:`InteropError` naming ``name``.

    Text that is not valid Unicode (a lone surrogate from a JSON ``\\ud800`` escape), text
    httpx refuses, and a port outside 0-65535 are errors here rather than later.
    """
    if not url.isascii():
        try:
            url.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise where.error(
                f"is not valid Unicode text ({exc.reason} at {exc.start}): {preview(url)}", name
            ) from None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise where.error(f"is not a valid URL: {cut(str(exc))}", name) from exc
    port = parsed.port
    if port is not None and not 0 <= port <= 65535:
        raise where.error(f"has a port outside 0-65535: {preview(url)}", name)
    return parsed


# -- reading entries ----------------------------------------------------------------------------
_E = TypeVar("_E")

#: Where a field of an exchange refused by :func:`~traffic_lab.exchange.check_storable` came
#: from in the foreign file: the entry's location and the field's name there.
Locate: TypeAlias = Callable[[Where, str], tuple[Where, str]]


def fields_named(names: Mapping[str, str]) -> Locate:
    """A :data:`Locate` that renames exchange fields (``"url"``) as the format names them."""

    def locate(where: Where, name: str) -> tuple[Where, str]:
        return where, names.get(name, name)

    return locate


#: At most this many skipped entries of one file get a warning each; one more warning counts
#: the rest (a file of a million bad entries must not print, or register, a million warnings).
MAX_ENTRY_WARNINGS = 20


class Skips:
    """What one reader skips in one file or tree: raised with ``strict``, else warned.

    The first :data:`MAX_ENTRY_WARNINGS` skips get a :class:`SkippedEntryWarning` each, naming
    them; :meth:`finish` counts the rest in one more. Warnings point at the reader's caller
    (``skip`` and ``finish`` are called two frames below the public reader).
    """

    __slots__ = ("count", "source", "strict")

    def __init__(self, source: str, *, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.count = 0

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
    entries: Iterable[tuple[Where, _E]],
    read: Callable[[_E, Where], Exchange],
    skips: Skips,
    *,
    locate: Locate,
) -> list[Exchange]:
    """Turn the entries of a foreign file (or tree) into exchanges every store can hold.

    Each entry is read by ``read(entry, where)`` and checked with
    :func:`~traffic_lab.exchange.check_storable`. An entry that fails in any way (an
    :class:`InteropError` from ``read``, a value no store can hold, or any other exception) is
    named by file, entry and field and handed to ``skips``: raised with ``strict``, else
    skipped with a :class:`~traffic_lab.errors.SkippedEntryWarning` while the other entries are
    kept. Past :data:`MAX_ENTRY_WARNINGS` skipped entries, one last warning counts the others.
    Call it from the public reader itself (warnings point at that reader's caller).
    """
    exchanges: list[Exchange] = []
    for where, entry in entries:
        try:
            exchange = read(entry, where)
            check_storable(exchange)
        except InteropError as exc:
            error = exc
        except InvalidExchangeError as exc:
            at, name = locate(where, exc.field)
            error = at.error(str(exc), name)
        except RecursionError:
            error = where.error("is nested too deeply to read")
        except Exception as exc:  # one bad entry, of any kind, costs only itself
            error = where.error(f"cannot be read: {type(exc).__name__}: {cut(str(exc))}")
        else:
            exchanges.append(exchange)
            continue
        skips.skip(error)
    skips.finish()
    return exchanges


@contextlib.contextmanager
def file_guard(path: str) -> Iterator[None]:
    """Whole-file problems as :class:`InteropError` s naming the file.

    Inside it, any exception but an :class:`InteropError`, a warning turned into an error
    (``SkippedEntryWarning`` under ``-W error``) and ``ImportError`` (a missing optional
    package) becomes an
    :class:`InteropError` naming ``path``: nothing raw (``KeyError``, ``RecursionError``,
    ``OSError``...) escapes a reader.
    """
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


def open_input(file: Path, where: Where) -> BinaryIO:
    """``file`` opened for reading. A missing file raises ``FileNotFoundError`` as usual; any
    other failure (a folder, no permission) is an :class:`InteropError` naming it."""
    try:
        return open(file, "rb")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise where.error(f"cannot be opened: {exc.strerror or exc}") from exc


def check_max_bytes(max_bytes: int) -> int:
    """``max_bytes`` if it is a positive integer, else ``ValueError``."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive integer, not {preview(max_bytes)}")
    return max_bytes


# -- files --------------------------------------------------------------------------------------
def write_file_atomic(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` whole or not at all (:func:`traffic_lab.files.write_atomic`).

    Without ``overwrite`` an existing file (or symlink) is never replaced, even one created while
    we were writing; a symlink is never written through.
    """
    if not write_atomic(path, data, overwrite=overwrite):
        raise _exists(path)


def publish_directory(path: Path, fill: Callable[[Path], None], *, overwrite: bool) -> None:
    """Build a folder with ``fill(tmp)`` beside ``path``, then rename it into place.

    Readers never see a half-written tree. With ``overwrite`` an existing ``path`` is moved
    aside first and deleted only after the new tree is in place.
    """
    if not overwrite and os.path.lexists(path):
        raise _exists(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if os.path.lexists(path):
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
        else:
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _exists(path: Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists; pass overwrite=True to replace it", str(path))


# -- headers ------------------------------------------------------------------------------------
def header_text(raw: bytes) -> str:
    """Header bytes as text: UTF-8, with undecodable bytes kept as surrogates (mitmproxy's way),
    so :func:`header_bytes` gives the same bytes back."""
    return raw.decode("utf-8", "surrogateescape")


def header_bytes(text: str, where: Where, name: str) -> bytes:
    """The inverse of :func:`header_text`."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise where.error(f"cannot be encoded as header bytes: {exc.reason}", name) from exc


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


def normalize_http_version(text: str, where: Where, name: str) -> str:
    """The protocol as httpx names it (``"HTTP/1.1"``, ``"HTTP/2"``...).

    Browsers write ``h2`` or ``http/2.0``, mitmproxy ``HTTP/2.0``; an empty value means
    HTTP/1.1. Other values are kept as they are.
    """
    stripped = text.strip()
    if not stripped:
        return "HTTP/1.1"
    if not stripped.isascii():
        raise where.error(f"is not an HTTP version: {preview(stripped)}", name)
    return _VERSIONS.get(stripped.lower(), stripped)
