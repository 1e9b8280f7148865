"""Maintenance of a capture: folding dead writers' durable logs, and compaction.

Compaction merges the small files of a day partition (per matcher fingerprint). The new file
names every file it replaces (``traffic_lab.replaces``), so readers ignore those at once; they
are deleted only after the new file is re-read and found to hold exactly their rows, and only
if ``compact()`` listed them itself (names checked by ``_validate``, inside the capture).

One ``compact()`` at a time per capture: on a local disk it holds a kernel lock (``_locks``) on
the capture folder (Windows: on ``_traffic_lab/compact.lock``), which a dead process cannot
leave behind; on an object store, run it from one process at a time.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from ...errors import CorruptCaptureError, StoreError, StoreNotFoundError, preview
from ...matching import Matcher
from ._fs import TEMP_SUFFIX
from ._locks import folders_lockable
from ._locks import lock as lock_file
from ._log import LogContents, claim_log, read_log
from ._options import ParquetOptions
from ._validate import day_folder
from .reader import (
    MARKERS_DIR,
    ORDER,
    STALE_TEMP_SECONDS,
    Capture,
    DataFile,
    while_compacting,
)
from .schema import (
    CHUNKS_COLUMN,
    CHUNKS_FIELD,
    EPOCH,
    META_FINGERPRINT,
    META_REPLACES,
    META_SCHEMA_VERSION,
    META_TIME_RANGE,
    ONE_US,
    SCHEMA,
    SCHEMA_VERSION,
)
from .writer import BLOBS_DIR, LOGS_DIR, Entry, data_file_name, write_entries, write_table

__all__ = ["CompactionReport", "compact_capture", "recover_logs"]

# Windows only (POSIX locks the capture folder itself).
_LOCK_FILE = "_traffic_lab/compact.lock"
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@dataclass
class CompactionReport:
    """What :meth:`compact` did."""

    files_merged: int = 0
    files_written: int = 0
    rows: int = 0
    deleted: list[str] = field(default_factory=list)
    temporaries_removed: list[str] = field(default_factory=list)
    logs_recovered: int = 0


@contextmanager
def _exclusive(capture: Capture) -> Iterator[None]:
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(capture.cfs.url, threading.Lock())
    with thread_lock:
        if not capture.cfs.local or not os.path.isdir(capture.cfs.root):
            yield
            return
        if folders_lockable():
            fd = os.open(capture.cfs.root, os.O_RDONLY)
        else:  # Windows locks files only: a file that is never deleted, locked the same way
            capture.cfs.makedirs(_LOCK_FILE.rpartition("/")[0])
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(capture.cfs.full(_LOCK_FILE), flags, 0o644)
        try:
            lock_file(fd)
            yield
        finally:
            os.close(fd)  # closing drops the lock


def _published_seqs(capture: Capture, writer_id: str) -> set[int]:
    def read() -> set[int]:
        files, _ = capture.list_files()
        relevant = [f for f in files if f.writer_id in (writer_id, "")]
        if not relevant:
            return set()
        table = capture.scan(relevant, ["writer_seq"], pc.field("writer_id") == writer_id)
        seqs: list[Any] = table.column("writer_seq").to_pylist()
        return set(seqs)

    return while_compacting(read, path=capture.cfs.url)


def recover_logs(capture: Capture, options: ParquetOptions) -> int:
    """Fold dead writers' log segments into Parquet; the number of exchanges recovered.

    Rows already published (identified by writer id and sequence number) are not written again.
    An invalid segment is named and kept; a record that is not a storable exchange is named and
    left out.
    """
    recovered = 0
    for path, writer_id, segment in capture.logs():
        fd = claim_log(path)
        if fd is None:
            continue
        try:
            rel = os.path.relpath(path, capture.cfs.root)
            try:
                contents = read_log(path, fd)
                if (contents.writer_id, contents.segment) != (writer_id, segment):
                    raise ValueError(
                        f"its header names writer {contents.writer_id} segment "
                        f"{contents.segment}, not those of its file name"
                    )
            except (ValueError, OSError) as exc:
                capture.bad_file(rel, f"unreadable durable log ({exc})", exc)
                continue
            display = capture.cfs.display(rel)
            for number, why in contents.bad_records:
                capture.bad_entry(CorruptCaptureError(f"record {number}: {why}", path=display))
            recovered += _fold(capture, contents, display, options)
            try:
                os.unlink(path)
            except PermissionError:  # Windows deletes no open file: release it first
                os.close(fd)
                fd = -1
                os.unlink(path)
        finally:
            if fd >= 0:
                os.close(fd)
    return recovered


def _fold(
    capture: Capture,
    contents: LogContents,
    where: str,
    options: ParquetOptions,
) -> int:
    """Publish a dead writer's logged exchanges that are not in the capture yet; how many."""
    if not contents.records:
        return 0
    present = _published_seqs(capture, contents.writer_id)
    entries = [
        Entry((ex.started_at - EPOCH) // ONE_US, seq, ex, key)
        for seq, ex, key in contents.records
        if seq not in present
    ]
    if not entries:
        return 0
    token = secrets.token_hex(3)

    def name(day: int) -> str:
        rel = data_file_name(day, contents.writer_id, contents.segment)
        if capture.cfs.exists(rel):  # published but unreadable: keep both
            rel = rel.replace(".parquet", f"-r{token}.parquet")
        return rel

    dropped = write_entries(
        capture.cfs,
        entries,
        matcher=Matcher(),
        writer_id=contents.writer_id,
        segment=contents.segment,
        options=options,
        sync=True,
        names=name,
        fingerprint=contents.fingerprint,
    )
    for entry, exc in dropped:
        capture.bad_entry(
            CorruptCaptureError(
                f"record of seq {entry.seq}: {type(exc).__name__}: {preview(str(exc), 200)}",
                path=where,
            )
        )
    return len(entries) - len(dropped)


def compact_capture(
    capture: Capture, options: ParquetOptions, *, target_bytes: int
) -> CompactionReport:
    """Merge small files per day partition (see the module docstring)."""
    report = CompactionReport()
    with _exclusive(capture):
        report.logs_recovered = recover_logs(capture, options)
        files, _ = capture.list_files()
        groups: dict[tuple[int, str], list[DataFile]] = {}
        for f in files:
            if f.size < target_bytes and f.complete:
                groups.setdefault((f.day, f.fingerprint), []).append(f)
        for (day, _fingerprint), small in sorted(groups.items()):
            small.sort(key=lambda f: (f.first_us, f.rel))
            batch: list[DataFile] = []
            size = 0
            for f in small:
                if batch and size + f.size > target_bytes:
                    _merge(capture, day, batch, report, options)
                    batch, size = [], 0
                batch.append(f)
                size += f.size
            _merge(capture, day, batch, report, options)
        report.temporaries_removed = _remove_stale_temporaries(capture)
    return report


def _merge(
    capture: Capture,
    day: int,
    batch: list[DataFile],
    report: CompactionReport,
    options: ParquetOptions,
) -> None:
    if len(batch) < 2:
        return
    merged: list[DataFile] = []
    tables = []
    for f in batch:
        try:
            read = capture.read_columns(f, [*SCHEMA.names, CHUNKS_COLUMN])
            table = read.select(SCHEMA.names).cast(SCHEMA)
            chunks: Any = read.column(CHUNKS_COLUMN)
            if chunks.type != CHUNKS_FIELD.type:  # not ours: the merged rows have none
                chunks = pa.nulls(read.num_rows, CHUNKS_FIELD.type)
            table = table.append_column(CHUNKS_FIELD, chunks)
        except CorruptCaptureError as exc:
            capture.reject(f.rel, exc)
            continue
        except (pa.ArrowException, ValueError) as exc:  # e.g. a null where none may be
            path = capture.cfs.display(f.rel)
            capture.reject(f.rel, CorruptCaptureError(f"cannot be merged ({exc})", path=path))
            continue
        tables.append(table)
        merged.append(f)
    if len(merged) < 2:
        return
    table = pa.concat_tables(tables)
    table = table.take(pc.sort_indices(table, sort_keys=ORDER))
    ids = _row_ids(table)
    # Files that the merged ones replace and that are still there (a crash came between
    # publishing and deleting) are replaced by the new file too, if it holds all their rows.
    inherited = {r for f in merged for r in f.replaces} - {f.rel for f in merged}
    held = set(ids)
    covered = [rel for rel in sorted(inherited) if _holds_rows_of(capture, rel, held)]
    replaces = sorted([*(f.rel for f in merged), *covered])
    times = pc.min_max(table.column("started_at").cast(pa.int64()))
    meta = {
        META_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
        META_FINGERPRINT: merged[0].fingerprint.encode(),
        META_REPLACES: json.dumps(replaces).encode(),
        META_TIME_RANGE: f"{times['min'].as_py()},{times['max'].as_py()}".encode(),
    }
    table = table.replace_schema_metadata(meta)
    rel = f"day={day}/compact-{time.time_ns() // 1000:017d}-{secrets.token_hex(4)}.parquet"
    write_table(capture.cfs, rel, table, options)
    # Verify before deleting anything: the new file must hold exactly the merged rows.
    with capture.cfs.open_input(rel) as written:
        check = pq.read_table(written, columns=["writer_id", "writer_seq"])
    if check.num_rows != table.num_rows or _row_ids(check) != ids:
        capture.cfs.delete(rel)
        raise StoreError(
            "compaction check failed; nothing was deleted", path=capture.cfs.display(rel)
        )
    for old in replaces:
        if capture.cfs.exists(old):
            capture.cfs.delete(old)
            report.deleted.append(old)
    report.files_merged += len(merged)
    report.files_written += 1
    report.rows += table.num_rows


def _holds_rows_of(capture: Capture, rel: str, ids: set[tuple[str, int]]) -> bool:
    """Whether every row of the listed file ``rel`` is in ``ids`` (False if unreadable)."""
    f = capture.described(rel)
    if f is None:
        return False
    try:
        table = capture.read_columns(f, ["writer_id", "writer_seq"])
    except (CorruptCaptureError, StoreNotFoundError):
        return False
    return set(_row_ids(table)) <= ids


def _row_ids(table: pa.Table) -> list[tuple[str, int]]:
    writers: list[Any] = table.column("writer_id").to_pylist()
    seqs: list[Any] = table.column("writer_seq").to_pylist()
    return sorted(zip(writers, seqs, strict=True))


def _remove_stale_temporaries(capture: Capture) -> list[str]:
    """Delete temporary files (data, blobs, logs, markers) older than ``STALE_TEMP_SECONDS``."""
    root = capture.list_folder("")
    folders = [
        e.base_name
        for e in root
        if e.type == pafs.FileType.Directory and day_folder(e.base_name) is not None
    ]
    folders.extend([LOGS_DIR, MARKERS_DIR])
    folders.extend(
        f"{BLOBS_DIR}/{e.base_name}"
        for e in capture.list_folder(BLOBS_DIR)
        if e.type == pafs.FileType.Directory and len(e.base_name) == 2
    )
    removed = []
    now = time.time()
    for folder in folders:
        for info in capture.list_folder(folder):
            name = info.base_name
            if (
                info.type == pafs.FileType.File
                and name.startswith(".")
                and name.endswith((TEMP_SUFFIX, ".new"))
                and info.mtime is not None
                and now - info.mtime.timestamp() > STALE_TEMP_SECONDS
            ):
                rel = f"{folder}/{name}"
                try:
                    capture.cfs.delete(rel)
                except PermissionError:  # Windows: open (a live segment's second name)
                    continue
                removed.append(rel)
    return removed
