"""The capture analyses, each defined once as an Ibis expression over the analysis columns.

An expression here names what to compute, not where: :class:`~traffic_lab.engine.CaptureQuery`
compiles it to DuckDB SQL and runs it over the capture's Parquet files; Ibis's other backends
(PySpark among them) compile the same expression. Every definition follows the pandas accessor's
rules (``df.traffic``), and a test checks that both give the same answers on the same capture:

- an endpoint is ``(method, path template)``; a template replaces each path segment that
  matches a :data:`~traffic_lab.frames.DEFAULT_SEGMENT_RULES` rule (the first that matches);
- a status class counts ``[c*100, c*100+100)``; ``failed`` is a missing status (a transport
  error); ``error_rate`` counts 4xx, 5xx and failed over all rows;
- latency percentiles interpolate linearly (pandas' ``quantile``, DuckDB's ``quantile_cont``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from ..frames.analysis import DEFAULT_SEGMENT_RULES, SegmentRule
from ..frames.where import Where, rows_where
from ..stores.parquet import SCHEMA

if TYPE_CHECKING:
    from ibis.expr.types import Table

__all__ = [
    "ANALYSIS_SCHEMA",
    "ENDPOINT_COLUMNS",
    "PERCENTILES",
    "capture_table",
    "duplicates",
    "endpoint_keys",
    "endpoint_template",
    "endpoints",
    "json_samples",
    "status_mix",
    "summary",
    "timeline",
    "ROWS_SCHEMA",
    "rows_select",
    "live_rows",
]

#: The columns analyses read, as the engine presents a capture: the capture's own columns
#: (their types from its schema), and ``elapsed_ms`` computed from ``elapsed``.
ANALYSIS_SCHEMA = pa.schema(
    [
        pa.field("elapsed_ms", pa.float64(), nullable=False) if name == "elapsed_ms"
        else SCHEMA.field(name)
        for name in (
            "started_at", "elapsed_ms", "writer_id", "writer_seq", "request_method",
            "request_url", "request_host", "request_path", "request_key", "request_body_size",
            "response_status", "response_content_type", "response_body_size", "truncated",
            "error_type",
        )
    ]
)  # fmt: skip

#: Percentiles reported by :func:`summary` and :func:`endpoints`.
PERCENTILES = (50, 90, 99)
#: The columns of :func:`endpoints`, in the accessor's order.
ENDPOINT_COLUMNS = (
    "count",
    *(f"p{q}_ms" for q in PERCENTILES),
    "mean_ms",
    "max_ms",
    "errors_4xx",
    "errors_5xx",
    "failed",
    "error_rate",
    "server_error_rate",
    "request_bytes_mean",
    "response_bytes_mean",
    "response_bytes_max",
    "response_bytes_total",
)


def capture_table(name: str = "capture") -> Table:
    """An unbound Ibis table of :data:`ANALYSIS_SCHEMA`: what the definitions are written over."""
    return ibis.table(ibis.Schema.from_pyarrow(ANALYSIS_SCHEMA), name=name)


def endpoint_template(path: Any, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> Any:
    """The endpoint template of a path column (``/users/17`` -> ``/users/{id}``)."""
    compiled = [
        (placeholder, [patterns] if isinstance(patterns, str) else list(patterns))
        for placeholder, patterns in rules
    ]

    def segment(s: Any) -> Any:
        cases = []
        for placeholder, patterns in compiled:
            hit = s.re_search(patterns[0])
            for pattern in patterns[1:]:
                hit = hit & s.re_search(pattern)
            cases.append((hit, placeholder))
        return ibis.cases(*cases, else_=s) if cases else s

    return ibis.literal("/").join(path.split("/").map(segment))


def _flags(t: Table) -> dict[str, Any]:
    status = t.response_status
    return {
        "errors_4xx": (status >= 400) & (status < 500),
        "errors_5xx": status >= 500,
        "failed": status.isnull(),
    }


def _count_if(condition: Any) -> Any:
    return condition.ifelse(1, 0).sum().fill_null(0)


def summary(t: Table, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> Table:
    """One row of headline figures (the accessor's ``summary()``; ``duration`` is computed by
    the caller from ``start`` and ``end``)."""
    flags = _flags(t)
    status = t.response_status
    # Distinct (method, path) pairs are templated, not rows: a third of the time at 1M rows.
    pairs = ibis.struct({"method": t.request_method, "path": t.request_path}).collect(distinct=True)
    any_error = flags["errors_4xx"].fill_null(False) | flags["errors_5xx"].fill_null(False)
    any_error = any_error | flags["failed"]
    metrics: dict[str, Any] = {
        "exchanges": t.count(),
        "start": t.started_at.min(),
        "end": t.started_at.max(),
        "hosts": t.request_host.nunique(),
        "pairs": pairs,
        **{
            f"status_{c}xx": _count_if((status >= c * 100) & (status < c * 100 + 100))
            for c in range(1, 6)
        },
        "failed": _count_if(flags["failed"]),
        "truncated": _count_if(t.truncated),
        "errors": _count_if(any_error),
        **{f"p{q}_ms": t.elapsed_ms.quantile(q / 100) for q in PERCENTILES},
        "max_ms": t.elapsed_ms.max(),
        "request_bytes": t.request_body_size.sum().fill_null(0),
        "response_bytes": t.response_body_size.sum().fill_null(0),
        "distinct_keys": t.request_key.nunique(),
        "keyed": t.request_key.count(),
    }
    row = t.aggregate(**metrics)
    templated = row.pairs.map(lambda p: p.method.concat("\x1f", endpoint_template(p.path, rules)))
    return row.mutate(endpoints=templated.unique().length().fill_null(0)).drop("pairs")


def endpoint_keys(
    t: Table, *, by_host: bool = False, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
) -> dict[str, Any]:
    """What endpoint tables group by: (``host``), ``method``, ``endpoint`` (missing values
    read ``"None"``, as the accessor's string keys do)."""
    keys: dict[str, Any] = {}
    if by_host:
        keys["host"] = t.request_host.fill_null("None")
    keys["method"] = t.request_method
    keys["endpoint"] = endpoint_template(t.request_path, rules).fill_null("None")
    return keys


def endpoints(
    t: Table, *, by_host: bool = False, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
) -> Table:
    """Per endpoint (``host``?, ``method``, ``endpoint``): the accessor's ``endpoints()``
    columns, most requested first (ties by the keys)."""
    flags = _flags(t)
    keys = endpoint_keys(t, by_host=by_host, rules=rules)
    grouped = t.group_by(**keys).aggregate(
        count=t.count(),
        **{f"p{q}_ms": t.elapsed_ms.quantile(q / 100) for q in PERCENTILES},
        mean_ms=t.elapsed_ms.mean(),
        max_ms=t.elapsed_ms.max(),
        errors_4xx=_count_if(flags["errors_4xx"]),
        errors_5xx=_count_if(flags["errors_5xx"]),
        failed=_count_if(flags["failed"]),
        request_bytes_mean=t.request_body_size.cast("float64").mean(),
        response_bytes_mean=t.response_body_size.cast("float64").mean(),
        response_bytes_max=t.response_body_size.max(),
        response_bytes_total=t.response_body_size.sum(),
    )
    errors = grouped.errors_4xx + grouped.errors_5xx + grouped.failed
    grouped = grouped.mutate(
        error_rate=errors.cast("float64") / grouped["count"],
        server_error_rate=(grouped.errors_5xx + grouped.failed).cast("float64") / grouped["count"],
    )
    return grouped.order_by([ibis.desc("count"), *keys])


def duplicates(t: Table) -> Table:
    """Requests repeated under the same ``request_key`` (the accessor's ``duplicates()``): one
    row per key seen more than once, largest savings first (ties by key).

    A repeat is a cache hit once an earlier exchange with its key could be served: a complete
    response (failed and truncated exchanges are never served). Recorded order is
    ``(started_at, writer_id, writer_seq)``.
    """
    order = [t.started_at, t.writer_id, t.writer_seq]
    servable = (t.response_status.notnull() & ~t.truncated.fill_null(False)).ifelse(1, 0)
    by_key = ibis.cumulative_window(group_by=t.request_key, order_by=order)
    rows = t.mutate(
        _servable_so_far=servable.sum().over(by_key),
        _servable=servable,
        _count=t.count().over(ibis.window(group_by=t.request_key)),
        # The first exchange's request line (a window: ordered first() is not in every engine).
        _method=t.request_method.first().over(by_key),
        _url=t.request_url.first().over(by_key),
    )
    rows = rows.filter(rows._count > 1)
    hit = (rows._servable_so_far - rows._servable) > 0
    size = rows.response_body_size.fill_null(0) + rows.request_body_size.fill_null(0)
    grouped = rows.group_by(key=rows.request_key).aggregate(
        request_method=rows._method.max(),  # the same on every row of a key
        request_url=rows._url.max(),
        count=rows.count(),
        repeats=_count_if(hit),
        saved_ms=hit.ifelse(rows.elapsed_ms, 0.0).sum(),
        saved_bytes=hit.ifelse(size, 0).sum(),
        first_at=rows.started_at.min(),
        last_at=rows.started_at.max(),
    )
    return grouped.order_by([ibis.desc("saved_ms"), ibis.desc("count"), "key"])


#: What an engine that reads the files itself takes of each row: the analysis columns and the
#: tags (for ``Where(tags=...)``).
ROWS_SCHEMA = pa.schema([*ANALYSIS_SCHEMA, pa.field("tags", pa.map_(pa.string(), pa.string()))])


def rows_select(quote: str = '"') -> list[str]:
    """The SQL select list that makes :data:`ROWS_SCHEMA` from a capture file's columns
    (``quote`` quotes a name: ``"`` for DuckDB, a backtick for Spark)."""
    return [
        "CAST(CAST(elapsed AS BIGINT) AS DOUBLE) / 1000.0 AS elapsed_ms"
        if name == "elapsed_ms"
        else f"{quote}{name}{quote}"
        for name in ROWS_SCHEMA.names
    ]


def live_rows(
    name: str, wheres: Sequence[Where], cutoff: int | None, schema: pa.Schema = ROWS_SCHEMA
) -> Table:
    """The rows an analysis sees, over a table ``name`` of ``schema`` (default
    :data:`ROWS_SCHEMA`; or the capture's row schema) read from a capture's live files: the
    clear ``cutoff`` (µs since the epoch, as ``ParquetBase.live_files`` gives it) and every one
    of ``wheres`` applied."""
    return rows_where(ibis.table(ibis.Schema.from_pyarrow(schema), name=name), wheres, cutoff)


def status_mix(
    t: Table, *, by_host: bool = False, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
) -> Table:
    """Per endpoint and answered status: how many (the ``statuses`` of ``compare()``)."""
    answered = t.filter(t.response_status.notnull())
    keys = endpoint_keys(answered, by_host=by_host, rules=rules)
    return answered.group_by(**keys, status=answered.response_status).aggregate(n=answered.count())


def json_samples(
    t: Table,
    *,
    sample: int,
    by_host: bool = False,
    rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
) -> Table:
    """The first ``sample`` 2xx JSON responses of each endpoint in recorded order: their
    endpoint keys and order columns (``compare()`` reads these rows' bodies for schema drift).
    """
    status = t.response_status
    ok = (status >= 200) & (status < 300)
    json = t.response_content_type.lower().contains("json").fill_null(False)
    rows = t.filter(ok & json)
    keys = endpoint_keys(rows, by_host=by_host, rules=rules)
    rows = rows.mutate(**keys)
    order = [rows.started_at, rows.writer_id, rows.writer_seq]
    window = ibis.window(group_by=[rows[k] for k in keys], order_by=order)
    rows = rows.mutate(_n=ibis.row_number().over(window))
    return rows.filter(rows._n < sample).select(*keys, "started_at", "writer_id", "writer_seq")


def timeline(t: Table, every_s: int) -> Table:
    """Traffic per time bucket of ``every_s`` seconds (``bucket``: the bucket's start, in
    seconds since the epoch): counts by status class, failures, latency percentiles, bytes."""
    flags = _flags(t)
    status = t.response_status
    seconds = t.started_at.epoch_seconds()
    return (
        t.group_by(bucket=(seconds // every_s) * every_s)
        .aggregate(
            count=t.count(),
            **{
                f"status_{c}xx": _count_if((status >= c * 100) & (status < c * 100 + 100))
                for c in range(1, 6)
            },
            failed=_count_if(flags["failed"]),
            **{f"p{q}_ms": t.elapsed_ms.quantile(q / 100) for q in PERCENTILES},
            max_ms=t.elapsed_ms.max(),
            response_bytes=t.response_body_size.sum().fill_null(0),
        )
        .order_by("bucket")
    )
