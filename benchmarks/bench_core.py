"""Core benchmarks (issue 2): recording, cache hits, and the tools users have today, side by side.

Run from the repository root::

    .venv/bin/python benchmarks/bench_core.py            # full run, several minutes
    .venv/bin/python benchmarks/bench_core.py --quick    # under a minute

Every figure is microseconds per request through an ``httpx.Client``, and a ratio to the
*floor*: a bare ``httpx.Client`` over ``httpx.MockTransport`` with the same handler (a ~1 KB JSON
body with 20 response headers, from ``traffic_lab.testing.json_handler``). Floor and subject
blocks alternate, the ratio is taken per round and the median reported; see ``_common.py`` and
``README.md`` for the method.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import itertools
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# The floor transport: httpx.MockTransport's own handle_request, captured before VCR.py (which
# patches MockTransport.handle_request on the class while a cassette is in use) is imported.
# The subclass keeps the floor measurable inside a cassette context, so that floor and VCR.py
# blocks can alternate like every other comparison here.
_MOCK_HANDLE_REQUEST = httpx.MockTransport.handle_request


class FloorTransport(httpx.MockTransport):
    """``httpx.MockTransport``, immune to VCR.py's class patch (same code, same cost)."""

    handle_request = _MOCK_HANDLE_REQUEST


# tl.capture() swaps httpx.Client._transport_for_url while it runs; the floor client keeps the
# original (the same code, so the same cost), as FloorTransport does for VCR.py.
_TRANSPORT_FOR_URL = httpx.Client.__dict__["_transport_for_url"]


class FloorClient(httpx.Client):
    """``httpx.Client``, immune to tl.capture()'s class patch (same code, same cost)."""

    _transport_for_url = _TRANSPORT_FOR_URL


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository, when traffic_lab is not installed
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    Block,
    Comparison,
    Row,
    compare,
    environment,
    format_size,
    median,
    quiet_gc,
    render_table,
    time_block,
)

import traffic_lab as tl  # noqa: E402
from traffic_lab.testing import json_handler  # noqa: E402

URL = "https://api.example.test/v1/items/{}?page=2&limit=50"
HANDLER = json_handler(size=1024, headers=20)
RECORD_TARGET = 1.15
CACHE_TARGET = 1.00
FLATNESS_TARGET = 1.10  # "flat from 1k to 1M": the 1M ratio within 10% of the 1k ratio


def url(i: int) -> str:
    return URL.format(i)


def miss_handler(request: httpx.Request) -> httpx.Response:
    """Inner handler of every cache scenario: a miss would fail loudly, so each timed request
    is known to be a hit that skipped the handler."""
    raise AssertionError(f"cache miss for {request.url}")


@dataclass
class Config:
    quick: bool
    rounds: int  # alternating floor/subject rounds per comparison
    ops: int  # requests per block
    cache_sizes: Sequence[int]
    hishel_sizes: Sequence[int]
    hishel_file_sizes: Sequence[int]
    vcr_sizes: Sequence[int]
    vcr_rounds: int  # VCR.py requests timed per scenario (one per round)


def config(quick: bool) -> Config:
    if quick:
        return Config(
            quick=True,
            rounds=200,
            ops=10,
            cache_sizes=(1_000, 100_000),
            hishel_sizes=(1_000,),
            hishel_file_sizes=(1_000,),
            vcr_sizes=(100, 1_000),
            vcr_rounds=15,
        )
    return Config(
        quick=False,
        rounds=600,
        ops=10,
        cache_sizes=(1_000, 10_000, 100_000, 1_000_000),
        hishel_sizes=(1_000, 100_000),
        hishel_file_sizes=(1_000, 100_000),
        vcr_sizes=(100, 1_000, 10_000),
        vcr_rounds=25,
    )


def requests_block(client: httpx.Client, urls: Sequence[str], ops: int) -> Callable[[], None]:
    """A block of ``ops`` GETs, going round ``urls``."""
    get = client.get
    cycle = itertools.cycle(urls)

    def block() -> None:
        for _ in range(ops):
            get(next(cycle))

    return block


