"""requests: the adapters mounted by hand, and tl.capture() covering Session and requests.get."""

from __future__ import annotations

import gzip
import json
import time

import pytest
import requests

import traffic_lab as tl
from traffic_lab.errors import UnmatchedRequestError
from traffic_lab.testing import LoopbackServer, free_port, sample_json


def session_with(adapter):
    session = requests.Session()
    session.mount("http://", adapter)
    return session


def test_caching_adapter_records_then_replays_with_the_server_stopped():
    cache = tl.MemoryCache()
    with LoopbackServer() as server, session_with(tl.CachingAdapter(cache)) as session:
        url = server.url
        live = session.get(url + "/json?size=128&seed=2")
        gz = session.get(url + "/gzip?size=300")
        posted = session.post(url + "/echo", json={"a": 1})
        assert len(server.hits) == 3
    with session_with(tl.CachingAdapter(cache, mode="none")) as session:
        again = session.get(url + "/json?size=128&seed=2")
        gz_again = session.get(url + "/gzip?size=300")
        posted_again = session.post(url + "/echo", json={"a": 1})
        with pytest.raises(UnmatchedRequestError, match="nearest recorded requests"):
            session.post(url + "/echo", json={"a": 2})
    assert again.json() == live.json() == sample_json(128, 2)
    assert (again.status_code, again.reason, again.url) == (200, "OK", live.url)
    assert again.headers["Content-Type"] == "application/json"
    assert gz_again.headers["Content-Encoding"] == "gzip"
    assert gz_again.json() == gz.json() == sample_json(300)
    assert gz_again.raw.read(decode_content=False) == b""  # already read by .json()
    assert posted_again.json() == posted.json()
    assert json.loads(__import__("base64").b64decode(posted.json()["body"])) == {"a": 1}
    # Wire bytes stored: the gzip body stays gzip.
    stored = {e.url.rsplit("/", 1)[-1]: e for e in cache.exchanges()}
    assert (
        gzip.decompress(stored["gzip?size=300"].response_body)
        == json.dumps(sample_json(300)).encode()
    )


def test_recording_adapter_streams_and_records_when_consumed(server):
    stream = tl.MemoryStream()
    with session_with(tl.RecordingAdapter(stream, tags={"via": "requests"})) as session:
        response = session.get(server.url + "/stream?chunks=3&size=8", stream=True)
        assert len(stream) == 0  # nothing read yet
        chunks = list(response.iter_content(chunk_size=4))
        assert b"".join(chunks) == b"00000000" + b"00010001" + b"00020002"
        assert len(stream) == 1
        exchange = next(iter(stream.exchanges()))
        assert exchange.response_body == b"".join(chunks)
        assert (exchange.truncated, dict(exchange.tags)) == (False, {"via": "requests"})


def test_a_stream_closed_early_is_recorded_truncated_and_never_served(server):
    cache = tl.MemoryCache()
    url = server.url + "/stream?chunks=50&size=1000"
    with session_with(tl.CachingAdapter(cache)) as session:
        response = session.get(url, stream=True)
        next(response.iter_content(chunk_size=10))
        response.close()
    (exchange,) = cache.exchanges()
    assert exchange.truncated
    with (
        session_with(tl.CachingAdapter(cache, mode="none")) as session,
        pytest.raises(UnmatchedRequestError),
    ):
        session.get(url)


def test_redirects_are_one_exchange_per_hop_and_replay(server):
    cache = tl.MemoryCache()
    with session_with(tl.CachingAdapter(cache)) as session:
        live = session.get(server.url + "/redirect/2")
    with session_with(tl.CachingAdapter(cache, mode="none")) as session:
        replayed = session.get(server.url + "/redirect/2")
    assert [r.status_code for r in replayed.history] == [302, 302]
    assert [r.url for r in replayed.history] == [r.url for r in live.history]
    assert replayed.json() == live.json()
    assert len(cache) == 3


def test_a_connection_error_is_recorded_and_raised_again_as_the_same_class():
    cache = tl.MemoryCache()
    url = f"http://127.0.0.1:{free_port()}/nothing-listens"
    with (
        session_with(tl.CachingAdapter(cache)) as session,
        pytest.raises(requests.exceptions.ConnectionError) as live,
    ):
        session.get(url)
    (exchange,) = cache.exchanges()
    assert exchange.error.type == "requests.exceptions.ConnectionError"
    with (
        session_with(tl.CachingAdapter(cache, mode="none")) as session,
        pytest.raises(requests.exceptions.ConnectionError) as replayed,
    ):
        session.get(url)
    assert type(replayed.value) is type(live.value)
    assert str(replayed.value) == str(live.value)


def test_capture_covers_sessions_and_module_level_calls(tmp_path):
    target = tmp_path / "cap"
    with LoopbackServer() as server:
        url = server.url
        session = requests.Session()  # built before the block
        with tl.capture(target) as live:
            a = session.get(url + "/json?size=32")
            b = requests.get(url + "/headers")
            c = requests.get(url + "/status/404")
        assert len(server.hits) == 3
    assert live.recorded == 3
    with tl.capture(target, mode="none") as replay:
        a2 = session.get(url + "/json?size=32")
        b2 = requests.get(url + "/headers")
        c2 = requests.get(url + "/status/404")
    assert (replay.replayed, replay.recorded) == (3, 0)
    assert a2.json() == a.json()
    assert b2.headers["X-Dup"] == b.headers["X-Dup"] == "first, second"
    # Set-Cookie is redacted before storage (by default): the replay never hands out the values.
    assert b.cookies.get_dict() == {"a": "1", "b": "2"}
    assert "a=1" not in b2.headers["Set-Cookie"] and "[REDACTED]" in b2.headers["Set-Cookie"]
    assert (c2.status_code, c2.json()) == (404, c.json())
    with pytest.raises(requests.HTTPError):
        c2.raise_for_status()
    assert requests.adapters.HTTPAdapter.send is tl.transports.requests_adapter._SEND


def test_mounted_adapters_are_not_recorded_twice_by_a_capture(server):
    own, outer = tl.MemoryStream(), tl.MemoryCache()
    with tl.capture(outer), session_with(tl.RecordingAdapter(own)) as session:
        session.get(server.url + "/json?size=8")
    assert (len(own), len(outer)) == (1, 0)


def test_a_streamed_body_is_recorded_with_its_chunks_and_replayed_at_its_pace():
    sse = "/stream?chunks=5&size=8&delay_ms=50&sse=1"
    cache = tl.MemoryCache()
    with LoopbackServer() as server:
        url = server.url + sse
        response = session_with(tl.RecordingAdapter(cache)).get(url, stream=True)
        live = b"".join(response.iter_content(chunk_size=None))
        response.close()
    [recorded] = list(cache.exchanges())
    assert [c.size for c in recorded.chunks] == [16] * 5
    span = recorded.chunks[-1].offset_us / 1e6
    with tl.capture(cache, mode="none", timing="recorded", report=False):
        start = time.perf_counter()
        replayed = requests.get(url, stream=True)
        body = b"".join(replayed.iter_content(chunk_size=None))
        took = time.perf_counter() - start
    assert body == live == recorded.response_body
    assert 0.8 * span <= took < 2 * span + 0.15
