"""Buffered, atomic, optionally durable writing of a capture (see ``docs/capture-format.md``).

:class:`CaptureWriter` publishes its buffer as one file per day partition when ``flush_rows``,
``flush_bytes`` or ``flush_seconds`` says so, and on ``flush()``/``close()``. With
``durable=True`` every ``put()`` is first appended to the writer's log segment (``_log``), which
the next store to open the capture folds into Parquet if the writer dies; an object store cannot
append, so there every ``put()`` is published as its own file instead.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import StoreError, preview
from ._fs import CaptureFS
from ._log import DurableLog, encode_binary_record
from ._options import ParquetOptions
from ._validate import is_digest, is_segment, is_writer_id
from .schema import (
    CHUNKS_FIELD,
    EPOCH,
    KEY_HASH_COLUMN,
    KEY_HASH_FIELD,
    META_TIME_RANGE,
    ONE_US,
    chunks_column,
    exchanges_to_table,
    key_hash_column,
    new_writer_id,
)

if TYPE_CHECKING:
    from ...exchange import Exchange
    from ...matching import Matcher
    from ...redaction import Redactor

__all__ = [
    "BLOBS_DIR",
    "INTERNAL_DIR",
    "LOGS_DIR",
    "CaptureWriter",
    "Entry",
    "blob_path",
    "compression_by_column",
    "data_file_name",
    "day_of",
    "group_rows",
    "write_entries",
    "write_table",
]

INTERNAL_DIR = "_traffic_lab"
LOGS_DIR = f"{INTERNAL_DIR}/logs"
BLOBS_DIR = f"{INTERNAL_DIR}/blobs"
_DAY_US = 86_400_000_000
# Low-cardinality columns worth dictionary-encoding; bodies, URLs and keys are not.
_DICTIONARY_COLUMNS = [
    "writer_id",
    "request_method",
    "request_scheme",
    "request_host",
    "request_port",
    "request_content_type",
    "response_status",
    "response_reason",
    "response_http_version",
    "response_content_type",
    "response_content_encoding",
    "error_type",
    "request_headers.list.item.name",
    "response_headers.list.item.name",
]
_STATISTICS_COLUMNS = [
    "started_at",
    "writer_id",
    "writer_seq",
    "request_method",
    "request_host",
    "request_key",
    "response_status",
]


def day_of(started_us: int) -> int:
    """The ``day`` partition value (``YYYYMMDD`` as an int) of a time in µs since the epoch.

    Examples
    --------
    >>> day_of(0)
    19700101
    """
    return _day_label(started_us // _DAY_US)


@functools.cache
def _day_label(days: int) -> int:
    d = date(1970, 1, 1) + timedelta(days=days)
    return d.year * 10000 + d.month * 100 + d.day


def data_file_name(day: int, writer_id: str, segment: int) -> str:
    """The relative path of a writer's file for one flush and day; ``ValueError`` if invalid."""
    if not is_writer_id(writer_id) or not is_segment(segment):
        raise ValueError(f"invalid writer id {preview(writer_id)} or segment {preview(segment)}")
    return f"day={day}/part-{writer_id}-{segment:06d}.parquet"


def blob_path(digest: str) -> str:
    """The relative path of a blob; ``ValueError`` unless ``digest`` is a sha256 hex digest."""
    if not is_digest(digest):
        raise ValueError(f"invalid blob reference {preview(digest)}: not a sha256 hex digest")
    return f"{BLOBS_DIR}/{digest[:2]}/{digest}"


@dataclass(slots=True)
class Entry:
    """One buffered exchange: its time (µs), writer sequence number, key if known, and the
    redactor it went through if any (see ``Matcher.key``)."""

    started_us: int
    seq: int
    exchange: Exchange
    key: str | None
    redacted_by: Redactor | None = None


@dataclass
class _Batch:
    segment: int
    entries: list[Entry]
    log: DurableLog | None = None
    names: set[str] = field(default_factory=set)


PublishHook = Callable[[str, Sequence[Entry], int], None]


