"""Capture -> DataFrame -> capture: dtypes, values, bodies on demand, decoded views, the
source reference, and a selection written as a new capture and replayed."""

from __future__ import annotations

import copy
import gzip
import pickle
from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

import traffic_lab as tl
from traffic_lab.frames import (
    ALL_COLUMNS,
    DEFAULT_COLUMNS,
    KEY_COLUMNS,
    read_capture,
    to_pandas,
    write_capture,
)
from traffic_lab.frames.convert import frame_to_table
from traffic_lab.testing import LoopbackServer

from .conftest import T0, exchange

EXPECTED_DTYPES = {
    "started_at": "datetime64[us, UTC]",
    "elapsed_ms": "float64",
    "writer_id": "str",
    "writer_seq": "int64",
    "request_method": "category",
    "request_url": "str",
    "request_scheme": "str",
    "request_host": "category",
    "request_port": "Int32",
    "request_path": "str",
    "request_query": "str",
    "request_body_size": "int64",
    "request_content_type": "str",
    "request_key": "str",
    "response_status": "Int32",
    "response_reason": "str",
    "response_http_version": "str",
    "response_body_size": "int64",
    "response_content_type": "str",
    "response_content_encoding": "str",
    "truncated": "bool",
    "error_type": "str",
    "error_message": "str",
    "tags": "map<string, string>[pyarrow]",
}


def some_exchanges():
    return [
        exchange(0, elapsed_ms=1.5, tags={"session": "s1"}),
        exchange(1, host="b.example", method="POST", status=201, request_body=b'{"x": 1}'),
        exchange(2, status=None, elapsed_ms=0.25),
        exchange(3, status=503, elapsed_ms=250.0, truncated=True),
    ]


def test_default_frame_has_typed_metadata_columns_and_no_bodies(write_capture_dir):
    folder = write_capture_dir(some_exchanges())
    df = read_capture(folder)
    assert {c: str(t) for c, t in df.dtypes.items()} == EXPECTED_DTYPES
    assert tuple(df.columns) == DEFAULT_COLUMNS
    assert df.started_at.tolist() == [T0 + timedelta(seconds=i) for i in range(4)]
    assert df.elapsed_ms.tolist() == [1.5, 10.0, 0.25, 250.0]
    assert df.response_status.tolist() == [200, 201, pd.NA, 503]
    assert df.request_method.tolist() == ["GET", "POST", "GET", "GET"]
    assert list(df.request_method.cat.categories) == ["GET", "POST"]
    assert df.request_host.tolist() == ["api.example", "b.example", "api.example", "api.example"]
    assert df.request_port.tolist() == [443] * 4
    assert df.request_path.tolist() == ["/items/0", "/items/1", "/items/2", "/items/3"]
    assert df.request_body_size.tolist() == [0, 8, 0, 0]
    assert df.response_body_size.tolist() == [9, 9, 0, 9]
    assert df.truncated.tolist() == [False, False, False, True]
    assert df.error_type.tolist()[2] == "httpx.ConnectError"
    assert df.tags.tolist()[0] == [("session", "s1")]
    assert df.writer_seq.tolist() == [0, 1, 2, 3]
    matcher = tl.Matcher()
    assert df.request_key.tolist() == [matcher.key(e) for e in some_exchanges()]


def test_columns_bodies_and_headers_options(write_capture_dir):
    folder = write_capture_dir(some_exchanges())
    df = read_capture(folder, columns=["response_status"])
    # The key columns always come along; columns keep the capture's order.
    assert tuple(df.columns) == (
        "started_at",
        "writer_id",
        "writer_seq",
        "request_method",
        "request_url",
        "request_key",
        "response_status",
    )
    assert set(KEY_COLUMNS) < set(df.columns)
    df = read_capture(folder, columns=["elapsed_ms"], bodies=True, headers=True)
    assert set(df.columns) == {
        *KEY_COLUMNS,
        "elapsed_ms",
        "request_headers",
        "request_body",
        "response_headers",
        "response_body",
    }
    assert df.response_body.tolist() == [b'{"id": 0}', b'{"id": 1}', b"", b'{"id": 3}']
    assert df.request_body.tolist()[1] == b'{"x": 1}'
    assert str(df.response_headers.dtype).startswith("list<")
    assert tuple(read_capture(folder, columns="all").columns) == ALL_COLUMNS
    with pytest.raises(ValueError, match=r"unknown columns \['status'\]"):
        read_capture(folder, columns=["status"])
    with pytest.raises(ValueError, match="or 'all'"):
        read_capture(folder, columns="everything")


