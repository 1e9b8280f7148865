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

from ..frames.analysis import (
    DEFAULT_SEGMENT_RULES,
    ComparedSide,
    SegmentRule,
    compare_sides,
    endpoint_shapes,
)
from ..frames.convert import CaptureRef, capture_columns, open_source, read_capture, read_frame
from ..frames.display import Summary, TrafficTable, label_duplicates
from ..frames.where import Where, WhereArg, as_expression, as_wheres
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
    >>> top = q.where(status="4xx,5xx").endpoints()[["count", "p50_ms", "error_rate"]].head(2)
    >>> top  # rounded, with units; the values stay as computed
    method  endpoint           count     p50  errors
    GET     /api/unknown/{id}     93  3.6 ms   100 %
            /api/users/{id}       67  3.2 ms   100 %
    >>> top.loc[("GET", "/api/unknown/{id}"), "p50_ms"]
    np.float64(3.599)
    """
    return CaptureQuery(open_source(source, filesystem=filesystem))


def _run_over_files(files: Sequence[str], rows_sql: str, sql: str) -> pa.Table:
    """``sql`` over a view ``capture`` of ``rows_sql`` over ``capture_rows``: the analysis
    columns of ``files``, read by DuckDB itself (in parallel, only the columns and row groups
    the question needs)."""
    import duckdb

    with duckdb.connect() as con:
        if files:
            raw = con.read_parquet(list(files), hive_partitioning=False)
            raw.select(", ".join(analyses.rows_select('"'))).create_view("capture_rows")
        else:
            con.register("capture_rows", analyses.ROWS_SCHEMA.empty_table())
        con.sql(rows_sql).create_view("capture")
        answer: pa.Table = con.sql(sql).to_arrow_table()
        return answer


class CaptureQuery:
    """Questions about the rows of a capture that match a filter (see :func:`open_capture`).

    Each method runs one query and returns a small pandas answer; the query object itself
    holds no rows and can be asked again (the capture is read afresh, new rows included).
    """

    def __init__(
        self,
        ref: CaptureRef,
        where: pc.Expression | None = None,
        wheres: tuple[Where, ...] | None = (),
    ) -> None:
        self._ref = ref
        self._where = where
        # The same filters as Where objects, for DuckDB reading the files itself (None: a
        # pyarrow Expression was given, which only traffic_lab's reader can apply).
        self._wheres = wheres

    def __repr__(self) -> str:
        where = "" if self._where is None else f" where {self._where}"
        return f"<CaptureQuery {self._ref.describe()}{where}>"

    # -- filtering ---------------------------------------------------------------------------------
    def where(self, where: WhereArg = None, **fields: Any) -> CaptureQuery:
        """A query narrowed further: ``where`` (a :class:`~traffic_lab.Where`, a dict of its
        fields or an Expression) and/or :class:`~traffic_lab.Where` fields as keywords, e.g.
        ``.where(status="5xx", host="api.example")``; every filter given must hold."""
        parts = [self._where]
        wheres = self._wheres
        if where is not None:
            parts.append(as_expression(where, partitioned=self._ref.partitioned))
            added = as_wheres(where)
            wheres = None if wheres is None or added is None else (*wheres, *added)
        if fields:
            keywords = Where(**fields)
            parts.append(keywords.expression(partitioned=self._ref.partitioned))
            wheres = None if wheres is None else (*wheres, keywords)
        kept = [p for p in parts if p is not None]
        combined = functools.reduce(operator.and_, kept) if kept else None
        return CaptureQuery(self._ref, combined, wheres)

    # -- running -----------------------------------------------------------------------------------
    def _reader(self, names: Sequence[str]) -> pa.RecordBatchReader:
        """The rows, with only the analysis columns ``names``, as a stream of batches."""
        store = self._ref.store() if self._ref.partitioned else None
        if isinstance(store, ParquetBase):
            return store.to_batches(_projection(names), self._where)
        table = self._ref.read(_SOURCE_COLUMNS, self._where)
        projection: Any = _projection(names)  # the stubs know only a list of names
        return ds.dataset(table).scanner(columns=projection).to_reader()

    def _local_files(self) -> tuple[list[str], int | None] | None:
        """The live files and clear cutoff, when DuckDB can read the files itself and apply
        this query's filters (a capture on local disk, nothing buffered, Where filters)."""
        if self._wheres is None or not self._ref.partitioned:
            return None
        store = self._ref.store()
        return store.local_files() if isinstance(store, ParquetBase) else None

    def _run(self, expr: Table) -> pa.Table:
        """``expr`` (over :func:`analyses.capture_table`) compiled to DuckDB SQL and run.

        On local disk DuckDB reads the capture's live files itself (files listed, and their
        footers checked, by traffic_lab; DuckDB rejects text that is not UTF-8 and damaged
        pages). If it fails on anything, the question is asked again through traffic_lab's
        reader, which names and skips the file that spoiled it and answers from the others.
        """
        import duckdb
        import ibis
        import ibis.expr.operations as ops

        sql = str(ibis.to_sql(expr, dialect="duckdb"))
        local = self._local_files()
        if local is not None:
            files, cutoff = local
            assert self._wheres is not None
            rows = analyses.live_rows("capture_rows", self._wheres, cutoff)
            try:
                return _run_over_files(files, str(ibis.to_sql(rows, dialect="duckdb")), sql)
            except duckdb.Error:
                pass  # a damaged or vanished file: the reader below names it, or lists again
        # Every column name a field anywhere in the expression refers to (a name a derived
        # table reuses may read one column more than needed, never one less).
        used = {f.name for f in expr.op().find(ops.Field)}
        names = [n for n in analyses.ANALYSIS_SCHEMA.names if n in used] or ["response_status"]

        def run() -> pa.Table:
            with duckdb.connect() as con:
                con.register("capture", self._reader(names))
                answer: pa.Table = con.sql(sql).to_arrow_table()
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
        """The matching rows as a frame: :func:`~traffic_lab.read_capture` with this filter
        (over a capture on local disk, without bodies, DuckDB reads the rows that match)."""
        wanted = capture_columns(columns, bodies)
        return read_frame(self._ref, wanted, self._where, self._wheres)

    def summary(self, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> Summary:
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
        return Summary(values)

    def duplicates(self) -> TrafficTable:
        """Requests repeated under the same ``request_key`` and what a cache would have saved,
        as ``df.traffic.duplicates()``."""
        table = self._run(analyses.duplicates(analyses.capture_table()))
        columns = ["request_method", "request_url", "count", "repeats", "saved_ms", "saved_bytes"]
        if table.num_rows == 0:
            return label_duplicates(pd.DataFrame())
        frame = table.select(["key", *columns, "first_at", "last_at"]).to_pandas()
        frame = frame.astype(
            {"count": "int64", "repeats": "int64", "saved_bytes": "int64", "saved_ms": "float64"}
        )
        for name in ("key", "request_method", "request_url"):
            frame[name] = frame[name].astype(str)
        for name in ("first_at", "last_at"):  # DuckDB names the zone Etc/UTC
            frame[name] = frame[name].dt.tz_convert("UTC")
        return label_duplicates(frame.set_index("key"))

    def endpoints(
        self, *, by_host: bool = False, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
    ) -> TrafficTable:
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
        return TrafficTable(frame.set_index(keys)[list(analyses.ENDPOINT_COLUMNS)])

    def compare(
        self,
        other: CaptureQuery,
        *,
        labels: tuple[str, str] = ("a", "b"),
        by_host: bool = False,
        sample: int = 100,
        rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
    ) -> pd.DataFrame:
        """This query's rows (``a``) against ``other``'s (``b``), endpoint by endpoint, as
        ``df.traffic.compare()``: counts, error rates, status mixes, latency, sizes, and JSON
        schema drift. Each side is aggregated by the engine; only the bodies of the first
        ``sample`` 2xx JSON responses of each endpoint are read, for the drift."""
        if labels[0] == labels[1]:
            raise ValueError("labels must differ")
        if not isinstance(other, CaptureQuery):
            raise TypeError(f"compare() takes another CaptureQuery, got {type(other).__name__}")
        side_a = self._compared_side(by_host, sample, rules)
        side_b = other._compared_side(by_host, sample, rules)
        return compare_sides(side_a, side_b, labels)

    def _compared_side(
        self, by_host: bool, sample: int, rules: Sequence[SegmentRule]
    ) -> ComparedSide:
        stats = self.endpoints(by_host=by_host, rules=rules)
        t = analyses.capture_table()
        mixes: dict[Any, dict[int, int]] = {}
        for row in self._run(analyses.status_mix(t, by_host=by_host, rules=rules)).to_pylist():
            key = tuple(str(row[str(k)]) for k in stats.index.names)
            mixes.setdefault(key, {})[int(row["status"])] = int(row["n"])
        for key in sorted(mixes):
            mixes[key] = dict(sorted(mixes[key].items()))
        stats["statuses"] = pd.Series([mixes.get(k, {}) for k in stats.index], index=stats.index)
        if sample <= 0:
            return stats, {}
        chosen = self._run(analyses.json_samples(t, sample=sample, by_host=by_host, rules=rules))
        if chosen.num_rows == 0:
            return stats, {}
        # Read just those rows (their row groups, found by time), then their bodies.
        times = pc.unique(chosen.column("started_at")).cast(_TIMESTAMP)
        bound = pc.field("started_at").isin(times)
        where = bound if self._where is None else (self._where & bound)
        frame = read_capture(self._ref, None, where)
        order = list(ORDER_COLUMNS)
        picked = chosen.to_pandas()
        picked["started_at"] = picked["started_at"].dt.tz_convert("UTC")
        rows = frame.reset_index().merge(picked, on=order, how="inner").set_index("index")
        rows = rows.sort_values(order, kind="stable")
        keys = pd.Series(
            list(rows[list(stats.index.names)].astype(str).itertuples(index=False, name=None)),
            index=rows.index,
        )
        return stats, endpoint_shapes(frame.loc[rows.index], keys, sample)

    def timeline(self, every: str | int | float | pd.Timedelta | None = None) -> pd.DataFrame:
        """Traffic over time: one row per time bucket of width ``every`` (a pandas offset
        string such as ``"1min"``, a Timedelta, or seconds; ``None`` picks a round width that
        gives at most 200 buckets), indexed by the bucket's start (UTC), from the first to the
        last bucket with traffic; buckets without traffic are kept, with zero counts.

        Columns: ``count``, ``status_1xx`` ... ``status_5xx``, ``failed``, ``error_rate`` (4xx,
        5xx and failed over count), ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``,
        ``response_bytes``.
        """
        t = analyses.capture_table()
        if every is None:
            span = self._run(t.aggregate(lo=t.started_at.min(), hi=t.started_at.max()))
            lo, hi = span.column("lo")[0].as_py(), span.column("hi")[0].as_py()
            seconds = 0.0 if lo is None else (hi - lo).total_seconds()
            every_s = next((w for w in _BUCKETS if seconds / w < 200), _BUCKETS[-1])
        else:
            width = pd.Timedelta(every if not isinstance(every, int | float) else every * 1e9)
            every_s = int(width.total_seconds())
            if every_s < 1 or width != pd.Timedelta(seconds=every_s):
                raise ValueError(f"timeline(every=) takes whole seconds >= 1, got {every!r}")
        table = self._run(analyses.timeline(t, every_s))
        columns = [c for c in table.column_names if c != "bucket"]
        index = pd.DatetimeIndex([], tz="UTC", name="bucket")
        frame = pd.DataFrame({c: table.column(c).to_numpy(zero_copy_only=False) for c in columns})
        if table.num_rows:
            starts = pd.to_datetime(
                table.column("bucket").to_numpy(zero_copy_only=False).astype("int64"),
                unit="s",
                utc=True,
            )
            frame.index = pd.DatetimeIndex(starts, name="bucket")
            buckets = (starts[-1] - starts[0]) // pd.Timedelta(seconds=every_s) + 1
            if buckets > _MAX_BUCKETS:
                raise ValueError(
                    f"timeline(every={every!r}) makes {buckets:,} buckets (at most "
                    f"{_MAX_BUCKETS:,}): choose a wider bucket"
                )
            index = pd.date_range(starts[0], starts[-1], freq=f"{every_s}s", name="bucket")
        frame = frame.reindex(index)
        counts = [c for c in columns if c.startswith(("count", "status_", "failed"))]
        counts.append("response_bytes")
        frame[counts] = frame[counts].fillna(0).astype("int64")
        errors = frame[["status_4xx", "status_5xx", "failed"]].sum(axis=1)
        frame.insert(list(frame.columns).index("failed") + 1, "error_rate", errors / frame["count"])
        floats = [c for c in frame.columns if c.endswith("_ms")]
        frame[floats] = frame[floats].astype("float64")
        return frame


#: Bucket widths ``timeline()`` chooses from (seconds).
_BUCKETS: tuple[int, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_BUCKETS += (21600, 43200, *(86400 * d for d in (1, 2, 7, 14, 30, 91, 365)))
#: The most buckets ``timeline()`` fills (it keeps empty buckets between busy ones).
_MAX_BUCKETS = 100_000
