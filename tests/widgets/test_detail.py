"""The detail pane (detail_html): each tab's content for JSON, text, image, binary, empty and
failed exchanges; wire and sorted headers; hostile captures; the generated code, run."""

from __future__ import annotations

import ast
import base64
import gzip
import json
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traffic_lab as tl
from traffic_lab.exchange import Chunk, RecordedError
from traffic_lab.testing import make_exchange
from traffic_lab.transports import ReplayResult
from traffic_lab.widgets._detail import (
    MAX_CHUNKS_SHOWN,
    MAX_CODE_BODY,
    MAX_DEPTH,
    MAX_NODES,
    TABS,
    detail_css,
    detail_html,
)
from traffic_lab.widgets.snippets import (
    to_curl,
    to_httpx_code,
    to_pytest_httpx_code,
    to_respx_code,
)

AT = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def panel(html: str, key: str) -> str:
    """The HTML of one tab's panel."""
    start = html.index(f'<div class="tl-d-panel tl-d-panel-{key}">')
    end = html.find('<div class="tl-d-panel ', start + 1)
    return html[start : end if end != -1 else None]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text(fragment: str) -> str:
    """The visible text of a fragment, runs of white space made one space."""
    parser = _Text()
    parser.feed(fragment)
    return " ".join(" ".join(parser.parts).split())


def ex(**kwargs):
    kwargs.setdefault("started_at", AT)
    return make_exchange(**kwargs)


def response_of(exchange: tl.Exchange) -> str:
    return panel(detail_html(exchange, uid="t", style=False), "response")


# -- structure -----------------------------------------------------------------------------------


def test_tabs_are_radio_inputs_with_ids_from_the_uid():
    html = detail_html(ex(), uid="row-7", style=False)
    for key, label in TABS[:-1]:
        assert (
            f'<input type="radio" class="tl-d-tab tl-d-tab-{key}" name="tl-d-row-7-tab" '
            f'id="tl-d-row-7-tab-{key}"'
        ) in html
        assert f'<label for="tl-d-row-7-tab-{key}">{label}</label>' in html
    assert 'id="tl-d-row-7-tab-headers" checked>' in html
    assert "tl-d-tab-replay" not in html
    assert "<script" not in html
    assert html.startswith('<div class="tl-detail" id="tl-d-row-7">')


def test_the_uid_is_cleaned_and_panes_without_one_differ():
    html = detail_html(ex(), uid='"><script>x', style=False)
    assert html.startswith('<div class="tl-detail" id="tl-d-scriptx">')
    first, second = detail_html(ex(), style=False), detail_html(ex(), style=False)
    assert first.split('"', 4)[3] != second.split('"', 4)[3]  # the pane ids


def test_style_is_inlined_once_and_scoped():
    html = detail_html(ex(), uid="a")
    assert html.startswith(f"<style>{detail_css()}</style>")
    rules = [line for line in detail_css().splitlines() if line.startswith(".")]
    # the shared palette first (theme.css), then the pane's own rules, all under tl- classes
    assert rules[0] == ".tl-browser, .tl-player, .tl-detail {"
    assert rules[1:] and all(line.startswith(".tl-detail") for line in rules[1:])
    assert "var(--jp-layout-color1" in detail_css()


def test_top_line():
    html = detail_html(ex(method="POST", url="https://a.example/x", status_code=404), uid="a")
    top = html[html.index('<div class="tl-d-top">') : html.index("<input")]
    assert text(top) == "POST 404 https://a.example/x 12.5 ms · 0 B"
    assert '<span class="tl-d-status tl-d-s4">404</span>' in top


# -- headers -------------------------------------------------------------------------------------


