"""tl.responder: answers from a Source by key, or from a Replay in order."""

from __future__ import annotations

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import make_exchange

pytestmark = pytest.mark.anyio


def filled_stream():
    stream = tl.MemoryStream()
    for i in range(3):
        stream.put(make_exchange("GET", f"https://api.example/items/{i}", json={"i": i}))
    return stream


async def test_replay_answers_in_recorded_order_then_503(harness):
    client = harness.client(harness.mock(tl.responder(filled_stream())))
    # The replay answers in order, whatever is asked (as http4k's Responder.from(replay)).
    bodies = [(await client.get(f"https://other.example/{n}")).json() for n in "abc"]
    exhausted = await client.get("https://api.example/items/0")
    await client.aclose()
    assert bodies == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert exhausted.status_code == 503
    assert exhausted.text == "no more traffic to replay"


async def test_source_answers_by_key_and_503_on_miss(harness):
    cache = tl.MemoryCache()
    for ex in filled_stream().exchanges():
        cache.put(ex)
    client = harness.client(harness.mock(tl.responder(cache)))
    hit = await client.get("https://api.example/items/2")
    again = await client.get("https://api.example/items/2")
    miss = await client.get("https://api.example/items/9")
    await client.aclose()
    assert hit.json() == again.json() == {"i": 2}
    assert hit.extensions[tl.exchange.FROM_CACHE] is True
    assert (miss.status_code, miss.text) == (503, "no more traffic to replay")


async def test_strict_source_miss_names_nearest_requests(harness):
    cache = tl.MemoryCache()
    for ex in filled_stream().exchanges():
        cache.put(ex)
    client = harness.client(harness.mock(tl.responder(cache, strict=True)))
    with pytest.raises(tl.errors.UnmatchedRequestError) as info:
        await client.post("https://api.example/items/1")
    await client.aclose()
    lines = str(info.value).splitlines()
    assert lines[0] == "no recorded exchange matches POST https://api.example/items/1"
    assert lines[1:4] == [
        "nearest recorded requests:",
        "  GET https://api.example/items/1",
        "    - method: 'GET' != 'POST'",
    ]
    assert [str(r.url) for r, _ in info.value.nearest] == [
        "https://api.example/items/1",
        "https://api.example/items/0",
        "https://api.example/items/2",
    ]


async def test_strict_replay_checks_each_request_and_exhaustion(harness):
    client = harness.client(harness.mock(tl.responder(filled_stream(), strict=True)))
    first = await client.get("https://api.example/items/0")
    with pytest.raises(tl.errors.UnmatchedRequestError) as info:
        await client.get("https://api.example/items/7")
    third = await client.get("https://api.example/items/2")
    with pytest.raises(
        tl.errors.ReplayExhaustedError, match="all 3 recorded responses were served"
    ):
        await client.get("https://api.example/items/3")
    await client.aclose()
    assert first.json() == {"i": 0}
    assert third.json() == {"i": 2}
    assert info.value.nearest[0][1] == ["path: '/items/1' != '/items/7'"]


async def test_replayed_error_exchange_raises_recorded_error(harness):
    stream = tl.MemoryStream()
    stream.put(
        make_exchange(
            "GET",
            "https://api.example/slow",
            status_code=None,
            error=tl.exchange.RecordedError("httpx.ReadTimeout", "timed out"),
        )
    )
    stream.put(make_exchange("GET", "https://api.example/ok", json={"ok": True}))
    client = harness.client(harness.mock(tl.responder(stream)))
    with pytest.raises(httpx.ReadTimeout, match="timed out"):
        await client.get("https://api.example/slow")
    ok = await client.get("https://api.example/ok")
    await client.aclose()
    assert ok.json() == {"ok": True}


def test_unknown_recorded_error_type_is_never_imported():
    error = tl.exchange.RecordedError("os.system", "rm -rf /")
    exc = error.to_exception()
    assert isinstance(exc, tl.errors.RecordedTransportError)
    assert str(exc) == "recorded os.system: rm -rf /"
    # Only httpx exception classes are looked up, by name.
    assert (
        type(tl.exchange.RecordedError("httpx.Client", "x").to_exception())
        is tl.errors.RecordedTransportError
    )


def test_responder_rejects_objects_that_are_neither_source_nor_replay():
    with pytest.raises(TypeError, match="needs a Source"):
        tl.responder(object())  # type: ignore[arg-type]
