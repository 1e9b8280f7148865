"""Opening a capture: listing its live files (a compacted file hides those it replaces), checking
them, and reading rows, blobs and datasets.

Everything taken from a capture is checked (``_validate``) before it is used. A file that fails a
check, or a crash's stale temporary file, is skipped with a :class:`SkippedFileWarning` naming it
(``strict=True``: :class:`~traffic_lab.errors.CorruptCaptureError`); an unreadable row likewise
with a :class:`~traffic_lab.errors.SkippedEntryWarning`. A newer schema version always raises
:class:`~traffic_lab.errors.SchemaVersionError`.
"""

from __future__ import annotations

import gc
import hashlib
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from ...errors import (
    CorruptCaptureError,
    SchemaVersionError,
    SkippedEntryWarning,
    SkippedFileWarning,
    StoreError,
    StoreNotFoundError,
)
from ._fs import TEMP_SUFFIX, CaptureFS
from ._index import LRU
from ._validate import (
    check_types,
    day_folder,
    is_data_file,
    is_writer_id,
    log_name,
    marker_cutoff,
    meta_text,
    parse_replaces,
    parse_time_range,
)
from .schema import (
    CHUNKS_COLUMN,
    CHUNKS_FIELD,
    KEY_HASH_COLUMN,
    KEY_HASH_FIELD,
    META_FINGERPRINT,
    META_REPLACES,
    META_TIME_RANGE,
    META_WRITER_ID,
    REQUIRED_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    check_schema,
    row_name,
    upgrade_table,
)
from .writer import INTERNAL_DIR, LOGS_DIR, blob_path

if TYPE_CHECKING:
    # Loaded on use: pyarrow.dataset imports pandas (~0.3 s), which a cache never needs.
    import pyarrow.dataset as ds

__all__ = [
    "DATASET_SCHEMA",
    "ORDER",
    "ATTEMPTS",
    "ORDER_COLUMNS",
    "MARKERS_DIR",
    "STALE_TEMP_SECONDS",
    "Capture",
    "DataFile",
    "SkippedFileWarning",
    "marker_name",
    "time_filter",
    "sort_recorded",
    "while_compacting",
]

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")
MARKERS_DIR = f"{INTERNAL_DIR}/markers"
#: A temporary file older than this (seconds) is taken as a crash's leftover.
STALE_TEMP_SECONDS = 600.0
#: The dataset schema: the file schema plus the ``day`` partition column.
# Columns beside the row schema (index and timing), by name.
_EXTRA_FIELDS = {KEY_HASH_COLUMN: KEY_HASH_FIELD, CHUNKS_COLUMN: CHUNKS_FIELD}
DATASET_SCHEMA = SCHEMA.append(pa.field("day", pa.int32())).with_metadata(
    {"traffic_lab.schema_version": str(SCHEMA_VERSION)}
)
_NOT_REGULAR = "not a regular file (a symlink, folder, FIFO or device); not read"
#: How many times a read lists the capture again after compaction deleted a file it had listed.
ATTEMPTS = 5
#: Parsed footers kept for reading row groups again, in (estimated) bytes.
_FOOTERS_BYTES = 64 * 1024 * 1024


def _footer_bytes(meta: pq.FileMetaData) -> int:
    """About what a parsed footer takes in memory (measured: ~8x its serialized size)."""
    return 8 * int(meta.serialized_size)


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
    #: Whether the file has every column of the schema (compaction merges only such files).
    complete: bool = True
    #: Whether the file has a ``request_key_hash`` column of type int64 (schema v2 on); its
    #: values are not trusted (a cache compares the full key on every hit).
    key_hashes: bool = False
    #: The least and greatest ``writer_seq`` by the footer's statistics (None without them).
    #: Untrusted: it only chooses which files to open for rows named by identity, whose filter
    #: still checks every row (a footer that lies costs its own rows, never a wrong row).
    seqs: tuple[int, int] | None = None


