"""Captures of any size: traffic_lab against DuckDB SQL, raw pyarrow and Polars on the same files.

Run ``python benchmarks/bench_scale.py --quick`` (a capture of 1M exchanges, a few minutes) or
``--size 10000000`` (10M; the issue's targets are set there). Each operation runs in a fresh
subprocess, so its time includes opening the capture and its peak RSS is its own
(``VmHWM``); the capture is read from the page cache (every file is read once first).

The capture is built quickly: 100k realistic exchanges are recorded through ``ParquetStream``,
then their files are copied with fresh writer ids, later times and fresh request keys, each copy a
valid capture file (named, stamped and partitioned as the writer would). Paths come from six
endpoint templates over four hosts; 1% of rows each are 5xx, on a rare host, DELETEs, and on a
rare endpoint (``/v1/admin/audit/{id}``), spread evenly over the capture; the first 1% of the
time range holds 1% of the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import environment

HOSTS = ["api.shop.test", "payments.shop.test", "search.shop.test", "cdn.shop.test"]
RARE_HOST = "legacy.shop.test"
BASE = 100_000
# One copy of the base spans 864 s, so 100 copies fill a day and no file crosses midnight.
STEP = timedelta(microseconds=8_640)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def make_exchange(i: int, rng: random.Random):
    import traffic_lab as tl

    host = RARE_HOST if i % 100 == 37 else HOSTS[i % 4]
    kind = i % 5
    if i % 100 == 89:
        path = f"/v1/admin/audit/{rng.randrange(1_000)}"
    elif kind == 0:
        path = f"/v1/users/{rng.randrange(100_000)}"
    elif kind == 1:
        path = f"/v1/orders/{rng.getrandbits(128):032x}"
    elif kind == 2:
        path = "/v1/search"
    elif kind == 3:
        path = f"/v1/items/{rng.randrange(5_000)}/reviews"
    else:
        path = "/v1/cart"
    if i % 100 == 51:
        status = rng.choice([500, 502, 503])
    elif i % 10 == 3:
        status = rng.choice([400, 401, 404, 429])
    else:
        status = 200
    body = b'{"id": %d, "ok": true, "items": [1, 2, 3]}' % i
    return tl.Exchange(
        "DELETE" if i % 100 == 73 else "GET" if i % 3 else "POST",
        f"https://{host}{path}?page={i % 7}",
        request_headers=[(b"Host", host.encode()), (b"Accept", b"application/json")],
        status_code=status,
        response_headers=[(b"Content-Type", b"application/json")],
        response_body=body,
        started_at=T0 + i * STEP,
        elapsed=timedelta(microseconds=500 + int(rng.expovariate(1 / 40_000))),
    )


def build_capture(folder: Path, size: int, row_group_size: int | None = None) -> float:
    """A capture of ``size`` exchanges (a multiple of 100k) at ``folder``; seconds taken.

    Row groups are sized as the writer sizes them (``ParquetOptions``), or hold
    ``row_group_size`` rows (1,024: captures written before row groups were sized by bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    import traffic_lab as tl
    from traffic_lab.stores.parquet import ParquetOptions
    from traffic_lab.stores.parquet.schema import KEY_HASH_COLUMN, key_hash_column
    from traffic_lab.stores.parquet.writer import compression_by_column, data_file_name, group_rows

    start = time.perf_counter()
    rng = random.Random(1)
    base_n = min(size, BASE)
    options = ParquetOptions(flush_rows=base_n, flush_bytes=1 << 31, flush_seconds=None)
    if row_group_size is not None:
        options = options.replace(row_group_size=row_group_size, row_group_bytes=None)
    with tl.ParquetStream(folder, options=options) as stream:
        for i in range(base_n):
            stream.put(make_exchange(i, rng))
    [base_file] = sorted(folder.glob("day=*/*.parquet"))
    base = pq.read_table(base_file)
    meta = dict(base.schema.metadata)
    shift_us = base_n * (STEP // timedelta(microseconds=1))
    for k in range(1, size // base_n):
        writer_id = f"{random.Random(k).getrandbits(64):016x}"
        started = pc.cast(base.column("started_at"), pa.int64())
        started = pc.add(started, k * shift_us)
        # Fresh keys that stay key-like: the copy number replaces the first 8 hex digits (each
        # copy's keys differ from every other copy's).
        keys = pc.binary_join_element_wise(
            f"{k:08x}", pc.utf8_slice_codeunits(base.column("request_key"), 8, 32), ""
        )
        # The writer's own fields (never-null columns declared so: a reader checks any
        # nullable-declared column for nulls by reading it).
        table = (
            base.set_column(0, base.schema.field("started_at"),
                            started.cast(pa.timestamp("us", tz="UTC")))
            .set_column(base.schema.get_field_index("writer_id"), base.schema.field("writer_id"),
                        pa.array([writer_id] * base.num_rows, pa.string()))
            .set_column(base.schema.get_field_index("request_key"),
                        base.schema.field("request_key"), keys)
        )  # fmt: skip
        # The key hashes of the fresh keys, as the writer computes them.
        index = table.schema.get_field_index(KEY_HASH_COLUMN)
        table = table.set_column(index, table.schema.field(index), key_hash_column(table))
        first, last = pc.min(started).as_py(), pc.max(started).as_py()
        day = int(datetime.fromtimestamp(first / 1e6, UTC).strftime("%Y%m%d"))
        table = table.replace_schema_metadata(
            {
                **meta,
                b"traffic_lab.writer_id": writer_id.encode(),
                b"traffic_lab.time_range": f"{first},{last}".encode(),
            }
        )
        target = folder / data_file_name(day, writer_id, 0)
        target.parent.mkdir(parents=True, exist_ok=True)
        codecs = compression_by_column(table.schema, "zstd")
        rows = group_rows(table, options)
        pq.write_table(table, target, row_group_size=rows, compression=codecs)  # type: ignore[arg-type]
    return time.perf_counter() - start


# -- the operations, each run in a fresh process -------------------------------------------------
TEMPLATE_SQL = r"""
    array_to_string(list_transform(string_split(request_path, '/'), lambda s: CASE
        WHEN regexp_full_match(s, '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}') THEN '{uuid}'
        WHEN regexp_full_match(s, '[0-9]+') THEN '{id}'
        WHEN regexp_full_match(s, '[0-9a-fA-F]{8,}') AND regexp_matches(s, '[0-9]')
             AND regexp_matches(s, '[a-fA-F]') THEN '{hash}'
        WHEN regexp_full_match(s, '[A-Za-z0-9_-]{20,}') AND regexp_matches(s, '[0-9]')
             AND regexp_matches(s, '[A-Za-z]') THEN '{hash}'
        ELSE s END), '/')
"""


def _duckdb(sql: str) -> object:
    import duckdb

    return duckdb.sql(sql).fetchall()


def op(name: str, path: str) -> object:
    """Run one named operation on the capture at ``path``; returns a small check value."""
    files = f"'{path}/day=*/*.parquet'"
    if name == "ours: read_capture (metadata columns)":
        import traffic_lab as tl

        return len(tl.read_capture(path))
    if name.startswith("ours: read_capture(where ") and name.endswith(", 1%)"):
        import traffic_lab as tl

        return len(tl.read_capture(path, where=one_percent(name, path)))
    if name == "DuckDB SQL: rows where status 5xx (metadata columns)":
        from traffic_lab.frames import DEFAULT_COLUMNS

        columns = ", ".join(c if c != "elapsed_ms" else "elapsed" for c in DEFAULT_COLUMNS)
        import duckdb

        return (
            duckdb.sql(
                f"SELECT {columns} FROM read_parquet({files}, hive_partitioning=true)"
                " WHERE response_status >= 500"
            )
            .to_arrow_table()
            .num_rows
        )
    if name == "ours: open_capture().endpoints()":
        import traffic_lab as tl

        return len(tl.open_capture(path).endpoints())
    if name == "ours: open_capture().summary()":
        import traffic_lab as tl

        return int(tl.open_capture(path).summary()["exchanges"])
    if name == "ours: open_capture().where(status=5xx).count()":
        import traffic_lab as tl

        return tl.open_capture(path).where(status="5xx").count()
    if name == "ours: open_capture().where(host=rare).count()":
        import traffic_lab as tl

        return tl.open_capture(path).where(host=RARE_HOST).count()
    if name == "ours: ParquetCache open + first lookup":
        import httpx

        import traffic_lab as tl

        cache = tl.ParquetCache(path)
        return cache.lookup(httpx.Request("GET", "https://api.shop.test/v1/cart?page=4")) is None
    if name == "ours: ParquetCache open":
        import traffic_lab as tl

        return len(tl.ParquetCache(path))
    if name == "ours: ParquetCache open, key hashes computed (as without the column)":
        import traffic_lab as tl

        class ComputedHashes(tl.ParquetCache):
            _use_stored_hashes = False  # what a capture written before schema v2 costs

        return len(ComputedHashes(path))
    if name == "ours: ParquetCache lookups after open (us each)":
        return cache_lookups(path)
    if name == "DuckDB SQL: endpoints (same templates, quantiles)":
        return len(
            _duckdb(
                f"SELECT request_method, {TEMPLATE_SQL} AS endpoint, count(*),"
                " quantile_cont(elapsed, [0.5, 0.9, 0.99]) FROM read_parquet("
                f"{files}, hive_partitioning=true) GROUP BY ALL"
            )
        )
    if name == "DuckDB SQL: group by host + latency quantiles":
        return len(
            _duckdb(
                "SELECT request_host, count(*), quantile_cont(elapsed, [0.5, 0.99])"
                f" FROM read_parquet({files}, hive_partitioning=true) GROUP BY 1"
            )
        )
    if name == "DuckDB SQL: count where status 5xx":
        return _duckdb(
            f"SELECT count(*) FROM read_parquet({files}, hive_partitioning=true)"
            " WHERE response_status >= 500"
        )[0]
    if name == "pyarrow -> pandas (metadata columns)":
        import pyarrow.dataset as ds

        from traffic_lab.frames import DEFAULT_COLUMNS

        columns = [c if c != "elapsed_ms" else "elapsed" for c in DEFAULT_COLUMNS]
        return len(
            ds.dataset(path, format="parquet", partitioning="hive").to_table(columns).to_pandas()
        )
    if name == "Polars lazy: group by host + latency quantiles":
        import polars as pl

        frame = pl.scan_parquet(f"{path}/day=*/*.parquet", hive_partitioning=True)
        return len(
            frame.group_by("request_host")
            .agg(pl.len(), pl.col("elapsed").cast(pl.Int64).quantile(0.5))
            .collect()
        )
    raise ValueError(name)


def one_percent(name: str, path: str) -> dict[str, object]:
    """The ``where=`` of a ``read_capture(where <column>, 1%)`` operation."""
    column = name.removeprefix("ours: read_capture(where ").split(",")[0]
    if column == "time":  # the first 1% of the capture's time range (BASE rows a file)
        size = BASE * sum(1 for _ in Path(path).glob("day=*/*.parquet"))
        return {"end": T0 + STEP * size / 100}
    return {
        "status": {"status": "5xx"},
        "host": {"host": RARE_HOST},
        "method": {"method": "DELETE"},
        "path glob": {"path": "/v1/admin/**"},
    }[column]


def cache_lookups(path: str) -> str:
    """A ParquetCache's first hit (one row group read), warm hit and miss, in µs, and how many
    row groups the misses read."""
    import statistics

    import httpx

    import traffic_lab as tl

    cache = tl.ParquetCache(path)
    rng = random.Random(1)
    recorded = [make_exchange(i, rng) for i in range(1_000)]  # the base's first rows
    hits = [httpx.Request(ex.method, ex.url) for ex in recorded[::10]]
    misses = [httpx.Request("GET", f"https://api.shop.test/v1/none/{j}") for j in range(1_000)]
    reads = 0
    read_row_group = cache._capture.read_row_group

    def counted(*args: object) -> object:
        nonlocal reads
        reads += 1
        return read_row_group(*args)  # type: ignore[arg-type]

    cache._capture.read_row_group = counted  # type: ignore[method-assign]
    t = time.perf_counter()
    assert cache.get(hits[0]) is not None
    first = (time.perf_counter() - t) * 1e6
    for request in hits:
        assert cache.get(request) is not None
    warm = []
    for _ in range(20):
        t = time.perf_counter()
        for request in hits:
            cache.get(request)
        warm.append((time.perf_counter() - t) / len(hits) * 1e6)
    before = reads
    missed = []
    for _ in range(5):
        t = time.perf_counter()
        for request in misses:
            assert cache.get(request) is None
        missed.append((time.perf_counter() - t) / len(misses) * 1e6)
    return (
        f"first hit {first:.0f}, warm hit {statistics.median(warm):.1f}, "
        f"miss {statistics.median(missed):.1f} ({reads - before} row groups read by "
        f"{5 * len(misses)} misses)"
    )


OPERATIONS = [
    "ours: read_capture (metadata columns)",
    "pyarrow -> pandas (metadata columns)",
    "ours: read_capture(where status, 1%)",
    "ours: read_capture(where host, 1%)",
    "ours: read_capture(where method, 1%)",
    "ours: read_capture(where path glob, 1%)",
    "ours: read_capture(where time, 1%)",
    "DuckDB SQL: rows where status 5xx (metadata columns)",
    "ours: open_capture().where(status=5xx).count()",
    "DuckDB SQL: count where status 5xx",
    "ours: open_capture().where(host=rare).count()",
    "ours: open_capture().summary()",
    "ours: open_capture().endpoints()",
    "DuckDB SQL: endpoints (same templates, quantiles)",
    "DuckDB SQL: group by host + latency quantiles",
    "Polars lazy: group by host + latency quantiles",
    "ours: ParquetCache open + first lookup",
    "ours: ParquetCache open",
    "ours: ParquetCache open, key hashes computed (as without the column)",
    "ours: ParquetCache lookups after open (us each)",
]


def run_child(name: str, path: str) -> dict[str, object]:
    code = (
        "import json, sys, time\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "import bench_scale\n"
        "t = time.perf_counter()\n"
        f"value = bench_scale.op({name!r}, {path!r})\n"
        "seconds = time.perf_counter() - t\n"
        # VmHWM: this process's own peak (ru_maxrss keeps the parent's from before the exec)
        "rss = next(int(line.split()[1]) for line in open('/proc/self/status')"
        " if line.startswith('VmHWM:')) / 1024\n"
        "print(json.dumps({'seconds': seconds, 'rss_mb': rss, 'value': str(value)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        return {"seconds": float("nan"), "rss_mb": float("nan"), "value": done.stderr[-300:]}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1M exchanges")
    parser.add_argument("--size", type=int, default=None, help="exchanges (multiple of 100k)")
    parser.add_argument("--capture", help="reuse a capture built earlier at this path")
    parser.add_argument("--only", help="run only the operations whose name contains this")
    args = parser.parse_args()
    operations = [name for name in OPERATIONS if args.only is None or args.only in name]
    size = args.size or (1_000_000 if args.quick else 10_000_000)
    tmp = None
    if args.capture and Path(args.capture).exists():
        path = Path(args.capture)
        built = "reused"
    else:
        path = Path(args.capture) if args.capture else None
        if path is None:
            tmp = Path(tempfile.mkdtemp(prefix="bench_scale-"))
            path = tmp / "capture"
        print(f"building a capture of {size:,} exchanges ...", file=sys.stderr)
        built = f"built in {build_capture(path, size):.1f} s"
    try:
        for f in path.glob("day=*/*.parquet"):  # into the page cache
            f.read_bytes()
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        results = {}
        for name in operations:
            print(f"  .. {name}", file=sys.stderr)
            results[name] = run_child(name, str(path))
        print("\n".join(environment(("pyarrow", "pandas", "duckdb", "polars", "ibis-framework"))))
        print(f"capture: {size:,} exchanges, {disk / 1e6:,.0f} MB on disk ({built})")
        print("each row: a fresh process (open + answer), wall seconds and peak RSS\n")
        width = max(map(len, operations))
        print(f"{'operation':<{width}}  {'seconds':>8}  {'peak MB':>8}  answer")
        print(f"{'-' * width}  {'-' * 8}  {'-' * 8}  ------")
        for name, r in results.items():
            print(f"{name:<{width}}  {r['seconds']:>8.2f}  {r['rss_mb']:>8.0f}  {r['value']}")
        print()
        if len(results) == len(OPERATIONS):
            ours = results["ours: open_capture().endpoints()"]["seconds"]
            sql = results["DuckDB SQL: endpoints (same templates, quantiles)"]["seconds"]
            full = results["ours: read_capture (metadata columns)"]["seconds"]
            summary = results["ours: open_capture().summary()"]["seconds"]
            rss = results["ours: open_capture().endpoints()"]["rss_mb"]
            print(f"endpoints vs DuckDB SQL: {ours / sql:.2f}x (target <= 2x at 10M), {rss:.0f} MB "
                  "(target <= 1 GB)")  # fmt: skip
            for name, r in results.items():
                if name.startswith("ours: read_capture(where "):
                    what = name.removeprefix("ours: read_capture(where ").split(",")[0]
                    print(f"where= {what} keeping 1% vs a full read: "
                          f"{r['seconds'] / full:.0%} (target <= 15%)")  # fmt: skip
            print(f"summary(): {summary:.2f} s (target <= 3 s at 10M)")
        if "ours: ParquetCache open" in results:
            cache = results["ours: ParquetCache open"]
            print(f"ParquetCache open: {cache['seconds']:.2f} s, {cache['rss_mb']:.0f} MB "
                  "(target <= 2 s, <= 500 MB at 10M)")  # fmt: skip
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
