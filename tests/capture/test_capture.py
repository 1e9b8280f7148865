"""tl.capture(): every httpx client in a block records and replays, against real loopback servers."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import httpx
import pytest
import requests.adapters

import traffic_lab as tl
from traffic_lab.errors import UnmatchedRequestError
from traffic_lab.testing import LoopbackServer

ORIGINALS = {
    (httpx.Client, "_transport_for_url"): httpx.Client.__dict__["_transport_for_url"],
    (httpx.AsyncClient, "_transport_for_url"): httpx.AsyncClient.__dict__["_transport_for_url"],
    (requests.adapters.HTTPAdapter, "send"): requests.adapters.HTTPAdapter.__dict__["send"],
}


def seeds(cache):
    return sorted(httpx.URL(e.url).params["seed"] for e in cache.exchanges())


def assert_restored():
    for (owner, name), original in ORIGINALS.items():
        assert owner.__dict__[name] is original


def test_record_then_replay_with_the_server_stopped(tmp_path):
    target = tmp_path / "cap"
    with LoopbackServer() as server:
        client = httpx.Client(base_url=server.url)  # built before the block
        with tl.capture(target) as live:
            first = client.get("/json?size=64&seed=3")
            gz = client.get("/gzip?size=512")
        assert len(server.hits) == 2
    assert_restored()
    assert live.report == tl.transports.capturing.CaptureReport(
        2, 0, 0, str(target), "new_episodes"
    )
    with tl.capture(target, mode="none") as replay:
        again = client.get("/json?size=64&seed=3")
        gz_again = client.get("/gzip?size=512")
    client.close()
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.extensions["traffic_lab.from_cache"] is True
    assert gz_again.headers["content-encoding"] == "gzip"
    assert gz_again.json() == gz.json()
    assert (replay.recorded, replay.replayed, replay.missed) == (0, 2, 0)
    assert tl.read_capture(target)["request_url"].str.endswith("seed=3").sum() == 1


def test_async_clients_record_and_replay(tmp_path):
    cache = tl.MemoryCache()

    async def fetch(url):
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
            return response.json()

    with LoopbackServer() as server:
        url = server.url + "/json?size=80"
        with tl.capture(cache):
            live = asyncio.run(fetch(url))
    with tl.capture(cache, mode="none") as replay:
        assert asyncio.run(fetch(url)) == live
    assert replay.replayed == 1 and len(cache) == 1


def test_async_with_block(server):
    cache = tl.MemoryCache()

    async def main():
        async with tl.capture(cache) as block, httpx.AsyncClient() as client:
            await client.get(server.url + "/json?size=16")
        return block

    assert asyncio.run(main()).recorded == 1
    assert_restored()


def test_streamed_response_is_recorded_whole_and_replayed(tmp_path, server):
    cache = tl.MemoryCache()
    url = server.url + "/stream?chunks=4&size=10"
    with tl.capture(cache), httpx.Client() as client, client.stream("GET", url) as response:
        live = b"".join(response.iter_bytes())
    with (
        tl.capture(cache, mode="none"),
        httpx.Client() as client,
        client.stream("GET", url) as response,
    ):
        replayed = b"".join(response.iter_bytes())
    assert replayed == live == b"0000000000" + b"0001000100" + b"0002000200" + b"0003000300"


def test_redirects_auth_and_event_hooks_behave_as_live(server):
    cache = tl.MemoryCache()
    seen: list[str] = []
    hooks = {"request": [lambda r: seen.append(str(r.url.path))]}

    def run():
        with httpx.Client(
            base_url=server.url, follow_redirects=True, auth=("ada", "pw"), event_hooks=hooks
        ) as client:
            response = client.get("/redirect/2")
            return response, [str(r.url.path) for r in response.history]

    with tl.capture(cache):
        live, live_history = run()
    with tl.capture(cache, mode="none"):
        replayed, replayed_history = run()
    assert live_history == replayed_history == ["/redirect/2", "/redirect/1"]
    assert replayed.json() == live.json()
    assert seen == ["/redirect/2", "/redirect/1", "/json"] * 2
    assert len(cache) == 3  # one exchange per hop
    # The Authorization header went to the server, and was redacted before storage.
    stored = next(iter(cache.exchanges()))
    assert (
        dict(stored.request.headers)["authorization"] != httpx.BasicAuth("ada", "pw")._auth_header
    )


def test_mode_none_lets_nothing_through_and_names_the_nearest(server):
    cache = tl.MemoryCache()
    with tl.capture(cache), httpx.Client() as client:
        client.get(server.url + "/json?size=10")
    hits = len(server.hits)
    with (
        tl.capture(cache, mode="none") as block,
        httpx.Client() as client,
        pytest.raises(UnmatchedRequestError) as info,
    ):
        client.get(server.url + "/json?size=11")
    assert len(server.hits) == hits
    assert block.missed == 1
    assert f"GET {server.url}/json?size=10" in str(info.value)
    assert "nearest recorded requests" in str(info.value)


def test_a_mocked_transport_is_wrapped_too_in_mode_none():
    cache = tl.MemoryCache()
    called = []
    mock = httpx.MockTransport(lambda r: called.append(r) or httpx.Response(200))
    with (
        tl.capture(cache, mode="none"),
        httpx.Client(transport=mock) as client,
        pytest.raises(UnmatchedRequestError),
    ):
        client.get("https://api.example/x")
    assert called == []


def test_a_recorded_connection_error_is_raised_again_on_replay(server):
    cache = tl.MemoryCache()
    with (
        tl.capture(cache) as live,
        httpx.Client() as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(server.url + "/close")
    assert live.recorded == 1
    with (
        tl.capture(cache, mode="none") as replay,
        httpx.Client() as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(server.url + "/close")
    assert (replay.replayed, replay.missed) == (1, 0)


def test_clients_with_a_traffic_lab_transport_are_not_recorded_twice(server):
    own, outer = tl.MemoryStream(), tl.MemoryCache()
    with tl.capture(outer) as block, httpx.Client(transport=tl.RecordingTransport(own)) as client:
        client.get(server.url + "/json?size=8")

        async def fetch():
            async with httpx.AsyncClient(transport=tl.AsyncRecordingTransport(own)) as client:
                await client.get(server.url + "/json?size=9")

        asyncio.run(fetch())
    assert (len(own), len(outer), block.recorded) == (2, 0, 0)


def test_the_patch_is_restored_after_an_exception_and_when_nested():
    assert_restored()
    outer, inner = tl.MemoryCache(), tl.MemoryCache()
    with pytest.raises(KeyError), tl.capture(outer), tl.capture(inner):
        assert (
            httpx.Client.__dict__["_transport_for_url"]
            is not ORIGINALS[(httpx.Client, "_transport_for_url")]
        )
        raise KeyError("boom")
    assert_restored()


def test_nesting_the_inner_capture_wins(server):
    outer, inner = tl.MemoryCache(), tl.MemoryCache()
    with tl.capture(outer), httpx.Client(base_url=server.url) as client:
        client.get("/json?size=1")
        with tl.capture(inner):
            client.get("/json?size=2")
        client.get("/json?size=3")
    assert sorted(e.url[-1] for e in outer.exchanges()) == ["1", "3"]
    assert [e.url[-1] for e in inner.exchanges()] == ["2"]


def test_two_asyncio_tasks_never_mix(server):
    a, b = tl.MemoryCache(), tl.MemoryCache()

    async def task(cache, seeds):
        async with httpx.AsyncClient(base_url=server.url) as client:
            with tl.capture(cache):
                for seed in seeds:
                    await client.get(f"/json?size=8&seed={seed}&ms=5")
                    await asyncio.sleep(0)

    async def main():
        await asyncio.gather(task(a, [1, 2, 3]), task(b, [4, 5, 6]))

    asyncio.run(main())
    assert (seeds(a), seeds(b)) == (["1", "2", "3"], ["4", "5", "6"])
    assert_restored()


def test_two_threads_never_mix_and_an_uncaptured_thread_stays_live(server):
    a, b = tl.MemoryCache(), tl.MemoryCache()
    client = httpx.Client(base_url=server.url)  # one client shared by all threads
    barrier = threading.Barrier(3)

    def worker(cache, seeds):
        barrier.wait()
        with tl.capture(cache):
            for seed in seeds:
                client.get(f"/json?size=8&seed={seed}&ms=5")

    def bystander():
        barrier.wait()
        for seed in (7, 8, 9):
            client.get(f"/json?size=8&seed={seed}&ms=5")

    threads = [
        threading.Thread(target=worker, args=(a, [1, 2, 3])),
        threading.Thread(target=worker, args=(b, [4, 5, 6])),
        threading.Thread(target=bystander),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert (seeds(a), seeds(b)) == (["1", "2", "3"], ["4", "5", "6"])
    assert_restored()


def test_threads_started_inside_do_not_inherit_unless_given_the_context(server):
    cache = tl.MemoryCache()
    with tl.capture(cache), httpx.Client(base_url=server.url) as client:
        plain = threading.Thread(target=client.get, args=("/json?size=5",))
        plain.start()
        plain.join()
        carried = threading.Thread(
            target=contextvars.copy_context().run, args=(client.get, "/json?size=6")
        )
        carried.start()
        carried.join()
    assert [e.url[-6:] for e in cache.exchanges()] == ["size=6"]


def test_process_scope_covers_other_threads_and_no_capture_opts_out(server):
    cache = tl.MemoryCache()
    with tl.capture(cache, scope="process"), httpx.Client(base_url=server.url) as client:
        thread = threading.Thread(target=client.get, args=("/json?size=5",))
        thread.start()
        thread.join()
        with tl.no_capture():
            client.get("/json?size=6")
    assert [e.url[-6:] for e in cache.exchanges()] == ["size=5"]
    assert_restored()


def test_rewrite_clears_once_for_sync_and_async_clients(server):
    cache = tl.MemoryCache()
    with tl.capture(cache), httpx.Client() as client:
        client.get(server.url + "/json?size=1")
    with tl.capture(cache, mode="rewrite"), httpx.Client() as client:
        client.get(server.url + "/json?size=2")

        async def fetch():
            async with httpx.AsyncClient() as aclient:
                await aclient.get(server.url + "/json?size=3")

        asyncio.run(fetch())
    assert sorted(e.url[-1] for e in cache.exchanges()) == ["2", "3"]


def test_once_and_all_modes(server):
    cache = tl.MemoryCache()
    url = server.url + "/json?size=4"
    with tl.capture(cache, mode="once") as first, httpx.Client() as client:
        client.get(url)
        client.get(url)
    assert (first.effective_mode, first.recorded, first.replayed) == ("new_episodes", 1, 1)
    with tl.capture(cache, mode="once") as second, httpx.Client() as client:
        assert second.effective_mode == "none"
        with pytest.raises(UnmatchedRequestError):
            client.get(url + "1")
    hits = len(server.hits)
    with tl.capture(cache, mode="all") as third, httpx.Client() as client:
        client.get(url)
    assert (third.recorded, len(server.hits) - hits) == (1, 1)


def test_tags_matcher_and_report_as_a_log_line(tmp_path, server, caplog):
    target = tmp_path / "c"
    matcher = tl.Matcher(ignore_query=["seed"])
    with caplog.at_level(logging.INFO, logger="traffic_lab.capture"):
        with tl.capture(target, matcher=matcher, tags={"run": "a"}), httpx.Client() as client:
            client.get(server.url + "/json?size=3&seed=1")
        with tl.capture(target, "none", matcher=matcher) as replay, httpx.Client() as client:
            client.get(server.url + "/json?size=3&seed=2")
    assert replay.replayed == 1
    assert caplog.messages == [
        f"traffic_lab: 1 recorded, 0 replayed, 0 missed ({target}, mode new_episodes)",
        f"traffic_lab: 0 recorded, 1 replayed, 0 missed ({target}, mode none)",
    ]
    assert tl.read_capture(target)["tags"].tolist() == [[("run", "a")]]


def test_a_store_with_a_matcher_argument_and_reuse_are_refused():
    with pytest.raises(TypeError, match="matcher= applies to a capture path"):
        tl.capture(tl.MemoryCache(), matcher=tl.Matcher())
    block = tl.capture(tl.MemoryCache())
    with block:
        pass
    with pytest.raises(RuntimeError, match="runs once"), block:
        pass
    assert_restored()


def test_an_event_stream_closed_at_an_event_boundary_is_recorded_complete():
    from traffic_lab.demo import DemoAPI

    cache = tl.MemoryCache()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with DemoAPI(slowness=0) as api, tl.capture(cache), httpx.Client(base_url=api.url) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            for line in lines:  # stop at [DONE], as the SDKs do, before the end of the body
                if line == "data: [DONE]":
                    break
        with client.stream("GET", "/api/orders") as response:
            next(response.iter_raw(7))  # not an event stream: closed early, truncated
    complete, cut = cache.exchanges()
    assert (complete.truncated, cut.truncated) == (False, True)
    assert complete.response_body.endswith(b"data: [DONE]\n\n")
