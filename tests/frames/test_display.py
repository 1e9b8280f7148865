"""How analysis answers look (traffic_lab.frames.display): the summary with units, endpoint and
duplicate tables rounded within a notebook's width, while code gets the exact numbers."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from traffic_lab.frames import to_pandas
from traffic_lab.frames.display import (
    DISPLAY_WIDTH,
    Summary,
    TrafficTable,
    format_bytes,
    format_count,
    format_ms,
    format_percent,
    format_seconds,
    shorten,
)

from .conftest import T0, exchange
from .test_accessor import five

FIVE_SUMMARY = """\
exchanges                      5
first request                  2026-03-01 12:00:00.000 UTC
last request                   2026-03-01 12:00:04.000 UTC
duration                       4.0 s
hosts                          1
endpoints                      2
1xx responses                  0 (0 %)
2xx responses                  2 (40.0 %)
3xx responses                  0 (0 %)
4xx responses                  1 (20.0 %)
5xx responses                  1 (20.0 %)
transport errors               1 (20.0 %)
truncated                      0 (0 %)
error rate (4xx, 5xx, failed)  60.0 %
latency p50                    30 ms
latency p90                    46 ms
latency p99                    50 ms
latency max                    50 ms
request bodies                 8 B
response bodies                36 B
repeated requests              2 (40.0 %)"""

FIVE_ENDPOINTS = """\
method  endpoint     count    p50    p90    p99    max  errors  5xx+failed  resp mean  resp total
GET     /users/{id}      4  30 ms  47 ms  50 ms  50 ms  75.0 %      50.0 %        7 B        27 B
POST    /users           1  30 ms  30 ms  30 ms  30 ms     0 %         0 %        9 B         9 B
(6 more columns: mean_ms, errors_4xx, errors_5xx, failed, request_bytes_mean, response_bytes_max)"""


# -- units ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 ms"),
        (0.04, "0.0 ms"),
        (3.599, "3.6 ms"),
        (9.96, "10 ms"),
        (243.4, "243 ms"),
        (999.4, "999 ms"),
        (999.6, "1.0 s"),
        (4142.253, "4.1 s"),
        (61_000, "1 min 01 s"),
        (float("nan"), "-"),
        (None, "-"),
    ],
)
def test_format_ms(ms, text):
    assert format_ms(ms) == text


def test_format_seconds_bytes_percent_count():
    assert format_seconds(pd.Timedelta(seconds=4.142253)) == "4.1 s"
    assert format_seconds(timedelta(hours=2, minutes=3)) == "2 h 03 min"
    assert format_seconds(pd.NaT) == "-"
    assert [format_bytes(n) for n in (0, 1023, 1024, 1229, 1_048_576, 5 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.0 KB",
        "1.2 KB",
        "1.0 MB",
        "5.0 GB",
    ]
    assert [format_percent(r) for r in (0.10125, 0, 1, 0.0001, 0.9999, np.nan)] == [
        "10.1 %",
        "0 %",
        "100 %",
        "<0.1 %",
        ">99.9 %",
        "-",
    ]
    assert format_count(np.int64(1234567)) == "1,234,567"


def test_shorten_keeps_the_start_and_the_last_segment():
    long = "/api/products/{id}/variants/{uuid}/images/thumbnail.png"
    assert shorten(long, 32) == "/api/products/{id}…thumbnail.png"
    assert len(shorten(long, 32)) == 32
    assert shorten("/short", 32) == "/short"


# -- summary -------------------------------------------------------------------------------------
def test_summary_shows_units_and_keeps_the_numbers():
    s = to_pandas(five()).traffic.summary()
    assert isinstance(s, Summary)
    assert repr(s) == str(s) == FIVE_SUMMARY
    # The numbers, exact, by key and by attribute.
    assert s["error_rate"] == 0.6 and s.error_rate == 0.6
    assert s["duration"] == pd.Timedelta(seconds=4)
    assert s["p99_ms"] == pytest.approx(49.6) and s.text("p99_ms") == "50 ms"
    assert s["response_bytes"] == 36 and isinstance(s["exchanges"], int)
    assert list(s)[:3] == ["exchanges", "start", "end"] and len(s) == 21
    with pytest.raises(AttributeError, match="no figure 'nope'"):
        s.nope  # noqa: B018
    with pytest.raises(KeyError):
        s["nope"]


def test_summary_html_is_a_two_column_table_with_units():
    html = to_pandas(five()).traffic.summary()._repr_html_()
    assert '<th class="tl-idx">metric</th><th>value</th>' in html
    for row in [
        '<th title="duration">duration</th><td>4.0 s</td>',
        '<th title="error_rate">error rate (4xx, 5xx, failed)</th><td>60.0 %</td>',
        '<th title="p50_ms">latency p50</th><td>30 ms</td>',
        '<th title="response_bytes">response bodies</th><td>36 B</td>',
        '<th title="status_2xx">2xx responses</th><td>2 (40.0 %)</td>',
    ]:
        assert row in html
    assert html.count("<tr>") == 22  # the header and 21 figures


def test_summary_as_series_dict_and_tidy_frame():
    s = to_pandas(five()).traffic.summary()
    series = s.to_series()
    assert series.name == "summary" and series.dtype == object
    assert series.to_dict() == s.to_dict() == dict(s)
    tidy = s.to_frame()
    assert list(tidy.columns) == ["metric", "value"] and len(tidy) == 21
    assert tidy.set_index("metric").loc["error_rate", "value"] == 0.6
    text = s.to_frame(text=True).set_index("metric")["value"]
    assert text["latency p50"] == "30 ms" and text["duration"] == "4.0 s"


def test_summary_and_tables_survive_pickle_and_copy():
    import copy
    import pickle

    df = to_pandas(five())
    s = df.traffic.summary()
    for again in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
        assert isinstance(again, Summary) and again == s and repr(again) == FIVE_SUMMARY
    table = pickle.loads(pickle.dumps(df.traffic.endpoints()))
    assert isinstance(table, TrafficTable) and repr(table) == FIVE_ENDPOINTS


def test_summary_of_nothing_shows_dashes():
    s = to_pandas([exchange(0)]).iloc[:0].traffic.summary()
    assert s.text("p50_ms") == "-" and s.text("start") == "-" and s.text("duration") == "-"
    assert s.text("status_2xx") == "0"  # no share of nothing


# -- tables --------------------------------------------------------------------------------------
def test_endpoints_display_is_rounded_with_units_and_the_numbers_stay():
    table = to_pandas(five()).traffic.endpoints()
    assert isinstance(table, TrafficTable)
    assert repr(table) == FIVE_ENDPOINTS
    shown = table.display_frame()
    assert shown.to_dict("list") == {
        "method": ["GET", "POST"],
        "endpoint": ["/users/{id}", "/users"],
        "count": ["4", "1"],
        "p50": ["30 ms", "30 ms"],
        "p90": ["47 ms", "30 ms"],
        "p99": ["50 ms", "30 ms"],
        "max": ["50 ms", "30 ms"],
        "errors": ["75.0 %", "0 %"],
        "5xx+failed": ["50.0 %", "0 %"],
        "resp mean": ["7 B", "9 B"],
        "resp total": ["27 B", "9 B"],
    }
    # The frame itself is unchanged: numeric columns, exact values.
    assert table.loc[("GET", "/users/{id}"), "p99_ms"] == pytest.approx(49.7)
    assert table.loc[("GET", "/users/{id}"), "response_bytes_mean"] == 6.75
    assert table["count"].dtype == np.int64 and table["error_rate"].dtype == np.float64


def test_endpoints_html_formats_and_names_the_columns_left_out():
    html = to_pandas(five()).traffic.endpoints()._repr_html_()
    assert '<th title="p50_ms">p50</th>' in html
    assert "<td>47 ms</td><td>50 ms</td><td>50 ms</td><td>75.0 %</td><td>50.0 %</td>" in html
    assert (
        "<caption>6 more columns: mean_ms, errors_4xx, errors_5xx, failed, request_bytes_mean, "
        "response_bytes_max</caption>"
    ) in html


def test_derived_frames_display_the_same_and_a_plain_frame_is_one_call_away():
    table = to_pandas(five()).traffic.endpoints()
    for derived in (table.head(1), table.nlargest(1, "count"), table[["count", "p50_ms"]]):
        assert isinstance(derived, TrafficTable)
    assert repr(table[["count", "p50_ms"]]).splitlines() == [
        "method  endpoint     count    p50",
        "GET     /users/{id}      4  30 ms",
        "POST    /users           1  30 ms",
    ]
    assert isinstance(table["count"], pd.Series) and not isinstance(table["count"], TrafficTable)
    plain = pd.DataFrame(table)
    assert type(plain) is pd.DataFrame and "response_bytes_total" in repr(plain)


def test_tables_fit_the_width_and_shorten_long_paths_in_the_display_only():
    long = "/api/catalogue/departments/{id}/products/{uuid}/images/thumbnail.png"
    rows = [
        exchange(i, host=h, path=p, elapsed_ms=1234.5 * (i + 1), status=s)
        for i, (h, p, s) in enumerate(
            [("a.example", long, 200), ("b.example", long, 503), ("a.example", "/x", 404)]
        )
    ]
    table = to_pandas(rows).traffic.endpoints(by_host=True)
    lines = repr(table).splitlines()
    assert max(map(len, lines)) <= DISPLAY_WIDTH
    assert lines[0].split() == [
        "host",
        "method",
        "endpoint",
        "count",
        "p50",
        "p99",
        "max",
        "errors",
    ]
    assert lines[1].split() == [
        "a.example",
        "GET",
        "/api/catalogue/departments…thumbnail.png",
        "1",
        *("1.2", "s") * 3,
        "0",
        "%",
    ]
    assert long in table.index.get_level_values("endpoint")  # the frame keeps the whole path
    html = table._repr_html_()
    assert f'title="{long}">/api/catalogue/departments…thumbnail.png</th>' in html


def test_long_tables_show_their_first_rows_and_say_so():
    rows = [exchange(i, path=f"/p{i}") for i in range(70)]
    table = to_pandas(rows).traffic.endpoints()
    with pd.option_context("display.max_rows", 60, "display.min_rows", 10):
        lines = repr(table).splitlines()
    assert len(lines) == 1 + 10 + 2  # header, 10 rows, a footer of two lines
    assert lines[-2].startswith("(first 10 of 70 rows; 6 more columns:")


def test_duplicates_are_labelled_by_request_line_with_the_key_kept():
    rows = [exchange(i, path="/api/users/42?x=1") for i in range(3)]
    rows += [exchange(3 + i, path="/api/search?q=ada", elapsed_ms=50) for i in range(2)]
    table = to_pandas(rows).traffic.duplicates()
    assert table.index.name == "request"
    assert table.index.tolist() == ["GET /api/search?q=ada", "GET /api/users/42?x=1"]
    assert table["key"].str.fullmatch("[0-9a-f]{32}").all()
    assert repr(table).splitlines()[:3] == [
        "request                count  repeats  saved time  saved bytes                        first",
        "GET /api/search?q=ada      2        1       50 ms          9 B  2026-03-01 12:00:03.000 UTC",
        "GET /api/users/42?x=1      3        2       20 ms         18 B  2026-03-01 12:00:00.000 UTC",
    ]


def test_duplicates_on_several_hosts_name_the_host():
    rows = [exchange(i, host=h, path="/a?q=1") for i, h in enumerate(["a.ex", "b.ex"] * 2)]
    table = to_pandas(rows).traffic.duplicates()
    assert sorted(table.index) == ["GET a.ex/a?q=1", "GET b.ex/a?q=1"]


def test_compare_keeps_the_latency_columns_in_view():
    a = to_pandas([exchange(i, path=f"/users/{i}", elapsed_ms=10) for i in range(3)])
    b = to_pandas([exchange(i, path=f"/users/{i}", elapsed_ms=25) for i in range(3)])
    table = a.traffic.compare(b, labels=("v1", "v2"))
    assert isinstance(table, TrafficTable)
    lines = repr(table).splitlines()
    assert lines[:2] == [
        "method  endpoint     count v1  count v2  errors v1  errors v2  p50 v1  p50 v2  p50 ratio  schema",
        "GET     /users/{id}         3         3        0 %        0 %   10 ms   25 ms      2.50x      no",
    ]
    assert table.loc[("GET", "/users/{id}"), "p50_ratio"] == 2.5


def test_empty_tables_keep_pandas_display():
    table = to_pandas([exchange(0)]).traffic.duplicates()
    assert table.empty and isinstance(table, TrafficTable)
    assert "Empty" in repr(table) and "<table" in table._repr_html_()


def test_times_show_to_the_millisecond_in_utc():
    rows = [
        exchange(i, path="/a", started_at=T0 + timedelta(milliseconds=1500 * i)) for i in (0, 1)
    ]
    table = to_pandas(rows).traffic.duplicates()
    assert table.display_frame(width=200)["last"].tolist() == ["2026-03-01 12:00:01.500 UTC"]


def test_request_lines_of_bare_origins_and_query_only_urls():
    from traffic_lab.frames.display import request_lines

    methods = pd.Series(["GET", "POST", "GET"])
    urls = pd.Series(["https://a.example", "http://b.example?q=1", "https://c.example/x#top"])
    assert request_lines(methods, urls).tolist() == ["GET /", "POST /?q=1", "GET /x#top"]
    assert request_lines(methods, urls, host=True).tolist() == [
        "GET a.example/",
        "POST b.example/?q=1",
        "GET c.example/x#top",
    ]
