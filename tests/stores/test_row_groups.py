"""Row groups sized by rows and bytes: scans read few large groups, reading one exchange back
decodes at most about ``row_group_bytes`` of rows."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

import traffic_lab as tl
from traffic_lab.stores.parquet import ParquetOptions
from traffic_lab.testing import make_exchange


def groups(path: Path) -> list[int]:
    [file] = sorted(path.glob("day=*/*.parquet"))
    meta = pq.ParquetFile(file).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def test_small_rows_fill_one_group_per_flush(tmp_path):
    with tl.ParquetStream(tmp_path / "c", flush_seconds=None) as stream:
        for i in range(5000):
            stream.put(make_exchange(url=f"https://a.example/items/{i}"))
    assert groups(tmp_path / "c") == [5000]  # was 5 groups of 1,024 before row_group_bytes


def test_large_rows_are_cut_by_bytes(tmp_path):
    body = b"x" * 65_536  # below the blob threshold: stored in the row
    with tl.ParquetStream(tmp_path / "c", flush_seconds=None) as stream:
        for i in range(300):
            stream.put(make_exchange(url=f"https://a.example/big/{i}", response_body=body))
    sizes = groups(tmp_path / "c")
    # 8 MiB over rows of 64 KiB and a few hundred bytes of the rest: 127 rows a group.
    assert sizes == [127, 127, 46]
    [file] = sorted((tmp_path / "c").glob("day=*/*.parquet"))
    meta = pq.ParquetFile(file).metadata
    assert all(meta.row_group(i).total_byte_size <= 8.5 * 2**20 for i in range(len(sizes)))


def test_row_group_size_still_caps_rows(tmp_path):
    with tl.ParquetStream(tmp_path / "c", row_group_size=1024, row_group_bytes=None) as stream:
        for i in range(2500):
            stream.put(make_exchange(url=f"https://a.example/items/{i}"))
    assert groups(tmp_path / "c") == [1024, 1024, 452]


@pytest.mark.parametrize("bad", [{"row_group_size": 0}, {"row_group_bytes": 0}])
def test_sizes_must_be_positive(bad):
    with pytest.raises(ValueError, match="must be positive"):
        ParquetOptions(**bad)


def test_a_cache_serves_every_row_of_groups_cut_by_bytes(tmp_path):
    # The cache registers the groups it wrote without reading the footer back: the sizes it
    # assumes are the file's (a wrong size would serve another row's response).
    path = tmp_path / "c"
    bodies = {i: bytes([65 + i % 26]) * 40_000 for i in range(400)}
    with tl.ParquetCache(path, flush_seconds=None, row_group_bytes=1_000_000) as cache:
        for i, body in bodies.items():
            cache.put(make_exchange(url=f"https://a.example/r/{i}", response_body=body))
        cache.flush()
        assert len(groups(path)) == 17  # 24 rows of ~40 KB a group
        for i in (0, 23, 24, 200, 399):
            response = cache.get(httpx.Request("GET", f"https://a.example/r/{i}"))
            assert response is not None and response.content == bodies[i]
    reopened = tl.ParquetCache(path)
    for i in (5, 47, 48, 398):
        response = reopened.get(httpx.Request("GET", f"https://a.example/r/{i}"))
        assert response is not None and response.content == bodies[i]