def test_memory_stores_and_lists_give_the_same_frame(write_capture_dir):
    exchanges = some_exchanges()
    from_parquet = read_capture(write_capture_dir(exchanges), columns="all")
    stream, cache = tl.MemoryStream(), tl.MemoryCache()
    for ex in exchanges:
        stream.put(ex)
        cache.put(ex)
    for source in (stream, cache, exchanges, iter(exchanges)):
        df = to_pandas(source, columns="all")
        assert list(df.dtypes) == list(from_parquet.dtypes)
        assert df.writer_id.str.startswith("memory-").all()
        pd.testing.assert_frame_equal(
            df.drop(columns=["writer_id"]), from_parquet.drop(columns=["writer_id"])
        )


def test_a_memory_cache_keys_rows_with_its_own_matcher():
    matcher = tl.Matcher(query=False)
    cache = tl.MemoryCache(matcher)
    ex = exchange(0, path="/a?page=2")
    cache.put(ex)
    assert to_pandas(cache).request_key.tolist() == [matcher.key(ex)]
    assert to_pandas(cache).request_key.tolist() != [tl.Matcher().key(ex)]


def test_recorded_order_across_writers(tmp_path):
    folder = tmp_path / "c"
    with tl.ParquetStream(folder) as a, tl.ParquetStream(folder) as b:
        for i in range(6):
            (a if i % 2 else b).put(exchange(i, started_at=T0 + timedelta(seconds=5 - i)))
    df = read_capture(folder)
    assert df.request_path.tolist() == [f"/items/{i}" for i in range(5, -1, -1)]
    assert df.started_at.is_monotonic_increasing


def test_a_store_with_buffered_rows_and_a_clear_marker(tmp_path):
    store = tl.ParquetStream(tmp_path / "c", flush_seconds=None)
    store.put(exchange(0, started_at=T0))
    store.flush()
    store.clear()  # hides exchange 0
    store.put(exchange(1, started_at=T0 + timedelta(days=3650)))  # buffered, not published
    df = to_pandas(store)
    assert df.request_path.tolist() == ["/items/1"]
    assert to_pandas(store, bodies=True).response_body.tolist() == [b'{"id": 1}']
    store.close()


def test_the_metadata_fast_path_agrees_with_to_arrow(tmp_path):
    folder = tmp_path / "c"
    with tl.ParquetStream(folder) as a, tl.ParquetStream(folder) as b:
        for i in range(40):
            (a if i % 3 else b).put(exchange(i, started_at=T0 + timedelta(seconds=(i * 7) % 40)))
    store = tl.ParquetStream(folder, create=False)
    store.clear()
    with tl.ParquetStream(folder) as late:
        late.put(exchange(99, started_at=T0 + timedelta(days=3650)))
    columns = [c if c != "elapsed_ms" else "elapsed" for c in DEFAULT_COLUMNS]
    from traffic_lab.frames.convert import table_to_frame

    expected = table_to_frame(store.to_arrow(columns))
    assert expected.request_path.tolist() == ["/items/99"]
    for source in (store, folder):
        pd.testing.assert_frame_equal(to_pandas(source), expected)


def test_sort_recorded_looks_at_ties_only_where_times_are_equal():
    import pyarrow as pa

    from traffic_lab.stores.parquet.reader import sort_recorded

    def table(micros, writers, seqs):
        return pa.table(
            {
                "started_at": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "writer_id": writers,
                "writer_seq": pa.array(seqs, pa.int64()),
            }
        )

    in_order = table([1, 1, 1, 3], ["a", "b", "b", "a"], [9, 0, 1, 2])
    assert sort_recorded(in_order) is in_order
    shuffled = table([1, 1, 3, 0], ["b", "a", "a", "c"], [0, 5, 2, 1])
    assert sort_recorded(shuffled).to_pydict()["writer_id"] == ["c", "a", "b", "a"]
    tie_out_of_order = table([1, 1], ["a", "a"], [2, 1])
    assert sort_recorded(tie_out_of_order).column("writer_seq").to_pylist() == [1, 2]


