"""HAR import and export: a real mitmproxy HAR, browser-shaped HARs, exact round trips, errors."""

from __future__ import annotations

import base64
import doctest
import gzip
import json
import os
import random
import tempfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest

import traffic_lab as tl
from traffic_lab import interop
from traffic_lab.interop import har as har_module
from traffic_lab.interop import read_har, write_har
from traffic_lab.testing import make_exchange, sample_json
from traffic_lab.wire import decode_body, supports

# -- the HAR mitmproxy 11.0.2 wrote (data/interop/mitmproxy.har, see its README) ---------------
BASE = "http://127.0.0.1:44327"
REQUEST_HEADERS = (
    (b"Host", b"127.0.0.1:44327"),
    (b"Accept", b"*/*"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (b"Connection", b"keep-alive"),
    (b"User-Agent", b"python-httpx/0.28.1"),
)
COOKIE = ((b"Cookie", b"a=1; b=2"),)
SERVER = ((b"Server", b"BaseHTTP/0.6 Python/3.11.7"), (b"Date", b"Fri, 04 Dec 2026 07:35:32 GMT"))
JSON_TYPE = (b"Content-Type", b"application/json")


def _payload(size: int) -> bytes:
    return json.dumps(sample_json(size)).encode()


# (method, path, status, reason, response headers after Server/Date, response body)
MITMPROXY_ENTRIES: list[
    tuple[str, str, int, str, tuple[tuple[bytes, bytes], ...], bytes | None]
] = [
    ("GET", "/status/204", 204, "No Content", (JSON_TYPE,), b""),
    ("GET", "/json?size=200", 200, "OK", (JSON_TYPE, (b"Content-Length", b"236")), _payload(200)),
    (
        "GET",
        "/gzip?size=300",
        200,
        "OK",
        (JSON_TYPE, (b"Content-Encoding", b"gzip"), (b"Content-Length", b"161")),
        gzip.compress(_payload(300), mtime=0),
    ),
    (
        "GET",
        "/bytes?n=64&seed=7",
        200,
        "OK",
        ((b"Content-Type", b"application/octet-stream"), (b"Content-Length", b"64")),
        random.Random(7).randbytes(64),
    ),
    (
        "GET",
        "/headers",
        200,
        "OK",
        (
            (b"Content-Type", b"text/plain"),
            (b"Set-Cookie", b"a=1; Path=/"),
            (b"X-Dup", b"first"),
            (b"Set-Cookie", b"b=2; Path=/"),
            (b"X-Dup", b"second"),
            (b"X-Latin", b"caf\xe9"),
            (b"Content-Length", b"3"),
        ),
        b"dup",
    ),
    (
        "GET",
        "/status/404",
        404,
        "Not Found",
        (JSON_TYPE, (b"Content-Length", b"15")),
        b'{"status": 404}',
    ),
    ("GET", "/reason", 299, "Custom Reason", ((b"Content-Length", b"2"),), b"ok"),
    ("POST", "/echo?x=1", 200, "OK", (JSON_TYPE, (b"Content-Length", b"361")), None),
    ("PUT", "/echo", 200, "OK", (JSON_TYPE, (b"Content-Length", b"362")), None),
    (
        "GET",
        "/redirect/1",
        302,
        "Found",
        ((b"Location", b"/json?size=64"), (b"Content-Length", b"0")),
        b"",
    ),
    (
        "GET",
        "/stream?chunks=3&size=8",
        200,
        "OK",
        ((b"Content-Type", b"text/plain"), (b"Transfer-Encoding", b"chunked")),
        b"000000000001000100020002",
    ),
    ("POST", "/echo?binary=1", 200, "OK", (JSON_TYPE, (b"Content-Length", b"22193")), None),
]
# The body of that POST, as make_mitmproxy_har.py sends it.
BINARY_BODY = random.Random(16384).randbytes(16384)


@pytest.fixture
def mitmproxy_har(data_dir: Path) -> Path:
    return data_dir / "mitmproxy.har"


def assert_same(got: tl.Exchange, expected: tl.Exchange) -> None:
    """Field by field, so a failure names the field."""
    for name in tl.Exchange._FIELDS:
        assert (name, getattr(got, name)) == (name, getattr(expected, name))


def test_mitmproxy_har_entries_are_read_exactly(mitmproxy_har: Path) -> None:
    exchanges = read_har(mitmproxy_har)

    assert len(exchanges) == 13
    for exchange, (method, path, status, reason, headers, body) in zip(
        exchanges, MITMPROXY_ENTRIES, strict=False
    ):
        assert exchange.method == method
        assert exchange.url == BASE + path
        assert exchange.status_code == status
        assert exchange.reason_phrase == reason
        assert exchange.http_version == "HTTP/1.1"
        assert exchange.response_headers == SERVER + headers
        if body is not None:
            assert exchange.response_body == body
        assert exchange.error is None
        assert exchange.truncated is False
    assert [e.request_headers for e in exchanges[:5]] == [REQUEST_HEADERS] * 5
    assert exchanges[8].request_headers == REQUEST_HEADERS + COOKIE + (
        (b"Content-Length", b"15"),
        (b"Content-Type", b"application/x-www-form-urlencoded"),
    )


def test_mitmproxy_har_times_and_timings(mitmproxy_har: Path) -> None:
    first, *_, last = read_har(mitmproxy_har)

    assert first.started_at == datetime(2026, 12, 4, 7, 35, 32, 415567, tzinfo=UTC)
    assert first.elapsed == timedelta(milliseconds=2.622842788696289)
    assert first.elapsed == timedelta(microseconds=2623)
    assert dict(first.tags) == {
        "har.timings": '{"connect":0.2486705780029297,"ssl":-1.0,"send":0.45990943908691406,'
        '"receive":0.308990478515625,"wait":1.6052722930908203}'
    }
    assert last.started_at == datetime(2026, 12, 4, 7, 35, 32, 500711, tzinfo=UTC)
    assert last.elapsed == timedelta(microseconds=316)


def test_mitmproxy_gzip_entry_is_re_encoded_consistently(mitmproxy_har: Path) -> None:
    exchange = read_har(mitmproxy_har)[2]

    # The HAR holds the decoded JSON; the exchange holds it gzip-encoded again, so its
    # Content-Encoding and Content-Length headers still describe its body.
    assert exchange.response_body == gzip.compress(_payload(300), mtime=0)
    assert len(exchange.response_body) == 161
    assert exchange.response is not None
    assert exchange.response.content == _payload(300)
    assert exchange.response.json() == sample_json(300)


def test_mitmproxy_request_bodies(mitmproxy_har: Path) -> None:
    exchanges = read_har(mitmproxy_har)

    post, put = exchanges[7], exchanges[8]
    assert post.request_body == b'{"name":"traffic","n":3}'
    assert put.request_body == b"a=1&b=two+words"
    assert post.response is not None
    echoed = post.response.json()
    assert (echoed["method"], echoed["query"]) == ("POST", "x=1")
    assert base64.b64decode(echoed["body"]) == post.request_body
    assert [e.request_body for e in exchanges if e.method == "GET"] == [b""] * 10


def test_mitmproxy_binary_body_is_read_byte_for_byte(mitmproxy_har: Path) -> None:
    # mitmproxy wrote the 16,384 bytes as postData.text, one character per byte, no encoding;
    # read as UTF-8 they would be 24,585 bytes. bodySize and Content-Length say 16,384.
    entry = json.loads(mitmproxy_har.read_text())["log"]["entries"][11]
    assert "encoding" not in entry["request"]["postData"]
    assert len(entry["request"]["postData"]["text"]) == entry["request"]["bodySize"] == 16384

    exchange = read_har(mitmproxy_har)[11]

    assert len(exchange.request_body) == 16384
    assert exchange.request_body == BINARY_BODY
    assert exchange.response is not None
    assert base64.b64decode(exchange.response.json()["body"]) == BINARY_BODY


def _mitmproxy_text_entry(text: str, size: Any, compression: Any = 0) -> dict[str, Any]:
    """A response as mitmproxy writes a body it finds mostly text: no ``encoding``."""
    return {
        "startedDateTime": "2026-12-04T07:35:32.415567+00:00",
        "time": 1.5,
        "request": {"method": "GET", "url": "http://127.0.0.1:44327/x", "headers": []},
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Content-Type", "value": "application/octet-stream"}],
            "content": {
                "size": size,
                "compression": compression,
                "mimeType": "application/octet-stream",
                "text": text,
            },
        },
    }


