"""The mock server (MockApp under uvicorn): recorded bytes, status, reason and headers go out as
recorded; misses, exhaustion and recorded errors answer as documented. Real clients: httpx, curl."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime
from multiprocessing.pool import ThreadPool

import httpx
import pytest

import traffic_lab as tl
import traffic_lab.servers.mock as mock_module
from traffic_lab.servers import BackgroundServer, MockApp
from traffic_lab.testing import make_exchange

from .conftest import curl

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def record(server, store, *paths, method="GET", **kwargs):
    """Record ``paths`` of the loopback server into ``store`` through a real connection."""
    transport = tl.RecordingTransport(store, httpx.HTTPTransport())
    with httpx.Client(transport=transport, base_url=server.url) as client:
        for path in paths:
            client.request(method, path, **kwargs).read()


@pytest.fixture(scope="module")
def recorded(server):
    """A cache of real exchanges with the loopback server: gzip, chunked, odd reason, dup headers."""
    cache = tl.MemoryCache()
    record(server, cache, "/gzip", "/stream?chunks=3&size=10", "/reason", "/headers", "/status/404")
    return cache


@pytest.fixture(scope="module")
def mock(server, recorded):
    with BackgroundServer(MockApp(recorded, origin=server.url)) as running:
        yield running


def exchange_for(cache, path):
    return next(ex for ex in cache.exchanges() if httpx.URL(ex.url).raw_path.decode() == path)


def test_gzip_body_goes_out_as_recorded_wire_bytes_to_a_client_that_accepts_gzip(mock, recorded):
    wire = exchange_for(recorded, "/gzip")
    got = curl(mock.url + "/gzip", "-H", "Accept-Encoding: gzip")  # the bytes as sent
    assert got.status_line == "HTTP/1.1 200 OK"
    assert got.body == wire.response_body
    assert got.header("Content-Encoding") == ["gzip"]
    assert got.header("Content-Length") == [str(len(wire.response_body))]
    with httpx.Client() as client:
        decoded = client.get(mock.url + "/gzip")
    assert decoded.content == gzip.decompress(wire.response_body)
    assert decoded.json() == json.loads(gzip.decompress(wire.response_body))


# -- content codings and Accept-Encoding ---------------------------------------------------------
PLAIN = b'{"items": [' + b", ".join(b'{"id": %d}' % i for i in range(50)) + b"]}"


def coded_cache(coding, body):
    cache = tl.MemoryCache()
    cache.put(
        tl.Exchange(
            "GET",
            "https://api.example/coded",
            status_code=200,
            response_headers=[
                (b"Content-Type", b"application/json"),
                (b"Content-Encoding", coding),
                (b"Content-Length", str(len(body)).encode()),
                (b"Vary", b"Accept-Encoding"),
            ],
            response_body=body,
        )
    )
    return cache


GZIPPED = gzip.compress(PLAIN, mtime=0)
AS_RECORDED = [
    ("Content-Type", "application/json"),
    ("Content-Encoding", "gzip"),
    ("Content-Length", str(len(GZIPPED))),
    ("Vary", "Accept-Encoding"),
]
DECODED = [
    ("Content-Type", "application/json"),
    ("Vary", "Accept-Encoding"),
    ("content-length", str(len(PLAIN))),
]


@pytest.fixture(scope="module")
def gzip_mock():
    app = MockApp(coded_cache(b"gzip", GZIPPED), origin="https://api.example")
    with BackgroundServer(app) as running:
        yield running


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        (None, "decoded"),  # plain curl sends no Accept-Encoding: identity only
        ("", "decoded"),  # an empty value: no coding (RFC 9110 12.5.3)
        ("identity", "decoded"),
        ("br, deflate", "decoded"),
        ("gzip;q=0, br", "decoded"),
        ("*;q=0", "decoded"),
        ("gzip;q=nonsense", "decoded"),
        ("gzip", "recorded"),
        ("deflate, gzip;q=0.5", "recorded"),
        ("GZIP;Q=1.0", "recorded"),
        ("x-gzip", "recorded"),  # the same coding (RFC 9110 8.4.1.3)
        ("*", "recorded"),
        ("br;q=0, *;q=0.1", "recorded"),
    ],
)
def test_body_is_decoded_for_a_client_that_does_not_accept_its_coding(gzip_mock, accept, served):
    if accept is None:
        args: tuple[str, ...] = ()
    elif accept == "":
        args = ("-H", "Accept-Encoding;")  # curl's way to send an empty header
    else:
        args = ("-H", f"Accept-Encoding: {accept}")
    got = curl(gzip_mock.url + "/coded", *args)
    assert got.status_line == "HTTP/1.1 200 OK"
    if served == "decoded":
        assert (got.headers, got.body) == (DECODED, PLAIN)
    else:
        assert (got.headers, got.body) == (AS_RECORDED, GZIPPED)


def test_each_accept_encoding_gets_its_own_answer_from_the_memo(gzip_mock):
    bodies = [
        curl(gzip_mock.url + "/coded", *args).body
        for args in [(), ("-H", "Accept-Encoding: gzip"), (), ("-H", "Accept-Encoding: gzip")]
    ]
    assert bodies == [PLAIN, GZIPPED, PLAIN, GZIPPED]
    with httpx.Client() as client:  # httpx asks for gzip and decodes it itself
        response = client.get(gzip_mock.url + "/coded")
    assert (response.headers["content-encoding"], response.content) == ("gzip", PLAIN)


def test_several_codings_are_all_undone():
    body = gzip.compress(zlib.compress(PLAIN), mtime=0)  # deflate, then gzip
    app = MockApp(coded_cache(b"deflate, gzip", body), origin="https://api.example")
    with BackgroundServer(app) as running:
        only_gzip = curl(running.url + "/coded", "-H", "Accept-Encoding: gzip")
        both = curl(running.url + "/coded", "-H", "Accept-Encoding: gzip, deflate")
    assert (only_gzip.headers, only_gzip.body) == (DECODED, PLAIN)
    assert both.header("Content-Encoding") == ["deflate, gzip"]
    assert both.body == body


@pytest.mark.parametrize(
    ("coding", "body"),
    [(b"gzip", b"not gzip at all"), (b"gzip", GZIPPED[:-8]), (b"zstd", b"(zstd bytes)")],
)
def test_a_body_that_does_not_decode_goes_out_as_recorded(coding, body):
    app = MockApp(coded_cache(coding, body), origin="https://api.example")
    with BackgroundServer(app) as running:
        got = curl(running.url + "/coded")
    assert got.header("Content-Encoding") == [coding.decode()]
    assert got.header("Content-Length") == [str(len(body))]
    assert got.body == body


def test_a_body_that_decodes_to_more_than_memo_bytes_goes_out_as_recorded(monkeypatch):
    monkeypatch.setattr(mock_module, "MEMO_BYTES", 1000)
    bomb = gzip.compress(bytes(100_000), mtime=0)
    app = MockApp(coded_cache(b"gzip", bomb), origin="https://api.example")
    with BackgroundServer(app) as running:
        got = curl(running.url + "/coded")
    assert (got.header("Content-Encoding"), got.body) == (["gzip"], bomb)


def test_stream_mode_honours_accept_encoding_too():
    stream = tl.MemoryStream()
    for exchange in coded_cache(b"gzip", GZIPPED).exchanges():
        stream.put(exchange)
        stream.put(exchange)
    with BackgroundServer(MockApp(stream)) as running:
        plain = curl(running.url + "/anything")
        coded = curl(running.url + "/anything", "-H", "Accept-Encoding: gzip")
    assert (plain.headers, plain.body) == (DECODED, PLAIN)
    assert (coded.headers, coded.body) == (AS_RECORDED, GZIPPED)


def test_headers_keep_their_order_duplicates_and_case(mock, recorded):
    wire = exchange_for(recorded, "/headers")
    got = curl(mock.url + "/headers")
    expected = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in wire.response_headers]
    assert got.headers == expected
    assert got.header("X-Dup") == ["first", "second"]
    assert got.header("X-Latin") == ["caf\xe9"]


def test_recorded_reason_phrase_is_sent(mock):
    assert curl(mock.url + "/reason").status_line == "HTTP/1.1 299 Custom Reason"
    with httpx.Client() as client:
        response = client.get(mock.url + "/reason")
    assert (response.status_code, response.reason_phrase, response.text) == (
        299,
        "Custom Reason",
        "ok",
    )


def test_chunked_recording_is_served_with_a_length_not_chunked(mock, recorded):
    wire = exchange_for(recorded, "/stream?chunks=3&size=10")
    assert (b"Transfer-Encoding", b"chunked") in wire.response_headers
    got = curl(mock.url + "/stream?chunks=3&size=10")
    assert got.header("Transfer-Encoding") == []
    assert got.header("content-length") == ["30"]
    assert got.body == b"0000000000" + b"0001000100" + b"0002000200"


def test_recorded_404_is_a_recording_not_a_miss(mock):
    got = curl(mock.url + "/status/404")
    assert got.status_line == "HTTP/1.1 404 Not Found"
    assert got.header("x-traffic-lab-mock") == []
    assert json.loads(got.body) == {"status": 404}


def test_miss_answers_503_naming_the_nearest_recorded_request(mock, server):
    got = curl(mock.url + "/status/405")
    nearest = f"GET {server.url}/gzip (path: '/gzip' != '/status/405')"
    assert got.status_line == "HTTP/1.1 503 Service Unavailable"
    assert got.header("x-traffic-lab-mock") == ["miss"]
    assert got.header("x-traffic-lab-nearest") == [nearest]
    assert got.body.decode() == (
        f"no recorded response matches GET {server.url}/status/405\n"
        f"nearest recorded request: {nearest}\n"
    )


def test_nearest_header_is_ascii_and_bounded():
    cache = tl.MemoryCache()
    cache.put(make_exchange(url="https://api.example/search?q=tea", json={}))
    cache.put(make_exchange(url="https://api.example/" + "a" * 300, json={}))
    with BackgroundServer(MockApp(cache, origin="https://api.example")) as running:
        accented = httpx.get(running.url + "/search?q=café")
        long = httpx.get(running.url + "/" + "b" * 300)
    assert accented.headers.raw[-2] == (
        b"x-traffic-lab-nearest",
        b"GET https://api.example/search?q=tea (query 'q': 'tea' != 'caf\\xe9')",
    )
    assert accented.text.splitlines()[1] == (
        "nearest recorded request: GET https://api.example/search?q=tea (query 'q': 'tea' != 'café')"
    )
    # The nearest is the long path (one difference): its description is cut to 256 characters.
    assert long.headers["x-traffic-lab-nearest"] == "GET https://api.example/" + "a" * 229 + "..."


def test_miss_with_nothing_to_compare_says_so():
    class NothingSource:  # a Source that cannot list its recordings (not Enumerable)
        def get(self, request):
            return None

    with BackgroundServer(MockApp(NothingSource())) as running:
        got = curl(running.url + "/x")
    assert got.status_line == "HTTP/1.1 503 Service Unavailable"
    assert got.header("x-traffic-lab-nearest") == []
    assert got.body.decode() == (
        f"no recorded response matches GET {running.url}/x\nno recorded request to compare with\n"
    )


def test_strict_miss_answers_404_with_the_nearest_recordings(server, recorded):
    with BackgroundServer(MockApp(recorded, strict=True, origin=server.url)) as running:
        response = httpx.get(running.url + "/status/405")
    assert response.status_code == 404
    assert response.headers["x-traffic-lab-mock"] == "miss"
    assert response.headers["x-traffic-lab-nearest"] == (
        f"GET {server.url}/gzip (path: '/gzip' != '/status/405')"
    )
    # The nearest differ in the fewest parts (here: the path alone), in recorded order.
    assert response.text.splitlines() == [
        f"no recorded exchange matches GET {server.url}/status/405",
        "nearest recorded requests:",
        f"  GET {server.url}/gzip",
        "    - path: '/gzip' != '/status/405'",
        f"  GET {server.url}/reason",
        "    - path: '/reason' != '/status/405'",
        f"  GET {server.url}/headers",
        "    - path: '/headers' != '/status/405'",
    ]


def test_request_body_is_part_of_the_key(server):
    cache = tl.MemoryCache()
    record(server, cache, "/echo", method="POST", content=b"one")
    with BackgroundServer(MockApp(cache, origin=server.url)) as running, httpx.Client() as client:
        hit = client.post(running.url + "/echo", content=b"one")
        miss = client.post(running.url + "/echo", content=b"two")
    assert hit.status_code == 200 and json.loads(hit.text)["body"] == "b25l"
    assert miss.status_code == 503


def test_without_origin_the_requested_url_is_matched():
    cache = tl.MemoryCache(tl.Matcher(scheme=False, host=False, port=False))
    cache.put(make_exchange(url="https://a.example/x", json={"from": "a"}))
    with BackgroundServer(MockApp(cache)) as running:
        assert httpx.get(running.url + "/x").json() == {"from": "a"}
        assert httpx.get(running.url + "/y").status_code == 503


def test_head_keeps_the_recorded_length(server):
    cache = tl.MemoryCache()
    record(server, cache, "/json?size=64", method="HEAD")
    wire = next(cache.exchanges())
    with BackgroundServer(MockApp(cache, origin=server.url)) as running:
        got = curl(running.url + "/json?size=64", "--head")
    assert got.status_line == "HTTP/1.1 200 OK"
    assert got.header("Content-Length") == [
        v.decode() for k, v in wire.response_headers if k == b"Content-Length"
    ]
    assert got.body == b""


# -- stream mode ---------------------------------------------------------------------------------
def ordered_stream():
    stream = tl.MemoryStream()
    for i in range(3):
        stream.put(
            make_exchange(url=f"https://api.example/items/{i}", json={"i": i}, started_at=T0)
        )
    return stream


def test_stream_answers_in_recorded_order_then_503():
    with BackgroundServer(MockApp(ordered_stream())) as running, httpx.Client() as client:
        answers = [client.get(running.url + "/anything").text for _ in range(3)]
        exhausted = client.get(running.url + "/items/0")
    assert answers == ['{"i":0}', '{"i":1}', '{"i":2}']
    assert exhausted.status_code == 503
    assert exhausted.headers["x-traffic-lab-mock"] == "exhausted"
    assert exhausted.text == "no more traffic to replay\n"


def test_strict_stream_explains_differences_and_exhaustion():
    app = MockApp(ordered_stream(), strict=True, origin="https://api.example")
    with BackgroundServer(app) as running, httpx.Client() as client:
        first = client.get(running.url + "/items/0")
        wrong = client.get(running.url + "/items/7")
        third = client.get(running.url + "/items/2")
        after = client.get(running.url + "/items/3")
    assert first.json() == {"i": 0}
    assert wrong.status_code == 404
    assert wrong.text.splitlines() == [
        "request 2 of the replay differs from the recording: GET https://api.example/items/7",
        "nearest recorded requests:",
        "  GET https://api.example/items/1",
        "    - path: '/items/1' != '/items/7'",
    ]
    assert third.json() == {"i": 2}
    assert after.status_code == 503
    assert after.text == (
        "no more traffic to replay: all 3 recorded responses were served; "
        "asked for GET https://api.example/items/3\n"
    )
    assert app.counts == {"recorded": 2, "miss": 1, "exhausted": 1, "error": 0, "unservable": 0}


# -- recorded transport errors -------------------------------------------------------------------
def failed(url, kind="httpx.ConnectError", message="[Errno 111] Connection refused"):
    return make_exchange(url=url, status_code=None, error=tl.exchange.RecordedError(kind, message))


@pytest.mark.parametrize("mode", ["stream", "memory-cache", "parquet-cache"])
def test_recorded_transport_error_answers_502_naming_it(mode, tmp_path):
    exchanges = [
        failed("https://api.example/down"),
        failed("https://api.example/slow", "httpx.ReadTimeout", "timed out"),
        make_exchange(url="https://api.example/up", json={"ok": True}),
    ]
    if mode == "stream":
        store = tl.MemoryStream()
    elif mode == "memory-cache":
        store = tl.MemoryCache()
    else:
        store = tl.ParquetCache(tmp_path / "capture")
    for exchange in exchanges:
        store.put(exchange)
    if mode == "parquet-cache":
        store.close()
        store = tl.ParquetCache(tmp_path / "capture")
    app = MockApp(store, origin="https://api.example")
    with BackgroundServer(app) as running, httpx.Client() as client:
        down = client.get(running.url + "/down")
        slow = client.get(running.url + "/slow")
        up = client.get(running.url + "/up")
    assert down.status_code == 502
    assert down.headers["x-traffic-lab-mock"] == "recorded-error"
    assert down.json() == {
        "error": "httpx.ConnectError",
        "message": "[Errno 111] Connection refused",
        "recorded": "true",
    }
    assert (slow.status_code, slow.json()["error"]) == (504, "httpx.ReadTimeout")
    assert up.json() == {"ok": True}
    assert app.counts == {"recorded": 1, "miss": 0, "exhausted": 0, "error": 2, "unservable": 0}


def test_a_source_without_aget_is_read_in_a_worker_thread():
    class DictSource:
        def __init__(self):
            self.threads = []

        def get(self, request):
            import threading

            self.threads.append(threading.current_thread().name)
            return httpx.Response(200, text=request.url.path)

    source = DictSource()
    with BackgroundServer(MockApp(source)) as running:
        assert httpx.get(running.url + "/p").text == "/p"
    assert source.threads[0] != "traffic_lab-server"


def test_the_store_is_read_one_request_at_a_time_off_the_loop():
    # Concurrent cold requests: the store is asked in one worker thread, never two at once (a
    # row group several requests need is read once), and never on the server's thread.
    import threading
    import time

    class SlowSource:
        def __init__(self):
            self.threads = set()
            self.busy = 0
            self.most = 0

        def get(self, request):
            self.threads.add(threading.current_thread().name)
            self.busy += 1
            self.most = max(self.most, self.busy)
            time.sleep(0.02)
            self.busy -= 1
            return httpx.Response(200, text=request.url.path)

    source = SlowSource()
    with BackgroundServer(MockApp(source)) as running, ThreadPool(8) as pool:
        texts = pool.map(lambda i: httpx.get(f"{running.url}/p{i}").text, range(16))
    assert texts == [f"/p{i}" for i in range(16)]
    assert source.most == 1
    assert source.threads == {"traffic_lab-mock"}


def test_the_worker_thread_ends_when_idle_and_comes_back(monkeypatch):
    import time

    monkeypatch.setattr(mock_module._Worker, "IDLE", 0.05)
    stream = tl.MemoryStream()
    for i in range(2):
        stream.put(
            tl.Exchange("GET", f"https://a.example/{i}", status_code=200, response_body=b"x")
        )
    app = MockApp(stream)
    with BackgroundServer(app) as running, httpx.Client() as client:
        assert client.get(running.url + "/").status_code == 200
        time.sleep(0.3)
        assert not app._worker._running  # its thread ended
        assert client.get(running.url + "/").status_code == 200


def test_a_failing_store_answers_500_and_the_worker_lives_on(caplog):
    class Flaky:
        def get(self, request):
            if request.url.path == "/boom":
                raise RuntimeError("store broke")
            return httpx.Response(200, text="fine")

    with BackgroundServer(MockApp(Flaky())) as running, httpx.Client() as client:
        assert client.get(running.url + "/boom").status_code == 500
        assert client.get(running.url + "/ok").text == "fine"
    assert "store broke" in caplog.text


def test_a_keyed_lookup_store_serves_the_stored_exchange_without_get():
    class Keyed:
        matcher = tl.Matcher()

        def __init__(self):
            self.exchange = tl.Exchange(
                "GET",
                "https://api.example/k",
                status_code=299,
                reason_phrase="Fine Indeed",
                response_headers=[(b"X-Kept", b"Yes"), (b"Content-Length", b"2")],
                response_body=b"ok",
            )

        def get(self, request):
            raise AssertionError("lookup answers: get is for a miss")

        def lookup(self, request):
            return self.exchange if request.url.path == "/k" else None

    app = MockApp(Keyed(), origin="https://api.example")
    with BackgroundServer(app) as running:
        answer = curl(running.url + "/k")
    assert answer.status_line == "HTTP/1.1 299 Fine Indeed"
    assert answer.header("X-Kept") == ["Yes"] and answer.header("Content-Length") == ["2"]
    assert answer.body == b"ok"


@pytest.mark.anyio
async def test_one_app_answers_from_several_event_loops():
    # The worker hands each answer back to the loop that asked (one app, two loops in turn).
    import asyncio

    cache = tl.MemoryCache()
    cache.put(tl.Exchange("GET", "https://api.example/x", status_code=200, response_body=b"x"))
    app = MockApp(cache, origin="https://api.example")

    async def ask():
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            return [r.text for r in await asyncio.gather(*(client.get("/x") for _ in range(5)))]

    assert await ask() == ["x"] * 5
    assert await asyncio.to_thread(asyncio.run, ask()) == ["x"] * 5


def test_mock_app_needs_a_store():
    with pytest.raises(TypeError, match="MockApp needs a Source"):
        MockApp(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="origin must be an http"):
        MockApp(tl.MemoryCache(), origin="ftp://x")


@pytest.mark.anyio
async def test_other_servers_get_standard_reasons_and_no_private_header():
    # httpx's ASGITransport does not offer the reason extension: nothing leaks.
    cache = tl.MemoryCache()
    cache.put(
        tl.Exchange("GET", "https://api.example/r", status_code=299, reason_phrase="Custom Reason")
    )
    transport = httpx.ASGITransport(MockApp(cache, origin="https://api.example"))
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        response = await client.get("/r")
    assert response.status_code == 299
    assert "x-traffic-lab-reason" not in response.headers


# -- statuses outside 200-599 --------------------------------------------------------------------
def status_cache(status, reason):
    cache = tl.MemoryCache()
    cache.put(
        tl.Exchange(
            "GET",
            "https://api.example/s",
            status_code=status,
            reason_phrase=reason,
            response_headers=[(b"Content-Type", b"text/plain"), (b"X-Kept", b"yes")],
            response_body=b"recorded body",
        )
    )
    return cache


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (599, "Network Connect Timeout Error"),
        (599, ""),
        (600, ""),
        (600, "Six Hundred"),
        (799, "Custom"),
        (999, ""),
        (999, "Request Denied"),
    ],
)
def test_any_recorded_status_up_to_999_is_served_with_its_reason(status, reason):
    app = MockApp(status_cache(status, reason), origin="https://api.example")
    with BackgroundServer(app) as running:
        got = curl(running.url + "/s")
        with httpx.Client() as client:
            first = client.get(running.url + "/s")
            again = client.get(running.url + "/s")  # the connection survived the first answer
    assert got.status_line == f"HTTP/1.1 {status} {reason}"
    assert got.headers == [
        ("Content-Type", "text/plain"),
        ("X-Kept", "yes"),
        ("content-length", "13"),
    ]
    assert got.body == b"recorded body"
    for response in (first, again):
        assert (response.status_code, response.reason_phrase, response.content) == (
            status,
            reason,
            b"recorded body",
        )
        assert "x-traffic-lab-status" not in response.headers
        assert "x-traffic-lab-reason" not in response.headers
    assert app.counts["recorded"] == 3


def test_status_999_recorded_from_a_real_server_is_served(server):
    cache = tl.MemoryCache()
    record(server, cache, "/status/999", "/status/600")
    with BackgroundServer(MockApp(cache, origin=server.url)) as running:
        got = curl(running.url + "/status/999")
        response = httpx.get(running.url + "/status/600")
    assert got.status_line == "HTTP/1.1 999 "
    assert json.loads(got.body) == {"status": 999}
    assert (response.status_code, response.json()) == (600, {"status": 600})


@pytest.mark.parametrize(
    ("status", "reason"), [(100, "Continue"), (101, "Switching Protocols"), (199, "")]
)
def test_a_recorded_1xx_final_status_answers_502_unservable(status, reason):
    app = MockApp(status_cache(status, reason), origin="https://api.example")
    with BackgroundServer(app) as running:
        got = curl(running.url + "/s")
        response = httpx.get(running.url + "/s")
    text = (
        f"recorded status {status} cannot be served: a 1xx response is informational, "
        "never a final answer\n"
    )
    assert got.status_line == "HTTP/1.1 502 Bad Gateway"
    assert got.header("x-traffic-lab-mock") == ["unservable"]
    assert got.body == text.encode()
    assert (response.status_code, response.text) == (502, text)
    assert app.counts == {"recorded": 0, "miss": 0, "exhausted": 0, "error": 0, "unservable": 2}


@pytest.mark.anyio
async def test_statuses_outside_200_599_without_uvicorn():
    # httpx's ASGITransport takes any status: 999 as recorded, a 1xx still answers 502.
    cache = status_cache(999, "Odd")
    cache.put(tl.Exchange("GET", "https://api.example/info", status_code=101))
    transport = httpx.ASGITransport(MockApp(cache, origin="https://api.example"))
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        odd = await client.get("/s")
        info = await client.get("/info")
    assert (odd.status_code, odd.content) == (999, b"recorded body")
    assert (info.status_code, info.headers["x-traffic-lab-mock"]) == (502, "unservable")


# -- the mock server is tl.responder over HTTP ---------------------------------------------------
NO_MORE = b"no more traffic to replay"


@pytest.mark.parametrize("kind", ["cache", "stream"])
def test_answers_are_the_responders(kind):
    store = tl.MemoryCache() if kind == "cache" else tl.MemoryStream()
    store.put(make_exchange(url="https://api.example/a", json={"a": 1}))
    store.put(make_exchange(url="https://api.example/b", status_code=404, json={"b": 2}))
    store.put(failed("https://api.example/c"))
    paths = ["/b", "/a", "/c", "/zzz"]
    with httpx.Client(transport=httpx.MockTransport(tl.responder(store))) as direct:
        expected = []
        for path in paths:
            try:
                response = direct.get("https://api.example" + path)
                expected.append((response.status_code, response.content))
            except httpx.ConnectError:
                expected.append(("ConnectError", b""))
    app = MockApp(store, origin="https://api.example")
    with BackgroundServer(app) as running, httpx.Client() as client:
        got = [client.get(running.url + path) for path in paths]
    if kind == "cache":
        assert expected == [(404, b'{"b":2}'), (200, b'{"a":1}'), (503, NO_MORE), (503, NO_MORE)]
    else:
        assert expected == [
            (200, b'{"a":1}'),
            (404, b'{"b":2}'),
            ("ConnectError", b""),
            (503, NO_MORE),
        ]
    assert [(r.status_code, r.content) for r in got[:2]] == expected[:2]
    assert (got[2].status_code, got[2].json()["error"]) == (502, "httpx.ConnectError")
    assert got[3].status_code == 503
    outcome = {"cache": "miss", "stream": "exhausted"}[kind]
    assert got[3].headers["x-traffic-lab-mock"] == outcome
    assert app.counts == {
        "recorded": 2,
        "miss": int(kind == "cache"),
        "exhausted": int(kind == "stream"),
        "error": 1,
        "unservable": 0,
    }


def test_a_parquet_cache_answers_from_memory_on_the_loop_and_reads_files_in_the_worker(tmp_path):
    # The worker reads a row group from its file and, once the group proves busy, decodes it
    # whole; its other rows are then answered on the event loop (no hand-over). A body kept in
    # a blob file, a big body and a miss still go to the worker.
    import threading

    from traffic_lab.stores.parquet._index import Group

    with tl.ParquetCache(tmp_path, blob_threshold=70_000) as cache:
        for i in range(30):
            body = b"B" * 80_000 if i == 29 else f'{{"id": {i}}}'.encode()
            cache.put(
                tl.Exchange("GET", f"http://a.example/u/{i}", status_code=200, response_body=body)
            )
    app = MockApp(tl.ParquetCache(tmp_path), origin="http://a.example")
    in_worker: list[str] = []
    run = app._worker.run

    async def counted(call):
        def traced():
            in_worker.append(threading.current_thread().name)
            return call()

        return await run(traced)

    app._worker.run = counted
    busy = Group.DECODE_ALL_AFTER
    with BackgroundServer(app) as running, httpx.Client(base_url=running.url) as client:
        assert [client.get(f"/u/{i}").json() for i in range(busy)] == [
            {"id": i} for i in range(busy)
        ]
        assert len(in_worker) == busy  # read, rows decoded one by one, then the whole group
        assert [client.get(f"/u/{i}").json() for i in range(busy, 29)] == [
            {"id": i} for i in range(busy, 29)
        ]
        assert len(in_worker) == busy  # the group in memory: answered on the loop
        assert client.get("/u/29").content == b"B" * 80_000  # in a blob file: the worker
        assert client.get("/nope").status_code == 503  # a miss names the nearest: the worker
        assert in_worker == ["traffic_lab-mock"] * (busy + 2)
    assert app.counts["recorded"] == 30


def test_lookup_nowait_answers_only_from_memory(tmp_path):
    from traffic_lab.stores.parquet._index import Group

    with tl.ParquetCache(tmp_path, row_group_size=16) as cache:
        for i in range(32):
            cache.put(tl.Exchange("GET", f"http://a.example/{i}", status_code=200))
    cache = tl.ParquetCache(tmp_path)

    def request(i):
        return httpx.Request("GET", f"http://a.example/{i}")

    with pytest.raises(BlockingIOError):
        cache.lookup_nowait(request(15))  # its row group has not been read
    for i in range(Group.DECODE_ALL_AFTER):  # busy: the group is decoded whole
        assert cache.lookup(request(i)).url == f"http://a.example/{i}"
    assert cache.lookup_nowait(request(15)).url == "http://a.example/15"
    with pytest.raises(BlockingIOError):
        cache.lookup_nowait(request(16))  # the next group
    assert cache.lookup_nowait(request(99)) is None  # a miss needs no file
    cache.put(tl.Exchange("GET", "http://a.example/new", status_code=201))  # buffered
    assert cache.lookup_nowait(request("new")).status_code == 201
    assert tl.MemoryCache().lookup_nowait(request(1)) is None
