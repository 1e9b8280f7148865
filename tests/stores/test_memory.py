"""The memory stores: redaction deferred off the request's path, never visible unredacted."""

from __future__ import annotations

import threading

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.protocols import DeferredRedaction
from traffic_lab.testing import make_exchange

SECRET_URL = "https://api.example/items?page=2&token=s3cr3t"


def live(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "abc123", "path": request.url.path})


def record(store, n=1, redactor=None):
    transport = tl.RecordingTransport(store, httpx.MockTransport(live), redactor=redactor)
    with httpx.Client(transport=transport) as client:
        for _ in range(n):
            client.get(SECRET_URL, headers={"Authorization": "Bearer s3cr3t"})


@pytest.mark.parametrize("store_type", [tl.MemoryStream, tl.MemoryCache])
def test_recording_queues_the_exchange_and_every_read_sees_it_redacted(store_type):
    store = store_type()
    assert isinstance(store, DeferredRedaction)
    record(store, n=2)
    assert len(store._pending) == 2  # the request's path did not redact ...
    assert len(store) == 2
    exchanges = list(store.exchanges())  # ... every read does, first
    assert not store._pending
    assert [e.url for e in exchanges] == [
        "https://api.example/items?page=2&token=%5BREDACTED%5D"
    ] * 2
    assert exchanges[0].request_headers[-1] == (b"Authorization", b"Bearer [REDACTED]")
    assert exchanges[0].response.json()["access_token"] == "[REDACTED]"


def test_each_reader_settles_the_queue_first():
    stream = tl.MemoryStream()
    record(stream)
    assert "s3cr3t" not in stream[0].url
    record(stream)
    assert [r.url.params["token"] for r in stream.requests()] == ["[REDACTED]"] * 2
    record(stream)
    assert "REDACTED" in repr(stream[-1].url) and len(stream) == 3

    cache = tl.MemoryCache()
    record(cache)
    request = httpx.Request("GET", SECRET_URL)
    assert request in cache  # the key of the redacted form, as before
    record(cache)
    assert cache.get(request).json() == {"access_token": "[REDACTED]", "path": "/items"}
    record(cache)
    assert len(cache.keys()) == 1 and len(cache) == 3


def test_puts_and_queued_puts_keep_their_order():
    stream = tl.MemoryStream()
    redactor = tl.Redactor()
    stream.put(make_exchange(url="https://a.example/1"))
    stream.put_redacting(make_exchange(url="https://a.example/2?token=x"), redactor)
    stream.put(make_exchange(url="https://a.example/3"))
    stream.put_redacting(make_exchange(url="https://a.example/4"), redactor)
    assert [e.url for e in stream.exchanges()] == [
        "https://a.example/1",
        "https://a.example/2?token=%5BREDACTED%5D",
        "https://a.example/3",
        "https://a.example/4",
    ]


def test_an_unstorable_exchange_is_refused_at_once_and_clear_drops_the_queue():
    stream = tl.MemoryStream()
    with pytest.raises(tl.errors.InvalidExchangeError, match="port"):
        stream.put_redacting(make_exchange(url="https://a.example:99999/"), tl.Redactor())
    record(stream)
    stream.clear()
    assert len(stream) == 0 and list(stream.exchanges()) == []


def test_a_redactor_with_steps_of_its_own_runs_on_the_request_path():
    seen = []

    def extra(exchange):
        seen.append(threading.current_thread().name)
        return exchange

    stream = tl.MemoryStream()
    record(stream, redactor=tl.Redactor(extra=extra))
    assert not stream._pending and len(seen) == 1  # applied at once, by the transport
    assert "s3cr3t" not in stream[0].url


def test_concurrent_recordings_and_reads_lose_nothing():
    stream = tl.MemoryStream()
    redactor = tl.Redactor()

    def put_many(t):
        for i in range(300):
            stream.put_redacting(make_exchange(url=f"https://a.example/{t}/{i}?token=x"), redactor)

    def read_many():
        for _ in range(50):
            assert all("token=x" not in e.url for e in stream.exchanges())

    threads = [threading.Thread(target=put_many, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=read_many) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    urls = [e.url for e in stream.exchanges()]
    assert len(urls) == len(set(urls)) == 1200
    for t in range(4):
        mine = [u for u in urls if u.startswith(f"https://a.example/{t}/")]
        assert mine == [f"https://a.example/{t}/{i}?token=%5BREDACTED%5D" for i in range(300)]
