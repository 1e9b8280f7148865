"""The durable log: what ``durable=True`` writers append to before ``put()`` returns.

Each writer appends to its own segment ``_traffic_lab/logs/<writer_id>-<segment>.log``, holding
the exchanges of one buffer, deleted once they are published. A live writer holds a kernel lock
(``_locks``) on its segment, dropped when the process dies: a segment that can be locked is a
dead writer's, and whoever finds it folds it into Parquet.

Format: ``TLLOG1\n``, a JSON header line, then records: ``b"TLR1"``, the payload's length and
CRC-32 (little-endian u32), the payload (a u32 length, a JSON array of the exchange's 16 parts,
the request and response bodies). Each record is one ``write()``; one cut short by a crash fails
its checks and is ignored (its ``put()`` never returned). A dead writer's segment is untrusted
input: its header and every record are validated, bad records reported and the rest kept.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import struct
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ...errors import preview
from ...exchange import Exchange, RecordedError, check_storable
from ._fs import OPEN_FLAGS
from ._locks import try_lock, unlock
from ._validate import is_segment, is_writer_id
from .schema import EPOCH, ONE_US

__all__ = ["DurableLog", "LogContents", "claim_log", "read_log"]

_FILE_MAGIC = b"TLLOG1\n"
_RECORD_MAGIC = b"TLR1"
_HEAD = struct.Struct("<4sII")
_U32 = struct.Struct("<I")
_NONE = type(None)
# The types of a record's 16 parts, in order (see encode_record).
_PARTS: tuple[type | tuple[type, ...], ...] = (
    int, str, str, list, int, int, (int, _NONE), str, str, list,
    (str, _NONE), (str, _NONE), (dict, _NONE), bool, str, int,
)  # fmt: skip


def _latin1_pairs(headers: tuple[tuple[bytes, bytes], ...]) -> list[list[str]]:
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]


def encode_record(seq: int, exchange: Exchange, key: str) -> bytes:
    """One framed log record for ``exchange``."""
    error = exchange.error
    parts = [
        seq,
        exchange.method,
        exchange.url,
        _latin1_pairs(exchange.request_headers),
        (exchange.started_at - EPOCH) // ONE_US,
        exchange.elapsed // ONE_US,
        exchange.status_code,
        exchange.reason_phrase,
        exchange.http_version,
        _latin1_pairs(exchange.response_headers),
        error.type if error is not None else None,
        error.message if error is not None else None,
        dict(exchange.tags),
        exchange.truncated,
        key,
        len(exchange.request_body),
    ]
    meta = json.dumps(parts, separators=(",", ":")).encode()
    payload = b"".join((_U32.pack(len(meta)), meta, exchange.request_body, exchange.response_body))
    return _HEAD.pack(_RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_record(payload: bytes) -> tuple[int, Exchange, str]:
    """One record's (seq, exchange, key); ``ValueError`` saying what is wrong with it."""
    if len(payload) < 4:
        raise ValueError("record too short")
    (meta_len,) = _U32.unpack_from(payload)
    meta_end = 4 + meta_len
    if meta_end > len(payload):
        raise ValueError("record parts longer than the record")
    try:
        p: Any = json.loads(payload[4:meta_end])
    except (ValueError, RecursionError):
        raise ValueError("record parts are not JSON") from None
    if (
        not isinstance(p, list)
        or len(p) != len(_PARTS)
        or not all(isinstance(v, t) for v, t in zip(p, _PARTS, strict=True))
    ):
        raise ValueError("record parts are not the 16 values of an exchange")
    if not 0 <= p[0] < 2**63:
        raise ValueError(f"sequence number {preview(p[0])} out of range")
    tags = p[12] or {}
    if not all(isinstance(v, str) for v in tags.values()):
        raise ValueError("tag values are not text")
    request_end = meta_end + p[15]
    if not meta_end <= request_end <= len(payload):
        raise ValueError(f"request body length {preview(p[15])} out of range")
    error = RecordedError(p[10], p[11] or "") if p[10] is not None else None
    try:
        exchange = Exchange(
            p[1],
            p[2],
            request_headers=_headers(p[3]),
            request_body=payload[meta_end:request_end],
            status_code=p[6],
            reason_phrase=p[7],
            http_version=p[8],
            response_headers=_headers(p[9]),
            response_body=payload[request_end:],
            started_at=EPOCH + timedelta(microseconds=p[4]),
            elapsed=timedelta(microseconds=p[5]),
            error=error,
            tags=tags or None,
            truncated=p[13],
        )
    except OverflowError as exc:
        raise ValueError(f"a time out of range ({exc})") from None
    check_storable(exchange)
    return p[0], exchange, p[14]


def _headers(pairs: list[Any]) -> list[tuple[bytes, bytes]]:
    if not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        for pair in pairs
    ):
        raise ValueError("headers are not [name, value] pairs of text")
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