def floor_client(headers: dict[str, str] | None = None) -> httpx.Client:
    return FloorClient(transport=FloorTransport(HANDLER), headers=headers)


def row(
    scenario: str, size: int | None, c: Comparison, target: float | None, note: str = ""
) -> Row:
    return Row(scenario, format_size(size), c.us, c.floor, c.ratio, c.ratio_ci, target, note)


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


# -- traffic_lab: recording -------------------------------------------------------------------
def bench_record(cfg: Config, floors: list[float]) -> list[Row]:
    rows = []
    urls = [url(i) for i in range(1_000)]

    def run(client: httpx.Client, floor: httpx.Client) -> Comparison:
        return compare(
            requests_block(floor, urls, cfg.ops),
            requests_block(client, urls, cfg.ops),
            cfg.ops,
            rounds=cfg.rounds,
        )

    progress("RecordingTransport -> MemoryStream")
    stream = tl.MemoryStream()
    client = httpx.Client(transport=tl.RecordingTransport(stream, httpx.MockTransport(HANDLER)))
    c = run(client, floor_client())
    floors.extend(c.floor_us)
    assert len(stream) == cfg.ops * (cfg.rounds + 1), len(stream)
    t0 = time.perf_counter()
    stored = stream[0]  # the first read redacts what was recorded (off the request's path)
    settle_us = (time.perf_counter() - t0) / len(stream) * 1e6
    assert stored.status_code == 200
    assert stored.response_body == HANDLER(httpx.Request("GET", urls[0])).content
    note = f"redacted at the next read, not on the request's path: {settle_us:.1f} us/exchange"
    rows.append(row("traffic_lab RecordingTransport -> MemoryStream", None, c, RECORD_TARGET, note))

    progress("RecordingTransport -> MemoryStream, with a credential")
    secret = {"Authorization": "Bearer s3cr3t-t0ken"}
    stream = tl.MemoryStream()
    client = httpx.Client(
        transport=tl.RecordingTransport(stream, httpx.MockTransport(HANDLER)), headers=secret
    )
    c = run(client, floor_client(secret))
    assert (b"Authorization", b"Bearer [REDACTED]") in stream[0].request_headers
    note = "request has Authorization: a redacted copy is stored"
    rows.append(row("traffic_lab RecordingTransport -> MemoryStream", None, c, 1.20, note))

    progress("RecordingTransport -> MemoryStream, redaction off")
    stream = tl.MemoryStream()
    transport = tl.RecordingTransport(
        stream, httpx.MockTransport(HANDLER), redactor=tl.Redactor.disabled()
    )
    c = run(httpx.Client(transport=transport), floor_client())
    note = "Redactor.disabled(): recording with nothing to redact, now or later"
    rows.append(row("traffic_lab RecordingTransport -> MemoryStream", None, c, None, note))

    progress("RecordingTransport -> MemoryCache")
    cache = tl.MemoryCache()
    client = httpx.Client(transport=tl.RecordingTransport(cache, httpx.MockTransport(HANDLER)))
    c = run(client, floor_client())
    recorded = len(cache)
    t0 = time.perf_counter()
    assert len(cache.keys()) == len(urls)  # the first read redacts and indexes
    settle_us = (time.perf_counter() - t0) / recorded * 1e6
    note = f"redacted and keyed at the next read: {settle_us:.1f} us/exchange"
    rows.append(row("traffic_lab RecordingTransport -> MemoryCache", None, c, 1.20, note))
    return rows


# -- traffic_lab: cache hits ------------------------------------------------------------------
def template_exchange() -> tl.Exchange:
    """One exchange recorded for real through RecordingTransport: what a cache holds."""
    stream = tl.MemoryStream()
    transport = tl.RecordingTransport(stream, httpx.MockTransport(HANDLER))
    with httpx.Client(transport=transport) as client:
        client.get(url(0))
    return stream[0]


def hit_sample(size: int, count: int = 1_000, seed: int = 1) -> list[str]:
    """``count`` distinct stored URLs spread over the whole store, in random order."""
    rng = random.Random(seed)
    return [url(i) for i in rng.sample(range(size), min(size, count))]


