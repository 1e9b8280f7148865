"""read_capture(where=Where) over a capture on local disk is read by DuckDB: the same frame as
traffic_lab's own reader gives, for every kind of filter, with the capture's rules kept and a
damaged file named and skipped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import traffic_lab as tl
from traffic_lab.exchange import RecordedError
from traffic_lab.frames.convert import ALL_COLUMNS, BODY_COLUMNS
from traffic_lab.stores.parquet import ParquetBase
from traffic_lab.testing import make_exchange

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def exchanges(n: int, start: datetime = T0) -> list[tl.Exchange]:
    out = []
    for i in range(n):
        host = ["a.example", "B.example", "c.example"][i % 3]
        path = ["/users/7", "/users", "/orders/9/items", "/files/x.png", "/search"][i % 5]
        when = {"started_at": start + timedelta(milliseconds=41 * i), "elapsed_ms": i % 97 + 0.5}
        tags = {"cell": str(i % 4)} if i % 2 else {}
        if i % 23 == 0:
            ex = make_exchange("POST", f"https://{host}{path}", status_code=None, tags=tags,
                               error=RecordedError("httpx.ConnectError", "refused"), **when)  # fmt: skip
        else:
            status = [200, 201, 304, 404, 429, 500, 503][i % 7]
            ex = make_exchange(["GET", "POST", "delete"][i % 3].upper(), f"https://{host}{path}?q={i}",
                               status_code=status, response_body=b"x" * (i % 50), tags=tags, **when)  # fmt: skip
        out.append(ex)
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scan") / "c"
    with tl.ParquetStream(path, flush_rows=150) as stream:  # 4 files
        for ex in exchanges(600):
            stream.put(ex)
    return path


def by_reader(monkeypatch: pytest.MonkeyPatch, capture: Path, **kwargs: object) -> pd.DataFrame:
    """read_capture through traffic_lab's own reader (as for a capture not on local disk)."""
    with monkeypatch.context() as m:
        m.setattr(ParquetBase, "local_files", lambda self: None)
        return tl.read_capture(capture, **kwargs)  # type: ignore[arg-type]


WHERES = [
    {"status": "5xx"},
    {"status": "4xx,5xx"},
    {"status": "failed"},
    {"status": [404, 500]},
    {"host": "b.example"},  # stored as B.example: hosts match without case
    {"host": ["B.EXAMPLE", "a.example"]},
    {"host": "[ab].EXAMPLE"},
    {"method": "post"},
    {"method": ["GET", "DELETE"]},
    {"path": "/users/*"},
    {"path": "/orders/**"},
    {"start": T0 + timedelta(seconds=5), "end": T0 + timedelta(seconds=9)},
    {"failed": True},
    {"failed": False, "status": "2xx"},
    {"tags": {"cell": "3"}},
    {"status": "200-299", "host": ["a.example", "c.example"], "path": "/users*"},
    {"host": "nowhere.example"},
]


@pytest.mark.parametrize("where", WHERES, ids=str)
def test_duckdb_reads_the_frame_the_reader_reads(capture, where, monkeypatch):
    expected = by_reader(monkeypatch, capture, where=where)
    monkeypatch.setattr(ParquetBase, "to_arrow", None)  # never asked: DuckDB reads the files
    got = tl.read_capture(capture, where=where)
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs.keys() == expected.attrs.keys()
    everything_but_bodies = [c for c in ALL_COLUMNS if c not in BODY_COLUMNS]  # headers too
    wide = tl.read_capture(capture, columns=everything_but_bodies, where=tl.Where(**where))
    monkeypatch.undo()
    expected = by_reader(monkeypatch, capture, columns=everything_but_bodies, where=where)
    pd.testing.assert_frame_equal(wide, expected)
    if where == {"host": "nowhere.example"}:
        assert len(got) == 0
    else:
        assert 0 < len(got) < 600


def test_the_reader_is_used_for_expressions_bodies_and_unfiltered_reads(capture, monkeypatch):
    scans: list[int] = []
    import traffic_lab.frames._capture_ref as ref_module

    def counted(*args: object) -> pa.Table:
        scans.append(1)
        return original(*args)  # type: ignore[arg-type]

    original = ref_module.read_local
    monkeypatch.setattr(ref_module, "read_local", counted)
    assert len(tl.read_capture(capture)) == 600
    assert len(tl.read_capture(capture, where=pc.field("response_status") >= 500)) == 163
    with_bodies = tl.read_capture(capture, where={"status": "5xx"}, bodies=True)
    assert scans == []
    assert len(with_bodies) == 163 and with_bodies.response_body.map(len).sum() > 0
    assert len(tl.read_capture(capture, where={"status": "5xx"})) == 163
    assert scans == [1]


def test_buffered_rows_of_an_open_store_are_read_too(tmp_path):
    stream = tl.ParquetStream(tmp_path / "c", flush_rows=10_000, flush_seconds=None)
    rows = exchanges(90)
    for ex in rows[:60]:
        stream.put(ex)
    stream.flush()
    for ex in rows[60:]:
        stream.put(ex)  # still buffered: in no file
    five = tl.read_capture(stream, where={"status": "5xx"})
    assert len(five) == sum(1 for ex in rows if (ex.status_code or 0) >= 500)
    assert five.started_at.max() > rows[59].started_at
    stream.close()


def test_cleared_rows_stay_hidden_and_compaction_does_not_read_twice(tmp_path):
    path = tmp_path / "c"
    now = datetime.now(UTC)
    with tl.ParquetStream(path) as stream:
        for ex in exchanges(100, start=now - timedelta(hours=1)):
            stream.put(ex)
        stream.clear()
        later = exchanges(120, start=now + timedelta(seconds=5))
        for i in range(0, 120, 40):
            for ex in later[i : i + 40]:
                stream.put(ex)
            stream.flush()
    expected = sum(1 for ex in later if (ex.status_code or 0) >= 500)
    assert len(tl.read_capture(path, where={"status": "5xx"})) == expected
    tl.ParquetStream(path).compact()
    assert len(tl.read_capture(path, where={"status": "5xx"})) == expected


def test_a_file_duckdb_cannot_read_is_named_and_the_others_answer(capture, tmp_path):
    import shutil

    path = tmp_path / "c"
    shutil.copytree(capture, path)
    bad = sorted(path.glob("day=*/*.parquet"))[1]
    table = pq.read_table(bad)
    i = table.schema.get_field_index("request_path")
    broken = pa.array([b"/\xff\xfe"] * table.num_rows, pa.binary()).view(pa.string())
    pq.write_table(table.set_column(i, table.schema.field(i), broken), bad)
    others = 600 - table.num_rows
    with pytest.warns(tl.errors.SkippedFileWarning, match=re.escape(str(bad))):
        frame = tl.read_capture(path, where={"method": ["GET", "POST", "DELETE"]})
    assert len(frame) == others
