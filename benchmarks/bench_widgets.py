"""Benchmark of TrafficBrowser: filter + render one page over a 1M-exchange capture.

Target: at most 200 ms per interaction (a filter change, a page turn, a sort), measured from
the trait assignment to the rendered page (HTML table, row selector, header statistics), in
the kernel process. The widget comm messages that carry the new values to the browser are not
timed (no frontend here); one page is ~25 rows of HTML, a few tens of KB.

The capture: 10,000 varied exchanges are recorded through ``tl.ParquetStream``, read back with
``to_arrow()``, and tiled in Arrow to 1,000,000 rows (fresh times and writer sequence numbers),
published as 10 files of 100,000 rows with the store's own file writer. Building it that way
takes seconds instead of the two minutes a million ``put()`` calls take; the rows are ordinary
capture rows, read by the same code as any capture.

    python benchmarks/bench_widgets.py --quick     # < 60 s: 1M rows, 5 rounds
    python benchmarks/bench_widgets.py             # 1M rows, 15 rounds
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import traffic_lab as tl
from benchmarks._common import environment, median
from traffic_lab.stores.parquet._fs import CaptureFS
from traffic_lab.stores.parquet.schema import META_TIME_RANGE
from traffic_lab.stores.parquet.writer import data_file_name, day_of, write_table

__all__ = ["build_capture", "main", "run"]

TARGET_MS = 200.0
T0 = datetime(2026, 3, 1, tzinfo=UTC)
SEED_ROWS = 10_000
ROWS_PER_FILE = 100_000
HOSTS = ["api.shop.test", "staging.shop.test", "cdn.shop.test", "auth.shop.test"]
PATHS = [
    "/api/users/{}",
    "/api/users?page={}",
    "/api/orders/{}",
    "/api/search?q=term{}",
    "/api/products/{}/image.png",
    "/api/reports/{:x}",
    "/api/limited",
]
STATUSES = [200] * 80 + [201] * 5 + [304] * 2 + [404] * 6 + [429] * 2 + [500] * 3 + [503] * 2
TYPES = [b"application/json", b"application/json; charset=utf-8", b"image/png", b"text/plain"]


def seed_exchanges(n: int) -> list[tl.Exchange]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        path = PATHS[i % len(PATHS)].format(rng.randrange(100_000))
        status = STATUSES[rng.randrange(len(STATUSES))]
        out.append(
            tl.Exchange(
                "GET" if i % 9 else "POST",
                f"https://{HOSTS[i % len(HOSTS)]}{path}",
                request_headers=[(b"accept", b"application/json"), (b"user-agent", b"bench")],
                status_code=status,
                reason_phrase="OK",
                response_headers=[(b"content-type", TYPES[i % len(TYPES)])],
                response_body=b'{"id": %d, "ok": true}' % i,
                started_at=T0 + timedelta(milliseconds=i),
                elapsed=timedelta(microseconds=int(rng.lognormvariate(9.5, 1.0))),
            )
        )
    return out


def build_capture(folder: str, n: int) -> float:
    """A capture of ``n`` rows in ``folder``; returns the seconds it took."""
    started = time.perf_counter()
    seed_dir = os.path.join(folder, "seed")
    with tl.ParquetStream(seed_dir, flush_seconds=None) as stream:
        for exchange in seed_exchanges(SEED_ROWS):
            stream.put(exchange)
    seed = tl.ParquetStream(seed_dir, create=False).to_arrow()
    seed = seed.drop_columns(["day"]).replace_schema_metadata(seed.schema.metadata)
    target = os.path.join(folder, "capture")
    cfs = CaptureFS(target)
    writer_id = "bench000000000001"
    step_us = 40_000  # 25 exchanges a second: 1M rows span about 11 hours of one day
    first_us = int(T0.timestamp() * 1_000_000)
    for segment, start in enumerate(range(0, n, ROWS_PER_FILE)):
        count = min(ROWS_PER_FILE, n - start)
        picks = pa.array(np.arange(start, start + count) % SEED_ROWS)
        table = seed.take(picks)
        seqs = np.arange(start, start + count, dtype=np.int64)
        times = first_us + seqs * step_us
        table = table.set_column(
            table.schema.get_field_index("started_at"),
            table.schema.field("started_at"),
            pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        )
        table = table.set_column(
            table.schema.get_field_index("writer_seq"), "writer_seq", pa.array(seqs)
        )
        table = table.set_column(
            table.schema.get_field_index("writer_id"),
            table.schema.field("writer_id"),
            pa.array([writer_id] * count, pa.string()),
        )
        meta = dict(seed.schema.metadata or {})
        meta[META_TIME_RANGE] = f"{times[0]},{times[-1]}".encode()
        table = table.replace_schema_metadata(meta)
        rel = data_file_name(day_of(int(times[0])), writer_id, segment)
        write_table(cfs, rel, table, row_group_size=4096, compression="zstd", sync=False)
    shutil.rmtree(seed_dir)
    return time.perf_counter() - started


def timed_ms(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def run(n: int, rounds: int) -> int:
    from traffic_lab.widgets import TrafficBrowser

    tmp = tempfile.mkdtemp(prefix="tl-bench-widgets-")
    try:
        build_s = build_capture(tmp, n)
        path = os.path.join(tmp, "capture")
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
        print(f"capture: {n:,} exchanges, {size / 1e6:.1f} MB on disk, built in {build_s:.1f} s")
        open_ms = timed_ms(lambda: TrafficBrowser(path))
        browser = TrafficBrowser(path)
        assert browser.matches == n, browser.matches
        print(
            f"open TrafficBrowser(path) (read light columns, build masks' inputs): {open_ms:,.0f} ms"
        )
        host = browser.view.hosts[0]
        middle = browser.time_slider.options[len(browser.time_slider.options) // 2][1]
        full = browser._time_full
        # Each interaction alternates two values, so every round recomputes a mask.
        interactions = [
            ("status class 5xx / 4xx", "status", ["5xx", "4xx"]),
            ("status range 400-499 / 200-299", "status_range", [(400, 499), (200, 299)]),
            ("method POST / GET", "method", ["POST", "GET"]),
            (f"host {host} / any", "host", [host, ""]),
            ("content type image/png / any", "content_type", ["image/png", ""]),
            ("search 'search?q=term1' (URL substring)", "search", ["search?q=term1", "users"]),
            ("search '/api/orders/*' (path glob)", "search", ["/api/orders/*", "/api/users"]),
            ("time range: first half / all", "time_range", [(full[0], middle), full]),
            ("sort slowest first / recorded", "sort", ["slowest", "recorded"]),
        ]
        rows = []
        for label, name, values in interactions:
            samples = []
            for r in range(rounds):
                browser.view._masks.pop(name if name != "time_range" else "time", None)
                samples.append(timed_ms(lambda v=values[r % 2], k=name: setattr(browser, k, v)))
            browser.reset()
            rows.append((f"filter: {label}", samples))
        browser.filter(status="2xx", method="GET")
        pages = [timed_ms(lambda: browser._go(browser.page + 1)) for _ in range(rounds)]
        rows.append((f"next page ({browser.matches:,} matches)", pages))
        rows.append(("last page", [timed_ms(lambda: browser._go(browser.pages - 1))]))
        combined = []
        for r in range(rounds):
            browser.reset()
            combined.append(
                timed_ms(
                    lambda r=r: browser.filter(
                        status="4xx,5xx", method="GET", search=f"term{r}", sort="slowest"
                    )
                )
            )
        rows.append(("4 filters at once + slowest-first sort", combined))
        browser.reset()
        picks = browser.rows[:: max(1, n // rounds)][:rounds]
        selects = [timed_ms(lambda p=p: setattr(browser, "selected", int(p))) for p in picks]
        rows.append(("select an exchange (read its row back + detail pane)", selects))
        width = max(len(label) for label, _ in rows)
        print(f"\n{'interaction':<{width}}  median ms    max ms   target {TARGET_MS:.0f} ms")
        failures = 0
        for label, samples in rows:
            ok = median(samples) <= TARGET_MS
            failures += not ok
            print(
                f"{label:<{width}}  {median(samples):9.1f} {max(samples):9.1f}   "
                f"{'ok' if ok else 'OVER'}"
            )
        return failures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 60 s)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(environment())
    failures = run(args.rows, rounds=5 if args.quick else 15)
    print("\nall interactions within target" if not failures else f"\n{failures} over target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
