"""The recording reverse proxy (ProxyApp under uvicorn): callers get what the upstream sent, the
capture gets it as the proxy's upstream client saw it, redacted. Real clients: httpx, curl."""

from __future__ import annotations

import base64
import gzip
import json

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.servers import BackgroundServer, ProxyApp, ServerBindError, bind_socket
from traffic_lab.testing import LoopbackServer, free_port

from .conftest import curl


@pytest.fixture
def proxy(server, sink):
    with BackgroundServer(ProxyApp(server.url, sink)) as running:
        yield running


def test_response_passes_through_as_the_upstream_sent_it(proxy, server, sink):
    got = curl(proxy.url + "/gzip")
    [exchange] = sink.wait_for(1)
    assert got.status_line == "HTTP/1.1 200 OK"
    assert got.body == exchange.response_body
    assert json.loads(gzip.decompress(got.body)) == tl.testing.sample_json(2048)
    assert [(k.encode(), v.encode()) for k, v in got.headers] == list(exchange.response_headers)
    assert exchange.url == server.url + "/gzip"
    assert exchange.request_headers[0] == (b"Host", httpx.URL(server.url).netloc)


def test_reason_phrase_passes_through(proxy, sink):
    assert curl(proxy.url + "/reason").status_line == "HTTP/1.1 299 Custom Reason"
    assert sink.wait_for(1)[0].reason_phrase == "Custom Reason"


def test_request_body_and_query_are_forwarded(proxy, sink):
    with httpx.Client() as client:
        response = client.post(proxy.url + "/echo?a=1&b=%2F", content=b"\x00binary\xff")
    doc = response.json()
    assert (doc["method"], doc["path"], doc["query"]) == ("POST", "/echo", "a=1&b=%2F")
    assert base64.b64decode(doc["body"]) == b"\x00binary\xff"
    [exchange] = sink.wait_for(1)
    assert exchange.request_body == b"\x00binary\xff"
    assert exchange.response_body == response.content


def test_hop_by_hop_headers_are_not_forwarded(proxy):
    with httpx.Client() as client:
        doc = client.get(
            proxy.url + "/echo",
            headers={
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "1",
                "Keep-Alive": "5",
                "X-End": "2",
            },
        ).json()
    names = [name.lower() for name, _ in doc["headers"]]
    assert "x-hop" not in names and "keep-alive" not in names
    assert "x-end" in names


def test_chunked_response_streams_through_and_is_recorded_whole(proxy, sink):
    with httpx.Client() as client, client.stream("GET", proxy.url + "/stream?chunks=4&size=8") as r:
        chunks = list(r.iter_raw())
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.headers
    assert b"".join(chunks) == b"00000000" + b"00010001" + b"00020002" + b"00030003"
    [exchange] = sink.wait_for(1)
    assert exchange.response_body == b"".join(chunks)
    assert exchange.truncated is False


def test_secrets_reach_the_upstream_and_the_caller_but_are_redacted_in_the_capture(server, sink):
    with BackgroundServer(ProxyApp(server.url, sink)) as running, httpx.Client() as client:
        echoed = client.get(
            running.url + "/echo?token=s3cret", headers={"Authorization": "Bearer abc"}
        ).json()
        cookies = client.get(running.url + "/headers")
    # The server hands the proxy lowercase names (h11); they are forwarded as received.
    assert ["authorization", "Bearer abc"] in echoed["headers"]
    assert echoed["query"] == "token=s3cret"
    assert cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    echo, headers = sink.wait_for(2)
    assert echo.url == server.url + "/echo?token=%5BREDACTED%5D"
    assert (b"authorization", b"Bearer [REDACTED]") in echo.request_headers
    assert [v for k, v in headers.response_headers if k == b"Set-Cookie"] == [
        b"a=[REDACTED]; Path=/",
        b"b=[REDACTED]; Path=/",
    ]


def test_no_redact_records_everything(server, sink):
    app = ProxyApp(server.url, sink, redactor=tl.Redactor.disabled(), tags={"run": "1"})
    with BackgroundServer(app) as running:
        httpx.get(running.url + "/echo", headers={"Authorization": "Bearer abc"})
    [exchange] = sink.wait_for(1)
    assert (b"authorization", b"Bearer abc") in exchange.request_headers
    assert dict(exchange.tags) == {"run": "1"}


def test_upstream_base_path_is_a_prefix(server, sink):
    with BackgroundServer(ProxyApp(server.url + "/echo/", sink)) as running:
        doc = httpx.get(running.url + "/v1/items?x=1").json()
    assert (doc["path"], doc["query"]) == ("/echo/v1/items", "x=1")
    assert sink.wait_for(1)[0].url == server.url + "/echo/v1/items?x=1"