@pytest.mark.parametrize(
    ("text", "size", "compression", "body"),
    [
        ("caf\xe9 \x00\xff", 7, 0, b"caf\xe9 \x00\xff"),  # one character per byte
        ("caf\xe9 \x00\xff", 9, 0, "caf\xe9 \x00\xff".encode()),  # UTF-8
        ("caf\xe9", 2, 2, b"caf\xe9"),  # mitmproxy: the wire size plus what decoding added
        ("caf\xe9", "4", None, "caf\xe9".encode()),  # no usable size: UTF-8, as before
        ("\u20ac", 3, 0, "\u20ac".encode()),  # not Latin-1 at all
    ],
)
def test_text_body_reading_follows_the_recorded_size(
    tmp_path: Path, text: str, size: Any, compression: Any, body: bytes
) -> None:
    path = tmp_path / "m.har"
    path.write_text(
        json.dumps({"log": {"entries": [_mitmproxy_text_entry(text, size, compression)]}})
    )

    [exchange] = read_har(path)

    assert exchange.response_body == body


def test_text_body_whose_size_fits_no_reading_warns_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.har"
    entries = [_mitmproxy_text_entry("ok", 2), _mitmproxy_text_entry("caf\xe9", 3)]
    path.write_text(json.dumps({"log": {"entries": entries}}))

    with pytest.warns(tl.errors.BodySizeWarning) as caught:
        exchanges = read_har(path)

    assert [str(w.message) for w in caught] == [
        f"{path}, entry 1, field 'response.content.text': is 5 bytes as utf-8, 4 as Latin-1, "
        "but the entry records 3 bytes: kept as utf-8"
    ]
    assert not issubclass(caught[0].category, tl.errors.SkippedEntryWarning)
    # A declared charset is the only reading: one character per byte is mitmproxy's fallback.
    declared = _mitmproxy_text_entry("caf\xe9", 4)
    declared["response"]["content"]["mimeType"] = "text/plain; charset=utf-8"
    path.write_text(json.dumps({"log": {"entries": [declared]}}))
    with pytest.warns(
        tl.errors.BodySizeWarning, match=r"is 5 bytes as utf-8, but the entry records 4 bytes"
    ):
        assert read_har(path)[0].response_body == "caf\xe9".encode()
    assert caught[0].filename == __file__  # it points at read_har's caller
    assert [e.response_body for e in exchanges] == [b"ok", "caf\xe9".encode()]
    # Content-Length is a recorded size too, and so is a request's bodySize.
    entries[1]["response"]["headers"].append({"name": "Content-Length", "value": "4"})
    entries[1]["request"].update(
        method="POST", bodySize=4, postData={"mimeType": "", "text": "caf\xe9"}
    )
    path.write_text(json.dumps({"log": {"entries": entries}}))
    assert read_har(path)[1].request_body == read_har(path)[1].response_body == b"caf\xe9"