def test_missing_capture_is_an_error(tmp_path):
    with pytest.raises(tl.errors.StoreNotFoundError):
        read_capture(tmp_path / "nothing")
    with pytest.raises(TypeError, match="expected a capture path"):
        to_pandas(42)
    with pytest.raises(TypeError, match=r"expected traffic_lab\.Exchange items"):
        to_pandas([1, 2])


# -- decoded views ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loopback_capture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop") / "c"
    with (
        LoopbackServer() as server,
        tl.ParquetStream(folder, flush_seconds=None) as stream,
        httpx.Client(base_url=server.url, transport=tl.RecordingTransport(stream)) as client,
    ):
        for route in (
            "/gzip?size=600",
            "/deflate?size=600",
            "/brotli?size=600",
            "/bytes?n=64",
            "/headers",
            "/json?size=100",
        ):
            client.get(route).raise_for_status()
    return folder


def test_bodies_stay_as_on_the_wire_and_decode_on_demand(loopback_capture):
    df = read_capture(loopback_capture, bodies=True)
    assert df.response_content_encoding.tolist()[:3] == ["gzip", "deflate", "br"]
    assert df.response_body[0][:2] == b"\x1f\x8b"  # still gzip
    docs = df.traffic.json()
    assert [d["ok"] for d in docs[:3]] == [True, True, True]
    assert docs[0] == docs[1] == docs[2]
    assert docs[3] is None  # random bytes
    assert docs[5]["items"][0]["id"] == 0
    texts = df.traffic.text()
    assert texts[3] is None
    assert texts[4] == "dup"
    decoded = df.traffic.body()
    assert decoded[0] == decoded[1] == decoded[2] == texts[0].encode()
    assert len(decoded[3]) == 64
    assert df.traffic.body(decoded=False)[0] == df.response_body[0]


def test_views_fetch_bodies_and_headers_the_frame_did_not_load(loopback_capture):
    df = read_capture(loopback_capture, where={"path": "/headers"})
    assert "response_body" not in df.columns
    assert df.traffic.text().tolist() == ["dup"]
    pairs = df.traffic.headers().iloc[0]
    assert [p for p in pairs if p[0] in ("Set-Cookie", "X-Dup", "X-Latin")] == [
        ("Set-Cookie", "a=[REDACTED]; Path=/"),  # recorded with the default redactor
        ("X-Dup", "first"),
        ("Set-Cookie", "b=[REDACTED]; Path=/"),
        ("X-Dup", "second"),
        ("X-Latin", "caf\xe9"),
    ]
    assert df.traffic.header("x-dup").tolist() == ["first, second"]
    assert df.traffic.header("X-LATIN").tolist() == ["caf\xe9"]
    assert df.traffic.header("host", side="request").tolist() == [
        df.request_host.iloc[0] + ":" + str(df.request_port.iloc[0])
    ]
    missing = read_capture(loopback_capture).traffic.header("content-encoding")
    assert missing.tolist()[:3] == ["gzip", "deflate", "br"]
    assert missing.isna().tolist() == [False, False, False, True, True, True]
    with pytest.raises(ValueError, match="side must be"):
        df.traffic.text(side="both")


def test_header_values_that_are_utf8_read_as_text(make):
    ex = make(0)
    ex = ex.replace(response_headers=[(b"X-Name", "café".encode()), (b"X-Raw", b"\xe9t\xe9")])
    df = to_pandas([ex])
    assert df.traffic.header("x-name").tolist() == ["café"]
    assert df.traffic.header("x-raw").tolist() == ["\xe9t\xe9"]
    assert df.traffic.headers().iloc[0] == [("X-Name", "café"), ("X-Raw", "\xe9t\xe9")]


def test_text_uses_the_charset_and_json_skips_bad_bodies(make):
    latin = make(0, body="é".encode("latin-1"), content_type="text/plain; charset=iso-8859-1")
    bad_json = make(1, body=b"{nope")
    cut_gzip = make(2, body=gzip.compress(b'{"a": 1}')[:10]).replace(
        response_headers=[(b"Content-Encoding", b"gzip")]
    )
    df = to_pandas([latin, bad_json, cut_gzip])
    assert df.traffic.text().tolist() == ["é", "{nope", None]
    assert df.traffic.json().tolist() == [None, None, None]
    assert df.traffic.body().tolist() == ["é".encode("latin-1"), b"{nope", None]


