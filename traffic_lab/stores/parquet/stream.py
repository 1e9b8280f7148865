"""ParquetStream: a capture opened for ordered iteration (a ReadWriteStream).

Every file is in recorded order, so iteration is a k-way merge; a file is opened when the merge
reaches its first row time and read a batch at a time, so memory is bounded by the number of
files that overlap in time, not by the capture's size.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
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
Row = tuple[OrderKey, Callable[[], "Exchange"]]  # a row's order key, and how to build it


def _file_rows(capture: Capture, f: DataFile, batch_size: int) -> Iterator[Row]:
    """Rows of one sorted file, a batch at a time (the file ends at an unreadable batch)."""
    where = capture.cfs.display(f.rel)
    try:
        for table in capture.iter_batches(f, batch_size):
            us: list[Any] = table.column("started_at").cast(pa.int64()).to_pylist()
            writers: list[Any] = table.column("writer_id").to_pylist()
            seqs: list[Any] = table.column("writer_seq").to_pylist()
            rows = RowReader(table, capture.read_blob, where)  # decodes on first use
            for i, key in enumerate(zip(us, writers, seqs, strict=True)):
                yield key, functools.partial(rows.exchange, i)
    except CorruptCaptureError as exc:  # unreadable past this point: the file ends here
        capture.reject(f.rel, exc)


def _pending_rows(entries: Sequence[Entry], writer_id: str) -> Iterator[Row]:
    for e in sorted(entries, key=lambda e: (e.started_us, e.seq)):
        yield (e.started_us, writer_id, e.seq), functools.partial(_same, e.exchange)


def _same(exchange: Exchange) -> Exchange:
    return exchange


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
        reverse=True,  # pop() from the end: the earliest file
    )
    heap: list[tuple[OrderKey, int, Callable[[], Exchange], Iterator[Row]]] = []
    counter = itertools.count()

    def push(rows: Iterator[Row]) -> None:
        for key, build in rows:
            if (low_us is None or key[0] >= low_us) and (after is None or key > after):
                heapq.heappush(heap, (key, next(counter), build, rows))
                return

    push(_pending_rows(pending, writer_id))
    while heap or todo:
        while todo and (not heap or todo[-1].first_us <= heap[0][0][0]):
            push(_file_rows(capture, todo.pop(), batch_size))
        if not heap:
            continue
        key, _, build, rows = heapq.heappop(heap)
        try:
            exchange = build()
        except CorruptCaptureError as exc:  # this row only: named, and left out
            capture.bad_entry(exc)
        else:
            if skip:
                skip -= 1
            else:
                yield key, exchange
        push(rows)


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