def test_mitmproxy_error_entry_becomes_an_error(mitmproxy_har: Path) -> None:
    exchange = read_har(mitmproxy_har)[12]

    assert exchange.url == BASE + "/close"
    assert exchange.status_code is None
    assert exchange.error == tl.exchange.RecordedError("har.error", "server closed connection")
    assert exchange.response is None
    assert exchange.response_headers == ()
    with pytest.raises(
        tl.errors.RecordedTransportError, match=r"recorded har\.error: server closed"
    ):
        exchange.new_response()


def test_mitmproxy_exchanges_serve_from_stores(mitmproxy_har: Path) -> None:
    exchanges = read_har(mitmproxy_har)
    cache = tl.MemoryCache()
    stream = tl.MemoryStream()
    for exchange in exchanges:
        cache.put(exchange)
        stream.put(exchange)

    response = cache.get(httpx.Request("GET", BASE + "/gzip?size=300"))
    assert response is not None
    assert response.read() == _payload(300)
    assert response.headers["content-encoding"] == "gzip"
    bytes_response = cache.get(httpx.Request("GET", BASE + "/bytes?n=64&seed=7"))
    assert bytes_response is not None
    assert bytes_response.read() == random.Random(7).randbytes(64)
    assert cache.get(httpx.Request("GET", BASE + "/close")) is None
    responses = stream.responses()
    assert [next(responses).status_code for _ in range(12)] == [e[2] for e in MITMPROXY_ENTRIES]
    with pytest.raises(tl.errors.RecordedTransportError):
        next(responses)


