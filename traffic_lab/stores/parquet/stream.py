"""ParquetStream: a capture opened for ordered iteration (a ReadWriteStream).

Every file is in recorded order, so iteration is a k-way merge; a file is opened when the merge
reaches its first row time and read a batch at a time, so memory is bounded by the number of
files that overlap in time, not by the capture's size.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ...errors import CorruptCaptureError, StoreNotFoundError
from .._pandas_views import ReplayViews
from ._store import ParquetBase
from .reader import ATTEMPTS, Capture, DataFile
from .schema import EPOCH, ONE_US, RowReader
from .writer import Entry

if TYPE_CHECKING:
    from ...exchange import Exchange

__all__ = ["ParquetStream", "iter_capture"]

OrderKey = tuple[int, str, int]


class _FileCursor:
    """Rows of one sorted file, a batch at a time; exchanges built only for rows yielded."""

    def __init__(self, capture: Capture, f: DataFile, batch_size: int) -> None:
        self._capture = capture
        self._batches = capture.iter_batches(f, batch_size=batch_size)
        self._rel = f.rel
        self.keys: list[OrderKey] = []
        self._table: pa.Table | None = None
        self._rows: RowReader | None = None
        self.pos = 0

    def advance_batch(self) -> bool:
        try:
            return self._advance_batch()
        except CorruptCaptureError as exc:  # unreadable past this point: the file ends here
            self._capture.reject(self._rel, exc)
            return False

    def _advance_batch(self) -> bool:
        for table in self._batches:
            if table.num_rows == 0:
                continue
            us: list[Any] = table.column("started_at").cast(pa.int64()).to_pylist()
            writers: list[Any] = table.column("writer_id").to_pylist()
            seqs: list[Any] = table.column("writer_seq").to_pylist()
            self.keys = list(zip(us, writers, seqs, strict=True))
            self._table = table
            self._rows = None
            self.pos = 0
            return True
        return False

    def exchange(self, i: int) -> Exchange:
        if self._rows is None:
            assert self._table is not None
            where = self._capture.cfs.display(self._rel)
            self._rows = RowReader(self._table, self._capture.read_blob, where)
        return self._rows.exchange(i)


class _PendingCursor:
    def __init__(self, entries: Sequence[Entry], writer_id: str) -> None:
        ordered = sorted(entries, key=lambda e: (e.started_us, e.seq))
        self.keys = [(e.started_us, writer_id, e.seq) for e in ordered]
        self._items = [e.exchange for e in ordered]
        self.pos = 0
        self._done = False

    def advance_batch(self) -> bool:
        if self._done or not self.keys:
            return False
        self._done = True
        return True

    def exchange(self, i: int) -> Exchange:
        return self._items[i]


def _merge(
    capture: Capture,
    files: Sequence[DataFile],
    pending: Sequence[Entry],
    writer_id: str,
    *,
    after: OrderKey | None,
    low_us: int | None,
    skip: int,
    batch_size: int,
) -> Iterator[tuple[OrderKey, Exchange]]:
    todo = sorted(
        (f for f in files if low_us is None or f.last_us >= low_us),
        key=lambda f: (f.first_us, f.rel),
    )
    todo.reverse()  # pop() from the end: the earliest file
    heap: list[tuple[OrderKey, int, _FileCursor | _PendingCursor]] = []
    counter = 0

    def push(cursor: _FileCursor | _PendingCursor) -> None:
        nonlocal counter
        while True:
            while cursor.pos < len(cursor.keys):
                key = cursor.keys[cursor.pos]
                if (low_us is not None and key[0] < low_us) or (after is not None and key <= after):
                    cursor.pos += 1
                    continue
                heapq.heappush(heap, (key, counter, cursor))
                counter += 1
                return
            if not cursor.advance_batch():
                return

    if pending:
        push(_PendingCursor(pending, writer_id))
    while heap or todo:
        while todo and (not heap or todo[-1].first_us <= heap[0][0][0]):
            push(_FileCursor(capture, todo.pop(), batch_size))
        if not heap:
            continue
        key, _, cursor = heapq.heappop(heap)
        try:
            exchange = cursor.exchange(cursor.pos)
        except CorruptCaptureError as exc:  # this row only: named, and left out
            capture.bad_entry(exc)
        else:
            if skip:
                skip -= 1
            else:
                yield key, exchange
        cursor.pos += 1
        push(cursor)


def iter_capture(
    store: ParquetBase,
    *,
    offset: int = 0,
    since: datetime | None = None,
    batch_size: int = 1024,
) -> Iterator[Exchange]:
    """Exchanges of a store's capture in recorded order (files plus its own buffered rows);
    if compaction deletes a file meanwhile, iteration carries on from a fresh listing."""
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    since_us = (since - EPOCH) // ONE_US if since is not None else None
    last: OrderKey | None = None
    skip = offset
    for _attempt in range(ATTEMPTS):
        entries, names = store._writer.pending()
        store.refresh()
        cutoff = store._cutoff
        low = max((t for t in (since_us, cutoff) if t is not None), default=None)
        files = [f for f in store._files if f.rel not in names]
        try:
            for key, exchange in _merge(
                store._capture,
                files,
                entries,
                store._writer.writer_id,
                after=last,
                low_us=low,
                skip=skip,
                batch_size=batch_size,
            ):
                skip = 0
                last = key
                yield exchange
            return
        except StoreNotFoundError:
            if last is None and skip:
                continue  # nothing yielded yet: start again, still skipping
            skip = 0
    raise StoreNotFoundError("files kept disappearing while reading", path=store.path)


class ParquetStream(ParquetBase, ReplayViews):
    """A capture opened as a ReadWriteStream: ``put`` and iteration in recorded order.

    Recorded order is ``started_at``, then writer id, then the writer's sequence number. The
    same folder can be opened as a :class:`ParquetCache` at the same time.

    Parameters
    ----------
    path
        A local folder or an object-store URL (``"s3://bucket/prefix"``). The standard AWS
        environment variables are honoured.
    matcher
        Computes the ``request_key`` column of the rows this store writes.
    options, **settings
        How the capture is opened and written: a
        :class:`~traffic_lab.stores.parquet.ParquetOptions`, or its fields as keyword arguments
        (``durable=True``, ``flush_seconds=None``...), where each is documented once. Not both.

    Examples
    --------
    >>> import tempfile, traffic_lab as tl
    >>> folder = tempfile.mkdtemp()
    >>> with tl.ParquetStream(folder) as stream:
    ...     for i in range(3):
    ...         stream.put(tl.Exchange("GET", f"https://a.example/{i}", status_code=200))
    >>> [r.url.path for r in tl.ParquetStream(folder).requests()]
    ['/0', '/1', '/2']
    """

    def exchanges(self, *, offset: int = 0, since: datetime | None = None) -> Iterator[Exchange]:
        """The exchanges in recorded order, from the ``offset``-th one or from time ``since``.

        Sees files published by other writers up to the moment iteration starts, and this
        store's own exchanges, buffered or not.
        """
        return iter_capture(self, offset=offset, since=since)

    def __len__(self) -> int:
        entries, names = self._writer.pending()
        with self._state_lock:
            files, cutoff = self._files, self._cutoff
        if cutoff is not None and any(f.first_us < cutoff <= f.last_us for f in files):
            # The cutoff falls inside a file: count the rows after it.
            total = self._read_published(["started_at"], exclude=names)[0].num_rows
        else:
            total = sum(
                f.num_rows
                for f in files
                if f.rel not in names and (cutoff is None or f.first_us >= cutoff)
            )
        return total + sum(1 for e in entries if cutoff is None or e.started_us >= cutoff)

    def __iter__(self) -> Iterator[Exchange]:
        return self.exchanges()
