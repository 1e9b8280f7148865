"""Benchmarks of the Parquet stores: write throughput, size on disk, open and lookup, iteration.

Run ``python benchmarks/bench_parquet.py --quick`` (under a minute) or without ``--quick`` for
the full run (minutes; includes the 1M-exchange captures). Prints plain-text tables with ratios.

Comparisons: raw pyarrow writing the same table (the ceiling), VCR.py saving a YAML cassette,
and the ``httpx.MockTransport`` floor for a request that never leaves the process.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import traffic_lab as tl
from traffic_lab.exchange import check_storable
from traffic_lab.stores.parquet import exchanges_to_table
from traffic_lab.stores.parquet._log import encode_binary_record

T0 = datetime(2026, 3, 1, tzinfo=UTC)
REPEAT = 3  # timed runs of each write; the best counts
_WORDS = [
    "".join(random.Random(w).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 + w % 7))
    for w in range(2000)
]


def make_body(i: int) -> bytes:
    """A JSON body of ~1.2 KB with text about as compressible as real API payloads."""
    rng = random.Random(i)
    bio = " ".join(rng.choice(_WORDS) for _ in range(150))
    return (
        f'{{"id": {i}, "name": "user {i}", "email": "user{i}@example.com", '
        f'"score": {rng.random():.6f}, "tags": ["{rng.choice(_WORDS)}", "{rng.choice(_WORDS)}"], '
        f'"bio": "{bio}"}}'
    ).encode()


def make_exchange(i: int) -> tl.Exchange:
    """A typical JSON API exchange (~1.2 KB body, 8 + 7 headers)."""
    body = make_body(i)
    return tl.Exchange(
        "GET",
        f"https://api.example.com/v1/users/{i}?include=profile&page={i % 10}",
        request_headers=[
            (b"Host", b"api.example.com"),
            (b"Accept", b"application/json"),
            (b"Accept-Encoding", b"gzip, deflate"),
            (b"Connection", b"keep-alive"),
            (b"User-Agent", b"python-httpx/0.28.1"),
            (b"X-Request-Id", f"req-{i:08d}".encode()),
            (b"Authorization", b"[REDACTED]"),
            (b"Accept-Language", b"en"),
        ],
        status_code=200,
        reason_phrase="OK",
        response_headers=[
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Date", b"Sun, 01 Mar 2026 00:00:00 GMT"),
            (b"Server", b"nginx"),
            (b"Cache-Control", b"no-cache"),
            (b"X-Request-Id", f"req-{i:08d}".encode()),
            (b"Vary", b"Accept-Encoding"),
        ],
        response_body=body,
        started_at=T0 + timedelta(microseconds=i * 250),
        elapsed=timedelta(milliseconds=3),
    )


def folder_bytes(path: str) -> int:
    total = 0
    for root, _, names in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    return total


def timed(fn, *args):
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def fetch_all(client: httpx.Client, urls: list[str]) -> None:
    for url in urls:
        client.get(url).read()


def row(*cells: object, widths=(44, 14, 14, 12)) -> str:
    return "".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=False))
    )


# -- write ---------------------------------------------------------------------------------------
def bench_write(n: int, n_vcr: int, tmp: str) -> None:
    exchanges = [make_exchange(i) for i in range(n)]
    raw_mb = sum(len(e.response_body) + len(e.request_body) for e in exchanges) / 1e6
    table = exchanges_to_table(exchanges, tl.Matcher())
    ceiling_path = os.path.join(tmp, "raw.parquet")
    # Each write is timed REPEAT times and the best kept: on a shared 2-core machine one run
    # varies by a third.
    t_raw = min(
        timed(lambda: pq.write_table(table, ceiling_path, compression="zstd"))[0]
        for _ in range(REPEAT)
    )

    def store_write(kind, **options):
        folder = os.path.join(tmp, f"w-{kind}")
        shutil.rmtree(folder, ignore_errors=True)
        cls = tl.ParquetStream if kind in ("stream", "durable") else tl.ParquetCache
        store = cls(folder, flush_seconds=None, **options)
        redactor = tl.Redactor()

        def go():
            if kind == "redacting":  # as the recording transports hand exchanges over
                for e in exchanges:
                    store.put_redacting(e, redactor)
            else:
                for e in exchanges:
                    store.put(e)
            store.close()

        seconds, _ = timed(go)
        return seconds, folder

    t_stream, stream_folder = min(store_write("stream") for _ in range(REPEAT))
    t_cache, _ = min(store_write("cache") for _ in range(REPEAT))
    t_durable, _ = min(store_write("durable", durable=True) for _ in range(REPEAT))
    t_redacting, _ = min(store_write("redacting") for _ in range(REPEAT))
    t_convert, _ = timed(exchanges_to_table, exchanges, tl.Matcher())
    matcher = tl.Matcher()
    t_keys, keys = timed(lambda: [matcher.key(e) for e in exchanges])
    redactor = tl.Redactor()
    t_keys_redacted, _ = timed(lambda: [matcher.key(e, redacted_by=redactor) for e in exchanges])
    t_check, _ = timed(lambda: [check_storable(e) for e in exchanges])
    t_given, _ = timed(lambda: exchanges_to_table(exchanges, matcher, keys=keys))
    t_record, _ = timed(
        lambda: [encode_binary_record(i, e, keys[i]) for i, e in enumerate(exchanges)]
    )
    no_key_path = os.path.join(tmp, "nokey.parquet")
    t_nokey, _ = timed(
        lambda: pq.write_table(
            exchanges_to_table(exchanges, matcher, keys=keys), no_key_path, compression="zstd"
        )
    )

    vcr_seconds, vcr_bytes = bench_vcr(exchanges[:n_vcr], tmp)
    print(f"\nWrite throughput ({n:,} exchanges, {raw_mb:.1f} MB of bodies; VCR.py {n_vcr:,})")
    print(row("writer", "exch/s", "MB/s", "vs ceiling"))
    ceiling = n / t_raw
    for name, seconds, count in [
        ("raw pyarrow write_table, zstd (ceiling)", t_raw, n),
        ("ParquetStream buffered (put + close)", t_stream, n),
        ("ParquetCache buffered (put + close)", t_cache, n),
        ("ParquetStream durable=True", t_durable, n),
        ("ParquetCache put_redacting (as recorded)", t_redacting, n),
        ("exchanges_to_table + write, keys given", t_nokey, n),
        ("VCR.py cassette save (YAML)", vcr_seconds, n_vcr),
    ]:
        rate = count / seconds
        print(
            row(
                name,
                f"{rate:,.0f}",
                f"{raw_mb * count / n / seconds:,.1f}",
                f"{rate / ceiling:.2f}x",
            )
        )
    print(
        f"  of which, us/exchange: matcher.key {t_keys / n * 1e6:.1f} (of a redacted exchange, "
        f"redacted_by= {t_keys_redacted / n * 1e6:.1f}), exchanges_to_table "
        f"{t_convert / n * 1e6:.1f} (keys given {t_given / n * 1e6:.1f}), check_storable "
        f"{t_check / n * 1e6:.1f}, durable log record {t_record / n * 1e6:.1f}"
    )
    ours = folder_bytes(stream_folder) / n
    vcr_each = vcr_bytes / n_vcr
    print(
        f"\nBytes on disk per exchange: Parquet {ours / 1024:.2f} KiB, VCR.py YAML "
        f"{vcr_each / 1024:.2f} KiB  (ratio {ours / vcr_each:.2f}x)"
    )


def bench_vcr(exchanges: list[tl.Exchange], tmp: str) -> tuple[float, int]:
    from vcr.cassette import Cassette
    from vcr.request import Request

    path = os.path.join(tmp, "cassette.yaml")
    cassette = Cassette(path)
    for e in exchanges:
        request = Request(
            e.method, e.url, e.request_body, {k.decode(): v.decode() for k, v in e.request_headers}
        )
        response = {
            "status": {"code": e.status_code, "message": e.reason_phrase},
            "headers": {k.decode(): [v.decode()] for k, v in e.response_headers},
            "body": {"string": e.response_body.decode()},
        }
        cassette.append(request, response)
    seconds, _ = timed(cassette._save, True)
    return seconds, os.path.getsize(path)


# -- open and lookup -----------------------------------------------------------------------------
def build_capture(folder: str, n: int) -> None:
    with tl.ParquetStream(folder, flush_rows=100_000, flush_bytes=1 << 30, flush_seconds=None) as s:
        for i in range(n):
            s.put(make_exchange(i))


def caching_client(source, inner):
    transport_cls = getattr(tl, "CachingTransport", None)
    if transport_cls is not None:
        return httpx.Client(transport=transport_cls(source, inner)), "tl.CachingTransport"

    class Shim(httpx.BaseTransport):
        def handle_request(self, request):
            response = source.get(request)
            return response if response is not None else inner.handle_request(request)

    return httpx.Client(transport=Shim()), "a minimal caching shim"


def bench_lookup(sizes: list[int], tmp: str, samples: int) -> None:
    prebuilt = make_exchange(1)

    def handler(request):
        return prebuilt.new_response()

    floor_client = httpx.Client(transport=httpx.MockTransport(handler))
    urls = [make_exchange(i).url for i in range(samples)]
    for u in urls[:200]:
        floor_client.get(u).read()
    t_floor, _ = timed(fetch_all, floor_client, urls)
    floor = t_floor / samples * 1e6
    memory = tl.MemoryCache()
    for i in range(samples):
        memory.put(make_exchange(i))
    mem_client, _ = caching_client(memory, httpx.MockTransport(handler))
    t_mem, _ = timed(fetch_all, mem_client, urls)
    print(
        f"\nOpen and lookup (MockTransport floor {floor:.0f} us/request; MemoryCache hit "
        f"{t_mem / samples * 1e6:.0f} us = {t_mem / t_floor:.2f}x)"
    )
    print(
        row(
            "capture size",
            "open s",
            "first hit ms",
            "cold us",
            "warm us",
            "warm/floor",
            "seq cold us",
            widths=(14, 10, 14, 10, 10, 12, 12),
        )
    )
    for n in sizes:
        folder = os.path.join(tmp, f"cap-{n}")
        if not os.path.exists(folder):
            build_capture(folder, n)
        gc.collect()
        start = time.perf_counter()
        cache = tl.ParquetCache(folder)
        opened = time.perf_counter() - start
        client, how = caching_client(cache, httpx.MockTransport(handler))
        rng = random.Random(n)
        picks = [rng.randrange(n) for _ in range(samples)]
        pick_urls = [make_exchange(i).url for i in picks]
        start = time.perf_counter()
        client.get(pick_urls[0]).read()
        first = time.perf_counter() - start
        t_cold, _ = timed(fetch_all, client, pick_urls)
        t_warm, _ = timed(fetch_all, client, pick_urls)
        seq_urls = [make_exchange(i).url for i in range(n - samples, n)]
        t_seq, _ = timed(fetch_all, client, seq_urls)
        print(
            row(
                f"{n:,}",
                f"{opened:.2f}",
                f"{first * 1000:.1f}",
                f"{t_cold / samples * 1e6:.0f}",
                f"{t_warm / samples * 1e6:.0f}",
                f"{t_warm / t_floor:.2f}x",
                f"{t_seq / samples * 1e6:.0f}",
                widths=(14, 10, 14, 10, 10, 12, 12),
            )
        )
    print(
        f"  (through {how}; cold = random keys, first touch; warm = the same keys again; "
        "seq cold = keys in recorded order, first touch)"
    )


# -- iteration -----------------------------------------------------------------------------------
ITERATE = r"""
import sys, time, traffic_lab as tl

