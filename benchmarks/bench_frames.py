"""Benchmarks of traffic_lab.frames: a capture into pandas, a HAR file into pandas, and a narrow
where= filter over a large capture.

Run ``python benchmarks/bench_frames.py --quick`` (under a minute: 50k exchanges) or without
``--quick`` for the full run (a few minutes: 1M exchanges). Prints plain-text tables with ratios.

1. Metadata columns (everything but bodies and headers) into a typed DataFrame:
   ``tl.read_capture(path)`` against raw pyarrow reading the same columns of the same files:
   floor A is ``pyarrow.dataset(path).to_table(columns)`` (Arrow only), floor B adds
   ``.to_pandas()`` with default types (which turns the ``tags`` map column into Python lists).
   Target: <= 1.3x floor B; the ratio to floor A is printed too. The blocks alternate round by
   round and the ratios are medians of per-round ratios of CPU time (``time.process_time``,
   all threads), steadier than wall time on a shared machine; wall-time ratios are in the
   notes.
2. The same exchanges as a HAR file: ``json.load`` + ``pandas.json_normalize(entries)``. A HAR
   of a million entries is about a gigabyte of JSON and several times that in Python objects,
   so the full run converts the first 200k exchanges and compares per exchange.
3. A ``where=`` filter touching 1% of the capture: a time window (files and row groups are
   pruned) and a host that is scattered across the capture (only the needed columns are read,
   every row group is scanned). Time, and bytes read from files (``rchar`` of
   ``/proc/self/io``; page-cache hits count, so this is what the process asked for).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.dataset as ds

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Row, environment, render_table, time_block

import traffic_lab as tl
from traffic_lab.frames import DEFAULT_COLUMNS, Where, read_capture, to_pandas
from traffic_lab.interop import write_har

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=2)
HOSTS = ["api.example.com", "auth.example.com", "cdn.example.com", "pay.example.com"]
RARE_HOST = "rare.example.com"
HEADERS = ["scenario", "exchanges", "us/exchange", "ratio", "target", "result", "note"]
# The capture columns behind the default frame columns.
META = [c if c != "elapsed_ms" else "elapsed" for c in DEFAULT_COLUMNS]
Block = Callable[[], object]


def make_exchange(i: int, rng: random.Random) -> tl.Exchange:
    """A small JSON API exchange: 4 hosts (1% of rows on a fifth), mixed methods and statuses."""
    host = RARE_HOST if i % 100 == 37 else HOSTS[i % 4]
    status = 200 if i % 10 else rng.choice([201, 404, 422, 429, 500])
    body = b'{"id": %d, "name": "user %d", "plan": "pro", "tags": ["a", "b"]}' % (i, i)
    return tl.Exchange(
        "GET" if i % 3 else "POST",
        f"https://{host}/v1/users/{i}?page={i % 7}",
        request_headers=[
            (b"Host", host.encode()),
            (b"Accept", b"application/json"),
            (b"User-Agent", b"python-httpx/0.28.1"),
        ],
        status_code=status,
        reason_phrase="OK",
        response_headers=[
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Date", b"Sun, 01 Mar 2026 00:00:00 GMT"),
        ],
        response_body=body,
        started_at=T0 + i * STEP,
        elapsed=timedelta(microseconds=800 + rng.randrange(20_000)),
    )


def build_capture(folder: str, n: int) -> float:
    rng = random.Random(1)
    start = time.perf_counter()
    with tl.ParquetStream(folder, flush_rows=100_000, flush_bytes=1 << 30, flush_seconds=None) as s:
        for i in range(n):
            s.put(make_exchange(i, rng))
    return time.perf_counter() - start


def folder_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def bytes_read() -> int | None:
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# -- 1. metadata into pandas ----------------------------------------------------------------------
def measure_rounds(blocks: dict[str, Block], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of each block per round; the order alternates round by round, and
    each block runs once untimed first."""
    for block in blocks.values():
        block()
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in blocks}
    for i in range(rounds):
        names = list(blocks) if i % 2 == 0 else list(blocks)[::-1]
        for name in names:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            blocks[name]()
            out[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def _ratios(times, subject: str, floor: str) -> tuple[float, float]:
    """Median per-round ratios subject / floor: (CPU, wall)."""
    pairs = list(zip(times[subject], times[floor], strict=True))
    cpu = statistics.median(s[1] / f[1] for s, f in pairs)
    wall = statistics.median(s[0] / f[0] for s, f in pairs)
    return cpu, wall


def bench_metadata(folder: str, n: int, rounds: int) -> list[Row]:
    store = tl.ParquetStream(folder, create=False)

    def raw_read():
        return ds.dataset(folder, format="parquet", partitioning="hive").to_table(columns=META)

    blocks: dict[str, Block] = {
        "A": raw_read,
        "B": lambda: raw_read().to_pandas(),
        "ours": lambda: read_capture(folder),
        "store": lambda: to_pandas(store),
    }
    frame = read_capture(folder)
    assert len(frame) == n and str(frame.response_status.dtype) == "Int32"
    times = measure_rounds(blocks, rounds)

    def us(name: str) -> float:
        return statistics.median(t[0] for t in times[name]) / n * 1e6

    b_cpu, b_wall = _ratios(times, "B", "A")
    ours_b, ours_b_wall = _ratios(times, "ours", "B")
    ours_a, ours_a_wall = _ratios(times, "ours", "A")
    store_b, store_b_wall = _ratios(times, "store", "B")
    store_a, _ = _ratios(times, "store", "A")
    return [
        Row(
            scenario="raw pyarrow: dataset(path).to_table(columns)",
            size=f"{n:,}",
            us=us("A"),
            note="floor A",
        ),
        Row(
            scenario="raw pyarrow: ... .to_pandas() (default types)",
            size=f"{n:,}",
            us=us("B"),
            ratio=b_cpu,
            note=f"floor B; ratio to A (wall {b_wall:.2f}x)",
        ),
        Row(
            scenario="tl.read_capture(path), metadata columns",
            size=f"{n:,}",
            us=us("ours"),
            ratio=ours_b,
            target=1.3,
            note=f"ratio to B (wall {ours_b_wall:.2f}x); to A {ours_a:.2f}x (wall {ours_a_wall:.2f}x)",
        ),
        Row(
            scenario="frames.to_pandas(open ParquetStream)",
            size=f"{n:,}",
            us=us("store"),
            ratio=store_b,
            target=1.3,
            note=f"ratio to B (wall {store_b_wall:.2f}x); to A {store_a:.2f}x",
        ),
    ]


def bench_memory(n: int) -> Row:
    rng = random.Random(2)
    stream = tl.MemoryStream()
    for i in range(n):
        stream.put(make_exchange(i, rng))
    us = time_block(lambda: to_pandas(stream), n)
    return Row(
        scenario="frames.to_pandas(MemoryStream)",
        size=f"{n:,}",
        us=us,
        note="exchanges -> Arrow in Python",
    )


# -- 2. HAR ---------------------------------------------------------------------------------------
def bench_har(folder: str, n_har: int, ours_us: float, tmp: str) -> list[Row]:
    exchanges = []
    for i, ex in enumerate(tl.ParquetStream(folder, create=False).exchanges()):
        if i >= n_har:
            break
        exchanges.append(ex)
    path = os.path.join(tmp, "capture.har")
    write_har(exchanges, path)
    del exchanges
    size = os.path.getsize(path)

    def har_to_pandas():
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return pd.json_normalize(doc["log"]["entries"])

    har_to_pandas()  # warm up
    us = min(time_block(har_to_pandas, n_har) for _ in range(2))
    frame = har_to_pandas()
    return [
        Row(
            scenario="HAR: json.load + pandas.json_normalize",
            size=f"{n_har:,}",
            us=us,
            ratio=us / ours_us,
            note=f"ratio to tl.read_capture per exchange; {size / 1e6:.0f} MB HAR, "
            f"{frame.shape[1]} columns, untyped",
        )
    ]


# -- 3. narrow where= -----------------------------------------------------------------------------
def bench_where(folder: str, n: int, rounds: int) -> list[Row]:
    store = tl.ParquetStream(folder, create=False)
    to_pandas(store)  # footers are read once per store
    window_start = T0 + (n // 2) * STEP
    window = Where(start=window_start, end=window_start + (n // 100) * STEP)
    rare = Where(host=RARE_HOST)
    rows = []

    def measure(where):
        before = bytes_read()
        gc.collect()
        start = time.perf_counter()
        frame = to_pandas(store, where=where)
        seconds = time.perf_counter() - start
        after = bytes_read()
        read = None if before is None or after is None else after - before
        return frame, seconds, read

    full, _, _ = measure(None)
    results = {}
    for label, where in (("full", None), ("window", window), ("rare", rare)):
        best, read, frame = float("inf"), None, None
        for _ in range(rounds):
            frame, seconds, read = measure(where)
            best = min(best, seconds)
        results[label] = (best, read, len(frame))
    full_s, full_read, full_rows = results["full"]
    on_disk = folder_bytes(folder)
    rows.append(
        Row(
            scenario="to_pandas(store), no filter",
            size=f"{full_rows:,}",
            us=full_s / full_rows * 1e6,
            note=f"{full_s * 1000:,.0f} ms; read {_mb(full_read)} of {on_disk / 1e6:.0f} MB on disk",
        )
    )
    for label, title in (
        ("window", "where= time window, 1%"),
        ("rare", "where= host, 1% scattered"),
    ):
        seconds, read, count = results[label]
        share = f" ({read / full_read:.1%} of full)" if read is not None and full_read else ""
        rows.append(
            Row(
                scenario=title,
                size=f"{count:,}",
                us=seconds / max(count, 1) * 1e6,
                ratio=seconds / full_s,
                note=f"{seconds * 1000:,.1f} ms, ratio to no filter; read {_mb(read)}{share}",
            )
        )
    assert len(full) == n
    return rows


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k exchanges; under a minute")
    parser.add_argument("--keep", help="build the capture here (or reuse it) instead of a temp dir")
    args = parser.parse_args()
    n = 50_000 if args.quick else 1_000_000
    n_har = 10_000 if args.quick else 200_000
    n_memory = 10_000 if args.quick else 100_000
    rounds = 5 if args.quick else 7
    print("\n".join(environment(("httpx", "pandas", "pyarrow"))))
    tmp = tempfile.mkdtemp(prefix="bench_frames_")
    folder = args.keep or os.path.join(tmp, "capture")
    try:
        if os.path.exists(os.path.join(folder, f"day={T0:%Y%m%d}")):
            print(f"reusing the capture at {folder}")
        else:
            seconds = build_capture(folder, n)
            print(
                f"built a {n:,}-exchange capture in {seconds:.1f} s ({folder_bytes(folder) / 1e6:.0f} MB)"
            )
        rows = bench_metadata(folder, n, rounds)
        ours_us = rows[2].us
        assert ours_us is not None
        rows.append(bench_memory(n_memory))
        rows += bench_har(folder, n_har, ours_us, tmp)
        print("\n1-2. A capture into pandas (metadata columns: all but bodies and headers)")
        print(
            f"    ratios: medians over {rounds} rounds of per-round CPU-time ratios (the box is "
            "shared; CPU time is steadier than wall time, given in the notes); us/exchange: wall"
        )
        print(render_table(rows, HEADERS))
        print("\n3. A narrow where= over the capture")
        print(render_table(bench_where(folder, n, 3), HEADERS))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
