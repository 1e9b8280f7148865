"""RecordingWSGIMiddleware: a plain WSGI app served by wsgiref and by Werkzeug's server, hit with
a real httpx client; then the protocol corners, calling the middleware directly."""

from __future__ import annotations

import io
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.middleware import RecordingWSGIMiddleware

from .conftest import TIMEOUT, WaitingSink, raw_request, serve_wsgi
from .wsgi_app import BIG_CHUNK, STREAM_CHUNKS, AppState, make_app

CLIENT_HEADERS = {"User-Agent": "traffic-lab-tests", "Accept-Encoding": "identity"}
TAGS = {"service": "wsgi-test"}
SERVER_ADDED = (b"date", b"server", b"connection", b"transfer-encoding")


@pytest.fixture(scope="module", params=["wsgiref", "werkzeug"])
def served(request):
    state = AppState()
    sink = WaitingSink()
    app = RecordingWSGIMiddleware(make_app(state), sink, tags=TAGS)
    with serve_wsgi(app, request.param) as url:
        yield SimpleNamespace(
            kind=request.param,
            url=url,
            host=url.removeprefix("http://").encode(),
            state=state,
            sink=sink,
        )


def settle(sink, quiet=0.15, limit=5.0):
    """Wait until no exchange has arrived for ``quiet`` seconds. Servers record in their own
    thread after the client already has the whole response, so the previous test's last
    exchange may still be on its way; clearing before it lands would leak it into this test."""
    deadline = time.monotonic() + limit
    last, calm_since = len(sink.stream), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        count = len(sink.stream)
        if count != last:
            last, calm_since = count, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return


@pytest.fixture
def server(served):
    settle(served.sink)
    served.sink.clear()
    served.state.seen.clear()
    for event in (served.state.gate, served.state.client_gone, served.state.generator_closed):
        event.clear()
    served.state.chunks_produced = 0
    return served


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers=CLIENT_HEADERS, timeout=TIMEOUT) as client:
        yield client


def defaults(server):
    return (
        (b"Host", server.host),
        (b"Accept", b"*/*"),
        (b"Connection", b"keep-alive"),
        (b"User-Agent", b"traffic-lab-tests"),
        (b"Accept-Encoding", b"identity"),
    )


def received_headers(response: httpx.Response):
    """What the client received, without the headers the server adds on its own."""
    return tuple((k, v) for k, v in response.headers.raw if k.lower() not in SERVER_ADDED)


def read_until(chunks, expected: bytes) -> bytes:
    data = b""
    while len(data) < len(expected):
        data += next(chunks)
    return data


# -- the real thing: wsgiref and Werkzeug ------------------------------------------------------


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
    # WSGI joins duplicate headers; wsgiref puts CONTENT_TYPE first and invents "text/plain".
    if server.kind == "wsgiref":
        assert ex.request_headers == (
            (b"Content-Type", b"text/plain"),
            *defaults(server),
            (b"X-Dup", b"1,2"),
        )
    else:
        assert ex.request_headers == (*defaults(server), (b"X-Dup", b"1,2"))
    assert ex.request_body == b""
    assert ex.status_code == 200
    assert ex.reason_phrase == "OK"
    assert ex.http_version == "HTTP/1.1"
    assert ex.response_headers == (
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"23"),
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

    assert response.status_code == 201
    assert response.content == body
    ex = server.sink.one()
    assert ex.method == "POST"
    assert ex.url == f"{server.url}/echo"
    content = ((b"Content-Type", b"application/octet-stream"), (b"Content-Length", b"1024"))
    if server.kind == "wsgiref":
        assert ex.request_headers == (content[1], content[0], *defaults(server))
    else:
        assert ex.request_headers == (*defaults(server), *content)
    assert ex.request_body == body
    assert (ex.status_code, ex.reason_phrase) == (201, "Created")
    assert ex.response_headers == ((b"Content-Type", b"application/octet-stream"),)
    assert ex.response_body == body


