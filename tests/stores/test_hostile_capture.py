"""Hostile and broken captures: nothing in a capture is used as a path without validation, a
bad file or row costs only itself, and readers keep working while ``compact()`` runs.

Every capture here is made in ``tmp_path / "cap"``; tests that could write or delete outside it
check ``tmp_path`` afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import threading
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import traffic_lab as tl
from traffic_lab.errors import (
    CorruptCaptureError,
    InvalidExchangeError,
    SkippedEntryWarning,
    SkippedFileWarning,
    StoreError,
)
from traffic_lab.stores.parquet import exchanges_to_table
from traffic_lab.stores.parquet._log import DurableLog, encode_record
from traffic_lab.stores.parquet.schema import META_REPLACES, META_TIME_RANGE

from .conftest import T0, exchange

DAY = "day=20260301"
GOOD_WID = "0123456789abcdef"
BAD_WID = "fedcba9876543210"


# -- helpers ----------------------------------------------------------------------------------
def _request(i: int) -> httpx.Request:
    return httpx.Request("GET", exchange(i).url)


def _urls(ids) -> list[str]:
    return [exchange(i).url for i in ids]


def _table(ids, writer_id: str = BAD_WID) -> pa.Table:
    """Rows for exchanges ``ids`` in the capture schema, as a writer would publish them."""
    items = [exchange(i) for i in ids]
    table = exchanges_to_table(items, tl.Matcher(), writer_id=writer_id, first_seq=ids[0])
    first = (items[0].started_at - T0) // timedelta(microseconds=1)
    last = (items[-1].started_at - T0) // timedelta(microseconds=1)
    base = (T0 - T0.replace(year=1970, month=1, day=1, hour=0)) // timedelta(microseconds=1)
    meta = dict(table.schema.metadata or {})
    meta[META_TIME_RANGE] = f"{base + first},{base + last}".encode()
    return table.replace_schema_metadata(meta)


def _with_meta(table: pa.Table, key: bytes, value: bytes) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), key: value})


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    i = table.schema.get_field_index(name)
    field = pa.field(name, values.type, nullable=True)
    return table.set_column(i, field, values).replace_schema_metadata(table.schema.metadata)


def _publish(cap: Path, table: pa.Table, name: str = f"part-{BAD_WID}-000000.parquet") -> Path:
    path = cap / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _good_capture(cap: Path, ids=(0, 1, 2), files: int = 1) -> None:
    """A capture written by traffic_lab itself: ``ids`` in ``files`` files."""
    ids = list(ids)
    per_file = -(-len(ids) // files)
    for start in range(0, len(ids), per_file):
        with tl.ParquetStream(cap) as stream:
            for i in ids[start : start + per_file]:
                stream.put(exchange(i))


def _tree(root: Path) -> list[str]:
    """Every path under ``root`` (files, folders, links), relative, sorted."""
    out = []
    for folder, dirs, files in os.walk(root):
        out.extend(os.path.relpath(os.path.join(folder, n), root) for n in dirs + files)
    return sorted(out)


def _outside(tmp_path: Path) -> list[str]:
    """What exists in ``tmp_path`` beside the capture (and the files a test put there)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "cap")


def _returns_within(seconds: float, fn: Callable[[], Any], fifo: Path | None = None) -> Any:
    """``fn()``, failing the test (instead of hanging it) if it takes longer than ``seconds``.

    A reader stuck opening ``fifo`` is released by opening the FIFO's other end.
    """
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(5)
        pytest.fail(f"still running after {seconds} s (blocked on {fifo}?)")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _row(seq: int, writer_id: str = BAD_WID) -> str:
    """How warnings and errors name a row: by its identity (writer_id, writer_seq)."""
    return f"row ({writer_id}, {seq})"


def _stream_urls(cap: Path, **kw: Any) -> list[str]:
    return [e.url for e in tl.ParquetStream(cap, **kw).exchanges()]


def _record(payload_parts: Any, bodies: bytes = b"") -> bytes:
    """A durable-log record with a valid frame and CRC around any JSON payload."""
    meta = json.dumps(payload_parts).encode()
    payload = struct.pack("<I", len(meta)) + meta + bodies
    return struct.pack("<4sII", b"TLR1", len(payload), zlib.crc32(payload)) + payload


def _dead_log(cap: Path, name: str, header: bytes, records: list[bytes]) -> Path:
    """A log segment left by a dead writer, with any header line and records."""
    path = cap / "_traffic_lab" / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"TLLOG1\n" + header + b"\n" + b"".join(records))
    return path


def _header(writer_id: str = GOOD_WID, segment: int = 0) -> bytes:
    return json.dumps({"writer_id": writer_id, "segment": segment, "fingerprint": ""}).encode()


# -- 1. compact() deletes nothing outside the capture -----------------------------------------
HOSTILE_REPLACES = [
    "../victim.txt",
    f"{DAY}/../../victim.txt",
    "/etc/../" + "../" * 20 + "tmp/victim.txt",
    f"{DAY}/part-{GOOD_WID}-000000.parquet/../../../victim.txt",
]