FIRST_HIT_SIZE = 100_000  # the store for the "first hit of each entry" row


def warmed_client(cache: Any, urls: list[str]) -> httpx.Client:
    """A client serving from ``cache`` (misses: an error), each of ``urls`` served once, the
    first checked to come from the cache with the handler's body."""
    client = httpx.Client(transport=tl.CachingTransport(cache, httpx.MockTransport(miss_handler)))
    response = client.get(urls[0])
    assert response.extensions.get("traffic_lab.from_cache") is True
    assert response.json() == HANDLER(httpx.Request("GET", urls[0])).json()
    for u in urls:  # warm-up
        client.get(u)
    return client


def compare_hits(cfg: Config, client: httpx.Client, urls: list[str]) -> Comparison:
    """The floor and ``client`` requesting ``urls``, side by side."""
    return compare(
        requests_block(floor_client(), urls, cfg.ops),
        requests_block(client, urls, cfg.ops),
        cfg.ops,
        rounds=cfg.rounds,
    )


def bench_cache(cfg: Config, floors: list[float]) -> list[Row]:
    rows = []
    template = template_exchange()
    ratios: dict[int, float] = {}
    for size in cfg.cache_sizes:
        progress(f"MemoryCache: filling {format_size(size)} entries")
        cache = tl.MemoryCache()
        start = time.perf_counter()
        for i in range(size):
            cache.put(template.replace(url=url(i)))
        fill_s = time.perf_counter() - start
        urls = hit_sample(size)
        client = warmed_client(cache, urls)
        progress(f"CachingTransport hit, {format_size(size)} entries")
        c = compare_hits(cfg, client, urls)
        floors.extend(c.floor_us)
        ratios[size] = c.ratio
        note = f"1k entries hit in turn; filled with put(): {fill_s / size * 1e6:.0f} us/entry"
        scenario = "traffic_lab CachingTransport hit, MemoryCache"
        rows.append(row(scenario, size, c, CACHE_TARGET, note))
        if size == FIRST_HIT_SIZE:
            # Every timed request is the first for its entry (a test suite replaying a
            # recording hits each entry once): the served headers are built on that hit.
            progress(f"CachingTransport first hits, {format_size(size)} entries")
            needed = (cfg.rounds + 1) * cfg.ops
            served = set(urls)
            candidates = random.Random(2).sample(range(size), needed + len(urls))
            fresh = [u for u in map(url, candidates) if u not in served][:needed]
            assert len(fresh) == needed
            c = compare_hits(cfg, client, fresh)
            note = "each timed request is the first hit of its entry"
            rows.append(row(scenario, size, c, None, note))
        del cache, client
        gc.collect()
    rows.append(parquet_cache_hit(cfg, floors, template))
    small, large = min(ratios), max(ratios)
    if small != large:
        rows.append(
            Row(
                f"  flatness: ratio at {format_size(large)} / ratio at {format_size(small)}",
                f"{format_size(small)}->{format_size(large)}",
                ratio=ratios[large] / ratios[small],
                target=FLATNESS_TARGET,
            )
        )
    return rows


PARQUET_HIT_SIZE = 10_000


def parquet_cache_hit(cfg: Config, floors: list[float], template: tl.Exchange) -> Row:
    """A warm hit from a ParquetCache opened on a capture on disk (its rows decoded once)."""
    progress(f"ParquetCache: writing {format_size(PARQUET_HIT_SIZE)} entries")
    folder = tempfile.mkdtemp(prefix="bench_core-")
    try:
        with tl.ParquetCache(folder) as writer:
            for i in range(PARQUET_HIT_SIZE):
                writer.put(template.replace(url=url(i)))
        cache = tl.ParquetCache(folder)
        urls = hit_sample(PARQUET_HIT_SIZE)
        client = warmed_client(cache, urls)  # every sampled row read and decoded once
        progress(f"CachingTransport hit, ParquetCache {format_size(PARQUET_HIT_SIZE)} entries")
        c = compare_hits(cfg, client, urls)
        floors.extend(c.floor_us)
        cache.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    scenario = "traffic_lab CachingTransport hit, ParquetCache"
    note = "1k entries hit in turn, warm (each read and decoded once before timing)"
    return row(scenario, PARQUET_HIT_SIZE, c, CACHE_TARGET, note)


