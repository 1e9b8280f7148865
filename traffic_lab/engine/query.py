""":func:`open_capture`: a lazy query over a capture, answered by DuckDB out of core."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..frames.analysis import DEFAULT_SEGMENT_RULES, SegmentRule
from ..frames.convert import CaptureRef, open_source, read_capture
from ..frames.where import Where, WhereArg, as_expression
from ..stores.parquet import ParquetBase
from ..stores.parquet.reader import ORDER_COLUMNS, while_compacting
from . import analyses

if TYPE_CHECKING:
    from ibis.expr.types import Table

__all__ = ["CaptureQuery", "open_capture"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _projection(names: Sequence[str] | None = None) -> dict[str, pc.Expression]:
    """Analysis columns (default: all) as expressions over a capture's own columns."""
    columns: dict[str, pc.Expression] = {}
    for name in analyses.ANALYSIS_SCHEMA.names if names is None else names:
        if name == "elapsed_ms":
            micros = pc.field("elapsed").cast(pa.int64()).cast(pa.float64())
            columns[name] = pc.divide(micros, pc.scalar(1000.0))
        else:
            columns[name] = pc.field(name)
    return columns


#: The capture columns the analysis columns are made from (for sources read into memory).
_SOURCE_COLUMNS = [n if n != "elapsed_ms" else "elapsed" for n in analyses.ANALYSIS_SCHEMA.names]


def open_capture(source: Any, *, filesystem: Any = None) -> CaptureQuery:
    """A lazy query over a capture: filter with :meth:`~CaptureQuery.where`, then ask.

    ``source`` is a Parquet capture's folder or URL (opened read-only), a Parquet store, or
    anything :func:`~traffic_lab.read_capture` takes (memory stores and exchanges are read into
    memory first). Nothing is read until a question is asked; then DuckDB runs it over the
    Parquet files a batch at a time, so a capture far larger than memory is answered in
    memory of the size of the answer. The capture's rules hold: cleared rows are not counted,
    a file that ``compact()`` replaced is not read twice, an unreadable file is named and
    skipped. Answers have the columns and meaning of ``df.traffic``'s.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> q = tl.open_capture("data/sample-capture")
    >>> q.count(), q.where(status="5xx").count()
    (3000, 34)
    >>> q.where(status="4xx,5xx").endpoints()[["count", "p50_ms", "error_rate"]].head(2)
    ... # doctest: +NORMALIZE_WHITESPACE
                              count  p50_ms  error_rate
    method endpoint
    GET    /api/unknown/{id}     93   3.599         1.0
           /api/users/{id}       67   3.167         1.0
    """
    return CaptureQuery(open_source(source, filesystem=filesystem))


