"""Where a frame's rows came from, and reading them (or more of their columns) again.

A frame made by :func:`~traffic_lab.frames.to_pandas` keeps a :class:`CaptureRef` in
``df.attrs["traffic_lab.source"]``. Rows are identified by ``(writer_id, writer_seq)``, which is
unique within a capture and never changes (compaction keeps it), so columns a frame did not load
(bodies, headers) are fetched for exactly the rows it holds, however it was filtered or sorted.

Three kinds of source:

- a Parquet store (or any object with ``to_arrow(columns=, filter=)``), kept by reference;
- a capture path, opened read-only (``ParquetStream(path, create=False, recover=False)``) when
  first needed and kept open;
- in-memory exchanges (a MemoryCache, a MemoryStream, any ``exchanges()`` provider, or a list):
  a snapshot of the exchange objects taken when the frame was made, numbered ``writer_seq`` 0..n-1
  under a fresh ``writer_id``. Later puts into the memory store do not change the snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exchange import Exchange
from ..stores.parquet import SCHEMA, exchanges_to_table
from ..stores.parquet.schema import new_writer_id

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
    """A reference to the capture a frame came from (see the module docstring).

    Copying a frame copies the reference, never the capture: ``copy.deepcopy`` returns the same
    object (pandas deep-copies ``attrs`` on most operations). Pickling keeps the location of a
    Parquet capture and drops an in-memory snapshot.
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

    # -- copying ---------------------------------------------------------------------------------
    def __copy__(self) -> CaptureRef:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> CaptureRef:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        location = self.location
        if location is None:
            return (_detached, ())
        return (_from_path, (location,))

    def __repr__(self) -> str:
        return f"<CaptureRef {self.describe()}>"

    # -- what it is ------------------------------------------------------------------------------
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
        from ..stores.parquet import ParquetBase

        return self._path is not None or isinstance(self._store, ParquetBase)

    def store(self) -> Any:
        """The store to read from (opening a capture path read-only the first time)."""
        if self._store is None and self._path is not None:
            from ..stores.parquet import ParquetStream

            self._store = ParquetStream(
                self._path, filesystem=self._filesystem, create=False, recover=False
            )
        if self._store is None:
            raise LookupError(f"cannot read from {self.describe()}")
        return self._store

    @property
    def matcher(self) -> Matcher | None:
        """The matcher of the source store (or of the memory store a snapshot came from)."""
        if self._snapshot is not None:
            return self._matcher
        from ..matching import Matcher

        matcher = getattr(self.store(), "matcher", None)
        return matcher if isinstance(matcher, Matcher) else None

    # -- reading ---------------------------------------------------------------------------------
    def exchanges(self) -> Iterator[Exchange]:
        """Every exchange of the source, in recorded order (bounded memory for Parquet)."""
        if self._snapshot is not None:
            return iter(self._snapshot)
        return iter(self.store().exchanges())

    def read(self, columns: Sequence[str], where: pc.Expression | None) -> pa.Table:
        """Rows matching ``where``, in recorded order, with ``columns`` (capture names)."""
        columns = list(dict.fromkeys(columns))
        if self._snapshot is not None:
            return self._snapshot_table(self._snapshot, range(len(self._snapshot)), columns, where)
        store = self.store()
        table = store.to_arrow(columns=columns, filter=where)
        if not isinstance(table, pa.Table):
            raise TypeError(f"{type(store).__name__}.to_arrow() returned {type(table).__name__}")
        return table.select(columns)

    def fetch(self, keys: pa.Table, columns: Sequence[str]) -> pa.Table:
        """``columns`` for the rows named by ``keys`` (``writer_id``, ``writer_seq``), in order.

        Raises ``LookupError`` when a row is no longer in the capture.
        """
        columns = [c for c in dict.fromkeys(columns) if c not in IDENTITY]
        n = keys.num_rows
        if n == 0:
            return SCHEMA.empty_table().select(columns)
        if self._snapshot is not None:
            wids = keys.column("writer_id").to_pylist()
            if any(w != self._writer_id for w in wids):
                raise LookupError(f"rows of another capture asked from {self.describe()}")
            seqs: list[int] = [
                int(s) for s in keys.column("writer_seq").to_pylist() if s is not None
            ]
            if len(seqs) != n or min(seqs) < 0 or max(seqs) >= len(self._snapshot):
                raise LookupError(f"row numbers out of range for {self.describe()}")
            unique = sorted(set(seqs))
            table = self._snapshot_table([self._snapshot[s] for s in unique], unique, columns, None)
            found = pa.table({"writer_id": [self._writer_id] * len(unique), "writer_seq": unique})
            return _align(keys, found, table, self.describe())
        found = self.read([*IDENTITY, *columns], _identity_filter(keys))
        return _align(keys, found.select(list(IDENTITY)), found.select(columns), self.describe())

    def _snapshot_table(
        self,
        exchanges: Sequence[Exchange],
        seqs: Sequence[int],
        columns: Sequence[str],
        where: pc.Expression | None,
    ) -> pa.Table:
        # Keys cost a matcher call per exchange: computed only when asked for.
        needs_keys = "request_key" in columns or (where is not None and "request_key" in str(where))
        table = exchanges_to_table(
            list(exchanges),
            self._matcher,
            keys=None if needs_keys else [""] * len(exchanges),
            writer_id=self._writer_id,
            seqs=list(seqs),
        )
        if where is not None:
            table = table.filter(where)
        return table.select(list(columns))


