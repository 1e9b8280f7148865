"""ParquetCache: a capture opened for lookup by request (a ReadWriteCache).

Opening reads only the index columns of every file, never the bodies. Keys of 32 hex digits (the
default matcher's) are indexed by their first 64 bits in a sorted array (the full key checked on
a hit); other keys, and rows added one by one, go to a dict. A hit reads the row group holding
the row and builds the exchange, each kept in an LRU.
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
import pyarrow.compute as pc

from ...errors import CorruptCaptureError, StoreNotFoundError
from ...exchange import Exchange
from ..memory import _FROM_CACHE_EXT
from ._index import LRU, Group, _Column, chunks, hex_prefix64, recorded_order
from ._store import ParquetBase
from .reader import ATTEMPTS, ORDER_COLUMNS, DataFile
from .schema import SCHEMA_VERSION, _HeaderColumn, row_name
from .stream import iter_capture
from .writer import Entry

__all__ = ["ParquetCache"]

_INDEX_COLUMNS = ["request_key", *ORDER_COLUMNS, "response_status", "truncated"]
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
    started: np.ndarray[Any, np.dtype[np.int64]]
    seqs: np.ndarray[Any, np.dtype[np.int64]]
    writers: _Column
    visible: int


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

    def _setup(self) -> None:
        self._next_base = 0
        self._generation = 0
        self._pending_rows: dict[int, Entry] = {}
        self._cache_bytes = self.options.cache_bytes
        self._cache_exchanges = self.options.cache_exchanges
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
                reg = self._add_registration(
                    f,
                    np.array([e.started_us for e in entries], np.int64),
                    np.array([e.seq for e in entries], np.int64),
                    pa.repeat(pa.scalar(self._writer.writer_id, pa.string()), n),
                )
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
        started: np.ndarray[Any, np.dtype[np.int64]],
        seqs: np.ndarray[Any, np.dtype[np.int64]],
        writers: _Column,
    ) -> _Registered:
        starts = list(itertools.accumulate(f.row_groups[:-1], initial=0))
        reg = _Registered(f, self._next_base, starts, started, seqs, writers, f.num_rows)
        self._next_base += max(f.num_rows, 1)
        self._registered[f.rel] = reg
        self._bases.append(reg.base)
        self._regs.append(reg)
        return reg

    def _order(self, rid: int) -> tuple[int, str, int]:
        if rid < 0:
            entry = self._pending_rows[rid]
            return entry.started_us, self._writer.writer_id, entry.seq
        reg = self._reg(rid)
        i = rid - reg.base
        return int(reg.started[i]), str(reg.writers[i].as_py()), int(reg.seqs[i])

    def _reg(self, rid: int) -> _Registered:
        return self._regs[bisect.bisect_right(self._bases, rid) - 1]

    def _index_row(self, key: str, rid: int) -> None:
        old = self._find(key)
        if old is None or old == rid or self._order(old) <= self._order(rid):
            self._index[key] = rid

    def refresh(self) -> None:
        """See files published by other writers since the store opened (or last refreshed);
        after a :meth:`compact` or a :meth:`clear` by any process the index is rebuilt."""
        for _ in range(ATTEMPTS):
            generation = self._generation
            files, cutoff = self._capture.list_files()
            with self._state_lock:
                live = {f.rel for f in files}
                rebuild = cutoff != self._index_cutoff or any(
                    rel not in live for rel in self._registered
                )
                new = files if rebuild else [f for f in files if f.rel not in self._registered]
            try:
                loaded = self._load(new, cutoff)
            except StoreNotFoundError:
                continue  # compacted meanwhile: list again
            unreadable = {f.rel for f in new} - {f.rel for f, _, _ in loaded}
            files = [f for f in files if f.rel not in unreadable]
            with self._state_lock:
                if rebuild and generation != self._generation:
                    continue  # this store published a file meanwhile: list again
                if rebuild:
                    self._reset(cutoff)
                self._apply(
                    [item for item in loaded if item[0].rel not in self._registered], cutoff
                )
                self._files, self._cutoff = files, cutoff
                return
        raise StoreNotFoundError("files kept changing while indexing", path=self.path)

    def _reset(self, cutoff: int | None) -> None:
        """An empty index hiding rows before ``cutoff``; buffered rows are indexed again."""
        pending = [e for _, e in sorted(self._pending_rows.items(), reverse=True)]
        # Rows indexed one by one (puts, refreshes) in a dict; the bulk of a capture opened at
        # once in sorted 64-bit key prefixes (16 bytes a key instead of ~150 in a dict).
        self._index: dict[str, int] = {}
        self._hashes: _Column = None
        self._hash_ids: _Column = None
        self._hash_keys: _Column = None
        self._hash_key_data: _Column = None
        self._registered: dict[str, _Registered] = {}
        self._bases: list[int] = []
        self._regs: list[_Registered] = []
        self._pending_rows = {}
        self._index_cutoff = cutoff
        self._groups: LRU[tuple[str, int], Group] = LRU(self._cache_bytes, lambda g: g.nbytes)
        self._decoded: LRU[int, Exchange] = LRU(self._cache_exchanges)
        for entry in pending:
            self._buffered(entry)

    def _load(
        self, files: Sequence[DataFile], cutoff: int | None
    ) -> list[tuple[DataFile, pa.Table, _Column]]:
        def load(f: DataFile) -> tuple[DataFile, pa.Table, _Column] | None:
            fingerprint = self.matcher.fingerprint
            try:
                if fingerprint is not None and f.fingerprint == fingerprint and f.complete:
                    table = self._capture.read_columns(f, _INDEX_COLUMNS)
                    return f, table, table.column("request_key")
                table = self._capture.read_columns(f, [*_INDEX_COLUMNS, *_REQUEST_COLUMNS])
            except CorruptCaptureError as exc:
                self._capture.reject(f.rel, exc)
                return None
            return f, table, self._recompute_keys(f, table)

        return [item for item in self._capture.map(load, files) if item is not None]

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

    def _apply(
        self,
        loaded: Sequence[tuple[DataFile, pa.Table, _Column]],
        cutoff: int | None,
    ) -> None:
        id_parts: list[Any] = []
        key_parts: list[Any] = []
        ts_parts: list[Any] = []
        seq_parts: list[Any] = []
        writer_parts: list[Any] = []
        for f, table, keys in loaded:
            started = table.column("started_at").cast(pa.int64()).to_numpy()
            seqs = table.column("writer_seq").to_numpy()
            writers: _Column = table.column("writer_id")
            reg = self._add_registration(f, started, seqs, writers)
            truncated: _Column = table.column("truncated")
            servable: _Column = pc.and_(
                pc.and_(table.column("response_status").is_valid(), keys.is_valid()),
                pc.invert(truncated.fill_null(False)),
            )
            if cutoff is not None:
                visible = started >= cutoff
                reg.visible = int(visible.sum())
                servable = pc.and_(servable, pa.array(visible))
            if isinstance(servable, pa.ChunkedArray):
                servable = servable.combine_chunks()
            ids = np.nonzero(servable.to_numpy(zero_copy_only=False))[0]
            taken = pa.array(ids)
            id_parts.append(ids + reg.base)
            key_parts.extend(chunks(keys.take(taken)))
            ts_parts.append(started[ids])
            seq_parts.append(seqs[ids])
            writer_parts.extend(chunks(writers.take(taken)))
        if not id_parts:
            return
        all_ids = np.concatenate(id_parts)
        all_keys: _Column = pa.chunked_array(key_parts, pa.string()).combine_chunks()
        ts = np.concatenate(ts_parts)
        order = recorded_order(ts, np.concatenate(seq_parts), writer_parts)
        if not self._index and self._hashes is None:
            hashes = hex_prefix64(all_keys)
            if hashes is not None:
                self._build_hashed(hashes, all_keys, all_ids, order)
                return
        sorted_keys: list[Any] = all_keys.take(pa.array(order)).to_pylist()
        for key, rid in zip(sorted_keys, all_ids[order].tolist(), strict=True):
            self._index_row(key, rid)

    def _build_hashed(self, hashes: _Column, keys: _Column, ids: _Column, order: _Column) -> None:
        """The bulk index: keys' 64-bit hex prefixes, sorted, with the latest row of each."""
        ordered = hashes[order]
        by_hash = np.argsort(ordered, kind="stable")  # equal hashes stay in recorded order
        sorted_hashes = ordered[by_hash]
        rows = order[by_hash]  # positions into keys/ids
        same = sorted_hashes[1:] == sorted_hashes[:-1]
        if same.any():
            # Equal prefixes are nearly always the same key recorded again; a true collision
            # (different keys) sends those keys to the dict instead.
            k = keys.take(pa.array(rows))
            equal = pc.equal(k.slice(1), k.slice(0, len(k) - 1)).to_numpy(zero_copy_only=False)
            clash = same & ~equal
            if clash.any():
                bad = np.isin(sorted_hashes, sorted_hashes[1:][clash])
                moved = np.sort(rows[bad])  # back in recorded order
                for key, rid in zip(
                    keys.take(pa.array(order[moved])).to_pylist(),
                    ids[order[moved]].tolist(),
                    strict=True,
                ):
                    self._index_row(key, rid)
                keep = ~bad
                sorted_hashes, rows = sorted_hashes[keep], rows[keep]
                same = sorted_hashes[1:] == sorted_hashes[:-1]
        last = np.ones(len(sorted_hashes), dtype=bool)
        last[:-1] = ~same
        hash_keys = keys.take(pa.array(rows[last]))
        self._hash_keys = hash_keys
        # Memoryviews: bisect and indexing on them yield Python ints without numpy scalars.
        prefixes: Any = np.ascontiguousarray(sorted_hashes[last])
        row_ids: Any = np.ascontiguousarray(ids[rows[last]], dtype=np.int64)
        self._hashes = memoryview(prefixes)
        self._hash_ids = memoryview(row_ids)
        n = len(hash_keys)
        offsets = np.frombuffer(hash_keys.buffers()[1], dtype=np.int32)
        start = int(offsets[hash_keys.offset]) if n else 0
        data = hash_keys.buffers()[2]
        self._hash_key_data = memoryview(data)[start : start + 32 * n] if n else memoryview(b"")

    def _find(self, key: str) -> int | None:
        """The row id answering ``key``, or None."""
        rid = self._index.get(key)
        if rid is not None or self._hashes is None:
            return rid
        if len(key) != 32:
            return None
        try:
            h = int(key[:16], 16)
        except ValueError:
            return None
        hashes = self._hashes
        i = bisect.bisect_left(hashes, h)
        if i < len(hashes) and hashes[i] == h:
            at = 32 * i
            if self._hash_key_data[at : at + 32].tobytes() == key.encode():
                return int(self._hash_ids[i])
        return None

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
        with self._state_lock:
            reg = self._reg(rid)
        local = rid - reg.base
        g = bisect.bisect_right(reg.group_starts, local) - 1
        group_key = (reg.file.rel, g)
        group = self._groups.get(group_key)
        if group is None and not read:
            raise BlockingIOError(f"row {rid} needs a read of {reg.file.rel}")
        if group is None:
            try:
                table = self._capture.read_row_group(reg.file, g)
            except CorruptCaptureError as exc:
                self._capture.reject(reg.file.rel, exc)
                return None
            group = Group(table, self._capture.read_blob, self._cfs.display(reg.file.rel))
            self._groups.put(group_key, group)
        try:
            ex = group.exchange(local - reg.group_starts[g], read=read)
        except CorruptCaptureError as exc:
            self._capture.bad_entry(exc)
            return None
        self._decoded.put(rid, ex)
        return ex

    def lookup(self, request: httpx.Request) -> Exchange | None:
        """The exchange that would answer ``request``, or ``None``."""
        key = self.matcher.key(request)
        rid = self._find(key)
        if rid is None:
            return None
        return self._exchange(rid, key)

    def lookup_nowait(self, request: httpx.Request) -> Exchange | None:
        """:meth:`lookup` from what is in memory: ``BlockingIOError`` when the answer needs a
        file read (the mock server then asks :meth:`lookup` in its worker thread)."""
        key = self.matcher.key(request)
        rid = self._find(key)
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
        rid = self._find(key)
        if rid is None:
            return None
        exchange = self._pending_rows.get(rid) if rid < 0 else None
        if exchange is not None:
            return exchange.exchange.new_response(_FROM_CACHE_EXT)
        cached = self._decoded.get(rid)
        if cached is not None:
            return cached.new_response(_FROM_CACHE_EXT)
        found = await anyio.to_thread.run_sync(self.lookup, request)
        return None if found is None else found.new_response(_FROM_CACHE_EXT)

    def __contains__(self, request: object) -> bool:
        return (
            isinstance(request, httpx.Request) and self._find(self.matcher.key(request)) is not None
        )

    def __len__(self) -> int:
        with self._state_lock:
            return sum(r.visible for r in self._regs) + len(self._pending_rows)

    def keys(self) -> list[str]:
        """The keys that answer requests."""
        with self._state_lock:
            keys = list(self._index)
            if self._hash_keys is not None:
                keys.extend(k for k in self._hash_keys.to_pylist() if k not in self._index)
        return keys

    def exchanges(self) -> Iterator[Exchange]:
        """Every exchange (served or not), in recorded order."""
        return iter_capture(self)

    def __repr__(self) -> str:
        return f"<ParquetCache {self.path!r}: {len(self)} exchanges>"