def test_mitmproxy_har_round_trip_is_exact(mitmproxy_har: Path, tmp_path: Path) -> None:
    original = read_har(mitmproxy_har)

    assert write_har(original, tmp_path / "again.har") == 13
    again = read_har(tmp_path / "again.har")

    assert len(again) == 13
    for got, expected in zip(again, original, strict=True):
        assert_same(got, expected)
    # Writing is deterministic: the same exchanges give the same bytes.
    write_har(again, tmp_path / "third.har")
    assert (tmp_path / "third.har").read_bytes() == (tmp_path / "again.har").read_bytes()


# -- exact round trips of exchanges HAR cannot hold natively -------------------------------------
def _exchanges() -> list[tl.Exchange]:
    doc = json.dumps({"name": "kettle", "tags": ["a", "b"]}).encode()
    # Not what gzip.compress(mtime=0) gives: only the recorded wire bytes reproduce it.
    odd_gzip = gzip.compress(doc, compresslevel=1, mtime=123456)
    assert odd_gzip != gzip.compress(doc, mtime=0)
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return [
        make_exchange(
            url="https://api.example/items?b=2&a=1",
            response_headers=[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", str(len(odd_gzip))),
            ],
            response_body=odd_gzip,
            started_at=started,
            elapsed_ms=123.457,
            tags={"session": "s1", "har.page": "page_1", "har.page_title": "Items"},
        ),
        make_exchange(
            url="https://api.example/logo.png",
            response_headers=[("Content-Type", "image/png")],
            response_body=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
            started_at=started + timedelta(seconds=1),
            tags={"har.page": "page_1", "har.page_title": "Items"},
        ),
        make_exchange(
            "POST",
            "https://api.example/upload",
            request_headers=[("Content-Type", "application/octet-stream")],
            request_body=b"\x00\xff\xfe binary \x80",
            response_headers=[
                ("Set-Cookie", "a=1; Path=/; HttpOnly"),
                ("X-Dup", "first"),
                ("Set-Cookie", "b=2; Secure"),
                ("X-Dup", "second"),
                ("X-Latin", b"caf\xe9"),
            ],
            response_body=b"",
            started_at=started + timedelta(seconds=2),
            tags={"har.page": "page_2"},
        ),
        make_exchange(
            "POST",
            "https://api.example/form",
            request_headers=[("Content-Type", "text/plain; charset=iso-8859-1")],
            request_body="café crème".encode("latin-1"),
            response_headers=[("Content-Type", "text/plain; charset=iso-8859-1")],
            response_body="déjà vu".encode("latin-1"),
        ),
        tl.Exchange(
            "GET",
            "https://api.example/h2",
            status_code=200,
            reason_phrase="",
            http_version="HTTP/2",
            response_headers=[(b"content-encoding", b"br"), (b"content-type", b"text/plain")],
            response_body=brotli.compress(b"brotli body", quality=5),
            started_at=started,
            elapsed=timedelta(microseconds=1),
        ),
        make_exchange(
            url="https://api.example/cut",
            response_headers=[("Content-Encoding", "gzip"), ("Content-Length", "500")],
            response_body=gzip.compress(b"x" * 5000)[:20],
            truncated=True,
        ),
        make_exchange(
            url="https://down.example/",
            status_code=None,
            started_at=started,
            error=tl.exchange.RecordedError("httpx.ConnectError", "[Errno 111] Connection refused"),
            tags={"session": "s1"},
        ).replace(http_version="HTTP/2"),
    ]


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    exchanges = _exchanges()

    write_har(iter(exchanges), tmp_path / "out.har")
    again = read_har(tmp_path / "out.har")

    assert len(again) == len(exchanges)
    for got, expected in zip(again, exchanges, strict=True):
        assert_same(got, expected)
    assert again[6].error is not None
    assert type(again[6].error.to_exception()) is httpx.ConnectError


