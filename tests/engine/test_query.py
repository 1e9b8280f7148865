"""tl.open_capture: DuckDB over the Parquet files gives the pandas accessor's answers."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import traffic_lab as tl
from traffic_lab.exchange import RecordedError
from traffic_lab.testing import make_exchange

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample-capture"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def varied(n: int, seed: int = 7, start: datetime = T0) -> list[tl.Exchange]:
    """Exchanges over 3 hosts and templated paths, with 4xx, 5xx, failures and truncation."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        host = ["a.example", "b.example", "c.example"][i % 3]
        path = rng.choice(
            [f"/users/{rng.randrange(50)}", "/users", f"/orders/{rng.getrandbits(128):032x}",
             f"/files/{rng.randrange(9)}/x.png", "/search"]
        )  # fmt: skip
        kind = rng.random()
        common = {
            "started_at": start + timedelta(milliseconds=37 * i),
            "elapsed_ms": rng.randrange(1, 5000) / 7,
        }
        if kind < 0.05:
            ex = make_exchange(
                "POST",
                f"https://{host}{path}",
                status_code=None,
                error=RecordedError("httpx.ConnectError", "refused"),
                **common,
            )
        else:
            status = rng.choice([200, 200, 200, 201, 304, 404, 429, 500, 503])
            body = b"x" * rng.randrange(0, 300)
            ex = make_exchange(
                rng.choice(["GET", "GET", "POST"]),
                f"https://{host}{path}?q={rng.randrange(4)}",
                status_code=status,
                request_body=b"{}" if kind > 0.8 else b"",
                response_body=body,
                **common,
            )
            if kind > 0.97:
                ex = ex.replace(truncated=True)
        out.append(ex)
    return out


