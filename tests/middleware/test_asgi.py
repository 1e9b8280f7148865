"""RecordingASGIMiddleware: a Starlette app under uvicorn, hit with a real httpx client; then the
protocol corners, driving the middleware directly under asyncio and trio."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.middleware import RecordingASGIMiddleware

from .asgi_app import BIG_TEXT, STREAM_CHUNKS, AppState, make_app
from .conftest import TIMEOUT, WaitingSink, raw_request, serve_asgi

CLIENT_HEADERS = {"User-Agent": "traffic-lab-tests", "Accept-Encoding": "identity"}
TAGS = {"service": "starlette-test"}
SERVER_ADDED = (b"date", b"server")


@pytest.fixture(scope="module")
def served():
    state = AppState()
    sink = WaitingSink()
    with serve_asgi(make_app(state, sink, tags=TAGS)) as url:
        yield SimpleNamespace(
            url=url, host=url.removeprefix("http://").encode(), state=state, sink=sink
        )


@pytest.fixture
def server(served):
    served.sink.clear()
    served.state.seen_headers.clear()
    served.state.gate.clear()
    served.state.stream_cancelled.clear()
    return served


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers=CLIENT_HEADERS, timeout=TIMEOUT) as client:
        yield client


def base_headers(server, *extra):
    """The request headers uvicorn hands the app for ``CLIENT_HEADERS`` (names lowercased)."""
    return (
        (b"host", server.host),
        (b"accept", b"*/*"),
        (b"connection", b"keep-alive"),
        (b"user-agent", b"traffic-lab-tests"),
        (b"accept-encoding", b"identity"),
        *extra,
    )


def received_headers(response: httpx.Response):
    """What the client received, without the headers uvicorn adds on its own."""
    return tuple((k, v) for k, v in response.headers.raw if k not in SERVER_ADDED)


def read_until(chunks, expected: bytes) -> bytes:
    data = b""
    while len(data) < len(expected):
        data += next(chunks)
    return data


# -- the real thing: Starlette under uvicorn ---------------------------------------------------


def test_get_is_recorded_exactly(server, client):
    before = datetime.now(UTC)
    response = client.get(
        "/json", params={"b": "2", "a": "1"}, headers=[("X-Dup", "1"), ("X-Dup", "2")]
    )
    after = datetime.now(UTC)

    assert response.content == b'{"hello":"world","n":1}'
    ex = server.sink.one()
    assert ex.method == "GET"
    assert ex.url == f"{server.url}/json?b=2&a=1"
    assert ex.request_headers == base_headers(server, (b"x-dup", b"1"), (b"x-dup", b"2"))
    assert ex.request_body == b""
    assert ex.status_code == 200
    assert ex.reason_phrase == "OK"
    assert ex.http_version == "HTTP/1.1"
    assert ex.response_headers == (
        (b"content-length", b"23"),
        (b"content-type", b"application/json"),
    )
    assert ex.response_headers == received_headers(response)
    assert ex.response_body == b'{"hello":"world","n":1}'
    assert ex.error is None
    assert ex.truncated is False
    assert dict(ex.tags) == TAGS
    assert ex.started_at.tzinfo is UTC
    assert before <= ex.started_at <= after
    assert timedelta(0) < ex.elapsed <= after - before


def test_post_records_the_request_body(server, client):
    body = bytes(range(256)) * 4
    response = client.post(
        "/echo", content=body, headers={"Content-Type": "application/octet-stream"}
    )

    assert response.content == body
    ex = server.sink.one()
    assert ex.method == "POST"
    assert ex.url == f"{server.url}/echo"
    assert ex.request_headers == base_headers(
        server, (b"content-type", b"application/octet-stream"), (b"content-length", b"1024")
    )
    assert ex.request_body == body
    assert ex.response_body == body
    assert ex.response_headers == (
        (b"content-length", b"1024"),
        (b"content-type", b"application/octet-stream"),
        (b"vary", b"Accept-Encoding"),  # GZipMiddleware: large enough to compress if asked
    )
    assert ex.response_headers == received_headers(response)


def test_streaming_upload_is_recorded_as_the_app_reads_it(server, client):
    def parts():
        yield b"part-1;"
        yield b"part-2;"
        yield b"part-3"

    response = client.post("/upload", content=parts())

    assert response.text == "20 bytes"
    ex = server.sink.one()
    assert ex.request_headers == base_headers(server, (b"transfer-encoding", b"chunked"))
    assert ex.request_body == b"part-1;part-2;part-3"
    assert ex.response_body == b"20 bytes"


def test_a_body_the_app_never_reads_is_not_recorded(server, client):
    response = client.post("/ignore", content=b"unread")

    assert response.text == "not read"
    ex = server.sink.one()
    assert ex.request_body == b""
    assert ex.response_body == b"not read"


def test_streaming_response_streams_through_and_is_recorded_on_completion(server, client):
    with client.stream("GET", "/gated") as response:
        chunks = response.iter_raw()
        assert read_until(chunks, b"first\n") == b"first\n"
        # The app is still waiting for the gate: the client has the first chunk already, and
        # nothing is recorded before the response is complete.
        assert len(server.sink) == 0
        server.state.gate.set()
        assert b"".join(chunks) == b"second\n"

    ex = server.sink.one()
    assert ex.status_code == 200
    assert ex.response_headers == (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"vary", b"Accept-Encoding"),
    )
    assert ex.response_headers == received_headers(response)[:2]
    assert received_headers(response)[2:] == ((b"Transfer-Encoding", b"chunked"),)
    assert ex.response_body == b"first\nsecond\n"
    assert ex.truncated is False


def test_async_streaming_response_is_recorded_whole(server, client):
    response = client.get("/stream")

    assert response.content == b"".join(STREAM_CHUNKS)
    ex = server.sink.one()
    assert ex.response_body == b"chunk-0\nchunk-1\nchunk-2\n"
    assert ex.truncated is False


def test_gzip_response_is_recorded_as_wire_bytes(server, client):
    with client.stream("GET", "/big", headers={"Accept-Encoding": "gzip"}) as response:
        wire = b"".join(response.iter_raw())

    ex = server.sink.one()
    assert ex.response_body == wire
    assert gzip.decompress(ex.response_body) == BIG_TEXT.encode()
    assert ex.response_headers == (
        (b"content-length", str(len(wire)).encode()),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
    )
    assert ex.response.text == BIG_TEXT


def test_gzip_streaming_response_is_recorded_as_wire_bytes(server, client):
    with client.stream("GET", "/big-stream", headers={"Accept-Encoding": "gzip"}) as response:
        wire = b"".join(response.iter_raw())

    ex = server.sink.one()
    assert ex.response_body == wire
    assert gzip.decompress(wire) == BIG_TEXT.encode()
    assert ex.response_headers == (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"gzip"),
    )


def test_app_error_is_recorded_and_the_client_gets_a_500(server, client):
    response = client.get("/boom")

    assert response.status_code == 500
    assert response.content == b"Internal Server Error"
    ex = server.sink.one()
    assert ex.method == "GET"
    assert ex.url == f"{server.url}/boom"
    assert ex.status_code is None
    assert ex.error == tl.exchange.RecordedError(type="builtins.RuntimeError", message="boom")
    assert ex.reason_phrase == ""
    assert ex.response_headers == ()
    assert ex.response_body == b""
    assert ex.truncated is False
    assert ex.response is None


def test_credentials_are_redacted_in_the_store_but_reach_the_app(server, client):
    response = client.get(
        "/cookies",
        params={"api_key": "k-123", "page": "2"},
        headers={"Authorization": "Bearer s3cr3t-token", "Cookie": "session=abc; theme=dark"},
    )

    secrets = [(b"authorization", b"Bearer s3cr3t-token"), (b"cookie", b"session=abc; theme=dark")]
    assert server.state.seen_headers == [list(base_headers(server)) + secrets]
    assert response.headers.get_list("set-cookie") == [
        "session=s3cr3t; Path=/; SameSite=lax",
        "theme=dark; Path=/; SameSite=lax",
    ]
    ex = server.sink.one()
    assert ex.url == f"{server.url}/cookies?api_key=%5BREDACTED%5D&page=2"
    assert ex.request_headers == base_headers(
        server,
        (b"authorization", b"Bearer [REDACTED]"),
        (b"cookie", b"session=[REDACTED]; theme=[REDACTED]"),
    )
    assert ex.response_headers == (
        (b"content-length", b"11"),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"set-cookie", b"session=[REDACTED]; Path=/; SameSite=lax"),
        (b"set-cookie", b"theme=[REDACTED]; Path=/; SameSite=lax"),
        (b"x-dup", b"1"),
        (b"x-dup", b"2"),
    )
    assert ex.response_body == b"cookies set"


def test_client_disconnect_mid_stream_records_a_truncated_exchange(server, client):
    with client.stream("GET", "/endless") as response:
        assert read_until(response.iter_raw(), b"only this\n") == b"only this\n"
    # Leaving the block closes an unread response: httpx drops the connection.

    assert server.state.stream_cancelled.wait(TIMEOUT)
    ex = server.sink.one()
    assert ex.status_code == 200
    assert ex.response_body == b"only this\n"
    assert ex.truncated is True
    assert ex.error is None
    assert ex.ok is False


def test_head_response_has_no_body(server, client):
    response = client.head("/json")

    assert response.content == b""
    ex = server.sink.one()
    assert ex.method == "HEAD"
    assert ex.status_code == 200
    assert ex.response_headers == (
        (b"content-length", b"23"),
        (b"content-type", b"application/json"),
    )
    assert ex.response_body == b""


def test_every_exchange_is_recorded_in_order(server, client):
    for code in (200, 201, 404, 418):
        client.get(f"/status/{code}")

    exchanges = server.sink.wait_for(4)
    assert [(ex.url, ex.status_code, ex.reason_phrase) for ex in exchanges] == [
        (f"{server.url}/status/200", 200, "OK"),
        (f"{server.url}/status/201", 201, "Created"),
        (f"{server.url}/status/404", 404, "Not Found"),
        # traffic_lab.wire.reason_phrase: httpx's table, as every recorder names statuses.
        (f"{server.url}/status/418", 418, "I'm a teapot"),
    ]


def test_error_after_the_response_is_recorded_with_that_response():
    # Wrapping the whole Starlette app: its error middleware sends the 500, then re-raises.
    state, sink = AppState(), WaitingSink()
    with serve_asgi(make_app(state, sink, record_inside=False)) as url:
        response = httpx.get(f"{url}/boom", headers=CLIENT_HEADERS, timeout=TIMEOUT)

    assert response.status_code == 500
    ex = sink.one()
    assert ex.status_code == 500
    assert ex.reason_phrase == "Internal Server Error"
    assert ex.response_headers == (
        (b"content-length", b"21"),
        (b"content-type", b"text/plain; charset=utf-8"),
    )
    assert ex.response_body == b"Internal Server Error"
    assert ex.error == tl.exchange.RecordedError(type="builtins.RuntimeError", message="boom")
    assert ex.truncated is False


def test_lifespan_passes_through():
    state, sink = AppState(), WaitingSink()
    with serve_asgi(make_app(state, sink, record_inside=False), lifespan="on") as url:
        assert httpx.get(f"{url}/json", timeout=TIMEOUT).status_code == 200
        assert state.lifespan_events == ["startup"]
        sink.wait_for(1)

    assert state.lifespan_events == ["startup", "shutdown"]
    assert [ex.url for ex in sink.stream.exchanges()] == [f"{url}/json"]


REQUESTS = [
    b"GET /json?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n\r\n",
    b"HEAD /json HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /big HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    b"GET /big-stream HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    b"GET /cookies HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n",
    b"GET /boom HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
]


@pytest.mark.parametrize("record_inside", [True, False], ids=["starlette-middleware", "wrapping"])
def test_client_receives_identical_bytes_with_and_without_the_middleware(record_inside):
    date = re.compile(rb"\r\ndate: [^\r]*\r\n")
    sink = WaitingSink()
    with (
        serve_asgi(make_app(AppState())) as plain_url,
        serve_asgi(make_app(AppState(), sink, record_inside=record_inside)) as recorded_url,
    ):
        for request in REQUESTS:
            plain = date.sub(b"\r\ndate: -\r\n", raw_request(plain_url, request))
            recorded = date.sub(b"\r\ndate: -\r\n", raw_request(recorded_url, request))
            assert recorded == plain
            assert plain.count(b"\r\ndate: -\r\n") == 1
        exchanges = sink.wait_for(len(REQUESTS))

    assert [ex.url for ex in exchanges] == [
        "http://h/json?x=1",
        "http://h/json",
        "http://h/echo",
        "http://h/upload",
        "http://h/stream",
        "http://h/big",
        "http://h/big-stream",
        "http://h/cookies",
        "http://h/boom",
        "http://h/missing",
    ]
    assert [ex.status_code for ex in exchanges] == [
        200, 200, 200, 200, 200, 200, 200, 200, None if record_inside else 500, 404
    ]  # fmt: skip
    assert exchanges[3].request_body == b"abcde"


# -- protocol corners, driving the middleware directly -----------------------------------------


class FakeServer:
    """The server side of one ASGI HTTP cycle: canned receive messages, a log of sent ones."""

    def __init__(self, incoming=(), *, fail_after_sends: int | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict] = []
        self.receive_calls = 0
        self.fail_after_sends = fail_after_sends

    async def receive(self):
        self.receive_calls += 1
        return self.incoming.pop(0) if self.incoming else {"type": "http.disconnect"}

    async def send(self, message):
        if self.fail_after_sends is not None and len(self.sent) >= self.fail_after_sends:
            raise OSError("client gone")
        self.sent.append(message)


def http_scope(**changes):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/p",
        "raw_path": b"/p",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.test")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    scope.update(changes)
    return scope


START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}


def body(data: bytes, more: bool = False):
    return {"type": "http.response.body", "body": data, "more_body": more}


async def ok_app(scope, receive, send):
    await send(START)
    await send(body(b"ok"))


async def run(app, scope=None, server=None, **options):
    sink = tl.MemoryStream()
    server = server or FakeServer()
    await RecordingASGIMiddleware(app, sink, **options)(
        scope or http_scope(), server.receive, server.send
    )
    return sink, server


@pytest.mark.parametrize(
    ("changes", "url"),
    [
        ({}, "http://example.test/p"),
        ({"query_string": b"q=1&q=2&e=%20"}, "http://example.test/p?q=1&q=2&e=%20"),
        ({"headers": []}, "http://127.0.0.1:8000/p"),
        ({"headers": [], "scheme": "https", "server": ("api.test", 443)}, "https://api.test/p"),
        ({"headers": [], "server": ("::1", 8080)}, "http://[::1]:8080/p"),
        ({"headers": [], "server": None}, "http://localhost/p"),
        ({"headers": [], "server": ("/run/app.sock", None)}, "http://localhost/p"),
        ({"headers": [(b"Host", b"Mixed.test:81")]}, "http://Mixed.test:81/p"),
        ({"path": "/a/b", "raw_path": b"/a%2Fb"}, "http://example.test/a%2Fb"),
        ({"path": "/caf\u00e9 x", "raw_path": None}, "http://example.test/caf%C3%A9%20x"),
        # ASGI servers now include root_path in path; older ones did not.
        (
            {"root_path": "/api", "path": "/api/p", "raw_path": b"/api/p"},
            "http://example.test/api/p",
        ),
        ({"root_path": "/api", "path": "/p", "raw_path": b"/p"}, "http://example.test/api/p"),
        ({"root_path": "/api", "path": "/p", "raw_path": None}, "http://example.test/api/p"),
        ({"path": "/x", "raw_path": b"http://proxy.test/x"}, "http://example.test/x"),
    ],
)
@pytest.mark.anyio
async def test_url_is_rebuilt_from_the_scope(changes, url):
    sink, _ = await run(ok_app, http_scope(**changes))
    assert [ex.url for ex in sink.exchanges()] == [url]


@pytest.mark.parametrize(
    ("version", "expected"), [("1.0", "HTTP/1.0"), ("1.1", "HTTP/1.1"), ("2", "HTTP/2")]
)
@pytest.mark.anyio
async def test_http_version_comes_from_the_scope(version, expected):
    sink, _ = await run(ok_app, http_scope(http_version=version))
    assert sink[0].http_version == expected


@pytest.mark.anyio
async def test_the_request_body_is_never_read_ahead_of_the_app():
    async def reads_one_message(scope, receive, send):
        assert await receive() == {"type": "http.request", "body": b"first", "more_body": True}
        await ok_app(scope, receive, send)

    server = FakeServer(
        [
            {"type": "http.request", "body": b"first", "more_body": True},
            {"type": "http.request", "body": b"second", "more_body": False},
        ]
    )
    sink, server = await run(reads_one_message, http_scope(method="POST"), server)

    assert server.receive_calls == 1
    assert sink[0].request_body == b"first"


@pytest.mark.anyio
async def test_messages_reach_the_server_unchanged():
    messages = [START, body(b"a", more=True), body(b"", more=True), body(b"b")]

    async def app(scope, receive, send):
        for message in messages:
            await send(message)

    sink, server = await run(app)
    assert server.sent == messages
    assert all(sent is original for sent, original in zip(server.sent, messages, strict=True))
    assert sink[0].response_body == b"ab"


@pytest.mark.anyio
async def test_send_raising_oserror_records_what_was_sent():
    # ASGI spec 2.4: send raises OSError once the client has gone away.
    async def app(scope, receive, send):
        await send(START)
        await send(body(b"a", more=True))
        await send(body(b"b", more=True))

    sink = tl.MemoryStream()
    server = FakeServer(fail_after_sends=2)
    with pytest.raises(OSError, match="client gone"):
        await RecordingASGIMiddleware(app, sink)(http_scope(), server.receive, server.send)
    ex = sink[0]
    assert ex.status_code == 200
    assert ex.response_body == b"a"
    assert ex.truncated is True
    assert ex.error == tl.exchange.RecordedError(type="builtins.OSError", message="client gone")


@pytest.mark.anyio
async def test_chunks_sent_after_http_disconnect_are_not_recorded():
    async def app(scope, receive, send):
        await send(START)
        await send(body(b"a", more=True))
        assert await receive() == {"type": "http.disconnect"}
        await send(body(b"b"))  # a spec 2.3 server drops this silently

    sink, _ = await run(app)
    ex = sink[0]
    assert ex.response_body == b"a"
    assert ex.truncated is True
    assert ex.error is None


@pytest.mark.anyio
async def test_http_disconnect_after_the_response_is_not_a_truncation():
    async def app(scope, receive, send):
        await ok_app(scope, receive, send)
        assert await receive() == {"type": "http.disconnect"}

    sink, _ = await run(app)
    assert sink[0].truncated is False


@pytest.mark.anyio
async def test_app_returning_without_a_response_is_recorded_as_an_error():
    async def app(scope, receive, send):
        return None

    sink, _ = await run(app)
    ex = sink[0]
    assert ex.status_code is None
    assert ex.error == tl.exchange.RecordedError(
        type="traffic_lab.middleware.NoResponse",
        message="the app returned without starting a response",
    )
    assert ex.truncated is False


@pytest.mark.anyio
async def test_client_leaving_before_the_response_is_recorded():
    async def app(scope, receive, send):
        assert await receive() == {"type": "http.disconnect"}

    sink, _ = await run(app)
    ex = sink[0]
    assert ex.status_code is None
    assert ex.error == tl.exchange.RecordedError(
        type="traffic_lab.middleware.ClientDisconnected",
        message="the client disconnected before the response started",
    )
    assert ex.truncated is True


@pytest.mark.anyio
async def test_app_raising_mid_stream_records_the_partial_response_and_reraises():
    error = ValueError("half way")

    async def app(scope, receive, send):
        await send(START)
        await send(body(b"partial", more=True))
        raise error

    sink = tl.MemoryStream()
    server = FakeServer()
    with pytest.raises(ValueError, match="half way") as raised:
        await RecordingASGIMiddleware(app, sink)(http_scope(), server.receive, server.send)
    assert raised.value is error
    assert not getattr(error, "__notes__", None)
    ex = sink[0]
    assert ex.status_code == 200
    assert ex.response_body == b"partial"
    assert ex.truncated is True
    assert ex.error == tl.exchange.RecordedError(type="builtins.ValueError", message="half way")


class Stop(BaseException):
    """Stands for cancellation: not an Exception."""


@pytest.mark.anyio
async def test_cancellation_mid_stream_records_a_truncated_response_without_error():
    async def app(scope, receive, send):
        await send(START)
        await send(body(b"partial", more=True))
        raise Stop

    sink = tl.MemoryStream()
    server = FakeServer()
    with pytest.raises(Stop):
        await RecordingASGIMiddleware(app, sink)(http_scope(), server.receive, server.send)
    ex = sink[0]
    assert (ex.status_code, ex.response_body, ex.truncated, ex.error) == (
        200,
        b"partial",
        True,
        None,
    )


@pytest.mark.anyio
async def test_response_with_trailers_completes_with_the_last_trailers():
    async def app(scope, receive, send):
        await send({**START, "trailers": True})
        await send(body(b"data"))
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-sum", b"1")],
                "more_trailers": False,
            }
        )

    async def no_trailers(scope, receive, send):
        await send({**START, "trailers": True})
        await send(body(b"data"))

    sink, server = await run(app)
    assert (sink[0].response_body, sink[0].truncated) == (b"data", False)
    assert server.sent[-1]["type"] == "http.response.trailers"
    sink, _ = await run(no_trailers)
    assert (sink[0].response_body, sink[0].truncated) == (b"data", True)


@pytest.mark.anyio
async def test_zero_copy_extensions_are_hidden_so_bodies_pass_through_send():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope)
        await ok_app(scope, receive, send)

    extensions = {
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
        "http.response.trailers": {},
    }
    scope = http_scope(extensions=extensions)
    await run(app, scope)
    assert seen[0]["extensions"] == {"http.response.trailers": {}}
    assert scope["extensions"] == extensions
    seen.clear()

    plain = http_scope(extensions={"http.response.trailers": {}})
    await run(app, plain)
    assert seen[0] is plain


@pytest.mark.anyio
async def test_one_shot_header_iterables_and_str_headers():
    async def app(scope, receive, send):
        headers = (
            (name, value) for name, value in [("Content-Type", "text/plain"), (b"x-a", b"1")]
        )
        await send({"type": "http.response.start", "status": 299, "headers": headers})
        await send(body(b"ok"))

    seen = []

    async def sees_request_headers(scope, receive, send):
        seen.append(scope["headers"])
        await app(scope, receive, send)

    scope = http_scope(headers=(pair for pair in [(b"host", b"h.test"), (b"x-b", b"2")]))
    sink, server = await run(sees_request_headers, scope)
    assert seen == [[(b"host", b"h.test"), (b"x-b", b"2")]]
    assert sink[0].url == "http://h.test/p"
    assert sink[0].request_headers == ((b"host", b"h.test"), (b"x-b", b"2"))
    assert server.sent[0]["headers"] == [("Content-Type", "text/plain"), (b"x-a", b"1")]
    ex = sink[0]
    assert ex.response_headers == ((b"Content-Type", b"text/plain"), (b"x-a", b"1"))
    assert (ex.status_code, ex.reason_phrase) == (299, "")


class FailingSink:
    def put(self, exchange):
        raise RuntimeError("disk full")


@pytest.mark.anyio
async def test_a_failing_sink_surfaces_after_the_response_was_sent():
    server = FakeServer()
    with pytest.raises(RuntimeError, match="disk full"):
        await RecordingASGIMiddleware(ok_app, FailingSink())(
            http_scope(), server.receive, server.send
        )
    assert server.sent == [START, body(b"ok")]


@pytest.mark.anyio
async def test_a_failing_sink_never_replaces_the_apps_exception():
    async def app(scope, receive, send):
        raise KeyError("app bug")

    server = FakeServer()
    with pytest.raises(KeyError, match="app bug") as raised:
        await RecordingASGIMiddleware(app, FailingSink())(http_scope(), server.receive, server.send)
    assert raised.value.__notes__ == [
        "traffic_lab: the Sink failed to record this exchange: RuntimeError('disk full')"
    ]


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
@pytest.mark.anyio
async def test_non_http_scopes_pass_through_untouched(scope_type):
    calls = []

    async def app(scope, receive, send):
        calls.append((scope, receive, send))

    sink = tl.MemoryStream()
    scope = {"type": scope_type}
    server = FakeServer()
    await RecordingASGIMiddleware(app, sink)(scope, server.receive, server.send)
    assert calls == [(scope, server.receive, server.send)]
    assert calls[0][0] is scope
    assert len(sink) == 0


@pytest.mark.anyio
async def test_redaction_tags_and_attributes_through_httpx_asgi_transport():
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"set-cookie", b"s=1")]}
        )
        await send(body(b"ok"))

    redacting, plain = tl.MemoryStream(), tl.MemoryStream()
    apps = [
        RecordingASGIMiddleware(app, redacting, tags={"run": "1"}),
        RecordingASGIMiddleware(app, plain, redactor=tl.Redactor.disabled()),
    ]
    for recorded_app in apps:
        transport = httpx.ASGITransport(app=recorded_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/", headers={"Authorization": "Basic dXNlcg=="})
            assert response.headers["set-cookie"] == "s=1"

    assert redacting[0].request_headers[-1] == (b"authorization", b"Basic [REDACTED]")
    assert redacting[0].response_headers == ((b"set-cookie", b"s=[REDACTED]"),)
    assert dict(redacting[0].tags) == {"run": "1"}
    assert plain[0].request_headers[-1] == (b"authorization", b"Basic dXNlcg==")
    assert plain[0].response_headers == ((b"set-cookie", b"s=1"),)
    assert dict(plain[0].tags) == {}
    assert apps[0].sink is redacting
    assert apps[0].redactor.enabled is True
    assert dict(apps[0].tags) == {"run": "1"}
    assert apps[1].redactor.enabled is False
    assert repr(apps[1]) == f"RecordingASGIMiddleware(app={app!r}, sink={plain!r})"