def test_readline_and_readlines_are_teed(server, client):
    response = client.post("/lines", content=b"a\nbb\nccc\n")

    assert response.text == "3 lines"
    assert server.sink.one().request_body == b"a\nbb\nccc\n"


def test_a_body_the_app_never_reads_is_not_recorded(server, client):
    response = client.post("/json", content=b"unread")

    assert response.status_code == 200
    assert server.sink.one().request_body == b""


def test_generator_response_streams_through_and_is_recorded_on_completion(server, client):
    with client.stream("GET", "/gated") as response:
        chunks = response.iter_raw()
        assert read_until(chunks, b"first\n") == b"first\n"
        # The generator waits for the gate: the client already has the first chunk, and
        # nothing is recorded before the response is complete.
        assert len(server.sink) == 0
        server.state.gate.set()
        assert b"".join(chunks) == b"second\n"

    ex = server.sink.one()
    assert ex.status_code == 200
    assert ex.response_headers == ((b"Content-Type", b"text/plain"),)
    assert ex.response_headers == received_headers(response)
    assert ex.response_body == b"first\nsecond\n"
    assert ex.truncated is False


def test_start_response_called_inside_the_generator(server, client):
    response = client.get("/stream")

    assert response.content == b"".join(STREAM_CHUNKS)
    ex = server.sink.one()
    assert (ex.status_code, ex.response_headers) == (200, ((b"Content-Type", b"text/plain"),))
    assert ex.response_body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_write_callable_output_is_recorded(server, client):
    response = client.get("/write")

    assert response.content == b"written, then returned"
    assert server.sink.one().response_body == b"written, then returned"


@pytest.mark.parametrize(("path", "message"), [("/boom", "boom"), ("/boom-first", "boom first")])
def test_app_error_is_recorded_and_the_client_gets_a_500(server, client, path, message):
    response = client.get(path)

    assert response.status_code == 500
    ex = server.sink.one()
    assert ex.url == f"{server.url}{path}"
    assert ex.status_code is None
    assert ex.error == tl.exchange.RecordedError(type="builtins.RuntimeError", message=message)
    assert (ex.reason_phrase, ex.response_headers, ex.response_body) == ("", (), b"")
    assert ex.truncated is False


def test_app_error_mid_stream_records_the_partial_response(server, client):
    if server.kind == "wsgiref":
        # HTTP/1.0 without Content-Length: the closed connection ends the body.
        assert client.get("/boom-later").content == b"partial\n"
    else:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/boom-later")

    ex = server.sink.one()
    assert ex.status_code == 200
    assert ex.response_body == b"partial\n"
    assert ex.truncated is True
    assert ex.error == tl.exchange.RecordedError(type="builtins.RuntimeError", message="boom later")


def test_credentials_are_redacted_in_the_store_but_reach_the_app(server, client):
    response = client.get(
        "/cookies",
        params={"token": "t-1", "page": "2"},
        headers={"Authorization": "Bearer s3cr3t-token", "Cookie": "session=abc; theme=dark"},
    )

    seen = server.state.seen[0]
    assert (seen["HTTP_AUTHORIZATION"], seen["HTTP_COOKIE"]) == (
        "Bearer s3cr3t-token",
        "session=abc; theme=dark",
    )
    assert response.headers.get_list("set-cookie") == [
        "session=s3cr3t; Path=/",
        "theme=dark; Path=/",
    ]
    ex = server.sink.one()
    assert ex.url == f"{server.url}/cookies?token=%5BREDACTED%5D&page=2"
    assert ex.request_headers[-2:] == (
        (b"Authorization", b"Bearer [REDACTED]"),
        (b"Cookie", b"session=[REDACTED]; theme=[REDACTED]"),
    )
    assert ex.response_headers == (
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"11"),
        (b"Set-Cookie", b"session=[REDACTED]; Path=/"),
        (b"Set-Cookie", b"theme=[REDACTED]; Path=/"),
        (b"X-Dup", b"1"),
        (b"X-Dup", b"2"),
    )
    assert ex.response_body == b"cookies set"