@pytest.mark.parametrize("entry", HOSTILE_REPLACES)
def test_compact_never_deletes_a_file_a_replaces_entry_points_outside(tmp_path, entry):
    cap = tmp_path / "cap"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    _good_capture(cap, range(3), files=3)
    table = _with_meta(_table([10, 11]), META_REPLACES, json.dumps([entry]).encode())
    hostile = _publish(cap, table, "compact-01772323200000000-5be1c2aa.parquet")
    with pytest.warns(SkippedFileWarning, match=re.escape(str(hostile))):
        report = tl.ParquetStream(cap).compact()
    assert victim.read_text() == "precious"
    assert _outside(tmp_path) == ["victim.txt"]
    assert report.files_merged == 3
    assert hostile.exists()  # skipped, not merged, not deleted
    with pytest.warns(SkippedFileWarning, match=re.escape(str(hostile))):
        assert _stream_urls(cap) == _urls(range(3))


def test_the_compact_command_never_deletes_outside_the_capture(tmp_path):
    from tests.cli.conftest import run

    cap = tmp_path / "cap"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    _good_capture(cap, range(2), files=2)
    table = _with_meta(_table([10]), META_REPLACES, b'["../victim.txt"]')
    hostile = _publish(cap, table, "compact-01772323200000000-5be1c2aa.parquet")
    done = run("compact", cap)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious"
    assert str(hostile) in done.stderr
    assert "merged 2 files into 1 (2 exchanges)" in done.stderr


def test_compact_deletes_only_files_whose_rows_its_output_holds(tmp_path):
    # A compacted file claiming to replace a real file whose rows it does not hold: readers
    # ignore that file while the claim stands, but compact() never deletes it, and drops the
    # claim (the file is live again afterwards, nothing is lost).
    cap = tmp_path / "cap"
    _good_capture(cap, [0, 1])
    [real] = (cap / DAY).iterdir()
    claim = json.dumps([f"{DAY}/{real.name}"]).encode()
    liar = _publish(
        cap,
        _with_meta(_table([10, 11]), META_REPLACES, claim),
        "compact-01772323200000000-5be1c2aa.parquet",
    )
    with tl.ParquetStream(cap) as extra:
        extra.put(exchange(12))
    [added] = {p.name for p in (cap / DAY).iterdir()} - {real.name, liar.name}
    assert _stream_urls(cap) == _urls([10, 11, 12])  # the claim hides rows 0 and 1
    report = tl.ParquetStream(cap).compact()
    assert sorted(report.deleted) == [f"{DAY}/{liar.name}", f"{DAY}/{added}"]
    assert real.exists()
    assert _stream_urls(cap) == _urls([0, 1, 10, 11, 12])


# -- 2. opening a capture writes nothing outside it -------------------------------------------
EVIL_WRITER_IDS = ["x/../../../outside/evil", "../../../outside/evil", "A" * 16, "0" * 65, ""]


@pytest.mark.parametrize("store", [tl.ParquetStream, tl.ParquetCache])
@pytest.mark.parametrize("writer_id", EVIL_WRITER_IDS)
def test_a_log_header_cannot_make_recovery_write_outside_the_capture(tmp_path, store, writer_id):
    cap = tmp_path / "cap"
    _good_capture(cap, [0])
    record = encode_record(0, exchange(5), "k")
    log = _dead_log(cap, f"{GOOD_WID}-000000.log", _header(writer_id), [record])
    before = _tree(cap)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(log))):
        opened = store(cap)
    assert _outside(tmp_path) == []
    assert _tree(cap) == before  # nothing written; the log is kept
    assert [e.url for e in opened.exchanges()] == _urls([0])


def test_a_log_whose_header_names_another_writer_than_its_file_is_skipped(tmp_path):
    cap = tmp_path / "cap"
    log = _dead_log(cap, f"{GOOD_WID}-000000.log", _header(BAD_WID), [])
    with pytest.warns(SkippedFileWarning, match=re.escape(f"{log}: ") + ".*writer"):
        tl.ParquetStream(cap)
    assert log.exists()


@pytest.mark.parametrize(
    "name", ["evil.log", "x-000000.log", f"{GOOD_WID}-0.log", f"{GOOD_WID}--00001.log"]
)
def test_a_log_with_a_name_outside_the_grammar_is_named_and_not_read(tmp_path, name):
    cap = tmp_path / "cap"
    log = _dead_log(cap, name, _header(), [encode_record(0, exchange(1), "k")])
    with pytest.warns(SkippedFileWarning, match=re.escape(str(log))):
        stream = tl.ParquetStream(cap)
    assert list(stream.exchanges()) == []
    assert _tree(cap) == ["_traffic_lab", "_traffic_lab/logs", f"_traffic_lab/logs/{name}"]


def test_a_log_segment_out_of_range_is_skipped(tmp_path):
    cap = tmp_path / "cap"
    log = _dead_log(cap, f"{GOOD_WID}-000000.log", _header(segment=-1), [])
    with pytest.warns(SkippedFileWarning, match=re.escape(str(log))):
        tl.ParquetStream(cap)
    assert not (cap / DAY).exists()


def test_a_symlinked_log_is_not_followed(tmp_path):
    cap = tmp_path / "cap"
    target = tmp_path / "elsewhere.log"
    target.write_bytes(b"TLLOG1\n" + _header() + b"\n" + encode_record(0, exchange(1), "k"))
    logs = cap / "_traffic_lab" / "logs"
    logs.mkdir(parents=True)
    link = logs / f"{GOOD_WID}-000000.log"
    link.symlink_to(target)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(link))):
        stream = tl.ParquetStream(cap)
    assert list(stream.exchanges()) == []
    assert target.exists() and link.is_symlink()


