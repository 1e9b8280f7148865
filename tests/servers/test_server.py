"""traffic_lab's own HTTP/1.1 server (asyncio + h11) under its apps and under plain ASGI apps:
statuses and reason phrases, keep-alive, pipelining, 100-continue, HTTP/1.0, bad requests, app
failures, and stopping. Real clients: curl, httpx, raw sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

import traffic_lab.servers._server as server_module
from traffic_lab.servers import REASON_EXTENSION, BackgroundServer
from traffic_lab.servers._asgi import lifespan, read_body

from .conftest import curl


def app_answering(status, reason=None, body=b"hi", delay=0.0):
    """A plain ASGI app: every request gets ``status`` (and ``reason`` when the server takes one)."""
    seen = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        seen.append(scope)
        request_body = await read_body(receive)
        if delay:
            await asyncio.sleep(delay)
        start = {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body + request_body)).encode())],
        }
        if reason is not None and REASON_EXTENSION in scope["extensions"]:
            start["reason"] = reason
        await send(start)
        await send({"type": "http.response.body", "body": body + request_body})

    app.seen = seen
    return app


def raw_exchange(url, data, *, read_until=None):
    """Send ``data`` on a fresh connection; what came back until the server closed it (or
    until ``read_until`` bytes were seen)."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while read_until is None or read_until not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (200, None, "HTTP/1.1 200 OK"),
        (404, b"", "HTTP/1.1 404 Not Found"),  # no phrase given: the standard one
        (299, None, "HTTP/1.1 299 "),  # a status without a standard phrase
        (299, b"Custom Reason", "HTTP/1.1 299 Custom Reason"),
        (799, b"Odd", "HTTP/1.1 799 Odd"),
        (999, None, "HTTP/1.1 999 "),
    ],
)
def test_any_status_200_999_with_the_reason_the_app_gives(status, reason, line):
    with BackgroundServer(app_answering(status, reason)) as running:
        got = curl(running.url + "/")
    assert got.status_line == line
    assert got.headers == [("content-length", "2")]  # nothing of the server's own
    assert got.body == b"hi"


def test_scope_is_asgi_3_with_the_request_as_sent():
    app = app_answering(200)
    with BackgroundServer(app) as running:
        curl(running.url + "/a%2Fb/c?x=1&y=%20", "-H", "X-Case: Kept")
    [scope] = app.seen
    port = httpx.URL(running.url).port
    assert {k: scope[k] for k in scope if k not in ("headers", "client")} == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/a/b/c",
        "raw_path": b"/a%2Fb/c",
        "query_string": b"x=1&y=%20",
        "root_path": "",
        "server": ("127.0.0.1", port),
        "extensions": {REASON_EXTENSION: {}},
    }
    assert scope["headers"] == [
        (b"host", f"127.0.0.1:{port}".encode()),
        (b"user-agent", b"curl/" + scope["headers"][1][1].partition(b"/")[2]),
        (b"accept", b"*/*"),
        (b"x-case", b"Kept"),
    ]
    assert scope["client"][0] == "127.0.0.1"


def test_keep_alive_and_pipelined_requests_are_answered_in_order():
    with BackgroundServer(app_answering(200)) as running:
        two = (
            b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo"
        )
        received = raw_exchange(running.url, two)
    assert received == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhione"
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nConnection: close\r\n\r\nhitwo"
    )


def test_http_1_0_client_gets_the_answer_and_the_connection_closes():
    with BackgroundServer(app_answering(200)) as running:
        received = raw_exchange(running.url, b"GET / HTTP/1.0\r\n\r\n")
    assert received == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close\r\n\r\nhi"


def test_expect_100_continue_is_answered_when_the_app_reads_the_body():
    with BackgroundServer(app_answering(200)) as running:
        done = subprocess.run(
            ["/usr/bin/curl", "-si", "--max-time", "10", "-H", "Expect: 100-continue",
             "--data-binary", "body", running.url + "/"],
            capture_output=True,
            timeout=20,
            check=True,
        )  # fmt: skip
    assert done.stdout == (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhibody"
    )


