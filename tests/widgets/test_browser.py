"""TrafficBrowser and ExchangeInspector, headless: set traits, click buttons, read what renders."""

from __future__ import annotations

import ast
import html
import json
import re
import shlex
import subprocess
import sys

import brotli
import httpx
import numpy as np
import pytest

import traffic_lab as tl
from traffic_lab.frames import to_pandas
from traffic_lab.interop import read_har
from traffic_lab.testing import make_exchange
from traffic_lab.widgets import ExchangeInspector, TrafficBrowser, to_curl, to_httpx_code

from .conftest import HOSTILE, N_GENERATED

N_TOTAL = N_GENERATED + 5


def table_rows(browser: TrafficBrowser) -> list[str]:
    return re.findall(
        r"<tr(?: class='tl-selected')?><td class='tl-num'>(\d+)</td>", browser.table.value
    )


def all_html(widget, kinds=("HTML",)) -> str:
    """Every value of the given widget kinds under a widget (HTML: rendered as markup)."""
    out = []
    stack = [widget]
    while stack:
        node = stack.pop()
        value = getattr(node, "value", None)
        if isinstance(value, str) and type(node).__name__ in kinds:
            out.append(value)
        stack.extend(getattr(node, "children", ()))
    return "\n".join(out)


@pytest.fixture
def frame(capture):
    return to_pandas(capture)


@pytest.fixture
def browser(stream):
    return TrafficBrowser(stream)


def test_opens_on_every_row_with_the_first_page(browser, frame):
    assert browser.matches == len(frame) == N_TOTAL
    assert table_rows(browser) == [str(i) for i in range(25)]
    assert browser.page_label.value == f"rows 1\u201325 of {N_TOTAL} (page 1/{-(-N_TOTAL // 25)})"
    assert f"<b>{N_TOTAL:,}</b> of {N_TOTAL:,} exchanges match" in browser.header.value
    # The row selector lists the page, after a placeholder.
    assert [v for _, v in browser.row_select.options] == [-1, *range(25)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("5xx", lambda s: (s >= 500) & (s < 600)),
        ("4xx,5xx", lambda s: s >= 400),
        ("404", lambda s: s == 404),
        ("200-201", lambda s: (s >= 200) & (s <= 201)),
        ("error", lambda s: s.isna()),
        ("failed", lambda s: s.isna()),
        ("500-599, failed", lambda s: s.isna() | (s >= 500)),
    ],
)
def test_status_filter_matches_pandas(browser, frame, status, expected):
    browser.status = status
    statuses = frame.response_status
    mask = expected(statuses).fillna(False).to_numpy(dtype=bool)
    assert browser.rows.tolist() == np.flatnonzero(mask).tolist()
    assert browser.matches == int(mask.sum()) > 0
    assert [int(r) for r in table_rows(browser)] == np.flatnonzero(mask)[:25].tolist()


def test_status_dropdown_drives_the_filter(browser, frame):
    browser.status_select.value = "4xx"
    assert browser.status == "4xx"
    expected = int(((frame.response_status >= 400) & (frame.response_status < 500)).sum())
    assert browser.matches == expected
    browser.status = "failed"  # set from code: the dropdown follows
    assert browser.status_select.label == "failed (no response)"


def test_method_host_type_and_status_range_filters(browser, frame):
    browser.filter(method="POST", host="127.0.0.1")
    expected = (frame.request_method == "POST") & (frame.request_host == "127.0.0.1")
    assert browser.matches == int(expected.sum()) > 0
    browser.reset()
    browser.content_type = "image/png"
    assert browser.matches == int((frame.response_content_type == "image/png").sum()) > 0
    browser.reset()
    browser.status_range = (400, 499)
    in_range = (frame.response_status >= 400) & (frame.response_status <= 499)
    assert browser.matches == int(in_range.fillna(False).sum())


def test_search_by_url_text_and_by_path_pattern(browser, frame):
    browser.search = "SEARCH?q="  # case-insensitive substring of the URL
    assert browser.matches == int(frame.request_url.str.contains("search?q=", regex=False).sum())
    browser.search = "/api/users/*"  # one path segment
    expected = frame.request_path.str.fullmatch(r"/api/users/[^/]*")
    assert browser.matches == int(expected.sum()) > 0
    browser.search = "/api/products"  # no glob characters: a prefix
    assert browser.matches == int(frame.request_path.str.startswith("/api/products").sum())


