"""Reading rows by identity (``writer_id``, ``writer_seq``): the frames and the browser fetch a
selected row's bodies this way; only the files of the named writers are opened, compacted files
(which hold many writers) are still read, and a file whose footer lies about its writer costs
its rows, never a wrong row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import traffic_lab as tl
from traffic_lab.frames.convert import frame_exchanges
from traffic_lab.stores.parquet.reader import Capture
from traffic_lab.testing import make_exchange

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def two_writers(path):
    """Writer a's three exchanges, then writer b's: two files."""
    for k, writer in enumerate(("a", "b")):
        with tl.ParquetStream(path) as stream:
            for i in range(3):
                when = T0 + timedelta(seconds=3 * k + i)
                url = f"https://{writer}.example/{i}"
                stream.put(make_exchange(url=url, json={"i": i}, started_at=when))


@pytest.fixture
def opened(monkeypatch):
    """The files each scan reads."""
    seen: list[list[str]] = []
    original = Capture.scan

    def scan(self, files, *args, **kwargs):
        seen.append(sorted(f.rel for f in files))
        return original(self, files, *args, **kwargs)

    monkeypatch.setattr(Capture, "scan", scan)
    return seen


def test_a_row_is_fetched_from_its_writers_files_only(tmp_path, opened):
    two_writers(tmp_path)
    frame = tl.read_capture(tmp_path)
    all_files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("day=*/*.parquet"))
    assert len(all_files) == 2
    opened.clear()
    [exchange] = list(frame_exchanges(frame.iloc[[4]][["writer_id", "writer_seq"]]))
    assert exchange.url == "https://b.example/1" and exchange.response.json() == {"i": 1}
    writer = frame.writer_id.iloc[4]
    assert opened == [[f for f in all_files if writer in f]]


def test_compacted_files_are_still_read(tmp_path, opened):
    two_writers(tmp_path)
    tl.ParquetStream(tmp_path).compact()
    frame = tl.read_capture(tmp_path)
    [compacted] = [str(p.relative_to(tmp_path)) for p in tmp_path.glob("day=*/*.parquet")]
    assert "compact-" in compacted
    opened.clear()
    urls = [e.url for e in frame_exchanges(frame.iloc[[0, 5]][["writer_id", "writer_seq"]])]
    assert urls == ["https://a.example/0", "https://b.example/2"]
    assert opened == [[compacted]]


def test_store_to_arrow_with_writers_reads_only_theirs(tmp_path):
    two_writers(tmp_path)
    store = tl.ParquetStream(tmp_path)
    frame = tl.read_capture(tmp_path)
    first = frame.writer_id.iloc[0]
    table = store.to_arrow(["request_url"], writers={first})
    assert table.column("request_url").to_pylist() == [f"https://a.example/{i}" for i in range(3)]
    assert store.to_arrow(["request_url"], writers=set()).num_rows == 0


def test_a_footer_that_lies_about_its_writer_costs_its_rows_never_a_wrong_row(tmp_path):
    import pyarrow.parquet as pq

    two_writers(tmp_path)
    files = sorted(tmp_path.glob("day=*/*.parquet"))
    names = [pq.read_metadata(f).metadata[b"traffic_lab.writer_id"] for f in files]
    table = pq.read_table(files[0])
    meta = dict(table.schema.metadata)
    meta[b"traffic_lab.writer_id"] = names[1]  # the first file's rows, the second's name
    pq.write_table(table.replace_schema_metadata(meta), files[0])

    frame = tl.read_capture(tmp_path)  # a full read still reads every row
    assert len(frame) == 6
    keys = frame[["writer_id", "writer_seq"]]
    liar = table.column("writer_id")[0].as_py()  # whose rows the first file holds
    assert liar.encode() == names[0] != names[1]
    honest = frame.writer_id == names[1].decode()
    # only that writer's rows, though two files now claim its name
    urls = [e.url for e in frame_exchanges(keys[honest])]
    assert urls == frame.request_url[honest].tolist() and len(urls) == 3
    with pytest.raises(LookupError):  # its own rows: their file claims another writer
        list(frame_exchanges(keys[frame.writer_id == liar].iloc[[0]]))


def one_writer_in_files(path, files: int, rows: int) -> None:
    """One writer's exchanges over ``files`` flushes (files), ``rows`` each."""
    with tl.ParquetStream(path, flush_seconds=None) as stream:
        for k in range(files):
            for i in range(rows):
                when = T0 + timedelta(seconds=k * rows + i)
                stream.put(make_exchange(url=f"https://one.example/{k}/{i}", started_at=when))
            stream.flush()


def test_a_long_running_writers_row_is_read_from_the_file_that_holds_it(tmp_path, opened):
    # One writer, eight files: the footers' writer_seq statistics choose the file to open.
    one_writer_in_files(tmp_path, 8, 5)
    frame = tl.read_capture(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("day=*/*.parquet"))
    assert len(files) == 8 and frame.writer_id.nunique() == 1
    opened.clear()
    picked = frame.iloc[[22, 23]][["writer_id", "writer_seq"]]
    assert [e.url for e in frame_exchanges(picked)] == [
        "https://one.example/4/2",
        "https://one.example/4/3",
    ]
    assert opened == [[files[4]]]
    opened.clear()
    spread = frame.iloc[[1, 39]][["writer_id", "writer_seq"]]  # the first and last files
    assert [e.url for e in frame_exchanges(spread)][1] == "https://one.example/7/4"
    assert opened == [files]  # one range from the first to the last: every file may hold it


def test_a_file_without_statistics_is_read_for_any_row(tmp_path, opened):
    import pyarrow.parquet as pq

    one_writer_in_files(tmp_path, 3, 4)
    files = sorted(tmp_path.glob("day=*/*.parquet"))
    plain = files[0]
    table = pq.read_table(plain)
    pq.write_table(table, plain, write_statistics=False)  # no writer_seq range in its footer
    frame = tl.read_capture(tmp_path)
    opened.clear()
    picked = frame.iloc[[9]][["writer_id", "writer_seq"]]
    assert [e.url for e in frame_exchanges(picked)] == ["https://one.example/2/1"]
    assert opened == [sorted(str(p.relative_to(tmp_path)) for p in (files[0], files[2]))]