def test_headers_in_wire_order_and_sorted():
    exchange = ex(
        url="https://a.example/x",
        request_headers=[("X-B", "2"), ("accept", "*/*"), ("X-A", "1")],
        response_headers=[
            ("Server", "s"),
            ("content-type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        response_body=b"hi",
    )
    headers = panel(detail_html(exchange, uid="h", style=False), "headers")
    assert '<input type="checkbox" class="tl-d-sort" id="tl-d-h-sort">' in headers
    tables = re.findall(r"<table.*?</table>", headers)
    assert [text(t) for t in tables] == [
        "Request URL https://a.example/x Request Method GET Status Code 200 OK "
        "HTTP Version HTTP/1.1",
        "Server s content-type text/plain Set-Cookie a=1 Set-Cookie b=2 Content-Length 2",  # wire
        "Content-Length 2 content-type text/plain Server s Set-Cookie a=1 Set-Cookie b=2",  # sorted
        "X-B 2 accept */* X-A 1",
        "accept */* X-A 1 X-B 2",
    ]
    assert [t.split('"')[1] for t in tables] == [
        "tl-d-kv ",
        "tl-d-kv tl-d-wire",
        "tl-d-kv tl-d-sorted",
        "tl-d-kv tl-d-wire",
        "tl-d-kv tl-d-sorted",
    ]
    assert 'Response Headers <span class="tl-d-count">(5)</span>' in headers


# -- response bodies -----------------------------------------------------------------------------


def test_json_response_is_a_highlighted_tree():
    exchange = ex(json={"id": 1, "ok": True, "none": None, "name": "a<b", "tags": ["x"], "e": {}})
    preview = response_of(exchange).split('<div class="tl-d-preview">')[1]
    preview = preview.split('<div class="tl-d-raw">')[0].removesuffix("</div>")
    assert preview == (
        '<div class="tl-d-json"><details open><summary><span class="tl-j-inline">'
        "{id: 1, ok: true, none: null, name: &quot;a&lt;b&quot;, tags: […], e: {}}</span> "
        '<span class="tl-j-count">6 keys</span>'
        '</summary><div class="tl-j-children">'
        '<div class="tl-j-leaf"><span class="tl-j-key">&quot;id&quot;</span>: '
        '<span class="tl-j-num">1</span></div>'
        '<div class="tl-j-leaf"><span class="tl-j-key">&quot;ok&quot;</span>: '
        '<span class="tl-j-bool">true</span></div>'
        '<div class="tl-j-leaf"><span class="tl-j-key">&quot;none&quot;</span>: '
        '<span class="tl-j-null">null</span></div>'
        '<div class="tl-j-leaf"><span class="tl-j-key">&quot;name&quot;</span>: '
        '<span class="tl-j-str">&quot;a&lt;b&quot;</span></div>'
        '<details open><summary><span class="tl-j-key">&quot;tags&quot;</span>: '
        '<span class="tl-j-inline">[&quot;x&quot;]</span> '
        '<span class="tl-j-count">1 item</span></summary><div class="tl-j-children">'
        '<div class="tl-j-leaf"><span class="tl-j-idx">0</span>: '
        '<span class="tl-j-str">&quot;x&quot;</span></div></div></details>'
        '<div class="tl-j-leaf"><span class="tl-j-key">&quot;e&quot;</span>: '
        '<span class="tl-j-punct">{}</span></div>'
        "</div></details></div>"
    )


def test_raw_view_shows_the_wire_bytes():
    body = gzip.compress(b'{"a": 1}', mtime=0)
    exchange = ex(
        response_headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        response_body=body,
    )
    response = response_of(exchange)
    assert '<div class="tl-d-note">decoded from gzip</div><div class="tl-d-json">' in response
    raw = response.split('<div class="tl-d-raw">')[1]
    assert raw.startswith(f'<div class="tl-d-note">{len(body)} bytes on the wire</div>')
    assert '<pre class="tl-d-hex">00000000  1f 8b 08 00' in raw
    assert '<input type="radio" class="tl-d-vpreview" name="tl-d-t-response-view" ' in response
    plain = response_of(ex(response_headers={"Content-Type": "text/plain"}, response_body=b"a<b"))
    assert plain.split('<div class="tl-d-raw">')[1] == (
        '<div class="tl-d-note">3 bytes on the wire</div><pre class="tl-d-text">a&lt;b</pre>'
        "</div></div></div>"
    )


def test_text_response():
    response = response_of(
        ex(response_headers={"Content-Type": "text/html"}, response_body=HOSTILE.encode())
    )
    preview = response.split('<div class="tl-d-preview">')[1].split("</div>")[0]
    assert preview == (
        '<pre class="tl-d-text">&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</pre>'
    )


def test_image_response_is_inlined_only_when_type_and_bytes_agree():
    png = response_of(ex(response_headers={"Content-Type": "image/png"}, response_body=PNG))
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert f'<div class="tl-d-image"><img src="{url}" alt="image/png, 70 bytes">' in png
    svg = b'<svg onload="alert(1)"/>'
    fake = response_of(ex(response_headers={"Content-Type": "image/png"}, response_body=svg))
    assert "<img" not in fake and "data:" not in fake
    assert "not a image/png image (or over 4 MB): shown as hex" in fake
    as_svg = response_of(ex(response_headers={"Content-Type": "image/svg+xml"}, response_body=svg))
    assert "<img" not in as_svg
    assert '<pre class="tl-d-text">&lt;svg onload=&quot;alert(1)&quot;/&gt;</pre>' in as_svg


def test_binary_response_is_a_hex_dump():
    response = response_of(
        ex(response_headers={"Content-Type": "application/octet-stream"}, response_body=bytes(20))
    )
    assert response.split('<div class="tl-d-preview">')[1].split("</pre>")[0] == (
        '<div class="tl-d-note">20 bytes of binary data</div><pre class="tl-d-hex">'
        "00000000  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................\n"
        "00000010  00 00 00 00                                      ...."
    )


def test_empty_response_and_payload():
    html = detail_html(ex(response_body=b""), uid="e", style=False)
    assert '<div class="tl-d-preview"><div class="tl-d-empty">(empty body)</div></div>' in html
    assert text(panel(html, "payload")) == "Request Payload (empty body)"


def test_failed_exchange():
    failed = ex(status_code=None, error=RecordedError("httpx.ConnectError", "refused <x>"))
    html = detail_html(failed, uid="f", style=False)
    assert text(panel(html, "response")) == "transport error: httpx.ConnectError: refused <x>"
    assert '<span class="tl-d-status tl-d-serr">failed</span>' in html
    assert "Status Code transport error: httpx.ConnectError: refused <x>" in text(
        panel(html, "headers")
    )
    assert "side_effect=httpx.ConnectError(&#x27;refused &lt;x&gt;&#x27;)" in panel(html, "code")


def test_invalid_utf8_text_is_shown_as_latin1_with_a_note():
    response = response_of(
        ex(response_headers={"Content-Type": "text/plain"}, response_body=b"caf\xe9 \xff")
    )
    assert (
        '<div class="tl-d-note">not valid UTF-8: shown as latin-1</div>'
        '<pre class="tl-d-text">café ÿ</pre>'
    ) in response


def test_undecodable_body_shows_hex_and_a_note():
    response = response_of(
        ex(
            response_headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            response_body=b"\x1f\x8b not gzip at all",
        )
    )
    preview = response.split('<div class="tl-d-preview">')[1]
    assert preview.startswith(
        '<div class="tl-d-note">could not decode gzip (truncated or corrupt): shown as stored; '
        '18 bytes</div><pre class="tl-d-hex">00000000  1f 8b 20 6e'
    )


def test_gzip_bomb_stops_at_the_decode_cap():
    bomb = gzip.compress(bytes(100 << 20), compresslevel=1)
    exchange = ex(
        response_headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        response_body=bomb,
    )
    started = time.perf_counter()
    response = response_of(exchange)
    assert time.perf_counter() - started < 5
    preview = response.split('<div class="tl-d-preview">')[1]
    assert preview.startswith(
        '<div class="tl-d-note">gzip body decodes to more than 67108864 bytes: shown as stored; '
        f'{len(bomb):,} bytes</div><pre class="tl-d-hex">00000000  1f 8b'
    )
    assert len(response) < 100_000


def test_deeply_nested_json_is_bounded():
    deep: object = 1
    for _ in range(40):
        deep = {"a": deep}
    html = response_of(ex(json=deep))
    preview = html.split('<div class="tl-d-preview">')[1].split('<div class="tl-d-raw">')[0]
    assert preview.count("<details") == MAX_DEPTH
    assert f'<span class="tl-j-deep" title="nested deeper than {MAX_DEPTH} levels">' in preview
    assert "{&quot;a&quot;: " * 3 in preview.split("tl-j-deep")[1]
    beyond_the_parser = b"[" * 100_000 + b"]" * 100_000
    too_deep = response_of(
        ex(response_headers={"Content-Type": "application/json"}, response_body=beyond_the_parser)
    )
    assert (
        '<div class="tl-d-note">not valid JSON: shown as text</div><pre class="tl-d-text">[[['
        in (too_deep)
    )


def test_big_json_trees_stop_at_the_node_cap():
    html = response_of(ex(json=list(range(10_000))))
    assert html.count('<span class="tl-j-idx">') == MAX_NODES - 1  # the list is a node too
    assert '<div class="tl-d-note">… 8,001 more not shown</div>' in html


def test_ten_megabyte_bodies_are_cut():
    big = b"x" * (10 << 20)
    started = time.perf_counter()
    text_html = response_of(ex(response_headers={"Content-Type": "text/plain"}, response_body=big))
    json_body = b'["' + b"y" * (10 << 20) + b'"]'
    json_html = response_of(
        ex(response_headers={"Content-Type": "application/json"}, response_body=json_body)
    )
    assert time.perf_counter() - started < 5
    assert "showing the first 256 KB of 10,485,760 bytes" in text_html
    assert "10,485,764 bytes of JSON: shown as text, not as a tree; showing the first 256 KB" in (
        json_html
    )
    assert "showing the first 64 KB" in text_html  # the raw view
    assert len(text_html) < 400_000 and len(json_html) < 400_000


def test_hostile_values_are_escaped_everywhere():
    exchange = ex(
        method="POST",
        url=f"https://evil.example/{HOSTILE}?q={HOSTILE}",
        request_headers=[(HOSTILE, HOSTILE), ("Content-Type", "application/x-www-form-urlencoded")],
        request_body=f"a={HOSTILE}".encode(),
        response_headers=[(HOSTILE, HOSTILE), ("Content-Type", "application/json")],
        response_body=json.dumps({HOSTILE: HOSTILE, "n": [HOSTILE]}).encode(),
        tags={HOSTILE: HOSTILE},
    )
    live = httpx.Response(
        500, headers={HOSTILE: HOSTILE}, text=HOSTILE, request=httpx.Request("GET", "http://h/")
    )
    html = detail_html(exchange, uid=HOSTILE, replay=ReplayResult(exchange, live))
    assert "<script" not in html.lower()
    assert "alert('x')" not in html
    assert html.count("&lt;script&gt;") > 20


# -- payload, timing, replay ---------------------------------------------------------------------


def test_payload_query_form_and_json():
    form = ex(
        method="POST",
        url="https://a.example/s?q=a%20b&empty=",
        request_headers={"Content-Type": "application/x-www-form-urlencoded"},
        request_body=b"user=ann&tags=x&tags=y",
    )
    assert text(panel(detail_html(form, uid="p", style=False), "payload")) == (
        "Query String Parameters q a b empty Form Data user ann tags x tags y "
        "Request Payload (application/x-www-form-urlencoded) Preview Raw user=ann&tags=x&tags=y "
        "22 bytes on the wire user=ann&tags=x&tags=y"
    )
    posted = ex(
        method="POST",
        url="https://a.example/items",
        request_headers={"Content-Type": "application/json"},
        request_body=b'{"name": "it"}',
    )
    payload = panel(detail_html(posted, uid="p", style=False), "payload")
    assert '<span class="tl-j-key">&quot;name&quot;</span>: ' in payload
    assert text(payload) == (
        'Request Payload (application/json) Preview Raw {name: "it"} 1 key "name" : "it" '
        '14 bytes on the wire {"name": "it"}'
    )
    assert 'name="tl-d-p-request-view"' in payload


def test_timing():
    exchange = ex(elapsed_ms=1234.5, tags={"session": "s1"})
    timing = panel(detail_html(exchange, uid="t", style=False), "timing")
    assert text(timing) == (
        "Timing Request sent, response complete 1,234.5 ms "
        "Started 2030-01-02T03:04:05.678+00:00 Finished 2030-01-02T03:04:06.912+00:00 "
        "Total 1,234.5 ms Tags session s1"
    )
    assert '<div class="tl-d-bar tl-d-s2"></div>' in timing


def test_timing_lists_the_chunk_arrivals_of_a_streamed_body():
    chunks = (Chunk(16, 300), Chunk(16, 50_300), Chunk(2048, 100_300))
    exchange = ex(elapsed_ms=120.0).replace(response_body=b"x" * 2080, chunks=chunks)
    timing = panel(detail_html(exchange, uid="t", style=False), "timing")
    assert text(timing).endswith(
        "Chunk arrivals (3 chunks, the last at 100.3 ms) # at size "
        "1 0.3 ms 16 B 2 50.3 ms 16 B 3 100.3 ms 2.0 KB"
    )
    assert (
        '<tr><td>2</td><td>50.3 ms</td><td>16 B</td><td class="tl-d-ctrack">'
        '<div class="tl-d-cmark" style="margin-left:50.1%"></div></td></tr>'
    ) in timing


def test_timing_lists_at_most_max_chunks_shown_arrivals():
    chunks = tuple(Chunk(1, i) for i in range(MAX_CHUNKS_SHOWN + 7))
    exchange = ex().replace(response_body=b"x" * len(chunks), chunks=chunks)
    timing = panel(detail_html(exchange, uid="t", style=False), "timing")
    assert timing.count('<div class="tl-d-cmark"') == MAX_CHUNKS_SHOWN
    assert '<div class="tl-d-note">7 more chunks not listed</div>' in timing


def test_timing_of_a_body_in_one_piece_lists_no_chunks():
    timing = panel(detail_html(ex(), uid="t", style=False), "timing")
    assert "Chunk arrivals" not in timing


def test_replay_tab_with_a_diff():
    exchange = ex(json={"id": 1, "name": "a"})
    live = httpx.Response(
        200, json={"id": 2, "name": "a"}, request=httpx.Request("GET", exchange.url)
    )
    html = detail_html(exchange, uid="r", replay=ReplayResult(exchange, live), style=False)
    assert 'id="tl-d-r-tab-replay" checked><label for="tl-d-r-tab-replay">Replay</label>' in html
    replay = panel(html, "replay")
    assert '<div class="tl-d-differs">differs from the recording</div>' in replay
    assert "<th>json $.id</th><td class='tl-old'>1</td><td class='tl-new'>2</td>" in replay
    assert [
        text(col.split("</div>")[0]) for col in replay.split('<div class="tl-d-coltitle">')[1:]
    ] == [
        "recorded HTTP/1.1 200 OK",
        "replayed HTTP/1.1 200 OK",
    ]
    assert 'name="tl-d-r-rec-view"' in replay and 'name="tl-d-r-live-view"' in replay


def test_replay_tab_same_and_failed():
    exchange = ex(json={"id": 1})
    same = httpx.Response(200, json={"id": 1}, request=httpx.Request("GET", exchange.url))
    replay = panel(detail_html(exchange, uid="r", replay=ReplayResult(exchange, same)), "replay")
    assert replay.startswith(
        '<div class="tl-d-panel tl-d-panel-replay"><div class="tl-d-same">same as recorded '
        "(volatile headers ignored)</div>"
    )
    failed = ReplayResult(exchange, None, httpx.ConnectError("refused"))
    assert text(panel(detail_html(exchange, replay=failed), "replay")) == (
        "replay failed: ConnectError: refused"
    )


# -- code ----------------------------------------------------------------------------------------

NASTY = 'it\'s "quoted" $(touch pwned) `x` \\ ; rm -rf / #'


def nasty_exchange() -> tl.Exchange:
    return ex(
        method="POST",
        url="https://api.example.test/it's/x?q=a'b&r=$(x)",
        request_headers=[
            ("X-Nasty", NASTY),
            ("Content-Type", "application/json"),
            ("Authorization", "[REDACTED]"),
        ],
        request_body=b'{"q": "\'\'\' \\"\\"\\" $(x)"}',
        status_code=201,
        response_headers=[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("X-Nasty", NASTY),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        response_body=gzip.compress(b'{"made": "\'\'\'\\"\\"\\"\\u0000"}', mtime=0),
    )


def test_curl_parsed_back_gives_the_recorded_request():
    exchange = nasty_exchange()
    command = to_curl(exchange)
    lines = [line for line in command.splitlines() if not line.startswith("#")]
    assert command.splitlines()[0] == "# redacted, add your own: 'Authorization'"
    assert shlex.split("\n".join(lines).replace(" \\\n  ", " ")) == [
        "curl",
        "-X",
        "POST",
        "https://api.example.test/it's/x?q=a'b&r=$(x)",
        "-H",
        f"X-Nasty: {NASTY}",
        "-H",
        "Content-Type: application/json",
        "--data-raw",
        exchange.request_body.decode(),
    ]


def test_comments_cannot_be_ended_by_a_header_name():
    exchange = ex(request_headers=[(b"X-Key\nimport os", b"[REDACTED]")])
    assert to_curl(exchange).splitlines()[0] == "# redacted, add your own: 'X-Key\\nimport os'"
    assert to_httpx_code(exchange).splitlines()[2] == (
        "# redacted, add your own: 'X-Key\\nimport os'"
    )


def test_httpx_code_holds_the_values_as_literals():
    exchange = nasty_exchange()
    tree = ast.parse(to_httpx_code(exchange))
    call = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "request"
    )
    assert [ast.literal_eval(arg) for arg in call.args] == ["POST", exchange.url]
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert kwargs == {
        "headers": [("X-Nasty", NASTY), ("Content-Type", "application/json")],
        "content": exchange.request_body,
    }


def run_pytest(tmp_path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "test_generated.py"
    path.write_text(source)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            str(path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def matches_recording(exchange: tl.Exchange, annotation: str = "") -> str:
    """A test using the generated fixture: the mocked response equals the recording."""
    recorded = exchange.response
    return f"""

def test_matches_the_recording(recorded_api{annotation}):
    with httpx.Client() as client:
        response = client.request({exchange.method!r}, {exchange.url!r},
                                  content={exchange.request_body!r})
        assert response.status_code == {exchange.status_code!r}
        assert response.headers.raw == {list(recorded.headers.raw)!r}
        assert response.content == {recorded.content!r}
    with httpx.Client() as client, client.stream({exchange.method!r}, {exchange.url!r},
                                                 content={exchange.request_body!r}) as streamed:
        assert b"".join(streamed.iter_raw()) == {exchange.response_body!r}
"""


@pytest.mark.parametrize("make_code", [to_respx_code, to_pytest_httpx_code])
def test_fixture_code_answers_as_recorded(tmp_path, make_code):
    exchange = nasty_exchange()
    annotation = ": HTTPXMock" if make_code is to_pytest_httpx_code else ""
    code = make_code(exchange)
    if make_code is to_pytest_httpx_code:  # httpx_mock serves each response once by default
        code = code.replace(
            "    httpx_mock.add_response(",
            "    httpx_mock.add_response(\n        is_reusable=True,",
        )
    result = run_pytest(tmp_path, code + matches_recording(exchange, annotation))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.parametrize("make_code", [to_respx_code, to_pytest_httpx_code])
def test_fixture_code_raises_a_recorded_error(tmp_path, make_code):
    failed = ex(status_code=None, error=RecordedError("httpx.ReadTimeout", "slow 'x'"))
    result = run_pytest(tmp_path, make_code(failed))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    unknown = ex(status_code=None, error=RecordedError("os.system('x')", "boom"))
    assert "httpx.TransportError('boom')" in make_code(unknown)


def test_code_tab_holds_the_four_snippets_escaped():
    exchange = nasty_exchange()
    code = panel(detail_html(exchange, uid="c", style=False), "code")
    assert text(code).startswith("curl # redacted, add your own: 'Authorization' curl -X POST")
    titles = [part.split("</summary>")[0] for part in code.split("<summary>")[1:]]
    assert titles == ["curl", "Python (httpx)", "respx fixture", "pytest-httpx fixture"]
    assert "$(touch pwned)" in text(code) and "<script" not in code


def test_a_slow_exchange_shows_seconds():
    exchange = ex(elapsed_ms=12_345)
    assert "12.35 s" in text(panel(detail_html(exchange, style=False), "timing"))
    assert timedelta(milliseconds=12_345) == exchange.elapsed


def test_code_with_a_body_too_long_to_show_is_left_out_whole():
    big = ex(
        response_headers={"Content-Type": "text/plain"}, response_body=b"x" * (MAX_CODE_BODY + 1)
    )
    started = time.perf_counter()
    code = panel(detail_html(big, uid="c", style=False), "code")
    assert time.perf_counter() - started < 1
    assert text(code) == (
        "curl curl -X GET https://api.example.test/items/1 "
        "Python (httpx) " + text(f"<pre>{to_httpx_code(big)}</pre>") + " "
        "respx fixture the exchange holds a body over 16 KB: too long to show here; "
        "traffic_lab.widgets.snippets.to_respx_code(exchange) writes it "
        "pytest-httpx fixture the exchange holds a body over 16 KB: too long to show here; "
        "traffic_lab.widgets.snippets.to_pytest_httpx_code(exchange) writes it"
    )
    posted = ex(method="POST", request_body=b"y" * (MAX_CODE_BODY + 1))
    assert text(panel(detail_html(posted, style=False), "code")).count("too long to show") == 4


# -- any capture -----------------------------------------------------------------------------

OUR_TAGS = {
    "div", "span", "input", "label", "details", "summary", "table", "tr", "th", "td", "pre",
    "img", "b", "tbody", "thead",
}  # fmt: skip


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def json_containers(kids):
    """Lists and objects of ``kids`` (a named function: hypothesis misreads this lambda's
    source when it is wrapped over lines, and warns that it does not recurse)."""
    return st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)


@settings(max_examples=120, deadline=None, database=None)
@given(
    method=st.text(min_size=1, max_size=8),
    url=st.text(max_size=60),
    names=st.lists(st.binary(max_size=12), max_size=3),
    ctype=st.sampled_from(
        [
            b"",
            b"application/json",
            b"text/plain",
            b"text/html; charset=utf-8",
            b"image/png",
            b"image/svg+xml",
            b"application/octet-stream",
            b"application/x-www-form-urlencoded",
        ]
    ),
    cenc=st.sampled_from([b"", b"gzip", b"deflate", b"br", b"gzip, deflate", b"bogus"]),
    body=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=80).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=12),
            json_containers,
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    status=st.one_of(st.none(), st.integers(100, 999)),
)
def test_any_exchange_renders_without_error_and_only_our_markup(
    method, url, names, ctype, cenc, body, status
):
    headers = [(name, b"<v>" + name) for name in names]
    exchange = tl.Exchange(
        method,
        url,
        request_headers=[*headers, (b"content-type", ctype), (b"content-encoding", cenc)],
        request_body=body,
        status_code=status,
        error=RecordedError("x.<Y>", "<m>") if status is None else None,
        response_headers=[*headers, (b"Content-Type", ctype), (b"Content-Encoding", cenc)],
        response_body=body,
        started_at=AT,
        tags={"<t>": "<v>"},
    )
    html = detail_html(exchange, uid="f", style=False)
    parser = _Tags()
    parser.feed(html)
    assert {tag for tag, _ in parser.tags} <= OUR_TAGS
    for tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