def varied_capture(path: Path, n: int) -> Path:
    """A capture of ``varied(n)`` in 4 files of row groups of 64 rows."""
    with tl.ParquetStream(path, row_group_size=64, flush_rows=n // 4) as stream:
        for ex in varied(n):
            stream.put(ex)
    return path


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return varied_capture(tmp_path_factory.mktemp("engine") / "capture", 2000)


def assert_same_endpoints(query, frame, **kwargs):
    pd.testing.assert_frame_equal(
        query.endpoints(**kwargs), frame.traffic.endpoints(**kwargs), check_exact=False, rtol=1e-12
    )


def assert_same_duplicates(query, frame):
    expected = frame.traffic.duplicates()
    pd.testing.assert_frame_equal(query.duplicates(), expected, check_exact=False, rtol=1e-12)
    return expected


WHERES = [
    None,
    {"status": "5xx"},
    {"status": "4xx,5xx"},
    {"status": "failed"},
    {"host": "b.example"},
    {"method": "POST"},
    {"path": "/users/*"},
    {"start": T0 + timedelta(seconds=20), "end": T0 + timedelta(seconds=40)},
    {"status": "200-299", "host": ["a.example", "c.example"], "path": "/orders/**"},
]


@pytest.mark.parametrize("where", WHERES, ids=str)
def test_answers_are_the_pandas_accessors(capture, where):
    query = tl.open_capture(capture).where(where)
    frame = tl.read_capture(capture, where=where)
    assert len(frame) > 0
    assert query.count() == len(frame)
    pd.testing.assert_series_equal(query.summary().to_series(), frame.traffic.summary().to_series())
    assert_same_endpoints(query, frame)
    assert_same_endpoints(query, frame, by_host=True)
    assert_same_duplicates(query, frame)


def test_the_sample_capture_gives_the_same_answers():
    query, frame = tl.open_capture(SAMPLE), tl.read_capture(SAMPLE)
    pd.testing.assert_series_equal(query.summary().to_series(), frame.traffic.summary().to_series())
    assert_same_endpoints(query, frame)
    assert query.summary()["exchanges"] == 3000
    assert len(assert_same_duplicates(query, frame)) == 494


def test_duplicates_count_a_repeat_only_after_a_servable_response():
    # Per key, in recorded order: failed, truncated, 200 (servable), 200 (a hit), 500 (a hit).
    url = "https://a.example/x"
    kinds = [
        {"status_code": None, "error": RecordedError("httpx.ConnectError", "refused")},
        {"truncated": True},
        {},
        {},
        {"status_code": 500},
    ]
    exchanges = []
    for i, kind in enumerate(kinds):
        truncated = kind.pop("truncated", False)
        ex = make_exchange(url=url, started_at=T0 + timedelta(seconds=i), elapsed_ms=10.0 * (i + 1),
                           response_body=b"abc", **kind)  # fmt: skip
        exchanges.append(ex.replace(truncated=truncated))
    exchanges.append(make_exchange(url="https://a.example/once", started_at=T0))
    query, frame = tl.open_capture(exchanges), tl.read_capture(exchanges)
    table = assert_same_duplicates(query, frame)
    assert table[["count", "repeats", "saved_ms", "saved_bytes"]].to_dict("records") == [
        {"count": 5, "repeats": 2, "saved_ms": 40.0 + 50.0, "saved_bytes": 6}
    ]
    assert table.request_url.tolist() == [url]


def test_where_calls_combine_and_keywords_are_where_fields(capture):
    query = tl.open_capture(capture)
    frame = tl.read_capture(capture)
    both = query.where(status="5xx").where(host="a.example")
    expected = frame[(frame.response_status >= 500) & (frame.request_host == "a.example")]
    assert both.count() == len(expected) > 0
    assert query.where({"status": "5xx"}, host="a.example").count() == len(expected)
    assert query.count() == 2000  # the query it came from is unchanged
    with pytest.raises(TypeError, match="unknown where= keys"):
        query.where({"stauts": 500})
    with pytest.raises(TypeError):
        query.where(stauts=500)


def test_cleared_rows_are_not_counted_and_compaction_does_not_count_twice(tmp_path):
    path = tmp_path / "c"
    with tl.ParquetStream(path) as stream:
        for ex in varied(300, start=datetime.now(UTC) - timedelta(hours=1)):
            stream.put(ex)
        stream.clear()
        later = varied(200, seed=8, start=datetime.now(UTC) + timedelta(seconds=5))
        for i in range(0, 200, 50):  # four files
            for ex in later[i : i + 50]:
                stream.put(ex)
            stream.flush()
    assert tl.open_capture(path).count() == 200
    report = tl.ParquetStream(path).compact()  # cleared rows are kept in files, hidden
    assert (report.files_merged, report.files_written, report.rows) == (5, 1, 500)
    query, frame = tl.open_capture(path), tl.read_capture(path)
    assert query.count() == len(frame) == 200
    pd.testing.assert_series_equal(query.summary().to_series(), frame.traffic.summary().to_series())


def test_an_open_store_counts_its_buffered_exchanges(tmp_path):
    stream = tl.ParquetStream(tmp_path / "c", flush_rows=10_000, flush_seconds=None)
    exchanges = varied(120)
    for ex in exchanges[:100]:
        stream.put(ex)
    stream.flush()
    for ex in exchanges[100:]:
        stream.put(ex)  # still buffered
    query = tl.open_capture(stream)
    assert query.count() == 120
    assert query.where(status="5xx").count() == sum(
        1 for ex in exchanges if ex.status_code is not None and ex.status_code >= 500
    )
    pd.testing.assert_series_equal(
        query.summary().to_series(), tl.read_capture(stream).traffic.summary().to_series()
    )
    stream.close()


@pytest.mark.parametrize("kind", ["memory stream", "exchanges"])
def test_memory_sources_are_answered_too(kind):
    exchanges = varied(150)
    source = tl.MemoryStream() if kind == "memory stream" else exchanges
    if kind == "memory stream":
        for ex in exchanges:
            source.put(ex)
    query, frame = tl.open_capture(source), tl.read_capture(source)
    assert query.count() == 150
    pd.testing.assert_series_equal(query.summary().to_series(), frame.traffic.summary().to_series())
    assert_same_endpoints(query, frame)


def test_head_is_the_first_rows_in_recorded_order(capture):
    query = tl.open_capture(capture).where(status="4xx")
    frame = tl.read_capture(capture, where={"status": "4xx"})
    # The same rows and values; categorical columns know only the categories they loaded.
    pd.testing.assert_frame_equal(query.head(7), frame.head(7), check_categorical=False)
    head = query.head(3, columns=["response_status"])
    assert list(head.columns) == list(tl.read_capture(capture, columns=["response_status"]).columns)
    assert "request_body" not in head.columns
    assert head.response_status.tolist() == frame.response_status.head(3).tolist()
    assert len(query.head(0)) == 0
    with pytest.raises(ValueError, match="n >= 0"):
        query.head(-1)


def test_to_pandas_is_read_capture_with_the_filter(capture):
    query = tl.open_capture(capture).where(method="POST")
    pd.testing.assert_frame_equal(
        query.to_pandas(bodies=True),
        tl.read_capture(capture, where={"method": "POST"}, bodies=True),
    )


def test_an_empty_selection_answers_like_an_empty_frame(capture):
    query = tl.open_capture(capture).where(host="nowhere.example")
    frame = tl.read_capture(capture, where={"host": "nowhere.example"})
    assert query.count() == 0
    pd.testing.assert_series_equal(query.summary().to_series(), frame.traffic.summary().to_series())
    assert query.endpoints().empty
    assert list(query.endpoints().columns) == list(frame.traffic.endpoints().columns)
    assert_same_duplicates(query, frame)


def test_no_capture_at_a_path_is_a_clear_error(tmp_path):
    with pytest.raises(tl.errors.StoreNotFoundError, match="no capture here"):
        tl.open_capture(tmp_path / "missing").count()
    (tmp_path / "empty").mkdir()  # a capture folder with nothing published yet
    empty = tl.open_capture(tmp_path / "empty")
    assert (empty.count(), empty.summary()["exchanges"], len(empty.head())) == (0, 0, 0)


def test_a_query_sees_rows_added_after_it_was_made(tmp_path):
    path = tmp_path / "c"
    with tl.ParquetStream(path) as stream:
        stream.put(make_exchange())
    query = tl.open_capture(path)
    assert query.count() == 1
    with tl.ParquetStream(path) as stream:
        stream.put(make_exchange())
    assert query.count() == 2


def test_open_capture_is_lazy_at_the_top_level():
    import subprocess
    import sys

    code = "import sys, traffic_lab as tl; tl.open_capture; print('duckdb' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "False\n"  # duckdb loads when a question is asked


def test_a_file_with_text_that_is_not_utf8_is_named_and_skipped(tmp_path):
    # DuckDB refuses the text while scanning the files itself; the careful reader then names
    # the file and answers from the others.
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c"
    with tl.ParquetStream(path) as stream:
        for ex in varied(40)[:20]:
            stream.put(ex)
        stream.flush()
        for ex in varied(40)[20:]:
            stream.put(ex)
    bad = sorted(path.glob("day=*/*.parquet"))[-1]
    table = pq.read_table(bad)
    i = table.schema.get_field_index("request_path")
    broken = pa.array([b"/\xff\xfe"] * table.num_rows, pa.binary()).view(pa.string())
    pq.write_table(table.set_column(i, table.schema.field(i), broken), bad)
    with pytest.warns(tl.errors.SkippedFileWarning, match=re.escape(str(bad))):
        table = tl.open_capture(path).endpoints()
    assert int(table["count"].sum()) == 20
    with pytest.warns(tl.errors.SkippedFileWarning, match=re.escape(str(bad))):
        assert len(tl.read_capture(path)) == 20  # read_capture skips the same file


def test_engine_answers_display_as_the_accessors_do(capture):
    from traffic_lab.frames import Summary, TrafficTable

    query, frame = tl.open_capture(capture), tl.read_capture(capture)
    summary = query.summary()
    assert isinstance(summary, Summary)
    assert repr(summary) == repr(frame.traffic.summary())
    assert summary.text("error_rate").endswith(" %") and summary.text("p50_ms").endswith(" ms")
    endpoints, duplicates = query.endpoints(by_host=True), query.duplicates()
    assert isinstance(endpoints, TrafficTable) and isinstance(duplicates, TrafficTable)
    assert repr(endpoints) == repr(frame.traffic.endpoints(by_host=True))
    assert max(map(len, repr(endpoints).splitlines())) <= 100
    assert duplicates.index.name == "request"
    assert duplicates.index.tolist() == frame.traffic.duplicates().index.tolist()
    assert re.fullmatch(r"(GET|POST) [abc]\.example/\S+", duplicates.index[0])


def test_docstring_examples_run(monkeypatch):
    import doctest

    import traffic_lab.engine.query

    monkeypatch.chdir(SAMPLE.parents[1])  # the examples open data/sample-capture
    failures, tried = doctest.testmod(traffic_lab.engine.query)
    assert tried > 0 and failures == 0


def test_on_local_disk_duckdb_reads_the_files_itself(capture, monkeypatch):
    # Where filters over a capture on disk: DuckDB scans the live files, not the batch stream
    # of traffic_lab's reader (which only a pyarrow Expression, or a failure, still needs).
    import pyarrow.compute as pc

    from traffic_lab.stores.parquet import ParquetBase

    frame = tl.read_capture(capture)
    streamed: list[int] = []
    original = ParquetBase.to_batches

    def counted(self, *args, **kwargs):
        streamed.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ParquetBase, "to_batches", counted)
    query = tl.open_capture(capture).where(status="5xx").where({"method": "GET"})
    expected = frame[(frame.response_status >= 500) & (frame.request_method == "GET")]
    assert query.count() == len(expected) > 0
    assert_same_endpoints(query, expected)
    assert streamed == []
    by_expression = tl.open_capture(capture).where(pc.field("response_status") >= 500)
    assert by_expression.count() == int((frame.response_status >= 500).sum())
    assert streamed == [1]


