"""httpx2 (the httpx fork that openai 3 and anthropic 1 build on) inside tl.capture(): its
clients record into and replay from the same captures, against a real loopback server."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

import traffic_lab as tl
from traffic_lab.errors import UnmatchedRequestError
from traffic_lab.testing import LoopbackServer


def test_httpx2_clients_record_then_replay_with_the_server_stopped():
    cache = tl.MemoryCache()
    original = httpx2.Client.__dict__["_transport_for_url"]
    original_async = httpx2.AsyncClient.__dict__["_transport_for_url"]

    async def fetch_async(url):
        async with httpx2.AsyncClient() as client:
            return (await client.get(url)).json()

    with LoopbackServer() as server:
        url = server.url
        client = httpx2.Client(base_url=url, follow_redirects=True)  # built before the block
        with tl.capture(cache) as live:
            gz = client.get("/gzip?size=300")
            hops = client.get("/redirect/1")
            with client.stream("GET", "/stream?chunks=3&size=8") as response:
                streamed = b"".join(response.iter_bytes())
            doc = asyncio.run(fetch_async(url + "/json?size=40"))
        assert len(server.hits) == 5
    assert live.recorded == 5 and len(cache) == 5
    assert httpx2.Client.__dict__["_transport_for_url"] is original
    assert httpx2.AsyncClient.__dict__["_transport_for_url"] is original_async
    with tl.capture(cache, mode="none") as replay:
        gz2 = client.get("/gzip?size=300")
        hops2 = client.get("/redirect/1")
        with client.stream("GET", "/stream?chunks=3&size=8") as response:
            streamed2 = b"".join(response.iter_bytes())
        doc2 = asyncio.run(fetch_async(url + "/json?size=40"))
        with pytest.raises(UnmatchedRequestError):
            client.get("/json?size=41")
    client.close()
    assert (replay.replayed, replay.missed) == (5, 1)
    assert isinstance(gz2, httpx2.Response) and gz2.headers["content-encoding"] == "gzip"
    assert gz2.json() == gz.json()
    assert [r.status_code for r in hops2.history] == [302] and hops2.json() == hops.json()
    assert streamed2 == streamed == b"00000000" + b"00010001" + b"00020002"
    assert doc2 == doc
    assert gz2.extensions["traffic_lab.from_cache"] is True