def test_a_fifo_log_does_not_hang_opening(tmp_path):
    cap = tmp_path / "cap"
    logs = cap / "_traffic_lab" / "logs"
    logs.mkdir(parents=True)
    fifo = logs / f"{GOOD_WID}-000000.log"
    os.mkfifo(fifo)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(fifo))):
        stream = _returns_within(10, lambda: tl.ParquetStream(cap), fifo)
    assert len(stream) == 0


def test_a_symlinked_logs_folder_is_not_followed(tmp_path):
    cap = tmp_path / "cap"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = elsewhere / f"{GOOD_WID}-000000.log"
    log.write_bytes(b"TLLOG1\n" + _header() + b"\n" + encode_record(0, exchange(1), "k"))
    (cap / "_traffic_lab").mkdir(parents=True)
    (cap / "_traffic_lab" / "logs").symlink_to(elsewhere)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(cap / "_traffic_lab" / "logs"))):
        stream = tl.ParquetStream(cap)
    assert list(stream.exchanges()) == []
    assert log.exists()  # neither read into the capture nor deleted


# -- 3. put() stores the exchange or raises at once; a bad exchange costs only itself ----------
HUGE_PORT = "https://a.example:99999999999/"


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("store", [tl.ParquetStream, tl.ParquetCache])
def test_put_refuses_an_unstorable_exchange_at_once(tmp_path, store, durable):
    cap = tmp_path / "cap"
    bad = tl.Exchange.from_httpx(httpx.Request("GET", HUGE_PORT), httpx.Response(200))
    with store(cap, durable=durable) as s:
        s.put(exchange(0))
        with pytest.raises(InvalidExchangeError, match="port = '99999999999': must be 0-65535"):
            s.put(bad)
        s.put(exchange(1))
    assert _stream_urls(cap) == _urls([0, 1])
    if durable:
        assert _tree(cap / "_traffic_lab") == ["logs"]  # every log folded and deleted


def test_recovery_skips_an_unstorable_log_record_and_keeps_the_rest(tmp_path):
    cap = tmp_path / "cap"
    path = str(cap / "_traffic_lab" / "logs" / f"{GOOD_WID}-000000.log")
    log = DurableLog(path, writer_id=GOOD_WID, segment=0, fingerprint="")
    log.append(encode_record(0, exchange(0), tl.Matcher().key(exchange(0))))
    # As an older traffic_lab wrote it: put() did not check the port then.
    bad = tl.Exchange("GET", HUGE_PORT, status_code=200, started_at=T0)
    log.append(encode_record(1, bad, "k"))
    log.append(encode_record(2, exchange(2), tl.Matcher().key(exchange(2))))
    log.close()
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{path}: record 1: ") + ".*port"):
        stream = tl.ParquetStream(cap)
    assert [e.url for e in stream.exchanges()] == _urls([0, 2])
    assert not os.path.exists(path)
    assert tl.ParquetStream(cap).to_arrow(["writer_seq"]).column(0).to_pylist() == [0, 2]


def test_recovery_under_strict_raises_on_an_unstorable_record_and_keeps_the_log(tmp_path):
    cap = tmp_path / "cap"
    bad = tl.Exchange("GET", HUGE_PORT, status_code=200, started_at=T0)
    log = _dead_log(cap, f"{GOOD_WID}-000000.log", _header(), [encode_record(0, bad, "k")])
    with pytest.raises(CorruptCaptureError, match=re.escape(f"{log}: record 0: ")):
        tl.ParquetStream(cap, strict=True)
    assert log.exists()
    assert not (cap / DAY).exists()


CRAFTED_RECORDS = {
    "not an array": {"seq": 1},
    "too short": [1, "GET"],
    "seq not a number": [
        "1",
        "GET",
        "https://a.example/",
        [],
        0,
        0,
        200,
        "OK",
        "HTTP/1.1",
        [],
        None,
        None,
        {},
        False,
        "k",
        0,
    ],
    "headers not pairs": [
        1,
        "GET",
        "https://a.example/",
        ["x"],
        0,
        0,
        200,
        "OK",
        "HTTP/1.1",
        [],
        None,
        None,
        {},
        False,
        "k",
        0,
    ],
    "tag value not text": [
        1,
        "GET",
        "https://a.example/",
        [],
        0,
        0,
        200,
        "OK",
        "HTTP/1.1",
        [],
        None,
        None,
        {"a": 1},
        False,
        "k",
        0,
    ],
    "body length past the end": [
        1,
        "GET",
        "https://a.example/",
        [],
        0,
        0,
        200,
        "OK",
        "HTTP/1.1",
        [],
        None,
        None,
        {},
        False,
        "k",
        99,
    ],
    "time out of range": [
        1,
        "GET",
        "https://a.example/",
        [],
        2**62,
        0,
        200,
        "OK",
        "HTTP/1.1",
        [],
        None,
        None,
        {},
        False,
        "k",
        0,
    ],
    "no status nor error": [
        1,
        "GET",
        "https://a.example/",
        [],
        0,
        0,
        None,
        "",
        "HTTP/1.1",
        [],
        None,
        None,
        {},
        False,
        "k",
        0,
    ],
}


