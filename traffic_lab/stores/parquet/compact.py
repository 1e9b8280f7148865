"""Maintenance of a capture: folding dead writers' durable logs, and compaction.

Compaction merges the small files of a day partition into one larger file (per matcher
fingerprint). The new file lists, in its metadata (``traffic_lab.replaces``), every file it
replaces, so readers ignore those files from the moment it appears; only then, and only after
re-reading the new file and checking that it holds exactly the rows of the files it replaces,
are those files deleted. Readers keep working throughout: a reader that still tries to read a
deleted file lists the capture again and carries on.

Only one ``compact()`` runs at a time per capture: on a local disk it holds an exclusive
``flock`` on the capture folder itself (released by the kernel if the process dies, so nothing is
left behind); on an object store, run it from one process at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from ...errors import StoreError
from ...matching import Matcher
from ._fs import TEMP_SUFFIX
from ._log import claim_log, read_log
from .reader import STALE_TEMP_SECONDS, Capture, DataFile, SkippedFileWarning
from .schema import META_REPLACES, META_TIME_RANGE, SCHEMA
from .writer import BLOBS_DIR, LOGS_DIR, Entry, data_file_name, write_entries, write_table

__all__ = ["CompactionReport", "compact_capture", "recover_logs"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
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
        lock = _THREAD_LOCKS.setdefault(capture.cfs.url, threading.Lock())
    with lock:
        if not capture.cfs.local or not os.path.isdir(capture.cfs.root):
            yield
            return
        fd = os.open(capture.cfs.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock


def _published_seqs(capture: Capture, writer_id: str) -> set[int]:
    files, _ = capture.list_files()
    relevant = [f for f in files if f.writer_id in (writer_id, "")]
    if not relevant:
        return set()
    table = capture.dataset(relevant).to_table(
        columns=["writer_seq"], filter=pc.field("writer_id") == writer_id
    )
    seqs: list[Any] = table.column("writer_seq").to_pylist()
    return set(seqs)


def recover_logs(
    capture: Capture,
    *,
    row_group_size: int,
    compression: str,
    blob_threshold: int,
) -> int:
    """Fold the log segments of dead writers into Parquet; the number of exchanges recovered.

    Rows already published (by the writer before it died, possibly compacted since) are not
    written again: each is identified by its writer id and sequence number.
    """
    recovered = 0
    for path in capture.log_paths():
        fd = claim_log(path)
        if fd is None:
            continue
        try:
            try:
                contents = read_log(path)
            except (ValueError, OSError, UnicodeDecodeError) as exc:
                warnings.warn(
                    f"{path}: unreadable durable log ({exc}); skipped",
                    SkippedFileWarning,
                    stacklevel=3,
                )
                continue
            if contents.records:
                present = _published_seqs(capture, contents.writer_id)
                entries = [
                    Entry((ex.started_at - _EPOCH) // _US, seq, ex, key)
                    for seq, ex, key in contents.records
                    if seq not in present
                ]
                if entries:
                    token = secrets.token_hex(3)

                    def name(
                        day: int,
                        w: str = contents.writer_id,
                        s: int = contents.segment,
                        t: str = token,
                    ) -> str:
                        rel = data_file_name(day, w, s)
                        if capture.cfs.exists(rel):  # published but unreadable: keep both
                            rel = rel.replace(".parquet", f"-r{t}.parquet")
                        return rel

                    write_entries(
                        capture.cfs,
                        entries,
                        matcher=Matcher(),
                        writer_id=contents.writer_id,
                        segment=contents.segment,
                        blob_threshold=blob_threshold,
                        row_group_size=row_group_size,
                        compression=compression,
                        sync=True,
                        names=name,
                        fingerprint=contents.fingerprint,
                    )
                    recovered += len(entries)
            os.unlink(path)
        finally:
            os.close(fd)
    return recovered


def compact_capture(
    capture: Capture,
    *,
    target_bytes: int,
    row_group_size: int,
    compression: str,
    blob_threshold: int,
) -> CompactionReport:
    """Merge small files per day partition (see the module docstring)."""
    report = CompactionReport()
    with _exclusive(capture):
        report.logs_recovered = recover_logs(
            capture,
            row_group_size=row_group_size,
            compression=compression,
            blob_threshold=blob_threshold,
        )
        files, _ = capture.list_files()
        groups: dict[tuple[int, str], list[DataFile]] = {}
        for f in files:
            if f.size < target_bytes:
                groups.setdefault((f.day, f.fingerprint), []).append(f)
        for (day, _fingerprint), small in sorted(groups.items()):
            small.sort(key=lambda f: (f.first_us, f.rel))
            batch: list[DataFile] = []
            size = 0
            for f in small:
                if batch and size + f.size > target_bytes:
                    _merge(capture, day, batch, report, row_group_size, compression)
                    batch, size = [], 0
                batch.append(f)
                size += f.size
            _merge(capture, day, batch, report, row_group_size, compression)
        report.temporaries_removed = _remove_stale_temporaries(capture)
    return report


def _merge(
    capture: Capture,
    day: int,
    batch: list[DataFile],
    report: CompactionReport,
    row_group_size: int,
    compression: str,
) -> None:
    if len(batch) < 2:
        return
    tables = [capture.read_columns(f, SCHEMA.names) for f in batch]
    table = pa.concat_tables(tables, promote_options="default")
    order = pc.sort_indices(
        table,
        sort_keys=[
            ("started_at", "ascending"),
            ("writer_id", "ascending"),
            ("writer_seq", "ascending"),
        ],
    )
    table = table.take(order)
    replaces = sorted({f.rel for f in batch} | {r for f in batch for r in f.replaces})
    times = pc.min_max(table.column("started_at").cast(pa.int64()))
    meta = dict(tables[0].schema.metadata or {})
    meta.pop(b"traffic_lab.writer_id", None)
    meta[META_REPLACES] = json.dumps(replaces).encode()
    meta[META_TIME_RANGE] = f"{times['min'].as_py()},{times['max'].as_py()}".encode()
    table = table.replace_schema_metadata(meta)
    rel = f"day={day}/compact-{time.time_ns() // 1000:017d}-{secrets.token_hex(4)}.parquet"
    write_table(capture.cfs, rel, table, row_group_size=row_group_size, compression=compression)
    # Verify before deleting anything: the new file must hold exactly the merged rows.
    with capture.cfs.open_input(rel) as f:
        check = pq.read_table(f, columns=["writer_id", "writer_seq"])
    expected = _row_ids(table)
    if check.num_rows != table.num_rows or _row_ids(check) != expected:
        capture.cfs.delete(rel)
        raise StoreError(
            "compaction check failed; nothing was deleted", path=capture.cfs.display(rel)
        )
    for old in replaces:
        if capture.cfs.exists(old):
            capture.cfs.delete(old)
            report.deleted.append(old)
    report.files_merged += len(batch)
    report.files_written += 1
    report.rows += table.num_rows


def _row_ids(table: pa.Table) -> list[tuple[str, int]]:
    writers: list[Any] = table.column("writer_id").to_pylist()
    seqs: list[Any] = table.column("writer_seq").to_pylist()
    return sorted(zip(writers, seqs, strict=True))


def _remove_stale_temporaries(capture: Capture) -> list[str]:
    """Delete temporary files (data, blobs, logs) older than ``STALE_TEMP_SECONDS``."""
    cfs = capture.cfs
    folders = [e.base_name for e in cfs.list_dir("") if e.type == pafs.FileType.Directory]
    folders.append(LOGS_DIR)
    folders.extend(
        f"{BLOBS_DIR}/{e.base_name}"
        for e in cfs.list_dir(BLOBS_DIR)
        if e.type == pafs.FileType.Directory
    )
    removed = []
    now = time.time()
    for folder in folders:
        for info in cfs.list_dir(folder):
            name = info.base_name
            if (
                info.type == pafs.FileType.File
                and name.startswith(".")
                and name.endswith((TEMP_SUFFIX, ".new"))
                and info.mtime is not None
                and now - info.mtime.timestamp() > STALE_TEMP_SECONDS
            ):
                rel = f"{folder}/{name}"
                cfs.delete(rel)
                removed.append(rel)
    return removed
