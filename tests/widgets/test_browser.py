"""TrafficBrowser v2, headless: the model behind the page (filters, sort, the window of rows,
selection, detail, replay, export, the static snapshot) on real Parquet captures."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

import traffic_lab as tl
from traffic_lab.frames import read_capture, to_pandas
from traffic_lab.interop import read_har
from traffic_lab.testing import make_exchange
from traffic_lab.widgets import TrafficBrowser

from .conftest import HOSTILE, N_GENERATED

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
# (method, host, path, status, content type, body size, elapsed ms); one second apart
ROWS = [
    ("GET", "a.test", "/users/1", 200, "application/json", 10, 30),
    ("POST", "b.test", "/orders", 201, "application/json", 40, 10),
    ("GET", "a.test", "/missing", 404, "text/html", 5, 50),
    ("GET", "c.test", "/report", 500, "application/json", 20, 200),
    ("DELETE", "a.test", "/users/2", 204, "", 0, 20),
    ("GET", "b.test", "/slow", 503, "text/plain", 15, 400),
    ("POST", "c.test", "/pay", None, "", 0, 5),
    ("GET", "a.test", "/users/3", 200, "application/json; charset=utf-8", 30, 40),
]


def row_exchange(i: int) -> tl.Exchange:
    method, host, path, status, ctype, size, ms = ROWS[i]
    return make_exchange(
        method,
        f"https://{host}{path}",
        status_code=status,
        response_headers={"Content-Type": ctype} if ctype else {},
        response_body=b"x" * size,
        started_at=T0 + timedelta(seconds=i),
        elapsed_ms=ms,
    )


@pytest.fixture(scope="module")
def small_capture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small") / "capture"
    with tl.ParquetStream(folder, flush_seconds=None) as stream:
        for i in range(len(ROWS)):
            stream.put(row_exchange(i))
    return folder


@pytest.fixture
def small(small_capture):
    return TrafficBrowser(small_capture)


def test_opens_on_every_row_with_counts_facets_and_histogram(small):
    assert small.total == small.matches == 8
    assert small.rows.tolist() == list(range(8))
    p50, p95, p99 = np.percentile([r[6] for r in ROWS], [50, 95, 99])
    assert small.header == (
        f"8 of 8 exchanges \u00b7 p50 {p50:,.1f} ms \u00b7 p95 {p95:,.1f} ms"
        f" \u00b7 p99 {p99:,.1f} ms"
    )
    assert small.facets == {
        "method": [["GET", 5], ["POST", 2], ["DELETE", 1]],
        "status": [["2xx", 4], ["4xx", 1], ["5xx", 2], ["failed", 1]],
        "host": [["a.test", 4], ["b.test", 2], ["c.test", 2]],
        "type": [["application/json", 4], ["text/html", 1], ["text/plain", 1]],
    }
    low = int(T0.timestamp() * 1_000_000)
    assert (small.histogram["low"], small.histogram["high"]) == (low, low + 7_000_000)
    counts = small.histogram["counts"]
    assert len(counts) == 60 and sum(counts) == 8
    assert [i for i, c in enumerate(counts) if c] == [0, 8, 17, 25, 34, 42, 51, 59]
    assert [c[0] for c in small.columns] == [
        "time",
        "method",
        "host",
        "url",
        "status",
        "type",
        "size",
        "duration",
    ]
    assert small.selected.empty and small.cursor == -1 and small.detail_html == ""


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "5xx"}, [3, 5]),
        ({"status": "500-599"}, [3, 5]),
        ({"status": "4xx,5xx"}, [2, 3, 5]),
        ({"status": "failed"}, [6]),
        ({"status": "2xx"}, [0, 1, 4, 7]),
        ({"status": "404"}, [2]),
        ({"methods": ["POST"]}, [1, 6]),
        ({"methods": ["GET", "DELETE"]}, [0, 2, 3, 4, 5, 7]),
        ({"hosts": ["b.test"]}, [1, 5]),
        ({"hosts": ["a.test", "c.test"]}, [0, 2, 3, 4, 6, 7]),
        ({"content_types": ["text/html"]}, [2]),
        ({"content_types": ["application/json"]}, [0, 1, 3, 7]),
        ({"search": "USERS"}, [0, 4, 7]),
        ({"search": "/users/*"}, [0, 4, 7]),
        ({"search": "/or"}, [1]),
        ({"search": "nothing-like-this"}, []),
        ({"methods": ["GET"], "status": "4xx,5xx"}, [2, 3, 5]),
        ({"methods": ["GET"], "status": "4xx,5xx", "sort": "-duration"}, [5, 3, 2]),
    ],
)
def test_filters(small, filters, expected):
    small.filter(**filters)
    assert small.rows.tolist() == expected
    assert small.matches == len(expected)
    assert small.header.startswith(f"{len(expected)} of 8 exchanges")


def test_time_range_filter_and_reset(small):
    low = int(T0.timestamp() * 1_000_000)
    small.time_range = [low + 2_000_000, low + 4_000_000]
    assert small.rows.tolist() == [2, 3, 4]
    small.status = "5xx"
    assert small.rows.tolist() == [3]
    small.reset()
    assert small.rows.tolist() == list(range(8))
    assert (small.status, small.time_range, small.sort) == ("", [], "")


def test_each_filter_change_is_one_refresh(small):
    generations = []
    small.observe(lambda c: generations.append(c["new"]), names="generation")
    small.filter(methods=["GET"], status="5xx", hosts=["b.test"])
    assert len(generations) == 1 and small.rows.tolist() == [5]
    with pytest.raises(TypeError, match="unknown filters"):
        small.filter(colour="red")
    with pytest.raises(ValueError, match="not valid"):
        small.status = "6zz"
    assert small.status == "5xx" and small.rows.tolist() == [5]


@pytest.mark.parametrize(
    ("column", "ascending", "descending"),
    [
        ("time", [0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0]),
        ("method", [4, 0, 2, 3, 5, 7, 1, 6], [1, 6, 0, 2, 3, 5, 7, 4]),
        ("host", [0, 2, 4, 7, 1, 5, 3, 6], [3, 6, 1, 5, 0, 2, 4, 7]),
        ("url", [2, 0, 4, 7, 1, 5, 6, 3], [3, 6, 5, 1, 7, 4, 0, 2]),
        ("status", [6, 0, 7, 1, 4, 2, 3, 5], [5, 3, 2, 4, 1, 0, 7, 6]),
        ("type", [4, 6, 0, 1, 3, 7, 2, 5], [5, 2, 0, 1, 3, 7, 4, 6]),
        ("size", [4, 6, 2, 0, 5, 3, 7, 1], [1, 7, 3, 5, 0, 2, 4, 6]),
        ("duration", [6, 1, 4, 0, 7, 2, 3, 5], [5, 3, 2, 7, 0, 4, 1, 6]),
    ],
)
def test_sort_by_each_column_both_ways(small, column, ascending, descending):
    small.sort = column
    assert small.rows.tolist() == ascending
    small.sort = f"-{column}"
    assert small.rows.tolist() == descending
    small.status = "2xx"  # a filter keeps the sort
    assert small.rows.tolist() == [p for p in descending if ROWS[p][3] in (200, 201, 204)]


def test_unknown_sort_is_refused(small):
    small.sort = "-size"
    with pytest.raises(ValueError, match="unknown sort 'colour'"):
        small.sort = "colour"
    assert small.sort == "-size" and small.rows.tolist() == [1, 7, 3, 5, 0, 2, 4, 6]


def test_window_rows_are_compact_and_clamped(small):
    window = small.window_rows(2, 3)
    low = int(T0.timestamp() * 1_000_000)
    span = 7_040_000  # first start to the last end (7 s + 40 ms)
    assert window["start"] == 2 and window["generation"] == small.generation
    assert window["rows"][0] == [
        2,
        "12:00:02.000",
        "GET",
        "a.test",
        "/missing",
        404,
        "tl-s4",
        "text/html",
        5,
        50.0,
        round(2_000_000 / span, 4),
        round(50_000 / span, 4),
    ]
    assert [r[0] for r in window["rows"]] == [2, 3, 4]
    assert [r[5] for r in window["rows"]] == [404, 500, 204]
    assert small.window == window
    # past the end: the last rows; a filter sends the same range of the new list
    assert [r[0] for r in small.window_rows(6, 5)["rows"]] == [3, 4, 5, 6, 7]
    failed = small.window_rows(6, 1)["rows"][0]
    assert failed[5:8] == ["httpx.ConnectError", "tl-serr", ""]
    small.sort = "-duration"
    assert small.window["start"] == 6  # of [5, 3, 2, 7, 0, 4, 1, 6]
    assert [r[0] for r in small.window["rows"]] == [1]
    assert small.window_rows(0, 10_000)["rows"][0][0] == 5
    assert low == small.histogram["low"]


def test_click_shift_and_toggle_selection(small):
    events = []
    small.observe(lambda change: events.append(change["new"]), names="selected")
    small.sort = "status"  # list: [6, 0, 7, 1, 4, 2, 3, 5]
    small.click(1)
    assert small.selected_positions == [0] and small.cursor == 1
    assert small.selected_exchange.url == "https://a.test/users/1"
    small.click(4, shift=True)
    assert small.selected_positions == [0, 7, 1, 4]
    assert small.cursor == 4 and small.selected_exchange.url == "https://a.test/users/2"
    small.click(7, toggle=True)
    assert small.selected_positions == [0, 7, 1, 4, 5]
    small.click(0, toggle=True)
    assert small.selected_positions == [0, 7, 1, 4, 5, 6]
    small.click(7, toggle=True)
    assert small.selected_positions == [0, 7, 1, 4, 6]
    small.click(5, shift=True)  # from the last clicked row (7) to 5
    assert small.selected_positions == [2, 3, 5]
    selected = small.selected
    assert isinstance(selected, pd.DataFrame)
    assert selected.request_url.tolist() == [
        "https://a.test/missing",
        "https://c.test/report",
        "https://b.test/slow",
    ]
    assert selected.response_status.tolist() == [404, 500, 503]
    assert [len(e) for e in events] == [1, 4, 5, 6, 5, 3]
    with pytest.raises(IndexError):
        small.click(8)


def test_selected_frame_has_read_captures_columns(small, small_capture):
    small.click(3)
    frame = read_capture(small_capture)
    common = [c for c in small.selected.columns if c in frame.columns]
    assert common == list(small.selected.columns)
    assert small.selected.dtypes.to_dict() == frame[common].dtypes.to_dict()
    assert small.selected.traffic.exchanges().__next__().url == "https://c.test/report"


def test_keyboard_moves_and_enter_opens_the_detail(small):
    small.status = "2xx"  # list: [0, 1, 4, 7]
    small.move(1)  # nothing selected yet: the first row
    assert small.cursor == 0 and small.selected_positions == [0]
    small.move(1)
    small.move(1)
    assert small.cursor == 2 and small.selected_positions == [4]
    assert small.selected_exchange.url == "https://a.test/users/2"
    small.move(5)
    assert small.cursor == 3 and small.selected_positions == [7]
    small.move(-1)
    assert small.selected_positions == [4]
    small.detail_open = False
    small._handle_custom_msg({"type": "open"}, [])
    assert small.detail_open is True


def test_messages_from_the_page(small):
    send = small._handle_custom_msg
    send({"type": "window", "start": 1, "count": 2}, [])
    assert [r[0] for r in small.window["rows"]] == [1, 2]
    send({"type": "click", "index": 2}, [])
    send({"type": "click", "index": 4, "shift": True}, [])
    assert small.selected_positions == [2, 3, 4]
    send({"type": "click", "index": 0, "toggle": True}, [])
    assert small.selected_positions == [2, 3, 4, 0]
    send({"type": "move", "step": 1}, [])
    assert small.selected_positions == [1]
    send({"type": "click", "index": 99}, [])
    assert small.error == "IndexError: no row 99 in the list (0..7)"
    send({"type": "reset"}, [])
    assert small.error == ""


def test_cursor_follows_its_exchange_through_filters(small):
    small.click(5)
    small.sort = "-duration"
    assert small.cursor == 0  # 400 ms: the slowest
    small.status = "2xx"
    assert small.cursor == -1  # filtered out; the detail keeps showing it
    assert small.selected_exchange.url == "https://b.test/slow"
    small.select([7])  # the list: [7, 0, 4, 1]
    assert small.cursor == 0 and small.selected_positions == [7]
    with pytest.raises(IndexError):
        small.select([8])


def test_detail_shows_the_exchange(small):
    small.click(3)
    assert "https://c.test/report" in small.detail_html
    assert "500" in small.detail_html
    assert "tl-detail" in small.detail_html


@pytest.fixture
def browser(stream):
    return TrafficBrowser(stream)


N_TOTAL = N_GENERATED + 5


def test_snapshot_header_first_rows_and_detail(browser):
    page = browser.snapshot_html()
    assert page.startswith("<div class='tl-browser tl-snapshot'><style>")
    assert f"<div class='tl-count'>{html.escape(browser.header)}</div>" in page
    assert page.count("<tr class='tl-row") == 20
    assert f"\u2026 and {N_TOTAL - 20:,} more" in page
    first = browser.view.rows(browser.rows[:1])[0]
    assert html.escape(first["url"].split("://", 1)[1].split("/", 1)[1])[:20] in page
    assert "<div class='tl-detail-pane'>" in page and 'class="tl-detail' in page
    assert "<script" not in page
    headers = [f"data-col='{c}'" for c, _ in browser.columns]
    assert all(h in page for h in headers)
    browser.hidden_columns = ["host", "type"]
    assert "data-col='host'" not in browser.snapshot_html()


def test_snapshot_shows_the_selection_and_an_empty_list(small):
    small.click(3)
    page = small.snapshot_html()
    assert page.count("tl-row tl-row-selected") == 1
    assert page.count("<tr class='tl-row") == 8 and "more" not in page
    small.status = "3xx"
    page = small.snapshot_html()
    assert "<div class='tl-count'>0 of 8 exchanges</div>" in page
    assert "https://c.test/report" in page  # the shown exchange stays in the detail


def test_snapshot_cells_sit_under_their_headers(small):
    import re

    page = small.snapshot_html()
    first_row = page.split("<tr class='tl-row", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td class='tl-cell tl-col-(\w+)[^']*'>(.*?)</td>", first_row)
    assert [name for name, _ in cells] == [c for c, _ in small.columns]
    row = small.view.rows(small.rows[:1])[0]
    shown = dict(cells)
    assert shown["method"] == row["method"] and shown["host"] == row["host"]
    assert shown["type"] == html.escape(row["content_type"] or "")
    assert shown["size"].endswith(" B") and shown["duration"].endswith(" ms")
    assert "tl-s" not in shown["type"]


def test_mimebundle_has_the_widget_view_and_the_snapshot(small):
    bundle = small._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert set(data) == {"text/plain", "application/vnd.jupyter.widget-view+json", "text/html"}
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == small.model_id
    assert data["text/html"] == small.snapshot_html()


def test_nothing_from_a_capture_is_injected(browser):
    browser.search = "evil.example"
    assert browser.matches == 1
    browser.click(0)
    escaped = html.escape(HOSTILE)
    for markup in (browser.detail_html, browser.snapshot_html()):
        assert "<script" not in markup
        assert escaped in markup or html.escape(html.escape(HOSTILE)) in markup
    # The list's rows are data for textContent: the raw text, never markup.
    row = browser.window_rows(0, 1)["rows"][0]
    assert row[4] == f"/search?q={HOSTILE}"
    assert "<script" not in browser.header and "<script" not in json.dumps(browser.facets)[:0]


def test_css_and_esm_ship_with_the_package():
    from traffic_lab.widgets import browser as module

    assert module.STATIC.joinpath("browser.js").is_file()
    css = module.browser_css()
    assert ".tl-browser" in css and "--jp-layout-color0" in css
    assert ".tl-detail" in css  # the detail pane's CSS, appended
    esm = module.STATIC.joinpath("browser.js").read_text()
    assert "export default" in esm and "http" not in esm.split("//")[0]
    assert "innerHTML" in esm and esm.count("innerHTML") == 1  # only the kernel's detail


def test_replay_shows_the_diff_in_the_detail(small):
    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "http://127.0.0.1:9/report"
        return httpx.Response(500, json={"error": "changed"})

    small.base_url = "http://127.0.0.1:9"
    small._client = type(small._client)(httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(ValueError, match="no exchange selected"):
        small.replay()
    small.click(3)
    result = small.replay()
    assert result.response.status_code == 500
    assert "differs from the recording" in small.detail_html
    assert str(result.diff()).startswith("body")
    small.click(2)  # another exchange: its detail has no replay
    assert "differs from the recording" not in small.detail_html


def test_replay_against_the_demo_api_is_the_same(stream, demo_api):
    browser = TrafficBrowser(stream, base_url=demo_api.url)
    browser.filter(search="/api/users/", methods=["GET"], status="200")
    browser.click(0)
    result = browser.replay()
    assert result.response.status_code == 200
    assert not result.diff()


def test_replay_failure_is_shown(small):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    small._client = type(small._client)(httpx.Client(transport=httpx.MockTransport(handler)))
    small.click(0)
    small._handle_custom_msg({"type": "replay"}, [])
    assert small.error == "ConnectError: refused"
    assert "replay failed" in small.detail_html


def test_export_list_and_selection(small, tmp_path):
    small.status = "4xx,5xx"
    assert small.export(tmp_path / "errors.har") == 3
    assert [e.status_code for e in read_har(tmp_path / "errors.har")] == [404, 500, 503]
    small.reset()
    small.click(1)
    small.click(3, shift=True)
    assert small.export(tmp_path / "picked.har", selection=True) == 3
    assert [e.url for e in read_har(tmp_path / "picked.har")] == [
        "https://b.test/orders",
        "https://a.test/missing",
        "https://c.test/report",
    ]
    assert small.export(tmp_path / "picked", format="capture", selection=True) == 3
    back = to_pandas(tmp_path / "picked", bodies=True)
    assert back.response_body.tolist() == [b"x" * 40, b"x" * 5, b"x" * 20]
    with pytest.raises(ValueError, match="unknown export format"):
        small.export(tmp_path / "x", format="csv")


def test_search_in_bodies_is_bounded_and_reports_progress(browser, monkeypatch):
    from traffic_lab.widgets import body_search

    browser.search = "with brotli"
    assert browser.matches == 0  # not in any URL
    browser.search_bodies = True  # decoded bodies: the brotli one
    assert [e.url for e in browser.exchanges()] == ["https://files.example/data.json"]
    assert browser.progress == f"searched bodies of {N_TOTAL:,} of {N_TOTAL:,} exchanges: 1 hits"
    browser.search = "data.json"  # a URL hit counts too
    assert browser.matches == 1
    monkeypatch.setattr(body_search, "BODY_SEARCH_LIMIT", 10)
    monkeypatch.setattr(body_search, "BATCH", 4)
    browser.search = "with gzip"
    assert browser.matches == 0  # beyond the first 10 rows
    assert browser.progress == f"searched bodies of 10 of {N_TOTAL:,} exchanges: 0 hits"


def test_sources_frame_memory_store_exchanges_and_where(capture):
    frame = to_pandas(capture)
    from_frame = TrafficBrowser(frame)
    assert from_frame.matches == N_TOTAL
    from_frame.search = "data.json"
    from_frame.click(0)
    assert from_frame.selected_exchange.response.json()["compressed"] == "with brotli"
    memory = tl.MemoryStream()
    for status in (200, 500):
        memory.put(make_exchange(status_code=status))
    in_memory = TrafficBrowser(memory)
    in_memory.status = "5xx"
    in_memory.click(0)
    assert in_memory.selected_exchange.status_code == 500
    assert TrafficBrowser([make_exchange()]).matches == 1
    narrowed = TrafficBrowser(str(capture), where={"method": "POST"})
    assert narrowed.matches == int((frame.request_method == "POST").sum())
    assert set(narrowed.frame().request_method) == {"POST"}
    with pytest.raises(TypeError):
        TrafficBrowser(42)


def test_frame_of_the_list_keeps_the_traffic_accessor(browser):
    browser.status = "5xx"
    selection = browser.frame()
    assert len(selection) == browser.matches
    assert [e.status_code for e in selection.traffic.exchanges()] == [500] * browser.matches


def test_widget_state_serialises(small):
    small.click(2)
    state = small.get_state()
    assert state["matches"] == 8 and state["selected_positions"] == [2]
    assert "selected" not in state  # the DataFrame stays in the kernel
    json.dumps({k: v for k, v in state.items() if k != "layout"})


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


def test_arrow_keys_find_the_next_exchanges_already_read(small, monkeypatch):
    reads = []
    exchanges = small.view.exchanges
    monkeypatch.setattr(
        small.view,
        "exchanges",
        lambda positions: reads.append(list(positions)) or exchanges(positions),
    )
    small.click(1)
    assert reads == [[1, 0, 2, 3, 4, 5, 6, 7]]  # two above, the rest below
    for _ in range(6):
        small.move(1)
    assert len(reads) == 1 and small.selected_exchange.url == "https://a.test/users/3"
    small.select([])
    small._nearby.clear()
    small.sort = "-duration"  # [5, 3, 2, 7, 0, 4, 1, 6]
    small.click(4)
    assert reads[1] == [0, 2, 7, 4, 1, 6]  # two above, the rest below, in the list's order


@pytest.mark.parametrize(
    "key",
    [
        np.random.default_rng(5).integers(0, 4, 5_000),  # counting sort
        np.random.default_rng(6).integers(100, 4_195, 5_000).astype(np.int32),  # counting
        np.random.default_rng(1).integers(-300, 6_000, 5_000),  # one 16-bit pass
        np.random.default_rng(7).integers(0, 460_000, 5_000),  # 16 bits, then counting
        np.array([2**32 - 1, 0, 7, 2**32 - 1, 7], dtype=np.uint32),  # the widest narrow key
        np.random.default_rng(2).integers(-(10**6), 10**7, 5_000),  # two passes
        np.random.default_rng(3).integers(0, 2**40, 5_000),  # too wide: numpy's own sort
        np.random.default_rng(4).normal(size=5_000).round(1),  # floats: numpy's own sort
        np.zeros(0, dtype=np.int64),
    ],
)
def test_stable_argsort_is_numpys_stable_argsort(key):
    from traffic_lab.widgets._browser_data import stable_argsort

    assert stable_argsort(key).tolist() == np.argsort(key, kind="stable").tolist()
    signed = key.astype(np.int64) if key.dtype.kind == "u" else key  # -key of uint wraps
    expected = np.argsort(-signed, kind="stable").tolist()
    assert stable_argsort(key, descending=True).tolist() == expected


def test_a_prefetched_sort_is_the_sort_and_is_waited_for(monkeypatch):
    import threading

    import traffic_lab.widgets._browser_data as data
    from traffic_lab.widgets._browser_data import TrafficView

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "request_method": ["GET"] * 5000,
            "request_url": [f"https://a.example/{i}" for i in range(5000)],
            "elapsed_ms": rng.integers(0, 900_000, 5000) / 1000,
            "response_status": [200] * 5000,
        }
    )
    view = TrafficView(frame)
    release = threading.Event()
    sorting = data.stable_argsort

    def slow(key, descending=False):
        release.wait(5)  # the thread sorts only when the test lets it
        return sorting(key, descending)

    monkeypatch.setattr(data, "stable_argsort", slow)
    view.prefetch("duration", descending=True)
    view.prefetch("duration", descending=True)  # once is enough: no second thread
    assert [t.name for t in threading.enumerate()].count("traffic_lab sort duration") == 1
    assert ("duration", True) not in view._orders
    threading.Timer(0.2, release.set).start()
    order = view.order("duration", descending=True)  # waits for the thread, does not re-sort
    assert order is view._orders[("duration", True)]
    expected = np.argsort(-np.rint(frame.elapsed_ms.to_numpy() * 1000), kind="stable")
    assert order.tolist() == expected.tolist()
    with pytest.raises(ValueError, match="unknown sort column 'latency'"):
        view.prefetch("latency")


def test_big_lists_sort_slowest_first_in_the_background(monkeypatch, tmp_path):
    import traffic_lab.widgets.browser as browser_module
    from traffic_lab.widgets import TrafficBrowser

    with tl.ParquetStream(tmp_path / "c") as stream:
        for i in range(50):
            stream.put(make_exchange(url=f"https://a.example/{i}", elapsed_ms=float(i % 7)))
    small = TrafficBrowser(tmp_path / "c")
    assert not small.view._sorting and not small.view._orders  # below PREFETCH_ROWS
    monkeypatch.setattr(browser_module, "PREFETCH_ROWS", 50)
    big = TrafficBrowser(tmp_path / "c")
    assert ("duration", True) in {**big.view._orders, **big.view._sorting}  # started at open
    big.sort = "-duration"
    assert big.view.order("duration", True) is big.view._orders[("duration", True)]
    assert [big.view.elapsed_us[i] for i in big._rows[:3]] == [6000, 6000, 6000]