def hwm():  # peak resident set size of this process, in KiB
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1])

stream = tl.ParquetStream(sys.argv[1])
base = hwm()
start = time.perf_counter()
n = sum(1 for _ in stream.exchanges())
seconds = time.perf_counter() - start
print(n, seconds, base, hwm())
"""


def bench_iterate(n: int, tmp: str) -> None:
    folder = os.path.join(tmp, f"cap-{n}")
    if not os.path.exists(folder):
        build_capture(folder, n)
    out = subprocess.run(
        [sys.executable, "-c", ITERATE, folder], capture_output=True, text=True, check=True
    ).stdout.split()
    count, seconds, base, peak = int(out[0]), float(out[1]), int(out[2]), int(out[3])
    size = folder_bytes(folder)
    print(f"\nParquetStream iteration ({count:,} exchanges, {size / 1e6:.0f} MB on disk)")
    print(row("rate (exchanges/s)", f"{count / seconds:,.0f}"))
    print(row("peak RSS (MB)", f"{peak / 1024:.0f}"))
    print(row("peak RSS before iterating (MB)", f"{base / 1024:.0f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes; under a minute")
    parser.add_argument(
        "--workdir", help="keep the generated captures here and reuse them on the next run"
    )
    args = parser.parse_args()
    tmp = args.workdir or tempfile.mkdtemp(prefix="bench_parquet_")
    os.makedirs(tmp, exist_ok=True)
    try:
        if args.quick:
            bench_write(20_000, 2_000, tmp)
            bench_lookup([10_000], tmp, samples=1000)
            bench_iterate(10_000, tmp)
        else:
            bench_write(200_000, 10_000, tmp)
            bench_lookup([10_000, 100_000, 1_000_000], tmp, samples=2000)
            bench_iterate(1_000_000, tmp)
    finally:
        if not args.workdir:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
