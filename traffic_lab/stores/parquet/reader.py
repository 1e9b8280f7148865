"""Opening a capture: listing its files, checking them, and reading rows, blobs and datasets.

A :class:`Capture` lists the day partitions, reads each new file's footer once (files never
change after they appear), and decides which files are live: a compacted file names the files it
replaces, and those are ignored even while they still exist. Files that cannot be used (truncated,
corrupt, a foreign schema) and stray temporary files left by a crash are skipped with a
:class:`SkippedFileWarning` that names the file, or raise with ``strict=True``. A file written by
a newer schema version always raises :class:`~traffic_lab.errors.SchemaVersionError`.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from ...errors import (
    CorruptCaptureError,
    SchemaVersionError,
    SkippedFileWarning,
    StoreNotFoundError,
)
from ._fs import TEMP_SUFFIX, CaptureFS
from .schema import (
    META_FINGERPRINT,
    META_TIME_RANGE,
    META_WRITER_ID,
    SCHEMA,
    SCHEMA_VERSION,
    check_schema,
    replaces_of,
    upgrade_table,
)
from .writer import INTERNAL_DIR, LOGS_DIR, blob_path

__all__ = [
    "DATASET_SCHEMA",
    "ORDER",
    "MARKERS_DIR",
    "STALE_TEMP_SECONDS",
    "Capture",
    "DataFile",
    "SkippedFileWarning",
    "marker_name",
    "resolve_blobs",
    "time_filter",
    "sort_recorded",
]

MARKERS_DIR = f"{INTERNAL_DIR}/markers"
#: A temporary file older than this (seconds) is taken as a crash's leftover.
STALE_TEMP_SECONDS = 600.0
#: The dataset schema: the file schema plus the ``day`` partition column.
DATASET_SCHEMA = SCHEMA.append(pa.field("day", pa.int32())).with_metadata(
    {"traffic_lab.schema_version": str(SCHEMA_VERSION)}
)
_PARTITIONING = ds.partitioning(pa.schema([pa.field("day", pa.int32())]), flavor="hive")
_DAY_DIR = re.compile(r"^day=(\d{8})$")
_DATA_FILE = re.compile(r"^(part|compact)-[0-9A-Za-z_-]+\.parquet$")
_MARKER = re.compile(r"^clear-(\d{1,20})-[0-9a-f]+\.marker$")


def marker_name(cutoff_us: int, token: str) -> str:
    """The relative path of a clear marker hiding rows that started before ``cutoff_us``."""
    return f"{MARKERS_DIR}/clear-{cutoff_us:020d}-{token}.marker"


@dataclass
class DataFile:
    """One live Parquet file of a capture, described from its footer."""

    rel: str
    day: int
    size: int
    num_rows: int
    version: int
    fingerprint: str
    writer_id: str
    first_us: int
    last_us: int
    row_groups: list[int]
    replaces: list[str] = field(default_factory=list)


class Capture:
    """A capture folder (or object-store prefix): its live files, markers, blobs and rows."""

    def __init__(self, cfs: CaptureFS, *, strict: bool = False, create: bool = True) -> None:
        self.cfs = cfs
        self.strict = strict
        self._footers: dict[str, DataFile | None] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        # Parsed footers of recently read files: a file with many row groups takes
        # milliseconds to parse, which a lookup would otherwise pay on every row group read.
        self._metadata: OrderedDict[str, pq.FileMetaData] = OrderedDict()
        if not cfs.root_exists() and not create:
            raise StoreNotFoundError("no capture here (the folder does not exist)", path=cfs.url)

    # -- faults ------------------------------------------------------------------------------------
    def _bad(self, rel: str, message: str, exc: BaseException | None = None) -> None:
        path = self.cfs.display(rel)
        if self.strict:
            raise CorruptCaptureError(message, path=path) from exc
        if rel not in self._warned:
            self._warned.add(rel)
            warnings.warn(f"{path}: {message}; skipped", SkippedFileWarning, stacklevel=4)

    # -- listing -----------------------------------------------------------------------------------
    def list_files(self) -> tuple[list[DataFile], int | None]:
        """The live data files (sorted by first row time, then name) and the clear cutoff (µs)."""
        candidates: list[tuple[str, int, int]] = []
        now = time.time()
        for entry in self.cfs.list_dir(""):
            match = _DAY_DIR.match(entry.base_name)
            if entry.type != pafs.FileType.Directory or match is None:
                if entry.type == pafs.FileType.File and entry.base_name.endswith(".parquet"):
                    self._bad(entry.base_name, "a Parquet file outside the day partitions")
                continue
            day = int(match.group(1))
            for info in self.cfs.list_dir(entry.base_name):
                rel = f"{entry.base_name}/{info.base_name}"
                name = info.base_name
                if info.type != pafs.FileType.File:
                    continue
                if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    mtime = info.mtime.timestamp() if info.mtime is not None else now
                    if now - mtime > STALE_TEMP_SECONDS:
                        self._bad(rel, "a temporary file left by a crashed writer")
                    continue
                if _DATA_FILE.match(name) is None:
                    self._bad(rel, "not a capture data file")
                    continue
                candidates.append((rel, day, info.size or 0))
        self._read_footers([c for c in candidates if c[0] not in self._footers])
        present = {rel for rel, _, _ in candidates}
        for rel in list(self._footers):
            if rel not in present:
                del self._footers[rel]
        files = [f for rel, _, _ in candidates if (f := self._footers.get(rel)) is not None]
        replaced = {r for f in files for r in f.replaces}
        live = [f for f in files if f.rel not in replaced]
        live.sort(key=lambda f: (f.first_us, f.rel))
        return live, self.cutoff()

    def _read_footers(self, todo: Sequence[tuple[str, int, int]]) -> None:
        if not todo:
            return
        if self.cfs.local or len(todo) < 4:
            results = [self._footer(*item) for item in todo]
        else:
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda item: self._footer(*item), todo))
        for (rel, _, _), (described, error) in zip(todo, results, strict=True):
            if isinstance(error, SchemaVersionError):
                raise error
            if error is not None:
                self._bad(rel, str(error.args[0]) if error.args else "unreadable", error)
                self._footers[rel] = None
            else:
                self._footers[rel] = described

    def _footer(self, rel: str, day: int, size: int) -> tuple[DataFile | None, Exception | None]:
        path = self.cfs.display(rel)
        try:
            with self.cfs.open_input(rel) as f:
                meta = pq.read_metadata(f)
            schema = meta.schema.to_arrow_schema()
        except StoreNotFoundError:
            return None, None
        except (pa.ArrowException, OSError) as exc:
            return None, CorruptCaptureError(
                f"truncated or corrupt Parquet file ({exc})", path=path
            )
        kv = meta.metadata or {}
        try:
            version = check_schema(schema.with_metadata(kv), path=path)
        except (CorruptCaptureError, SchemaVersionError) as exc:
            return None, exc
        first = last = 0
        raw_range = kv.get(META_TIME_RANGE)
        if raw_range:
            try:
                a, b = raw_range.split(b",")
                first, last = int(a), int(b)
            except ValueError:
                first, last = 0, 2**62
        else:
            first, last = 0, 2**62
        return (
            DataFile(
                rel=rel,
                day=day,
                size=size,
                num_rows=meta.num_rows,
                version=version,
                fingerprint=kv.get(META_FINGERPRINT, b"").decode(),
                writer_id=kv.get(META_WRITER_ID, b"").decode(),
                first_us=first,
                last_us=last,
                row_groups=[meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
                replaces=replaces_of(kv),
            ),
            None,
        )

    def cutoff(self) -> int | None:
        """Rows that started before this time (µs since the epoch) were cleared, or None."""
        latest = None
        for info in self.cfs.list_dir(MARKERS_DIR):
            match = _MARKER.match(info.base_name)
            if match is not None:
                value = int(match.group(1))
                latest = value if latest is None or value > latest else latest
        return latest

    def log_paths(self) -> list[str]:
        """Local paths of durable-log segments (live or left by dead writers)."""
        if not self.cfs.local:
            return []
        return sorted(
            self.cfs.full(f"{LOGS_DIR}/{info.base_name}")
            for info in self.cfs.list_dir(LOGS_DIR)
            if info.base_name.endswith(".log") and not info.base_name.startswith(".")
        )

    # -- reading -----------------------------------------------------------------------------------
    def _remember(self, rel: str, meta: pq.FileMetaData) -> None:
        with self._lock:
            self._metadata[rel] = meta
            self._metadata.move_to_end(rel)
            while len(self._metadata) > 64:
                self._metadata.popitem(last=False)

    def parquet_file(self, f: DataFile) -> pq.ParquetFile:
        """Open one data file (reusing its parsed footer when it is at hand)."""
        with self._lock:
            meta = self._metadata.get(f.rel)
        try:
            pf = pq.ParquetFile(self.cfs.open_input(f.rel), metadata=meta)
            if meta is None:
                self._remember(f.rel, pf.metadata)
            return pf
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, StoreNotFoundError):
                raise
            raise CorruptCaptureError(
                f"truncated or corrupt Parquet file ({exc})", path=self.cfs.display(f.rel)
            ) from exc

    def read_columns(self, f: DataFile, columns: Sequence[str]) -> pa.Table:
        """Some columns of a whole file, upgraded to the current schema."""
        table = self._read(f, lambda pf: pf.read(columns=list(columns)))
        return table

    def read_row_group(self, f: DataFile, index: int, columns: Sequence[str] | None) -> pa.Table:
        """One row group of a file."""
        cols = list(columns) if columns is not None else None
        return self._read(f, lambda pf: pf.read_row_group(index, columns=cols))

    def _read(self, f: DataFile, read: Callable[[pq.ParquetFile], pa.Table]) -> pa.Table:
        path = self.cfs.display(f.rel)
        pf = self.parquet_file(f)
        try:
            table = read(pf)
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise StoreNotFoundError("file not found", path=path) from exc
            raise CorruptCaptureError(f"cannot read ({exc})", path=path) from exc
        finally:
            pf.close()
        if f.version != SCHEMA_VERSION:
            table = upgrade_table(
                table.replace_schema_metadata(pf.schema_arrow.metadata), path=path
            )
        return table

    def iter_batches(
        self, f: DataFile, columns: Sequence[str] | None = None, batch_size: int = 2048
    ) -> Iterator[pa.Table]:
        """A file's rows in order, a batch at a time (memory bounded by the batch)."""
        path = self.cfs.display(f.rel)
        pf = self.parquet_file(f)
        metadata = pf.schema_arrow.metadata
        try:
            for batch in pf.iter_batches(
                batch_size=batch_size, columns=list(columns) if columns is not None else None
            ):
                table = pa.Table.from_batches([batch])
                if f.version != SCHEMA_VERSION:
                    table = upgrade_table(table.replace_schema_metadata(metadata), path=path)
                yield table
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise StoreNotFoundError("file not found", path=path) from exc
            raise CorruptCaptureError(f"cannot read ({exc})", path=path) from exc
        finally:
            pf.close()

    def read_blob(self, digest: str, *, referenced_by: str = "") -> bytes:
        """A blob's bytes, checked against its digest."""
        rel = blob_path(digest)
        where = f" (referenced by {referenced_by})" if referenced_by else ""
        try:
            data = self.cfs.read_bytes(rel)
        except StoreNotFoundError as exc:
            raise CorruptCaptureError(
                f"body blob is missing{where}", path=self.cfs.display(rel)
            ) from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptCaptureError(
                f"body blob does not match its digest{where}", path=self.cfs.display(rel)
            )
        return data

    def dataset(self, files: Sequence[DataFile]) -> ds.Dataset:
        """A ``pyarrow.dataset.Dataset`` over ``files`` with the ``day`` partition column."""
        if not files:
            return ds.dataset(DATASET_SCHEMA.empty_table())
        return ds.dataset(
            [self.cfs.full(f.rel) for f in files],
            schema=DATASET_SCHEMA,
            format="parquet",
            filesystem=self.cfs.fs,
            partitioning=_PARTITIONING,
            partition_base_dir=self.cfs.root,
        )


