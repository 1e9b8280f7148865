"""The browser's Timing tab shows a streamed response's chunk arrivals, read back from the
capture for the selected row only (the list never loads them), and ignores a chunk list that
does not describe its body."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq

import traffic_lab as tl
from traffic_lab.exchange import Chunk
from traffic_lab.stores.parquet.schema import CHUNKS_COLUMN
from traffic_lab.testing import make_exchange
from traffic_lab.widgets import TrafficBrowser

EVENTS = [f"data: {i:04d}\n\n".encode() for i in range(4)]
CHUNKS = tuple(Chunk(len(e), i * 50_000) for i, e in enumerate(EVENTS))


def streamed_capture(path):
    """A capture of a plain exchange, then a streamed one (4 SSE events, 50 ms apart)."""
    plain = make_exchange(url="https://api.example/plain", json={"ok": True})
    streamed = make_exchange(
        url="https://api.example/events",
        response_headers=[(b"Content-Type", b"text/event-stream")],
        response_body=b"".join(EVENTS),
    ).replace(chunks=CHUNKS)
    with tl.ParquetStream(path) as stream:
        stream.put(plain)
        stream.put(streamed)
    return path


def test_the_timing_tab_shows_the_recorded_chunk_arrivals(tmp_path):
    browser = TrafficBrowser(streamed_capture(tmp_path / "c"))
    browser.click(1)
    assert browser.selected_exchange.chunks == CHUNKS
    text = re.sub(r"<[^>]+>", " ", browser.detail_html)
    assert "Chunk arrivals (4 chunks, the last at 150.0 ms)" in text
    arrivals = re.findall(r"(\d) +([\d.]+ ms) +(\d+ B)", text.split("Chunk arrivals", 1)[1])
    assert arrivals[:4] == [
        ("1", "0.0 ms", "12 B"),
        ("2", "50.0 ms", "12 B"),
        ("3", "100.0 ms", "12 B"),
        ("4", "150.0 ms", "12 B"),
    ]
    browser.click(0)  # a body read whole: no arrivals
    assert browser.selected_exchange.chunks is None
    assert "Chunk arrivals" not in browser.detail_html


def test_recorded_chunks_reads_only_the_named_rows_and_checks_them(tmp_path):
    path = streamed_capture(tmp_path / "c")
    store = tl.ParquetStream(path)
    [plain, streamed] = list(store.exchanges())
    frame = tl.read_capture(path, columns=["writer_id", "writer_seq"])
    ids = list(zip(frame.writer_id, frame.writer_seq, strict=True))
    body = len(streamed.response_body)
    assert store.recorded_chunks({ids[1]: body}) == {ids[1]: CHUNKS}
    assert store.recorded_chunks({ids[0]: len(plain.response_body)}) == {}
    assert store.recorded_chunks({ids[1]: body + 1}) == {}  # does not describe that body
    assert store.recorded_chunks({("another-writer", 1): body}) == {}

    # A file whose list lies about its body: the row is shown whole, nothing raises.
    [file] = sorted(path.glob("day=*/*.parquet"))
    table = pq.read_table(file)
    index = table.schema.get_field_index(CHUNKS_COLUMN)
    field = table.schema.field(index)
    lying = pa.array([None, [{"size": 1, "offset_us": 0}]], field.type)
    pq.write_table(table.set_column(index, field, lying), file)
    browser = TrafficBrowser(path)
    browser.click(1)
    assert browser.selected_exchange.chunks is None
    assert "Chunk arrivals" not in browser.detail_html