def seq_range(meta: pq.FileMetaData, schema: pa.Schema) -> tuple[int, int] | None:
    """(min, max) of ``writer_seq`` over every row group's statistics, or None if a group has
    none (or they are not integers)."""
    index = schema.get_field_index("writer_seq")
    if index < 0 or meta.num_row_groups == 0:
        return None
    low, high = None, None
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo, hi = stats.min, stats.max
        if type(lo) is not int or type(hi) is not int or lo > hi:
            return None
        low = lo if low is None else min(low, lo)
        high = hi if high is None else max(high, hi)
    return None if low is None or high is None else (low, high)


class Capture:
    """A capture folder (or object-store prefix): its live files, markers, blobs and rows."""

    def __init__(self, cfs: CaptureFS, *, strict: bool = False, create: bool = True) -> None:
        self.cfs = cfs
        self.strict = strict
        self._footers: dict[str, DataFile | None] = {}
        self._warned: set[str] = set()
        # Parsed footers of recently read files: a file with many row groups takes
        # milliseconds to parse, which a lookup would otherwise pay on every row group read.
        # Bounded by bytes: a footer of 100 row groups takes ~3 MB parsed.
        self._metadata: LRU[str, pq.FileMetaData] = LRU(_FOOTERS_BYTES, _footer_bytes)
        if not cfs.root_exists() and not create:
            raise StoreNotFoundError("no capture here (the folder does not exist)", path=cfs.url)

    # -- faults ------------------------------------------------------------------------------------
    def bad_file(self, rel: str, message: str, exc: BaseException | None = None) -> None:
        """Report a skipped file or folder: warn once, or raise with ``strict=True``."""
        path = self.cfs.display(rel)
        if self.strict:
            raise CorruptCaptureError(message, path=path) from exc
        if rel not in self._warned:
            self._warned.add(rel)
            warnings.warn(f"{path}: {message}; skipped", SkippedFileWarning, stacklevel=4)

    def reject(self, rel: str, exc: CorruptCaptureError) -> None:
        """A listed file turned out unreadable: report it, and leave it out from now on."""
        self._footers[rel] = None
        self.bad_file(rel, _reason(exc), exc)

    def bad_entry(self, exc: CorruptCaptureError) -> None:
        """Report a skipped row or log record: warn, or raise ``exc`` with ``strict=True``."""
        if self.strict:
            raise exc
        warnings.warn(f"{exc}; skipped", SkippedEntryWarning, stacklevel=4)

    def list_folder(self, rel: str) -> list[pafs.FileInfo]:
        """Entries of a folder of the capture; a symlinked folder is named, not read."""
        try:
            return self.cfs.list_dir(rel)
        except CorruptCaptureError as exc:  # a symlinked folder
            self.bad_file(rel, _reason(exc), exc)
            return []

    # -- listing -----------------------------------------------------------------------------------
    def list_files(self) -> tuple[list[DataFile], int | None]:
        """The live data files (sorted by first row time, then name) and the clear cutoff (µs)."""
        candidates: list[tuple[str, int, int]] = []
        now = time.time()
        for entry in self.list_folder(""):
            folder = entry.base_name
            if not folder.startswith("day="):
                if entry.type == pafs.FileType.File and folder.endswith(".parquet"):
                    self.bad_file(folder, "a Parquet file outside the day partitions")
                continue
            day = day_folder(folder)
            if day is None:
                self.bad_file(folder, "not a day partition folder (day=YYYYMMDD)")
                continue
            if entry.type != pafs.FileType.Directory:
                self.bad_file(folder, "not a folder (a symlink or special file); not followed")
                continue
            for info in self.list_folder(folder):
                name = info.base_name
                rel = f"{folder}/{name}"
                if info.type != pafs.FileType.File:
                    self.bad_file(rel, _NOT_REGULAR)
                elif name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    mtime = info.mtime.timestamp() if info.mtime is not None else now
                    if now - mtime > STALE_TEMP_SECONDS:
                        self.bad_file(rel, "a temporary file left by a crashed writer")
                elif not is_data_file(name):
                    self.bad_file(rel, "not a capture data file")
                else:
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

    def map(self, read: Callable[[A], R], items: Sequence[A]) -> list[R]:
        """``read`` over ``items``: in 8 threads on an object store (latency-bound), else here."""
        if self.cfs.local or len(items) < 2:
            return [read(item) for item in items]
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(read, items))

    def described(self, rel: str) -> DataFile | None:
        """A listed file as its footer described it (None if unknown or unreadable)."""
        return self._footers.get(rel)

    def _read_footers(self, todo: Sequence[tuple[str, int, int]]) -> None:
        def footer(
            item: tuple[str, int, int],
        ) -> tuple[DataFile | None, CorruptCaptureError | SchemaVersionError | None]:
            described = self._footer(*item)
            # A parsed footer and its schema refer to each other: freed by the cycle collector
            # only. Opening a capture of 100 files held 300 MB of them while they waited.
            gc.collect(1)
            return described

        results = self.map(footer, todo)
        for (rel, _, _), (described, error) in zip(todo, results, strict=True):
            if isinstance(error, SchemaVersionError):
                raise error
            if error is not None:
                self.reject(rel, error)
            else:
                self._footers[rel] = described

    def _footer(
        self, rel: str, day: int, size: int
    ) -> tuple[DataFile | None, CorruptCaptureError | SchemaVersionError | None]:
        """A file described and checked from its footer; (None, the reason) if unusable."""
        path = self.cfs.display(rel)
        try:
            with self.cfs.open_input(rel) as f:
                meta = pq.read_metadata(f)
                kv = meta.metadata or {}
                schema = meta.schema.to_arrow_schema()
                version = check_schema(schema.with_metadata(kv), path=path)
                check_types(schema, SCHEMA)
                _check_required(f, meta, schema)
            first, last = parse_time_range(meta_text(kv, META_TIME_RANGE))
            writer_id = meta_text(kv, META_WRITER_ID) or ""
            if writer_id and not is_writer_id(writer_id):
                raise ValueError("traffic_lab.writer_id is not a writer id")
            described = DataFile(
                rel=rel,
                day=day,
                size=size,
                num_rows=meta.num_rows,
                version=version,
                fingerprint=meta_text(kv, META_FINGERPRINT) or "",
                writer_id=writer_id,
                first_us=first,
                last_us=last,
                row_groups=[meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
                replaces=parse_replaces(meta_text(kv, META_REPLACES), rel),
                complete=all(name in schema.names for name in SCHEMA.names),
                key_hashes=version >= 2
                and schema.get_field_index(KEY_HASH_COLUMN) >= 0
                and schema.field(KEY_HASH_COLUMN).type == KEY_HASH_FIELD.type,
                seqs=seq_range(meta, schema),
            )
        except StoreNotFoundError:
            return None, None  # deleted since it was listed (by compaction)
        except (CorruptCaptureError, SchemaVersionError) as exc:
            return None, exc
        except (pa.ArrowException, OSError) as exc:
            return None, CorruptCaptureError(
                f"truncated or corrupt Parquet file ({exc})", path=path
            )
        except ValueError as exc:
            return None, CorruptCaptureError(str(exc), path=path)
        return described, None

    def cutoff(self) -> int | None:
        """Rows that started before this time (µs since the epoch) were cleared, or None."""
        latest = None
        for info in self.list_folder(MARKERS_DIR):
            name = info.base_name
            if name.startswith("."):
                continue  # a marker being published
            value = marker_cutoff(name) if info.type == pafs.FileType.File else None
            if value is None:
                self.bad_file(f"{MARKERS_DIR}/{name}", "not a clear marker")
            elif latest is None or value > latest:
                latest = value
        return latest

    def logs(self) -> list[tuple[str, str, int]]:
        """Durable-log segments, live or dead: (local path, writer id, segment)."""
        if not self.cfs.local:
            return []
        found = []
        for info in self.list_folder(LOGS_DIR):
            name = info.base_name
            if name.startswith("."):
                continue  # a segment being created
            rel = f"{LOGS_DIR}/{name}"
            parsed = log_name(name)
            if parsed is None:
                self.bad_file(rel, "not a durable log segment (<writer id>-<segment>.log)")
            elif info.type != pafs.FileType.File:
                self.bad_file(rel, _NOT_REGULAR)
            else:
                found.append((self.cfs.full(rel), *parsed))
        return sorted(found)

    # -- reading -----------------------------------------------------------------------------------
    def parquet_file(self, f: DataFile, *, keep: bool = True) -> pq.ParquetFile:
        """Open one data file (reusing its parsed footer when it is at hand; ``keep``: keep
        it for the next time)."""
        meta = self._metadata.get(f.rel)
        with _reading(self.cfs.display(f.rel), "truncated or corrupt Parquet file"):
            pf = pq.ParquetFile(self.cfs.open_input(f.rel), metadata=meta)
        if meta is None and keep:
            self._metadata.put(f.rel, pf.metadata)
        return pf

    def read_columns(self, f: DataFile, columns: Sequence[str], *, once: bool = False) -> pa.Table:
        """Some columns of a whole file; columns the file does not have are nulls (and so is
        ``request_key_hash`` unless the file has it as int64: its type is checked first).
        ``once``: the file's footer is not kept for later reads (a whole capture opened)."""
        wanted = [c for c in columns if c != KEY_HASH_COLUMN or f.key_hashes]
        # One thread: a file's row groups are small (1,024 rows), so pyarrow's threads cost
        # more than they save; an object store reads files in parallel instead (map()).
        read = lambda pf: [pf.read(columns=wanted, use_threads=False)]  # noqa: E731
        [table] = self._read(f, read, keep=not once)
        for name in columns:
            if name not in table.column_names:
                column: pa.Field[Any] = _EXTRA_FIELDS.get(name) or SCHEMA.field(name)
                table = table.append_column(column, pa.nulls(table.num_rows, column.type))
        return table

    def read_with_sample(
        self, f: DataFile, columns: Sequence[str], sample: Sequence[str]
    ) -> tuple[pa.Table, pa.Table]:
        """Some columns of a whole file, and other columns of its first row group (to check the
        first against the second), the footer read once and not kept. The columns must exist
        (``request_key_hash`` only where ``f.key_hashes``)."""
        if not f.row_groups:
            empty = SCHEMA.append(KEY_HASH_FIELD).empty_table()
            return empty.select(list(columns)), empty.select(list(sample))

        def read(pf: pq.ParquetFile) -> list[pa.Table]:
            return [
                pf.read(columns=list(columns), use_threads=False),
                pf.read_row_group(0, columns=list(sample), use_threads=False),
            ]

        table, first = self._read(f, read, keep=False)
        return table, first

    def read_row_group(self, f: DataFile, index: int) -> pa.Table:
        """One row group of a file."""
        [table] = self._read(f, lambda pf: [pf.read_row_group(index)])
        return table

    def iter_batches(self, f: DataFile, batch_size: int) -> Iterator[pa.Table]:
        """A file's rows in order, a batch at a time (memory bounded by the batch)."""
        return self._read(f, lambda pf: pf.iter_batches(batch_size=batch_size))

    def _read(
        self,
        f: DataFile,
        read: Callable[[pq.ParquetFile], Iterable[pa.Table | pa.RecordBatch]],
        *,
        keep: bool = True,
    ) -> Iterator[pa.Table]:
        """The tables ``read`` yields, checked and upgraded to the current schema."""
        path = self.cfs.display(f.rel)
        pf = self.parquet_file(f, keep=keep)
        try:
            with _reading(path):
                for part in read(pf):
                    part.validate(full=True)  # e.g. text that is not UTF-8
                    table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
                    if f.version != SCHEMA_VERSION:
                        meta = pf.schema_arrow.metadata
                        table = upgrade_table(table.replace_schema_metadata(meta), path=path)
                    yield table
        finally:
            pf.close()

    def read_blob(self, digest: str) -> bytes:
        """A blob's bytes; ``ValueError`` saying why if the reference is not a digest, or the
        blob is missing, altered, or not a regular file inside the capture (never opened)."""
        rel = blob_path(digest)  # checks the digest's grammar first
        where = self.cfs.display(rel)
        try:
            data = self.cfs.read_regular(rel)
        except StoreNotFoundError:
            raise ValueError(f"body blob {where} is missing") from None
        except CorruptCaptureError as exc:
            raise ValueError(f"body blob {exc}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"body blob {where} does not match its digest")
        return data

    def dataset(self, files: Sequence[DataFile], dictionaries: Collection[str] = ()) -> ds.Dataset:
        """A ``pyarrow.dataset.Dataset`` over ``files`` with the ``day`` partition column;
        ``dictionaries``: text columns read as Arrow dictionaries (what the files store for
        low-cardinality columns: no string is materialised per row)."""
        import pyarrow.dataset as ds

        schema = dictionary_schema(dictionaries)
        if not files:
            return ds.dataset(schema.empty_table())
        return ds.dataset(
            [self.cfs.full(f.rel) for f in files],
            schema=schema,
            format=ds.ParquetFileFormat(
                read_options=ds.ParquetReadOptions(dictionary_columns=sorted(dictionaries))
            )
            if dictionaries
            else "parquet",
            filesystem=self.cfs.fs,
            partitioning=ds.partitioning(pa.schema([pa.field("day", pa.int32())]), flavor="hive"),
            partition_base_dir=self.cfs.root,
        )

    def file_batches(
        self, f: DataFile, columns: Mapping[str, Any], where: Any = None
    ) -> Iterator[pa.RecordBatch]:
        """One file's rows matching ``where``, a batch at a time, projected to ``columns`` (name
        -> Expression). A file that turns out unreadable is named and left out from there on;
        ``StoreNotFoundError`` when it is gone (compacted)."""
        try:
            projection: Any = dict(columns)  # the stubs know only a list of names
            scanner = self.dataset([f]).scanner(columns=projection, filter=where)
            for batch in scanner.to_batches():
                batch.validate(full=True)  # e.g. text that is not UTF-8
                yield batch
        except FileNotFoundError as exc:
            raise StoreNotFoundError("a file is gone (compacted)", path=self.cfs.url) from exc
        except (pa.ArrowException, OSError) as exc:
            path = self.cfs.display(f.rel)
            self.reject(f.rel, CorruptCaptureError(f"cannot read ({exc})", path=path))

    def scan(
        self,
        files: Sequence[DataFile],
        columns: Sequence[str] | None = None,
        where: Any = None,
        bodies: Collection[str] = (),
        dictionaries: Collection[str] = (),
    ) -> pa.Table:
        """Rows of ``files`` matching ``where``, with the blob-stored ``bodies`` read in and
        ``dictionaries`` as Arrow dictionaries.

        Unreadable files and rows are skipped (named). ``StoreNotFoundError`` when a listed file
        is gone (compacted): list again and retry (:func:`while_compacting`).
        """
        try:
            return self._scan(files, columns, where, bodies, dictionaries)
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
        # A file spoils the scan: read them one by one to name it and keep the others.
        tables = []
        for f in files:
            try:
                tables.append(self._scan([f], columns, where, bodies, dictionaries))
            except (pa.ArrowException, OSError) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                path = self.cfs.display(f.rel)
                self.reject(f.rel, CorruptCaptureError(f"cannot read ({exc})", path=path))
        if not tables:
            return self._scan([], columns, where, bodies, dictionaries)
        return pa.concat_tables(tables)

    def _scan(
        self,
        files: Sequence[DataFile],
        columns: Sequence[str] | None,
        where: Any,
        bodies: Collection[str],
        dictionaries: Collection[str] = (),
    ) -> pa.Table:
        cols = list(columns) if columns is not None else None
        try:
            dataset = self.dataset(files, dictionaries)  # raises if a file is gone already
            if not files or not bodies:
                table = dataset.to_table(columns=cols, filter=where)
            else:
                scanner = dataset.scanner(columns=cols, filter=where)
                batches = []
                for tagged in scanner.scan_batches():
                    tagged.record_batch.validate(full=True)
                    path = tagged.fragment.path  # type: ignore[attr-defined]  # a file's
                    batches.append(self._with_blobs(tagged.record_batch, path, bodies))
                table = pa.Table.from_batches(batches, scanner.projected_schema)
            table.validate(full=True)  # e.g. text that is not UTF-8
            return table
        except FileNotFoundError as exc:
            raise StoreNotFoundError("a file is gone (compacted)", path=self.cfs.url) from exc

    def _with_blobs(
        self, batch: pa.RecordBatch, path: str, bodies: Collection[str]
    ) -> pa.RecordBatch:
        """Fill the ``bodies`` columns from blobs; rows whose blob is unreadable are left out."""
        where = self.cfs.display(path[len(self.cfs.root) + 1 :])
        keep = np.ones(batch.num_rows, dtype=bool)
        for body in bodies:
            blob = body + "_blob"
            if blob not in batch.schema.names or body not in batch.schema.names:
                continue
            refs = batch.column(blob)
            if refs.null_count == len(refs):
                continue
            values = batch.column(body).to_pylist()
            for i, ref in enumerate(refs.to_pylist()):
                if ref is None or not keep[i]:
                    continue
                try:
                    values[i] = self.read_blob(ref)
                except ValueError as exc:
                    keep[i] = False
                    self.bad_entry(CorruptCaptureError(f"{row_name(batch, i)}: {exc}", path=where))
            index = batch.schema.get_field_index(body)
            batch = batch.set_column(index, batch.schema.field(body), pa.array(values, pa.binary()))
        return batch if keep.all() else batch.filter(pa.array(keep))


def dictionary_schema(dictionaries: Collection[str] = ()) -> pa.Schema:
    """:data:`DATASET_SCHEMA` with the text columns ``dictionaries`` typed as Arrow
    dictionaries (``ValueError`` for a name that is not a text column)."""
    if not dictionaries:
        return DATASET_SCHEMA
    fields = []
    for f in DATASET_SCHEMA:
        if f.name in dictionaries:
            if f.type != pa.string():
                raise ValueError(
                    f"{f.name} is not a text column: it cannot be read as a dictionary"
                )
            f = f.with_type(pa.dictionary(pa.int32(), pa.string()))
        fields.append(f)
    unknown = sorted(set(dictionaries) - set(DATASET_SCHEMA.names))
    if unknown:
        raise ValueError(f"unknown columns {unknown}")
    return pa.schema(fields).with_metadata(DATASET_SCHEMA.metadata)


def while_compacting(read: Callable[[], T], *, path: str) -> T:
    """``read()``, run again when ``compact()`` deleted a file it listed (each run must list
    the capture itself: compaction publishes its file before deleting those it replaces)."""
    for _ in range(ATTEMPTS):
        try:
            return read()
        except StoreNotFoundError:
            continue
    raise StoreNotFoundError("files kept disappearing while reading", path=path)


@contextmanager
def _reading(path: str, what: str = "cannot read") -> Iterator[None]:
    """Errors reading a file as capture errors; a file gone (compacted) is not found."""
    try:
        yield
    except StoreError:
        raise
    except FileNotFoundError as exc:
        raise StoreNotFoundError("file not found", path=path) from exc
    except (pa.ArrowException, OSError) as exc:
        raise CorruptCaptureError(f"{what} ({exc})", path=path) from exc


def _reason(exc: CorruptCaptureError) -> str:
    """The message of a capture error without the path it starts with."""
    return str(exc).removeprefix(f"{exc.path}: ")


def _check_required(f: pa.NativeFile, meta: pq.FileMetaData, schema: pa.Schema) -> None:
    """``ValueError`` if a column that is never null holds nulls (only columns the file
    declares nullable are read: Parquet cannot store a null in the others)."""
    levels = {}
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        levels[column.path] = column.max_definition_level
    never_null = {*REQUIRED_COLUMNS, *(field.name for field in SCHEMA if not field.nullable)}
    nullable = [
        field.name
        for field in schema
        if field.name in never_null and (field.nullable or levels.get(field.name, 0) > 0)
    ]
    if not nullable:
        return
    table = pq.ParquetFile(f).read(columns=nullable)
    nulls = [name for name in nullable if table.column(name).null_count]
    if nulls:
        raise ValueError(f"null values in columns that are never null: {nulls}")


def time_filter(cutoff: int | None, where: Any = None) -> Any:
    """Combine a user's filter expression with the clear cutoff."""
    if cutoff is None:
        return where
    expr = pc.field("started_at") >= pa.scalar(cutoff, pa.timestamp("us", tz="UTC"))
    return expr if where is None else (expr & where)


#: Recorded order: the sort keys of a capture.
ORDER_COLUMNS = ["started_at", "writer_id", "writer_seq"]
ORDER: list[tuple[str, Literal["ascending", "descending"]]] = [
    (name, "ascending") for name in ORDER_COLUMNS
]


def _in_order(table: pa.Table) -> bool:
    """Whether rows are in recorded order (the other order columns are read only for ties)."""
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
