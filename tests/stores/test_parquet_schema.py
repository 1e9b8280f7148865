"""Row <-> Exchange conversion, the schema and its versioning."""

from __future__ import annotations

import gzip
from datetime import timedelta

import pyarrow as pa
import pytest

import traffic_lab as tl
from traffic_lab.stores.parquet import (
    SCHEMA,
    SCHEMA_VERSION,
    exchanges_to_table,
    table_to_exchanges,
    upgrade_table,
)
from traffic_lab.stores.parquet.schema import check_schema, split_url

from .conftest import T0, exchange


def test_round_trip_keeps_every_part():
    odd = tl.Exchange(
        "POST",
        "https://user@api.example:8443/v1/items?b=2&a=1#frag",
        request_headers=[(b"X-Dup", b"1"), (b"X-Dup", b"2"), (b"X-Latin", b"caf\xe9")],
        request_body=b"\x00\xff binary",
        status_code=201,
        reason_phrase="Created",
        http_version="HTTP/2",
        response_headers=[(b"Content-Encoding", b"gzip"), (b"Content-Type", b"text/plain")],
        response_body=gzip.compress(b"hello", mtime=0),
        started_at=T0,
        elapsed=timedelta(milliseconds=12, microseconds=5),
        tags={"session": "s1", "test": "t"},
    )
    failed = exchange(2, status=None)
    cut = exchange(3, truncated=True)
    table = exchanges_to_table([odd, failed, cut], tl.Matcher(), writer_id="w1", first_seq=7)
    assert table.schema.equals(SCHEMA)
    assert table.schema.metadata[b"traffic_lab.schema_version"] == str(SCHEMA_VERSION).encode()
    assert (
        table.schema.metadata[b"traffic_lab.matcher_fingerprint"]
        == tl.Matcher().fingerprint.encode()
    )
    row = table.slice(0, 1).to_pylist()[0]
    assert row["request_scheme"] == "https"
    assert row["request_host"] == "api.example"
    assert row["request_port"] == 8443
    assert row["request_path"] == "/v1/items"
    assert row["request_query"] == "b=2&a=1"
    assert row["request_headers"] == [
        {"name": "X-Dup", "value": "1"},
        {"name": "X-Dup", "value": "2"},
        {"name": "X-Latin", "value": "caf\xe9"},
    ]
    assert row["response_content_encoding"] == "gzip"
    assert row["response_content_type"] == "text/plain"
    assert row["response_body_size"] == len(odd.response_body)
    assert row["request_key"] == tl.Matcher().key(odd)
    assert row["writer_id"] == "w1"
    assert table.column("writer_seq").to_pylist() == [7, 8, 9]
    assert table.column("response_status").to_pylist() == [201, None, 200]
    assert table.column("error_type").to_pylist() == [None, "httpx.ConnectError", None]
    assert table.column("truncated").to_pylist() == [False, False, True]
    assert list(table_to_exchanges(table)) == [odd, failed, cut]


def test_table_to_exchanges_accepts_a_partial_table():
    table = pa.table(
        {
            "request_method": ["GET"],
            "request_url": ["https://a.example/"],
            "response_status": pa.array([204], pa.int32()),
            "started_at": pa.array([T0], pa.timestamp("us", tz="UTC")),
        }
    )
    [ex] = table_to_exchanges(table)
    assert (ex.method, ex.url, ex.status_code, ex.response_body, ex.started_at) == (
        "GET",
        "https://a.example/",
        204,
        b"",
        T0,
    )


def test_blob_bodies_need_a_reader():
    stored = {}

    def store(body: bytes) -> str:
        stored["d"] = body
        return "d"

    table = exchanges_to_table([exchange(1, body=b"x" * 100)], blob_threshold=10, store_blob=store)
    assert table.column("response_body").to_pylist() == [None]
    assert table.column("response_body_blob").to_pylist() == ["d"]
    assert table.column("response_body_size").to_pylist() == [100]
    with pytest.raises(ValueError, match="blob d"):
        list(table_to_exchanges(table))
    [ex] = table_to_exchanges(table, blobs=stored.__getitem__)
    assert ex.response_body == b"x" * 100


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://api.example/a/b?x=1", ("https", "api.example", 443, "/a/b", "x=1")),
        ("http://api.example", ("http", "api.example", 80, "/", None)),
        ("http://[::1]:8080/p?", ("http", "::1", 8080, "/p", "")),
        ("ws://u:p@h:9/x#f", ("ws", "h", 9, "/x", None)),
    ],
)
def test_split_url(url, parts):
    assert split_url(url) == parts


def _v1(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata({"traffic_lab.schema_version": "1"})


def test_upgrade_runs_each_step_in_order():
    table = _v1(pa.table({"a": [1]}))
    steps = {
        1: lambda t: t.append_column("b", pa.array([2])),
        2: lambda t: t.append_column("c", pa.array([3])),
    }
    out = upgrade_table(table, path="f.parquet", upgrades=steps, target=3)
    assert out.to_pylist() == [{"a": 1, "b": 2, "c": 3}]
    assert out.schema.metadata[b"traffic_lab.schema_version"] == b"3"


def test_upgrade_names_the_file_when_too_new_or_unknown():
    table = pa.table({"a": [1]}).replace_schema_metadata({"traffic_lab.schema_version": "9"})
    with pytest.raises(tl.errors.SchemaVersionError, match=r"f\.parquet: .*v9, newer than"):
        upgrade_table(table, path="f.parquet")
    with pytest.raises(tl.errors.SchemaVersionError, match="no upgrade from capture schema v1"):
        upgrade_table(_v1(table), path="f.parquet", upgrades={}, target=2)
    with pytest.raises(
        tl.errors.CorruptCaptureError, match=r"g\.parquet: not a traffic_lab capture"
    ):
        upgrade_table(pa.table({"a": [1]}), path="g.parquet")


def test_check_schema_rejects_foreign_columns():
    foreign = pa.schema([("x", pa.int32())]).with_metadata({"traffic_lab.schema_version": "1"})
    with pytest.raises(tl.errors.CorruptCaptureError, match="missing columns"):
        check_schema(foreign, path="f")


def test_a_row_reader_shared_by_threads_never_hands_out_half_decoded_columns(monkeypatch):
    import threading

    from traffic_lab.stores.parquet import schema

    table = exchanges_to_table([exchange(i) for i in range(3)])
    reader = schema.RowReader(table)
    first_in, let_go = threading.Event(), threading.Event()
    column = schema._column

    def slow_column(table, name, *args):
        if name == "error_type" and not first_in.is_set():
            first_in.set()  # the first thread stops half way through decoding ...
            let_go.wait(5)
        return column(table, name, *args)

    monkeypatch.setattr(schema, "_column", slow_column)
    results = []
    first = threading.Thread(target=lambda: results.append(reader.exchange(0).url))
    first.start()
    assert first_in.wait(5)
    # ... and a second thread asking meanwhile gets a whole exchange (it decodes for itself).
    assert reader.exchange(2).url == exchange(2).url
    let_go.set()
    first.join(5)
    assert results == [exchange(0).url]
