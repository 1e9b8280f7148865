"""Filtered reads of a capture on local disk by DuckDB, which decodes the other columns only
around the rows that match: a ``Where`` that keeps 1% of the rows costs a fraction of reading
them all (pyarrow decodes every row of every column read, then filters).

traffic_lab still decides what is read: the live files (listed, footers checked, replaced
files left out) and the clear cutoff come from the store; DuckDB rejects text that is not
UTF-8 and damaged pages with an error, and the caller then reads through traffic_lab's own
reader, which names and skips the file that spoiled it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..stores.parquet import SCHEMA
from ..stores.parquet.reader import ORDER_COLUMNS
from .where import Where, rows_where

__all__ = ["BODY_NAMES", "read_local"]

#: Columns a local scan cannot give (bodies may live in blob files): read those through the store.
BODY_NAMES = frozenset({"request_body", "response_body"})


def read_local(
    files: Sequence[str], cutoff: int | None, wheres: Sequence[Where], names: Sequence[str]
) -> pa.Table:
    """Capture columns ``names`` (no bodies) of the rows of ``files`` that started at or after
    ``cutoff`` and match every one of ``wheres``, in recorded order, typed as the capture
    schema. Raises ``duckdb.Error`` when a file cannot be read."""
    import duckdb
    import ibis

    schema = pa.schema([SCHEMA.field(n) for n in names])
    if not files:
        return schema.empty_table()
    raw = ibis.table(ibis.Schema.from_pyarrow(SCHEMA), name="capture_rows")
    rows = rows_where(raw, wheres, cutoff).select(*names).order_by(ORDER_COLUMNS)
    sql = str(ibis.to_sql(rows, dialect="duckdb"))
    with duckdb.connect() as con:
        con.read_parquet(list(files), hive_partitioning=False).create_view("capture_rows")
        table = con.sql(sql).to_arrow_table()
    columns = [_as_type(table.column(n), schema.field(n).type) for n in names]
    return pa.Table.from_arrays(columns, schema=schema)


def _as_type(column: pa.ChunkedArray[Any], target: pa.DataType) -> pa.ChunkedArray[Any]:
    """A column DuckDB returned, as the capture schema types it (durations come back as
    integers, the zone as ``Etc/UTC``)."""
    if pa.types.is_duration(target) and not pa.types.is_duration(column.type):
        column = column.cast(pa.int64())
    return column.cast(target)