def write_entries(
    cfs: CaptureFS,
    entries: Sequence[Entry],
    *,
    matcher: Matcher,
    writer_id: str,
    segment: int,
    options: ParquetOptions,
    sync: bool,
    on_publish: PublishHook | None = None,
    known_blobs: set[str] | None = None,
    names: Callable[[int], str] | None = None,
    fingerprint: str | None = None,
) -> list[tuple[Entry, Exception]]:
    """Publish entries as one Parquet file per day (a name that exists is left alone).

    Returns the entries that could not be converted to Arrow (for a reason ``check_storable``
    did not foresee), each with its error: the others are published all the same. A failure to
    write (a full disk...) raises, and nothing is dropped.
    """
    ordered = sorted(entries, key=lambda e: (e.started_us, e.seq))
    by_day: dict[int, list[Entry]] = {}
    for entry in ordered:
        by_day.setdefault(day_of(entry.started_us), []).append(entry)
    blobs = known_blobs if known_blobs is not None else set()

    def store_blob(body: bytes) -> str:
        digest = hashlib.sha256(body).hexdigest()
        if digest not in blobs:
            cfs.publish(blob_path(digest), body, sync=sync)
            blobs.add(digest)
        return digest

    def convert(day_entries: Sequence[Entry]) -> pa.Table:
        table = entries_table(
            day_entries,
            matcher,
            writer_id,
            blob_threshold=options.blob_threshold,
            store_blob=store_blob,
            fingerprint=fingerprint,
        )
        meta = dict(table.schema.metadata or {})
        meta[META_TIME_RANGE] = f"{day_entries[0].started_us},{day_entries[-1].started_us}".encode()
        return table.replace_schema_metadata(meta)

    all_dropped = []
    for day, day_entries in sorted(by_day.items()):
        table, kept, dropped = _convert(day_entries, convert)
        all_dropped.extend(dropped)
        if table is None:
            continue
        rel = names(day) if names is not None else data_file_name(day, writer_id, segment)
        group = group_rows(table, options)
        write_table(cfs, rel, table, options, sync=sync, row_group_size=group)
        if on_publish is not None:
            on_publish(rel, kept, group)
    return all_dropped


def entries_table(
    entries: Sequence[Entry], matcher: Matcher, writer_id: str, **options: Any
) -> pa.Table:
    """Entries as rows of the capture schema (``exchanges_to_table`` ``options``); keys that
    were not known yet are computed and kept."""
    for e in entries:
        if e.key is None:
            e.key = matcher.key(e.exchange, redacted_by=e.redacted_by)
    exchanges = [e.exchange for e in entries]
    table = exchanges_to_table(
        exchanges,
        matcher,
        keys=[e.key for e in entries],  # type: ignore[misc]  # all set above
        writer_id=writer_id,
        seqs=[e.seq for e in entries],
        **options,
    )
    return table.append_column(CHUNKS_FIELD, chunks_column(exchanges))


def _convert(
    entries: list[Entry], convert: Callable[[Sequence[Entry]], pa.Table]
) -> tuple[pa.Table | None, list[Entry], list[tuple[Entry, Exception]]]:
    """``convert(entries)``; if an entry breaks it, the others' table, and those left out with
    their errors. Errors writing blobs (a full disk) are raised."""
    try:
        return convert(entries), entries, []
    except (StoreError, OSError):
        raise
    except Exception:  # any conversion failure: find the entries that cause it
        pass
    kept: list[Entry] = []
    dropped: list[tuple[Entry, Exception]] = []
    for entry in entries:
        try:
            convert([entry])
        except (StoreError, OSError):
            raise
        except Exception as exc:
            dropped.append((entry, exc))
        else:
            kept.append(entry)
    return (convert(kept) if kept else None), kept, dropped


def write_table(
    cfs: CaptureFS,
    rel: str,
    table: pa.Table,
    options: ParquetOptions,
    *,
    sync: bool = True,
    row_group_size: int | None = None,
) -> bool:
    """Publish one table as a Parquet file at ``rel``; False if that name exists.

    Row groups hold ``row_group_size`` rows (default: :func:`group_rows`). The
    ``request_key_hash`` column is computed here from ``request_key``, for every file written
    (new rows and compacted ones alike), never carried over from what was read.
    """
    if row_group_size is None:
        row_group_size = group_rows(table, options)
    if table.schema.get_field_index(KEY_HASH_COLUMN) >= 0:
        table = table.drop_columns([KEY_HASH_COLUMN])
    table = table.append_column(KEY_HASH_FIELD, key_hash_column(table))
    codec: Any = compression_by_column(table.schema, options.compression)

    def write(where: str | pa.NativeFile) -> None:
        pq.write_table(
            table,
            where,
            row_group_size=row_group_size,
            compression=codec,
            use_dictionary=_DICTIONARY_COLUMNS,  # type: ignore[arg-type]  # a list is allowed
            write_statistics=_STATISTICS_COLUMNS,
            data_page_size=256 * 1024,
        )

    if cfs.local:
        return cfs.publish(rel, write, sync=sync)
    sink = pa.BufferOutputStream()
    write(sink)
    return cfs.publish(rel, sink.getvalue().to_pybytes())


