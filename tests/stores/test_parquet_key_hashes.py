"""ParquetCache over the request_key_hash column (capture schema v2): what the writer stores,
what opening reads, old files without the column, collisions, and hash columns that lie."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import traffic_lab as tl
from traffic_lab.errors import SkippedFileWarning
from traffic_lab.stores.parquet.reader import Capture
from traffic_lab.stores.parquet.schema import KEY_HASH_COLUMN, key_hash

from .conftest import T0, exchange


def _request(i: int) -> httpx.Request:
    return httpx.Request("GET", f"https://api.example/items/{i}?page={i % 3}")


def _record(cap: Path, exchanges: list[tl.Exchange]) -> Path:
    """Write ``exchanges`` as one file; its path."""
    before = set(cap.glob("day=*/*.parquet"))
    with tl.ParquetCache(cap) as cache:
        for ex in exchanges:
            cache.put(ex)
    [new] = set(cap.glob("day=*/*.parquet")) - before
    return new


def _rewrite(path: Path, table: pa.Table) -> None:
    """Replace a file with ``table`` (its metadata kept), in row groups of 4 rows."""
    pq.write_table(table, path, row_group_size=4)


def _as_v1(path: Path) -> None:
    """The file as traffic_lab wrote it before schema v2: no key hashes."""
    table = pq.read_table(path)
    meta = {**table.schema.metadata, b"traffic_lab.schema_version": b"1"}
    _rewrite(path, table.drop_columns([KEY_HASH_COLUMN]).replace_schema_metadata(meta))


def _with_hashes(path: Path, hashes: pa.Array) -> None:
    table = pq.read_table(path)
    index = table.schema.get_field_index(KEY_HASH_COLUMN)
    _rewrite(path, table.set_column(index, KEY_HASH_COLUMN, hashes))


def _body(cache: tl.ParquetCache, i: int) -> bytes | None:
    response = cache.get(_request(i))
    return None if response is None else response.content


class _Reads:
    """Counts the row groups a cache reads, and records the columns its opening reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.row_groups = 0
        self.columns: list[list[str]] = []
        read_row_group = Capture.read_row_group
        read_with_sample = Capture.read_with_sample
        read_columns = Capture.read_columns

        def count_group(capture, f, index):
            self.row_groups += 1
            return read_row_group(capture, f, index)

        def note_sample(capture, f, columns, *args):
            self.columns.append(list(columns))
            return read_with_sample(capture, f, columns, *args)

        def note_columns(capture, f, columns, **kw):
            self.columns.append(list(columns))
            return read_columns(capture, f, columns, **kw)

        monkeypatch.setattr(Capture, "read_row_group", count_group)
        monkeypatch.setattr(Capture, "read_with_sample", note_sample)
        monkeypatch.setattr(Capture, "read_columns", note_columns)


def test_the_writer_stores_the_hash_of_each_servable_row_s_key(tmp_path):
    cap = tmp_path / "cap"
    failed = exchange(1, status=None)
    truncated = exchange(2, truncated=True)
    path = _record(cap, [exchange(0), failed, truncated, exchange(3)])
    table = pq.read_table(path)
    keys = table.column("request_key").to_pylist()
    assert table.column(KEY_HASH_COLUMN).to_pylist() == [key_hash(keys[0]), None, None,
                                                          key_hash(keys[3])]  # fmt: skip
    assert table.schema.field(KEY_HASH_COLUMN).type == pa.int64()
    assert int(table.schema.metadata[b"traffic_lab.schema_version"]) >= 2  # v2 added it
    meta = pq.read_metadata(path)
    [hash_chunk] = [
        meta.row_group(0).column(i)
        for i in range(meta.num_columns)
        if meta.row_group(0).column(i).path_in_schema == KEY_HASH_COLUMN
    ]
    assert (hash_chunk.compression, hash_chunk.is_stats_set) == ("UNCOMPRESSED", False)
    # An index, not data: the row views do not show it.
    assert KEY_HASH_COLUMN not in tl.ParquetStream(cap).to_arrow().column_names


def test_key_hash_is_blake2b_of_the_key_as_documented():
    import hashlib

    key = "3f9c0a1be2d44c173f9c0a1be2d44c17"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    assert key_hash(key) == int.from_bytes(digest, "big", signed=True)
    # Stable across runs, machines and releases: files written today carry these values.
    assert key_hash(key) == -2947676277888173793
    assert key_hash("GET https://a.example/ é") == 2625476841789554898