@pytest.mark.parametrize("crafted", CRAFTED_RECORDS.values(), ids=CRAFTED_RECORDS.keys())
def test_recovery_skips_a_crafted_record_and_keeps_the_rest(tmp_path, crafted):
    cap = tmp_path / "cap"
    good = [encode_record(0, exchange(0), "k0"), encode_record(2, exchange(2), "k2")]
    log = _dead_log(cap, f"{GOOD_WID}-000000.log", _header(), [good[0], _record(crafted), good[1]])
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{log}: record 1: ")):
        stream = tl.ParquetStream(cap)
    assert [e.url for e in stream.exchanges()] == _urls([0, 2])


def _poison(monkeypatch) -> tl.Exchange:
    # Passes check_storable (put() takes it), then breaks the conversion to Arrow when the
    # buffer is flushed: an unforeseen failure. (check_storable now refuses the bad header
    # types this used to rely on, so the failure is injected.)
    from traffic_lab.stores.parquet import writer

    real = writer.exchanges_to_table

    def fragile(exchanges, *args, **kw):
        if any(e.tags.get("poison") for e in exchanges):
            raise pa.ArrowInvalid("an unforeseen conversion failure")
        return real(exchanges, *args, **kw)

    monkeypatch.setattr(writer, "exchanges_to_table", fragile)
    return tl.Exchange(
        "GET", "https://a.example/p", status_code=200, started_at=T0, tags={"poison": "1"}
    )


@pytest.mark.parametrize("store", [tl.ParquetStream, tl.ParquetCache])
def test_a_flush_failing_on_one_exchange_publishes_the_others(tmp_path, store, monkeypatch):
    cap = tmp_path / "cap"
    s = store(cap, flush_seconds=None)
    s.put(exchange(0))
    s.put(_poison(monkeypatch))
    s.put(exchange(1))
    with pytest.raises(StoreError, match="1 exchange could not be written and was dropped"):
        s.flush()
    assert _stream_urls(cap) == _urls([0, 1])
    assert ([e.url for e in s.exchanges()], len(s)) == (_urls([0, 1]), 2)  # the store agrees
    if store is tl.ParquetCache:
        assert s.get(httpx.Request("GET", "https://a.example/p")) is None
    s.put(exchange(2))
    s.close()  # no poison row stays behind to fail every later flush
    assert _stream_urls(cap) == _urls([0, 1, 2])


def test_a_durable_flush_failing_on_one_exchange_keeps_the_others_and_the_capture(
    tmp_path, monkeypatch
):
    from traffic_lab.stores.parquet import writer

    real = writer.exchanges_to_table

    def fragile(exchanges, *args, **kw):
        if any(e.tags.get("poison") for e in exchanges):
            raise pa.ArrowInvalid("an unforeseen conversion failure")
        return real(exchanges, *args, **kw)

    monkeypatch.setattr(writer, "exchanges_to_table", fragile)
    cap = tmp_path / "cap"
    s = tl.ParquetStream(cap, durable=True, flush_seconds=None)
    s.put(exchange(0))
    s.put(exchange(1, tags={"poison": "1"}))
    s.put(exchange(2))
    with pytest.raises(StoreError, match="unforeseen conversion failure"):
        s.flush()
    s.close()
    assert os.listdir(cap / "_traffic_lab" / "logs") == []
    assert _stream_urls(cap) == _urls([0, 2])


# -- 4. blob references --------------------------------------------------------------------------
def _blob_ref_capture(cap: Path, ref: str) -> Path:
    """A capture whose file holds rows 0-2, row 1's response body in blob ``ref``."""
    table = _table([0, 1, 2])
    table = _with_column(table, "response_body", pa.array([b"a", None, b"c"], pa.binary()))
    table = _with_column(table, "response_body_blob", pa.array([None, ref, None], pa.string()))
    (cap / "_traffic_lab" / "blobs").mkdir(parents=True)
    return _publish(cap, table)


def _statuses(cap: Path, ids, **kw: Any) -> list[int]:
    """The status each request gets from a ParquetCache on ``cap`` (599 for a miss)."""
    cache = tl.ParquetCache(cap, **kw)
    return [(cache.get(_request(i)) or httpx.Response(599)).status_code for i in ids]


READERS_OF_BODIES: dict[str, Callable[[Path], Any]] = {
    "stream": lambda cap: _stream_urls(cap),
    "cache": lambda cap: _statuses(cap, range(3)),
    "read_capture": lambda cap: tl.read_capture(cap, bodies=True).request_url.tolist(),
    "to_arrow": lambda cap: tl.ParquetStream(cap).to_arrow(["response_body"]).column(0).to_pylist(),
}
EXPECTED_WITHOUT_ROW_1 = {
    "stream": _urls([0, 2]),
    "cache": [200, 599, 200],
    "read_capture": _urls([0, 2]),
    "to_arrow": [b"a", b"c"],
}


