"""The requester (replay_requests / areplay_requests) and the response diff helper."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import LoopbackServer, free_port, make_exchange

pytestmark = pytest.mark.anyio


def record_some(server, n=6):
    stream = tl.MemoryStream()
    with httpx.Client(transport=tl.RecordingTransport(stream), base_url=server.url) as client:
        for i in range(n):
            client.post(f"/echo?i={i}", content=f"body-{i}".encode())
    return stream


def test_replay_to_another_server_pairs_recorded_and_live(server):
    stream = record_some(server)
    with LoopbackServer() as other, httpx.Client() as client:
        results = list(tl.transports.replay_requests(stream, client, base_url=other.url))
        assert [p for _, p in other.hits] == [f"/echo?i={i}" for i in range(6)]
    assert [r.recorded.request_body for r in results] == [f"body-{i}".encode() for i in range(6)]
    for r in results:
        assert r.error is None
        assert r.response.status_code == 200
        assert base64.b64decode(r.response.json()["body"]) == r.recorded.request_body
        # Same method, path and body; only the Host header (a different port) differs.
        diff = r.diff()
        assert diff.status is None and diff.headers == []
        assert [path for path, _, _ in diff.json] == ["$.headers[0][1]"]


async def test_async_replay_with_concurrency_keeps_recorded_order(server):
    stream = record_some(server, n=10)
    with LoopbackServer() as other:
        async with httpx.AsyncClient() as client:
            results = [
                r
                async for r in tl.transports.areplay_requests(
                    stream, client, base_url=other.url, concurrency=4
                )
            ]
        assert sorted(p for _, p in other.hits) == sorted(f"/echo?i={i}" for i in range(10))
    assert [r.recorded.request_body for r in results] == [f"body-{i}".encode() for i in range(10)]
    assert all(r.response.status_code == 200 for r in results)


def test_threaded_replay_with_concurrency_and_rate(server):
    stream = record_some(server, n=6)
    with httpx.Client(base_url=server.url) as client:
        start = time.monotonic()
        results = list(tl.transports.replay_requests(stream, client, concurrency=3, rate=20))
        took = time.monotonic() - start
    # Six starts spaced 50 ms apart cannot finish in under 250 ms.
    assert took >= 0.25
    assert [r.recorded.request_body for r in results] == [f"body-{i}".encode() for i in range(6)]


def test_transport_errors_are_reported_not_raised():
    stream = tl.MemoryStream()
    stream.put(make_exchange("GET", "https://api.example/a"))
    with httpx.Client() as client:
        [result] = tl.transports.replay_requests(
            stream, client, base_url=f"http://127.0.0.1:{free_port()}"
        )
    assert result.response is None
    assert isinstance(result.error, httpx.ConnectError)
    with pytest.raises(ValueError, match="no live response to compare"):
        result.diff()


def test_redacted_headers_are_dropped_so_client_credentials_apply(server):
    stream = tl.MemoryStream()
    stream.put(
        make_exchange(
            "GET",
            "https://api.example/echo",
            request_headers=[("Authorization", "Bearer [REDACTED]"), ("X-Keep", "yes")],
        )
    )
    with httpx.Client(headers={"Authorization": "Bearer live-token"}) as client:
        [result] = tl.transports.replay_requests(stream, client, base_url=server.url)
    echoed = dict(result.response.json()["headers"])
    assert echoed["Authorization"] == "Bearer live-token"
    assert echoed["X-Keep"] == "yes"


def test_invalid_concurrency_and_rate():
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        list(tl.transports.replay_requests([], httpx.Client(), concurrency=0))
    with pytest.raises(ValueError, match="rate must be positive"):
        list(tl.transports.replay_requests([], httpx.Client(), rate=0))


def test_diff_reports_status_headers_and_json_paths():
    old = httpx.Response(
        200,
        headers=[("Content-Type", "application/json"), ("X-Version", "1"), ("Date", "a")],
        content=json.dumps({"id": 1, "tags": ["a", "b"], "owner": {"name": "x"}}).encode(),
    )
    new = httpx.Response(
        201,
        headers=[("Content-Type", "application/json"), ("X-Version", "2"), ("Date", "b")],
        content=json.dumps({"id": 1, "tags": ["a"], "owner": {"name": "y"}, "new": 0}).encode(),
    )
    diff = tl.transports.diff_responses(old, new)
    assert diff.status == (200, 201)
    assert diff.headers == [("x-version", ["1"], ["2"])]
    assert diff.json == [
        ("$.new", "<missing>", 0),
        ("$.owner.name", "x", "y"),
        ("$.tags[1]", "b", "<missing>"),
    ]
    assert str(diff).splitlines() == [
        "status: 200 -> 201",
        "header x-version: ['1'] -> ['2']",
        "json $.new: '<missing>' -> 0",
        "json $.owner.name: 'x' -> 'y'",
        "json $.tags[1]: 'b' -> '<missing>'",
    ]
    same = tl.transports.diff_responses(
        old, httpx.Response(200, headers=old.headers, content=old.content)
    )
    assert not same and str(same) == "no differences"


def test_diff_of_binary_bodies_and_type_changes():
    a = httpx.Response(200, content=b"\x00\x01")
    b = httpx.Response(200, content=b"\x00\x02")
    assert tl.transports.diff_responses(a, b).body is True
    j1 = httpx.Response(200, json={"n": 1})
    j2 = httpx.Response(200, json={"n": "1"})
    assert tl.transports.diff_responses(j1, j2).json == [("$.n", 1, "1")]


def _slow_first_handler(started: list[tuple[str, float]], t0: float):
    import anyio

    async def handler(request: httpx.Request) -> httpx.Response:
        started.append((request.url.path, time.monotonic() - t0))
        if request.url.path == "/slow":
            await anyio.sleep(0.5)
        return httpx.Response(200, text=request.url.path)

    return handler


def _stream_of(paths):
    stream = tl.MemoryStream()
    for path in paths:
        stream.put(make_exchange("GET", f"https://api.example{path}"))
    return stream


async def test_async_replay_window_refills_while_a_slow_request_runs():
    started: list[tuple[str, float]] = []
    # Up to 2 x concurrency results may wait in order behind the oldest: four here.
    paths = ["/slow", *(f"/fast/{i}" for i in range(3))]
    transport = httpx.MockTransport(_slow_first_handler(started, time.monotonic()))
    async with httpx.AsyncClient(transport=transport) as client:
        results = [
            r
            async for r in tl.transports.areplay_requests(_stream_of(paths), client, concurrency=2)
        ]
    # Recorded order out, though /slow finished last ...
    assert [r.response.text for r in results] == paths
    # ... and the fast ones did not wait for it: the second slot kept going.
    assert [p for p, _ in started] == paths
    assert max(t for _, t in started) < 0.4


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_async_replay_under_trio_keeps_order_in_batches():
    started: list[tuple[str, float]] = []
    paths = ["/slow", *(f"/fast/{i}" for i in range(3))]
    transport = httpx.MockTransport(_slow_first_handler(started, time.monotonic()))
    async with httpx.AsyncClient(transport=transport) as client:
        results = [
            r
            async for r in tl.transports.areplay_requests(_stream_of(paths), client, concurrency=2)
        ]
    assert [r.response.text for r in results] == paths
    # Batches of two: /fast/1 starts once /slow (in the first batch) is done.
    assert dict(started)["/fast/1"] >= 0.5


async def test_async_replay_stopped_early_cancels_what_is_in_flight():
    import anyio

    running: set[str] = set()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/0":
            running.add(request.url.path)
            try:
                await anyio.sleep(30)
            finally:
                running.discard(request.url.path)
        return httpx.Response(200)

    stream = _stream_of([f"/{i}" for i in range(4)])
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        replay = tl.transports.areplay_requests(stream, client, concurrency=4)
        first = await replay.__anext__()
        assert first.recorded.url == "https://api.example/0" and running == {"/1", "/2", "/3"}
        await replay.aclose()
        await anyio.sleep(0)
    assert running == set()


def test_pacer_keeps_a_fixed_schedule(monkeypatch):
    from traffic_lab.transports import requester

    clock = [100.0]
    monkeypatch.setattr(requester.time, "monotonic", lambda: clock[0])
    pacer = requester._Pacer(10)  # a start every 100 ms
    assert [round(pacer.delay(), 3) for _ in range(3)] == [0.0, 0.1, 0.2]
    clock[0] = 100.25  # the fourth is due at 100.3
    assert round(pacer.delay(), 3) == 0.05
    clock[0] = 100.5  # late for the fifth (due 100.4): it goes now, the sixth stays due at 100.5
    assert (pacer.delay(), pacer.delay()) == (0.0, 0.0)
    clock[0] = 102.0  # more than a second behind: the schedule starts afresh, no burst
    assert [round(pacer.delay(), 3) for _ in range(2)] == [0.0, 0.1]


async def test_async_replay_raises_what_stops_a_request_being_built():
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as client:
        replay = tl.transports.areplay_requests(
            _stream_of(["/a", "/b", "/c"]), client, base_url="https://\x00/", concurrency=2
        )
        with pytest.raises(httpx.InvalidURL):
            [r async for r in replay]