def test_written_har_looks_like_a_browser_har(tmp_path: Path) -> None:
    write_har(_exchanges(), tmp_path / "out.har")
    log = json.loads((tmp_path / "out.har").read_text())["log"]
    entries = log["entries"]

    assert log["version"] == "1.2"
    assert log["creator"] == {"name": "traffic_lab", "version": tl.__version__}
    assert log["pages"] == [
        {
            "startedDateTime": "2026-01-02T03:04:05.678901+00:00",
            "id": "page_1",
            "title": "Items",
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        },
        {
            "startedDateTime": "2026-01-02T03:04:07.678901+00:00",
            "id": "page_2",
            "title": "",
            "pageTimings": {"onContentLoad": -1, "onLoad": -1},
        },
    ]
    first = entries[0]
    assert [e.get("pageref") for e in entries] == ["page_1", "page_1", "page_2"] + [None] * 4
    assert first["startedDateTime"] == "2026-01-02T03:04:05.678901+00:00"
    assert first["time"] == 123.457
    assert first["timings"] == {
        "blocked": -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": 0,
        "wait": 123.457,
        "receive": 0,
    }
    assert first["request"]["queryString"] == [
        {"name": "b", "value": "2"},
        {"name": "a", "value": "1"},
    ]
    doc = json.dumps({"name": "kettle", "tags": ["a", "b"]})
    wire = entries[0]["_trafficLab"].pop("responseBody")
    assert first["response"]["content"] == {
        "size": len(doc),
        "compression": len(doc) - len(base64.b64decode(wire)),
        "mimeType": "application/json",
        "text": doc,
    }
    assert first["_trafficLab"] == {"tags": {"session": "s1"}}
    assert entries[1]["response"]["content"] == {
        "size": 18,
        "mimeType": "image/png",
        "text": base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe").decode(),
        "encoding": "base64",
    }
    upload = entries[2]
    assert upload["request"]["postData"] == {
        "mimeType": "application/octet-stream",
        "params": [],
        "text": "\x00\udcff\udcfe binary \udc80",
    }
    assert upload["response"]["cookies"] == [
        {"name": "a", "value": "1", "path": "/", "httpOnly": True},
        {"name": "b", "value": "2", "secure": True},
    ]
    assert upload["response"]["headers"][-1] == {"name": "X-Latin", "value": "caf\udce9"}
    assert entries[3]["request"]["postData"]["text"] == "café crème"
    assert entries[3]["response"]["content"]["text"] == "déjà vu"
    error = entries[6]
    assert error["response"]["status"] == 0
    assert error["response"]["_error"] == "[Errno 111] Connection refused"
    assert error["_trafficLab"] == {
        "tags": {"session": "s1"},
        "error": {"type": "httpx.ConnectError", "message": "[Errno 111] Connection refused"},
    }