class DurableLog:
    """One open, locked log segment of a live writer."""

    def __init__(self, path: str, *, writer_id: str, segment: int, fingerprint: str) -> None:
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        # Created under a hidden name and locked before it gets its real name, so that no other
        # process ever sees an unlocked live segment and takes it for a dead writer's.
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            if not try_lock(fd):
                raise BlockingIOError(f"{temp} is locked by another writer")
            header = {"writer_id": writer_id, "segment": segment, "fingerprint": fingerprint}
            os.write(fd, _FILE_MAGIC + json.dumps(header).encode() + b"\n")
            try:
                os.rename(temp, path)
                temp = ""
            except PermissionError:  # Windows renames no open file: a second name, same file
                os.link(temp, path)
        except BaseException:
            os.close(fd)
            _unlink(temp)
            raise
        self.path = path
        self._fd = fd
        self._temp = temp  # the hidden name where it stays (Windows), removed on release

    def append(self, record: bytes) -> None:
        """Append one record; once this returns the record survives a crash of the process."""
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view) :]

    def delete(self) -> None:
        """Remove the segment (its exchanges are published) and release its lock."""
        try:
            _unlink(self.path)
        except PermissionError:  # Windows deletes no open file: release it first
            self.close()
            _unlink(self.path)
            return
        self.close()

    def close(self) -> None:
        """Release the lock, keeping the segment for recovery."""
        try:
            unlock(self._fd)
        finally:
            os.close(self._fd)
            if self._temp:
                _unlink(self._temp)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass
class LogContents:
    """A log segment's header, good records, and bad ones (record number, what is wrong)."""

    writer_id: str
    segment: int
    fingerprint: str
    records: list[tuple[int, Exchange, str]] = field(default_factory=list)
    bad_records: list[tuple[int, str]] = field(default_factory=list)
    torn_bytes: int = 0


def read_log(path: str, fd: int | None = None) -> LogContents:
    """Read a log segment (from ``fd`` if given, as :func:`claim_log` returned it).

    A record cut short at the end is counted in ``torn_bytes``; a record that is not a storable
    exchange goes to ``bad_records``. ``ValueError`` if it is not a log or its header is bad.
    """
    if fd is None:
        with open(path, "rb") as f:
            data = f.read()
    else:
        data = _read_all(fd)
    if not data.startswith(_FILE_MAGIC):
        raise ValueError("not a traffic_lab durable log (bad magic)")
    line_end = data.find(b"\n", len(_FILE_MAGIC))
    if line_end < 0:
        raise ValueError("not a traffic_lab durable log (no header)")
    contents = _header(data[len(_FILE_MAGIC) : line_end])
    at = line_end + 1
    end = len(data)
    while at < end:
        if end - at < _HEAD.size:
            break
        magic, length, crc = _HEAD.unpack_from(data, at)
        start = at + _HEAD.size
        payload = data[start : start + length]
        if magic != _RECORD_MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            break
        number = len(contents.records) + len(contents.bad_records)
        try:
            contents.records.append(_decode_record(payload))
        except ValueError as exc:
            contents.bad_records.append((number, str(exc)))
        at = start + length
    contents.torn_bytes = end - at
    return contents


def _header(line: bytes) -> LogContents:
    try:
        header: Any = json.loads(line)
    except (ValueError, RecursionError):
        raise ValueError("malformed header (not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError("malformed header (not a JSON object)")
    writer_id: Any = header.get("writer_id")
    segment: Any = header.get("segment")
    fingerprint: Any = header.get("fingerprint", "")
    if not is_writer_id(writer_id):
        raise ValueError(f"malformed header (writer_id {preview(writer_id)} is not a writer id)")
    if not is_segment(segment):
        raise ValueError(f"malformed header (segment {preview(segment)} is not a segment)")
    if fingerprint is None:
        fingerprint = ""  # a matcher with a custom function has none
    if not isinstance(fingerprint, str):
        raise ValueError("malformed header (fingerprint is not text)")
    return LogContents(writer_id=writer_id, segment=segment, fingerprint=fingerprint)


def _read_all(fd: int) -> bytes:
    chunks = []
    at = 0
    while chunk := os.pread(fd, 1 << 24, at):
        chunks.append(chunk)
        at += len(chunk)
    return b"".join(chunks)


def claim_log(path: str) -> int | None:
    """The open, locked fd of a dead writer's log segment; None if it is live, or not a
    regular file (never followed nor opened then)."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError:  # gone; or a symlink (ELOOP), a FIFO without writer...: not a segment
        return None
    try:
        # Still the file at ``path`` once locked: else folded and deleted by someone meanwhile.
        if (
            stat.S_ISREG(os.fstat(fd).st_mode)
            and try_lock(fd)
            and os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        ):
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None
