"""The df.traffic accessor: registration, summary, endpoints, duplicates, compare, and the way
back to httpx (exchanges, responder, replay)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

import traffic_lab as tl
from traffic_lab.frames import TrafficAccessor, path_template, read_capture, to_pandas
from traffic_lab.frames.analysis import json_shape, shape_drift
from traffic_lab.testing import LoopbackServer

from .conftest import T0, exchange


# -- registration ---------------------------------------------------------------------------------
def test_importing_frames_registers_the_accessor():
    code = (
        "import pandas as pd, traffic_lab; "
        "before = hasattr(pd.DataFrame, 'traffic'); "
        "import traffic_lab.frames; "
        "print(before, hasattr(pd.DataFrame, 'traffic'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_only_traffic_frames_get_the_accessor():
    assert pd.DataFrame.traffic is TrafficAccessor
    plain = pd.DataFrame({"a": [1], "request_url": ["https://x/"]})
    assert not hasattr(plain, "traffic")
    with pytest.raises(
        AttributeError, match=r"not a traffic frame \(missing columns \['request_method'\]\)"
    ):
        plain.traffic  # noqa: B018
    assert isinstance(to_pandas([exchange(0)]).traffic, TrafficAccessor)


# -- summary and endpoints ------------------------------------------------------------------------
def five():
    return [
        exchange(0, path="/users/1", elapsed_ms=10),
        exchange(1, path="/users/2", status=404, elapsed_ms=20),
        exchange(
            2, method="POST", path="/users", status=201, elapsed_ms=30, request_body=b'{"n": 1}'
        ),
        exchange(3, path="/users/1", status=None, elapsed_ms=40),
        exchange(4, path="/users/1", status=500, elapsed_ms=50),
    ]


def test_summary_on_constructed_traffic():
    s = to_pandas(five()).traffic.summary()
    assert s.to_dict() == {
        "exchanges": 5,
        "start": pd.Timestamp(T0),
        "end": pd.Timestamp(T0 + timedelta(seconds=4)),
        "duration": pd.Timedelta(seconds=4),
        "hosts": 1,
        "endpoints": 2,
        "status_1xx": 0,
        "status_2xx": 2,
        "status_3xx": 0,
        "status_4xx": 1,
        "status_5xx": 1,
        "failed": 1,
        "truncated": 0,
        "error_rate": 0.6,
        "p50_ms": 30.0,
        "p90_ms": 46.0,
        "p99_ms": pytest.approx(49.6),
        "max_ms": 50.0,
        "request_bytes": 8,
        "response_bytes": 36,
        "repeated_requests": 2,
    }


def test_summary_of_an_empty_frame():
    df = to_pandas([exchange(0)]).iloc[:0]
    s = df.traffic.summary()
    assert s["exchanges"] == 0 and s["endpoints"] == 0 and s["error_rate"] == 0.0
    assert np.isnan(s["p50_ms"])


def test_endpoints_on_constructed_traffic():
    table = to_pandas(five()).traffic.endpoints()
    assert table.index.names == ["method", "endpoint"]
    assert table.index.tolist() == [("GET", "/users/{id}"), ("POST", "/users")]
    get = table.loc[("GET", "/users/{id}")]
    assert get.to_dict() == {
        "count": 4,
        "p50_ms": 30.0,
        "p90_ms": 47.0,
        "p99_ms": pytest.approx(49.7),
        "mean_ms": 30.0,
        "max_ms": 50.0,
        "errors_4xx": 1,
        "errors_5xx": 1,
        "failed": 1,
        "error_rate": 0.75,
        "server_error_rate": 0.5,
        "request_bytes_mean": 0.0,
        "response_bytes_mean": 6.75,
        "response_bytes_max": 9,
        "response_bytes_total": 27,
    }
    post = table.loc[("POST", "/users")]
    assert (post["count"], post["p50_ms"], post["error_rate"], post["request_bytes_mean"]) == (
        1,
        30.0,
        0.0,
        8.0,
    )
    assert table["count"].dtype == np.int64


def test_endpoint_percentiles_match_numpy():
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(3, 1, size=500).round(3)
    exchanges = [
        exchange(i, path=f"/orders/{i}", elapsed_ms=float(ms)) for i, ms in enumerate(latencies)
    ]
    row = to_pandas(exchanges).traffic.endpoints().iloc[0]
    for q, column in ((50, "p50_ms"), (90, "p90_ms"), (99, "p99_ms")):
        assert row[column] == pytest.approx(np.percentile(latencies, q), rel=1e-9)
    assert row["count"] == 500


def test_endpoints_by_host():
    exchanges = [
        exchange(i, host=h, path="/x")
        for i, h in enumerate(["a.example", "b.example", "a.example"])
    ]
    table = to_pandas(exchanges).traffic.endpoints(by_host=True)
    assert table["count"].to_dict() == {
        ("a.example", "GET", "/x"): 2,
        ("b.example", "GET", "/x"): 1,
    }


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/users/42", "/api/users/{id}"),
        ("/users/42/", "/users/{id}/"),
        ("/orders/0C6F1A57-6c8e-4c5b-9a0e-2d3c4b5a6f70", "/orders/{uuid}"),
        ("/reports/3fa2b9c01e", "/reports/{hash}"),
        ("/objects/5f1d7a0c9e4b3a2d1c0b9a8f/meta", "/objects/{hash}/meta"),
        ("/t/AbCdEfGhIjKlMnOpQrSt1u", "/t/{hash}"),
        ("/reports/deadbeefcafe", "/reports/deadbeefcafe"),  # hex letters only: a word
        ("/t/getUserProfile2024", "/t/getUserProfile2024"),  # too short for a token
        ("/v2/users", "/v2/users"),
        ("/", "/"),
        ("/1/2/3", "/{id}/{id}/{id}"),
    ],
)
def test_path_templates(path, template):
    assert path_template(path) == template


def test_custom_segment_rules():
    rules = [("{date}", r"^\d{4}-\d{2}-\d{2}$"), *tl.frames.DEFAULT_SEGMENT_RULES]
    assert path_template("/days/2026-03-01/7", rules) == "/days/{date}/{id}"
    df = to_pandas([exchange(0, path="/days/2026-03-01")])
    assert df.traffic.endpoint(rules).tolist() == ["/days/{date}"]
    assert df.traffic.endpoints(rules=rules).index.tolist() == [("GET", "/days/{date}")]


def test_endpoints_without_a_path_column_use_the_url():
    df = to_pandas([exchange(0, path="/users/5?x=1")])[["request_method", "request_url"]]
    assert df.traffic.endpoint().tolist() == ["/users/{id}"]
    bare = pd.DataFrame({"request_method": ["GET"], "request_url": ["https://h.example"]})
    assert bare.traffic.endpoint().tolist() == ["/"]
    with pytest.raises(KeyError, match=r"endpoints\(\) needs the columns \['elapsed_ms'"):
        bare.traffic.endpoints()


def test_demo_endpoints(demo_capture):
    table = read_capture(demo_capture).traffic.endpoints()
    index = set(table.index)
    assert {
        ("GET", "/api/users/{id}"),
        ("GET", "/api/orders/{uuid}"),
        ("GET", "/api/reports/{hash}"),
        ("GET", "/api/products/{id}/image.png"),
        ("GET", "/api/search"),
        ("POST", "/api/users"),
        ("POST", "/api/login"),
    } <= index
    assert table["count"].sum() == 240
    # The deliberately slow routes are slow; 422s and 429s show up as errors where expected.
    assert (
        table.loc[("GET", "/api/search"), "p50_ms"]
        > 5 * table.loc[("GET", "/api/users/{id}"), "p50_ms"]
    )
    assert table.loc[("POST", "/api/users"), "errors_4xx"] > 0
    assert table.loc[("GET", "/api/limited"), "errors_4xx"] > 0
    assert table.loc[("GET", "/api/products/{id}/image.png"), "error_rate"] == 0.0


# -- duplicates -----------------------------------------------------------------------------------
def test_duplicates_count_what_a_cache_would_have_answered():
    rows = [
        exchange(0, path="/a", elapsed_ms=10),  # first answer: goes out
        exchange(1, path="/b", status=None, elapsed_ms=5),  # failed: not cached
        exchange(2, path="/a", elapsed_ms=20),  # hit
        exchange(3, path="/b", elapsed_ms=7, truncated=True),  # truncated: not cached
        exchange(4, path="/b", elapsed_ms=8),  # first servable /b: goes out
        exchange(5, path="/b", elapsed_ms=9),  # hit
        exchange(6, path="/a", elapsed_ms=30, status=500),  # hit (a cache serves any status)
        exchange(7, path="/c", elapsed_ms=1),  # unique: not listed
    ]
    table = to_pandas(rows).traffic.duplicates()
    matcher = tl.Matcher()
    assert table.index.tolist() == ["GET /a", "GET /b"]  # the request line labels a row
    assert table.index.name == "request"
    assert table.key.tolist() == [matcher.key(rows[0]), matcher.key(rows[1])]
    assert table[["count", "repeats", "saved_ms", "saved_bytes"]].values.tolist() == [
        [3, 2, 50.0, 18],
        [4, 1, 9.0, 9],
    ]
    assert table.request_url.tolist() == ["https://api.example/a", "https://api.example/b"]
    assert table.first_at.tolist() == [T0, T0 + timedelta(seconds=1)]
    assert table.last_at.tolist() == [T0 + timedelta(seconds=6), T0 + timedelta(seconds=5)]


def test_duplicates_by_columns_or_by_another_matcher():
    rows = [exchange(i, path=f"/a?page={i}", elapsed_ms=1) for i in range(3)]
    df = to_pandas(rows)
    assert df.traffic.duplicates().empty
    assert list(df.traffic.duplicates().columns) == [
        "request_method",
        "request_url",
        "count",
        "repeats",
        "saved_ms",
        "saved_bytes",
        "first_at",
        "last_at",
        "key",
    ]
    assert df.traffic.duplicates().index.name == "request"
    by_path = df.traffic.duplicates(["request_method", "request_path"])
    assert by_path[["count", "repeats"]].values.tolist() == [[3, 2]]
    by_matcher = df.traffic.duplicates(tl.Matcher(ignore_query=["page"]))
    assert by_matcher[["count", "repeats", "saved_ms"]].values.tolist() == [[3, 2, 2.0]]


# -- compare --------------------------------------------------------------------------------------
def json_exchange(i, path, doc, status=200, elapsed_ms=10.0):
    import json as _json

    return exchange(
        i, path=path, status=status, elapsed_ms=elapsed_ms, body=_json.dumps(doc).encode()
    )


def test_compare_reports_status_latency_size_and_schema_drift():
    before = [
        json_exchange(
            0,
            "/users/1",
            {"id": 1, "name": "x", "tags": ["a"], "address": {"city": "c"}},
            elapsed_ms=10,
        ),
        json_exchange(
            1,
            "/users/2",
            {"id": 2, "name": "y", "tags": [], "address": {"city": "d"}},
            elapsed_ms=20,
        ),
        json_exchange(2, "/users/3", {"error": "no"}, status=404, elapsed_ms=30),
        json_exchange(3, "/orders", {"orders": []}),
    ]
    after = [
        json_exchange(
            0,
            "/users/1",
            {
                "id": "1",
                "name": "x",
                "tags": [1],
                "address": {"city": "c", "zip": "z"},
                "email": "e",
            },
            elapsed_ms=40,
        ),
        json_exchange(1, "/users/9", {"error": "boom"}, status=500, elapsed_ms=60),
        json_exchange(2, "/users/8", {"error": "boom"}, status=500, elapsed_ms=80),
        json_exchange(3, "/health", {"ok": True}),
    ]
    out = to_pandas(before).traffic.compare(to_pandas(after), labels=("before", "after"))
    assert out.index.tolist() == [("GET", "/health"), ("GET", "/orders"), ("GET", "/users/{id}")]
    users = out.loc[("GET", "/users/{id}")]
    assert (users.count_before, users.count_after) == (3, 3)
    assert users.statuses_before == {200: 2, 404: 1}
    assert users.statuses_after == {200: 1, 500: 2}
    assert users.error_rate_before == pytest.approx(1 / 3)
    assert users.error_rate_after == pytest.approx(2 / 3)
    assert (users.p50_ms_before, users.p50_ms_after, users.p50_ratio) == (20.0, 60.0, 3.0)
    assert users.schema_changed
    assert users.fields_added == ["$.address.zip", "$.email"]
    assert users.fields_removed == []
    # Shapes come from 2xx bodies only: the {"error": ...} bodies of 404 and 500 do not count.
    assert users.types_changed == ["$.id: number -> string", "$.tags[]: string -> number"]
    orders = out.loc[("GET", "/orders")]
    assert (orders.count_before, orders.count_after, orders.statuses_after) == (1, 0, {})
    assert np.isnan(orders.p50_ms_after)
    assert (orders.schema_changed, orders.fields_added) == (False, [])
    assert out.loc[("GET", "/health")].count_before == 0


def test_compare_samples_bodies_per_endpoint():
    a = to_pandas(
        [json_exchange(i, f"/x/{i}", {"v": i} if i else {"v": 0, "w": 1}) for i in range(3)]
    )
    b = to_pandas([json_exchange(i, f"/x/{i}", {"v": i}) for i in range(3)])
    assert a.traffic.compare(b).iloc[0].fields_removed == ["$.w"]
    assert a.iloc[1:].traffic.compare(b).iloc[0].fields_removed == []
    # With sample=1 only the first JSON body of each endpoint and side is looked at.
    assert b.traffic.compare(a.iloc[::-1], sample=1).iloc[0].fields_added == []
    assert b.traffic.compare(a, sample=1).iloc[0].fields_added == ["$.w"]
    with pytest.raises(ValueError, match="labels must differ"):
        a.traffic.compare(b, labels=("x", "x"))


def test_compare_two_sessions_of_one_capture(write_capture_dir):
    rows = [json_exchange(i, "/p", {"price": 1.5}) for i in range(3)]
    rows += [json_exchange(i, "/p", {"price": "1.50"}) for i in range(3, 5)]
    rows = [r.replace(tags={"session": "v1" if i < 3 else "v2"}) for i, r in enumerate(rows)]
    folder = write_capture_dir(rows)
    v1 = read_capture(folder, where={"tags": {"session": "v1"}})
    v2 = read_capture(folder, where={"tags": {"session": "v2"}})
    out = v1.traffic.compare(v2, labels=("v1", "v2"))
    assert out[["count_v1", "count_v2"]].values.tolist() == [[3, 2]]
    assert out.types_changed.tolist() == [["$.price: number -> string"]]


def test_json_shapes():
    shape = json_shape([{"a": None}, {"a": 1.5, "b": [True]}])
    assert shape == {
        "$": {"array"},
        "$[]": {"object"},
        "$[].a": {"null", "number"},
        "$[].b": {"array"},
        "$[].b[]": {"boolean"},
    }
    assert shape_drift(shape, shape) == ([], [], [])
    assert shape_drift({"$.a": {"null", "number"}}, {"$.a": {"number"}}) == (
        [],
        [],
        ["$.a: null|number -> number"],
    )


# -- back to httpx --------------------------------------------------------------------------------
def test_the_accessor_is_a_replay_for_the_responder(demo_capture):
    df = read_capture(demo_capture)
    errors = df[df.response_status >= 500]
    assert isinstance(errors.traffic, tl.Replay)
    with httpx.Client(transport=httpx.MockTransport(tl.responder(errors.traffic))) as client:
        answers = [client.get(url) for url in errors.request_url]
    assert [a.status_code for a in answers] == [500] * len(errors)
    assert all(a.json() == {"error": "report generation failed"} for a in answers)


def test_replay_through_a_client_compares_live_with_recorded(tmp_path):
    folder = tmp_path / "c"
    with (
        LoopbackServer() as server,
        tl.ParquetStream(folder) as stream,
        httpx.Client(base_url=server.url, transport=tl.RecordingTransport(stream)) as client,
    ):
        client.get("/json?size=200&seed=1")
        client.get("/status/404")
        client.post("/echo", content=b"hello")
    df = read_capture(folder)
    with LoopbackServer() as other, httpx.Client() as client:
        result = df.traffic.replay(client, base_url=other.url)
        assert [p for _, p in other.hits] == ["/json?size=200&seed=1", "/status/404", "/echo"]
    assert result.index.tolist() == df.index.tolist()
    assert result.recorded_status.tolist() == [200, 404, 200]
    assert result.live_status.tolist() == [200, 404, 200]
    assert str(result.live_status.dtype) == "Int32"
    # /echo reports the Host header, which names the other server's port.
    assert result.changed.tolist() == [False, False, True]
    assert result.changes.iloc[2].startswith("json $.headers[0][1]")
    assert (result.live_elapsed_ms > 0).all()
    assert result.error.isna().all()
    assert isinstance(result.result.iloc[0], tl.transports.ReplayResult)


def test_replay_reports_changes_and_transport_errors():
    df = to_pandas([exchange(0, path="/a"), exchange(1, path="/b"), exchange(2, path="/c")])

    def handler(request):
        if request.url.path == "/c":
            raise httpx.ConnectError("down", request=request)
        if request.url.path == "/b":
            return httpx.Response(503, json={"id": 1})
        return httpx.Response(200, json={"id": 0}, headers={"Content-Type": "application/json"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = df.traffic.replay(client)
    assert result.live_status.tolist() == [200, 503, pd.NA]
    assert result.changed.tolist() == [False, True, True]
    assert result.changes.tolist()[1] == "status: 200 -> 503"
    assert "ConnectError('down')" in result.error.iloc[2]


def test_endpoints_of_an_empty_selection_is_an_empty_table_with_every_column():
    frame = to_pandas([exchange(1)])
    empty = frame.iloc[0:0].traffic.endpoints()
    assert len(empty) == 0
    assert empty.index.names == ["method", "endpoint"]
    assert list(empty.columns) == list(frame.traffic.endpoints().columns)