def resolve_blobs(
    table: pa.Table, read_blob: Callable[[str], bytes], columns: Iterable[str]
) -> pa.Table:
    """Fill ``request_body`` / ``response_body`` from blobs where the row references one."""
    for side in ("request", "response"):
        body, blob = f"{side}_body", f"{side}_body_blob"
        if body not in columns or blob not in table.column_names:
            continue
        refs = table.column(blob)
        if refs.null_count == len(refs):
            continue
        bodies = table.column(body).to_pylist()
        for i, ref in enumerate(refs.to_pylist()):
            if ref is not None:
                bodies[i] = read_blob(ref)
        index = table.column_names.index(body)
        table = table.set_column(index, table.schema.field(body), pa.array(bodies, pa.binary()))
    return table


def time_filter(cutoff: int | None, where: Any = None) -> Any:
    """Combine a user's filter expression with the clear cutoff."""
    if cutoff is None:
        return where
    expr = pc.field("started_at") >= pa.scalar(cutoff, pa.timestamp("us", tz="UTC"))
    return expr if where is None else (expr & where)


#: Recorded order: the sort keys of a capture.
ORDER: list[tuple[str, Literal["ascending", "descending"]]] = [
    ("started_at", "ascending"),
    ("writer_id", "ascending"),
    ("writer_seq", "ascending"),
]


def _in_order(table: pa.Table) -> bool:
    """Whether rows are in recorded order: a numpy pass over ``started_at``, and a look at the
    order columns only where two rows started in the same microsecond."""
    started = table.column("started_at").cast(pa.int64()).to_numpy()
    steps = np.diff(started)
    if (steps < 0).any():
        return False
    ties = np.flatnonzero(steps == 0)
    if len(ties) == 0:
        return True
    if len(ties) > 10_000:
        return False  # let the sort decide
    writers = table.column("writer_id").take(pa.array(np.concatenate([ties, ties + 1])))
    seqs = table.column("writer_seq").take(pa.array(np.concatenate([ties, ties + 1])))
    w, s, n = writers.to_pylist(), seqs.to_pylist(), len(ties)
    return all((w[i], s[i]) <= (w[n + i], s[n + i]) for i in range(n))


def sort_recorded(table: pa.Table) -> pa.Table:
    """The table in recorded order; the same table when it already is (the usual case)."""
    if table.num_rows < 2 or _in_order(table):
        return table
    order = pc.sort_indices(table, sort_keys=ORDER)
    as_numpy = order.to_numpy()
    if np.array_equal(as_numpy, np.arange(len(as_numpy))):
        return table
    return table.take(order)