def test_opening_reads_only_the_hash_column_and_a_miss_reads_no_row_data(tmp_path, monkeypatch):
    cap = tmp_path / "cap"
    _record(cap, [exchange(i) for i in range(50)])
    _record(cap, [exchange(i) for i in range(50, 100)])
    reads = _Reads(monkeypatch)
    cache = tl.ParquetCache(cap)
    assert reads.columns == [[KEY_HASH_COLUMN], [KEY_HASH_COLUMN]]
    assert len(cache) == 100
    for i in range(100, 400):
        assert cache.get(_request(i)) is None
    assert _request(1000) not in cache
    assert reads.row_groups == 0
    assert _body(cache, 7) == b'{"id": 7}'
    assert reads.row_groups == 1
    assert _body(cache, 8) == b'{"id": 8}'  # the same row group, kept
    assert _body(cache, 7) == b'{"id": 7}'
    assert reads.row_groups == 1
    assert _body(cache, 77) == b'{"id": 77}'
    assert reads.row_groups == 2


def test_an_old_capture_without_the_column_answers_the_same(tmp_path, monkeypatch):
    cap = tmp_path / "cap"
    old = _record(cap, [exchange(i) for i in range(20)])
    _as_v1(old)
    reads = _Reads(monkeypatch)
    cache = tl.ParquetCache(cap)
    assert reads.columns == [["started_at", "response_status", "truncated", "request_key"]]
    assert [_body(cache, i) for i in (0, 13, 19)] == [b'{"id": 0}', b'{"id": 13}', b'{"id": 19}']
    assert cache.get(_request(20)) is None
    assert len(cache) == 20


def test_old_and_new_files_together_answer_the_latest_row_of_each_key(tmp_path):
    cap = tmp_path / "cap"
    old = _record(cap, [exchange(i) for i in range(10)])
    _as_v1(old)
    later = T0 + timedelta(seconds=10)
    _record(cap, [exchange(3, body=b"again", started_at=later), exchange(30)])
    cache = tl.ParquetCache(cap)
    assert [_body(cache, i) for i in (2, 3, 30)] == [b'{"id": 2}', b"again", b'{"id": 30}']
    assert len(cache) == 12


def test_compaction_writes_the_column_for_old_files_and_rows_count_once(tmp_path):
    cap = tmp_path / "cap"
    old = _record(cap, [exchange(i) for i in range(10)])
    _as_v1(old)
    _record(cap, [exchange(i) for i in range(10, 20)])
    store = tl.ParquetCache(cap)
    report = store.compact()
    assert (report.files_merged, report.files_written) == (2, 1)
    [merged] = cap.glob("day=*/compact-*.parquet")
    table = pq.read_table(merged)
    keys = table.column("request_key").to_pylist()
    assert table.column(KEY_HASH_COLUMN).to_pylist() == [key_hash(k) for k in keys]
    assert int(table.schema.metadata[b"traffic_lab.schema_version"]) >= 2  # v2 added it
    cache = tl.ParquetCache(cap)
    assert len(cache) == 20
    assert sorted(cache.keys()) == sorted(keys)
    assert _body(cache, 4) == b'{"id": 4}'


def test_a_clear_marker_hides_rows_before_it_even_inside_a_file(tmp_path):
    cap = tmp_path / "cap"
    _record(cap, [exchange(i) for i in range(10)])  # rows at T0 + i ms
    cutoff_us = int((T0 + timedelta(milliseconds=5)).timestamp() * 1_000_000)
    markers = cap / "_traffic_lab" / "markers"
    markers.mkdir(parents=True)
    (markers / f"clear-{cutoff_us:020d}-0a1b2c3d.marker").write_text(
        f'{{"cleared_before_us": {cutoff_us}}}\n'
    )
    cache = tl.ParquetCache(cap)
    assert [_body(cache, i) is not None for i in range(10)] == [False] * 5 + [True] * 5
    assert len(cache) == 5
    cache.clear()
    assert cache.get(_request(7)) is None
    assert len(cache) == 0