def group_rows(table: pa.Table, options: ParquetOptions) -> int:
    """Rows per row group for ``table``: ``options.row_group_size``, fewer when the rows are
    large, so that a group holds about ``options.row_group_bytes`` of row data (what reading
    one exchange back decodes, at most).

    Examples
    --------
    >>> import pyarrow as pa
    >>> from traffic_lab.stores.parquet import ParquetOptions
    >>> small = pa.table({"b": [b"x" * 100] * 1000})  # ~104 bytes a row
    >>> group_rows(small, ParquetOptions(row_group_bytes=10_500))
    100
    >>> group_rows(small, ParquetOptions(row_group_size=64))
    64
    """
    if table.num_rows == 0 or options.row_group_bytes is None:
        return options.row_group_size
    per_row = max(1.0, table.nbytes / table.num_rows)
    return max(1, min(options.row_group_size, int(options.row_group_bytes // per_row)))


def compression_by_column(schema: pa.Schema, codec: str) -> dict[str, str]:
    """``pq.write_table``'s ``compression=`` for a capture file: ``codec`` for every column
    but ``request_key_hash``, stored plain (hashes do not compress, and a cache opening 10M
    rows decodes them ~2x faster)."""
    compression = dict.fromkeys(_leaf_paths(schema), codec)
    compression[KEY_HASH_COLUMN] = "none"
    return compression


@functools.lru_cache(maxsize=8)
def _leaf_paths(schema: pa.Schema) -> tuple[str, ...]:
    """The Parquet column paths of a schema (what per-column write options name)."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    meta = pq.read_metadata(pa.BufferReader(sink.getvalue()))
    return tuple(meta.schema.column(i).path for i in range(meta.num_columns))


class CaptureWriter:
    """Buffers exchanges and publishes them (thread-safe; a background thread publishes full
    buffers and enforces ``flush_seconds``)."""

    def __init__(
        self,
        cfs: CaptureFS,
        matcher: Matcher,
        options: ParquetOptions,
        *,
        on_publish: PublishHook | None = None,
        on_dropped: Callable[[Sequence[Entry]], None] | None = None,
    ) -> None:
        self.cfs = cfs
        self.matcher = matcher
        self.writer_id = new_writer_id()
        self.options = options
        self.durable = options.durable
        self.on_publish = on_publish
        self.on_dropped = on_dropped
        self._per_put = options.durable and not cfs.local
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._buffer: list[Entry] = []
        self._buffer_bytes = 0
        self._buffer_since = 0.0
        self._log: DurableLog | None = None
        self._segment = 0
        self._next_seq = 0
        self._queue: deque[_Batch] = deque()
        self._inflight: list[_Batch] = []
        self._error: BaseException | None = None
        self._dropped: list[tuple[Entry, Exception]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._blobs: set[str] = set()
        self._fingerprint = matcher.fingerprint or ""

    # -- writing -----------------------------------------------------------------------------------
    def put(
        self,
        exchange: Exchange,
        key: str | None = None,
        on_buffered: Callable[[Entry], None] | None = None,
        redacted_by: Redactor | None = None,
    ) -> int:
        """Buffer (and if durable, log) a checked exchange; its writer sequence number.

        ``on_buffered(entry)`` runs under the writer's lock, before the entry can be published.
        """
        started_us = (exchange.started_at - EPOCH) // ONE_US
        if self.durable and key is None:
            key = self.matcher.key(exchange, redacted_by=redacted_by)
        size = len(exchange.request_body) + len(exchange.response_body) + 512
        with self._cond:
            if self._closed:
                raise StoreError("the store is closed", path=self.cfs.url)
            self._raise_error()
            seq = self._next_seq
            if self.durable and not self._per_put:
                assert key is not None
                record = encode_binary_record(seq, exchange, key)
                if self._log is None:
                    self._log = self._open_log()
                self._log.append(record)
            self._next_seq += 1
            if not self._buffer:
                self._buffer_since = time.monotonic()
                # Kept alive until closed, so buffered exchanges are published at exit even
                # when the program dropped the store without closing it.
                _LIVE_WRITERS.add(self)
            entry = Entry(started_us, seq, exchange, key, redacted_by)
            self._buffer.append(entry)
            if on_buffered is not None:
                on_buffered(entry)
            self._buffer_bytes += size
            if (
                self._per_put
                or len(self._buffer) >= self.options.flush_rows
                or self._buffer_bytes >= self.options.flush_bytes
            ):
                self._swap()
                if not self._per_put:
                    self._start_thread()
                    self._cond.notify_all()
                    # Back-pressure: never more than two buffers waiting to be written.
                    while len(self._queue) > 2 and self._error is None:
                        self._cond.wait()
            elif self.options.flush_seconds is not None:
                self._start_thread()
        if self._per_put:
            self.flush()
        return seq

    def _open_log(self) -> DurableLog:
        self.cfs.makedirs(LOGS_DIR)
        path = self.cfs.full(f"{LOGS_DIR}/{self.writer_id}-{self._segment:06d}.log")
        return DurableLog(
            path, writer_id=self.writer_id, segment=self._segment, fingerprint=self._fingerprint
        )

    def _swap(self) -> None:
        """Move the buffer to the write queue (lock held)."""
        if not self._buffer:
            return
        batch = _Batch(self._segment, self._buffer, self._log)
        days = {e.started_us // _DAY_US for e in self._buffer}
        batch.names = {data_file_name(_day_label(d), self.writer_id, self._segment) for d in days}
        self._queue.append(batch)
        self._buffer = []
        self._buffer_bytes = 0
        self._log = None
        self._segment += 1

    def _raise_error(self) -> None:
        error = self._error
        if error is not None:
            self._error = None
            if isinstance(error, StoreError):
                raise error
            raise StoreError(f"writing failed: {error}", path=self.cfs.url) from error

    def _write_one(self) -> bool:
        with self._cond:
            if not self._queue:
                return False
            batch = self._queue.popleft()
            self._inflight.append(batch)
        try:
            dropped = write_entries(
                self.cfs,
                batch.entries,
                matcher=self.matcher,
                writer_id=self.writer_id,
                segment=batch.segment,
                options=self.options,
                sync=True,
                on_publish=self.on_publish,
                known_blobs=self._blobs,
            )
            if dropped and self.on_dropped is not None:
                self.on_dropped([entry for entry, _ in dropped])
            # Published (but for entries that can never be): the log has done its work.
            if batch.log is not None:
                batch.log.delete()
        except BaseException as exc:
            with self._cond:
                self._inflight.remove(batch)
                self._queue.appendleft(batch)
                self._error = exc
                self._cond.notify_all()
            return False
        with self._cond:
            self._inflight.remove(batch)
            self._dropped.extend(dropped)
            self._cond.notify_all()
        return True

    def flush(self) -> None:
        """Publish every buffered exchange before returning.

        A batch whose writing failed before (in the background) is tried again. Raises
        ``StoreError`` if writing fails now, or if exchanges had to be dropped since the last
        flush (they could not be converted; the others were published).
        """
        with self._cond:
            self._swap()
            self._error = None  # what failed before is retried now
            # One batch at a time: converting two at once, both threads only wait on the GIL.
            while self._inflight and self._error is None:
                self._cond.wait()
        while self._write_one():
            pass
        with self._cond:
            while self._inflight and self._error is None:
                self._cond.wait()
            self._raise_error()
            self._raise_dropped()

    def _raise_dropped(self) -> None:
        """Report exchanges dropped by a flush (lock held)."""
        dropped, self._dropped = self._dropped, []
        if not dropped:
            return
        n = len(dropped)
        details = "; ".join(
            f"{e.exchange.method} {preview(e.exchange.url)}: {type(exc).__name__}: "
            f"{preview(str(exc), 200)}"
            for e, exc in dropped[:3]
        )
        raise StoreError(
            f"{n} exchange{'s' if n != 1 else ''} could not be written and "
            f"{'were' if n != 1 else 'was'} dropped, the others were published ({details})",
            path=self.cfs.url,
        )

    def close(self) -> None:
        """Flush, then stop the background thread. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
                if self._log is not None:
                    self._log.delete()
                    self._log = None
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join()
            _LIVE_WRITERS.discard(self)

    # -- what readers need -------------------------------------------------------------------------
    def pending(self) -> tuple[list[Entry], set[str]]:
        """Entries not yet published, and the file names they will be published under."""
        with self._lock:
            batches = [*self._inflight, *self._queue]
            entries = [e for b in batches for e in b.entries]
            entries.extend(self._buffer)
            names = set().union(*(b.names for b in batches)) if batches else set()
        return entries, names

    # -- background flushing -----------------------------------------------------------------------
    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=_flush_loop,
                args=(weakref.ref(self),),
                name=f"traffic_lab-flush-{self.writer_id}",
                daemon=True,
            )
            self._thread.start()

    def _next_action(self) -> float | None:
        """Under the lock: swap an expired buffer; seconds to wait, or None to stop."""
        if self._closed:
            return None
        if self._queue and self._error is None:
            return 0.0
        if self._buffer and self.options.flush_seconds is not None:
            due = self._buffer_since + self.options.flush_seconds - time.monotonic()
            if due <= 0:
                self._swap()
                return 0.0
            return due
        return 3600.0


def _flush_loop(ref: weakref.ReferenceType[CaptureWriter]) -> None:
    while True:
        writer = ref()
        if writer is None:
            return
        with writer._cond:
            wait = writer._next_action()
            if wait is None:
                return
            if wait > 0:
                writer._cond.wait(min(wait, 1.0))
                continue
        writer._write_one()
        del writer


_LIVE_WRITERS: set[CaptureWriter] = set()


@atexit.register
def _close_live_writers() -> None:
    # A store the program forgot to close still publishes what it buffered.
    for writer in list(_LIVE_WRITERS):
        try:
            writer.close()
        except Exception:  # nothing sensible left to do with it at exit
            pass
