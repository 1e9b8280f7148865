"""Parquet captures: :class:`ParquetCache` (lookup by request) and :class:`ParquetStream`
(iteration in recorded order) over one capture format, on a local disk or an object store.

The format is documented in ``docs/capture-format.md``. Any Parquet engine reads a capture:
``pyarrow.dataset``, pandas, DuckDB and Polars (``read_parquet('capture/**/*.parquet')``).
"""

from __future__ import annotations

from ._options import ParquetOptions
from ._store import ParquetBase
from .cache import ParquetCache
from .compact import CompactionReport
from .reader import SkippedFileWarning
from .schema import (
    SCHEMA,
    SCHEMA_VERSION,
    exchanges_to_table,
    table_to_exchanges,
    upgrade_table,
)
from .stream import ParquetStream

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "CompactionReport",
    "ParquetBase",
    "ParquetCache",
    "ParquetOptions",
    "ParquetStream",
    "SkippedFileWarning",
    "exchanges_to_table",
    "table_to_exchanges",
    "upgrade_table",
]
