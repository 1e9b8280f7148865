"""TrafficBrowser v2 over a capture of 1M (or 10M) exchanges, measured in the kernel process.

Targets (issue #11 and #13): opening <= 1.5 s and each interaction (filter, sort, scroll window,
select) <= 50 ms at 1M; at 10M opening <= 10 s within 3 GB and interactions <= 200 ms.
"Scroll window" is the kernel's answer to the page's request for the rows in view (about 100
rows: the view plus a margin each side); its bytes are the JSON the comm carries per scroll
step. Each size runs in a fresh subprocess, so the peak RSS (``VmHWM``) is the browser's own.

The capture is bench_scale's (100k recorded exchanges copied with fresh writer ids); pass
``--capture`` to reuse one built earlier (``bench_scale.py --capture`` makes the same files).

    python benchmarks/bench_widgets.py --quick                 # 1M exchanges
    python benchmarks/bench_widgets.py --size 10000000         # 10M (the capture takes minutes)

The "v1 (released)" column is TrafficBrowser v1 (the paged ipywidgets table, commit 641d705),
measured on 2026-12-04 on the same 1M capture on this machine: its page turn stands for the
scroll step.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import environment, median

__all__ = ["V1_RELEASED", "main", "measure"]

#: v1 at 1M (commit 641d705, 2026-12-04, this machine): ms, bytes for a page turn, MB.
V1_RELEASED: dict[str, float | None] = {
    "open": 2680.0,
    "filter: status 5xx": 3.6,
    "filter: search 'users'": 92.0,
    "sort (first time on a column)": 144.1,
    "sort (cached order)": 25.3,
    "scroll window (v1: next page of 25)": 0.7,
    "select an exchange (detail)": 55.0,
    "bytes per scroll step (v1: per page)": 11_493,
    "peak RSS MB": 767.0,
}
ROUNDS = 7


def _ms(action: Any) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(path: str) -> dict[str, float]:
    """Every figure for one capture, in this process (run it in a fresh one)."""
    from traffic_lab.widgets import TrafficBrowser

    results: dict[str, float] = {}
    started = time.perf_counter()
    browser = TrafficBrowser(path)
    results["open"] = (time.perf_counter() - started) * 1000
    n = browser.total
    rng = random.Random(7)
    rare = browser.facets["host"][-1][0]
    low, high = browser.histogram["low"], browser.histogram["high"]

    def median_of(action: Any, rounds: int = ROUNDS) -> float:
        return median(_ms(action) for _ in range(rounds))

    def alternate(name: str, values: list[Any]) -> float:
        samples = []
        for r in range(ROUNDS):
            browser.view._masks.clear()  # every round computes its mask
            samples.append(_ms(lambda v=values[r % 2]: setattr(browser, name, v)))
        browser.reset()
        return median(samples)

    results["filter: status 5xx"] = alternate("status", ["5xx", "4xx,5xx"])
    results["filter: method POST"] = alternate("methods", [["POST"], ["GET"]])
    results[f"filter: host {rare}"] = alternate("hosts", [[rare], []])
    results["filter: search 'users'"] = alternate("search", ["users", "orders"])
    results["filter: search '/api/*/7*' (path glob)"] = alternate("search", ["/api/*/7*", ""])
    results["filter: time brush (first half)"] = alternate(
        "time_range", [[low, (low + high) // 2], []]
    )
    results["filter: 3 at once"] = median_of(
        lambda: (
            browser.view._masks.clear(),
            browser.filter(status="4xx,5xx", methods=["GET"], search="users"),
        )
    )
    browser.reset()
    firsts = {}
    for column in ("duration", "status", "host", "url", "size", "method", "type"):
        firsts[column] = _ms(lambda c=column: setattr(browser, "sort", f"-{c}"))
    results["sort (first time on a column)"] = median(firsts.values())
    worst = max(firsts, key=firsts.__getitem__)
    results[f"sort (first time on a column), worst: {worst}"] = firsts[worst]
    results["sort (cached order)"] = median(
        _ms(lambda c=c: setattr(browser, "sort", c)) for c in ("-duration", "-status", "-url")
    )
    results["sort + filter (cached order)"] = alternate("status", ["5xx", "2xx"])
    browser.reset()
    starts = [rng.randrange(max(1, n - 100)) for _ in range(ROUNDS)]
    results["scroll window (100 rows)"] = median(
        _ms(lambda s=s: browser.window_rows(s, 100)) for s in starts
    )
    sizes = [len(json.dumps(browser.window_rows(s, 100))) for s in starts]
    results["bytes per scroll step (100 rows)"] = float(median(sizes))
    picks = [rng.randrange(n) for _ in range(ROUNDS)]
    results["select an exchange (detail)"] = median(
        _ms(lambda p=p: browser.click(p)) for p in picks
    )
    browser.sort = "-duration"  # the list's neighbours are far apart: no read-ahead
    browser.click(0)
    results["keyboard down, sorted list"] = median_of(lambda: browser.move(1))
    browser.sort = ""
    browser.click(n // 2)
    results["keyboard down (next exchange)"] = median_of(lambda: browser.move(1))
    ranges = []
    for p in picks:
        browser.click(p)
        ranges.append(_ms(lambda p=p: browser.click(min(p + 1000, n - 1), shift=True)))
    results["shift-click 1,000 rows (selected frame)"] = median(ranges)
    browser.search_bodies = True
    results["search bodies (first 20,000 rows)"] = _ms(lambda: setattr(browser, "search", "id"))
    browser.reset()
    results["peak RSS MB"] = _peak_rss_mb()
    return results


def _child(path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", path],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _target(label: str, size: int) -> float | None:
    big = size > 2_000_000
    if label == "open":
        return 10_000.0 if big else 1_500.0
    if label.startswith(("filter", "sort", "scroll", "select", "keyboard")):
        return 200.0 if big else 50.0
    if label == "peak RSS MB":
        return 3_072.0 if big else None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M exchanges (the default)")
    parser.add_argument("--size", type=int, default=1_000_000, help="exchanges (x 100k)")
    parser.add_argument("--capture", help="reuse (or build here) the capture at this path")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    import bench_scale

    print("\n".join(environment(("anywidget", "pyarrow", "numpy"))))
    tmp = None
    path = Path(args.capture) if args.capture else None
    if path is None:
        tmp = tempfile.mkdtemp(prefix="tl-bench-widgets-")
        path = Path(tmp) / "capture"
    try:
        if not path.exists():
            built = bench_scale.build_capture(path, args.size)
            print(f"built {args.size:,} exchanges in {built:.1f} s at {path}")
        results = _child(str(path))
        size = args.size
        print(f"\nTrafficBrowser over {size:,} exchanges (kernel side, ms unless said)")
        width = max(len(label) for label in results) + 2
        v1_head = "v1 (released)" if size == 1_000_000 else ""
        print(f"{'':<{width}}{'v2':>10}{v1_head:>16}{'target':>10}")
        v1_labels = {
            "scroll window (100 rows)": "scroll window (v1: next page of 25)",
            "bytes per scroll step (100 rows)": "bytes per scroll step (v1: per page)",
        }
        for label, value in results.items():
            v1 = V1_RELEASED.get(v1_labels.get(label, label)) if v1_head else None
            target = _target(label, size)
            verdict = "" if target is None else ("ok" if value <= target else "OVER")
            print(
                f"{label:<{width}}{value:>10,.1f}{'' if v1 is None else f'{v1:,.1f}':>16}"
                f"{'' if target is None else f'{target:,.0f}':>10}  {verdict}"
            )
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
