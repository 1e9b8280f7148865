"""The durable log: what ``durable=True`` writers append to before ``put()`` returns.

Each writer appends to its own segment file ``_traffic_lab/logs/<writer_id>-<segment>.log``
(no shared mutable file). A segment holds exactly the exchanges of one buffer; when the buffer
has been published as Parquet, the segment is deleted. While a writer lives it holds an
exclusive ``flock`` on its open segment: the kernel drops that lock when the process dies, so a
segment that can be locked belongs to a dead writer and is folded into Parquet by whoever finds
it (no lock file is ever left behind).

Format: a header line ``TLLOG1\\n`` and one JSON line, then records. A record is
``b"TLR1"``, the payload length and the payload's CRC-32 (both little-endian u32), and the
payload: a u32 length, a JSON array of the exchange's parts, then the request and response
bodies. Every record is written with one ``write()`` call; a record cut short by a crash fails its
length or CRC check and is ignored (its ``put()`` never returned).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ...exchange import Exchange, RecordedError

__all__ = ["DurableLog", "LogContents", "claim_log", "read_log"]

_FILE_MAGIC = b"TLLOG1\n"
_RECORD_MAGIC = b"TLR1"
_HEAD = struct.Struct("<4sII")
_U32 = struct.Struct("<I")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


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
        (exchange.started_at - _EPOCH) // _US,
        exchange.elapsed // _US,
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
    (meta_len,) = _U32.unpack_from(payload)
    meta_end = 4 + meta_len
    p = json.loads(payload[4:meta_end])
    request_end = meta_end + p[15]
    error = RecordedError(p[10], p[11]) if p[10] is not None else None
    exchange = Exchange(
        p[1],
        p[2],
        request_headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in p[3]],
        request_body=payload[meta_end:request_end],
        status_code=p[6],
        reason_phrase=p[7],
        http_version=p[8],
        response_headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in p[9]],
        response_body=payload[request_end:],
        started_at=_EPOCH + timedelta(microseconds=p[4]),
        elapsed=timedelta(microseconds=p[5]),
        error=error,
        tags=p[12] or None,
        truncated=bool(p[13]),
    )
    return int(p[0]), exchange, str(p[14])


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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            header = {"writer_id": writer_id, "segment": segment, "fingerprint": fingerprint}
            os.write(fd, _FILE_MAGIC + json.dumps(header).encode() + b"\n")
            os.rename(temp, path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            raise
        self.path = path
        self._fd = fd

    def append(self, record: bytes) -> None:
        """Append one record; once this returns the record survives a crash of the process."""
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        """Flush the segment to disk (for power loss; a process crash needs no sync)."""
        os.fsync(self._fd)

    def delete(self) -> None:
        """Remove the segment (its exchanges are published) and release its lock."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)

    def close(self) -> None:
        """Release the lock, keeping the segment for recovery."""
        os.close(self._fd)


@dataclass
class LogContents:
    """What a log segment holds."""

    writer_id: str
    segment: int
    fingerprint: str
    records: list[tuple[int, Exchange, str]] = field(default_factory=list)
    torn_bytes: int = 0


def read_log(path: str) -> LogContents:
    """Read a log segment; a record cut short at the end is counted in ``torn_bytes``.

    Raises ``ValueError`` when the file is not a traffic_lab log.
    """
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_FILE_MAGIC):
        raise ValueError("not a traffic_lab durable log (bad magic)")
    line_end = data.find(b"\n", len(_FILE_MAGIC))
    if line_end < 0:
        raise ValueError("not a traffic_lab durable log (no header)")
    header = json.loads(data[len(_FILE_MAGIC) : line_end])
    contents = LogContents(
        writer_id=str(header["writer_id"]),
        segment=int(header["segment"]),
        fingerprint=str(header.get("fingerprint") or ""),
    )
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
        contents.records.append(_decode_record(payload))
        at = start + length
    contents.torn_bytes = end - at
    return contents


def claim_log(path: str) -> int | None:
    """Lock a log segment whose writer is gone; the open, locked fd, or None if it is live."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # folded and deleted by someone else meanwhile
        os.close(fd)
        return None
    return fd
