"""Exchange: wire parts and conversion to and from httpx."""

from __future__ import annotations

import dataclasses
import gzip
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.errors import InvalidExchangeError
from traffic_lab.exchange import check_storable
from traffic_lab.testing import make_exchange


def test_from_httpx_keeps_header_order_duplicates_and_raw_bytes():
    request = httpx.Request(
        "POST",
        "https://api.example/a?x=1",
        headers=[(b"X-B", b"1"), (b"x-a", b"caf\xe9"), (b"X-B", b"2")],
        content=b"\x00\xff",
    )
    response = httpx.Response(
        201,
        headers=[(b"Set-Cookie", b"a=1"), (b"X-Raw", b"\xff\xfe"), (b"set-cookie", b"b=2")],
        content=b"\x89PNG\r\n",
        extensions={"http_version": b"HTTP/2", "reason_phrase": b"Made It"},
    )
    ex = tl.Exchange.from_httpx(request, response)
    assert ex.request_headers[0] == (b"Host", b"api.example")
    assert ex.request_headers[1:4] == ((b"X-B", b"1"), (b"x-a", b"caf\xe9"), (b"X-B", b"2"))
    assert ex.response_headers[:3] == (
        (b"Set-Cookie", b"a=1"),
        (b"X-Raw", b"\xff\xfe"),
        (b"set-cookie", b"b=2"),
    )
    assert (ex.status_code, ex.reason_phrase, ex.http_version) == (201, "Made It", "HTTP/2")
    assert ex.request_body == b"\x00\xff"
    assert ex.response_body == b"\x89PNG\r\n"
    # And back to httpx: the same bytes, order and duplicates.
    assert ex.request.headers.raw[1:4] == [(b"X-B", b"1"), (b"x-a", b"caf\xe9"), (b"X-B", b"2")]
    assert ex.response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert ex.response.http_version == "HTTP/2"
    assert ex.response.reason_phrase == "Made It"
    assert ex.response.content == b"\x89PNG\r\n"
    assert ex.request.content == b"\x00\xff"


def test_gzip_body_is_wire_bytes_and_response_view_decodes():
    raw = gzip.compress(b'{"a": 1}')
    response = httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=raw)
    ex = tl.Exchange.from_httpx(httpx.Request("GET", "https://a.example/"), response)
    assert ex.response_body == raw
    assert ex.response.json() == {"a": 1}
    fresh = ex.new_response()
    assert fresh.read() == b'{"a": 1}'
    assert ex.new_response() is not fresh


def test_client_response_without_raw_stream_is_stored_decoded_and_consistent():
    def handler(request):
        return httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(gzip.compress(b"hi"))
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        live = client.get("https://a.example/")
    ex = tl.Exchange.from_httpx(live.request, live)
    assert ex.response_body == b"hi"
    names = [k.lower() for k, _ in ex.response_headers]
    assert b"content-encoding" not in names
    assert dict(ex.response_headers)[b"Content-Length"] == b"2"
    assert ex.response.text == "hi"


def test_corrupt_encoded_body_leaves_view_unread_but_keeps_wire_bytes():
    cut = b"this is not gzip data"
    ex = make_exchange(response_headers={"Content-Encoding": "gzip"}, response_body=cut)
    assert ex.response_body == cut
    with pytest.raises(httpx.ResponseNotRead):
        _ = ex.response.content


def test_error_exchange_has_no_response_and_raises_on_new_response():
    ex = make_exchange(status_code=None)
    assert ex.response is None
    assert ex.ok is False
    with pytest.raises(httpx.ConnectError, match="Connection refused"):
        ex.new_response()


def test_exchange_is_immutable_and_replace_copies():
    ex = make_exchange()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.url = "x"  # type: ignore[misc]
    other = ex.replace(url="https://api.example.test/items/2")
    assert other.url.endswith("/2") and ex.url.endswith("/1")
    assert ex == ex.replace()
    assert ex != other


def test_validation_of_parts():
    with pytest.raises(ValueError, match="needs a status_code"):
        tl.Exchange("GET", "https://a/")
    with pytest.raises(ValueError, match="timezone-aware"):
        tl.Exchange("GET", "https://a/", status_code=200, started_at=datetime(2026, 1, 1))


def test_repr_and_conveniences():
    ex = make_exchange(
        "get", "https://api.example.test/users/7?x=1", elapsed_ms=12.5, tags={"s": "1"}
    )
    assert repr(ex) == "<Exchange GET https://api.example.test/users/7?x=1 -> 200 (12.5 ms)>"
    assert (ex.host, ex.path, ex.ok) == ("api.example.test", "/users/7", True)
    assert dict(ex.tags) == {"s": "1"}
    assert ex.started_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert ex.elapsed == timedelta(milliseconds=12.5)


def test_recorded_error_round_trip():
    exc = httpx.ConnectTimeout("too slow")
    recorded = tl.exchange.RecordedError.from_exception(exc)
    assert recorded == tl.exchange.RecordedError("httpx.ConnectTimeout", "too slow")
    again = recorded.to_exception(httpx.Request("GET", "https://a/"))
    assert type(again) is httpx.ConnectTimeout and str(again) == "too slow"
    assert tl.exchange.RecordedError.from_exception(ValueError("v")).type == "builtins.ValueError"


