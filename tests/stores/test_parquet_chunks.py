"""Capture schema v3: the ``response_chunks`` column (a streamed body's chunk sizes and offsets).

Written for every file, null for bodies that came in one piece; kept by compaction; absent from
v1/v2 files (one chunk); and checked on read: a list that does not fit its row is ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import traffic_lab as tl
from traffic_lab.exchange import MAX_CHUNKS, Chunk
from traffic_lab.stores.parquet.schema import CHUNKS_COLUMN, CHUNKS_FIELD, SCHEMA_VERSION

from .conftest import exchange

BODY = b'data: {"a": 1}\n\ndata: {"a": 2}\n\ndata: [DONE]\n\n'
CHUNKS = (Chunk(16, 120), Chunk(16, 50_300), Chunk(14, 100_900))


def streamed(i: int) -> tl.Exchange:
    return exchange(i, body=BODY, chunks=CHUNKS)


def record(cap: Path, exchanges: list[tl.Exchange]) -> Path:
    before = set(cap.glob("day=*/*.parquet"))
    with tl.ParquetStream(cap) as stream:
        for ex in exchanges:
            stream.put(ex)
    [new] = set(cap.glob("day=*/*.parquet")) - before
    return new


def read_back(cap: Path) -> list[tl.Exchange]:
    with tl.ParquetStream(cap) as stream:
        return list(stream.exchanges())


def test_chunks_are_stored_in_a_v3_column_and_read_back(tmp_path):
    path = record(tmp_path, [streamed(0), exchange(1)])
    table = pq.read_table(path)
    assert SCHEMA_VERSION == 3
    assert table.schema.metadata[b"traffic_lab.schema_version"] == b"3"
    assert table.schema.field(CHUNKS_COLUMN) == CHUNKS_FIELD
    assert table.column(CHUNKS_COLUMN).to_pylist() == [
        [{"size": 16, "offset_us": 120}, {"size": 16, "offset_us": 50300},
         {"size": 14, "offset_us": 100900}],
        None,
    ]  # fmt: skip
    first, second = read_back(tmp_path)
    assert first.chunks == CHUNKS
    assert first == streamed(0)
    assert second.chunks is None
    # A cache serves the body in its chunks.
    with tl.ParquetCache(tmp_path) as cache:
        found = cache.lookup(streamed(0).request)
        assert found is not None
        assert list(found.new_response().iter_raw()) == [BODY[:16], BODY[16:32], BODY[32:]]


def test_a_blob_stored_body_keeps_its_chunks(tmp_path):
    big = b"x" * 300
    chunks = (Chunk(100, 0), Chunk(200, 10))
    with tl.ParquetStream(tmp_path, blob_threshold=64) as stream:
        stream.put(exchange(0, body=big, chunks=chunks))
    [back] = read_back(tmp_path)
    assert back.response_body == big
    assert back.chunks == chunks


def test_compaction_keeps_the_chunks(tmp_path):
    record(tmp_path, [streamed(0)])
    record(tmp_path, [exchange(1)])
    assert tl.ParquetStream(tmp_path).compact().files_merged == 2
    [merged] = tmp_path.glob("day=*/*.parquet")
    assert pq.read_table(merged).column(CHUNKS_COLUMN).null_count == 1
    first, second = read_back(tmp_path)
    assert (first.chunks, second.chunks) == (CHUNKS, None)


@pytest.mark.parametrize("version", [b"1", b"2"])
def test_an_old_file_without_the_column_reads_as_bodies_in_one_piece(tmp_path, version):
    path = record(tmp_path, [streamed(0)])
    table = pq.read_table(path)
    old = table.drop_columns([CHUNKS_COLUMN])
    if version == b"1":
        old = old.drop_columns(["request_key_hash"])
    meta = {**table.schema.metadata, b"traffic_lab.schema_version": version}
    pq.write_table(old.replace_schema_metadata(meta), path)
    [back] = read_back(tmp_path)
    assert back.chunks is None
    assert back.response_body == BODY
    assert back == streamed(0).replace(chunks=None)
    # Compacting old files with new ones writes v3 files that read the same.
    record(tmp_path, [streamed(1)])
    tl.ParquetStream(tmp_path).compact()
    assert [e.chunks for e in read_back(tmp_path)] == [None, CHUNKS]


def _list(sizes: list[int], offsets: list[int]) -> list[dict[str, int]]:
    return [{"size": s, "offset_us": o} for s, o in zip(sizes, offsets, strict=True)]


HOSTILE = {
    "sizes sum to less than the body": _list([16, 16], [0, 10]),
    "sizes sum to more than the body": _list([16, 16, 16], [0, 10, 20]),
    "a negative size": _list([-2, 48], [0, 10]),
    "a negative offset": _list([16, 30], [-5, 10]),
    "offsets going back": _list([16, 30], [500, 10]),
    "an offset past a day": _list([16, 30], [0, 2**62]),
    "no chunks": [],
    "too many chunks": _list([1] * 46 + [0] * (MAX_CHUNKS - 45), [0] * (MAX_CHUNKS + 1)),
}


@pytest.mark.parametrize("lists", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_chunk_list_that_does_not_fit_its_row_is_ignored(tmp_path, lists):
    path = record(tmp_path, [streamed(0), streamed(1)])
    table = pq.read_table(path)
    bad = pa.array([lists, table.column(CHUNKS_COLUMN)[1].as_py()], CHUNKS_FIELD.type)
    at = table.schema.get_field_index(CHUNKS_COLUMN)
    pq.write_table(table.set_column(at, CHUNKS_FIELD, bad), path)
    first, second = read_back(tmp_path)
    assert (first.chunks, first.response_body) == (None, BODY)
    assert second.chunks == CHUNKS  # the good row keeps its own
    with tl.ParquetCache(tmp_path) as cache:
        response = cache.get(streamed(0).request)
        assert response is not None and response.content == BODY


def test_ten_million_chunks_are_ignored_without_building_them(tmp_path):
    path = record(tmp_path, [streamed(0)])
    table = pq.read_table(path)
    n = 10_000_000
    items = pa.StructArray.from_arrays(
        [pa.array(np.zeros(n, np.int64)), pa.array(np.zeros(n, np.int64))],
        fields=list(CHUNKS_FIELD.type.value_type),
    )
    huge = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), items, type=CHUNKS_FIELD.type)
    at = table.schema.get_field_index(CHUNKS_COLUMN)
    pq.write_table(table.set_column(at, CHUNKS_FIELD, huge), path)
    [back] = read_back(tmp_path)
    assert (back.chunks, back.response_body) == (None, BODY)


def test_a_column_of_another_type_is_ignored(tmp_path):
    path = record(tmp_path, [streamed(0)])
    table = pq.read_table(path)
    at = table.schema.get_field_index(CHUNKS_COLUMN)
    pq.write_table(table.set_column(at, CHUNKS_COLUMN, pa.array(["16,16,14"])), path)
    [back] = read_back(tmp_path)
    assert back.chunks is None