def test_client_disconnect_mid_stream_records_a_truncated_exchange(server, client):
    with client.stream("GET", "/endless") as response:
        assert read_until(response.iter_raw(), b"only this\n") == b"only this\n"
    # Leaving the block closes an unread response: httpx drops the connection.
    server.state.client_gone.set()

    assert server.state.generator_closed.wait(TIMEOUT)
    ex = server.sink.one()
    assert ex.status_code == 200
    assert ex.truncated is True
    assert ex.error is None
    # The server took every chunk but the last one, whose write failed.
    produced = server.state.chunks_produced
    assert 1 <= produced < 2000
    assert ex.response_body == b"only this\n" + BIG_CHUNK * (produced - 1)


def test_head_response_has_no_body(server, client):
    response = client.head("/json")

    assert response.content == b""
    ex = server.sink.one()
    assert (ex.method, ex.status_code, ex.response_body) == ("HEAD", 200, b"")


def test_every_exchange_is_recorded_in_order(server, client):
    # Each request waits for its exchange: server threads may record two quick requests in
    # either order, so "in order" means in the order they were served.
    for n, path in enumerate(("/json", "/missing", "/list"), start=1):
        client.get(path)
        server.sink.wait_for(n)

    exchanges = server.sink.wait_for(3)
    assert [(ex.url, ex.status_code, ex.reason_phrase, ex.response_body) for ex in exchanges] == [
        (f"{server.url}/json", 200, "OK", b'{"hello":"world","n":1}'),
        (f"{server.url}/missing", 404, "Not Found", b"not found"),
        (f"{server.url}/list", 200, "OK", b"one item"),
    ]


REQUESTS = [
    b"GET /json?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n\r\n",
    b"HEAD /json HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"POST /lines HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nConnection: close\r\n\r\na\nb\n",
    b"GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /list HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /write HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /cookies HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n",
    b"GET /boom HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /boom-first HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /boom-later HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
]


@pytest.mark.parametrize("kind", ["wsgiref", "werkzeug"])
def test_client_receives_identical_bytes_with_and_without_the_middleware(kind):
    date = re.compile(rb"\r\nDate: [^\r]*\r\n")
    sink = WaitingSink()
    with (
        serve_wsgi(make_app(AppState()), kind) as plain_url,
        serve_wsgi(RecordingWSGIMiddleware(make_app(AppState()), sink), kind) as recorded_url,
    ):
        for request in REQUESTS:
            plain = date.sub(b"\r\nDate: -\r\n", raw_request(plain_url, request))
            recorded = date.sub(b"\r\nDate: -\r\n", raw_request(recorded_url, request))
            assert recorded == plain
            assert plain.count(b"\r\nDate: -\r\n") == 1
        exchanges = sink.wait_for(len(REQUESTS))

    assert [(ex.method, ex.url, ex.status_code, ex.truncated) for ex in exchanges] == [
        ("GET", "http://h/json?x=1", 200, False),
        ("HEAD", "http://h/json", 200, False),
        ("POST", "http://h/echo", 201, False),
        ("POST", "http://h/lines", 200, False),
        ("GET", "http://h/stream", 200, False),
        ("GET", "http://h/list", 200, False),
        ("GET", "http://h/write", 200, False),
        ("GET", "http://h/cookies", 200, False),
        ("GET", "http://h/boom", None, False),
        ("GET", "http://h/boom-first", None, False),
        ("GET", "http://h/boom-later", 200, True),
        ("GET", "http://h/missing", 404, False),
    ]
    assert [ex.request_body for ex in exchanges[2:4]] == [b"hello", b"a\nb\n"]


# -- protocol corners, calling the middleware directly -----------------------------------------


def wsgi_environ(**changes):
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/p",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "example.test",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }
    environ.update(changes)
    return {k: v for k, v in environ.items() if v is not None}