# -- hishel -----------------------------------------------------------------------------------
def bench_hishel(cfg: Config, floors: list[float]) -> list[Row]:
    try:
        import hishel
        from hishel.httpx import CacheTransport
    except ImportError:
        return [Row("hishel", note="not installed")]

    rows = []
    template = HANDLER(httpx.Request("GET", url(0)))
    grouped: dict[str, list[str]] = {}
    for k, v in template.headers.multi_items():
        grouped.setdefault(k, []).append(v)
    body = template.content
    tmp = Path(tempfile.mkdtemp(prefix="bench-hishel-"))
    kinds = (("sqlite :memory:", cfg.hishel_sizes), ("sqlite file", cfg.hishel_file_sizes))
    try:
        for kind, sizes in kinds:
            for size in sizes:
                if kind == "sqlite :memory:":
                    connection = sqlite3.connect(
                        ":memory:", check_same_thread=False, isolation_level=None
                    )
                    storage = hishel.SqliteStorage(connection=connection)
                else:
                    storage = hishel.SqliteStorage(database_path=tmp / f"hishel-{size}.db")
                progress(f"hishel {kind}: filling {format_size(size)} entries")
                start = time.perf_counter()
                for i in range(size):
                    # The key hishel's CacheTransport computes without rfc: sha256("GET <url>").
                    u = str(httpx.URL(url(i)))
                    key = hashlib.sha256(f"GET {u}".encode()).hexdigest()
                    entry = storage.create_entry(
                        hishel.Request(method="GET", url=u, headers=hishel.Headers({})),
                        hishel.Response(
                            status_code=200, headers=hishel.Headers(grouped), stream=iter([body])
                        ),
                        key,
                    )
                    saving = entry.response.stream
                    assert isinstance(saving, Iterator)
                    for _ in saving:  # the body is stored as it is consumed
                        pass
                fill_s = time.perf_counter() - start
                inner = httpx.MockTransport(miss_handler)
                client = httpx.Client(transport=CacheTransport(inner, storage=storage))
                urls = hit_sample(size)
                response = client.get(urls[0])
                assert response.extensions["caching"]["from_cache"] is True
                assert response.content == body
                progress(f"hishel {kind} hit, {format_size(size)} entries")
                c = compare(
                    requests_block(floor_client(), urls, cfg.ops),
                    requests_block(client, urls, cfg.ops),
                    cfg.ops,
                    rounds=cfg.rounds,
                )
                floors.extend(c.floor_us)
                note = f"filled with create_entry(): {fill_s / size * 1e6:.0f} us/entry"
                rows.append(row(f"hishel CacheTransport hit, {kind}", size, c, None, note))
                client.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# -- VCR.py -----------------------------------------------------------------------------------
def build_cassette(vcr_mod: Any, path: Path, seed_path: Path, size: int) -> None:
    """A cassette of ``size`` interactions, in the format VCR.py itself records.

    Recording 10k requests through VCR.py takes O(n^2) time (each new request is first looked
    up in every recorded one), so one interaction is recorded for real, replicated with
    distinct URLs, and written with VCR.py's own persister and YAML serializer.
    """
    from vcr.persisters.filesystem import FilesystemPersister
    from vcr.request import Request as VcrRequest
    from vcr.serializers import yamlserializer

    if not seed_path.exists():
        with (
            vcr_mod.VCR().use_cassette(str(seed_path), record_mode="once"),
            httpx.Client(transport=httpx.MockTransport(HANDLER)) as client,
        ):
            client.get(url(0))
    loaded = FilesystemPersister.load_cassette(str(seed_path), serializer=yamlserializer)
    r0, resp0 = loaded[0][0], loaded[1][0]
    requests = [VcrRequest(r0.method, url(i), r0.body, dict(r0.headers)) for i in range(size)]
    responses = [copy.deepcopy(resp0) for _ in range(size)]
    cassette = {"requests": requests, "responses": responses}
    FilesystemPersister.save_cassette(str(path), cassette, serializer=yamlserializer)