def test_files_that_overlap_in_time_answer_the_latest_row_in_recorded_order(tmp_path):
    cap = tmp_path / "cap"
    # Two writers whose rows interleave in time; key 1 recorded by both.
    at = [T0 + timedelta(milliseconds=m) for m in range(6)]
    _record(cap, [exchange(1, body=b"a0", started_at=at[0]), exchange(2, started_at=at[2]),
                  exchange(1, body=b"a4", started_at=at[4])])  # fmt: skip
    _record(cap, [exchange(1, body=b"b1", started_at=at[1]), exchange(1, body=b"b3",
                  started_at=at[3]), exchange(3, started_at=at[5])])  # fmt: skip
    cache = tl.ParquetCache(cap)
    assert _body(cache, 1) == b"a4"
    assert [_body(cache, i) is not None for i in (2, 3)] == [True, True]


def test_rows_of_one_key_at_the_same_time_are_ordered_by_writer_then_sequence(tmp_path):
    cap = tmp_path / "cap"
    same = T0 + timedelta(seconds=1)
    with tl.ParquetCache(cap) as first:
        first.put(exchange(1, body=b"first", started_at=same))
    with tl.ParquetCache(cap) as second:
        second.put(exchange(1, body=b"second", started_at=same))
    bodies = {}
    for path in cap.glob("day=*/*.parquet"):
        row = pq.read_table(path, columns=["writer_id", "response_body"]).to_pylist()[0]
        bodies[row["writer_id"]] = row["response_body"]
    expected = bodies[max(bodies)]  # the greater writer id comes later in recorded order
    assert _body(tl.ParquetCache(cap), 1) == expected


def test_files_written_by_another_store_while_open_are_seen_on_refresh(tmp_path):
    cap = tmp_path / "cap"
    _record(cap, [exchange(i) for i in range(10)])
    cache = tl.ParquetCache(cap)
    later = T0 + timedelta(seconds=5)
    _record(cap, [exchange(3, body=b"newer", started_at=later), exchange(40)])
    assert _body(cache, 3) == b'{"id": 3}'
    cache.refresh()
    assert [_body(cache, 3), _body(cache, 40)] == [b"newer", b'{"id": 40}']
    assert len(cache) == 12


def test_a_put_over_a_key_of_the_files_answers_the_put(tmp_path):
    cap = tmp_path / "cap"
    _record(cap, [exchange(i) for i in range(10)])
    with tl.ParquetCache(cap) as cache:
        cache.put(exchange(4, body=b"put", started_at=T0 + timedelta(seconds=9)))
        assert _body(cache, 4) == b"put"
    assert _body(tl.ParquetCache(cap), 4) == b"put"


class _Colliding(tl.ParquetCache):
    """Every key hashes to 7 (and the files' own hashes are not used)."""

    _key_hash = staticmethod(lambda key: 7)
    _key_hashes = staticmethod(lambda keys: np.full(len(keys), 7, dtype=np.int64))
    _use_stored_hashes = False


def test_keys_sharing_one_hash_each_answer_their_own_row(tmp_path, monkeypatch):
    cap = tmp_path / "cap"
    _record(cap, [exchange(i) for i in range(12)])
    _record(cap, [exchange(5, body=b"latest", started_at=T0 + timedelta(seconds=3))])
    cache = _Colliding(cap)
    assert [_body(cache, i) for i in (0, 6, 11)] == [b'{"id": 0}', b'{"id": 6}', b'{"id": 11}']
    assert _body(cache, 5) == b"latest"
    assert cache.get(_request(99)) is None  # same hash, no such key
    assert len(cache) == 13
    assert sorted(cache.keys()) == sorted(tl.Matcher().key(_request(i)) for i in range(12))


@pytest.mark.parametrize(
    "lie",
    [
        "all null",
        "all zero",
        "swapped in the first row group",
        "shifted by one row",
    ],
)
def test_a_hash_column_wrong_throughout_is_not_used(tmp_path, lie):
    cap = tmp_path / "cap"
    path = _record(cap, [exchange(i) for i in range(12)])
    hashes = pq.read_table(path).column(KEY_HASH_COLUMN).to_pylist()
    lied = {
        "all null": [None] * 12,
        "all zero": [0] * 12,
        "swapped in the first row group": [hashes[1], hashes[0], *hashes[2:]],
        "shifted by one row": hashes[1:] + hashes[:1],
    }[lie]
    _with_hashes(path, pa.array(lied, pa.int64()))
    cache = tl.ParquetCache(cap)
    assert [_body(cache, i) for i in range(12)] == [f'{{"id": {i}}}'.encode() for i in range(12)]
    assert cache.get(_request(12)) is None