class FakeServer:
    """A minimal PEP 3333 server: calls the app, iterates, closes; keeps what it was given."""

    def __init__(self) -> None:
        self.status = None
        self.headers = None
        self.written: list[bytes] = []

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None and self.written:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.written.append

    def run(self, app, environ, *, take: int | None = None):
        result = app(environ, self.start_response)
        try:
            for i, chunk in enumerate(result):
                if take is not None and i >= take:
                    break
                self.written.append(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        return result


def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def run(app, environ=None, **options):
    sink = tl.MemoryStream()
    server = FakeServer()
    server.run(RecordingWSGIMiddleware(app, sink, **options), environ or wsgi_environ())
    return sink, server


@pytest.mark.parametrize(
    ("changes", "url"),
    [
        ({}, "http://example.test/p"),
        ({"QUERY_STRING": "q=1&q=2&e=%20"}, "http://example.test/p?q=1&q=2&e=%20"),
        ({"SCRIPT_NAME": "/api", "PATH_INFO": "/items"}, "http://example.test/api/items"),
        ({"SCRIPT_NAME": "", "PATH_INFO": ""}, "http://example.test/"),
        # PEP 3333 native strings: the path bytes decoded as latin-1.
        ({"PATH_INFO": "/caf\u00c3\u00a9 x"}, "http://example.test/caf%C3%A9%20x"),
        ({"PATH_INFO": "/caf\u00e9"}, "http://example.test/caf%E9"),
        ({"PATH_INFO": "/a:b@c;d=e"}, "http://example.test/a:b@c;d=e"),
        ({"PATH_INFO": "/snow\u2603"}, "http://example.test/snow%E2%98%83"),
        ({"HTTP_HOST": None}, "http://127.0.0.1:8000/p"),
        ({"HTTP_HOST": None, "SERVER_PORT": "80"}, "http://127.0.0.1/p"),
        (
            {"HTTP_HOST": None, "wsgi.url_scheme": "https", "SERVER_PORT": "443"},
            "https://127.0.0.1/p",
        ),
        ({"HTTP_HOST": None, "SERVER_NAME": "::1"}, "http://[::1]:8000/p"),
        ({"HTTP_HOST": None, "SERVER_NAME": None, "SERVER_PORT": None}, "http://localhost/p"),
        # The raw request target, when the server provides it, keeps the wire form.
        ({"PATH_INFO": "/a/b", "RAW_URI": "/a%2Fb?x=%41"}, "http://example.test/a%2Fb?x=%41"),
        ({"PATH_INFO": "/a/b", "REQUEST_URI": "/a%2fb"}, "http://example.test/a%2fb"),
        ({"PATH_INFO": "/x", "RAW_URI": "http://proxy.test/x"}, "http://example.test/x"),
    ],
)
def test_url_is_rebuilt_from_the_environ(changes, url):
    sink, _ = run(ok_app, wsgi_environ(**changes))
    assert [ex.url for ex in sink.exchanges()] == [url]


def test_header_names_are_rebuilt_in_conventional_case():
    environ = wsgi_environ(
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="",
        HTTP_CONTENT_TYPE="application/json",
        HTTP_X_API_KEY="k",
        HTTP_TE="trailers",
        HTTP_DNT="1",
        HTTP_CONTENT_MD5="abc",
        HTTP_X_WEIRD="caf\u00e9",
        HTTP_X_NOT_TEXT=b"bytes",
    )
    sink, _ = run(ok_app, environ, redactor=tl.Redactor.disabled())
    assert sink[0].request_headers == (
        (b"Host", b"example.test"),
        (b"Content-Type", b"application/json"),
        (b"X-Api-Key", b"k"),
        (b"TE", b"trailers"),
        (b"DNT", b"1"),
        (b"Content-MD5", b"abc"),
        (b"X-Weird", b"caf\xe9"),
    )


@pytest.mark.parametrize(
    ("protocol", "expected"), [("HTTP/1.0", "HTTP/1.0"), (None, "HTTP/1.0"), ("HTTP/2", "HTTP/2")]
)
def test_http_version_comes_from_server_protocol(protocol, expected):
    sink, _ = run(ok_app, wsgi_environ(SERVER_PROTOCOL=protocol))
    assert sink[0].http_version == expected


def test_the_input_is_teed_whatever_the_app_calls():
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        parts = [stream.read(2), stream.readline(), stream.readline(3), *stream.readlines(1)]
        parts += list(stream)
        parts.append(stream.read())
        assert stream.tell() == 22  # other attributes pass through to the server's stream
        start_response("200 OK", [])
        return [repr(parts).encode()]

    body = b"abcd\nefgh\nij\nkl\nmnop\nq"
    original = io.BytesIO(body)
    environ = wsgi_environ(REQUEST_METHOD="POST", **{"wsgi.input": original})
    sink, server = run(app, environ)
    assert server.written == [
        repr([b"ab", b"cd\n", b"efg", b"h\n", b"ij\n", b"kl\n", b"mnop\n", b"q", b""]).encode()
    ]
    assert sink[0].request_body == body
    assert environ["wsgi.input"] is original  # the server's environ is left as it was


def test_nothing_is_read_ahead_of_the_app():
    def app(environ, start_response):
        environ["wsgi.input"].read(3)
        start_response("200 OK", [])
        return []

    stream = io.BytesIO(b"abcdef")
    sink, _ = run(app, wsgi_environ(**{"wsgi.input": stream}))
    assert stream.tell() == 3
    assert sink[0].request_body == b"abc"


def test_a_list_response_keeps_its_length_and_a_generator_has_none():
    def generator_app(environ, start_response):
        start_response("200 OK", [])
        yield b"x"

    sink = tl.MemoryStream()
    listed = RecordingWSGIMiddleware(ok_app, sink)(wsgi_environ(), FakeServer().start_response)
    generated = RecordingWSGIMiddleware(generator_app, sink)(
        wsgi_environ(), FakeServer().start_response
    )
    assert len(listed) == 1
    assert not hasattr(generated, "__len__")
    listed.close()
    generated.close()


def test_server_side_close_before_the_end_records_only_the_chunks_taken():
    closed = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield from (b"a", b"b", b"c", b"d")
        finally:
            closed.append(True)

    sink = tl.MemoryStream()
    server = FakeServer()
    server.run(RecordingWSGIMiddleware(app, sink), wsgi_environ(), take=2)
    assert server.written == [b"a", b"b"]
    assert closed == [True]
    ex = sink[0]
    # The third chunk was produced, but the server stopped before writing it.
    assert (ex.status_code, ex.response_body, ex.truncated, ex.error) == (200, b"ab", True, None)


def test_close_before_the_first_chunk_records_an_empty_truncated_response():
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([b"never taken"])

    sink = tl.MemoryStream()
    RecordingWSGIMiddleware(app, sink)(wsgi_environ(), FakeServer().start_response).close()
    assert (sink[0].status_code, sink[0].response_body, sink[0].truncated) == (200, b"", True)


def test_generator_that_never_calls_start_response_closed_early():
    def app(environ, start_response):
        yield b"x"

    sink = tl.MemoryStream()
    RecordingWSGIMiddleware(app, sink)(wsgi_environ(), FakeServer().start_response).close()
    ex = sink[0]
    assert ex.status_code is None
    assert ex.error == tl.exchange.RecordedError(
        type="traffic_lab.middleware.ClientDisconnected",
        message="the client disconnected before the response started",
    )


def test_an_app_that_never_calls_start_response_is_recorded_as_an_error():
    def app(environ, start_response):
        return []

    sink, _ = run(app)
    assert sink[0].status_code is None
    assert sink[0].error == tl.exchange.RecordedError(
        type="traffic_lab.middleware.NoResponse",
        message="the app returned without starting a response",
    )


def test_start_response_again_with_exc_info_replaces_the_response():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("bad input")
        except ValueError:
            start_response("400 Bad Request", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"bad input"]

    sink, server = run(app)
    assert server.status == "400 Bad Request"
    ex = sink[0]
    assert (ex.status_code, ex.reason_phrase, ex.response_body, ex.error) == (
        400,
        "Bad Request",
        b"bad input",
        None,
    )


def test_unusual_status_lines_and_header_iterables():
    def app(environ, start_response):
        start_response("299", (pair for pair in [("X-A", "1")]))
        return [b""]

    sink, server = run(app)
    assert server.headers == [("X-A", "1")]
    ex = sink[0]
    assert (ex.status_code, ex.reason_phrase, ex.response_headers) == (299, "", ((b"X-A", b"1"),))


def test_errors_in_close_after_a_complete_body_are_reraised_exchange_kept():
    class Body:
        def __iter__(self):
            return iter([b"x"])

        def close(self):
            raise OSError("cleanup failed")

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    sink = tl.MemoryStream()
    with pytest.raises(OSError, match="cleanup failed"):
        FakeServer().run(RecordingWSGIMiddleware(app, sink), wsgi_environ())
    # The exchange was recorded when the server took the last chunk, before close(): the
    # client got a complete response, and the app's cleanup error goes to the server.
    [ex] = list(sink.exchanges())
    assert (ex.status_code, ex.response_body, ex.truncated, ex.error) == (200, b"x", False, None)


def test_the_apps_exception_is_reraised_unchanged():
    error = KeyError("app bug")

    def app(environ, start_response):
        raise error

    sink = tl.MemoryStream()
    with pytest.raises(KeyError) as raised:
        FakeServer().run(RecordingWSGIMiddleware(app, sink), wsgi_environ())
    assert raised.value is error
    assert not getattr(error, "__notes__", None)
    assert sink[0].error == tl.exchange.RecordedError(type="builtins.KeyError", message="'app bug'")


class FailingSink:
    def put(self, exchange):
        raise RuntimeError("disk full")


def test_a_failing_sink_surfaces_from_close_after_the_response_was_sent():
    server = FakeServer()
    with pytest.raises(RuntimeError, match="disk full"):
        server.run(RecordingWSGIMiddleware(ok_app, FailingSink()), wsgi_environ())
    assert server.written == [b"ok"]


def test_a_failing_sink_never_replaces_the_apps_exception():
    def app(environ, start_response):
        raise KeyError("app bug")

    with pytest.raises(KeyError, match="app bug") as raised:
        FakeServer().run(RecordingWSGIMiddleware(app, FailingSink()), wsgi_environ())
    assert raised.value.__notes__ == [
        "traffic_lab: the Sink failed to record this exchange: RuntimeError('disk full')"
    ]


def test_redaction_tags_and_attributes_through_httpx_wsgi_transport():
    def app(environ, start_response):
        start_response("200 OK", [("Set-Cookie", "s=1")])
        return [b"ok"]

    redacting, plain = tl.MemoryStream(), tl.MemoryStream()
    apps = [
        RecordingWSGIMiddleware(app, redacting, tags={"run": "1"}),
        RecordingWSGIMiddleware(app, plain, redactor=tl.Redactor.disabled()),
    ]
    for recorded_app in apps:
        with httpx.Client(
            transport=httpx.WSGITransport(app=recorded_app), base_url="http://testserver"
        ) as client:
            response = client.get("/", headers={"Authorization": "Basic dXNlcg=="})
            assert response.headers["set-cookie"] == "s=1"

    assert (b"Authorization", b"Basic [REDACTED]") in redacting[0].request_headers
    assert redacting[0].response_headers == ((b"Set-Cookie", b"s=[REDACTED]"),)
    assert dict(redacting[0].tags) == {"run": "1"}
    assert (b"Authorization", b"Basic dXNlcg==") in plain[0].request_headers
    assert plain[0].response_headers == ((b"Set-Cookie", b"s=1"),)
    assert apps[0].sink is redacting
    assert apps[0].redactor.enabled is True
    assert dict(apps[0].tags) == {"run": "1"}
    assert dict(apps[1].tags) == {}
    assert repr(apps[1]) == f"RecordingWSGIMiddleware(app={app!r}, sink={plain!r})"