def test_time_range_filter(browser, frame):
    first, last = browser._time_full
    assert (first, last) == (
        int(frame.started_at.min().value // 1000),
        int(frame.started_at.max().value // 1000),
    )
    browser.time_range = (first, first + 1)  # the first microsecond only
    assert browser.rows.tolist() == [0]
    # The slider's steps drive the same filter: the last step alone holds the 2030 rows.
    options = browser.time_slider.options
    browser.time_slider.index = (len(options) - 2, len(options) - 1)
    assert browser.matches == 5


def test_sorts(browser, frame):
    browser.sort = "slowest"
    elapsed = frame.elapsed_ms.to_numpy()
    assert elapsed[browser.rows[0]] == elapsed.max()
    assert list(elapsed[browser.rows]) == sorted(elapsed, reverse=True)
    browser.sort = "newest"
    assert browser.rows[0] == N_TOTAL - 1
    browser.sort = "largest"
    sizes = frame.response_body_size.to_numpy()
    assert sizes[browser.rows[0]] == sizes.max()


def test_paging_buttons(browser):
    browser.next_button.click()
    assert browser.page == 1 and table_rows(browser)[0] == "25"
    browser.last_button.click()
    assert browser.page == browser.pages - 1
    assert browser.next_button.disabled and browser.last_button.disabled
    assert table_rows(browser)[-1] == str(N_TOTAL - 1)
    browser.prev_button.click()
    assert browser.page == browser.pages - 2
    browser.first_button.click()
    assert browser.page == 0 and browser.prev_button.disabled
    browser.page_size_select.value = 100
    assert len(table_rows(browser)) == 100 and browser.pages == 2
    browser.status = "5xx"  # a filter change goes back to the first page
    assert browser.page == 0


def test_no_match_shows_an_empty_table(browser):
    browser.search = "no-such-url"
    assert browser.matches == 0
    assert "no exchanges match" in browser.table.value
    assert browser.page_label.value == "no rows"
    assert [v for _, v in browser.row_select.options] == [-1]


def test_reset_button_clears_filters(browser):
    browser.filter(status="5xx", method="GET", search="reports", sort="slowest")
    browser.reset_button.click()
    assert browser.matches == N_TOTAL
    assert (browser.status, browser.method, browser.search, browser.sort) == (
        "",
        "",
        "",
        "recorded",
    )


def test_unknown_filter_name_and_bad_status_spec(browser):
    with pytest.raises(TypeError, match="unknown filters"):
        browser.filter(colour="red")
    browser.status = "teapot"
    assert "ValueError" in browser.errors.message.value
    assert "&#x27;teapot&#x27; is not valid" in browser.errors.message.value
    browser.status = "2xx"
    assert browser.errors.message.value == ""


def test_selecting_a_row_shows_the_exchange(browser, frame):
    browser.search = "/api/orders"
    position = int(browser.rows[0])
    browser.row_select.value = position
    assert browser.selected == position
    exchange = browser.selected_exchange
    assert exchange.url == frame.request_url[position]
    assert html.escape(exchange.url) in browser.inspector.summary.value
    assert "tl-selected" in browser.table.value
    response = all_html(browser.inspector.response_box)
    # The demo API gzips the orders list: shown decoded and indented.
    if exchange.response.headers.get("content-encoding") == "gzip":
        assert "decoded from gzip" in response
    assert "\n  &quot;orders&quot;: [" in response or "&quot;status&quot;" in response
    assert "curl -X GET " in browser.inspector.curl.value
    # Leaving the page keeps the selection but shows the placeholder.
    browser.last_button.click()
    assert browser.row_select.value == -1 and browser.selected == position


def test_image_body_shows_as_an_image(browser):
    browser.content_type = "image/png"
    browser.selected = int(browser.rows[0])
    images = [
        c
        for c in browser.inspector.response_box.children[0].children
        if type(c).__name__ == "Image"
    ]
    assert len(images) == 1
    assert bytes(images[0].value) == browser.selected_exchange.response_body
    assert bytes(images[0].value).startswith(b"\x89PNG\r\n\x1a\n") and images[0].format == "png"


def test_binary_brotli_and_errors_render(browser):
    browser.search = "files.example/blob"
    browser.selected = int(browser.rows[0])
    assert "00000000  00 01 02 03" in all_html(browser.inspector.response_box)
    browser.search = "data.json"
    browser.selected = int(browser.rows[0])
    text = all_html(browser.inspector.response_box)
    assert "decoded from br" in text and "with brotli" in text
    browser.search = ""
    browser.status = "error"
    browser.selected = int(browser.rows[0])
    assert "transport error: httpx.ConnectError" in all_html(browser.inspector.response_box)


def test_nothing_from_a_capture_is_injected(browser):
    browser.search = "evil.example"
    assert browser.matches == 1
    browser.selected = int(browser.rows[0])
    # Markup: every HTML widget's value is escaped.
    rendered = all_html(browser)
    assert "<script" not in rendered and "alert(" in rendered
    # Text: dropdown labels and the code boxes are shown as text by the browser, verbatim.
    assert HOSTILE in browser.row_select.label
    assert HOSTILE in all_html(browser.inspector, kinds=("Textarea",))
    assert html.escape(HOSTILE) in browser.table.value
    assert html.escape(HOSTILE) in all_html(browser.inspector.request_box)
    assert html.escape(HOSTILE) in all_html(browser.inspector.response_box)


def test_curl_is_shell_safe(browser):
    exchange = make_exchange(
        "POST",
        "https://a.example/x?q=1;rm -rf /",
        request_headers={"X-Quote": "it's $(whoami) `id`", "Authorization": "[REDACTED]"},
        request_body=b"{'a': \"$HOME\"}",
    )
    command = to_curl(exchange)
    assert command.startswith("# redacted, add your own: Authorization\n")
    words = shlex.split(command.split("\n", 1)[1].replace("\\\n", " "))
    assert words[:4] == ["curl", "-X", "POST", "https://a.example/x?q=1;rm -rf /"]
    assert words[4:6] == ["-H", "X-Quote: it's $(whoami) `id`"]
    assert words[-2:] == ["--data-raw", "{'a': \"$HOME\"}"]
    # Rebased as replay rebases it (traffic_lab.wire.rebase_url): the URL httpx would send.
    assert (
        to_curl(exchange, "http://127.0.0.1:9")
        .split("\n")[1]
        .startswith("curl -X POST 'http://127.0.0.1:9/x?q=1;rm%20-rf%20/'")
    )


def test_httpx_code_is_valid_python_with_literal_values():
    exchange = make_exchange(
        "PUT",
        "https://a.example/it's\"",
        request_headers={"X-Evil": "'); import os; os.system('x"},
        request_body=b"\x00\x01'\"",
    )
    code = to_httpx_code(exchange)
    tree = ast.parse(code)
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "request"
    ]
    assert len(calls) == 1
    call = calls[0]
    assert [ast.literal_eval(a) for a in call.args] == ["PUT", "https://a.example/it's\""]
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert ("X-Evil", "'); import os; os.system('x") in keywords["headers"]
    assert keywords["content"] == b"\x00\x01'\""
    assert [type(n).__name__ for n in tree.body] == ["Import", "Assign", "Expr", "Expr"]


def test_replay_shows_live_beside_recorded_with_the_diff(stream):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": 999, "name": "changed"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    browser = TrafficBrowser(stream, client=client, base_url="http://staging.invalid")
    browser.search = "/api/users/"
    browser.status = "2xx"
    browser.selected = int(browser.rows[0])
    browser.inspector.replay_button.click()
    inspector = browser.inspector
    assert browser.errors.message.value == inspector.errors.message.value == ""
    assert inspector.tabs.selected_index == 2
    assert "differs from the recording" in inspector.replay_status.value
    assert "http://staging.invalid/api/users/" in inspector.replay_status.value
    assert "json $.id" in inspector.diff.value and "999" in inspector.diff.value
    assert inspector.live.json() == {"id": 999, "name": "changed"}
    assert "changed" in all_html(inspector.live_box)
    recorded = browser.selected_exchange.response.json()
    assert html.escape(json.dumps(recorded["name"])) in all_html(inspector.recorded_box)


def test_replay_against_the_demo_api_is_the_same(stream, demo_api):
    browser = TrafficBrowser(stream, base_url=demo_api.url)
    browser.filter(search="/api/users/*", status="200")
    browser.selected = int(browser.rows[0])
    result = browser.replay()
    assert result.response.status_code == 200
    assert not result.diff()
    assert "same as recorded" in browser.inspector.replay_status.value
    assert "no differences" in browser.inspector.diff.value
    browser.inspector.close()


def test_replay_failure_is_shown_in_the_pane(stream):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    browser = TrafficBrowser(stream, client=httpx.Client(transport=httpx.MockTransport(refuse)))
    browser.selected = 0
    browser.inspector.replay_button.click()
    assert "ConnectError" in browser.inspector.errors.message.value
    assert "replay failed" in browser.inspector.replay_status.value
    assert isinstance(browser.inspector.errors.last, httpx.ConnectError)


def test_replay_without_selection_says_so():
    inspector = ExchangeInspector()
    inspector.replay_button.click()
    assert "no exchange selected" in inspector.errors.message.value
    assert inspector.children == (inspector.summary,)


def test_export_selection_to_har_and_to_a_capture(browser, frame, tmp_path):
    browser.status = "4xx,5xx"
    browser.export_path.value = str(tmp_path / "errors.har")
    browser.export_format.value = "har"
    browser.export_button.click()
    assert browser.errors.message.value == ""
    exported = read_har(tmp_path / "errors.har")
    assert [e.status_code for e in exported] == frame.response_status.iloc[browser.rows].tolist()
    assert f"wrote {browser.matches:,} exchanges" in browser.export_status.value
    assert browser.export(tmp_path / "errors", format="capture") == browser.matches
    back = to_pandas(tmp_path / "errors", bodies=True)
    assert back.request_url.tolist() == frame.request_url.iloc[browser.rows].tolist()
    assert back.response_body.iloc[0] == browser.exchanges(limit=1)[0].response_body
    # An existing destination is refused, and the message shows.
    browser.export_format.value = "capture"
    browser.export_path.value = str(tmp_path / "errors")
    browser.export_button.click()
    assert "FileExistsError" in browser.errors.message.value
    with pytest.raises(ValueError, match="unknown export format"):
        browser.export(tmp_path / "x", format="csv")


def test_sources_frame_memory_store_exchanges_and_where(capture, frame):
    from_frame = TrafficBrowser(frame)
    assert from_frame.matches == N_TOTAL
    from_frame.search = "data.json"
    from_frame.selected = int(from_frame.rows[0])
    # The frame has no bodies: they come from its capture, as stored on the wire.
    selected = from_frame.selected_exchange
    assert selected.response_body == brotli.compress(b'{"compressed": "with brotli", "n": [1, 2]}')
    assert selected.response.json()["compressed"] == "with brotli"
    memory = tl.MemoryStream()
    for status in (200, 500):
        memory.put(make_exchange(status_code=status))
    in_memory = TrafficBrowser(memory)
    in_memory.status = "5xx"
    in_memory.selected = int(in_memory.rows[0])
    assert in_memory.selected_exchange.status_code == 500
    assert TrafficBrowser([make_exchange()]).matches == 1
    narrowed = TrafficBrowser(str(capture), where={"method": "POST"})
    assert narrowed.matches == int((frame.request_method == "POST").sum())
    assert set(narrowed.frame().request_method) == {"POST"}
    with pytest.raises(TypeError):
        TrafficBrowser(42)


def test_frame_of_the_selection_keeps_the_traffic_accessor(browser):
    browser.status = "5xx"
    selection = browser.frame()
    assert len(selection) == browser.matches
    assert [e.status_code for e in selection.traffic.exchanges()] == [500] * browser.matches


def test_plots_tab_draws_the_selection(browser):
    browser.status = "2xx"
    browser.views.selected_index = 1
    images = browser.plots.children
    assert [type(i).__name__ for i in images] == ["Image"] * 3
    assert all(bytes(i.value).startswith(b"\x89PNG") for i in images)
    assert not browser._plots_stale
    first = images[0].value
    browser.status = "4xx"  # redrawn while the tab is open
    assert browser.plots.children[0].value != first


def test_widget_state_serialises(browser):
    state = browser.get_state()
    assert len(state["children"]) == len(browser.children)


def test_import_guard_names_the_extra():
    code = (
        "import sys; sys.modules['ipywidgets'] = None\n"
        "import traffic_lab as tl\n"
        "try:\n    tl.widgets\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'traffic_lab[notebook]'" in out.stdout


def test_importing_widgets_leaves_matplotlib_alone():
    code = (
        "import sys, traffic_lab\n"
        "assert 'ipywidgets' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "import traffic_lab.widgets\n"
        "print('matplotlib' in sys.modules)\n"
        "traffic_lab.widgets.timeline\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
