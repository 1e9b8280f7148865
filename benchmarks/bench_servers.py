"""Benchmark of the mock server: throughput and latency under a bounded loopback load, against a
bare app that returns a fixed response on the same server.

Run ``python benchmarks/bench_servers.py --quick`` (under a minute) or without ``--quick`` for
the full run (a few minutes). Prints a plain-text table.

Each server runs in its own process (the load generator has the other core of a 2-core box):

- ``bare app``: an ASGI app that answers every request with the same 1.2 KB JSON body, under
  traffic_lab's own HTTP/1.1 server (the floor: server and HTTP cost only);
- ``mock, cache, cold``: ``traffic-lab serve CAPTURE`` (the console script) over a Parquet
  capture, every request a different one (the capture holds more exchanges than the whole
  run asks for): each is parsed, keyed and looked up (the worst case);
- ``mock, cache, hot``: the same server, the requests cycling over 100 recorded ones, as a
  test suite or a client under test repeats itself: answers come from the mock server's memo;
- ``mock, memory, cold``: the exchanges in a ``MemoryCache`` behind ``MockApp``, every request
  a different one, which separates the mock server's own cost from the Parquet store's;
- ``mock, stream``: ``traffic-lab serve CAPTURE --mode stream``, answering in recorded order
  (the capture holds more exchanges than the run asks for, so it never runs out).

The load is closed-loop: ``--concurrency`` httpx ``AsyncClient`` workers on keep-alive
connections, each sending its next request when the previous answer is read, for a fixed
duration after a warm-up. Columns: requests per second; p50 and p99 latency as the client
measured it; the server process's CPU time per request (from ``/proc``: what the server
itself spent, independent of whether the client or the server is the bottleneck); and the
ratios to the bare app. Rounds alternate between scenarios (bare, mock, ..., then in reverse)
so that drift in machine load hits all of them; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import traffic_lab as tl
from benchmarks._common import environment
from traffic_lab.testing import free_port

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HERE = Path(__file__).resolve()
TL = str(Path(sys.executable).with_name("traffic-lab"))
TICK = os.sysconf("SC_CLK_TCK")


@functools.cache
def body(i: int) -> bytes:
    """A JSON body of about 1.2 KB."""
    rng = random.Random(i)
    words = " ".join("".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(150))
    return json.dumps({"id": i, "name": f"user {i}", "bio": words}).encode()


def exchanges(n: int) -> list[tl.Exchange]:
    out = []
    for i in range(n):
        payload = body(i % 500)
        out.append(
            tl.Exchange(
                "GET",
                f"https://api.example.com/v1/users/{i}",
                request_headers=[(b"Host", b"api.example.com"), (b"Accept", b"*/*")],
                status_code=200,
                response_headers=[
                    (b"Content-Type", b"application/json"),
                    (b"Content-Length", str(len(payload)).encode()),
                    (b"Server", b"api/1.0"),
                ],
                response_body=payload,
                started_at=T0 + timedelta(milliseconds=i),
                elapsed=timedelta(milliseconds=5),
            )
        )
    return out


def write_capture(path: Path, items: list[tl.Exchange]) -> None:
    with tl.ParquetStream(path) as stream:
        for exchange in items:
            stream.put(exchange)


# -- servers (child processes) -------------------------------------------------------------------
def serve_bare(port: int) -> None:
    from traffic_lab.servers import bind_socket, run_server
    from traffic_lab.servers._asgi import lifespan

    payload = body(0)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    run_server(app, bind_socket("127.0.0.1", port))


def serve_memory(port: int, capture: str) -> None:
    from traffic_lab.servers import MockApp, bind_socket, run_server

    cache = tl.MemoryCache()
    for exchange in tl.ParquetStream(capture).exchanges():
        cache.put(exchange)
    run_server(MockApp(cache, origin="https://api.example.com"), bind_socket("127.0.0.1", port))


@dataclass
class Server:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    probe: str = "/v1/users/0"

    def start(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [*self.command, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}{self.probe}", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- load ----------------------------------------------------------------------------------------
@dataclass
class Run:
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def cpu_us(self) -> float:
        return self.server_cpu / self.requests * 1e6


@dataclass
class Paths:
    """The request paths of a scenario: a cycle over ``count`` ids from ``start``."""

    count: int
    start: int = 0

    def take(self) -> int:
        i = self.start
        self.start += 1
        return i % self.count


async def load(
    url: str, duration: float, concurrency: int, paths: Paths
) -> tuple[int, list[float], int]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                path = f"/v1/users/{paths.take()}"
                t0 = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, errors


def measure(server: Server, duration: float, warmup: float, concurrency: int, paths: Paths) -> Run:
    url = f"http://127.0.0.1:{server.port}"
    asyncio.run(load(url, warmup, concurrency, paths))
    # The load generator's own collections (50-60 ms each over the per-request cycles httpx
    # makes) would stall every request in flight and land in whichever server's tail is being
    # measured: none run while timing. The server's collections are part of what is measured.
    gc.collect()
    gc.disable()
    try:
        cpu0 = server.cpu_seconds()
        t0 = time.perf_counter()
        n, latencies, errors = asyncio.run(load(url, duration, concurrency, paths))
        seconds = time.perf_counter() - t0
    finally:
        gc.enable()
        gc.collect()
    return Run(n, seconds, latencies, server.cpu_seconds() - cpu0, errors)


@dataclass
class Result:
    name: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)

    def p(self, q: float) -> float:
        return statistics.median(r.percentile(q) for r in self.runs)


#: The issue's targets (#14), against the bare app.
TARGETS = {"mock, cache, cold": "p99 <= 2x, CPU <= 1.5x", "mock, memory, cold": "p99 <= 2x"}


def render(results: list[Result]) -> str:
    bare = results[0]
    header = ["scenario", "req/s", "p50 ms", "p99 ms", "server CPU us/req", "req/s vs bare",
              "p99 vs bare", "CPU vs bare", "non-200", "target"]  # fmt: skip
    rows = [header]
    for r in results:
        rate, p50, p99, cpu = r.median("rate"), r.p(0.50), r.p(0.99), r.median("cpu_us")
        rows.append(
            [
                r.name,
                f"{rate:,.0f}",
                f"{p50:.2f}",
                f"{p99:.2f}",
                f"{cpu:,.0f}",
                f"{rate / bare.median('rate'):.2f}x",
                f"{p99 / bare.p(0.99):.2f}x",
                f"{cpu / bare.median('cpu_us'):.2f}x",
                str(sum(run.errors for run in r.runs)),
                TARGETS.get(r.name, "-"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- replay throughput -----------------------------------------------------------------------------
def serve_demo(port: int) -> None:
    from traffic_lab.demo import DemoAPI

    with DemoAPI(port, slowness=0):
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


def replay_capture(path: Path, url: str, size: int) -> list[tuple[str, str]]:
    """Record 500 distinct demo requests, then write ``size`` of them (cycled) as a capture."""
    base = tl.MemoryStream()
    transport = tl.RecordingTransport(base, httpx.HTTPTransport())
    with httpx.Client(transport=transport, base_url=url) as client:
        for i in range(500):
            client.get(f"/api/users/{1 + i}")
    recorded = list(base.exchanges())
    with tl.ParquetStream(path) as stream:
        for i in range(size):
            ex = recorded[i % len(recorded)]
            stream.put(ex.replace(started_at=T0 + timedelta(milliseconds=i)))
    return [(ex.method, httpx.URL(ex.url).raw_path.decode()) for ex in recorded]


async def bare_loop(url: str, requests: list[tuple[str, str]], size: int, concurrency: int) -> None:
    """The floor: the same requests from a plain httpx.AsyncClient, ``concurrency`` workers."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        todo = iter(range(size))

        async def worker() -> None:
            for i in todo:
                method, path = requests[i % len(requests)]
                (await client.request(method, path)).raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def library_replay(
    url: str, capture: Path, concurrency: int, rate: float | None, starts: list[float] | None = None
) -> int:
    """``areplay_requests`` over the capture; ``starts`` collects each request's send time."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    exchanges = tl.ParquetStream(capture).exchanges()
    n = 0

    async def started(request: httpx.Request) -> None:
        if starts is not None:
            starts.append(time.time())

    hooks = {"request": [started]}
    async with httpx.AsyncClient(limits=limits, timeout=30, event_hooks=hooks) as client:
        async for result in tl.transports.areplay_requests(
            exchanges, client, base_url=url, concurrency=concurrency, rate=rate
        ):
            assert result.response is not None and result.response.status_code == 200
            n += 1
    return n


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its children) of ``run()``."""
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, t0 = time.process_time(), time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return wall, time.process_time() - cpu0 + children