@pytest.mark.parametrize("reader", READERS_OF_BODIES)
@pytest.mark.parametrize(
    "ref", ["../../outside/x", "../../../outside/x", "AB" * 32, "ab" * 31, "ab" * 32 + "/"]
)
def test_a_blob_reference_that_is_not_a_digest_is_never_opened(tmp_path, reader, ref):
    cap = tmp_path / "cap"
    (tmp_path / "outside").mkdir()
    fifo = tmp_path / "outside" / "x"
    os.mkfifo(fifo)
    bad = _blob_ref_capture(cap, ref)
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{bad}: {_row(1)}: ")):
        seen = _returns_within(20, lambda: READERS_OF_BODIES[reader](cap), fifo)
    assert seen == EXPECTED_WITHOUT_ROW_1[reader]


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "symlinked folder"])
@pytest.mark.parametrize("reader", READERS_OF_BODIES)
def test_a_blob_that_is_not_a_regular_file_inside_the_capture_is_never_opened(
    tmp_path, reader, kind
):
    cap = tmp_path / "cap"
    body = b"the outside file's bytes"
    digest = hashlib.sha256(body).hexdigest()
    bad = _blob_ref_capture(cap, digest)
    folder = cap / "_traffic_lab" / "blobs" / digest[:2]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / digest).write_bytes(body)  # what following a link would read, digest and all
    fifo = None
    if kind == "symlinked folder":
        folder.symlink_to(outside)
    else:
        folder.mkdir()
        blob = folder / digest
        if kind == "fifo":
            os.mkfifo(blob)
            fifo = blob
        elif kind == "symlink":
            blob.symlink_to(outside / digest)
        else:
            blob.mkdir()
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{bad}: {_row(1)}: ")):
        seen = _returns_within(20, lambda: READERS_OF_BODIES[reader](cap), fifo)
    assert seen == EXPECTED_WITHOUT_ROW_1[reader]


def test_a_bad_blob_reference_under_strict_raises_naming_the_file(tmp_path):
    cap = tmp_path / "cap"
    bad = _blob_ref_capture(cap, "../../outside/x")
    with pytest.raises(CorruptCaptureError, match=re.escape(f"{bad}: {_row(1)}: ")):
        _stream_urls(cap, strict=True)
    with pytest.raises(CorruptCaptureError, match=re.escape(f"{bad}: {_row(1)}: ")):
        tl.ParquetCache(cap, strict=True).get(_request(1))
    with pytest.raises(CorruptCaptureError, match=re.escape(f"{bad}: {_row(1)}: ")):
        tl.ParquetStream(cap, strict=True).to_arrow(["response_body"])


def test_a_row_with_a_bad_blob_reference_reads_without_bodies(tmp_path):
    cap = tmp_path / "cap"
    _blob_ref_capture(cap, "../../outside/x")
    assert tl.read_capture(cap).request_url.tolist() == _urls([0, 1, 2])


# -- 6. a corrupt file costs only itself, whatever is wrong with it ------------------------------
def _nulls(name: str, pa_type: pa.DataType) -> Callable[[pa.Table], pa.Table]:
    def corrupt(table: pa.Table) -> pa.Table:
        values = table.column(name).to_pylist()
        values[1] = None
        return _with_column(table, name, pa.array(values, pa_type))

    return corrupt


CORRUPTIONS: dict[str, Callable[[pa.Table], pa.Table]] = {
    "method is a number": lambda t: _with_column(t, "request_method", pa.array([1, 2, 3])),
    "started_at is text": lambda t: _with_column(t, "started_at", pa.array(["a", "b", "c"])),
    "writer_seq is text": lambda t: _with_column(t, "writer_seq", pa.array(["0", "1", "2"])),
    "port is int64": lambda t: _with_column(t, "request_port", pa.array([1, 2, 3], pa.int64())),
    "headers are text": lambda t: _with_column(t, "request_headers", pa.array(["a", "b", "c"])),
    "tags are a list": lambda t: _with_column(
        t, "tags", pa.array([[], [], []], pa.list_(pa.int8()))
    ),
    "null method": _nulls("request_method", pa.string()),
    "null url": _nulls("request_url", pa.string()),
    "null started_at": _nulls("started_at", pa.timestamp("us", tz="UTC")),
    "null writer_seq": _nulls("writer_seq", pa.int64()),
    "null writer_id": _nulls("writer_id", pa.string()),
    "replaces not JSON": lambda t: _with_meta(t, META_REPLACES, b"[not json"),
    "replaces a dict": lambda t: _with_meta(t, META_REPLACES, b'{"a": 1}'),
    "replaces numbers": lambda t: _with_meta(t, META_REPLACES, b"[1, 2]"),
    "replaces not UTF-8": lambda t: _with_meta(t, META_REPLACES, b'["\xff\xfe"]'),
    "replaces in a part file": lambda t: _with_meta(
        t, META_REPLACES, f'["{DAY}/part-{GOOD_WID}-000009.parquet"]'.encode()
    ),
    "fingerprint not UTF-8": lambda t: _with_meta(t, b"traffic_lab.matcher_fingerprint", b"\xff"),
    "writer id metadata not an id": lambda t: _with_meta(t, b"traffic_lab.writer_id", b"../x"),
    "schema version huge": lambda t: _with_meta(t, b"traffic_lab.schema_version", b"1" * 5000),
    "time range not UTF-8": lambda t: _with_meta(t, META_TIME_RANGE, b"\xff,\xfe"),
}