def stratified(size: int, count: int, seed: int = 7) -> list[str]:
    """``count`` stored URLs at evenly spaced cassette positions, in random order: VCR.py's
    lookup time grows with the position of the match, and this sample's median is the middle."""
    step = size / count
    sample = [url(int((j + 0.5) * step)) for j in range(count)]
    random.Random(seed).shuffle(sample)
    return sample


def vcr_record(cfg: Config, vcr_mod: Any, base: Path, size: int, floor: Block) -> Row:
    """New requests recorded into a cassette that holds ``size`` interactions, one per round;
    the cassette is reloaded from a fresh copy whenever the recorded ones would add 5%."""
    my_vcr = vcr_mod.VCR()
    work = base.with_name(f"record-{size}.yaml")
    fresh = (url(i) for i in itertools.count(10 * size))
    reload_every = max(1, size // 20)
    result = Comparison()
    load_s: list[float] = []
    save_s: list[float] = []
    with httpx.Client(transport=httpx.MockTransport(HANDLER)) as client, quiet_gc():
        get = client.get

        def record_one() -> None:
            get(next(fresh))

        ctx = None
        for r in range(cfg.vcr_rounds + 1):  # round 0 is the warm-up
            if r % reload_every == 0:
                if ctx is not None:
                    t0 = time.perf_counter()
                    ctx.__exit__(None, None, None)
                    save_s.append(time.perf_counter() - t0)
                shutil.copyfile(base, work)
                t0 = time.perf_counter()
                ctx = my_vcr.use_cassette(str(work), record_mode="new_episodes")
                cassette = ctx.__enter__()
                load_s.append(time.perf_counter() - t0)
                assert len(cassette) == size
            f1 = time_block(floor, cfg.ops, collect=False)
            s = time_block(record_one, 1, collect=False)
            f2 = time_block(floor, cfg.ops, collect=False)
            if r:
                result.floor_us.append((f1 + f2) / 2)
                result.subject_us.append(s)
            gc.collect()
        assert ctx is not None
        t0 = time.perf_counter()
        ctx.__exit__(None, None, None)
        save_s.append(time.perf_counter() - t0)
    note = f"untimed: YAML load {median(load_s):.2f} s, save {median(save_s):.2f} s"
    return row("VCR.py record (new_episodes)", size, result, None, note)


def vcr_replay(cfg: Config, vcr_mod: Any, base: Path, size: int, floor: Block) -> Row:
    """Requests for recorded interactions, one per round, each played once (VCR.py's default),
    at positions spread evenly over the cassette."""
    sample = iter(stratified(size, cfg.vcr_rounds + 1))
    with httpx.Client(transport=httpx.MockTransport(HANDLER)) as client:
        get = client.get

        def replay_one() -> None:
            response = get(next(sample))
            assert response.status_code == 200 and len(response.content) > 1000

        t0 = time.perf_counter()
        with vcr_mod.VCR().use_cassette(str(base), record_mode="none") as cassette:
            load = time.perf_counter() - t0
            c = compare(floor, replay_one, cfg.ops, rounds=cfg.vcr_rounds, subject_operations=1)
            assert cassette.play_count == cfg.vcr_rounds + 1
    note = f"untimed: YAML load {load:.2f} s"
    return row("VCR.py replay (none)", size, c, None, note)


def bench_vcr(cfg: Config, floors: list[float]) -> list[Row]:
    try:
        import vcr
    except ImportError:
        return [Row("VCR.py", note="not installed")]

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-vcr-"))
    floor = requests_block(floor_client(), [url(i) for i in range(1_000)], cfg.ops)
    try:
        for size in cfg.vcr_sizes:
            base = tmp / f"cassette-{size}.yaml"
            progress(f"VCR.py: writing a cassette of {format_size(size)} interactions")
            build_cassette(vcr, base, tmp / "seed.yaml", size)
            progress(f"VCR.py record, cassette of {format_size(size)}")
            rows.append(vcr_record(cfg, vcr, base, size, floor))
            progress(f"VCR.py replay, cassette of {format_size(size)}")
            rows.append(vcr_replay(cfg, vcr, base, size, floor))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# -- tl.capture(): every client in a block ----------------------------------------------------
def bench_capture(cfg: Config, floors: list[float]) -> list[Row]:
    """A plain ``httpx.Client`` (built before the block) inside ``tl.capture()``, against the
    floor client outside it: what the patch point, the routing and the counting add."""
    rows = []
    urls = [url(i) for i in range(1_000)]

    def run(client: httpx.Client) -> Comparison:
        return compare(
            requests_block(floor_client(), urls, cfg.ops),
            requests_block(client, urls, cfg.ops),
            cfg.ops,
            rounds=cfg.rounds,
        )

    client = httpx.Client(transport=httpx.MockTransport(HANDLER))
    progress("tl.capture() recording into a MemoryCache")
    cache = tl.MemoryCache()
    with tl.capture(cache, mode="all", report=False) as block:
        c = run(client)
    floors.extend(c.floor_us)
    assert block.recorded == cfg.ops * (cfg.rounds + 1), block.recorded
    note = "mode all: every request recorded (RecordingTransport's work plus the routing)"
    rows.append(row("tl.capture() -> MemoryCache, recording", None, c, None, note))

    progress("tl.capture() replaying from a MemoryCache")
    with tl.capture(cache, mode="none", report=False) as block:
        c = run(client)
    assert block.replayed == cfg.ops * (cfg.rounds + 1) and block.missed == 0
    note = "mode none: every request a hit, served as a fresh unread response"
    rows.append(row("tl.capture() -> MemoryCache, replaying", None, c, None, note))

    progress("a client outside any capture while the patch is installed")
    with tl.capture(tl.MemoryCache(), scope="context", report=False), tl.no_capture():
        c = run(client)
    note = "patched _transport_for_url, no capture in this context: one ContextVar lookup"
    rows.append(row("httpx.Client outside a capture, patch installed", None, c, None, note))
    return rows


# -- main -------------------------------------------------------------------------------------
SECTIONS = {
    "record": bench_record,
    "cache": bench_cache,
    "capture": bench_capture,
    "hishel": bench_hishel,
    "vcr": bench_vcr,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer sizes and rounds (under a minute)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections ({', '.join(SECTIONS)})",
    )
    args = parser.parse_args(argv)
    cfg = config(args.quick)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    floors: list[float] = []
    rows: list[Row] = []
    for name in chosen:
        rows.extend(SECTIONS[name](cfg, floors))
    elapsed = time.perf_counter() - started

    floor_row = Row(
        "floor: httpx.Client + MockTransport (same handler)",
        us=median(floors) if floors else None,
        ratio=1.0,
        note="median of all floor blocks; each row has its own, measured beside it",
    )
    mode = "quick" if cfg.quick else "full"
    print(f"traffic_lab core benchmarks ({mode} run, {elapsed:.0f} s)")
    for line in environment(("httpx", "traffic_lab", "vcrpy", "hishel")):
        print(line)
    print(
        f"method: time.perf_counter; {cfg.rounds} rounds of {cfg.ops}-request blocks, floor and subject "
        f"alternating (A B B A ...); VCR.py: {cfg.vcr_rounds} rounds of one request against a "
        f"{cfg.ops}-request floor block. Figures are medians over rounds after a warm-up; the ratio "
        "is the median of per-round ratios, [95% CI of that median]. GC disabled in timed blocks."
    )
    print(
        "workload: GET https://api.example.test/v1/items/N?page=2&limit=50 with httpx's default "
        "request headers; response 200, 1075-byte JSON body, 20 headers (testing.json_handler)"
    )
    print()
    print(render_table([floor_row, *rows]))
    failed = [
        r for r in rows if r.target is not None and r.ratio is not None and r.ratio > r.target
    ]
    print()
    print("all targets met" if not failed else f"{len(failed)} target(s) missed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
