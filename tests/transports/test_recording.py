"""RecordingTransport / AsyncRecordingTransport against a real loopback server."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random
import re
import threading
import zlib

import brotli
import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import free_port, sample_json

pytestmark = pytest.mark.anyio


async def record(harness, server, path, sink=None, **kwargs):
    sink = sink if sink is not None else tl.MemoryStream()
    client = harness.client(harness.recording(sink, **kwargs), base_url=server.url)
    try:
        response = await client.get(path)
    finally:
        await client.aclose()
    return sink, response


async def test_json_exchange_has_wire_parts(harness, server):
    stream, response = await record(harness, server, "/json?size=300&seed=4")
    [ex] = list(stream.exchanges())
    assert ex.method == "GET"
    assert ex.url == f"{server.url}/json?size=300&seed=4"
    assert ex.status_code == 200
    assert ex.reason_phrase == "OK"
    assert ex.http_version == "HTTP/1.1"
    assert ex.response_body == response.content
    assert json.loads(ex.response_body) == sample_json(300, 4)
    assert dict(ex.response_headers)[b"Content-Type"] == b"application/json"
    assert dict(ex.request_headers)[b"Host"] == server.url.removeprefix("http://").encode()
    assert ex.error is None and ex.truncated is False
    assert ex.started_at.tzinfo is not None
    assert ex.elapsed.total_seconds() > 0


@pytest.mark.parametrize(
    ("route", "encoding", "decode"),
    [
        ("/gzip", "gzip", gzip.decompress),
        ("/deflate", "deflate", zlib.decompress),
        ("/brotli", "br", brotli.decompress),
    ],
)
async def test_encoded_body_is_stored_as_wire_bytes_and_replays_identically(
    harness, server, route, encoding, decode
):
    stream, live = await record(harness, server, route)
    [ex] = list(stream.exchanges())
    assert dict(ex.response_headers)[b"Content-Encoding"] == encoding.encode()
    # Stored: the compressed wire bytes, not the decoded body.
    assert ex.response_body != live.content
    assert decode(ex.response_body) == live.content
    assert int(dict(ex.response_headers)[b"Content-Length"]) == len(ex.response_body)
    # Replayed: byte-identical on the wire, decoded by the client exactly as it was live.
    client = harness.client(harness.mock(tl.responder(stream)))
    replayed = await client.get(server.url + route)
    await client.aclose()
    assert replayed.content == live.content
    assert replayed.headers.raw == live.headers.raw
    assert replayed.extensions[tl.exchange.REPLAYED] is True


async def test_binary_one_mebibyte_body(harness, server):
    n = 1024 * 1024
    stream, live = await record(harness, server, f"/bytes?n={n}&seed=7")
    [ex] = list(stream.exchanges())
    expected = random.Random(7).randbytes(n)
    assert live.content == expected
    assert ex.response_body == expected
    assert len(ex.response_body) == n


async def test_request_body_and_headers_are_recorded(harness, server):
    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream), base_url=server.url)
    body = bytes(range(256))
    response = await client.post(
        "/echo?b=2&a=1",
        content=body,
        headers=[("X-Multi", "one"), ("X-Multi", "two"), ("Content-Type", "application/x-bin")],
    )
    await client.aclose()
    assert base64.b64decode(response.json()["body"]) == body
    [ex] = list(stream.exchanges())
    assert ex.method == "POST"
    assert ex.request_body == body
    names = [k for k, _ in ex.request_headers]
    multi = [v for k, v in ex.request_headers if k == b"X-Multi"]
    assert multi == [b"one", b"two"]
    assert names.index(b"X-Multi") < names.index(b"Content-Type")


async def test_duplicate_and_non_utf8_headers_keep_order(harness, server):
    stream, live = await record(harness, server, "/headers")
    [ex] = list(stream.exchanges())
    names = [k.lower() for k, _ in ex.response_headers]
    expected_order = [b"content-type", b"set-cookie", b"x-dup", b"set-cookie", b"x-dup", b"x-latin"]
    assert [n for n in names if n in set(expected_order)] == expected_order
    assert [v for k, v in ex.response_headers if k.lower() == b"x-dup"] == [b"first", b"second"]
    assert dict(ex.response_headers)[b"X-Latin"] == b"caf\xe9"
    # Set-Cookie values are redacted in the store; the live response kept them.
    assert live.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert [v for k, v in ex.response_headers if k.lower() == b"set-cookie"] == [
        b"a=[REDACTED]; Path=/",
        b"b=[REDACTED]; Path=/",
    ]
    assert ex.response.headers["x-latin"] == "café"


async def test_reason_phrase_and_http_version_round_trip(harness, server):
    stream, live = await record(harness, server, "/reason")
    [ex] = list(stream.exchanges())
    assert (ex.status_code, ex.reason_phrase) == (299, "Custom Reason")
    client = harness.client(harness.mock(tl.responder(stream)))
    replayed = await client.get("http://anything/")
    await client.aclose()
    assert replayed.reason_phrase == live.reason_phrase == "Custom Reason"
    assert replayed.http_version == "HTTP/1.1"


async def test_streamed_response_streams_and_is_recorded_once_consumed(harness, server):
    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream), base_url=server.url)
    body = await client.stream_read("/stream?chunks=6&size=10")
    await client.aclose()
    assert body == b"".join((f"{i:04d}" * 3)[:10].encode() for i in range(6))
    [ex] = list(stream.exchanges())
    assert ex.response_body == body
    assert ex.truncated is False
    assert dict(ex.response_headers)[b"Transfer-Encoding"] == b"chunked"


async def test_response_closed_early_is_recorded_truncated_and_never_served(harness, server):
    cache = tl.MemoryCache()
    client = harness.client(harness.recording(cache), base_url=server.url)
    partial = await client.stream_read("/stream?chunks=50&size=10&delay_ms=5", limit=20)
    await client.aclose()
    [ex] = list(cache.exchanges())
    assert ex.truncated is True
    assert ex.response_body == partial
    assert len(partial) == 20
    assert (
        cache.get(httpx.Request("GET", f"{server.url}/stream?chunks=50&size=10&delay_ms=5")) is None
    )


async def test_each_redirect_hop_is_its_own_exchange(harness, server):
    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream), base_url=server.url)
    response = await client.get("/redirect/3", follow_redirects=True)
    await client.aclose()
    assert response.status_code == 200
    got = [(httpx.URL(e.url).raw_path.decode(), e.status_code) for e in stream.exchanges()]
    assert got == [
        ("/redirect/3", 302),
        ("/redirect/2", 302),
        ("/redirect/1", 302),
        ("/json?size=64", 200),
    ]
    assert [dict(e.response_headers).get(b"Location") for e in stream.exchanges()] == [
        b"/redirect/2",
        b"/redirect/1",
        b"/json?size=64",
        None,
    ]


async def test_connection_refused_reaches_caller_and_is_recorded(harness):
    stream = tl.MemoryStream()
    url = f"http://127.0.0.1:{free_port()}/nothing-here"
    client = harness.client(harness.recording(stream))
    with pytest.raises(httpx.ConnectError) as info:
        await client.get(url)
    await client.aclose()
    [ex] = list(stream.exchanges())
    assert ex.status_code is None
    assert ex.error == tl.exchange.RecordedError("httpx.ConnectError", str(info.value))
    assert ex.url == url
    # A replay raises the recorded error again, with the same type.
    replayer = harness.client(harness.mock(tl.responder(stream)))
    with pytest.raises(httpx.ConnectError, match=re.escape(str(info.value))):
        await replayer.get(url)
    await replayer.aclose()
    with pytest.raises(httpx.ConnectError):
        list(stream.responses())


async def test_timeout_reaches_caller_and_is_recorded(harness, server):
    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream), base_url=server.url, timeout=0.05)
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/json?ms=500")
    await client.aclose()
    [ex] = list(stream.exchanges())
    assert ex.error is not None and ex.error.type == "httpx.ReadTimeout"
    assert 0.04 < ex.elapsed.total_seconds() < 0.5


async def test_server_hanging_up_is_recorded_as_protocol_error(harness, server):
    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream), base_url=server.url)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/close")
    await client.aclose()
    [ex] = list(stream.exchanges())
    assert ex.error == tl.exchange.RecordedError(
        "httpx.RemoteProtocolError", "Server disconnected without sending a response."
    )


async def test_redaction_before_storage_live_untouched(harness, server):
    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream), base_url=server.url)
    response = await client.post(
        "/echo?api_key=K123&page=2",
        json={"user": "ann", "password": "hunter2", "nested": {"access_token": "T0K"}},
        headers={"Authorization": "Bearer S3CRET", "Cookie": "sid=abc; theme=dark"},
    )
    await client.aclose()
    # The server received the real credentials.
    echoed = dict(response.json()["headers"])
    assert echoed["Authorization"] == "Bearer S3CRET"
    assert echoed["Cookie"] == "sid=abc; theme=dark"
    assert response.json()["query"] == "api_key=K123&page=2"
    # The store holds none of them.
    [ex] = list(stream.exchanges())
    assert ex.url == f"{server.url}/echo?api_key=%5BREDACTED%5D&page=2"
    headers = dict(ex.request_headers)
    assert headers[b"Authorization"] == b"Bearer [REDACTED]"
    assert headers[b"Cookie"] == b"sid=[REDACTED]; theme=[REDACTED]"
    assert json.loads(ex.request_body) == {
        "user": "ann",
        "password": "[REDACTED]",
        "nested": {"access_token": "[REDACTED]"},
    }
    assert int(headers[b"Content-Length"]) == len(ex.request_body)
    # The echoed response body carries the secrets too: it is a JSON document whose fields
    # are not secret-named, but the response headers list is, and the raw secret must not stay.
    for secret in (b"S3CRET", b"hunter2", b"T0K", b"K123"):
        assert secret not in ex.request_body + ex.url.encode() + repr(ex.request_headers).encode()


async def test_redaction_opt_out_stores_everything(harness, server):
    stream = tl.MemoryStream()
    transport = harness.recording(stream, redactor=tl.Redactor.disabled())
    client = harness.client(transport, base_url=server.url)
    await client.get("/json?token=abc", headers={"Authorization": "Bearer xyz"})
    await client.aclose()
    [ex] = list(stream.exchanges())
    assert ex.url.endswith("/json?token=abc")
    assert dict(ex.request_headers)[b"Authorization"] == b"Bearer xyz"


async def test_gzip_json_response_secret_fields_redacted_and_still_decodes(harness):
    token_doc = {"access_token": "AAA", "expires_in": 3600}
    body = gzip.compress(json.dumps(token_doc).encode())

    def handler(request):
        return httpx.Response(
            200,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            content=body,
        )

    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream, harness.mock(handler)))
    live = await client.post("https://auth.example/token", data={"client_secret": "CS"})
    await client.aclose()
    assert live.json() == token_doc
    [ex] = list(stream.exchanges())
    assert ex.request_body == b"client_secret=%5BREDACTED%5D"
    assert json.loads(gzip.decompress(ex.response_body)) == {
        "access_token": "[REDACTED]",
        "expires_in": 3600,
    }
    assert ex.response.json() == {"access_token": "[REDACTED]", "expires_in": 3600}


async def test_tags_are_stored(harness, server):
    stream, _ = await record(harness, server, "/json", tags={"session": "s1", "test": "t"})
    [ex] = list(stream.exchanges())
    assert dict(ex.tags) == {"session": "s1", "test": "t"}


async def test_mock_transport_responses_are_recorded(harness):
    def handler(request):
        return httpx.Response(201, json={"made": request.url.path})

    stream = tl.MemoryStream()
    client = harness.client(harness.recording(stream, harness.mock(handler)))
    response = await client.post("https://api.example/things", json={"a": 1})
    await client.aclose()
    assert response.json() == {"made": "/things"}
    [ex] = list(stream.exchanges())
    assert (ex.status_code, ex.response_body, ex.request_body) == (
        201,
        b'{"made":"/things"}',
        b'{"a":1}',
    )


def test_eight_threads_record_without_loss_or_mixups(server):
    stream = tl.MemoryStream()
    transport = tl.RecordingTransport(stream)
    per_thread = 50
    errors = []

    client = httpx.Client(transport=transport, base_url=server.url)

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                r = client.post(f"/echo?t={t}&i={i}", content=f"{t}:{i}".encode())
                assert r.status_code == 200
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    client.close()
    assert errors == []
    exchanges = list(stream.exchanges())
    assert len(exchanges) == 8 * per_thread
    seen = set()
    for ex in exchanges:
        query = httpx.URL(ex.url).params
        t, i = query["t"], query["i"]
        # Request and response belong together: the echo carries the request's own body.
        assert ex.request_body == f"{t}:{i}".encode()
        assert base64.b64decode(json.loads(ex.response_body)["body"]) == ex.request_body
        seen.add((t, i))
    assert len(seen) == 8 * per_thread


async def test_hundred_asyncio_tasks_record_without_loss_or_mixups(server):
    stream = tl.MemoryStream()
    async with httpx.AsyncClient(
        transport=tl.AsyncRecordingTransport(stream), base_url=server.url
    ) as client:

        async def one(i: int) -> None:
            r = await client.post(f"/echo?i={i}", content=str(i).encode())
            assert base64.b64decode(r.json()["body"]) == str(i).encode()

        await asyncio.gather(*(one(i) for i in range(100)))
    exchanges = list(stream.exchanges())
    assert len(exchanges) == 100
    assert sorted(int(e.request_body) for e in exchanges) == list(range(100))
    for ex in exchanges:
        assert httpx.URL(ex.url).params["i"] == ex.request_body.decode()
        assert base64.b64decode(json.loads(ex.response_body)["body"]) == ex.request_body
