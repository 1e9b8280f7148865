"""The durable log: what ``durable=True`` writers append to before ``put()`` returns.

Each writer appends to its own segment ``_traffic_lab/logs/<writer_id>-<segment>.log``, holding
the exchanges of one buffer, deleted once they are published. A live writer holds a kernel lock
(``_locks``) on its segment, dropped when the process dies: a segment that can be locked is a
dead writer's, and whoever finds it folds it into Parquet.

Format: ``TLLOG2\n``, a JSON header line, then records: ``b"TLR2"``, the payload's length and
CRC-32 (little-endian u32), the payload (fixed fields, the lengths of the variable ones, then
their bytes; see ``docs/capture-format.md``). Each record is one ``write()``; one cut short by a
crash fails its checks and is ignored (its ``put()`` never returned). A dead writer's segment is
untrusted input: its header and every record are validated, bad records reported and the rest
kept. Segments of the first format (``TLLOG1``, ``TLR1`` records: the parts as a JSON array) are
still read.
"""

from __future__ import annotations

import itertools
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

_FILE_MAGIC = b"TLLOG2\n"
_FILE_MAGICS = (_FILE_MAGIC, b"TLLOG1\n")  # written, still read
_RECORD_MAGIC = b"TLR2"
_JSON_MAGIC = b"TLR1"  # the first format's records
_HEAD = struct.Struct("<4sII")
# seq, started_at and elapsed (µs), status (0: none), flags (1: truncated, 2: an error), and
# the numbers of request headers, response headers and tags.
_FIXED = struct.Struct("<QqqHBIII")
_U32 = struct.Struct("<I")
_NONE = type(None)
# The types of a record's 16 parts, in order (see encode_record).
_PARTS: tuple[type | tuple[type, ...], ...] = (
    int, str, str, list, int, int, (int, _NONE), str, str, list,
    (str, _NONE), (str, _NONE), (dict, _NONE), bool, str, int,
)  # fmt: skip


def _latin1_pairs(headers: tuple[tuple[bytes, bytes], ...]) -> list[list[str]]:
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]


def encode_binary_record(seq: int, exchange: Exchange, key: str) -> bytes:
    """One framed log record for ``exchange``, as writers append them: its fixed fields, then
    the lengths (u32) and bytes of method, URL, reason, HTTP version, key, the error's type and
    message if any, tag names and values, header names and values (request, then response),
    request and response body."""
    error = exchange.error
    request_headers, response_headers, tags = (
        exchange.request_headers,
        exchange.response_headers,
        exchange.tags,
    )
    fields = [
        exchange.method.encode(),
        exchange.url.encode(),
        exchange.reason_phrase.encode(),
        exchange.http_version.encode(),
        key.encode(),
    ]
    if error is not None:
        fields += (error.type.encode(), error.message.encode())
    if tags:
        fields += [text.encode() for text in itertools.chain.from_iterable(tags.items())]
    fields += itertools.chain.from_iterable(request_headers)
    fields += itertools.chain.from_iterable(response_headers)
    fields += (exchange.request_body, exchange.response_body)
    fixed = _FIXED.pack(
        seq,
        (exchange.started_at - EPOCH) // ONE_US,
        exchange.elapsed // ONE_US,
        exchange.status_code or 0,
        exchange.truncated | (error is not None) << 1,
        len(request_headers),
        len(response_headers),
        len(tags),
    )
    lengths = struct.pack(f"<{len(fields)}I", *map(len, fields))
    payload = b"".join((fixed, lengths, *fields))
    return _HEAD.pack(_RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_record(payload: bytes) -> tuple[int, Exchange, str]:
    """One record's (seq, exchange, key); ``ValueError`` saying what is wrong with it."""
    if len(payload) < _FIXED.size:
        raise ValueError("record too short")
    seq, started, elapsed, status, flags, n_request, n_response, n_tags = _FIXED.unpack_from(
        payload
    )
    if seq >= 2**63 or flags > 3:
        raise ValueError(f"sequence number {seq} or flags {flags} out of range")
    count = 7 + 2 * ((flags >> 1) + n_tags + n_request + n_response)
    at = _FIXED.size + 4 * count
    if at > len(payload):
        raise ValueError(f"{count} fields cannot fit in the record")
    lengths = struct.unpack_from(f"<{count}I", payload, _FIXED.size)
    if at + sum(lengths) != len(payload):
        raise ValueError("the field lengths do not add up to the record's")
    fields = []
    for n in lengths:
        fields.append(payload[at : at + n])
        at += n
    method, url, reason, version, key = (f.decode() for f in fields[:5])
    i = 5
    error = None
    if flags & 2:
        error = RecordedError(fields[5].decode(), fields[6].decode())
        i = 7
    texts = [f.decode() for f in fields[i : i + 2 * n_tags]]
    i += 2 * n_tags
    headers = list(zip(fields[i:-2:2], fields[i + 1 : -2 : 2], strict=True))
    exchange = _exchange(
        started,
        elapsed,
        method=method,
        url=url,
        request_headers=headers[:n_request],
        request_body=fields[-2],
        status_code=status or None,
        reason_phrase=reason,
        http_version=version,
        response_headers=headers[n_request:],
        response_body=fields[-1],
        error=error,
        tags=dict(zip(texts[::2], texts[1::2], strict=True)) or None,
        truncated=bool(flags & 1),
    )
    return seq, exchange, key


def _exchange(started_us: int, elapsed_us: int, **fields: Any) -> Exchange:
    """A logged exchange, if ``put()`` would take it; else ``ValueError``."""
    try:
        exchange = Exchange(
            started_at=EPOCH + timedelta(microseconds=started_us),
            elapsed=timedelta(microseconds=elapsed_us),
            **fields,
        )
    except OverflowError as exc:
        raise ValueError(f"a time out of range ({exc})") from None
    check_storable(exchange)
    return exchange


def encode_record(seq: int, exchange: Exchange, key: str) -> bytes:
    """A record of the first format (``TLR1``), which segments may still hold."""
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
    return _HEAD.pack(_JSON_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_json_record(payload: bytes) -> tuple[int, Exchange, str]:
    """A ``TLR1`` record's (seq, exchange, key); ``ValueError`` saying what is wrong with it."""
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
    exchange = _exchange(
        p[4],
        p[5],
        method=p[1],
        url=p[2],
        request_headers=_headers(p[3]),
        request_body=payload[meta_end:request_end],
        status_code=p[6],
        reason_phrase=p[7],
        http_version=p[8],
        response_headers=_headers(p[9]),
        response_body=payload[request_end:],
        error=error,
        tags=tags or None,
        truncated=p[13],
    )
    return p[0], exchange, p[14]


_DECODERS = {_RECORD_MAGIC: _decode_record, _JSON_MAGIC: _decode_json_record}


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
    if not data.startswith(_FILE_MAGICS):
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
        decode = _DECODERS.get(magic)
        if decode is None or len(payload) != length or zlib.crc32(payload) != crc:
            break
        number = len(contents.records) + len(contents.bad_records)
        try:
            contents.records.append(decode(payload))
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
