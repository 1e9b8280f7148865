"""The durable log: folding a dead writer's segment, once, and the log format's torn tail."""

from __future__ import annotations

import os
import shutil
import warnings

import fsspec
import pytest

import traffic_lab as tl
from traffic_lab.stores.parquet import SkippedFileWarning
from traffic_lab.stores.parquet._log import DurableLog, encode_record, read_log

from .conftest import exchange


def _logs(folder):
    path = os.path.join(folder, "_traffic_lab", "logs")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_a_dead_writers_log_is_folded_when_a_store_opens(tmp_path):
    log_path = os.path.join(tmp_path, "_traffic_lab", "logs", "deadbeefdeadbeef-000003.log")
    log = DurableLog(log_path, writer_id="deadbeefdeadbeef", segment=3, fingerprint="")
    for seq in range(3):
        log.append(encode_record(seq, exchange(seq), f"key{seq}"))
    log.append(encode_record(3, exchange(3), "key3")[:-5])  # torn by the crash
    log.close()  # the process "dies": its lock is gone, the file stays
    assert read_log(log_path).torn_bytes > 0
    stream = tl.ParquetStream(tmp_path)
    assert [e.url for e in stream.exchanges()] == [exchange(i).url for i in range(3)]
    assert _logs(tmp_path) == []
    files = sorted(os.listdir(tmp_path / "day=20260301"))
    assert files == ["part-deadbeefdeadbeef-000003.parquet"]


def test_a_live_writers_log_is_left_alone(tmp_path):
    writer = tl.ParquetStream(tmp_path, durable=True)
    writer.put(exchange(1))
    [segment] = _logs(tmp_path)
    other = tl.ParquetStream(tmp_path)  # would fold the log if it could lock it
    assert (_logs(tmp_path), len(other)) == ([segment], 0)
    writer.close()
    assert _logs(tmp_path) == []
    other.refresh()
    assert len(other) == 1


def test_rows_already_published_are_not_folded_twice(tmp_path):
    writer = tl.ParquetStream(tmp_path, durable=True)
    for i in range(4):
        writer.put(exchange(i))
    [segment] = _logs(tmp_path)
    saved = tmp_path / "saved.log"
    shutil.copy(tmp_path / "_traffic_lab" / "logs" / segment, saved)
    writer.close()  # published, log deleted
    with tl.ParquetStream(tmp_path) as extra:
        extra.put(exchange(10))
    assert tl.ParquetStream(tmp_path).compact().files_merged == 2
    # As if the writer had died after publishing but before deleting its log.
    shutil.move(saved, tmp_path / "_traffic_lab" / "logs" / segment)
    stream = tl.ParquetStream(tmp_path)
    assert [e.url for e in stream.exchanges()] == [exchange(i).url for i in (0, 1, 2, 3, 10)]
    assert _logs(tmp_path) == []


def test_an_unreadable_log_is_kept_and_named(tmp_path):
    logs = tmp_path / "_traffic_lab" / "logs"
    logs.mkdir(parents=True)
    bad = logs / "0000000000000000-000000.log"
    bad.write_bytes(b"not a log")
    with pytest.warns(SkippedFileWarning, match=f"{bad}: unreadable durable log"):
        tl.ParquetStream(tmp_path)
    assert bad.read_bytes() == b"not a log"


def test_an_fsspec_filesystem_is_accepted(tmp_path):
    local = fsspec.filesystem("file")
    with tl.ParquetCache(str(tmp_path), filesystem=local, durable=True) as cache:
        cache.put(exchange(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reopened = tl.ParquetCache(str(tmp_path), filesystem=local)
    assert len(reopened) == 1
    assert [e.url for e in tl.ParquetStream(tmp_path).exchanges()] == [exchange(1).url]


def test_a_store_never_closed_publishes_at_exit(tmp_path):
    import subprocess
    import sys

    code = (
        "import traffic_lab as tl\n"
        f"s = tl.ParquetStream({str(tmp_path)!r}, flush_seconds=None)\n"
        "s.put(tl.Exchange('GET', 'https://a.example/', status_code=200))\n"
        "del s\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    assert [e.url for e in tl.ParquetStream(tmp_path).exchanges()] == ["https://a.example/"]