# -- what a store can hold (check_storable) ---------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://a.example/x",
        "http://a.example:/x",
        "https://a.example:0/",
        "https://a.example:65535",
        "http://[::1]:8080/x",
        "http://user:pw@a.example:8080/?q=1#f",
        "https://bücher.example/ñ?q=ü",
        "http://127.0.0.1:8080/a b",
        "wss://[2001:db8::1]/socket",
        "https://xn--bcher-kva.example/",
    ],
)
def test_check_storable_accepts_what_every_store_can_hold(url):
    check_storable(tl.Exchange("GET", url, status_code=999, reason_phrase="Très bien"))


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"url": "https://a.example:99999999999/"}, "port", "'99999999999'"),
        ({"url": "http://a.example:-1/"}, "port", "'-1'"),
        ({"url": "http://a.example:0x50/"}, "port", "'0x50'"),
        ({"url": "http://a.example:65536"}, "port", "'65536'"),
        ({"url": "https://a.example/\udc80"}, "url", "'https://a.example/\\udc80'"),
        ({"url": "/relative/only"}, "url", "'/relative/only'"),
        ({"url": "http://a.example/\x1f"}, "url", "'http://a.example/\\x1f'"),
        ({"url": "http://999.1.1.1/"}, "url", "'http://999.1.1.1/'"),
        ({"url": "http://xn--zz/"}, "url", "'http://xn--zz/'"),
        ({"url": "http:///x"}, "url", "'http:///x'"),
        ({"method": "G T"}, "method", "'G T'"),
        ({"status_code": 1000}, "status_code", "1000"),
        ({"status_code": 99}, "status_code", "99"),
        ({"reason_phrase": "snow ☃"}, "reason_phrase", "'snow ☃'"),
        ({"http_version": "HTTP/1.1\r\n"}, "http_version", "'HTTP/1.1\\r\\n'"),
        ({"elapsed": timedelta(days=365 * 200)}, "elapsed", "73000 days, 0:00:00"),
        ({"elapsed": timedelta(microseconds=-1)}, "elapsed", "-1 day, 23:59:59.999999"),
        ({"tags": {"k": "\ud800"}}, "tags['k']", "'\\ud800'"),
        ({"request_headers": [(b"a", "text")]}, "request_headers", "<tuple of 2>"),
        (
            {"started_at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-1)))},
            "started_at",
            "9999-12-31T23:00:00-01:00",
        ),
        (
            {"started_at": datetime(9999, 12, 31, 23, tzinfo=UTC), "elapsed": timedelta(hours=2)},
            "started_at",
            "9999-12-31T23:00:00+00:00",
        ),
        ({"response_headers": [(b"a", b"b", b"c")]}, "response_headers", "<tuple of 3>"),
        ({"request_headers": [(b"", b"x")]}, "request_headers", "<tuple of 2>"),
        ({"response_headers": [(b"ok", b"1"), b"ab"]}, "response_headers", "b'ab'"),
    ],
)
def test_check_storable_refuses_by_field_value_and_range(changes, field, value):
    ex = tl.Exchange("GET", "https://a.example/", status_code=200).replace(**changes)
    with pytest.raises(InvalidExchangeError) as caught:
        check_storable(ex)
    assert caught.value.field == field
    assert caught.value.value == value
    assert str(caught.value).startswith(f"cannot store this exchange: {field} = {value}: ")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0.0.0.0", "10.0.0.255", "255.255.255.255", "192.168.1.09", "1.2.3.04",
     "256.1.1.1", "1.2.3", "127.1", "01.2.3.4", "1.2.3.4.5", "999.1.1.1", "1..2.3"],
)  # fmt: skip
def test_check_storable_takes_an_ip_host_exactly_as_httpx_parses_it(host):
    # Canonical dotted quads take the one-regex path; every other digits-and-dots host goes
    # through httpx.URL. Either way the verdict is httpx's.
    from traffic_lab.exchange import _plain_port

    url = f"http://{host}:8080/a?b=1"
    try:
        httpx_ok = bool(httpx.URL(url).host)
    except httpx.InvalidURL:
        httpx_ok = False
    ex = tl.Exchange("GET", url, status_code=200)
    if httpx_ok:
        check_storable(ex)
    else:
        with pytest.raises(InvalidExchangeError):
            check_storable(ex)
    canonical = host in {"127.0.0.1", "0.0.0.0", "10.0.0.255", "255.255.255.255"}
    assert (_plain_port(url) == "8080") is canonical


def test_a_refused_exchange_never_enters_a_memory_store():
    stream, cache = tl.MemoryStream(), tl.MemoryCache()
    good = tl.Exchange("GET", "https://a.example/", status_code=200)
    bad = good.replace(url="https://a.example:99999999999/")
    for store in (stream, cache):
        store.put(good)
        with pytest.raises(InvalidExchangeError, match="port"):
            store.put(bad)
        store.put(good)
        assert list(store.exchanges()) == [good, good]