READERS: dict[str, Callable[[Path, bool], Any]] = {
    "stream": lambda cap, strict: _stream_urls(cap, strict=strict),
    "stream len": lambda cap, strict: len(tl.ParquetStream(cap, strict=strict)),
    "cache": lambda cap, strict: _statuses(cap, (0, 1, 2, 20), strict=strict),
    "read_capture": lambda cap, strict: tl.read_capture(cap).request_url.tolist(),
    "read_capture bodies": lambda cap, strict: tl.read_capture(
        cap, bodies=True
    ).request_url.tolist(),
    "to_arrow": lambda cap, strict: (
        tl.ParquetStream(cap, strict=strict).to_arrow(["request_url"]).column(0).to_pylist()
    ),
    "compact": lambda cap, strict: tl.ParquetStream(cap, strict=strict).compact().rows,
    "open_capture": lambda cap, strict: tl.open_capture(cap).summary()["exchanges"],
}
EXPECTED_GOOD_ONLY = {
    "stream": _urls([0, 1, 2]),
    "stream len": 3,
    "cache": [200, 200, 200, 599],
    "read_capture": _urls([0, 1, 2]),
    "read_capture bodies": _urls([0, 1, 2]),
    "to_arrow": _urls([0, 1, 2]),
    "compact": 3,
    "open_capture": 3,
}


def _capture_with_corrupt_file(cap: Path, corruption: str) -> Path:
    """Rows 0-2 in three good files, rows 20-22 in a file broken by ``corruption``."""
    _good_capture(cap, [0, 1, 2], files=3)
    name = f"part-{BAD_WID}-000000.parquet"
    if corruption.startswith("replaces") and corruption != "replaces in a part file":
        name = "compact-01772323200000000-5be1c2aa.parquet"
    return _publish(cap, CORRUPTIONS[corruption](_table([20, 21, 22])), name)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_file_is_skipped_and_named_by_every_reader(tmp_path, corruption, reader):
    cap = tmp_path / "cap"
    bad = _capture_with_corrupt_file(cap, corruption)
    with pytest.warns(SkippedFileWarning, match=re.escape(f"{bad}: ")):
        assert READERS[reader](cap, False) == EXPECTED_GOOD_ONLY[reader]
    assert bad.exists()


@pytest.mark.parametrize("reader", ["stream", "cache", "to_arrow", "compact"])
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_file_under_strict_raises_naming_it(tmp_path, corruption, reader):
    cap = tmp_path / "cap"
    bad = _capture_with_corrupt_file(cap, corruption)
    with pytest.raises(CorruptCaptureError, match=re.escape(f"{bad}: ")):
        READERS[reader](cap, True)


