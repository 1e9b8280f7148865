"""What ``Source.get()`` hands a caller is readable at once (``.json()``, ``.text``,
``.content``), as a notebook user expects; the transports still serve fresh, unread responses
that the client decodes as it would a live one."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

import traffic_lab as tl


def _gzip_exchange() -> tl.Exchange:
    body = gzip.compress(json.dumps({"id": 7, "name": "ada"}).encode())
    return tl.Exchange(
        "GET",
        "https://api.example/users/7",
        status_code=200,
        response_headers=[(b"Content-Type", b"application/json"), (b"Content-Encoding", b"gzip")],
        response_body=body,
    )


@pytest.fixture(params=["memory", "parquet"])
def cache(request, tmp_path):
    store = tl.MemoryCache() if request.param == "memory" else tl.ParquetCache(tmp_path / "cap")
    store.put(_gzip_exchange())
    yield store
    if request.param == "parquet":
        store.close()


def test_get_returns_a_response_that_reads_at_once(cache):
    request = httpx.Request("GET", "https://api.example/users/7")
    response = cache.get(request)
    assert response is not None
    assert response.json() == {"id": 7, "name": "ada"}
    assert response.text == '{"id": 7, "name": "ada"}'
    assert response.request is request
    response.raise_for_status()
    assert response.extensions["traffic_lab.from_cache"] is True
    assert cache.get(httpx.Request("GET", "https://api.example/users/8")) is None


def test_the_transport_serves_the_wire_bytes_for_the_client_to_decode(cache):
    transport = tl.CachingTransport(cache, httpx.MockTransport(_never))
    with (
        httpx.Client(transport=transport) as c,
        c.stream("GET", "https://api.example/users/7") as response,
    ):
        raw = b"".join(response.iter_raw())
    assert raw == _gzip_exchange().response_body
    assert response.headers["content-encoding"] == "gzip"


def test_an_undecodable_body_is_returned_unread_not_raised():
    cache = tl.MemoryCache()
    cache.put(_gzip_exchange().replace(response_body=b"not gzip at all"))
    response = cache.get(httpx.Request("GET", "https://api.example/users/7"))
    assert response is not None
    with pytest.raises(httpx.ResponseNotRead):
        _ = response.content
    assert b"".join(response.iter_raw()) == b"not gzip at all"


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"went live for {request.url}")
