"""Shared helpers for the benchmark scripts: timing, floor comparisons, the table, the machine.

Conventions every script follows, so their tables read the same way:

- a *block* is a callable that performs a known number of operations (requests, rows...);
  :func:`time_block` runs it once and returns microseconds per operation (``time.perf_counter``);
- timed code runs inside :func:`quiet_gc`: the garbage collector is disabled (as ``timeit``
  does), after one collection and ``gc.freeze()`` so that the occasional collection run between
  blocks (outside the timing) never walks a large fixture such as a million-entry cache;
- a subject is compared with its *floor* (the same work without the thing measured) by
  :func:`compare`: short floor and subject blocks alternate, A B B A..., and the ratio is taken
  per round (two blocks a few milliseconds apart see the same machine load), then the median
  over many rounds. Short blocks and medians keep the figures usable on a shared 2-core machine
  where other processes take the CPU away for whole scheduler time slices;
- figures are medians over rounds, after a warm-up block that is not timed.

Nothing here imports the library under test: a script can adopt these helpers as they are.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata

__all__ = [
    "Block",
    "Comparison",
    "Row",
    "compare",
    "environment",
    "format_size",
    "median",
    "median_ci",
    "quiet_gc",
    "render_table",
    "time_block",
    "verdict",
]

Block = Callable[[], object]


def median(values: Iterable[float]) -> float:
    """The median of ``values``."""
    return statistics.median(list(values))


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect, freeze what exists (fixtures), and keep the collector off inside the block."""
    gc.collect()
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.unfreeze()
        gc.collect()


def median_ci(values: Sequence[float]) -> tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median (order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    if n < 6:
        return ordered[0], ordered[-1]
    half = 0.98 * n**0.5  # 1.96 * sqrt(n) / 2
    lo = max(0, int(n / 2 - half))
    hi = min(n - 1, int(n / 2 + half + 0.999))
    return ordered[lo], ordered[hi]


def time_block(block: Block, operations: int, *, collect: bool = True) -> float:
    """Run ``block`` once; microseconds per operation, with the garbage collector off.

    By default a collection runs first (untimed); ``collect=False`` skips it, for many short
    blocks inside :func:`quiet_gc`.
    """
    if collect:
        gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        block()
        elapsed = time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / operations * 1e6


@dataclass
class Comparison:
    """A subject measured against its floor, round by round."""

    subject_us: list[float] = field(default_factory=list)
    floor_us: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [s / f for s, f in zip(self.subject_us, self.floor_us, strict=True)]

    @property
    def us(self) -> float:
        """Median microseconds per operation of the subject."""
        return median(self.subject_us)

    @property
    def floor(self) -> float:
        """Median microseconds per operation of the floor."""
        return median(self.floor_us)

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios subject / floor."""
        return median(self.ratios)

    @property
    def ratio_ci(self) -> tuple[float, float]:
        """A distribution-free 95% confidence interval of the median ratio."""
        return median_ci(self.ratios)


def compare(
    floor: Block,
    subject: Block,
    operations: int,
    *,
    rounds: int,
    warmup: bool = True,
    subject_operations: int | None = None,
    collect_every: int = 50,
) -> Comparison:
    """Time ``subject`` against ``floor`` in alternating blocks (A B, then B A, ...).

    ``operations`` is what one floor block performs; ``subject_operations`` what one subject
    block performs, when it differs. Runs inside :func:`quiet_gc`; the garbage the blocks leave
    (httpx responses hold reference cycles) is collected every ``collect_every`` rounds, untimed.
    """
    subject_ops = operations if subject_operations is None else subject_operations
    result = Comparison()
    with quiet_gc():
        if warmup:
            floor()
            subject()
        for i in range(rounds):
            if i % 2 == 0:
                f = time_block(floor, operations, collect=False)
                s = time_block(subject, subject_ops, collect=False)
            else:
                s = time_block(subject, subject_ops, collect=False)
                f = time_block(floor, operations, collect=False)
            result.floor_us.append(f)
            result.subject_us.append(s)
            if i % collect_every == collect_every - 1:
                gc.collect()
    return result


def format_size(n: int | None) -> str:
    """1000 -> '1k', 1_000_000 -> '1M'; None -> '-'."""
    if n is None:
        return "-"
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def verdict(ratio: float | None, target: float | None) -> str:
    """'pass' / 'FAIL' against a ratio target; '-' when there is no target."""
    if ratio is None or target is None:
        return "-"
    return "pass" if ratio <= target else "FAIL"


@dataclass
class Row:
    """One line of a benchmark table."""

    scenario: str
    size: str = "-"
    us: float | None = None
    floor_us: float | None = None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    target: float | None = None
    note: str = ""

    def cells(self, floor_column: bool = True) -> list[str]:
        us, floor = (
            "-" if v is None else (f"{v:,.1f}" if v < 1e4 else f"{v:,.0f}")
            for v in (self.us, self.floor_us)
        )
        if self.ratio is None:
            ratio = "-"
        elif self.ratio >= 100:
            ratio = f"{self.ratio:,.0f}x"
        elif self.ratio >= 10:
            ratio = f"{self.ratio:.1f}x"
        else:
            ratio = f"{self.ratio:.2f}x"
            if self.ci is not None:
                ratio += f" [{self.ci[0]:.2f}-{self.ci[1]:.2f}]"
        target = "-" if self.target is None else f"<= {self.target:.2f}x"
        cells = [self.scenario, self.size, us, floor, ratio, target]
        cells += [verdict(self.ratio, self.target), self.note]
        if not floor_column:
            del cells[3]
        return cells


HEADERS = [
    "scenario",
    "size",
    "us/request",
    "floor us",
    "ratio [95% CI]",
    "target",
    "result",
    "note",
]


def render_table(rows: Sequence[Row], headers: Sequence[str] = HEADERS) -> str:
    """A plain-text table; numeric columns right-aligned.

    ``headers`` names the 8 columns of :data:`HEADERS`, or 7 to leave out the floor column.
    """
    floor_column = len(headers) == len(HEADERS)
    table = [list(headers), *[r.cells(floor_column) for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    right = {2, 3, 4} if floor_column else {2, 3}

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(table[0]), rule, *(line(r) for r in table[1:])])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for text in f:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(packages: Sequence[str] = ("httpx",)) -> list[str]:
    """Lines describing the machine and the versions measured."""
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    load = ""
    try:
        one, five, _ = os.getloadavg()
        load = f", load avg {one:.2f}/{five:.2f}"
    except OSError:
        pass
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    return [
        f"machine: {_cpu_model()}, {cores} cores ({usable} usable){load}, {platform.system()} {platform.release()}",
        f"python {platform.python_implementation()} {sys.version.split()[0]}; {versions}",
    ]
