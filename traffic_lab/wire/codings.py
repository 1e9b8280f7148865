"""Content codings (``Content-Encoding``): undone as httpx undoes them, bounded, and applied.

:func:`decode_body` gives the bytes httpx gives for ``gzip``, ``deflate``, ``br`` (with
``brotli`` or ``brotlicffi``) and ``zstd`` (with ``zstandard``). It refuses (``None``) where
httpx would hand out something else: a coding it cannot undo (httpx passes the body on as it
came) and a stream cut short (httpx gives what it could decode). ``x-gzip`` is ``gzip``, as RFC
9110 8.4.1.3 asks; bytes after the end of a gzip or deflate stream are ignored, as in httpx.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

__all__ = [
    "BodyTooLargeError",
    "content_codings",
    "decode_body",
    "encode_body",
    "supports",
]

_S = TypeVar("_S", str, bytes)
_CONTENT_ENCODING = (b"content-encoding", "content-encoding")

#: Output of one decompression step: memory stays bounded whatever the compression ratio.
_STEP = 1 << 20
#: zstandard's decompress() has no output bound: with a limit, input goes in steps that cannot
#: decode to more than what is left, nor 64 MiB (a byte makes at most 32 KiB: RLE blocks).
_ZSTD_RATIO = 1 << 15
_ZSTD_MAX_STEP = 64 << 20


class BodyTooLargeError(Exception):
    """A body decodes to more bytes than the ``limit`` given to :func:`decode_body`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"decodes to more than {limit} bytes")
        self.limit = limit


class _Undecodable(Exception):
    pass


#: The optional packages that implement a coding, in httpx's order of preference.
_PACKAGES = {"br": ("brotli", "brotlicffi"), "zstd": ("zstandard",)}


def _module(coding: str) -> Any:
    """The package for ``br`` or ``zstd`` or ``None``; imported each time (cheap once loaded)."""
    for name in _PACKAGES.get(coding, ()):
        try:
            return __import__(name)
        except ImportError:
            continue
    return None


def supports(coding: str) -> bool:
    """Whether :func:`decode_body` and :func:`encode_body` can handle ``coding`` here.

    >>> supports("gzip"), supports("x-gzip"), supports("compress")
    (True, True, False)
    """
    return coding in ("gzip", "x-gzip", "deflate") or _module(coding) is not None


def content_codings(headers: Iterable[tuple[_S, _S]]) -> list[str]:
    """The codings of every ``Content-Encoding`` header, in the order they were applied.

    Lower-cased, ``identity`` left out, as httpx reads them.

    >>> content_codings([(b"Content-Encoding", b"GZIP, identity"), (b"content-encoding", b"br")])
    ['gzip', 'br']
    """
    codings: list[str] = []
    # header_values(headers, "content-encoding"), inlined: redaction asks on every recording.
    for key, value in headers:
        if len(key) == 16 and key.lower() in _CONTENT_ENCODING:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            parts = text.lower().split(",")
            codings += [c for part in parts if (c := part.strip()) and c != "identity"]
    return codings


def decode_body(body: bytes, codings: Sequence[str], limit: int | None = None) -> bytes | None:
    """``body`` with ``codings`` (as :func:`content_codings` lists them) undone, last first.

    ``None`` when a coding is not supported or the bytes do not decode whole (corrupt, or cut
    short). Decoding goes in bounded steps: with ``limit``, a body (or an intermediate coding)
    that decodes to more than ``limit`` bytes raises :class:`BodyTooLargeError` once there, so
    a decompression bomb costs about ``limit`` bytes and the time to produce them.

    >>> import gzip, zlib
    >>> decode_body(gzip.compress(zlib.compress(b"hi")), ["deflate", "gzip"])
    b'hi'
    >>> decode_body(gzip.compress(b"hello")[:-4], ["gzip"]) is None
    True
    >>> decode_body(gzip.compress(bytes(10_000)), ["gzip"], limit=100)
    Traceback (most recent call last):
    ...
    traffic_lab.wire.codings.BodyTooLargeError: decodes to more than 100 bytes
    """
    if not body or not codings:
        return body
    if not all(map(supports, codings)):
        return None
    data = body
    try:
        for coding in reversed(codings):  # the last coding applied is undone first
            data = _decode_one(data, coding, limit)
    except _Undecodable:
        return None
    return data


