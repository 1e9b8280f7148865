"""Captures on a shared filesystem, answered by Spark (the optional ``spark`` extra).

:func:`open_capture` is :func:`traffic_lab.open_capture` run by a Spark session instead of
embedded DuckDB: the same questions (``count``, ``summary``, ``endpoints``, ``duplicates``), the
same answers, from the same Ibis definitions (:mod:`traffic_lab.engine.analyses`) compiled to
Spark SQL. traffic_lab lists the capture's live files (a file that ``compact()`` replaced is not
read, an unreadable one is named and left out) and applies the clear cutoff; Spark reads them.
:meth:`SparkCaptureQuery.to_spark` hands the rows over as a Spark DataFrame.

Local paths (or a filesystem every executor mounts) are what this is tested with; ``s3a://``
needs the Hadoop AWS jars on Spark's classpath, which the Python package does not ship.

Spark decodes the files itself: traffic_lab checks each file's footer when it lists it, but not
every value in it, so text that is not valid UTF-8 in a shared capture reaches Spark's answers
as Spark reads it (the DuckDB engine and ``read_capture`` validate every batch and skip such a
file, naming it).
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .engine import analyses
from .engine.query import CaptureQuery
from .frames.convert import open_source
from .frames.where import Where, WhereArg, as_wheres
from .stores.parquet import ParquetBase

if TYPE_CHECKING:
    from ibis.expr.types import Table
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkCaptureQuery", "open_capture"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")


def open_capture(path: str, spark: SparkSession) -> SparkCaptureQuery:
    """A lazy query over the capture at ``path``, answered by ``spark``.

    The session should use UTC (``spark.sql.session.timeZone``), as traffic_lab does.
    """
    return SparkCaptureQuery(path, spark)


class SparkCaptureQuery(CaptureQuery):
    """:class:`~traffic_lab.engine.CaptureQuery` run by Spark; ``where`` takes a
    :class:`~traffic_lab.Where`, a dict of its fields or its fields as keywords (not a
    ``pyarrow`` Expression, which Spark cannot run)."""

    def __init__(self, path: str, spark: SparkSession, wheres: tuple[Where, ...] = ()) -> None:
        ref = open_source(path)
        # head() and to_pandas() read through traffic_lab, with the same filters.
        expressions = [e for e in (w.expression(partitioned=True) for w in wheres) if e is not None]
        combined = functools.reduce(operator.and_, expressions) if expressions else None
        super().__init__(ref, combined, wheres)
        self._path = path
        self._spark = spark
        self._spark_wheres = wheres

    def __repr__(self) -> str:
        wheres = " and ".join(map(repr, self._spark_wheres))
        return f"<SparkCaptureQuery {self._path!r}{' where ' + wheres if wheres else ''}>"

    def where(self, where: WhereArg = None, **fields: Any) -> SparkCaptureQuery:
        """A query narrowed further (every filter given must hold)."""
        added = as_wheres(where)
        if added is None:
            raise TypeError(
                f"Spark queries take a traffic_lab.Where or a dict of its fields, not "
                f"{type(where).__name__}"
            )
        if fields:
            added = (*added, Where(**fields))
        return SparkCaptureQuery(self._path, self._spark, (*self._spark_wheres, *added))

    def to_spark(self, session: SparkSession | None = None) -> DataFrame:
        """The matching rows' analysis columns (``elapsed_ms`` computed) and ``tags``, as a
        Spark DataFrame."""
        import ibis

        ibis.pyspark  # noqa: B018  (loading the backend sets up its dialect's options)

        session = session or self._spark
        store = self._ref.store()
        if not isinstance(store, ParquetBase):
            raise TypeError(f"not a Parquet capture: {self._path!r}")
        files, cutoff = store.live_files()
        if files:
            frame = session.read.parquet(*files).selectExpr(*analyses.rows_select("`"))
        else:  # a capture with nothing published yet
            frame = session.createDataFrame(analyses.ROWS_SCHEMA.empty_table())
        frame.createOrReplaceTempView("capture_rows")
        rows = analyses.live_rows("capture_rows", self._spark_wheres, cutoff)
        return session.sql(str(ibis.to_sql(rows, dialect="pyspark")))

    def _run(self, expr: Table) -> pa.Table:
        import ibis

        session = self._spark.newSession()  # its own temporary views
        self.to_spark(session).createOrReplaceTempView("capture")
        answer: pa.Table = session.sql(str(ibis.to_sql(expr, dialect="pyspark"))).toArrow()
        return answer.cast(_unzoned(answer.schema))


def _unzoned(schema: pa.Schema) -> pa.Schema:
    """Spark hands timestamps back in the session's zone: name it UTC."""
    return pa.schema(
        [pa.field(f.name, _TIMESTAMP) if pa.types.is_timestamp(f.type) else f for f in schema]
    )
