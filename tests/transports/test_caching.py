"""CachingTransport (ServeCachedFrom), its composition with recording, and the record modes."""

from __future__ import annotations

import threading

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import free_port, make_exchange

pytestmark = pytest.mark.anyio


def hits_for(server, path):
    return sum(1 for _, p in server.hits if p == path)


async def test_simple_caching_from_serves_second_request_from_cache(harness, server):
    cache = tl.MemoryCache()
    transport = harness.caching(cache, harness.recording(cache))
    client = harness.client(transport, base_url=server.url)
    path = f"/json?size=200&seed=11&unique=simple-{harness.kind}"
    first = await client.get(path)
    second = await client.get(path)
    await client.aclose()
    assert hits_for(server, path) == 1
    assert first.extensions.get(tl.exchange.FROM_CACHE) is None
    assert second.extensions[tl.exchange.FROM_CACHE] is True
    assert second.content == first.content
    assert second.headers.raw == first.headers.raw
    assert len(cache) == 1


async def test_miss_falls_through_to_wrapped_transport(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.caching(cache), base_url=server.url)
    r = await client.get(f"/status/404?unique=miss-{harness.kind}")
    await client.aclose()
    assert r.status_code == 404
    assert tl.exchange.FROM_CACHE not in r.extensions
    assert hits_for(server, f"/status/404?unique=miss-{harness.kind}") == 1


async def test_gzip_hit_decodes_exactly_as_live(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.caching(cache, harness.recording(cache)), base_url=server.url)
    live = await client.get(f"/gzip?unique=gz-{harness.kind}")
    cached = await client.get(f"/gzip?unique=gz-{harness.kind}")
    await client.aclose()
    assert cached.extensions[tl.exchange.FROM_CACHE] is True
    assert cached.content == live.content
    assert cached.headers["content-encoding"] == "gzip"


async def test_request_with_secret_still_hits_the_cache(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.caching(cache, harness.recording(cache)), base_url=server.url)
    path = f"/json?api_key=SECRET1&unique=secret-{harness.kind}"
    await client.get(path, headers={"Authorization": "Bearer A"})
    second = await client.get(path, headers={"Authorization": "Bearer A"})
    await client.aclose()
    assert second.extensions[tl.exchange.FROM_CACHE] is True
    assert hits_for(server, path) == 1
    [ex] = list(cache.exchanges())
    assert "SECRET1" not in ex.url


async def test_post_bodies_are_part_of_the_key(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.caching(cache, harness.recording(cache)), base_url=server.url)
    a1 = await client.post(f"/echo?unique=body-{harness.kind}", content=b"a")
    b1 = await client.post(f"/echo?unique=body-{harness.kind}", content=b"b")
    a2 = await client.post(f"/echo?unique=body-{harness.kind}", content=b"a")
    await client.aclose()
    assert a2.extensions[tl.exchange.FROM_CACHE] is True
    assert a2.json() == a1.json()
    assert b1.json()["body"] != a1.json()["body"]
    assert hits_for(server, f"/echo?unique=body-{harness.kind}") == 2


async def test_source_without_aget_runs_in_a_worker_thread(server):
    class BlockingSource:
        def __init__(self):
            self.threads = []

        def get(self, request):
            self.threads.append(threading.get_ident())
            return httpx.Response(200, text="from-source")

    source = BlockingSource()
    async with httpx.AsyncClient(transport=tl.AsyncCachingTransport(source)) as client:
        r = await client.get(server.url + "/json")
    assert r.text == "from-source"
    assert r.extensions[tl.exchange.FROM_CACHE] is True
    assert source.threads and source.threads[0] != threading.get_ident()


async def test_capture_mode_once_records_then_replays_only(harness, server):
    cache = tl.MemoryCache()
    path = f"/json?size=64&unique=once-{harness.kind}"
    client = harness.client(harness.capture(cache, mode="once"), base_url=server.url)
    assert client.client._transport.effective_mode is tl.transports.RecordMode.NEW_EPISODES
    await client.get(path)
    await client.aclose()
    assert hits_for(server, path) == 1
    client = harness.client(harness.capture(cache, mode="once"), base_url=server.url)
    assert client.client._transport.effective_mode is tl.transports.RecordMode.NONE
    again = await client.get(path)
    assert again.extensions[tl.exchange.FROM_CACHE] is True
    with pytest.raises(tl.errors.UnmatchedRequestError) as info:
        await client.get(f"/json?size=65&unique=once-{harness.kind}")
    await client.aclose()
    assert hits_for(server, path) == 1
    assert hits_for(server, f"/json?size=65&unique=once-{harness.kind}") == 0
    assert "query 'size': '64' != '65'" in str(info.value)