ROW_CORRUPTIONS: dict[str, Callable[[pa.Table], pa.Table]] = {
    # Each breaks only row 1 (exchange 21), and only when that row becomes an Exchange.
    "time past year 9999": lambda t: _with_column(
        t,
        "started_at",
        pa.array([t["started_at"][0].value, 2**62, t["started_at"][2].value], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
    ),
    "no status and no error": _nulls("response_status", pa.int32()),
}


@pytest.mark.parametrize("corruption", ROW_CORRUPTIONS)
def test_a_row_that_cannot_become_an_exchange_costs_only_that_row(tmp_path, corruption):
    cap = tmp_path / "cap"
    _good_capture(cap, [0, 1, 2])
    bad = _publish(cap, ROW_CORRUPTIONS[corruption](_table([20, 21, 22])))
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{bad}: {_row(21)}: ")):
        urls = _stream_urls(cap)
    assert urls == _urls([0, 1, 2, 20, 22])
    cache = tl.ParquetCache(cap)
    assert cache.get(_request(20)).status_code == 200  # type: ignore[union-attr]
    if corruption == "time past year 9999":
        with pytest.warns(SkippedEntryWarning, match=re.escape(f"{bad}: {_row(21)}: ")):
            assert cache.get(_request(21)) is None
    with pytest.raises(CorruptCaptureError, match=re.escape(f"{bad}: {_row(21)}: ")):
        _stream_urls(cap, strict=True)


def test_header_text_beyond_latin1_reads_as_its_utf8_bytes(tmp_path):
    cap = tmp_path / "cap"
    table = _table([20])
    headers = pa.array(
        [[{"name": "X-Sym", "value": "€"}]], table.schema.field("request_headers").type
    )
    _publish(cap, _with_column(table, "request_headers", headers))
    [read] = tl.ParquetStream(cap).exchanges()
    assert read.request_headers == ((b"X-Sym", "€".encode()),)


def test_a_file_whose_pages_do_not_decode_is_skipped_by_every_reader(tmp_path):
    # A valid footer over a corrupt data page: found only when the rows are read.
    cap = tmp_path / "cap"
    _good_capture(cap, [0, 1, 2])
    bad = _publish(cap, _table([20, 21, 22]))
    column = next(
        c
        for c in (pq.read_metadata(bad).row_group(0).column(i) for i in range(30))
        if c.path_in_schema == "request_url"
    )
    data = bytearray(bad.read_bytes())
    end = column.data_page_offset + column.total_compressed_size
    data[end - 12 : end] = bytes(b ^ 0xFF for b in data[end - 12 : end])
    bad.write_bytes(bytes(data))
    named = re.escape(f"{bad}: cannot read (")
    with pytest.warns(SkippedFileWarning, match=named):
        assert _stream_urls(cap) == _urls([0, 1, 2])
    with pytest.warns(SkippedFileWarning, match=named):
        assert tl.read_capture(cap).request_url.tolist() == _urls([0, 1, 2])
    with pytest.warns(SkippedFileWarning, match=named):
        assert _statuses(cap, [0, 20]) == [200, 599]
    # The engine reads only the columns a question needs: a count reads none that is damaged,
    # so the file's rows count; a summary reads the damaged pages, and names and skips it.
    assert tl.open_capture(cap).count() == 6
    with pytest.warns(SkippedFileWarning, match=named):
        assert tl.open_capture(cap).summary()["exchanges"] == 3
    with pytest.raises(CorruptCaptureError, match=named):
        _stream_urls(cap, strict=True)


MALFORMED_HEADERS = {
    "empty object": b"{}",
    "a list": b"[]",
    "a string": b'"x"',
    "not JSON": b"{not json",
    "not UTF-8": b'{"writer_id": "\xff"}',
    "segment text": json.dumps({"writer_id": GOOD_WID, "segment": "0"}).encode(),
    "segment huge": json.dumps({"writer_id": GOOD_WID, "segment": 10**30}).encode(),
    "writer id a number": json.dumps({"writer_id": 1, "segment": 0}).encode(),
    "fingerprint a list": json.dumps(
        {"writer_id": GOOD_WID, "segment": 0, "fingerprint": []}
    ).encode(),
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("header", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
@pytest.mark.parametrize("strict", [False, True])
def test_a_log_with_a_malformed_header_is_named_and_kept(tmp_path, header, strict):
    cap = tmp_path / "cap"
    _good_capture(cap, [0])
    log = _dead_log(cap, f"{GOOD_WID}-000000.log", header, [encode_record(0, exchange(1), "k")])
    if strict:
        with pytest.raises(CorruptCaptureError, match=re.escape(f"{log}: ")):
            tl.ParquetStream(cap, strict=True)
    else:
        with pytest.warns(SkippedFileWarning, match=re.escape(f"{log}: ")):
            assert _stream_urls(cap) == _urls([0])
    assert log.exists()


# -- rules: no symlink is followed out of a capture; names have a grammar -----------------------
def test_a_symlinked_data_file_is_named_and_not_read(tmp_path):
    cap = tmp_path / "cap"
    _good_capture(cap, [0])
    elsewhere = tmp_path / "elsewhere.parquet"
    pq.write_table(_table([20]), elsewhere)
    link = cap / DAY / f"part-{BAD_WID}-000000.parquet"
    link.symlink_to(elsewhere)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(link))):
        assert _stream_urls(cap) == _urls([0])
    with pytest.warns(SkippedFileWarning, match=re.escape(str(link))):
        assert tl.read_capture(cap).request_url.tolist() == _urls([0])
    with pytest.warns(SkippedFileWarning, match=re.escape(str(link))):
        tl.ParquetStream(cap).compact()
    assert elsewhere.exists() and link.is_symlink()


def test_a_symlinked_day_folder_is_named_and_neither_read_nor_written(tmp_path):
    cap = tmp_path / "cap"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pq.write_table(_table([20]), elsewhere / f"part-{BAD_WID}-000000.parquet")
    cap.mkdir()
    (cap / DAY).symlink_to(elsewhere)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(cap / DAY))):
        stream = tl.ParquetStream(cap)
    assert list(stream.exchanges()) == []
    stream.put(exchange(0))  # a row of that very day
    with pytest.raises(StoreError, match="symlink"):
        stream.flush()
    assert os.listdir(elsewhere) == [f"part-{BAD_WID}-000000.parquet"]


@pytest.mark.parametrize(
    "name",
    [
        "part-x.parquet",
        f"part-{GOOD_WID}.parquet",
        f"part-{GOOD_WID.upper()}-000000.parquet",
        "compact-1-2.parquet",
        f"part-{GOOD_WID}-000000-rzzzzzz.parquet",
    ],
)
def test_a_data_file_named_outside_the_grammar_is_named_and_skipped(tmp_path, name):
    cap = tmp_path / "cap"
    _good_capture(cap, [0])
    odd = _publish(cap, _table([20]), name)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(odd))):
        assert _stream_urls(cap) == _urls([0])


@pytest.mark.parametrize("day", ["day=2026031", "day=2026-03-01", "day=20261301", "day=x"])
def test_a_partition_named_outside_the_grammar_is_not_read(tmp_path, day):
    cap = tmp_path / "cap"
    folder = cap / day
    folder.mkdir(parents=True)
    pq.write_table(_table([20]), folder / f"part-{BAD_WID}-000000.parquet")
    with pytest.warns(SkippedFileWarning, match=re.escape(str(folder))):
        assert _stream_urls(cap) == []