# -- the source reference -----------------------------------------------------------------------
def test_the_reference_survives_pandas_operations_and_pickling(write_capture_dir, tmp_path):
    folder = write_capture_dir(some_exchanges())
    df = read_capture(folder)
    ref = df.attrs["traffic_lab.source"]
    assert ref.location == str(folder)
    selected = df[df.response_status == 201].sort_values("elapsed_ms").copy()
    assert selected.attrs["traffic_lab.source"] is ref
    assert copy.deepcopy(df).attrs["traffic_lab.source"] is ref
    assert selected.traffic.json().tolist() == [{"id": 1}]
    restored = pickle.loads(pickle.dumps(selected))
    assert restored.attrs["traffic_lab.source"].location == str(folder)
    assert restored.traffic.json().tolist() == [{"id": 1}]
    memory = pickle.loads(pickle.dumps(to_pandas(some_exchanges())))
    assert memory.attrs["traffic_lab.source"].detached
    with pytest.raises(ValueError, match="no capture to load them from"):
        memory.traffic.json()


def test_exchanges_rebuild_the_recorded_ones(write_capture_dir):
    exchanges = some_exchanges()
    folder = write_capture_dir(exchanges)
    df = read_capture(folder)
    assert list(df.traffic.exchanges()) == exchanges
    assert list(df.iloc[::-1].traffic.exchanges()) == exchanges[::-1]
    assert list(to_pandas(exchanges).traffic.exchanges()) == exchanges
    assert [r.url.path for r in df.traffic.requests()] == [f"/items/{i}" for i in range(4)]
    responses = df.iloc[:2].traffic.responses()
    assert [r.json() for r in responses] == [{"id": 0}, {"id": 1}]
    with pytest.raises(httpx.ConnectError, match="refused"):
        list(df.traffic.responses())


def test_exchanges_use_edited_columns_and_need_a_source_for_the_rest(write_capture_dir):
    folder = write_capture_dir(some_exchanges())
    df = read_capture(folder)
    df.loc[0, "request_url"] = "https://staging.example/items/0"
    df.loc[0, "elapsed_ms"] = 99.0
    first = next(df.traffic.exchanges())
    assert first.url == "https://staging.example/items/0"
    assert first.elapsed == timedelta(milliseconds=99)
    assert first.response_body == b'{"id": 0}'  # fetched from the capture
    orphan = df.copy()
    orphan.attrs.clear()
    with pytest.raises(ValueError, match="pass source="):
        list(orphan.traffic.exchanges())
    assert next(orphan.traffic.exchanges(source=folder)).response_body == b'{"id": 0}'
    hand_made = pd.DataFrame(
        {"request_method": ["GET"], "request_url": ["https://x.example/"], "response_status": [204]}
    )
    [ex] = hand_made.traffic.exchanges()
    assert (ex.method, ex.url, ex.status_code, ex.response_body) == (
        "GET",
        "https://x.example/",
        204,
        b"",
    )


def test_rows_gone_from_the_capture_are_reported(write_capture_dir):
    folder = write_capture_dir(some_exchanges())
    df = read_capture(folder)
    df.loc[1, "writer_seq"] = 77
    with pytest.raises(LookupError, match=r"1 rows of the frame are no longer in .*, 77\)"):
        df.traffic.json()


def test_frame_to_table_converts_back_to_capture_types(write_capture_dir):
    df = read_capture(write_capture_dir(some_exchanges()), columns="all")
    table = frame_to_table(df)
    from traffic_lab.stores.parquet import SCHEMA

    for name in table.column_names:
        assert table.schema.field(name).type == SCHEMA.field(name).type, name
    assert table.column("elapsed").to_pylist()[0] == timedelta(microseconds=1500)


