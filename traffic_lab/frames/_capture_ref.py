"""Where a frame's rows came from (:class:`CaptureRef`), and reading them again."""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exchange import Exchange
from ..protocols import Enumerable, exchanges_of, matcher_of
from ..stores.parquet import SCHEMA, ParquetBase, ParquetStream, exchanges_to_table
from ..stores.parquet.schema import new_writer_id
from ._local_scan import BODY_NAMES, read_local
from .where import Where

if TYPE_CHECKING:
    from ..matching import Matcher

__all__ = [
    "CAPTURE_COLUMNS",
    "IDENTITY",
    "SOURCE_ATTR",
    "CaptureRef",
    "open_source",
]

#: ``df.attrs`` key holding the :class:`CaptureRef` of a frame's capture.
SOURCE_ATTR = "traffic_lab.source"
#: Every column of the capture schema, in schema order.
CAPTURE_COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
#: The columns that identify a row of a capture.
IDENTITY = ("writer_id", "writer_seq")


class CaptureRef:
    """A reference to the capture a frame came from, to fetch columns it did not load.

    Rows are identified by ``(writer_id, writer_seq)``, unique within a capture and kept by
    compaction. A source is a store with ``to_arrow(columns=, filter=)`` (kept by reference), a
    capture path (opened read-only when first needed), or in-memory exchanges: a snapshot taken
    when the frame was made, numbered ``writer_seq`` 0..n-1 under a fresh ``writer_id``.
    Copying a frame copies the reference, never the capture (pandas deep-copies ``attrs``).
    Pickling keeps the location of a Parquet capture and drops an in-memory snapshot.
    """

    __slots__ = ("_filesystem", "_matcher", "_path", "_snapshot", "_store", "_writer_id")

    def __init__(
        self,
        *,
        store: Any = None,
        path: str | None = None,
        filesystem: Any = None,
        snapshot: Sequence[Exchange] | None = None,
        matcher: Matcher | None = None,
    ) -> None:
        self._store = store
        self._path = path
        self._filesystem = filesystem
        self._snapshot = list(snapshot) if snapshot is not None else None
        self._matcher = matcher
        self._writer_id = f"memory-{new_writer_id()}" if snapshot is not None else ""

    def __copy__(self, *_: object) -> CaptureRef:
        return self

    __deepcopy__ = __copy__

    def __reduce__(self) -> tuple[Any, ...]:
        return (_from_path, (self.location,))

    def __repr__(self) -> str:
        return f"<CaptureRef {self.describe()}>"

    @property
    def location(self) -> str | None:
        """The capture's path or URL, when it is a Parquet capture."""
        if self._path is not None:
            return self._path
        path = getattr(self._store, "path", None)
        return path if isinstance(path, str) else None

    @property
    def detached(self) -> bool:
        """True for a reference that lost its source (an unpickled memory snapshot)."""
        return self._store is None and self._path is None and self._snapshot is None

    def describe(self) -> str:
        """A short description for messages."""
        if self._snapshot is not None:
            return f"{len(self._snapshot)} in-memory exchanges ({self._writer_id})"
        if self._store is not None:
            return repr(self._store)
        if self._path is not None:
            return repr(self._path)
        return "a detached source (unpickled from memory; its exchanges are gone)"

    @property
    def partitioned(self) -> bool:
        """Whether reads go through a Parquet dataset that has the ``day`` partition column."""
        return self._path is not None or isinstance(self._store, ParquetBase)

    def store(self) -> Any:
        """The store to read from (opening a capture path read-only the first time)."""
        if self._store is None and self._path is not None:
            self._store = ParquetStream(
                self._path, filesystem=self._filesystem, create=False, recover=False
            )
        if self._store is None:
            raise LookupError(f"cannot read from {self.describe()}")
        return self._store

    @property
    def matcher(self) -> Matcher | None:
        """The matcher of the source store (or of the memory store a snapshot came from)."""
        return self._matcher if self._snapshot is not None else matcher_of(self.store())

    def exchanges(self) -> Iterator[Exchange]:
        """Every exchange of the source, in recorded order (bounded memory for Parquet)."""
        return iter(self._snapshot if self._snapshot is not None else self.store().exchanges())

    def read(
        self,
        columns: Sequence[str],
        where: pc.Expression | None,
        *,
        writers: Collection[str] | Mapping[str, tuple[int, int]] | None = None,
        wheres: Sequence[Where] | None = None,
        dictionaries: Collection[str] = (),
    ) -> pa.Table:
        """Rows matching ``where``, in recorded order, with ``columns`` (capture names);
        ``writers``: ``where`` keeps only rows of these writer ids (a Parquet store then opens
        only their files). ``wheres``: the same filter as :class:`~traffic_lab.Where` objects,
        if it is one; a capture on local disk is then read by DuckDB (see
        :mod:`traffic_lab.frames._local_scan`), unless bodies are asked for.
        ``dictionaries``: text columns a Parquet store may return as Arrow dictionaries (read
        as the files store them); other sources, and DuckDB, return them as text."""
        columns = list(dict.fromkeys(columns))
        if self._snapshot is not None:
            return self._snapshot_table(range(len(self._snapshot)), columns, where)
        store = self.store()
        if wheres and isinstance(store, ParquetBase) and not BODY_NAMES & set(columns):
            local = store.local_files()
            if local is not None:
                import duckdb

                try:
                    return read_local(*local, wheres, columns)
                except duckdb.Error:
                    pass  # a damaged or vanished file: the store's reader names it
        if isinstance(store, ParquetBase):
            table = store.to_arrow(
                columns=columns, filter=where, writers=writers, dictionaries=dictionaries
            )
        else:
            table = store.to_arrow(columns=columns, filter=where)
        if not isinstance(table, pa.Table):
            raise TypeError(f"{type(store).__name__}.to_arrow() returned {type(table).__name__}")
        return table.select(columns)

    def fetch(self, keys: pa.Table, columns: Sequence[str]) -> pa.Table:
        """``columns`` for the rows named by ``keys`` (``writer_id``, ``writer_seq``), in order.

        Raises ``LookupError`` when a row is no longer in the capture.
        """
        columns = [c for c in dict.fromkeys(columns) if c not in IDENTITY]
        if keys.num_rows == 0:
            return SCHEMA.empty_table().select(columns)
        if self._snapshot is None:
            where, writers = _identity_filter(keys)
            found = self.read([*IDENTITY, *columns], where, writers=writers)
            found_keys, table = found.select(list(IDENTITY)), found.select(columns)
        else:
            # Rows of another capture, or numbers out of range, are reported missing by _align.
            seqs = keys.column("writer_seq").to_pylist()
            unique = sorted({s for s in seqs if s is not None and 0 <= s < len(self._snapshot)})
            table = self._snapshot_table(unique, columns, None)
            found_keys = pa.table(
                {"writer_id": [self._writer_id] * len(unique), "writer_seq": unique}
            )
        return _align(keys, found_keys, table, self.describe())

    def _snapshot_table(
        self, seqs: Sequence[int], columns: Sequence[str], where: pc.Expression | None
    ) -> pa.Table:
        exchanges = [self._snapshot[s] for s in seqs] if self._snapshot is not None else []
        # Keys cost a matcher call per exchange: computed only when asked for.
        needs_keys = "request_key" in columns or "request_key" in str(where)
        table = exchanges_to_table(
            exchanges,
            self._matcher,
            keys=None if needs_keys else [""] * len(exchanges),
            writer_id=self._writer_id,
            seqs=list(seqs),
        )
        return (table.filter(where) if where is not None else table).select(list(columns))