# -- HARs shaped like Chrome's and Firefox's ------------------------------------------------------
def _entry(url: str, response: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "startedDateTime": "2026-03-01T10:00:01.000Z",
        "time": 10,
        "request": {
            "method": "GET",
            "url": url,
            "httpVersion": "http/2.0",
            "headers": [],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": 10, "receive": 0},
        **extra,
    }


def _response(headers: list[tuple[str, str]], content: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": 200,
        "statusText": "",
        "httpVersion": "http/2.0",
        "headers": [{"name": k, "value": v} for k, v in headers],
        "cookies": [],
        "content": content,
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": -1,
        "_transferSize": 300,
        "_error": None,
    }


CHROME_HAR: dict[str, Any] = {
    "log": {
        "version": "1.2",
        "creator": {"name": "WebInspector", "version": "537.36"},
        "pages": [
            {
                "startedDateTime": "2026-03-01T10:00:00.000Z",
                "id": "page_1",
                "title": "https://shop.example/",
                "pageTimings": {"onContentLoad": 120.5, "onLoad": 200.1},
            }
        ],
        "entries": [
            {
                "_initiator": {"type": "other"},
                "_priority": "VeryHigh",
                "_resourceType": "fetch",
                "cache": {},
                "connection": "443",
                "pageref": "page_1",
                "request": {
                    "method": "GET",
                    "url": "https://shop.example/api/items?page=2",
                    "httpVersion": "http/2.0",
                    "headers": [
                        {"name": ":authority", "value": "shop.example"},
                        {"name": ":method", "value": "GET"},
                        {"name": ":path", "value": "/api/items?page=2"},
                        {"name": ":scheme", "value": "https"},
                        {"name": "accept", "value": "application/json"},
                        {"name": "accept-encoding", "value": "gzip, deflate, br, zstd"},
                    ],
                    "queryString": [{"name": "page", "value": "2"}],
                    "cookies": [],
                    "headersSize": -1,
                    "bodySize": 0,
                },
                "response": _response(
                    [
                        ("content-encoding", "gzip"),
                        ("content-length", "999"),
                        ("content-type", "application/json; charset=utf-8"),
                    ],
                    {
                        "size": 26,
                        "mimeType": "application/json",
                        "compression": -20,
                        "text": '{"items":[1,2,3],"page":2}',
                    },
                ),
                "serverIPAddress": "192.0.2.1",
                "startedDateTime": "2026-03-01T10:00:00.100Z",
                "time": 35.25,
                "timings": {
                    "blocked": 1.2,
                    "dns": -1,
                    "ssl": -1,
                    "connect": -1,
                    "send": 0.1,
                    "wait": 30.0,
                    "receive": 3.95,
                    "_blocked_queueing": 0.8,
                },
            },
            _entry(
                "https://shop.example/app.js",
                _response(
                    [("content-encoding", "zstd"), ("content-length", "23")],
                    {"size": 14, "mimeType": "text/javascript", "text": "console.log(1)"},
                ),
                pageref="page_1",
            ),
            _entry(
                "https://shop.example/style.css",
                _response(
                    [("content-encoding", "br"), ("content-type", "text/css")],
                    {"size": 14, "mimeType": "text/css", "text": "body{margin:0}"},
                ),
            ),
            _entry(
                "https://shop.example/logo.png",
                _response(
                    [("content-type", "image/png")],
                    {"size": 4, "mimeType": "image/png", "text": "iVBORw==", "encoding": "base64"},
                ),
            ),
            _entry(
                "https://shop.example/img/lazy.webp",
                _response(
                    [("content-type", "image/webp"), ("content-length", "4096")],
                    {"size": 4096, "mimeType": "image/webp"},
                ),
            ),
            _entry(
                "https://down.example/",
                {
                    "status": 0,
                    "statusText": "",
                    "httpVersion": "",
                    "headers": [],
                    "cookies": [],
                    "content": {"size": 0, "mimeType": "x-unknown"},
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": 0,
                    "_transferSize": 0,
                    "_error": "net::ERR_CONNECTION_REFUSED",
                },
            ),
        ],
    }
}


def test_chrome_shaped_har(tmp_path: Path) -> None:
    path = tmp_path / "chrome.har"
    path.write_text(json.dumps(CHROME_HAR), encoding="utf-8")

    items, script, style, logo, lazy, down = read_har(path)

    text = b'{"items":[1,2,3],"page":2}'
    assert items.url == "https://shop.example/api/items?page=2"
    assert items.http_version == "HTTP/2"
    assert items.reason_phrase == ""
    assert items.request_headers == (
        (b"accept", b"application/json"),
        (b"accept-encoding", b"gzip, deflate, br, zstd"),
    )
    assert items.response_body == gzip.compress(text, mtime=0)
    assert items.response_headers == (
        (b"content-encoding", b"gzip"),
        (b"content-length", str(len(items.response_body)).encode()),
        (b"content-type", b"application/json; charset=utf-8"),
    )
    assert items.response is not None
    assert items.response.content == text
    assert items.started_at == datetime(2026, 3, 1, 10, 0, 0, 100000, tzinfo=UTC)
    assert items.elapsed == timedelta(microseconds=35250)
    assert dict(items.tags) == {
        "har.page": "page_1",
        "har.page_title": "https://shop.example/",
        "har.timings": '{"blocked":1.2,"dns":-1,"ssl":-1,"connect":-1,"send":0.1,"wait":30.0,'
        '"receive":3.95,"_blocked_queueing":0.8}',
    }
    if supports("zstd"):  # re-encoded with the coding the browser saw
        assert script.response_headers[0] == (b"content-encoding", b"zstd")
        assert decode_body(script.response_body, ["zstd"]) == b"console.log(1)"
        length = str(len(script.response_body)).encode()
        assert script.response_headers[1:] == ((b"content-length", length),)
    else:  # zstd cannot be applied here: the coding is dropped and the body kept decoded.
        assert script.response_headers == ((b"content-length", b"14"),)
        assert script.response_body == b"console.log(1)"
    assert script.tags["har.page"] == "page_1"
    assert brotli.decompress(style.response_body) == b"body{margin:0}"
    assert style.response is not None
    assert style.response.text == "body{margin:0}"
    assert logo.response_body == b"\x89PNG"
    # A body the browser did not keep: empty, and Content-Length says so.
    assert lazy.response_body == b""
    assert lazy.response_headers == ((b"content-type", b"image/webp"), (b"content-length", b"0"))
    assert down.status_code is None
    assert down.error == tl.exchange.RecordedError("har.error", "net::ERR_CONNECTION_REFUSED")


def test_firefox_shaped_har(tmp_path: Path) -> None:
    entry = _entry(
        "https://search.example/find",
        {
            **_response([("Content-Type", "text/html; charset=iso-8859-1")], {}),
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/2",
            "content": {"size": 4, "mimeType": "text/html; charset=iso-8859-1", "text": "réel"},
        },
        startedDateTime="2026-03-01T11:00:00.250+01:00",
    )
    entry["request"]["method"] = "POST"
    entry["request"]["postData"] = {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "q", "value": "tea pot"}, {"name": "lang", "value": "fr"}],
    }
    del entry["timings"]
    path = tmp_path / "firefox.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}), encoding="utf-8")

    [exchange] = read_har(path)

    assert exchange.started_at == datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert exchange.http_version == "HTTP/2"
    assert exchange.request_body == b"q=tea+pot&lang=fr"
    assert exchange.response_body == "réel".encode("latin-1")
    assert dict(exchange.tags) == {}