@pytest.mark.parametrize("where", WHERES, ids=str)
def test_to_pandas_read_by_duckdb_is_read_capture(capture, where, monkeypatch):
    from traffic_lab.stores.parquet import ParquetBase

    expected = tl.read_capture(capture, where=where)
    if where is not None:  # an unfiltered read goes through traffic_lab's reader
        monkeypatch.setattr(ParquetBase, "to_arrow", None)  # DuckDB reads the files itself
    got = tl.open_capture(capture).where(where).to_pandas()
    pd.testing.assert_frame_equal(got, expected)
    # linked to the capture, as read_capture's frames are: bodies and replay work
    [(name, ref)] = got.attrs.items()
    assert (name, ref.location) == ("traffic_lab.source", str(capture))
    columns = ["response_status", "tags", "elapsed_ms"]
    narrow = tl.open_capture(capture).where(where).to_pandas(columns)
    monkeypatch.undo()
    assert list(narrow.columns) == list(expected[list(narrow.columns)].columns)
    pd.testing.assert_frame_equal(narrow, expected[list(narrow.columns)])
    assert set(columns) <= set(narrow.columns)
    from traffic_lab.frames.convert import frame_exchanges

    assert list(frame_exchanges(got.head(3))) == list(frame_exchanges(expected.head(3)))


def test_to_pandas_by_duckdb_hides_cleared_rows_and_falls_back_on_bad_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c"
    with tl.ParquetStream(path) as stream:
        for ex in varied(30, start=datetime.now(UTC) - timedelta(hours=1)):
            stream.put(ex)
        stream.clear()
        for ex in varied(60, seed=3, start=datetime.now(UTC) + timedelta(seconds=5))[:40]:
            stream.put(ex)
        stream.flush()
        for ex in varied(60, seed=4, start=datetime.now(UTC) + timedelta(minutes=5))[:20]:
            stream.put(ex)
    query = tl.open_capture(path)
    pd.testing.assert_frame_equal(query.to_pandas(), tl.read_capture(path))
    assert len(query.to_pandas()) == 60
    bad = sorted(path.glob("day=*/*.parquet"))[-1]
    table = pq.read_table(bad)
    assert table.num_rows == 20
    i = table.schema.get_field_index("request_url")
    broken = pa.array([b"https://a.example/\xff"] * table.num_rows, pa.binary()).view(pa.string())
    pq.write_table(table.set_column(i, table.schema.field(i), broken), bad)
    with pytest.warns(tl.errors.SkippedFileWarning, match=re.escape(str(bad))):
        assert len(query.to_pandas()) == 40