def _from_path(path: str | None) -> CaptureRef:
    return CaptureRef(path=path)


def open_source(source: Any, *, filesystem: Any = None) -> CaptureRef:
    """A :class:`CaptureRef` for anything ``to_pandas`` accepts (see its docstring)."""
    if isinstance(source, CaptureRef):
        return source
    if isinstance(source, str | os.PathLike):
        return CaptureRef(path=os.fspath(source), filesystem=filesystem)
    if callable(getattr(source, "to_arrow", None)):
        return CaptureRef(store=source)
    if isinstance(source, bytes | bytearray) or not isinstance(source, Enumerable | Iterable):
        raise TypeError(
            "expected a capture path, a store (to_arrow() or exchanges()) or exchanges, "
            f"not {type(source).__name__}"
        )
    items = list(exchanges_of(source))
    bad = next((x for x in items if not isinstance(x, Exchange)), None)
    if bad is not None:
        raise TypeError(f"expected traffic_lab.Exchange items, got {type(bad).__name__}")
    return CaptureRef(snapshot=items, matcher=matcher_of(source))


def _identity_filter(
    keys: pa.Table,
) -> tuple[pc.Expression, dict[str, tuple[int, int]]]:
    """Per writer, a ``writer_seq`` range (for row-group pruning), and membership if sparse;
    and those ranges by writer id (a Parquet store opens only the files that may hold them)."""
    grouped = keys.group_by("writer_id").aggregate(
        [("writer_seq", "min"), ("writer_seq", "max"), ("writer_seq", "distinct")]
    )
    seq = pc.field("writer_seq")
    parts: list[pc.Expression] = []
    ranges: dict[str, tuple[int, int]] = {}
    for row in grouped.to_pylist():
        writer, low, high = row["writer_id"], row["writer_seq_min"], row["writer_seq_max"]
        distinct = row["writer_seq_distinct"]
        part = (pc.field("writer_id") == writer) & (seq >= low) & (seq <= high)
        parts.append(part & seq.isin(distinct) if len(distinct) != high - low + 1 else part)
        if isinstance(writer, str) and low is not None:
            ranges[writer] = (low, high)
    return functools.reduce(operator.or_, parts), ranges


def _numbered(keys: pa.Table, name: str) -> pa.Table:
    """The identity columns of ``keys`` and ``name``: each row's position."""
    arrays: list[Any] = [
        keys.column("writer_id").cast(pa.string()),
        keys.column("writer_seq").cast(pa.int64()),
        pa.array(np.arange(keys.num_rows, dtype=np.int64)),
    ]
    return pa.Table.from_arrays(arrays, names=[*IDENTITY, name])


def _align(keys: pa.Table, found_keys: pa.Table, found: pa.Table, where: str) -> pa.Table:
    """Rows of ``found`` (identified by ``found_keys``) in the order of ``keys``."""
    # A row appears once in a capture; keep the first should a source repeat one anyway.
    first = _numbered(found_keys, "src").group_by(list(IDENTITY)).aggregate([("src", "min")])
    joined = _numbered(keys, "pos").join(first, keys=list(IDENTITY), join_type="left outer")
    joined = joined.sort_by("pos")
    src = joined.column("src_min")
    if src.null_count:
        missing = joined.filter(src.is_null()).slice(0, 3).to_pylist()
        rows = ", ".join(f"({r['writer_id']}, {r['writer_seq']})" for r in missing)
        raise LookupError(
            f"{src.null_count} rows of the frame are no longer in {where} "
            f"(writer_id, writer_seq): {rows}"
        )
    return found.take(src)
