"""The where= spec: validation, the rows each field selects (Parquet and memory alike), and the
pushdown into the Parquet files (partitions and row groups skipped, bytes not read)."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import traffic_lab as tl
from traffic_lab.frames import Where, read_capture, to_pandas
from traffic_lab.frames.where import as_expression, glob_to_regex

from .conftest import T0, exchange

HOSTS = ["api.example", "auth.example", "cdn.other"]
PATHS = ["/users/{i}", "/users/{i}/orders", "/api/v1/items/{i}", "/health"]
STATUSES = [200, 201, 204, 301, 404, 422, 429, 500, 503, None]
METHODS = ["GET", "POST", "DELETE"]


def mixed(n: int = 60) -> list[tl.Exchange]:
    out = []
    for i in range(n):
        out.append(
            exchange(
                i,
                host=HOSTS[i % 3],
                method=METHODS[i % 3 if i % 7 else 1],
                path=PATHS[i % 4].format(i=i),
                status=STATUSES[i % 10],
                started_at=T0 + timedelta(minutes=i),
                tags={"session": "a" if i < n // 2 else "b"},
            )
        )
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("where") / "c"
    with tl.ParquetStream(folder, flush_seconds=None) as stream:
        for ex in mixed():
            stream.put(ex)
    return folder


def expected(predicate) -> list[str]:
    return [ex.url for ex in mixed() if predicate(ex)]


CASES = [
    ("host exact", {"host": "auth.example"}, lambda e: e.host == "auth.example"),
    ("host case", {"host": "AUTH.example"}, lambda e: e.host == "auth.example"),
    ("host glob", {"host": "*.example"}, lambda e: e.host.endswith(".example")),
    ("hosts", {"host": ["cdn.other", "api.example"]}, lambda e: e.host != "auth.example"),
    ("method", {"method": "post"}, lambda e: e.method == "POST"),
    ("methods", {"method": ("GET", "DELETE")}, lambda e: e.method in ("GET", "DELETE")),
    ("status", {"status": 404}, lambda e: e.status_code == 404),
    ("status text", {"status": "404"}, lambda e: e.status_code == 404),
    ("5xx", {"status": "5xx"}, lambda e: e.status_code is not None and e.status_code >= 500),
    (
        "4XX",
        {"status": "4XX"},
        lambda e: e.status_code is not None and 400 <= e.status_code < 500,
    ),
    (
        "range",
        {"status": range(200, 300)},
        lambda e: e.status_code is not None and 200 <= e.status_code < 300,
    ),
    ("range step", {"status": range(200, 206, 4)}, lambda e: e.status_code in (200, 204)),
    ("codes", {"status": [301, 429]}, lambda e: e.status_code in (301, 429)),
    (
        "start",
        {"start": T0 + timedelta(minutes=50)},
        lambda e: e.started_at >= T0 + timedelta(minutes=50),
    ),
    (
        "end iso",
        {"end": "2026-03-01T12:05:00+00:00"},
        lambda e: e.started_at < T0 + timedelta(minutes=5),
    ),
    (
        "start end",
        {"start": T0 + timedelta(minutes=10), "end": T0 + timedelta(minutes=13)},
        lambda e: T0 + timedelta(minutes=10) <= e.started_at < T0 + timedelta(minutes=13),
    ),
    (
        "path *",
        {"path": "/users/*"},
        lambda e: e.path.startswith("/users/") and e.path.count("/") == 2,
    ),
    ("path **", {"path": "/api/**"}, lambda e: e.path.startswith("/api/")),
    ("path ?", {"path": "/users/?"}, lambda e: e.path.startswith("/users/") and len(e.path) == 8),
    (
        "path class",
        {"path": "/users/[12]*/orders"},
        lambda e: e.path.endswith("/orders") and e.path[7] in "12",
    ),
    (
        "paths",
        {"path": ["/health", "/users/*/orders"]},
        lambda e: e.path == "/health" or e.path.endswith("/orders"),
    ),
    ("status range text", {"status": "500-599"}, lambda e: (e.status_code or 0) >= 500),
    (
        "status classes",
        {"status": "4xx, 5xx"},
        lambda e: e.status_code is not None and e.status_code >= 400,
    ),
    ("status failed", {"status": "failed"}, lambda e: e.status_code is None),
    (
        "status mixed",
        {"status": "204,420-429,failed"},
        lambda e: e.status_code is None or e.status_code in (204, 422, 429),
    ),
    ("failed", {"failed": True}, lambda e: e.error is not None),
    ("not failed", {"failed": False}, lambda e: e.error is None),
    ("tags", {"tags": {"session": "b"}}, lambda e: e.tags.get("session") == "b"),
    (
        "all together",
        {"host": "*.example", "method": "GET", "status": range(200, 500)},
        lambda e: (
            e.host.endswith(".example")
            and e.method == "GET"
            and e.status_code is not None
            and 200 <= e.status_code < 500
        ),
    ),
]


@pytest.mark.parametrize(("label", "spec", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_each_field_selects_the_same_rows_from_parquet_and_memory(capture, label, spec, predicate):
    want = expected(predicate)
    assert want  # every case selects something...
    assert len(want) < 60  # ...and leaves something out
    from_parquet = read_capture(capture, where=spec)
    assert from_parquet.request_url.tolist() == want
    assert read_capture(capture, where=Where(**spec)).request_url.tolist() == want
    stream = tl.MemoryStream()
    for ex in mixed():
        stream.put(ex)
    assert to_pandas(stream, where=spec).request_url.tolist() == want
    # The same spec on a frame already loaded.
    assert read_capture(capture).traffic.filter(spec).request_url.tolist() == want
    assert read_capture(capture).traffic.filter(**spec).request_url.tolist() == want


def test_a_raw_expression_is_used_as_it_is(capture):
    df = read_capture(capture, where=pc.field("response_status") == 429)
    assert df.request_url.tolist() == expected(lambda e: e.status_code == 429)


def test_no_filter_reads_everything(capture):
    assert len(read_capture(capture, where=None)) == 60
    assert len(read_capture(capture, where={})) == 60
    assert as_expression(Where()) is None


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [
        ("/users/*", "^/users/[^/]*$"),
        ("/api/**", "^/api/.*$"),
        ("/a?c", "^/a[^/]c$"),
        ("/x/[0-9]", "^/x/[0-9]$"),
        ("/x/[!0-9]", "^/x/[^0-9]$"),
        ("/v1.0/(x)+", r"^/v1\.0/\(x\)\+$"),
        ("/[unclosed", r"^/\[unclosed$"),
    ],
)
def test_glob_to_regex(pattern, regex):
    assert glob_to_regex(pattern) == regex


def test_where_normalises_its_fields():
    w = Where(
        host="API.Example", method=["get", "Post"], status=[500, 503], start="2026-03-01T12:00Z"
    )
    assert w.host == ("api.example",)
    assert w.method == ("GET", "POST")
    assert w.status == (500, 503)
    assert w.start == datetime(2026, 3, 1, 12, tzinfo=UTC)
    tagged = Where(tags={"b": "2", "a": "1"})
    assert tagged.tags == (("a", "1"), ("b", "2"))
    assert hash(tagged) == hash(Where(tags={"a": "1", "b": "2"}))


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"start": datetime(2026, 3, 1)}, ValueError, "timezone-aware"),
        ({"end": "2026-03-01T12:00"}, ValueError, "timezone-aware"),
        ({"start": 12}, TypeError, "datetime or an ISO 8601 string"),
        ({"status": "500s"}, ValueError, "use a code"),
        ({"status": True}, TypeError, "use a code"),
        ({"status": ["500"]}, TypeError, "use a code"),
        ({"status": "599-500"}, ValueError, "'599-500' runs backwards"),
        ({"status": "4xx,teapot"}, ValueError, "'teapot' is not valid"),
        ({"status": " , "}, ValueError, "is empty"),
        ({"host": []}, TypeError, "non-empty collection"),
        ({"method": 3}, TypeError, "string or a non-empty collection"),
    ],
)
def test_bad_specs_fail_when_made(spec, error, message):
    with pytest.raises(error, match=message):
        Where(**spec)


def test_bad_where_arguments_are_named():
    with pytest.raises(TypeError, match=r"unknown where= keys \['hostname'\]"):
        as_expression({"hostname": "x"})
    with pytest.raises(TypeError, match="not str"):
        as_expression("status == 500")  # type: ignore[arg-type]


# -- pushdown ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ten_days(tmp_path_factory):
    """A capture of 10 days, 1000 exchanges a day, each host in its own stretch of the day;
    one file per day with row groups of 100."""
    folder = tmp_path_factory.mktemp("days") / "c"
    rng = random.Random(0)
    with tl.ParquetStream(folder, flush_seconds=None, flush_rows=100_000, row_group_size=100) as s:
        for day in range(10):
            for i in range(1000):
                s.put(
                    exchange(
                        i,
                        host="rare.example" if i >= 990 else "api.example",
                        status=500 if i % 100 == 0 else 200,
                        started_at=T0 + timedelta(days=day, seconds=i),
                        body=rng.randbytes(1000),
                        content_type="application/octet-stream",
                    )
                )
    return folder


def test_a_time_range_prunes_day_partitions_and_row_groups(ten_days):
    store = tl.ParquetStream(ten_days, create=False)
    dataset = store.dataset()
    all_fragments = list(dataset.get_fragments())
    assert len(all_fragments) == 10
    w = Where(start=T0 + timedelta(days=4, seconds=100), end=T0 + timedelta(days=4, seconds=150))
    expr = w.expression(partitioned=True)
    fragments = list(dataset.get_fragments(filter=expr))
    day = pa.scalar(20260305, pa.int32())
    assert [f.partition_expression.equals(pc.field("day") == day) for f in fragments] == [True]
    in_file = w.expression()  # the day column is not in the files themselves
    groups = [g for f in fragments for g in f.split_by_row_group(filter=in_file)]
    assert len(groups) == 1  # seconds 100-149 of that day: row group 1 of 10
    assert sum(f.metadata.num_row_groups for f in all_fragments) == 100
    df = read_capture(ten_days, where=w)
    assert len(df) == 50
    assert df.started_at.min() == T0 + timedelta(days=4, seconds=100)


def test_host_and_status_filters_use_row_group_statistics(ten_days):
    dataset = tl.ParquetStream(ten_days, create=False).dataset()
    host = Where(host="rare.example").expression()
    groups = [g for f in dataset.get_fragments() for g in f.split_by_row_group(filter=host)]
    assert len(groups) == 10  # the last row group of each day
    assert len(read_capture(ten_days, where={"host": "rare.example"})) == 100
    status = Where(status=range(500, 600), host="rare.example").expression()
    groups = [g for f in dataset.get_fragments() for g in f.split_by_row_group(filter=status)]
    assert len(groups) == 10
    assert len(read_capture(ten_days, where=Where(status="5xx"))) == 100


def _bytes_read() -> int:
    with open("/proc/self/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_a_narrow_filter_reads_a_small_part_of_the_files(ten_days):
    store = tl.ParquetStream(ten_days, create=False)
    to_pandas(store, bodies=True)  # footers are read once per store: warm them up
    before = _bytes_read()
    full = to_pandas(store, bodies=True)
    full_bytes = _bytes_read() - before
    window = Where(start=T0 + timedelta(days=7), end=T0 + timedelta(days=7, seconds=99))
    before = _bytes_read()
    narrow = to_pandas(store, bodies=True, where=window)
    narrow_bytes = _bytes_read() - before
    assert len(full) == 10_000
    assert len(narrow) == 99
    assert full_bytes > 10_000_000  # the bodies do not compress
    # One row group of one file: about 1% of the capture.
    assert narrow_bytes < full_bytes / 50, (narrow_bytes, full_bytes)


def test_hosts_and_methods_match_without_case_wherever_they_are_stored():
    # A capture may store "API.Example" or "get" (imported from a HAR, made by hand).
    import traffic_lab as tl
    from traffic_lab.frames import to_pandas
    from traffic_lab.testing import make_exchange

    stream = tl.MemoryStream()
    for url in ("https://API.Example/a", "https://api.example/b", "https://other.example/c"):
        stream.put(make_exchange(url=url))
    frame = to_pandas(stream)
    frame["request_method"] = frame["request_method"].astype(str)
    frame.loc[0, "request_method"] = "get"  # as a hand-made or imported row may hold it
    by_host = frame.traffic.filter(host="api.EXAMPLE")
    assert by_host.request_url.tolist() == ["https://API.Example/a", "https://api.example/b"]
    assert len(to_pandas(stream, where={"host": ["Api.Example"]})) == 2
    assert frame.traffic.filter(method="GET").request_url.tolist() == frame.request_url.tolist()
    assert len(frame.traffic.filter(method="get", host="*.EXAMPLE")) == 3
