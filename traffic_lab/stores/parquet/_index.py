"""Helpers of ParquetCache's index: recorded order, 64-bit key prefixes, row groups served, and
the LRU maps that keep what was read."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...exchange import Exchange
from .schema import RowReader

__all__ = ["LRU", "Group", "chunks", "hex_prefix64", "recorded_order"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# pyarrow arrays and chunked arrays, as the stubs type them too narrowly for these uses.
_Column = Any


def recorded_order(ts: _Column, seqs: _Column, writer_parts: Sequence[_Column]) -> _Column:
    """Positions that sort rows by (started_at, writer_id, writer_seq)."""
    if len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1])):
        return np.arange(len(ts))  # files in time order that do not overlap: already sorted
    writers = pa.chunked_array(writer_parts, pa.string()).combine_chunks()
    encoded: _Column = pc.dictionary_encode(writers)
    names = encoded.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(np.array(names, dtype=object))] = np.arange(len(names))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    return np.lexsort((seqs, codes, ts))


def chunks(column: _Column) -> list[_Column]:
    """The arrays of an array or chunked array (``pa.chunked_array`` of chunked arrays would
    convert them through Python objects)."""
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def hex_prefix64(keys: _Column) -> _Column:
    """The first 16 hex digits of each key as uint64, or None unless all are 32 hex digits."""
    n = len(keys)
    if n == 0 or keys.null_count:
        return None
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int32)[keys.offset : keys.offset + n + 1]
    if not np.array_equal(np.diff(offsets), np.full(n, 32, dtype=np.int32)):
        return None
    data = np.frombuffer(keys.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + 32 * n]
    prefixes = np.ascontiguousarray(data.reshape(n, 32)[:, :16]).tobytes()
    try:
        # int(key[:16], 16) for every key at once; lookups compute the same.
        raw = bytes.fromhex(prefixes.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    if len(raw) != 8 * n:  # fromhex skips whitespace: such keys are not plain hex
        return None
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


class Group:
    """One row group read for lookups: rows decoded one at a time until it proves busy."""

    __slots__ = ("_blobs", "_hits", "_rows", "_table", "_where", "nbytes")

    #: Lookups into one row group before all its rows are decoded at once (a sequential
    #: replay pays ~3 µs a row that way; a random one pays for one row, ~40 µs).
    DECODE_ALL_AFTER = 8

    def __init__(self, table: pa.Table, blobs: Callable[[str], bytes], where: str) -> None:
        self._table = table
        self._blobs = blobs
        self._where = where
        self._rows: RowReader | None = None
        self._hits = 0
        # Decoded Python objects take about twice the Arrow size.
        self.nbytes = 3 * table.nbytes

    def exchange(self, i: int, *, read: bool = True) -> Exchange:
        """Row ``i``. ``read=False``: only from rows already decoded, with no blob file to read
        (else ``BlockingIOError``: decoding a row alone costs more than handing it to a thread)."""
        rows = self._rows
        if not read:
            if rows is None or not rows.in_memory(i):
                raise BlockingIOError("the row is not decoded in memory")
            return rows.exchange(i)
        if rows is None:
            self._hits += 1
            if self._hits < self.DECODE_ALL_AFTER:
                return RowReader(self._table.slice(i, 1), self._blobs, self._where).exchange(0)
            rows = self._rows = RowReader(self._table, self._blobs, self._where)
        return rows.exchange(i)


class LRU(Generic[K, V]):
    """A thread-safe map keeping its most recently used values up to a total ``size`` (1 a
    value by default); the value last put is always kept."""

    def __init__(self, limit: int, size: Callable[[V], int] = lambda _: 1) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit
        self._size = size
        self._total = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self._size(old)
            self._items[key] = value
            self._total += self._size(value)
            while self._total > self._limit and len(self._items) > 1:
                self._total -= self._size(self._items.popitem(last=False)[1])