def replay_table(quick: bool, concurrency: int) -> str:
    size = 20_000 if quick else 100_000
    rounds = 1 if quick else 3
    folder = Path(tempfile.mkdtemp(prefix="bench_replay-"))
    demo = Server("demo", [sys.executable, str(HERE), "--serve", "demo"], probe="/api/health")
    demo.start()
    try:
        url = f"http://127.0.0.1:{demo.port}"
        capture = folder / "capture"
        requests = replay_capture(capture, url, size)
        cli = [TL, "replay", str(capture), "--target", url, "-c", str(concurrency), "-q", "--json"]
        scenarios: dict[str, Callable[[], object]] = {
            "bare httpx.AsyncClient loop (floor)": lambda: asyncio.run(
                bare_loop(url, requests, size, concurrency)
            ),
            "tl.transports.areplay_requests": lambda: asyncio.run(
                library_replay(url, capture, concurrency, None)
            ),
            "traffic-lab replay (CLI, records + diffs)": lambda: subprocess.run(
                [*cli, "--out", str(folder / f"out-{time.monotonic_ns()}")],
                stdout=subprocess.DEVNULL,
                check=False,
            ),
        }
        walls: dict[str, list[float]] = {name: [] for name in scenarios}
        cpus: dict[str, list[float]] = {name: [] for name in scenarios}
        for round_ in range(rounds):
            names = list(scenarios) if round_ % 2 == 0 else list(reversed(scenarios))
            for name in names:
                wall, cpu = timed(scenarios[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"replay round {round_ + 1}: {name} done", file=sys.stderr)
        floor = "bare httpx.AsyncClient loop (floor)"
        rows = [["scenario", "req/s", "wall us/req", "CPU us/req", "wall vs floor", "CPU vs floor",
                 "target"]]  # fmt: skip
        for name in scenarios:
            wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
            fw, fc = statistics.median(walls[floor]), statistics.median(cpus[floor])
            rows.append(
                [
                    name,
                    f"{size / wall:,.0f}",
                    f"{wall / size * 1e6:,.0f}",
                    f"{cpu / size * 1e6:,.0f}",
                    f"{wall / fw:.2f}x",
                    f"{cpu / fc:.2f}x",
                    "-" if name == floor else "<= 1.20x",
                ]
            )
        # A fixed rate: how close the achieved rate comes to the one asked for.
        # Well under what the server sustains (the floor's rate), so the pacing is what limits.
        rate = float(max(10, round(0.4 * size / statistics.median(walls[floor]), -1)))
        count = int(rate * (5 if quick else 15))
        small = folder / "rate-capture"  # the CLI sends a whole capture: one of the asked size
        with tl.ParquetStream(small) as out:
            for ex in itertools.islice(tl.ParquetStream(capture).exchanges(), count):
                out.put(ex)
        starts: list[float] = []
        cli_out = folder / "rate-out"
        paced: dict[str, Callable[[], list[float]]] = {
            "areplay_requests --rate": lambda: (
                asyncio.run(library_replay(url, small, concurrency, rate, starts)) and starts
            ),
            # The CLI's start times are those of the live exchanges it recorded.
            "traffic-lab replay --rate": lambda: (
                subprocess.run(
                    [TL, "replay", str(small), "--target", url, "-c", str(concurrency), "-q",
                     "--json", "--rate", str(rate), "--out", str(cli_out)],
                    stdout=subprocess.DEVNULL,
                    check=False,
                )
                and tl.read_capture(cli_out)["started_at"].map(datetime.timestamp).tolist()
            ),
        }  # fmt: skip
        for name, run in paced.items():
            times: list[float] = []
            wall, cpu = timed(lambda run=run, times=times: times.extend(run()))
            span = max(times) - min(times)
            achieved = (len(times) - 1) / span  # the first request goes at once: intervals
            rows.append(
                [
                    f"{name} {rate:,.0f}/s",
                    f"{achieved:,.0f}",
                    f"{wall / count * 1e6:,.0f}",
                    f"{cpu / count * 1e6:,.0f}",
                    f"{achieved / rate - 1:+.1%} rate",
                    "",
                    "within 2%",
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for j, row in enumerate(rows):
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        header = (
            f"replay: a {size:,}-exchange capture sent to the demo app (its own process, "
            f"stdlib threaded server), {concurrency} in flight, {rounds} round(s), medians; "
            "CPU = this process and its children (the CLI's)"
        )
        return header + "\n\n" + "\n".join(lines)
    finally:
        demo.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replay-only", action="store_true", help="only the replay table")
    parser.add_argument("--serve", choices=["bare", "memory", "demo"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--capture", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(args.port)
        return
    if args.serve == "memory":
        serve_memory(args.port, args.capture)
        return
    if args.serve == "demo":
        serve_demo(args.port)
        return
    if args.replay_only:
        print("\n".join(environment()))
        print(replay_table(args.quick, args.concurrency))
        return

    duration, warmup, rounds = (4.0, 1.0, 1) if args.quick else (10.0, 2.0, 3)
    size = 30_000 if args.quick else 150_000
    folder = Path(tempfile.mkdtemp(prefix="bench_servers-"))
    try:
        capture = folder / "capture"
        t = time.perf_counter()
        write_capture(capture, exchanges(size))
        print(
            f"capture of {size:,} exchanges written in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
        me = [sys.executable, str(HERE)]
        bare = Server("bare", [*me, "--serve", "bare"])
        cache = Server("cache", [TL, "serve", str(capture)])
        memory = Server("memory", [*me, "--serve", "memory", "--capture", str(capture)])
        stream = Server("stream", [TL, "serve", str(capture), "--mode", "stream"])
        scenarios = [
            ("bare app (floor)", bare, Paths(size)),
            ("mock, cache, cold", cache, Paths(size)),
            ("mock, cache, hot (100)", cache, Paths(100)),
            ("mock, memory, cold", memory, Paths(size)),
            ("mock, stream", stream, Paths(size)),
        ]
        results = [Result(name) for name, _, _ in scenarios]
        servers = [bare, cache, memory, stream]
        for server in servers:
            server.start()
        try:
            for round_ in range(rounds):
                order = list(range(len(scenarios)))
                if round_ % 2:
                    order.reverse()
                for i in order:
                    name, server, paths = scenarios[i]
                    results[i].runs.append(
                        measure(server, duration, warmup, args.concurrency, paths)
                    )
                    print(f"round {round_ + 1}: {name} done", file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
        print("\n".join(environment()))
        print(
            f"load: {args.concurrency} httpx.AsyncClient workers on keep-alive connections, "
            f"{duration:.0f} s per run after {warmup:.0f} s warm-up, {rounds} round(s), "
            "medians\n"
        )
        print(render(results))
        print()
        print(replay_table(args.quick, args.concurrency))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