class CaptureQuery:
    """Questions about the rows of a capture that match a filter (see :func:`open_capture`).

    Each method runs one query and returns a small pandas answer; the query object itself
    holds no rows and can be asked again (the capture is read afresh, new rows included).
    """

    def __init__(self, ref: CaptureRef, where: pc.Expression | None = None) -> None:
        self._ref = ref
        self._where = where

    def __repr__(self) -> str:
        where = "" if self._where is None else f" where {self._where}"
        return f"<CaptureQuery {self._ref.describe()}{where}>"

    # -- filtering ---------------------------------------------------------------------------------
    def where(self, where: WhereArg = None, **fields: Any) -> CaptureQuery:
        """A query narrowed further: ``where`` (a :class:`~traffic_lab.Where`, a dict of its
        fields or an Expression) and/or :class:`~traffic_lab.Where` fields as keywords, e.g.
        ``.where(status="5xx", host="api.example")``; every filter given must hold."""
        parts = [self._where]
        if where is not None:
            parts.append(as_expression(where, partitioned=self._ref.partitioned))
        if fields:
            parts.append(Where(**fields).expression(partitioned=self._ref.partitioned))
        kept = [p for p in parts if p is not None]
        combined = functools.reduce(operator.and_, kept) if kept else None
        return CaptureQuery(self._ref, combined)

    # -- running -----------------------------------------------------------------------------------
    def _reader(self, names: Sequence[str]) -> pa.RecordBatchReader:
        """The rows, with only the analysis columns ``names``, as a stream of batches."""
        store = self._ref.store() if self._ref.partitioned else None
        if isinstance(store, ParquetBase):
            return store.to_batches(_projection(names), self._where)
        table = self._ref.read(_SOURCE_COLUMNS, self._where)
        projection: Any = _projection(names)  # the stubs know only a list of names
        return ds.dataset(table).scanner(columns=projection).to_reader()

    def _run(self, expr: Table) -> pa.Table:
        """``expr`` (over :func:`analyses.capture_table`) compiled to DuckDB SQL and run over
        the columns it uses (a count reads one small column)."""
        import duckdb
        import ibis
        import ibis.expr.operations as ops

        sql = ibis.to_sql(expr, dialect="duckdb")
        table = analyses.capture_table().op()
        used = {f.name for f in expr.op().find(ops.Field) if f.rel == table}
        names = [n for n in analyses.ANALYSIS_SCHEMA.names if n in used] or ["response_status"]

        def run() -> pa.Table:
            with duckdb.connect() as con:
                con.register("capture", self._reader(names))
                answer: pa.Table = con.sql(str(sql)).to_arrow_table()
                return answer

        location = self._ref.location
        if location is None:
            return run()
        self._ref.store()  # no capture there: say so now, not as files that kept disappearing
        return while_compacting(run, path=location)

    # -- questions ---------------------------------------------------------------------------------
    def count(self) -> int:
        """The number of rows."""
        t = analyses.capture_table()
        return int(self._run(t.aggregate(n=t.count())).column("n")[0].as_py())

    def head(self, n: int = 5, columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        """The first ``n`` rows in recorded order, as :func:`~traffic_lab.read_capture` gives
        them (``columns`` as there). Only the row groups up to the ``n``-th row's time are
        loaded."""
        if n < 0:
            raise ValueError(f"head(n) takes n >= 0, got {n}")
        t = analyses.capture_table()
        first = self._run(t.select(*ORDER_COLUMNS).order_by(ORDER_COLUMNS).limit(n))
        if first.num_rows == 0:
            return read_capture(self._ref, columns, self._until(None)).head(0)
        last = first.column("started_at")[first.num_rows - 1].as_py()
        return read_capture(self._ref, columns, self._until(last)).head(n)

    def _until(self, last: Any) -> pc.Expression:
        if last is None:
            bound = pc.field("started_at") < pa.scalar(0, _TIMESTAMP)
        else:
            bound = pc.field("started_at") <= pa.scalar(last, _TIMESTAMP)
        return bound if self._where is None else (self._where & bound)

    def to_pandas(
        self, columns: Sequence[str] | str | None = None, *, bodies: bool = False
    ) -> pd.DataFrame:
        """The matching rows as a frame: :func:`~traffic_lab.read_capture` with this filter."""
        return read_capture(self._ref, columns, self._where, bodies)

    def summary(self, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> pd.Series[Any]:
        """Headline figures, as ``df.traffic.summary()``."""
        row = self._run(analyses.summary(analyses.capture_table(), rules)).to_pylist()[0]
        n = int(row["exchanges"])
        start: Any = pd.Timestamp(row["start"]) if n else pd.NaT
        end: Any = pd.Timestamp(row["end"]) if n else pd.NaT
        nan = float("nan")
        values: dict[str, Any] = {
            "exchanges": n,
            "start": start,
            "end": end,
            "duration": (end - start) if n else pd.NaT,
            "hosts": int(row["hosts"]),
            "endpoints": int(row["endpoints"]),
            **{f"status_{c}xx": int(row[f"status_{c}xx"]) for c in range(1, 6)},
            "failed": int(row["failed"]),
            "truncated": int(row["truncated"]),
            "error_rate": int(row["errors"]) / n if n else 0.0,
            **{
                f"p{q}_ms": nan if row[f"p{q}_ms"] is None else float(row[f"p{q}_ms"])
                for q in analyses.PERCENTILES
            },
            "max_ms": nan if row["max_ms"] is None else float(row["max_ms"]),
            "request_bytes": int(row["request_bytes"]),
            "response_bytes": int(row["response_bytes"]),
            "repeated_requests": int(row["keyed"]) - int(row["distinct_keys"]),
        }
        return pd.Series(values, name="summary", dtype=object)

    def duplicates(self) -> pd.DataFrame:
        """Requests repeated under the same ``request_key`` and what a cache would have saved,
        as ``df.traffic.duplicates()``."""
        table = self._run(analyses.duplicates(analyses.capture_table()))
        columns = ["request_method", "request_url", "count", "repeats", "saved_ms", "saved_bytes"]
        if table.num_rows == 0:
            empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
            empty.index.name = "key"
            return empty
        frame = table.select(["key", *columns, "first_at", "last_at"]).to_pandas()
        frame = frame.astype(
            {"count": "int64", "repeats": "int64", "saved_bytes": "int64", "saved_ms": "float64"}
        )
        for name in ("key", "request_method", "request_url"):
            frame[name] = frame[name].astype(str)
        for name in ("first_at", "last_at"):  # DuckDB names the zone Etc/UTC
            frame[name] = frame[name].dt.tz_convert("UTC")
        return frame.set_index("key")

    def endpoints(
        self, *, by_host: bool = False, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
    ) -> pd.DataFrame:
        """Per endpoint: counts, latency, errors, sizes, as ``df.traffic.endpoints()``."""
        expr = analyses.endpoints(analyses.capture_table(), by_host=by_host, rules=rules)
        table = self._run(expr)
        keys = ["host", "method", "endpoint"] if by_host else ["method", "endpoint"]
        frame = pd.DataFrame(
            {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
        )
        ints = ["count", "errors_4xx", "errors_5xx", "failed", "response_bytes_max"]
        ints.append("response_bytes_total")
        floats = [c for c in frame.columns if c not in ints and c not in keys]
        frame = frame.astype({**dict.fromkeys(ints, "int64"), **dict.fromkeys(floats, "float64")})
        for key in keys:
            frame[key] = frame[key].astype(str)
        return frame.set_index(keys)[list(analyses.ENDPOINT_COLUMNS)]