# -- DataFrame -> capture -----------------------------------------------------------------------
def test_a_selection_becomes_a_capture_that_replays(demo_capture, tmp_path):
    df = read_capture(demo_capture)
    chosen = df[(df.response_status >= 400) | (df.request_path == "/api/orders")]
    assert 30 < len(chosen) < 80
    target = tmp_path / "selection"
    assert write_capture(chosen, target) == len(chosen)
    stream = tl.ParquetStream(target, create=False)
    originals = list(chosen.traffic.exchanges())
    with httpx.Client(transport=httpx.MockTransport(tl.responder(stream))) as client:
        for ex in originals:
            live = client.request(ex.method, ex.url, content=ex.request_body)
            assert live.status_code == ex.status_code
            assert live.content == ex.response.content
            assert live.extensions[tl.exchange.REPLAYED] is True
        assert client.get("https://x.example/").text == tl.transports.NO_MORE_TRAFFIC
    copied = read_capture(target, bodies=True)
    assert copied.response_body.tolist() == [ex.response_body for ex in originals]
    assert copied.started_at.tolist() == chosen.started_at.tolist()
    assert copied.request_key.tolist() == chosen.request_key.tolist()
    assert not (set(copied.writer_id) & set(chosen.writer_id))
    # The same selection as a cache: lookups by request.
    with httpx.Client(
        transport=tl.CachingTransport(
            tl.ParquetCache(target), httpx.MockTransport(lambda r: httpx.Response(599))
        )
    ) as client:
        gzip_orders = [ex for ex in originals if ex.path == "/api/orders"]
        live = client.get(gzip_orders[-1].url)
        assert live.extensions[tl.exchange.FROM_CACHE] is True
        assert live.json() == gzip_orders[-1].response.json()


def test_write_capture_refuses_a_non_empty_destination(write_capture_dir, tmp_path):
    folder = write_capture_dir(some_exchanges())
    df = read_capture(folder)
    with pytest.raises(FileExistsError, match="not empty"):
        write_capture(df, folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        write_capture(df, tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert write_capture(df.iloc[:1], tmp_path / "empty") == 1
    assert write_capture(df.iloc[1:], tmp_path / "empty", append=True) == 3
    assert list(read_capture(tmp_path / "empty").traffic.exchanges()) == some_exchanges()


def test_write_capture_takes_exchanges_and_stores(tmp_path):
    stream = tl.MemoryStream()
    for ex in some_exchanges():
        stream.put(ex)
    assert write_capture(stream, tmp_path / "a") == 4
    assert write_capture(some_exchanges()[:2], tmp_path / "b") == 2
    assert list(tl.ParquetStream(tmp_path / "a").exchanges()) == some_exchanges()
    with pytest.raises(TypeError, match=r"expected traffic_lab\.Exchange"):
        write_capture(["x"], tmp_path / "c")


def test_demo_capture_frame(demo_capture):
    df = read_capture(demo_capture)
    assert len(df) == 240
    statuses = set(df.response_status.dropna().astype(int))
    assert {200, 201, 404, 422, 429, 500} <= statuses
    images = df[df.request_path.str.endswith("image.png")]
    assert (images.response_content_type == "image/png").all()
    assert images.traffic.text().isna().all()
    assert all(b.startswith(b"\x89PNG") for b in images.traffic.body())
    orders = df[(df.request_path == "/api/orders") & (df.response_content_encoding == "gzip")]
    assert len(orders) > 0
    assert all(isinstance(doc["orders"], list) for doc in orders.traffic.json())
    assert np.issubdtype(df.elapsed_ms.dtype, np.floating)


# -- documentation ------------------------------------------------------------------------------
PUBLIC_AT_TOP_LEVEL = ("read_capture", "write_capture", "scan_secrets", "redact_capture", "Where")


@pytest.mark.parametrize(
    "module",
    [
        "__init__",
        "convert",
        "where",
        "views",
        "analysis",
        "display",
        "accessor",
        "secrets",
        "_capture_ref",
    ],
)
def test_docstring_examples_run(module, monkeypatch):
    import doctest
    import importlib

    import traffic_lab.frames

    # The lead exposes these lazily from traffic_lab; the examples use them as tl.<name>.
    for name in PUBLIC_AT_TOP_LEVEL:
        if name not in vars(tl):
            monkeypatch.setattr(tl, name, getattr(traffic_lab.frames, name), raising=False)
    name = "traffic_lab.frames" if module == "__init__" else f"traffic_lab.frames.{module}"
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False, report=True)
    assert result.failed == 0