async def test_capture_mode_new_episodes_records_new_and_replays_old(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.capture(cache, mode="new_episodes"), base_url=server.url)
    await client.get(f"/json?unique=ne1-{harness.kind}")
    await client.get(f"/json?unique=ne2-{harness.kind}")
    third = await client.get(f"/json?unique=ne1-{harness.kind}")
    await client.aclose()
    assert third.extensions[tl.exchange.FROM_CACHE] is True
    assert len(cache) == 2
    assert hits_for(server, f"/json?unique=ne1-{harness.kind}") == 1


async def test_capture_mode_none_never_touches_the_network(harness):
    cache = tl.MemoryCache()
    cache.put(make_exchange("GET", "https://api.example/items/1", json={"id": 1}))
    port = free_port()
    client = harness.client(
        harness.capture(cache, mode="none"), base_url=f"http://127.0.0.1:{port}"
    )
    with pytest.raises(tl.errors.UnmatchedRequestError) as info:
        await client.get("/items/1")
    hit = await client.get("https://api.example/items/1")
    await client.aclose()
    assert hit.json() == {"id": 1}
    message = str(info.value)
    assert message.splitlines() == [
        f"record mode 'none': no recorded exchange matches GET http://127.0.0.1:{port}/items/1",
        "nearest recorded requests:",
        "  GET https://api.example/items/1",
        "    - scheme: 'https' != 'http'",
        "    - host: 'api.example' != '127.0.0.1'",
        f"    - port: 443 != {port}",
    ]
    assert isinstance(info.value, LookupError)


async def test_capture_mode_all_always_goes_live_and_records(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.capture(cache, mode="all"), base_url=server.url)
    r1 = await client.get(f"/json?unique=all-{harness.kind}")
    r2 = await client.get(f"/json?unique=all-{harness.kind}")
    await client.aclose()
    assert (
        tl.exchange.FROM_CACHE not in r1.extensions and tl.exchange.FROM_CACHE not in r2.extensions
    )
    assert hits_for(server, f"/json?unique=all-{harness.kind}") == 2
    assert len(cache) == 2


async def test_capture_mode_rewrite_replaces_old_recordings(harness, server):
    cache = tl.MemoryCache()
    cache.put(make_exchange("GET", "https://old.example/stale"))
    transport = harness.capture(cache, mode="rewrite")
    assert len(cache) == 1  # nothing is cleared until the first request
    client = harness.client(transport, base_url=server.url)
    await client.get(f"/json?unique=rw-{harness.kind}")
    await client.get(f"/json?unique=rw-{harness.kind}")
    await client.aclose()
    assert [httpx.URL(e.url).path for e in cache.exchanges()] == ["/json", "/json"]
    assert hits_for(server, f"/json?unique=rw-{harness.kind}") == 2


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(tl.errors.InvalidRecordModeError) as info:
        tl.CaptureTransport(tl.MemoryCache(), mode="sometimes")
    assert str(info.value) == (
        "unknown record mode 'sometimes'; valid modes: once, new_episodes, none, all, rewrite"
    )
    assert isinstance(info.value, ValueError)


def test_rewrite_needs_a_clearable_store():
    class NoClear:
        def put(self, exchange):
            pass

        def get(self, request):
            return None

    with pytest.raises(TypeError, match=r"'rewrite' needs a store with clear\(\); NoClear"):
        tl.CaptureTransport(NoClear(), mode="rewrite")
    with pytest.raises(TypeError, match=r"'once' needs a store with len\(\); NoClear"):
        tl.CaptureTransport(NoClear(), mode="once")


def test_record_mode_accepts_enum_and_string():
    assert tl.transports.RecordMode.parse("new_episodes") is tl.transports.RecordMode.NEW_EPISODES
    assert (
        tl.transports.RecordMode.parse(tl.transports.RecordMode.ALL) is tl.transports.RecordMode.ALL
    )
    assert tl.CaptureTransport(tl.MemoryCache(), mode="all").mode == "all"
