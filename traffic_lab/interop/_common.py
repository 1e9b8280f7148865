"""Pieces the interop readers and writers share: error locations, strict field access on parsed
documents, atomic writes, header text, HTTP versions and content codings.

Nothing here is public API: the public names live in :mod:`traffic_lab.interop`.
"""

from __future__ import annotations

import codecs
import gzip
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from email.message import Message
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import httpx

from ..errors import InteropError

__all__ = [
    "PathArg",
    "Where",
    "body_consistent_headers",
    "content_codings",
    "decode_body",
    "encode_body",
    "field",
    "get_charset",
    "header_bytes",
    "header_text",
    "header_value",
    "normalize_http_version",
    "optional",
    "publish_directory",
    "write_file_atomic",
]

#: What readers and writers accept as a path.
PathArg: TypeAlias = str | os.PathLike[str]

_T = TypeVar("_T")
_Pairs = tuple[tuple[bytes, bytes], ...]


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
        """An :class:`InteropError` naming this file, this entry and ``field``."""
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
        got = "null" if value is None else f"{type(value).__name__} {_preview(value)}"
        raise where.error(f"must be {_kind_name(kind)}, not {got}", name)
    return value


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


# -- files --------------------------------------------------------------------------------------
def write_file_atomic(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` whole or not at all.

    The bytes go to a temporary file in the same folder, which is then renamed into place, so a
    reader never sees a partial file. Without ``overwrite`` an existing file is never replaced,
    even one created while we were writing (the final step is a hard link, which refuses to
    clobber).
    """
    if not overwrite and os.path.lexists(path):
        raise _exists(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise _exists(path) from None
        except OSError:
            # A filesystem without hard links: fall back to check-then-rename.
            if os.path.lexists(path):
                raise _exists(path) from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def header_value(pairs: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes), or ``None``."""
    for key, value in pairs:
        if key.lower() == name:
            return value
    return None


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
        raise where.error(f"is not an HTTP version: {stripped!r}", name)
    return _VERSIONS.get(stripped.lower(), stripped)


def get_charset(content_type: bytes | str | None, default: str = "utf-8") -> str:
    """The ``charset`` parameter of a Content-Type (a known codec), else ``default``."""
    if not content_type:
        return default
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    message = Message()
    message["content-type"] = content_type
    charset = message.get_content_charset()
    if not charset:
        return default
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return default


# -- content codings ----------------------------------------------------------------------------
def _brotli() -> Any:
    try:
        import brotli

        return brotli
    except ImportError:
        try:
            import brotlicffi

            return brotlicffi
        except ImportError:
            return None


def content_codings(pairs: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The Content-Encoding codings in the order they were applied (``identity`` left out)."""
    codings: list[str] = []
    for key, value in pairs:
        if key.lower() == b"content-encoding":
            for part in value.decode("latin-1").split(","):
                coding = part.strip().lower()
                if coding and coding != "identity":
                    codings.append(coding)
    return codings


def _decodable(codings: list[str]) -> bool:
    known = {"gzip", "deflate"}
    if _brotli() is not None:
        known.add("br")
    return all(c in known for c in codings)


def decode_body(body: bytes, codings: list[str]) -> bytes | None:
    """The body with its content codings undone (by httpx, as a client would), or ``None``
    when a coding is unknown or the bytes do not decode (a truncated gzip stream)."""
    if not codings:
        return body
    if not _decodable(codings):
        return None
    response = httpx.Response(
        200,
        headers=[(b"content-encoding", ", ".join(codings).encode())],
        stream=httpx.ByteStream(body),
    )
    try:
        return response.read()
    except httpx.DecodingError:
        return None


def encode_body(body: bytes, codings: list[str]) -> bytes | None:
    """The body with ``codings`` applied in order, or ``None`` when one is not supported.

    gzip output has mtime 0, so encoding the same bytes twice gives the same result.
    """
    for coding in codings:
        if coding in ("gzip", "x-gzip"):
            body = gzip.compress(body, mtime=0)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif coding == "br" and (brotli := _brotli()) is not None:
            body = bytes(brotli.compress(body))
        else:
            return None
    return body


_NO_BODY_STATUSES = frozenset({204, 304})


def body_consistent_headers(
    pairs: _Pairs, body: bytes, *, method: str, status_code: int, drop_encoding: bool
) -> _Pairs:
    """Response headers that agree with ``body``.

    ``drop_encoding`` removes Content-Encoding (the body is stored decoded). A Content-Length
    that no longer matches is set to the body's length, except where the body is empty by
    definition (HEAD, 1xx, 204, 304).
    """
    fix_length = not (method == "HEAD" or status_code < 200 or status_code in _NO_BODY_STATUSES)
    out: list[tuple[bytes, bytes]] = []
    length = str(len(body)).encode()
    for key, value in pairs:
        lowered = key.lower()
        if drop_encoding and lowered == b"content-encoding":
            continue
        if fix_length and lowered == b"content-length" and value.strip() != length:
            value = length
        out.append((key, value))
    return tuple(out)