def test_upstream_down_answers_502_and_is_recorded_with_its_error(sink):
    port = free_port()  # nothing listens there
    app = ProxyApp(f"http://127.0.0.1:{port}", sink)
    with BackgroundServer(app) as running:
        got = curl(running.url + "/users/1")
    assert got.status_line == "HTTP/1.1 502 Bad Gateway"
    assert got.header("x-traffic-lab-proxy") == ["upstream-error"]
    body = json.loads(got.body)
    assert body["error"] == "httpx.ConnectError"
    assert body["upstream"] == f"http://127.0.0.1:{port}"
    [exchange] = sink.wait_for(1)
    assert exchange.url == f"http://127.0.0.1:{port}/users/1"
    assert exchange.status_code is None
    assert exchange.error is not None and exchange.error.type == "httpx.ConnectError"
    assert app.counts == {"forwarded": 0, "failed": 1}


def test_upstream_timeout_answers_504(server, sink):
    with BackgroundServer(ProxyApp(server.url, sink, timeout=0.2)) as running:
        response = httpx.get(running.url + "/json?ms=1500")
    assert response.status_code == 504
    assert response.json()["error"] == "httpx.ReadTimeout"
    assert sink.wait_for(1)[0].error.type == "httpx.ReadTimeout"


def test_caller_leaving_mid_stream_is_recorded_truncated(server, sink):
    with BackgroundServer(ProxyApp(server.url, sink)) as running:
        url = running.url + "/stream?chunks=200&size=1000&delay_ms=20"
        with httpx.Client() as client, client.stream("GET", url) as response:
            first = next(response.iter_raw())
        [exchange] = sink.wait_for(1)
    assert first == b"0000" * 250
    assert exchange.truncated is True
    assert 1000 <= len(exchange.response_body) < 200_000


def test_upstream_must_be_a_base_url():
    with pytest.raises(ValueError, match="upstream must be an http"):
        ProxyApp("ftp://host", tl.MemoryStream())
    with pytest.raises(ValueError, match="query or fragment"):
        ProxyApp("http://host/?a=1", tl.MemoryStream())


def test_bind_socket_reports_a_port_in_use():
    with LoopbackServer() as busy:
        port = httpx.URL(busy.url).port
        with pytest.raises(
            ServerBindError, match=f"cannot listen on 127.0.0.1:{port}: the port is in use"
        ):
            bind_socket("127.0.0.1", port)
    with pytest.raises(ServerBindError, match="unknown host"):
        bind_socket("no-such-host.invalid", 0)


def test_servers_package_does_not_import_uvicorn():
    import subprocess
    import sys

    code = (
        "import sys, traffic_lab.servers; "
        "print([m for m in ('uvicorn', 'pyarrow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


class _BreaksMidBody(httpx.AsyncByteStream):
    async def __aiter__(self):
        yield b"first part, "
        raise httpx.ReadError("upstream reset the connection")

    async def aclose(self):
        pass


class _Upstream(httpx.AsyncBaseTransport):
    """An upstream whose answer to /broken breaks off mid-body."""

    async def handle_async_request(self, request):
        if request.url.path == "/broken":
            return httpx.Response(
                200, headers={"content-type": "text/plain"}, stream=_BreaksMidBody()
            )
        return httpx.Response(200, content=b"whole")


def test_upstream_failing_mid_body_is_recorded_truncated_with_its_error(sink):
    app = ProxyApp("http://upstream.test", sink, transport=_Upstream())
    with BackgroundServer(app) as running, httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(running.url + "/broken")
        assert client.get(running.url + "/fine").content == b"whole"
    broken, fine = sink.wait_for(2)
    assert (broken.truncated, broken.response_body) == (True, b"first part, ")
    assert broken.error is not None and broken.error.type == "httpx.ReadError"
    assert (fine.truncated, fine.response_body) == (False, b"whole")


@pytest.mark.anyio
async def test_an_upstream_transport_answering_with_read_responses(sink):
    # httpx.MockTransport hands back responses already read: nothing left to stream.
    upstream = httpx.MockTransport(lambda r: httpx.Response(201, content=b"made " + r.content))
    app = ProxyApp("http://upstream.test", sink, transport=upstream)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://p") as c:
        response = await c.post("/items", content=b"x")
    assert (response.status_code, response.content) == (201, b"made x")
    [exchange] = sink.wait_for(1)
    assert (exchange.url, exchange.response_body) == ("http://upstream.test/items", b"made x")


@pytest.mark.parametrize("status", [600, 999])
def test_upstream_status_above_599_passes_through(proxy, sink, status):
    got = curl(proxy.url + f"/status/{status}")
    assert got.status_line == f"HTTP/1.1 {status} "
    assert json.loads(got.body) == {"status": status}
    assert sink.wait_for(1)[0].status_code == status