def test_malformed_request_answers_400_and_closes():
    with BackgroundServer(app_answering(200)) as running:
        received = raw_exchange(running.url, b"NOT HTTP AT ALL\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\n\r\nbad request: " in received


def test_app_failing_before_answering_gets_500(caplog):
    async def broken(scope, receive, send):
        if scope["type"] == "http":
            raise ValueError("boom")

    with BackgroundServer(broken) as running, httpx.Client() as client:
        first = client.get(running.url + "/")
        second = client.get(running.url + "/")  # the connection is still usable
    assert [(r.status_code, r.text) for r in (first, second)] == [
        (500, "Internal Server Error"),
        (500, "Internal Server Error"),
    ]
    assert "the app failed on GET /" in caplog.text


def test_idle_connections_wait_at_most_keep_alive_seconds(monkeypatch):
    monkeypatch.setattr(server_module, "KEEP_ALIVE", 0.3)
    with BackgroundServer(app_answering(200)) as running:
        started = time.monotonic()
        received = raw_exchange(running.url, b"")  # connects, sends nothing
        waited = time.monotonic() - started
    assert received == b""
    assert 0.2 < waited < 5


def test_stop_closes_idle_connections_and_lets_requests_in_flight_finish():
    running = BackgroundServer(app_answering(200, delay=0.5)).start()
    results = []
    with httpx.Client() as client:
        client.get(running.url + "/warm")  # leaves an idle keep-alive connection
        slow = threading.Thread(target=lambda: results.append(httpx.get(running.url + "/slow")))
        slow.start()
        time.sleep(0.2)
        started = time.monotonic()
        running.stop()
        took = time.monotonic() - started
        slow.join(10)
    assert [(r.status_code, r.text) for r in results] == [(200, "hi")]
    assert took < 2


def test_serving_imports_no_uvicorn():
    code = (
        "import sys, httpx, traffic_lab as tl\n"
        "from traffic_lab.servers import BackgroundServer, MockApp\n"
        "stream = tl.MemoryStream()\n"
        "stream.put(tl.Exchange('GET', 'https://a.example/', status_code=799, reason_phrase='X'))\n"
        "with BackgroundServer(MockApp(stream)) as server:\n"
        "    response = httpx.get(server.url)\n"
        "print(response.status_code, response.reason_phrase, 'uvicorn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout == "799 X False\n", out.stderr


def test_run_server_freezes_what_the_app_loaded():
    # A full garbage collection never walks what existed when serving began (a big cache).
    code = (
        "import gc, os, signal, threading, httpx\n"
        "from traffic_lab.servers import bind_socket, run_server\n"
        "loaded = [[i] for i in range(10_000)]\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        body = str(gc.get_freeze_count() > len(loaded)).encode()\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': body})\n"
        "sock = bind_socket()\n"
        "url = 'http://127.0.0.1:%d/' % sock.getsockname()[1]\n"
        "def ask():\n"
        "    print(httpx.get(url).text, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "threading.Thread(target=ask).start()\n"
        "run_server(app, sock)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout == "True\n", out.stderr


def test_a_request_body_the_app_did_not_read_keeps_the_connection_usable():
    async def answers_at_once(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body"})

    with BackgroundServer(answers_at_once) as running:
        received = raw_exchange(
            running.url,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert received == (
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    )


def test_a_second_stop_cuts_requests_in_flight_short(caplog):
    running = BackgroundServer(app_answering(200, delay=30)).start()
    errors = []

    def ask():
        try:
            httpx.get(running.url + "/slow", timeout=20)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)

    slow = threading.Thread(target=ask)
    slow.start()
    time.sleep(0.3)
    started = time.monotonic()
    running.stop(timeout=0.5)  # the first stop waits 0.5 s, then a second one cancels
    took = time.monotonic() - started
    slow.join(10)
    assert errors == ["RemoteProtocolError"]
    assert took < 3
    assert "Exception" not in caplog.text
