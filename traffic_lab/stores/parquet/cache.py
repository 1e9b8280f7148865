"""ParquetCache: a capture opened for lookup by request (a ReadWriteCache).

Opening reads, of every file, the ``request_key_hash`` column (and ``started_at`` where files
overlap in time or a clear cutoff falls inside one): never keys nor bodies. Files without the
column have their keys read and hashed. The hashes go to one sorted array
(:class:`KeyHashIndex`, 16 bytes a row); a hit reads the row group holding the candidate row and
compares its full key, so a miss reads no row data and a hash that lies never answers. Rows
added one by one (puts, refreshes) go to a dict. Row groups read and exchanges built are kept in
LRUs, exchanges served by key for warm hits.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx
import numpy as np
import pyarrow as pa

from ...errors import CorruptCaptureError, StoreNotFoundError
from ...exchange import Exchange
from ..memory import _FROM_CACHE_EXT
from ._index import (
    LRU,
    UNSERVABLE,
    Group,
    KeyHashIndex,
    _Column,
    build_key_hash_index,
    chunks,
    recorded_order,
)
from ._store import ParquetBase
from .reader import ATTEMPTS, ORDER_COLUMNS, DataFile
from .schema import (
    KEY_HASH_COLUMN,
    SCHEMA_VERSION,
    _HeaderColumn,
    key_hash,
    key_hashes,
    row_name,
    servable_rows,
)
from .stream import iter_capture
from .writer import Entry

__all__ = ["ParquetCache"]

_INDEX_COLUMNS = ["request_key", *ORDER_COLUMNS, "response_status", "truncated"]
#: What opening reads of a file whose keys are this store's: no key, no writer id.
_BULK_COLUMNS = ["started_at", "response_status", "truncated"]
#: Keys whose rows were found through the hash index, kept up to this many (then forgotten).
_MEMO_LIMIT = 65_536
_REQUEST_COLUMNS = [
    "request_method",
    "request_url",
    "request_headers",
    "request_body",
    "request_body_blob",
]


@dataclass
class _Registered:
    file: DataFile
    base: int
    group_starts: list[int]
    visible: int
    #: The hash index took this file's ``request_key_hash`` column: each row group read is
    #: checked against its keys.
    stored_hashes: bool = False
    #: The file's keys are recomputed with this store's matcher (another fingerprint).
    recomputed: bool = False


@dataclass
class _Loaded:
    """What opening read of one file: start times (µs), how many rows are visible (after the
    clear cutoff), and the rows that can answer as key hashes (bulk: :data:`UNSERVABLE` for
    the others) or as keys with their writer ids and sequence numbers (one by one)."""

    file: DataFile
    started: np.ndarray[Any, np.dtype[np.int64]] | None
    visible: int
    hashes: np.ndarray[Any, np.dtype[np.int64]] | None = None
    servable: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    keys: _Column = None
    seqs: _Column = None
    writers: _Column = None
    stored: bool = False
    recomputed: bool = False


@dataclass
class _Bulk:
    """Files opened at once: each with its first position, and every row's key hash and
    (if files overlap in time) start time by position (a file in ``max(num_rows, 1)``
    positions)."""

    files: list[tuple[_Loaded, int]]
    hashes: np.ndarray[Any, np.dtype[np.int64]]
    started: np.ndarray[Any, np.dtype[np.int64]] | None


def _copy_hashes(column: _Column, out: np.ndarray[Any, np.dtype[np.int64]]) -> None:
    """A ``request_key_hash`` column into ``out``, a chunk at a time (no concatenated copy),
    nulls as :data:`UNSERVABLE`."""
    at = 0
    for chunk in column.chunks:
        n = len(chunk)
        if chunk.null_count:
            out[at : at + n] = chunk.fill_null(UNSERVABLE).to_numpy()
        else:
            out[at : at + n] = chunk.to_numpy()
        at += n


class ParquetCache(ParquetBase):
    """A capture opened as a ReadWriteCache: ``put``, and ``get`` by request key.

    Exchanges that failed in the transport or were truncated are stored but never served.
    Other stores, threads and processes may write to the same folder; :meth:`refresh` picks up
    what they published. Arguments as for :class:`ParquetStream`; files whose matcher
    fingerprint differs from ``matcher``'s have their keys recomputed from the request columns.

    Examples
    --------
    >>> import tempfile, httpx, traffic_lab as tl
    >>> folder = tempfile.mkdtemp()
    >>> with tl.ParquetCache(folder) as cache:
    ...     cache.put(tl.Exchange.from_httpx(httpx.Request("GET", "https://a.example/x"),
    ...                                      httpx.Response(200, text="hi")))
    >>> cache = tl.ParquetCache(folder)
    >>> cache.get(httpx.Request("GET", "https://a.example/x")).read()
    b'hi'
    >>> cache.get(httpx.Request("GET", "https://a.example/y")) is None
    True
    """

    _keyed_puts = True
    # The key hash and whether files' stored hashes are used: tests force collisions here.
    _key_hash = staticmethod(key_hash)
    _key_hashes = staticmethod(key_hashes)
    _use_stored_hashes = True

    def _setup(self) -> None:
        self._next_base = 0
        self._generation = 0
        self._pending_rows: dict[int, Entry] = {}
        self._cache_bytes = self.options.cache_bytes
        self._cache_exchanges = self.options.cache_exchanges
        # Files whose request_key_hash column disagreed with their keys: hashes computed.
        self._untrusted: set[str] = set()
        self._rebuild_needed = False
        self._reset(None)

    # -- writing -----------------------------------------------------------------------------------
    def _buffered(self, entry: Entry) -> None:
        # Runs under the writer's lock, so it always precedes _published for the same entry.
        ex = entry.exchange
        with self._state_lock:
            cutoff = self._index_cutoff
            if cutoff is not None and entry.started_us < cutoff:
                return
            pid = -(entry.seq + 1)
            self._pending_rows[pid] = entry
            if ex.status_code is not None and not ex.truncated:
                assert entry.key is not None
                self._index_row(entry.key, pid)

    def _published(self, rel: str, entries: Sequence[Entry], row_group_size: int) -> None:
        with self._state_lock:
            self._generation += 1
            reg = self._registered.get(rel)
            if reg is None:
                n = len(entries)
                f = DataFile(
                    rel=rel,
                    day=int(rel.split("/", 1)[0].removeprefix("day=")),
                    size=0,
                    num_rows=n,
                    version=SCHEMA_VERSION,
                    fingerprint=self.matcher.fingerprint or "",
                    writer_id=self._writer.writer_id,
                    first_us=entries[0].started_us,
                    last_us=entries[-1].started_us,
                    row_groups=[min(row_group_size, n - i) for i in range(0, n, row_group_size)],
                )
                reg = self._add_registration(f)
                cutoff = self._index_cutoff
                reg.visible = sum(1 for e in entries if cutoff is None or e.started_us >= cutoff)
            for i, entry in enumerate(entries):
                pid = -(entry.seq + 1)
                if entry.key is not None and self._index.get(entry.key) == pid:
                    self._index[entry.key] = reg.base + i
                self._pending_rows.pop(pid, None)

    def _dropped(self, entries: Sequence[Entry]) -> None:
        # Never written, so never served either.
        with self._state_lock:
            for entry in entries:
                pid = -(entry.seq + 1)
                self._pending_rows.pop(pid, None)
                if entry.key is not None and self._index.get(entry.key) == pid:
                    del self._index[entry.key]

    # -- the index ---------------------------------------------------------------------------------
    def _add_registration(
        self,
        f: DataFile,
        *,
        base: int | None = None,
        stored_hashes: bool = False,
        recomputed: bool = False,
    ) -> _Registered:
        starts = list(itertools.accumulate(f.row_groups[:-1], initial=0))
        if base is None:
            base = self._next_base
            self._next_base += max(f.num_rows, 1)
        reg = _Registered(f, base, starts, f.num_rows, stored_hashes, recomputed)
        self._registered[f.rel] = reg
        self._bases.append(reg.base)
        self._regs.append(reg)
        return reg

    def _order(self, rid: int) -> tuple[int, str, int]:
        if rid < 0:
            entry = self._pending_rows[rid]
            return entry.started_us, self._writer.writer_id, entry.seq
        reg, g, i = self._locate(rid)
        group = self._group(reg, g)
        # An unreadable file (named and left out) orders first: any other row wins over it.
        return (-(1 << 63), "", -1) if group is None else group.order(i)

    def _reg(self, rid: int) -> _Registered:
        return self._regs[bisect.bisect_right(self._bases, rid) - 1]

    def _locate(self, rid: int) -> tuple[_Registered, int, int]:
        """The file, row group and row in the group of a row id."""
        with self._state_lock:
            reg = self._reg(rid)
        local = rid - reg.base
        g = bisect.bisect_right(reg.group_starts, local) - 1
        return reg, g, local - reg.group_starts[g]

    def _index_row(self, key: str, rid: int) -> None:
        old = self._find(key)
        if old is None or old == rid or self._order(old) <= self._order(rid):
            self._index[key] = rid
            self._served.pop(key, None)

    def refresh(self) -> None:
        """See files published by other writers since the store opened (or last refreshed);
        after a :meth:`compact` or a :meth:`clear` by any process the index is rebuilt."""
        for _ in range(ATTEMPTS):
            generation = self._generation
            files, cutoff = self._capture.list_files()
            with self._state_lock:
                live = {f.rel for f in files}
                rebuild = (
                    self._rebuild_needed
                    or cutoff != self._index_cutoff
                    or any(rel not in live for rel in self._registered)
                )
                new = files if rebuild else [f for f in files if f.rel not in self._registered]
                # A capture opened at once goes to the hash index; files seen later, one by one.
                bulk = rebuild or (not self._registered and self._bulk is None)
            try:
                loaded: _Bulk | list[_Loaded]
                if bulk:
                    loaded = self._load_bulk(new, cutoff)
                    read = {item.file.rel for item, _ in loaded.files}
                else:
                    loaded = self._load(new, cutoff)
                    read = {item.file.rel for item in loaded}
            except StoreNotFoundError:
                continue  # compacted meanwhile: list again
            unreadable = {f.rel for f in new} - read
            files = [f for f in files if f.rel not in unreadable]
            with self._state_lock:
                if rebuild and generation != self._generation:
                    continue  # this store published a file meanwhile: list again
                if rebuild:
                    self._reset(cutoff)
                if isinstance(loaded, _Bulk):
                    self._apply_bulk(loaded)
                else:
                    self._apply([i for i in loaded if i.file.rel not in self._registered])
                self._files, self._cutoff = files, cutoff
                return
        raise StoreNotFoundError("files kept changing while indexing", path=self.path)

    def _reset(self, cutoff: int | None) -> None:
        """An empty index hiding rows before ``cutoff``; buffered rows are indexed again."""
        pending = [e for _, e in sorted(self._pending_rows.items(), reverse=True)]
        # Rows indexed one by one (puts, refreshes) in a dict; the bulk of a capture opened at
        # once by key hash (16 bytes a row instead of ~150 a key in a dict).
        self._index: dict[str, int] = {}
        self._bulk: KeyHashIndex | None = None
        self._memo: dict[str, int] = {}
        # Exchanges served from files, by key (bounded like the decoded LRU): warm hits.
        self._served: dict[str, Exchange] = {}
        self._registered: dict[str, _Registered] = {}
        self._bases: list[int] = []
        self._regs: list[_Registered] = []
        self._pending_rows = {}
        self._index_cutoff = cutoff
        self._rebuild_needed = False
        self._groups: LRU[tuple[str, int], Group] = LRU(self._cache_bytes, lambda g: g.nbytes)
        self._decoded: LRU[int, Exchange] = LRU(self._cache_exchanges)
        for entry in pending:
            self._buffered(entry)

    def _load(self, files: Sequence[DataFile], cutoff: int | None) -> list[_Loaded]:
        def load(f: DataFile) -> _Loaded | None:
            try:
                return self._load_file(f, cutoff, bulk=False)
            except CorruptCaptureError as exc:
                self._capture.reject(f.rel, exc)
                return None

        return [item for item in self._capture.map(load, files) if item is not None]

    def _load_bulk(self, files: Sequence[DataFile], cutoff: int | None) -> _Bulk:
        """Every file's key hashes (and start times, if files overlap in time), straight into
        arrays (8 or 16 bytes a row while opening; nothing else kept)."""
        sizes = [max(f.num_rows, 1) for f in files]
        firsts = list(itertools.accumulate(sizes[:-1], initial=0)) if files else []
        total = sum(sizes)
        # Files (sorted by first row time) that do not overlap hold their rows in recorded
        # order one after the other: no start time is needed to order rows of one key. Each hit
        # checks its row against its file's time range (and the clear cutoff).
        overlap = any(a.last_us >= b.first_us for a, b in itertools.pairwise(files))
        need_started = overlap or bool(self._untrusted)
        hashes = np.empty(total, dtype=np.int64)  # every position is written below
        started = np.empty(total, dtype=np.int64) if need_started else None
        filled = np.zeros(len(files), dtype=bool)

        def load(i: int) -> tuple[_Loaded, int] | None:
            f, first = files[i], firsts[i]
            try:
                item = self._load_file(f, cutoff, bulk=True, started=need_started)
            except CorruptCaptureError as exc:
                self._capture.reject(f.rel, exc)
                hashes[first : first + max(f.num_rows, 1)] = UNSERVABLE
                return None
            if item.hashes is not None:
                hashes[first : first + f.num_rows] = item.hashes
                hashes[first + f.num_rows : first + max(f.num_rows, 1)] = UNSERVABLE
            else:
                hashes[first : first + max(f.num_rows, 1)] = UNSERVABLE
            if f.num_rows and started is not None:
                assert item.started is not None
                started[first : first + f.num_rows] = item.started
                filled[i] = True
            item.hashes = item.started = None
            return item, first

        done = self._capture.map(load, range(len(files)))
        if started is not None:
            # Positions of unreadable or empty files take the time before them (no overlap).
            last = int(np.iinfo(np.int64).min)
            for i, (first, size) in enumerate(zip(firsts, sizes, strict=True)):
                if filled[i]:
                    last = int(started[first + size - 1])
                else:
                    started[first : first + size] = last
        return _Bulk([item for item in done if item is not None], hashes, started)

    def _load_file(
        self, f: DataFile, cutoff: int | None, bulk: bool, *, started: bool = True
    ) -> _Loaded:
        """What the index needs of one file; ``started=False`` (bulk, stored hashes): start
        times only where the clear cutoff falls inside the file's time range."""
        fingerprint = self.matcher.fingerprint
        own_keys = fingerprint is not None and f.fingerprint == fingerprint and f.complete
        stored = (
            bulk
            and own_keys
            and self._use_stored_hashes
            and f.key_hashes
            and f.rel not in self._untrusted
        )
        if cutoff is not None and f.first_us < cutoff <= f.last_us:
            started = True  # some rows hidden, some not
        if stored:
            if not started and cutoff is not None and f.last_us < cutoff:
                return _Loaded(f, None, 0, stored=True)  # all cleared
            columns = ["started_at", KEY_HASH_COLUMN] if started else [KEY_HASH_COLUMN]
            # The first row group's hashes are checked against its keys: a column that is
            # wrong throughout (nulls, another hash, copied from other rows) is not used.
            sample = ["request_key", "response_status", "truncated", KEY_HASH_COLUMN]
            table, first = self._capture.read_with_sample(f, columns, sample)
            stored = self._hashes_agree(first.slice(0, 64))
        if stored:
            pass  # read above
        elif bulk and own_keys:
            table = self._capture.read_columns(f, [*_BULK_COLUMNS, "request_key"], once=True)
        elif own_keys:
            table = self._capture.read_columns(f, _INDEX_COLUMNS, once=bulk)
        else:
            table = self._capture.read_columns(f, [*_INDEX_COLUMNS, *_REQUEST_COLUMNS], once=bulk)
        if table.num_rows != f.num_rows:
            where = self._cfs.display(f.rel)
            raise CorruptCaptureError("its rows differ from its footer", path=where)
        times = None
        if "started_at" in table.column_names:
            times = table.column("started_at").cast(pa.int64()).to_numpy()
        visible = None
        if cutoff is not None and times is not None:
            visible = times >= cutoff
            count = int(np.count_nonzero(visible))
        else:  # no cutoff, or it falls outside the file's time range
            count = 0 if cutoff is not None and f.last_us < cutoff else f.num_rows
        item = _Loaded(f, times, count, stored=stored, recomputed=not own_keys)
        if stored:
            hashes = np.empty(f.num_rows, dtype=np.int64)
            _copy_hashes(table.column(KEY_HASH_COLUMN), hashes)
            if visible is not None:
                hashes[~visible] = UNSERVABLE
            item.hashes = hashes
            return item
        keys = table.column("request_key") if own_keys else self._recompute_keys(f, table)
        servable = servable_rows(table) & np.asarray(
            keys.is_valid().to_numpy(zero_copy_only=False), dtype=bool
        )
        if visible is not None:
            servable &= visible
        if bulk:
            hashes = self._key_hashes(keys)
            hashes[~servable] = UNSERVABLE
            item.hashes = hashes
        else:
            item.servable = servable
            item.keys = keys
            item.seqs = table.column("writer_seq").to_numpy()
            item.writers = table.column("writer_id")
        return item

    def _recompute_keys(self, f: DataFile, table: pa.Table) -> _Column:
        where = self._cfs.display(f.rel)
        methods: list[Any] = table.column("request_method").to_pylist()
        urls: list[Any] = table.column("request_url").to_pylist()
        headers = _HeaderColumn(table, "request_headers")
        bodies: list[Any] = table.column("request_body").to_pylist()
        blobs: list[Any] = table.column("request_body_blob").to_pylist()
        keys: list[str | None] = []
        for i, method in enumerate(methods):
            try:
                body = bodies[i] or b""
                if blobs[i] is not None:
                    body = self._capture.read_blob(blobs[i])
                # Only the request parts matter to a matcher; the status is a placeholder.
                request = Exchange(
                    method,
                    urls[i],
                    request_headers=headers.row(i),
                    request_body=body,
                    status_code=0,
                )
                keys.append(self.matcher.key(request))
            except (ValueError, httpx.InvalidURL) as exc:  # never served; named
                self._capture.bad_entry(
                    CorruptCaptureError(f"{row_name(table, i)}: {exc}", path=where)
                )
                keys.append(None)
        return pa.array(keys, pa.string())

    def _apply_bulk(self, bulk: _Bulk) -> None:
        """Index files opened at once by key hash."""
        base = self._next_base
        for item, first in bulk.files:
            if item.file.rel in self._registered:  # published by this store meanwhile
                bulk.hashes[first : first + item.file.num_rows] = UNSERVABLE
                continue
            reg = self._add_registration(
                item.file, base=base + first, stored_hashes=item.stored, recomputed=item.recomputed
            )
            reg.visible = item.visible
        self._next_base = base + len(bulk.hashes)
        if len(bulk.hashes):
            self._bulk = build_key_hash_index(bulk.hashes, bulk.started, base)
        bulk.hashes = bulk.started = None  # type: ignore[assignment]
        # Rows buffered before the rebuild were indexed before these: the latest wins.
        for key, rid in list(self._index.items()):
            found = self._find_bulk(key)
            if found is not None and self._order(found) > self._order(rid):
                del self._index[key]

    def _apply(self, loaded: Sequence[_Loaded]) -> None:
        """Index files seen after the store opened, one row at a time in recorded order."""
        id_parts: list[Any] = []
        key_parts: list[Any] = []
        ts_parts: list[Any] = []
        seq_parts: list[Any] = []
        writer_parts: list[Any] = []
        for item in loaded:
            reg = self._add_registration(item.file, recomputed=item.recomputed)
            reg.visible = item.visible
            assert item.servable is not None
            ids = np.flatnonzero(item.servable)
            taken = pa.array(ids)
            id_parts.append(ids + reg.base)
            key_parts.extend(chunks(item.keys.take(taken)))
            assert item.started is not None
            ts_parts.append(item.started[ids])
            seq_parts.append(item.seqs[ids])
            writer_parts.extend(chunks(item.writers.take(taken)))
        if not id_parts:
            return
        all_ids = np.concatenate(id_parts)
        all_keys: _Column = pa.chunked_array(key_parts, pa.string()).combine_chunks()
        order = recorded_order(np.concatenate(ts_parts), np.concatenate(seq_parts), writer_parts)
        sorted_keys: list[Any] = all_keys.take(pa.array(order)).to_pylist()
        for key, rid in zip(sorted_keys, all_ids[order].tolist(), strict=True):
            self._index_row(key, rid)

    def _find(self, key: str, *, read: bool = True) -> int | None:
        """The row id answering ``key``, or None. ``read=False``: ``BlockingIOError`` where
        the key of a candidate row must be read from a file."""
        rid = self._index.get(key)
        if rid is not None:
            return rid
        if self._bulk is None:
            return None
        rid = self._memo.get(key)
        if rid is not None:
            return rid
        return self._find_bulk(key, read=read)

    def _find_bulk(self, key: str, *, read: bool = True) -> int | None:
        """The latest row of the hash index whose key is ``key`` (the full key compared)."""
        bulk = self._bulk
        if bulk is None:
            return None
        candidates, tied = bulk.candidates(self._key_hash(key))
        if not candidates:
            return None  # a miss: no row data read
        if tied and len(candidates) > 1:
            candidates.sort(key=self._order, reverse=True)
        for rid in candidates:
            if self._row_key(rid, read=read) == key:
                memo = self._memo
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[key] = rid
                return rid
        return None  # another key with the same hash (or a hash that lies)

    def _row_key(self, rid: int, *, read: bool = True) -> str | None:
        """The key of a row, as this store's matcher computes it."""
        reg, g, i = self._locate(rid)
        group = self._group(reg, g, read=read)
        if group is None or not group.servable(i):  # (a hash that lies)
            return None
        started = group.order(i)[0]
        lies = not reg.file.first_us <= started <= reg.file.last_us
        if lies and reg.file.rel not in self._untrusted:  # a time range that lies
            with self._state_lock:
                self._untrusted.add(reg.file.rel)
                self._rebuild_needed = True
        cutoff = self._index_cutoff
        if cutoff is not None and started < cutoff:
            return None
        if not reg.recomputed:
            return group.key(i)
        try:
            return self.matcher.key(group.exchange(i, read=read))
        except CorruptCaptureError:
            return None

    def _group(self, reg: _Registered, g: int, *, read: bool = True) -> Group | None:
        """Row group ``g`` of a file, read once and kept in an LRU; None (the file named and
        left out) when it cannot be read. A group whose key hashes disagree with its keys
        makes the next lookup rebuild the index computing that file's hashes."""
        group_key = (reg.file.rel, g)
        group = self._groups.get(group_key)
        if group is not None:
            return group
        if not read:
            raise BlockingIOError(f"row group {g} of {reg.file.rel} must be read")
        try:
            table = self._capture.read_row_group(reg.file, g)
        except CorruptCaptureError as exc:
            self._capture.reject(reg.file.rel, exc)
            return None
        if reg.stored_hashes and not self._hashes_agree(table):
            with self._state_lock:
                self._untrusted.add(reg.file.rel)
                self._rebuild_needed = True
        group = Group(table, self._capture.read_blob, self._cfs.display(reg.file.rel))
        self._groups.put(group_key, group)
        return group

    def _hashes_agree(self, table: pa.Table) -> bool:
        """Whether a row group's ``request_key_hash`` column is the hash of its keys (null
        exactly where a row cannot answer)."""
        if table.schema.get_field_index(KEY_HASH_COLUMN) < 0:
            return False
        stored: _Column = table.column(KEY_HASH_COLUMN)
        if stored.type != pa.int64():
            return False
        servable = servable_rows(table)
        valid = np.asarray(stored.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if not np.array_equal(valid, servable):
            return False
        values = stored.fill_null(0).to_numpy()
        computed = self._key_hashes(table.column("request_key"))
        return bool(np.array_equal(values[servable], computed[servable]))

    def _settle(self) -> bool:
        """Rebuild the index if a file's hashes proved wrong; whether it was rebuilt."""
        if not self._rebuild_needed:
            return False
        self.refresh()
        return True

    # -- reading -----------------------------------------------------------------------------------
    def _exchange(self, rid: int, key: str) -> Exchange | None:
        for _ in range(ATTEMPTS):
            if rid < 0:
                entry = self._pending_rows.get(rid)
                if entry is not None:
                    return entry.exchange
                # Published meanwhile: the index now points into the file.
            else:
                try:
                    return self._read_row(rid)
                except StoreNotFoundError:  # compacted away: the index points to the new file
                    self.refresh()
            new = self._find(key)
            if new is None:
                return None
            rid = new
        raise StoreNotFoundError("files kept disappearing while reading", path=self.path)

    def _read_row(self, rid: int, *, read: bool = True) -> Exchange | None:
        """The exchange of a row; None (named) when its file or the row cannot be read.

        ``read=False``: from memory only (``BlockingIOError`` where a file must be read).
        """
        ex = self._decoded.get(rid)
        if ex is not None:
            return ex
        reg, g, i = self._locate(rid)
        group = self._group(reg, g, read=read)
        if group is None:
            return None
        try:
            ex = group.exchange(i, read=read)
        except CorruptCaptureError as exc:
            self._capture.bad_entry(exc)
            return None
        self._decoded.put(rid, ex)
        return ex

    def _lookup_key(self, key: str) -> Exchange | None:
        gone = 0
        while True:
            try:
                rid = self._find(key)
            except StoreNotFoundError:  # compacted away: list again
                gone += 1
                if gone == ATTEMPTS:
                    raise StoreNotFoundError(
                        "files kept disappearing while reading", path=self.path
                    ) from None
                self.refresh()
                continue
            # A file's hashes or time range lied: found again without them (each file at most
            # once, so this ends).
            if self._settle():
                continue
            if rid is None:
                return None
            exchange = self._exchange(rid, key)
            if rid >= 0 and exchange is not None:
                served = self._served
                if len(served) >= self._cache_exchanges:
                    served.clear()
                served[key] = exchange
            return exchange

    def lookup(self, request: httpx.Request) -> Exchange | None:
        """The exchange that would answer ``request``, or ``None``."""
        key = self.matcher.key(request)
        exchange = self._served.get(key)  # a warm hit costs what a MemoryCache hit costs
        return exchange if exchange is not None else self._lookup_key(key)

    def lookup_nowait(self, request: httpx.Request) -> Exchange | None:
        """:meth:`lookup` from what is in memory: ``BlockingIOError`` when the answer needs a
        file read (the mock server then asks :meth:`lookup` in its worker thread)."""
        return self._nowait(self.matcher.key(request))

    def _nowait(self, key: str) -> Exchange | None:
        exchange = self._served.get(key)
        if exchange is not None:
            return exchange
        if self._rebuild_needed:
            raise BlockingIOError("the index must be rebuilt")
        rid = self._find(key, read=False)
        if rid is None:
            return None
        if rid < 0:
            entry = self._pending_rows.get(rid)
            if entry is None:  # published meanwhile
                raise BlockingIOError("a buffered row was published")
            return entry.exchange
        return self._read_row(rid, read=False)

    def get(self, request: httpx.Request) -> httpx.Response | None:
        """A fresh response for ``request``, body already read, or ``None`` on a miss."""
        exchange = self.lookup(request)
        return None if exchange is None else exchange.read_response(request, _FROM_CACHE_EXT)

    async def aget(self, request: httpx.Request) -> httpx.Response | None:
        """A fresh, unread response for the async transports: file reads run in a worker thread."""
        key = self.matcher.key(request)
        try:
            found = self._nowait(key)
        except BlockingIOError:
            found = await anyio.to_thread.run_sync(self._lookup_key, key)
        return None if found is None else found.new_response(_FROM_CACHE_EXT)

    def __contains__(self, request: object) -> bool:
        return (
            isinstance(request, httpx.Request)
            and self._lookup_key(self.matcher.key(request)) is not None
        )

    def __len__(self) -> int:
        with self._state_lock:
            return sum(r.visible for r in self._regs) + len(self._pending_rows)

    def keys(self) -> list[str]:
        """The keys that answer requests (the hash index's are read from the files)."""
        for _ in range(ATTEMPTS):
            try:
                return self._keys()
            except StoreNotFoundError:  # compacted meanwhile: the index is rebuilt
                self.refresh()
        raise StoreNotFoundError("files kept disappearing while reading", path=self.path)

    def _keys(self) -> list[str]:
        with self._state_lock:
            keys = dict.fromkeys(self._index)
            bulk, regs = self._bulk, list(self._regs)
        if bulk is not None:
            rids = np.sort(bulk.rids())
            for reg in regs:
                lo, hi = np.searchsorted(rids, [reg.base, reg.base + reg.file.num_rows])
                if lo == hi:
                    continue
                try:
                    item = self._load_file(reg.file, None, bulk=False)
                except CorruptCaptureError as exc:
                    self._capture.reject(reg.file.rel, exc)
                    continue
                taken = pa.array(rids[lo:hi] - reg.base)
                keys.update(dict.fromkeys(item.keys.take(taken).to_pylist()))
        return [k for k in keys if k is not None]

    def exchanges(self) -> Iterator[Exchange]:
        """Every exchange (served or not), in recorded order."""
        return iter_capture(self)

    def __repr__(self) -> str:
        return f"<ParquetCache {self.path!r}: {len(self)} exchanges>"