def test_compressed_har_files(mitmproxy_har: Path, tmp_path: Path) -> None:
    exchanges = read_har(mitmproxy_har)

    write_har(exchanges, tmp_path / "a.zhar")
    write_har(exchanges, tmp_path / "a.har.gz")

    assert (tmp_path / "a.zhar").read_bytes()[:1] == b"\x78"
    assert (tmp_path / "a.har.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert read_har(tmp_path / "a.zhar") == exchanges
    assert read_har(tmp_path / "a.har.gz") == exchanges
    # mitmproxy's own .zhar is zlib over the JSON text.
    (tmp_path / "m.zhar").write_bytes(zlib.compress(mitmproxy_har.read_bytes(), 9))
    assert read_har(tmp_path / "m.zhar") == exchanges


def test_writer_never_overwrites_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "out.har"
    path.write_text("keep me")

    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        write_har([make_exchange()], path)
    assert path.read_text() == "keep me"

    assert write_har([make_exchange()], path, overwrite=True) == 1
    assert [e.url for e in read_har(path)] == ["https://api.example.test/items/1"]
    assert sorted(os.listdir(tmp_path)) == ["out.har"]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def exchanges() -> Iterator[tl.Exchange]:
        yield make_exchange()
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_har(exchanges(), tmp_path / "out.har")
    assert os.listdir(tmp_path) == []


# -- invalid files: the error says file, entry and field ----------------------------------------
def _valid_document(tmp_path: Path) -> dict[str, Any]:
    write_har([make_exchange(), make_exchange(json={"a": 1})], tmp_path / "valid.har")
    document: dict[str, Any] = json.loads((tmp_path / "valid.har").read_text())
    return document


def _read_error(path: Path) -> tl.errors.InteropError:
    with pytest.raises(tl.errors.InteropError) as info:
        read_har(path, strict=True)
    return info.value


def _set(path: str, value: Any) -> Any:
    def change(entry: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = entry
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (_set("startedDateTime", _DELETE), "startedDateTime", "is missing"),
        (
            _set("startedDateTime", "yesterday"),
            "startedDateTime",
            "is not an ISO 8601 date and time: 'yesterday'",
        ),
        (
            _set("startedDateTime", "2026-01-01T12:00:00"),
            "startedDateTime",
            "has no UTC offset: '2026-01-01T12:00:00'",
        ),
        (_set("time", "12"), "time", "must be a number, not str '12'"),
        (_set("time", True), "time", "must be a number, not bool True"),
        (_set("time", -1), "time", "must be a duration in ms (>= 0), not -1"),
        (_set("time", 1e300), "time", "must be a duration in ms (>= 0), not 1e+300"),
        (_set("request", _DELETE), "request", "is missing"),
        (_set("response", []), "response", "must be an object, not list <list of 0>"),
        (_set("request.method", ""), "request.method", "is not an HTTP method: ''"),
        (
            _set("request.url", "/relative"),
            "request.url",
            "is not an absolute http(s) URL: '/relative'",
        ),
        (
            _set("request.url", "ftp://files.example/a"),
            "request.url",
            "is not an absolute http(s) URL: 'ftp://files.example/a'",
        ),
        (_set("request.headers", {}), "request.headers", "must be a list, not dict <dict of 0>"),
        (_set("request.headers", [{"name": "X"}]), "request.headers[0].value", "is missing"),
        (
            _set("request.headers", [{"name": "X", "value": 5}]),
            "request.headers[0].value",
            "must be a string, not int 5",
        ),
        (_set("request.headers", ["X: 1"]), "request.headers[0]", "must be an object, not str"),
        (
            _set("request.headers", [{"name": "X", "value": "\ud800"}]),
            "request.headers[0].value",
            "cannot be encoded as header bytes: surrogates not allowed",
        ),
        (
            _set("request.postData", {"params": [{"name": "f", "fileName": "a.txt"}]}),
            "request.postData.params[0]",
            "a multipart upload cannot be rebuilt from params",
        ),
        (_set("response.status", "200"), "response.status", "must be an integer, not str '200'"),
        (_set("response.status", 42), "response.status", "is not an HTTP status code: 42"),
        (_set("response.statusText", "Bien reçu €"), "response.statusText", "must be Latin-1 text"),
        (_set("response.content", _DELETE), "response.content", "is missing"),
        (
            _set("response.content.encoding", "quoted-printable"),
            "response.content.encoding",
            "unsupported encoding 'quoted-printable'",
        ),
        (
            _set("response.content.text", 7),
            "response.content.text",
            "must be a string or null, not int 7",
        ),
        (_set("pageref", "nope"), "pageref", "names no page in log.pages: 'nope'"),
        (
            _set("_trafficLab", {"tags": {"a": 1}}),
            "_trafficLab.tags.a",
            "tag values must be strings",
        ),
    ],
)
def test_invalid_entry_names_file_entry_and_field(
    tmp_path: Path, change: Any, field: str, message: str
) -> None:
    document = _valid_document(tmp_path)
    change(document["log"]["entries"][1])
    path = tmp_path / "bad.har"
    path.write_text(json.dumps(document))

    error = _read_error(path)

    assert (error.path, error.index, error.field) == (str(path), 1, field)
    assert str(error) == f"{path}, entry 1, field {field!r}: {message}"
    # By default the bad entry is skipped, with a warning saying the same, and the good kept.
    with pytest.warns(tl.errors.SkippedEntryWarning) as caught:
        kept = read_har(path)
    assert [str(w.message) for w in caught] == [f"{error} (entry skipped)"]
    assert kept == read_har(tmp_path / "valid.har")[:1]


