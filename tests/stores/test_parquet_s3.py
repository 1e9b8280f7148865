"""A capture on an object store: a moto S3 server on loopback, reached through AWS_* variables."""

from __future__ import annotations

import httpx
import pyarrow.dataset as ds
from pyarrow import fs

import traffic_lab as tl

from .conftest import exchange


def test_round_trip_on_s3(s3_bucket, moto_endpoint):
    url = f"s3://{s3_bucket}/captures/api"
    with tl.ParquetCache(url, blob_threshold=1000) as cache:
        for i in range(30):
            cache.put(exchange(i, body=b"z" * 5000 if i == 7 else None))
        cache.flush()
        cache.put(exchange(30))
    cache = tl.ParquetCache(url)
    assert (len(cache), len(cache.keys())) == (31, 31)
    request = httpx.Request("GET", "https://api.example/items/7?page=1")
    assert cache.get(request).read() == b"z" * 5000
    stream = tl.ParquetStream(url)
    assert [e.url for e in stream.exchanges()] == [exchange(i).url for i in range(31)]
    s3 = fs.S3FileSystem(
        endpoint_override=moto_endpoint,
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )
    names = sorted(
        i.path.removeprefix(f"{s3_bucket}/captures/api/")
        for i in s3.get_file_info(fs.FileSelector(f"{s3_bucket}/captures/api", recursive=True))
        if i.type == fs.FileType.File
    )
    assert len(names) == 3 and names[0].startswith("_traffic_lab/blobs/")
    assert all(n.startswith("day=20260301/part-") for n in names[1:])
    # A plain pyarrow dataset reads it too; compaction works on the object store.
    plain = ds.dataset(
        f"{s3_bucket}/captures/api", filesystem=s3, format="parquet", partitioning="hive"
    )
    assert plain.count_rows() == 31
    report = stream.compact()
    assert (report.files_merged, report.rows) == (2, 31)
    assert [e.url for e in tl.ParquetStream(url, filesystem=s3).exchanges()] == [
        exchange(i).url for i in range(31)
    ]


def test_durable_on_s3_publishes_each_put(s3_bucket):
    url = f"s3://{s3_bucket}/durable"
    store = tl.ParquetStream(url, durable=True)
    store.put(exchange(1))
    assert len(tl.ParquetStream(url)) == 1
    store.close()


def test_missing_bucket_is_a_clear_error(s3_bucket):
    import pytest

    with pytest.raises(
        tl.errors.StoreNotFoundError, match="s3://no-such-bucket/x: the bucket does not exist"
    ):
        tl.ParquetCache("s3://no-such-bucket/x")