def test_a_hash_column_of_another_type_is_not_used(tmp_path):
    cap = tmp_path / "cap"
    path = _record(cap, [exchange(i) for i in range(6)])
    _with_hashes(path, pa.array(["x" * 1000] * 6, pa.string()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedFileWarning)  # read, not skipped
        cache = tl.ParquetCache(cap)
        assert [_body(cache, i) for i in range(6)] == [f'{{"id": {i}}}'.encode() for i in range(6)]


def test_a_lie_in_a_later_row_group_never_answers_another_key(tmp_path, monkeypatch):
    cap = tmp_path / "cap"
    path = _record(cap, [exchange(i) for i in range(12)])
    hashes = pq.read_table(path).column(KEY_HASH_COLUMN).to_pylist()
    hashes[9], hashes[10] = hashes[10], hashes[9]  # rows 9 and 10, in the third group of 4
    _with_hashes(path, pa.array(hashes, pa.int64()))
    reads = _Reads(monkeypatch)
    cache = tl.ParquetCache(cap)
    assert reads.columns == [[KEY_HASH_COLUMN]]  # the first group's hashes are right
    # The hash of key 9 points at row 10: its key differs, so that row is not served; its
    # group's hashes disagree with its keys, so the file's hashes are computed and 9 found.
    assert _body(cache, 9) == b'{"id": 9}'
    assert reads.columns[1:] == [["started_at", "response_status", "truncated", "request_key"]]
    assert _body(cache, 10) == b'{"id": 10}'
    assert [_body(cache, i) for i in range(9)] == [f'{{"id": {i}}}'.encode() for i in range(9)]


def test_a_hash_on_a_row_that_cannot_answer_is_never_served(tmp_path):
    cap = tmp_path / "cap"
    rows = [exchange(i) for i in range(8)] + [exchange(8, status=None)]
    path = _record(cap, rows)
    hashes = pq.read_table(path).column(KEY_HASH_COLUMN).to_pylist()
    hashes[8] = key_hash(tl.Matcher().key(_request(8)))  # the failed exchange's own key
    _with_hashes(path, pa.array(hashes, pa.int64()))
    cache = tl.ParquetCache(cap)
    assert cache.get(_request(8)) is None
    assert _body(cache, 7) == b'{"id": 7}'


def test_a_time_range_that_lies_does_not_bring_back_cleared_rows(tmp_path):
    cap = tmp_path / "cap"
    path = _record(cap, [exchange(i) for i in range(10)])
    cutoff_us = int((T0 + timedelta(seconds=1)).timestamp() * 1_000_000)
    table = pq.read_table(path)
    meta = {
        **table.schema.metadata,
        b"traffic_lab.time_range": f"{cutoff_us},{cutoff_us + 9}".encode(),
    }
    _rewrite(path, table.replace_schema_metadata(meta))
    markers = cap / "_traffic_lab" / "markers"
    markers.mkdir(parents=True)
    (markers / f"clear-{cutoff_us:020d}-0a1b2c3d.marker").write_text(
        f'{{"cleared_before_us": {cutoff_us}}}\n'
    )
    cache = tl.ParquetCache(cap)
    assert len(cache) == 10  # as the file claims, until a row proves it wrong
    assert [cache.get(_request(i)) for i in range(10)] == [None] * 10
    assert len(cache) == 0


def test_lookup_nowait_reads_nothing_and_aget_answers(tmp_path):
    import anyio

    cap = tmp_path / "cap"
    _record(cap, [exchange(i) for i in range(10)])
    cache = tl.ParquetCache(cap)
    with pytest.raises(BlockingIOError):
        cache.lookup_nowait(_request(3))
    assert cache.lookup_nowait(_request(30)) is None  # a miss needs no read
    response = anyio.run(cache.aget, _request(3))
    assert response is not None
    assert anyio.run(response.aread) == b'{"id": 3}'
    assert cache.lookup(_request(3)) is not None
    assert cache.lookup_nowait(_request(3)).response_body == b'{"id": 3}'  # type: ignore[union-attr]