def test_a_compacted_file_cannot_hide_itself_or_a_newer_compacted_file(tmp_path):
    cap = tmp_path / "cap"
    older = "compact-01772323200000000-00000000.parquet"
    newer = "compact-01772323200000001-00000000.parquet"
    hostile = _publish(
        cap, _with_meta(_table([1]), META_REPLACES, json.dumps([f"{DAY}/{newer}"]).encode()), older
    )
    _publish(cap, _with_meta(_table([2]), META_REPLACES, b"[]"), newer)
    with pytest.warns(SkippedFileWarning, match=re.escape(str(hostile))):
        assert _stream_urls(cap) == _urls([2])
    selfish = _publish(
        cap,
        _with_meta(_table([3]), META_REPLACES, json.dumps([f"{DAY}/{newer}"]).encode()),
        newer,
    )
    with pytest.warns(SkippedFileWarning) as caught:
        assert _stream_urls(cap) == []
    assert {str(w.message).split(": ")[0] for w in caught} == {str(hostile), str(selfish)}


@pytest.mark.parametrize(
    "name", ["clear-99999999999999999-0000abcd.marker", "clear-09999999999999999999-abc.marker"]
)
def test_a_marker_named_outside_the_grammar_hides_nothing(tmp_path, name):
    cap = tmp_path / "cap"
    _good_capture(cap, [0, 1])
    markers = cap / "_traffic_lab" / "markers"
    markers.mkdir(parents=True)
    (markers / name).write_text("{}")
    with pytest.warns(SkippedFileWarning, match=re.escape(str(markers / name))):
        assert _stream_urls(cap) == _urls([0, 1])


# -- object stores: the same grammars, no symlinks to follow ---------------------------------------
def test_hostile_names_on_an_object_store(s3_bucket, moto_endpoint):
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        endpoint_override=moto_endpoint,
        scheme="http",
        access_key="x",
        secret_key="x",
        region="us-east-1",
    )
    prefix = f"{s3_bucket}/cap"
    url = f"s3://{prefix}"
    with s3.open_output_stream(f"{s3_bucket}/victim.txt") as out:
        out.write(b"precious")
    for i in (0, 1):
        with tl.ParquetStream(url) as stream:
            stream.put(exchange(i))
    hostile = f"{DAY}/compact-01772323200000000-5be1c2aa.parquet"
    table = _with_meta(_table([10]), META_REPLACES, b'["../victim.txt"]')
    pq.write_table(table, f"{prefix}/{hostile}", filesystem=s3)
    with pytest.warns(SkippedFileWarning, match=re.escape(f"{url}/{hostile}: ")):
        report = tl.ParquetStream(url).compact()
    assert report.files_merged == 2
    with s3.open_input_stream(f"{s3_bucket}/victim.txt") as f:
        assert f.read() == b"precious"
    s3.delete_file(f"{prefix}/{hostile}")
    table = _table([20, 21])
    table = _with_column(table, "response_body", pa.array([b"a", None], pa.binary()))
    refs = pa.array([None, "../../victim.txt"], pa.string())
    table = _with_column(table, "response_body_blob", refs)
    bad = f"{DAY}/part-{BAD_WID}-000000.parquet"
    pq.write_table(table, f"{prefix}/{bad}", filesystem=s3)
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{url}/{bad}: {_row(21)}: ")):
        assert _stream_urls(url) == _urls([0, 1, 20])
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{url}/{bad}: {_row(21)}: ")):
        assert tl.read_capture(url, bodies=True).request_url.tolist() == _urls([0, 1, 20])


# -- 7. readers keep working while compact() runs -----------------------------------------------
def test_readers_see_every_row_exactly_once_while_compact_runs(tmp_path):
    cap = tmp_path / "cap"
    batch = 5
    rounds = 60
    stop = threading.Event()
    published = [1]  # batches published so far (the writer's first batch is there already)
    errors: list[BaseException] = []
    writer = tl.ParquetStream(cap, flush_seconds=None)
    for i in range(batch):
        writer.put(exchange(i))
    writer.flush()

    def write_and_compact() -> None:
        try:
            for r in range(1, rounds):
                for i in range(r * batch, (r + 1) * batch):
                    writer.put(exchange(i))
                writer.flush()
                published[0] = r + 1
                tl.ParquetStream(cap, recover=False).compact()
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def check(seqs: list[int], low: int, where: str) -> None:
        assert len(seqs) % batch == 0, f"{where}: {len(seqs)} rows"
        # The writer publishes a batch just before it counts it.
        assert low * batch <= len(seqs) <= (published[0] + 1) * batch, where
        assert sorted(seqs) == list(range(len(seqs))), f"{where}: missing or repeated rows"

    thread = threading.Thread(target=write_and_compact)
    thread.start()
    reads = 0
    try:
        while not stop.is_set() or reads < 30:
            low = published[0]
            df = tl.read_capture(cap, columns=["writer_seq"])
            check(df.writer_seq.tolist(), low, "read_capture")
            stream = tl.ParquetStream(cap, recover=False)
            check([int(e.url.split("/")[-1].split("?")[0]) for e in stream], low, "stream")
            cache = tl.ParquetCache(cap, recover=False)
            n = len(cache)
            check(list(range(n)), low, "cache")
            assert len(cache.keys()) == n
            assert all(cache.get(_request(i)) is not None for i in range(0, n, 7))
            reads += 1
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert errors == []
    assert reads >= 30
    assert len(list((cap / DAY).iterdir())) <= 2
