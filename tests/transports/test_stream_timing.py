"""Streamed responses with their timing: chunk boundaries and offsets recorded through the
transports (sync and async), kept by the stores, and replayed at once or at the recorded pace."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.exchange import Chunk
from traffic_lab.transports.stream_timing import MAX_GAP_US, replay_schedule

pytestmark = pytest.mark.anyio

# 5 server-sent events, 50 ms apart: "data: 0000..\n\n" (16 bytes each).
SSE = "/stream?chunks=5&size=8&delay_ms=50&sse=1"
EVENTS = [f"data: {i:04d}{i:04d}\n\n".encode() for i in range(5)]


async def read_pieces(harness: Any, transport: Any, url: str) -> tuple[list[bytes], float]:
    """The raw pieces a client reads from a streamed response, and how long that took."""
    start = time.perf_counter()
    if harness.is_async:
        async with (
            httpx.AsyncClient(transport=transport) as client,
            client.stream("GET", url) as response,
        ):
            pieces = [piece async for piece in response.aiter_raw()]
    else:
        with httpx.Client(transport=transport) as client, client.stream("GET", url) as response:
            pieces = list(response.iter_raw())
    return pieces, time.perf_counter() - start


async def record(harness: Any, server: Any, cache: Any) -> tl.Exchange:
    pieces, _ = await read_pieces(harness, harness.recording(cache), server.url + SSE)
    assert pieces == EVENTS
    [exchange] = list(cache.exchanges())
    return exchange


def check_recorded(exchange: tl.Exchange) -> None:
    assert exchange.chunks is not None
    assert [c.size for c in exchange.chunks] == [16] * 5
    offsets = [c.offset_us for c in exchange.chunks]
    assert 0 <= offsets[0] < 40_000  # the first event comes with the headers
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(40_000 <= gap < 1_000_000 for gap in gaps), gaps
    assert not exchange.truncated


async def test_a_streamed_response_is_recorded_with_its_chunks_and_offsets(harness, server):
    exchange = await record(harness, server, tl.MemoryCache())
    check_recorded(exchange)
    assert exchange.response_body == b"".join(EVENTS)


async def test_a_body_read_in_one_piece_records_no_chunks(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.recording(cache))
    try:
        await client.get(server.url + "/json?size=64")
    finally:
        await client.aclose()
    [exchange] = list(cache.exchanges())
    assert exchange.chunks is None


@pytest.mark.parametrize(
    ("timing", "speed", "low", "high"),
    [("none", 1.0, 0.0, 0.1), ("recorded", 1.0, 0.8, 2.0), ("recorded", 2.0, 0.4, 0.75)],
)
async def test_a_replay_serves_the_recorded_chunks_at_the_asked_pace(
    harness, server, timing, speed, low, high
):
    cache = tl.MemoryCache()
    exchange = await record(harness, server, cache)
    span = exchange.chunks[-1].offset_us / 1e6  # about 0.2 s
    replay = harness.capture(cache, mode="none", timing=timing, speed=speed)
    pieces, took = await read_pieces(harness, replay, server.url + SSE)
    assert pieces == EVENTS  # the same chunks, in order
    assert low * span <= took < high * span + 0.05, (took, span)


async def test_a_caching_transport_over_a_parquet_cache_replays_at_the_recorded_pace(
    harness, server, tmp_path
):
    with tl.ParquetCache(tmp_path / "cap") as cache:
        recorded = await record(harness, server, cache)
    check_recorded(recorded)
    with tl.ParquetCache(tmp_path / "cap") as cache:
        [stored] = list(cache.exchanges())
        assert stored.chunks == recorded.chunks
        never = httpx.MockTransport(lambda request: httpx.Response(599))
        cls = tl.AsyncCachingTransport if harness.is_async else tl.CachingTransport
        replay = cls(cache, never, timing="recorded")
        pieces, took = await read_pieces(harness, replay, server.url + SSE)
    assert pieces == EVENTS
    assert took >= 0.8 * recorded.chunks[-1].offset_us / 1e6


def test_the_responder_replays_a_stream_in_order_at_the_recorded_pace():
    stream = tl.MemoryStream()
    body = b"".join(EVENTS)
    chunks = tuple(Chunk(16, i * 30_000) for i in range(5))
    stream.put(tl.Exchange("GET", "https://a.example/sse", status_code=200, response_body=body,
                           chunks=chunks))  # fmt: skip
    handler = tl.responder(stream, timing="recorded", speed=1.0)
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        start = time.perf_counter()
        with client.stream("GET", "https://a.example/sse") as response:
            pieces = list(response.iter_raw())
        took = time.perf_counter() - start
    assert pieces == EVENTS
    assert 0.12 * 0.8 <= took < 1.0


def test_timing_and_speed_are_checked():
    with pytest.raises(ValueError, match="timing must be 'none' or 'recorded', not 'fast'"):
        tl.CaptureTransport(tl.MemoryCache(), timing="fast")  # type: ignore[arg-type]
    for speed in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed must be a positive number"):
            tl.responder(tl.MemoryStream(), timing="recorded", speed=speed)


def test_replay_waits_are_capped_per_gap_and_in_total():
    hour = 3_600_000_000
    assert replay_schedule((Chunk(1, 0), Chunk(1, hour)), 1.0) == [0.0, MAX_GAP_US / 1e6]
    many = tuple(Chunk(1, i * hour) for i in range(100))
    assert replay_schedule(many, 1.0)[-1] == 300.0  # the whole replay waits 5 minutes at most
    assert replay_schedule(many, 4.0)[-1] == 75.0


def test_an_exchange_refuses_chunks_that_do_not_fit_its_body():
    ex = tl.Exchange("GET", "https://a.example/", status_code=200, response_body=b"abc",
                     chunks=(Chunk(1, 0), Chunk(1, 5)))  # fmt: skip
    with pytest.raises(tl.errors.InvalidExchangeError) as info:
        tl.MemoryStream().put(ex)
    assert str(info.value) == (
        "cannot store this exchange: chunks = 2 chunks: chunk sizes sum to 2, not the body size 3"
    )


def test_a_new_body_of_another_length_drops_the_chunks_a_same_length_one_keeps_them():
    chunks = (Chunk(1, 0), Chunk(2, 40))
    ex = tl.Exchange("GET", "https://a.example/", status_code=200, response_body=b"abc",
                     chunks=chunks)  # fmt: skip
    assert ex.replace(response_body=b"[REDACTED]").chunks is None
    assert ex.replace(response_body=b"xyz").chunks == chunks
    assert ex.replace(tags={"a": "b"}).chunks == chunks
    assert list(ex.new_response().iter_raw()) == [b"a", b"bc"]