def test_invalid_base64_body(tmp_path: Path) -> None:
    document = _valid_document(tmp_path)
    content = document["log"]["entries"][0]["response"]["content"]
    content.update(text="not base64!", encoding="base64")
    path = tmp_path / "bad.har"
    path.write_text(json.dumps(document))

    error = _read_error(path)

    assert (error.index, error.field) == (0, "response.content.text")
    assert str(error).startswith(
        f"{path}, entry 0, field 'response.content.text': is not valid base64"
    )


def test_entry_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.har"
    path.write_text(json.dumps({"log": {"entries": [[]]}}))

    assert str(_read_error(path)) == f"{path}, entry 0: an entry must be an object, not list"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"log": ', "invalid JSON at line 1 column 9: Expecting value"),
        (b"[]", "a HAR document is a JSON object, not list"),
        (b"\xff\xfe{}", "is not UTF-8 text (bad byte at offset 0)"),
        (b"{}", None),
        (b'{"log": {"entries": {}}}', None),
        (b'{"log": {"entries": [], "pages": [{"title": "t"}]}}', None),
    ],
)
def test_invalid_document(tmp_path: Path, content: bytes, message: str | None) -> None:
    path = tmp_path / "bad.har"
    path.write_bytes(content)

    error = _read_error(path)

    expected = {
        b"{}": f"{path}, field 'log': is missing",
        b'{"log": {"entries": {}}}': (
            f"{path}, field 'log.entries': must be a list, not dict <dict of 0>"
        ),
        b'{"log": {"entries": [], "pages": [{"title": "t"}]}}': (
            f"{path}, field 'log.pages[0].id': is missing"
        ),
    }.get(content, f"{path}: {message}")
    assert str(error) == expected
    assert error.index is None


def test_corrupt_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.har.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")

    assert str(_read_error(path)).startswith(f"{path}: cannot decompress the file:")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_har(tmp_path / "nope.har")


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for module in (interop, har_module):
        result = doctest.testmod(module, raise_on_error=True)
        assert result.attempted > 0
