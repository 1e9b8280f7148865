"""Helpers of ParquetCache's index: recorded order, 64-bit key hashes, row groups served, and
the LRU maps that keep what was read."""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...exchange import Exchange
from .schema import RowReader

__all__ = [
    "LRU",
    "UNSERVABLE",
    "Group",
    "KeyHashIndex",
    "build_key_hash_index",
    "chunks",
    "recorded_order",
]

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


#: The hash given to rows that cannot answer a request (never a candidate: such rows fail the
#: check of a hit).
UNSERVABLE = np.iinfo(np.int64).min
_SIGN = 1 << 63
_U64 = (1 << 64) - 1


class KeyHashIndex:
    """Rows by the 64-bit hash of their request key, 16 bytes a row, keys not held: the caller
    compares the full key of a candidate row on every hit, so a hash that lies never answers.

    Rows have positions 0, 1... in recorded order (but for equal start times). ``packed`` holds,
    sorted, each row's hash's top bits with its position in the low bits (one uint64 sort at
    open, faster than an argsort); ``hashes`` the full hashes by position.
    """

    __slots__ = ("_base", "_bits", "_hashes", "_packed", "_rids", "_tied", "size")

    def __init__(
        self,
        packed: _Column,
        bits: int,
        hashes: _Column,
        base: int,
        rids: _Column | None,
        tied: _Column,
    ) -> None:
        # Memoryviews: bisect and indexing on them yield Python ints without numpy scalars.
        self._packed: Any = memoryview(packed)
        self._bits = bits
        self._hashes: Any = memoryview(hashes)
        self._base = base
        self._rids: Any = None if rids is None else memoryview(rids)
        self._tied: Any = memoryview(tied)
        self.size = len(hashes)

    def candidates(self, h: int) -> tuple[list[int], bool]:
        """Row ids whose key hash is ``h``, the latest in recorded order first; and whether
        that one shares its start time with the row before it (then only (``writer_id``,
        ``writer_seq``) order them: the caller orders them itself)."""
        bits, packed = self._bits, self._packed
        top = ((h & _U64) ^ _SIGN) >> bits
        lo = bisect.bisect_left(packed, top << bits)
        hi = bisect.bisect_left(packed, (top + 1) << bits, lo)
        mask = (1 << bits) - 1
        hashes = self._hashes
        found = [p for i in range(hi - 1, lo - 1, -1) if hashes[(p := packed[i] & mask)] == h]
        if not found:
            return [], False
        i = bisect.bisect_left(self._tied, found[0] - 1)
        tied = i < len(self._tied) and self._tied[i] == found[0] - 1
        rids = self._rids
        if rids is None:
            return [self._base + p for p in found], tied
        return [rids[p] for p in found], tied

    def rids(self) -> _Column:
        """The row ids of the rows that can answer."""
        rows = np.flatnonzero(np.asarray(self._hashes) != UNSERVABLE)
        if self._rids is None:
            return rows + self._base
        return np.asarray(self._rids)[rows]


def build_key_hash_index(hashes: _Column, started: _Column | None, base: int) -> KeyHashIndex:
    """The index of rows ``base``, ``base + 1``... given their key hashes (:data:`UNSERVABLE`
    for rows that cannot answer), in the order of their files (each in recorded order), and
    their start times (µs) unless the files follow each other in time."""
    n = len(hashes)
    rids = None
    tied = np.zeros(0, dtype=np.int64)
    if started is not None:
        if n > 1 and not bool(np.all(started[1:] >= started[:-1])):  # files overlap in time
            # Sorted runs (one a file): a stable argsort (timsort) merges them fast.
            order = np.argsort(started, kind="stable")
            hashes, started = hashes[order], started[order]
            rids = order + base
            del order
        # Positions are now recorded order but among equal start times: those are noted.
        tied = np.flatnonzero(started[1:] == started[:-1])
    bits = max(1, (n - 1).bit_length())
    shift = np.uint64(bits)
    packed = hashes.view(np.uint64) ^ np.uint64(_SIGN)  # signed order as unsigned
    packed >>= shift
    packed <<= shift
    step = 1 << 20
    for start in range(0, n, step):  # positions a slice at a time: no n-sized temporary
        stop = min(n, start + step)
        packed[start:stop] |= np.arange(start, stop, dtype=np.uint64)
    packed.sort()
    return KeyHashIndex(packed, bits, hashes, base, rids, tied)


class Group:
    """One row group read for lookups: rows decoded one at a time until it proves busy."""

    __slots__ = ("_blobs", "_hits", "_keys", "_rows", "_table", "_where", "nbytes")

    #: Lookups into one row group before all its rows are decoded at once (a sequential
    #: replay pays ~3 µs a row that way; a random one pays for one row, ~40 µs).
    DECODE_ALL_AFTER = 8

    def __init__(self, table: pa.Table, blobs: Callable[[str], bytes], where: str) -> None:
        self._table = table
        self._blobs = blobs
        self._where = where
        self._rows: RowReader | None = None
        self._keys: list[Any] | None = None
        self._hits = 0
        # Decoded Python objects take about twice the Arrow size.
        self.nbytes = 3 * table.nbytes

    def key(self, i: int) -> str | None:
        """The ``request_key`` of row ``i`` as stored."""
        if self._keys is None:
            self._keys = self._table.column("request_key").to_pylist()
        return self._keys[i]  # type: ignore[no-any-return]

    def servable(self, i: int) -> bool:
        """Whether row ``i`` can answer a request (a response, not truncated)."""
        t = self._table
        return (
            bool(t.column("response_status")[i].is_valid) and not t.column("truncated")[i].as_py()
        )

    def order(self, i: int) -> tuple[int, str, int]:
        """Row ``i``'s place in recorded order: (started_at in µs, writer_id, writer_seq)."""
        t = self._table
        started = t.column("started_at")[i].cast(pa.int64()).as_py()
        return started, t.column("writer_id")[i].as_py(), t.column("writer_seq")[i].as_py()

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
