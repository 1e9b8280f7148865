"""Low-cardinality text columns read as Arrow dictionaries, as the files store them: the same
values as a plain read, buffered rows included; and the browser's view built from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import traffic_lab as tl
from traffic_lab.testing import make_exchange
from traffic_lab.widgets._browser_data import DICTIONARY_COLUMNS, codes_of, open_view

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COLUMNS = ["writer_id", "request_method", "request_host", "response_content_type", "request_url"]


def put_some(stream: tl.ParquetStream, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        stream.put(
            make_exchange(
                ["GET", "POST", "PUT"][i % 3],
                f"https://{['a', 'b', 'c', 'd'][i % 4]}.example/items/{i}",
                status_code=[200, 404, 503][i % 3],
                response_headers=[(b"Content-Type", b"application/json")] if i % 5 else [],
                started_at=T0 + timedelta(milliseconds=i),
            )
        )


def test_dictionary_reads_give_the_plain_values_buffered_rows_too(tmp_path):
    stream = tl.ParquetStream(tmp_path / "c", flush_rows=100_000, flush_seconds=None)
    put_some(stream, 300)
    stream.flush()
    put_some(stream, 40, start=300)  # buffered: in no file yet
    plain = stream.to_arrow(COLUMNS)
    coded = stream.to_arrow(COLUMNS, dictionaries=DICTIONARY_COLUMNS)
    assert coded.num_rows == plain.num_rows == 340
    for name in DICTIONARY_COLUMNS:
        assert pa.types.is_dictionary(coded.schema.field(name).type)
        assert coded.column(name).cast(pa.string()).equals(plain.column(name))
    assert coded.column("request_url").equals(plain.column("request_url"))
    filtered = stream.to_arrow(
        COLUMNS, pc.field("request_method") == "PUT", dictionaries=["request_method"]
    )
    assert filtered.column("request_method").cast(pa.string()).to_pylist() == ["PUT"] * 113
    stream.close()


def test_only_text_columns_can_be_read_as_dictionaries(tmp_path):
    with tl.ParquetStream(tmp_path / "c") as stream:
        put_some(stream, 5)
    with pytest.raises(ValueError, match="not a text column"):
        stream.to_arrow(["response_status"], dictionaries=["response_status"])
    with pytest.raises(ValueError, match="unknown columns"):
        stream.to_arrow(["request_method"], dictionaries=["no_such"])


def test_codes_of_a_dictionary_column_drop_values_no_row_uses():
    chunks = [
        pa.array(["b", "a", None, "b"]).dictionary_encode(),
        pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["c", "zz"])),
    ]
    codes, values = codes_of(pa.chunked_array(chunks))
    assert values == ["b", "a", "c"]  # "zz" is in a dictionary, on no row
    assert codes.tolist() == [0, 1, -1, 0, 2, 2]
    assert codes_of(pa.chunked_array([], pa.dictionary(pa.int32(), pa.string())))[1] == []


def test_the_browser_view_is_the_same_from_files_from_duckdb_and_from_buffered_rows(tmp_path):
    path = tmp_path / "c"
    with tl.ParquetStream(path, flush_rows=150) as stream:
        put_some(stream, 600)
    live = tl.ParquetStream(path, flush_rows=100_000, flush_seconds=None)
    put_some(live, 30, start=600)
    views = {
        "files": open_view(path),  # dictionaries from the files
        "duckdb": open_view(path, where={"method": ["GET", "POST", "PUT"]}),  # plain text
        "buffered": open_view(live),  # 30 rows cast from the writer's buffer
    }
    assert views["files"].n == views["duckdb"].n == 600 and views["buffered"].n == 630
    for view in views.values():
        assert view.methods == ["GET", "POST", "PUT"]
        assert sorted(view.hosts) == ["a.example", "b.example", "c.example", "d.example"]
        assert view.content_types == ["application/json"]
        hosts = np.array(view.hosts)[view.host_codes[:600]]
        assert hosts.tolist() == [f"{'abcd'[i % 4]}.example" for i in range(600)]
    live.close()
