""":class:`ParquetBase`, what :class:`ParquetCache` and :class:`ParquetStream` share."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import pyarrow as pa
import pyarrow.compute as pc

from ...exchange import Chunk, check_storable
from ...matching import Matcher
from .._pandas_views import PandasViews
from ._fs import CaptureFS
from ._options import ParquetOptions
from .compact import CompactionReport, compact_capture, recover_logs
from .reader import (
    DATASET_SCHEMA,
    ORDER_COLUMNS,
    Capture,
    DataFile,
    marker_name,
    sort_recorded,
    time_filter,
    while_compacting,
)
from .schema import CHUNKS_COLUMN, ChunkColumn
from .writer import CaptureWriter, Entry, day_of, entries_table

if TYPE_CHECKING:
    import pyarrow.dataset as ds  # loaded on use (it imports pandas)

    from ...exchange import Exchange
    from ...redaction import Redactor

__all__ = ["ParquetBase"]


class ParquetBase(PandasViews):
    """What :class:`ParquetCache` and :class:`ParquetStream` share (arguments as theirs)."""

    #: Whether ``put`` computes the request key at once (else the writer does, when it flushes).
    _keyed_puts = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        matcher: Matcher | None = None,
        *,
        options: ParquetOptions | None = None,
        **settings: Any,
    ) -> None:
        self.options = o = ParquetOptions.of(options, settings)
        self.matcher = matcher if matcher is not None else Matcher()
        self._cfs = CaptureFS(path, o.filesystem)
        self._capture = Capture(self._cfs, strict=o.strict, create=o.create)
        self._state_lock = threading.RLock()
        self._writer = CaptureWriter(
            self._cfs, self.matcher, o, on_publish=self._published, on_dropped=self._dropped
        )
        self._files: list[DataFile] = []
        self._cutoff: int | None = None
        self._setup()
        if o.recover and self._cfs.local:
            self.recover()
        self.refresh()

    # -- identity ----------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The capture's location, as given."""
        return self._cfs.url

    @property
    def writer_id(self) -> str:
        """This store's writer id (the ``writer_id`` column of the rows it writes)."""
        return self._writer.writer_id

    # -- writing -----------------------------------------------------------------------------------
    def put(self, exchange: Exchange) -> None:
        """Record one exchange (buffered until a flush); storing nothing, raises
        :class:`~traffic_lab.errors.InvalidExchangeError` at once for one no store can hold."""
        check_storable(exchange)
        key = self.matcher.key(exchange) if self._keyed_puts else None
        self._writer.put(exchange, key, self._buffered)

    def put_redacting(self, exchange: Exchange, redactor: Redactor) -> None:
        """Record ``redactor.redact(exchange)``: what the recording transports hand over
        (:class:`~traffic_lab.protocols.DeferredRedaction`). The redacted copy is keyed once,
        without redacting it again when ``redactor`` has the matcher's rules."""
        check_storable(exchange)
        redacted = redactor.redact(exchange)
        key = self.matcher.key(redacted, redacted_by=redactor) if self._keyed_puts else None
        self._writer.put(redacted, key, self._buffered, redactor)

    def flush(self) -> None:
        """Publish every buffered exchange as Parquet before returning."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and stop writing. Reading still works afterwards. Idempotent."""
        self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Hooks for ParquetCache's index: state set up before the first refresh; an entry buffered
    # (under the writer's lock), a file published, entries the writer could not write.
    def _setup(self) -> None:
        pass

    def _buffered(self, entry: Entry) -> None:
        pass

    def _published(self, rel: str, entries: Sequence[Entry], row_group_size: int) -> None:
        pass

    def _dropped(self, entries: Sequence[Entry]) -> None:
        pass

    # -- maintenance -------------------------------------------------------------------------------
    def recover(self) -> int:
        """Fold logs left by crashed ``durable=True`` writers into Parquet; rows recovered."""
        return recover_logs(self._capture, self.options)

    def compact(self, *, target_bytes: int = 256 * 1024 * 1024) -> CompactionReport:
        """Merge the small files of each day partition into files of up to ``target_bytes``.

        Readers keep working; a file is deleted only once the merged file that replaces it is
        published and checked. Also removes temporary files left by crashed writers.

        Examples
        --------
        >>> import tempfile, traffic_lab as tl
        >>> folder = tempfile.mkdtemp()
        >>> for i in range(3):
        ...     with tl.ParquetStream(folder) as s:
        ...         s.put(tl.Exchange("GET", f"https://a.example/{i}", status_code=200))
        >>> tl.ParquetStream(folder).compact().files_merged
        3
        """
        self.flush()
        report = compact_capture(self._capture, self.options, target_bytes=target_bytes)
        self.refresh()
        return report

    def refresh(self) -> None:
        """See files published by other writers since the store opened (or last refreshed)."""
        files, cutoff = self._capture.list_files()
        with self._state_lock:
            self._files, self._cutoff = files, cutoff

    def clear(self) -> None:
        """Hide every exchange recorded so far from traffic_lab's readers, deleting nothing.

        Writes a marker file; plain Parquet engines still see the rows (see the format doc).
        """
        self._writer.flush()
        cutoff = time.time_ns() // 1000
        self._cfs.publish(
            marker_name(cutoff, secrets.token_hex(4)),
            f'{{"cleared_before_us": {cutoff}}}\n'.encode(),
        )
        self.refresh()

    # -- Arrow access ------------------------------------------------------------------------------
    def dataset(self) -> ds.Dataset:
        """The capture's live, readable files as a ``pyarrow.dataset.Dataset`` (with ``day``).

        Buffered exchanges are not in it (:meth:`flush` first), and the :meth:`clear` cutoff is
        not applied (:meth:`to_arrow` applies it).
        """
        self.refresh()
        return self._capture.dataset(self._files)

    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: Any = None,
        *,
        writers: Collection[str] | Mapping[str, tuple[int, int]] | None = None,
        dictionaries: Collection[str] = (),
    ) -> pa.Table:
        """Rows as an Arrow table in recorded order; ``filter`` (a ``pyarrow.compute``
        Expression) is pushed down to the files, ``columns`` defaults to all plus ``day``.
        ``writers``, when the filter keeps only rows of those writer ids, skips the files of
        other writers without opening them (compacted files, which hold many, are read); as a
        mapping of writer id to the (least, greatest) ``writer_seq`` the filter keeps, it also
        skips that writer's files whose footer statistics hold none of them.
        ``dictionaries``: text columns returned as Arrow dictionaries, read as the files store
        them (faster, and far smaller for low-cardinality columns such as hosts).

        Blob-stored bodies are read in; buffered exchanges are included, cleared rows are not.

        Examples
        --------
        >>> import tempfile, pyarrow.compute as pc, traffic_lab as tl
        >>> s = tl.ParquetStream(tempfile.mkdtemp())
        >>> for status in (200, 503):
        ...     s.put(tl.Exchange("GET", "https://a.example/", status_code=status))
        >>> s.to_arrow(["response_status"], pc.field("response_status") >= 500).to_pylist()
        [{'response_status': 503}]
        """
        wanted = list(columns) if columns is not None else None
        read = None
        bodies = ["request_body", "response_body"]
        if wanted is not None:
            read = list(dict.fromkeys([*wanted, *ORDER_COLUMNS]))
            bodies = [body for body in bodies if body in wanted]
            read.extend(f"{body}_blob" for body in bodies)
        entries, names = self._writer.pending()
        table, cutoff = self._read_published(
            read, filter, exclude=names, bodies=bodies, writers=writers, dictionaries=dictionaries
        )
        if entries:
            where = time_filter(cutoff, filter)
            extra = self._pending_table(entries)
            if where is not None:
                extra = extra.filter(where)
            extra = extra.select(table.column_names).cast(table.schema.remove_metadata())
            table = pa.concat_tables([table.replace_schema_metadata(None), extra])
        # Files are written in order, so this is usually a cheap check rather than a sort.
        table = sort_recorded(table)
        if wanted is not None:
            table = table.select(wanted)
        return table.replace_schema_metadata(DATASET_SCHEMA.metadata)

    def live_files(self) -> tuple[list[str], int | None]:
        """The data files other engines should read, as they would be opened (a local path, or
        a path on the store's filesystem), and the clear cutoff (µs since the epoch: rows that
        started before it are hidden), for engines such as Spark that read the files
        themselves. Files that a ``compact()`` replaced, and unreadable files, are not listed;
        rows still buffered in this store are not in any file yet."""
        self.refresh()
        with self._state_lock:
            files, cutoff = self._files, self._cutoff
        return [self._cfs.full(f.rel) for f in files], cutoff

    def local_files(self) -> tuple[list[str], int | None] | None:
        """:meth:`live_files` when an embedded engine can read them itself and see every row:
        the capture is on the local filesystem and this store holds no buffered rows (those
        are in no file yet). ``None`` otherwise: read through :meth:`to_batches`."""
        if not self._cfs.local or self._writer.pending()[0]:
            return None
        return self.live_files()  # rows buffered after the check are later than the answer

    def to_batches(self, columns: Mapping[str, Any], filter: Any = None) -> pa.RecordBatchReader:
        """Rows matching ``filter`` as a stream of record batches projected to ``columns``
        (name -> ``pyarrow.compute`` Expression over the capture's columns), for engines that
        read out of core (memory bounded by a batch, not the capture).

        The capture's rules hold as in :meth:`to_arrow`: cleared rows are left out, a file that
        a ``compact()`` replaced is not read, buffered exchanges come last, an unreadable file
        is named and skipped. Rows come in file order, not recorded order. The stream can be
        read once; a file deleted while it is read raises ``StoreNotFoundError``: read again
        (``while_compacting``).
        """
        self.refresh()
        with self._state_lock:
            files, cutoff = self._files, self._cutoff
        entries, names = self._writer.pending()
        files = [f for f in files if f.rel not in names]
        where = time_filter(cutoff, filter)
        projection: Any = dict(columns)  # the stubs know only a list of names
        schema = self._capture.dataset([]).scanner(columns=projection).projected_schema

        def batches() -> Iterator[pa.RecordBatch]:
            for f in files:
                yield from self._capture.file_batches(f, projection, where)
            if entries:
                import pyarrow.dataset as ds

                # The row columns only (the writer adds columns kept beside them).
                rows = self._pending_table(entries).select(DATASET_SCHEMA.names)
                pending = ds.dataset(rows, schema=DATASET_SCHEMA)
                yield from pending.scanner(columns=projection, filter=where).to_batches()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def recorded_chunks(
        self, rows: Mapping[tuple[str, int], int]
    ) -> dict[tuple[str, int], tuple[Chunk, ...]]:
        """The recorded chunks (schema v3) of the rows named by ``(writer_id, writer_seq)``,
        given each row's response body length: only files of those writers are opened, only
        their ``writer_seq``, body size and chunk columns are read, and a list that does not
        describe its body (or a file that cannot be read, or a column of another type) is left
        out. Rows read whole (no chunks recorded) are absent from the answer."""
        import pyarrow.dataset as ds

        if not rows:
            return {}
        self.refresh()
        with self._state_lock:
            files = self._files
        wanted: dict[str, dict[int, int]] = {}
        for (writer_id, seq), size in rows.items():
            wanted.setdefault(writer_id, {})[int(seq)] = int(size)
        found: dict[tuple[str, int], tuple[Chunk, ...]] = {}
        for f in files:
            seqs = wanted.get(f.writer_id)
            if not seqs:
                continue
            try:
                dataset = ds.dataset(
                    self._cfs.full(f.rel), format="parquet", filesystem=self._cfs.fs
                )
                if CHUNKS_COLUMN not in dataset.schema.names:
                    continue
                table = dataset.to_table(
                    columns=["writer_id", "writer_seq", CHUNKS_COLUMN],
                    filter=pc.field("writer_seq").isin(list(seqs)),
                )
            except (pa.ArrowException, OSError, ValueError):
                continue
            column = ChunkColumn(table)
            ids = table.column("writer_id").to_pylist()
            for i, number in enumerate(table.column("writer_seq").to_pylist()):
                if ids[i] != f.writer_id or not isinstance(number, int) or number not in seqs:
                    continue
                chunks = column.row(i, seqs[number])
                if chunks is not None:
                    found[(f.writer_id, number)] = chunks
        return found

    def _read_published(
        self,
        columns: Sequence[str] | None,
        filter: Any = None,
        *,
        exclude: Collection[str] = (),
        bodies: Collection[str] = (),
        writers: Collection[str] | Mapping[str, tuple[int, int]] | None = None,
        dictionaries: Collection[str] = (),
    ) -> tuple[pa.Table, int | None]:
        """Rows of the published files (but ``exclude``; only ``writers``' files and compacted
        ones, when given) matching ``filter`` and not cleared, with ``bodies`` read from blobs;
        and the clear cutoff. Retried if compaction interferes."""

        def read() -> tuple[pa.Table, int | None]:
            self.refresh()
            with self._state_lock:
                files, cutoff = self._files, self._cutoff
            files = [f for f in files if f.rel not in exclude]
            if writers is not None:
                # A writer's file holds its rows only; a compacted one names no writer.
                files = [f for f in files if not f.writer_id or f.writer_id in writers]
                if isinstance(writers, Mapping):
                    files = [f for f in files if not f.writer_id or _holds(f, writers)]
            where = time_filter(cutoff, filter)
            return self._capture.scan(files, columns, where, bodies, dictionaries), cutoff

        return while_compacting(read, path=self.path)

    def _pending_table(self, entries: Sequence[Entry]) -> pa.Table:
        table = entries_table(entries, self.matcher, self._writer.writer_id)
        days = pa.array([day_of(e.started_us) for e in entries], pa.int32())
        return table.append_column("day", days).replace_schema_metadata(None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._cfs.url!r}>"


def _holds(f: DataFile, seqs: Mapping[str, tuple[int, int]]) -> bool:
    """Whether file ``f``'s ``writer_seq`` range (from its footer) meets the range wanted of
    its writer; a file without statistics may hold anything."""
    low, high = seqs[f.writer_id]
    return f.seqs is None or (f.seqs[0] <= high and low <= f.seqs[1])
