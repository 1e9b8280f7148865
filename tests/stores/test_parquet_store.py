"""ParquetCache and ParquetStream: behaviour, faults and other engines."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import traffic_lab as tl
from traffic_lab.errors import SkippedEntryWarning
from traffic_lab.stores.parquet import SkippedFileWarning

from .conftest import T0, exchange


def _files(folder, pattern=".parquet"):
    out = []
    for root, _, names in os.walk(folder):
        out.extend(
            os.path.relpath(os.path.join(root, n), folder) for n in names if n.endswith(pattern)
        )
    return sorted(out)


def _request(i: int) -> httpx.Request:
    return httpx.Request("GET", f"https://api.example/items/{i}?page={i % 3}")


# -- cache ------------------------------------------------------------------------------------
def test_cache_serves_puts_before_and_after_flush_and_reopen(tmp_path):
    with tl.ParquetCache(tmp_path) as cache:
        for i in range(5):
            cache.put(exchange(i))
        assert cache.get(_request(3)).read() == b'{"id": 3}'
        assert _files(tmp_path) == []
        cache.flush()
        assert _files(tmp_path) == [f"day=20260301/part-{cache.writer_id}-000000.parquet"]
        response = cache.get(_request(3))
        assert response.extensions[tl.exchange.FROM_CACHE] is True
        assert response.read() == b'{"id": 3}'
    reopened = tl.ParquetCache(tmp_path)
    assert len(reopened) == 5
    assert sorted(reopened.keys()) == sorted(tl.Matcher().key(_request(i)) for i in range(5))
    assert reopened.get(_request(4)).read() == b'{"id": 4}'
    assert reopened.lookup(_request(4)) == exchange(4)
    assert reopened.get(_request(99)) is None
    assert _request(1) in reopened
    assert "x" not in reopened


def test_latest_exchange_for_a_key_wins_across_files(tmp_path):
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1, body=b"new", started_at=T0 + timedelta(seconds=5)))
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1, body=b"old", started_at=T0))  # recorded earlier: loses
        assert cache.get(_request(1)).read() == b"new"
    assert tl.ParquetCache(tmp_path).get(_request(1)).read() == b"new"
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1, body=b"newest", started_at=T0 + timedelta(seconds=9)))
        assert cache.get(_request(1)).read() == b"newest"
    assert tl.ParquetCache(tmp_path).get(_request(1)).read() == b"newest"


def test_errors_and_truncated_exchanges_are_kept_but_never_served(tmp_path):
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1, status=None))
        cache.put(exchange(2, truncated=True))
        assert cache.get(_request(1)) is None
        assert cache.get(_request(2)) is None
    cache = tl.ParquetCache(tmp_path)
    assert (len(cache), cache.keys(), cache.get(_request(1)), cache.get(_request(2))) == (
        2,
        [],
        None,
        None,
    )
    assert [e.error for e in cache.exchanges()] == [
        tl.exchange.RecordedError("httpx.ConnectError", "refused"),
        None,
    ]


def test_refresh_sees_other_writers(tmp_path):
    reader = tl.ParquetCache(tmp_path)
    with tl.ParquetCache(tmp_path) as writer:
        writer.put(exchange(7))
    assert reader.get(_request(7)) is None
    reader.refresh()
    assert reader.get(_request(7)).read() == b'{"id": 7}'
    assert len(reader) == 1


def test_aget_answers_without_blocking(tmp_path):
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1))
    cache = tl.ParquetCache(tmp_path)

    async def main():
        first = await cache.aget(_request(1))
        second = await cache.aget(_request(1))  # now decoded: answered inline
        miss = await cache.aget(_request(2))
        return first.read(), second.read(), miss

    assert anyio.run(main) == (b'{"id": 1}', b'{"id": 1}', None)


def test_clear_hides_earlier_exchanges_without_deleting(tmp_path):
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1, started_at=T0))
        cache.flush()
        files = _files(tmp_path)
        time.sleep(0.002)
        cache.clear()
        assert (len(cache), cache.get(_request(1))) == (0, None)
        cache.put(exchange(1, body=b"again", started_at=datetime.now(UTC)))
        assert cache.get(_request(1)).read() == b"again"
    assert set(files) <= set(_files(tmp_path))
    reopened = tl.ParquetCache(tmp_path)
    assert (len(reopened), reopened.get(_request(1)).read()) == (1, b"again")
    assert [e.response_body for e in tl.ParquetStream(tmp_path).exchanges()] == [b"again"]
    assert len(ds.dataset(str(tmp_path), format="parquet", partitioning="hive").to_table()) == 2


def test_other_matcher_recomputes_keys_from_request_columns(tmp_path):
    with tl.ParquetCache(tmp_path) as cache:
        cache.put(exchange(1))
    loose = tl.Matcher(query=False)
    cache = tl.ParquetCache(tmp_path, loose)
    assert cache.keys() == [loose.key(_request(1))]
    assert cache.get(httpx.Request("GET", "https://api.example/items/1?other=9")).read() == (
        b'{"id": 1}'
    )
    custom = tl.ParquetCache(tmp_path, tl.Matcher(function=lambda r: r.url.path))
    assert custom.keys() == ["/items/1"]


def test_large_bodies_go_to_blobs_stored_once(tmp_path):
    big = os.urandom(2048)
    with tl.ParquetCache(tmp_path, blob_threshold=1024) as cache:
        cache.put(exchange(1, body=big))
        cache.put(exchange(2, body=big))
        cache.put(exchange(3, body=b"small"))
    blobs = _files(tmp_path, "")
    blob_files = [b for b in blobs if b.startswith("_traffic_lab/blobs/")]
    import hashlib

    digest = hashlib.sha256(big).hexdigest()
    assert blob_files == [f"_traffic_lab/blobs/{digest[:2]}/{digest}"]
    table = pq.read_table(os.path.join(tmp_path, _files(tmp_path)[0]))
    assert table.column("response_body_blob").to_pylist() == [digest, digest, None]
    assert table.column("response_body").to_pylist() == [None, None, b"small"]
    cache = tl.ParquetCache(tmp_path)
    assert cache.get(_request(2)).read() == big
    assert tl.ParquetStream(tmp_path).to_arrow(["response_body"]).column(0).to_pylist() == [
        big,
        big,
        b"small",
    ]
    os.unlink(os.path.join(tmp_path, blob_files[0]))
    # A missing blob costs only the rows that refer to it, named; strict=True raises.
    with pytest.warns(SkippedEntryWarning, match=f"body blob .*{digest} is missing; skipped"):
        assert tl.ParquetCache(tmp_path).get(_request(1)) is None
    assert tl.ParquetCache(tmp_path).get(_request(3)).read() == b"small"
    with pytest.raises(tl.errors.CorruptCaptureError, match=f"body blob .*{digest} is missing"):
        tl.ParquetCache(tmp_path, strict=True).get(_request(1))


# -- stream -----------------------------------------------------------------------------------
def test_stream_iterates_in_recorded_order_across_writers(tmp_path):
    a = tl.ParquetStream(tmp_path, flush_rows=3)
    b = tl.ParquetStream(tmp_path, flush_rows=4)
    for i in range(0, 20, 2):
        a.put(exchange(i))
        b.put(exchange(i + 1))
    a.close()
    assert [e.url.split("/")[-1].split("?")[0] for e in b.exchanges()] == [
        str(i) for i in range(20)
    ]
    b.close()
    stream = tl.ParquetStream(tmp_path)
    assert len(stream) == 20
    assert [r.url.path for r in stream.requests()] == [f"/items/{i}" for i in range(20)]
    assert [e.url for e in stream.exchanges(offset=17)] == [exchange(i).url for i in (17, 18, 19)]
    since = T0 + timedelta(milliseconds=15)
    assert [e.started_at for e in stream.exchanges(since=since)] == [
        T0 + timedelta(milliseconds=i) for i in range(15, 20)
    ]
    assert list(stream.exchanges(offset=20)) == []


def test_stream_responses_raise_recorded_errors(tmp_path):
    with tl.ParquetStream(tmp_path) as stream:
        stream.put(exchange(1))
        stream.put(exchange(2, status=None))
    responses = tl.ParquetStream(tmp_path).responses()
    assert next(responses).json() == {"id": 1}
    with pytest.raises(httpx.ConnectError, match="refused"):
        next(responses)


def test_flush_policy_rows_bytes_and_seconds(tmp_path):
    by_rows = tl.ParquetStream(tmp_path / "rows", flush_rows=2, flush_seconds=None)
    for i in range(5):
        by_rows.put(exchange(i))
    deadline = time.monotonic() + 5
    while len(_files(tmp_path / "rows")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_files(tmp_path / "rows")) == 2
    by_rows.close()
    assert len(_files(tmp_path / "rows")) == 3
    by_bytes = tl.ParquetStream(tmp_path / "bytes", flush_bytes=1500, flush_seconds=None)
    by_bytes.put(exchange(1, body=b"x" * 2000))
    by_bytes.flush()
    assert len(_files(tmp_path / "bytes")) == 1
    by_time = tl.ParquetStream(tmp_path / "time", flush_seconds=0.2)
    by_time.put(exchange(1))
    deadline = time.monotonic() + 5
    while not _files(tmp_path / "time") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_files(tmp_path / "time")) == 1
    by_time.close()
    with pytest.raises(tl.errors.StoreError, match="closed"):
        by_time.put(exchange(2))


def test_many_threads_write_one_store(tmp_path):
    import threading

    store = tl.ParquetStream(tmp_path, flush_rows=50)

    def work(t):
        for i in range(200):
            store.put(exchange(t * 1000 + i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    urls = [e.url for e in tl.ParquetStream(tmp_path).exchanges()]
    assert sorted(urls) == sorted(exchange(t * 1000 + i).url for t in range(4) for i in range(200))


def test_to_arrow_and_dataset_push_filters_down(tmp_path):
    with tl.ParquetStream(tmp_path) as stream:
        for i in range(6):
            stream.put(exchange(i, status=200 if i % 2 else 503))
        stream.flush()
        stream.put(exchange(6, status=503))  # buffered: to_arrow includes it, dataset() not
        table = stream.to_arrow(["request_path", "day"], pc.field("response_status") == 503)
        assert table.to_pylist() == [
            {"request_path": f"/items/{i}", "day": 20260301} for i in (0, 2, 4, 6)
        ]
        assert stream.dataset().count_rows() == 6
        assert stream.dataset().count_rows(filter=pc.field("day") == 20260301) == 6


# -- other engines ----------------------------------------------------------------------------
def test_plain_pyarrow_duckdb_and_polars_read_the_same_rows(tmp_path):
    import duckdb
    import polars as pl

    with tl.ParquetStream(tmp_path, flush_rows=4) as stream:
        for i in range(10):
            stream.put(exchange(i, started_at=T0 + timedelta(hours=8 * i)))
    glob = f"{tmp_path}/**/*.parquet"
    cols = "request_url, response_status, request_key, day"
    expected = (
        tl.ParquetStream(tmp_path)
        .to_arrow(["request_url", "response_status", "request_key", "day"])
        .to_pylist()
    )
    rows = [tuple(r.values()) for r in expected]
    assert len(rows) == 10 and rows[-1][3] == 20260304
    plain = ds.dataset(str(tmp_path), format="parquet", partitioning="hive")
    got = plain.to_table(columns=cols.split(", ")).sort_by("request_url").to_pylist()
    assert sorted(tuple(r.values()) for r in got) == sorted(rows)
    con = duckdb.connect()
    duck = con.sql(
        f"SELECT {cols} FROM read_parquet('{glob}', hive_partitioning=true) ORDER BY started_at"
    ).fetchall()
    assert duck == rows
    assert con.sql(
        f"SELECT typeof(day) FROM read_parquet('{glob}', hive_partitioning=true) LIMIT 1"
    ).fetchall() == [("BIGINT",)]
    polars = pl.read_parquet(glob, hive_partitioning=True).sort("started_at")
    assert list(polars.select(cols.split(", ")).iter_rows()) == rows
    assert polars.schema["day"] == pl.Int64


# -- faults -----------------------------------------------------------------------------------
def _one_file(tmp_path):
    with tl.ParquetStream(tmp_path) as stream:
        stream.put(exchange(1))
        stream.put(exchange(2))
    return os.path.join(tmp_path, _files(tmp_path)[0])


def test_missing_folder(tmp_path):
    with pytest.raises(tl.errors.StoreNotFoundError, match="nothere: no capture here"):
        tl.ParquetCache(tmp_path / "nothere", create=False)
    stream = tl.ParquetStream(tmp_path / "new")
    assert (len(stream), list(stream.exchanges()), os.path.exists(tmp_path / "new")) == (
        0,
        [],
        False,
    )


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_is_skipped_with_a_warning_naming_it(tmp_path, damage):
    path = _one_file(tmp_path)
    with tl.ParquetStream(tmp_path) as stream:
        stream.put(exchange(3, started_at=T0 + timedelta(days=1)))
    data = Path(path).read_bytes()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2] if damage == "truncate" else b"PAR1 not parquet")
    with pytest.warns(SkippedFileWarning, match=rf"{path}: truncated or corrupt Parquet"):
        stream = tl.ParquetStream(tmp_path)
    assert [e.url for e in stream.exchanges()] == [exchange(3).url]
    with pytest.raises(tl.errors.CorruptCaptureError, match=path):
        tl.ParquetCache(tmp_path, strict=True)
    assert Path(path).read_bytes() != data  # never repaired or rewritten


def test_foreign_parquet_file_is_skipped_with_a_warning(tmp_path):
    path = _one_file(tmp_path)
    foreign = os.path.join(os.path.dirname(path), "part-f0f0f0f0f0f0f0f0-000000.parquet")
    pq.write_table(pa.table({"x": [1]}), foreign)
    with pytest.warns(SkippedFileWarning, match=rf"{foreign}: not a traffic_lab capture file"):
        cache = tl.ParquetCache(tmp_path)
    assert len(cache) == 2


def test_newer_schema_version_is_a_clear_error(tmp_path):
    path = _one_file(tmp_path)
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"traffic_lab.schema_version"] = b"99"
    newer = os.path.join(os.path.dirname(path), "part-0e0e0e0e0e0e0e0e-000000.parquet")
    pq.write_table(table.replace_schema_metadata(meta), newer)
    with pytest.raises(
        tl.errors.SchemaVersionError, match=rf"{newer}: .*v99, newer than this traffic_lab"
    ):
        tl.ParquetStream(tmp_path)


def test_stray_temporary_file_is_ignored_then_warned_when_stale(tmp_path):
    path = _one_file(tmp_path)
    stray = os.path.join(os.path.dirname(path), ".part-dead-000000.parquet.1234.tmp")
    with open(stray, "wb") as f:
        f.write(b"PAR1 half a file")
    assert len(tl.ParquetStream(tmp_path)) == 2  # young: maybe a live writer's; no warning
    old = time.time() - 3600
    os.utime(stray, (old, old))
    with pytest.warns(SkippedFileWarning, match=rf"{stray}: a temporary file left by a crashed"):
        stream = tl.ParquetStream(tmp_path)
    assert len(stream) == 2
    report = stream.compact()
    assert report.temporaries_removed == [os.path.relpath(stray, tmp_path)]
    assert not os.path.exists(stray)


def test_compaction_merges_verifies_and_readers_keep_working(tmp_path):
    for n in range(4):
        with tl.ParquetStream(tmp_path) as stream:
            for i in range(n * 10, n * 10 + 10):
                stream.put(exchange(i))
    before = _files(tmp_path)
    reader = tl.ParquetCache(tmp_path)
    iterator = tl.ParquetStream(tmp_path).exchanges()
    first = [next(iterator) for _ in range(5)]
    reader.get(_request(1)).read()
    report = tl.ParquetStream(tmp_path).compact()
    assert (report.files_merged, report.files_written, report.rows) == (4, 1, 40)
    assert sorted(report.deleted) == before
    [after] = _files(tmp_path)
    assert after.startswith("day=20260301/compact-")
    rest = list(iterator)  # its files were deleted under it
    assert [e.url for e in first + rest] == [exchange(i).url for i in range(40)]
    assert reader.get(_request(33)).read() == b'{"id": 33}'
    assert len(reader) == 40
    assert tl.ParquetStream(tmp_path).compact().files_merged == 0


def test_replaced_files_are_ignored_while_they_still_exist(tmp_path):
    for n in range(2):
        with tl.ParquetStream(tmp_path) as stream:
            stream.put(exchange(n))
    originals = {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)}
    tl.ParquetStream(tmp_path).compact()
    for name, data in originals.items():  # as if compact() crashed before deleting them
        with open(os.path.join(tmp_path, name), "wb") as f:
            f.write(data)
    stream = tl.ParquetStream(tmp_path)
    assert (len(stream), [e.url for e in stream.exchanges()]) == (
        2,
        [exchange(0).url, exchange(1).url],
    )
    assert len(tl.ParquetCache(tmp_path)) == 2


def test_hits_across_row_groups_in_any_order(tmp_path):
    with tl.ParquetCache(tmp_path, row_group_size=16) as cache:
        for i in range(100):
            cache.put(exchange(i))
    cache = tl.ParquetCache(tmp_path, cache_bytes=1)  # at most one row group kept
    order = [*range(100), 97, 3, 51, 3, 80, 12, 64, 0]
    assert [cache.get(_request(i)).read() for i in order] == [
        f'{{"id": {i}}}'.encode() for i in order
    ]
    assert [cache.lookup(_request(i)) for i in (5, 77)] == [exchange(5), exchange(77)]


def test_keys_sharing_a_64_bit_prefix_still_resolve(tmp_path):
    # Keys of 32 hex digits take the compact index; force equal 16-digit prefixes.
    def key(request):
        return "abcdef0123456789" + f"{int(request.url.path.rsplit('/', 1)[1]):016x}"

    matcher = tl.Matcher(function=key)
    with tl.ParquetCache(tmp_path, matcher) as cache:
        for i in range(5):
            cache.put(exchange(i))
        cache.put(exchange(2, body=b"again", started_at=T0 + timedelta(seconds=1)))
    reopened = tl.ParquetCache(tmp_path, matcher)
    assert [reopened.get(_request(i)).read() for i in range(5)] == [
        b'{"id": 0}',
        b'{"id": 1}',
        b"again",
        b'{"id": 3}',
        b'{"id": 4}',
    ]
    assert sorted(reopened.keys()) == sorted(key(_request(i)) for i in range(5))
    assert reopened.get(_request(9)) is None


def test_latest_wins_when_a_key_repeats_inside_the_bulk_index(tmp_path):
    with tl.ParquetCache(tmp_path, flush_rows=3) as cache:
        for n in range(4):
            cache.put(exchange(1, body=b"v%d" % n, started_at=T0 + timedelta(seconds=n)))
            cache.put(exchange(2, body=b"w%d" % n, started_at=T0 + timedelta(seconds=10 - n)))
    reopened = tl.ParquetCache(tmp_path)
    assert (reopened.get(_request(1)).read(), reopened.get(_request(2)).read()) == (b"v3", b"w0")
    assert (len(reopened), len(reopened.keys())) == (8, 2)


def test_threads_put_and_get_while_buffers_are_published(tmp_path):
    import threading

    cache = tl.ParquetCache(tmp_path, flush_rows=20)
    errors = []

    def work(t):
        try:
            for i in range(t * 1000, t * 1000 + 150):
                cache.put(exchange(i))
                for j in (i, t * 1000 + (i * 7) % (i - t * 1000 + 1)):
                    body = cache.get(_request(j)).read()
                    if body != f'{{"id": {j}}}'.encode():
                        errors.append((j, body))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache.close()
    assert errors == []
    assert (len(cache), len(cache.keys())) == (600, 600)
    reopened = tl.ParquetCache(tmp_path)
    assert (len(reopened), len(reopened.keys())) == (600, 600)
    assert reopened.get(_request(3149)).read() == b'{"id": 3149}'
