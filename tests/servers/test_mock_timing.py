"""The mock server paces streamed bodies with ``timing="recorded"`` (``traffic-lab serve
--timing recorded``): a recorded SSE stream goes out chunk by chunk at its recorded pace."""

from __future__ import annotations

import time

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.exchange import Chunk
from traffic_lab.servers import BackgroundServer, MockApp

# 5 server-sent events, 50 ms apart, from the loopback server.
SSE = "/stream?chunks=5&size=8&delay_ms=50&sse=1"
EVENTS = [f"data: {i:04d}{i:04d}\n\n".encode() for i in range(5)]


@pytest.fixture(scope="module")
def recorded(server):
    cache = tl.MemoryCache()
    with httpx.Client(transport=tl.RecordingTransport(cache), base_url=server.url) as client:
        assert client.get(SSE).content == b"".join(EVENTS)
    [exchange] = list(cache.exchanges())
    assert exchange.chunks is not None and len(exchange.chunks) == 5
    return cache


def fetch(url: str) -> tuple[list[bytes], list[float]]:
    """The pieces of a streamed GET and when each arrived (s from the request)."""
    start = time.perf_counter()
    pieces, times = [], []
    with httpx.Client() as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        for piece in response.iter_raw():
            pieces.append(piece)
            times.append(time.perf_counter() - start)
    return pieces, times


def span_of(cache) -> float:
    [exchange] = list(cache.exchanges())
    return exchange.chunks[-1].offset_us / 1e6


@pytest.mark.parametrize(("speed", "low", "high"), [(1.0, 0.8, 2.0), (2.0, 0.4, 0.8)])
def test_timing_recorded_paces_the_sse_body(server, recorded, speed, low, high):
    app = MockApp(recorded, origin=server.url, timing="recorded", speed=speed)
    with BackgroundServer(app) as running:
        pieces, times = fetch(running.url + SSE)
    span = span_of(recorded)
    assert b"".join(pieces) == b"".join(EVENTS)
    assert len(pieces) >= 3  # sent apart (a loaded machine may merge two reads)
    assert low * span <= times[-1] < high * span + 0.15, (times, span)


def test_timing_none_sends_the_body_at_once(server, recorded):
    with BackgroundServer(MockApp(recorded, origin=server.url)) as running:
        pieces, times = fetch(running.url + SSE)
    assert b"".join(pieces) == b"".join(EVENTS)
    assert times[-1] < 0.5 * span_of(recorded)


def test_stream_mode_paces_in_recorded_order_too():
    stream = tl.MemoryStream()
    body = b"".join(EVENTS)
    chunks = tuple(Chunk(16, i * 40_000) for i in range(5))
    stream.put(tl.Exchange("GET", "http://a.example/sse", status_code=200, response_body=body,
                           chunks=chunks))  # fmt: skip
    with BackgroundServer(MockApp(stream, timing="recorded")) as running:
        pieces, times = fetch(running.url + "/anything")
    assert b"".join(pieces) == body
    assert 0.8 * 0.16 <= times[-1] < 0.16 * 2 + 0.15