def _detached() -> CaptureRef:
    return CaptureRef()


def _from_path(path: str) -> CaptureRef:
    return CaptureRef(path=path)


def open_source(source: Any, *, filesystem: Any = None) -> CaptureRef:
    """A :class:`CaptureRef` for anything ``to_pandas`` accepts (see its docstring)."""
    if isinstance(source, CaptureRef):
        return source
    if isinstance(source, str | os.PathLike):
        return CaptureRef(path=os.fspath(source), filesystem=filesystem)
    if callable(getattr(source, "to_arrow", None)):
        return CaptureRef(store=source)
    matcher = getattr(source, "matcher", None)
    exchanges = getattr(source, "exchanges", None)
    if callable(exchanges):
        items = list(exchanges())
    elif isinstance(source, Iterable) and not isinstance(source, bytes | bytearray):
        items = list(source)
    else:
        raise TypeError(
            "expected a capture path, a store (to_arrow() or exchanges()) or exchanges, "
            f"not {type(source).__name__}"
        )
    bad = next((x for x in items if not isinstance(x, Exchange)), None)
    if bad is not None:
        raise TypeError(f"expected traffic_lab.Exchange items, got {type(bad).__name__}")
    from ..matching import Matcher

    return CaptureRef(snapshot=items, matcher=matcher if isinstance(matcher, Matcher) else None)


def _identity_filter(keys: pa.Table) -> pc.Expression:
    """Rows named by ``keys``: per writer, a ``writer_seq`` range (for row-group pruning) and
    membership."""
    grouped = keys.group_by("writer_id").aggregate(
        [("writer_seq", "min"), ("writer_seq", "max"), ("writer_seq", "distinct")]
    )
    parts: list[pc.Expression] = []
    for row in grouped.to_pylist():
        seq = pc.field("writer_seq")
        part = (
            (pc.field("writer_id") == row["writer_id"])
            & (seq >= row["writer_seq_min"])
            & (seq <= row["writer_seq_max"])
        )
        distinct = row["writer_seq_distinct"]
        if len(distinct) != row["writer_seq_max"] - row["writer_seq_min"] + 1:
            part = part & seq.isin(distinct)
        parts.append(part)
    expr = parts[0]
    for part in parts[1:]:
        expr = expr | part
    return expr


def _keyed(writer_ids: Any, seqs: Any, name: str, values: Any) -> pa.Table:
    columns: dict[str, Any] = {
        "writer_id": writer_ids.cast(pa.string()),
        "writer_seq": seqs.cast(pa.int64()),
        name: values,
    }
    return pa.table(columns)


def _align(keys: pa.Table, found_keys: pa.Table, found: pa.Table, where: str) -> pa.Table:
    """Rows of ``found`` (identified by ``found_keys``) in the order of ``keys``."""
    left = _keyed(
        keys.column("writer_id"),
        keys.column("writer_seq"),
        "__pos",
        pa.array(np.arange(keys.num_rows, dtype=np.int64)),
    )
    right = _keyed(
        found_keys.column("writer_id"),
        found_keys.column("writer_seq"),
        "__src",
        pa.array(np.arange(found_keys.num_rows, dtype=np.int64)),
    )
    # A row appears once in a capture; keep the first should a source repeat one anyway.
    first = right.group_by(list(IDENTITY)).aggregate([("__src", "min")])
    right = _keyed(
        first.column("writer_id"), first.column("writer_seq"), "__src", first.column("__src_min")
    )
    joined = left.join(right, keys=list(IDENTITY), join_type="left outer")
    joined = joined.sort_by("__pos")
    src = joined.column("__src")
    if src.null_count:
        missing = joined.filter(src.is_null()).slice(0, 3).to_pylist()
        rows = ", ".join(f"({r['writer_id']}, {r['writer_seq']})" for r in missing)
        raise LookupError(
            f"{src.null_count} rows of the frame are no longer in {where} "
            f"(writer_id, writer_seq): {rows}"
        )
    return found.take(src)