def _decode_one(data: bytes, coding: str, limit: int | None) -> bytes:
    if not data:
        return b""  # httpx decodes nothing to nothing, whatever the coding
    if coding in ("gzip", "x-gzip"):
        return _inflate(zlib.decompressobj(zlib.MAX_WBITS | 16), data, limit)
    if coding == "deflate":
        # httpx's way: a zlib stream, else (any error on the first try) raw deflate.
        try:
            return _inflate(zlib.decompressobj(), data, limit)
        except _Undecodable:
            return _inflate(zlib.decompressobj(-zlib.MAX_WBITS), data, limit)
    if coding == "br":
        return _unbrotli(_module("br"), data, limit)
    return _unzstd(_module("zstd"), data, limit)


class _Output:
    __slots__ = ("limit", "parts", "size")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def room(self) -> int:
        """How much one step may produce: one byte over the limit shows it was passed."""
        return _STEP if self.limit is None else max(1, min(_STEP, self.limit - self.size + 1))

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.limit is not None and self.size > self.limit:
            raise BodyTooLargeError(self.limit)
        self.parts.append(piece)


def _inflate(decompressor: Any, data: bytes, limit: int | None) -> bytes:
    out, pending = _Output(limit), data
    try:
        if limit is None:  # nothing to stop at: one call (redaction's, on every recording)
            out.parts.append(decompressor.decompress(data))
        else:
            while True:
                room = out.room()
                piece = decompressor.decompress(pending, room)
                out.add(piece)
                pending = decompressor.unconsumed_tail
                if decompressor.eof or (not pending and len(piece) < room):
                    break
    except zlib.error as exc:
        raise _Undecodable from exc
    if not decompressor.eof:
        raise _Undecodable  # cut short
    return b"".join(out.parts)


def _unbrotli(brotli: Any, data: bytes, limit: int | None) -> bytes:
    decompressor = brotli.Decompressor()
    out = _Output(limit)
    try:
        if hasattr(decompressor, "can_accept_more_data"):  # brotli >= 1.2: bounded output
            # Each step's output stops growing near the limit (it may pass it by one block).
            out.add(decompressor.process(data, output_buffer_limit=out.room()))
            while not decompressor.is_finished():
                piece = decompressor.process(b"", output_buffer_limit=out.room())
                if not piece and decompressor.can_accept_more_data():
                    break  # all input decoded, and the stream is not finished: cut short
                out.add(piece)
        else:  # older bindings and brotlicffi: small inputs keep each step's output small
            process = getattr(decompressor, "decompress", None) or decompressor.process
            for start in range(0, len(data), 64):
                out.add(process(data[start : start + 64]))
    except brotli.error as exc:
        raise _Undecodable from exc
    finished = getattr(decompressor, "is_finished", None)
    if finished is not None and not finished():
        raise _Undecodable  # cut short
    return b"".join(out.parts)


def _unzstd(zstandard: Any, data: bytes, limit: int | None) -> bytes:
    out = _Output(limit)
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    pending = memoryview(data)
    try:
        while pending:
            size = len(pending)
            if limit is not None:
                size = max(64, min(limit - out.size + 1, _ZSTD_MAX_STEP) // _ZSTD_RATIO)
            out.add(decompressor.decompress(pending[:size]))
            pending = pending[size:]
            # Frames one after another are one body, as httpx reads them.
            if decompressor.eof and (rest := decompressor.unused_data + bytes(pending)):
                pending = memoryview(rest)
                decompressor = zstandard.ZstdDecompressor().decompressobj()
    except zstandard.ZstdError as exc:
        raise _Undecodable from exc
    if not decompressor.eof:
        raise _Undecodable  # cut short
    return b"".join(out.parts)


def encode_body(body: bytes, codings: Sequence[str]) -> bytes | None:
    """``body`` with ``codings`` applied in order; ``None`` when one is not supported.

    Deterministic: gzip output has mtime 0, so the same bytes encode the same way twice.

    >>> decode_body(encode_body(b"hi", ["gzip", "deflate"]), ["gzip", "deflate"])
    b'hi'
    >>> encode_body(b"hi", ["compress"]) is None
    True
    """
    for coding in codings:
        if coding in ("gzip", "x-gzip"):
            body = gzip.compress(body, mtime=0)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif (module := _module(coding)) is None:
            return None
        else:  # br or zstd
            body = bytes(module.compress(body))
    return body
