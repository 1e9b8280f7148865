"""Questions about captures of any size, answered where the data is.

:func:`open_capture` returns a lazy :class:`CaptureQuery`: ``.where(...)`` takes the
:class:`~traffic_lab.Where` grammar, and ``.count()``, ``.head()``, ``.summary()``,
``.endpoints()``, ``.duplicates()`` and ``.to_pandas()`` run one query each. DuckDB (embedded)
reads the Parquet files a batch at a time, so a capture larger than memory is answered in the
memory its answer needs. Each analysis is defined once, as an Ibis expression
(:mod:`traffic_lab.engine.analyses`), with the same rules as the pandas accessor ``df.traffic``.
"""

from __future__ import annotations

from .query import CaptureQuery, open_capture

__all__ = ["CaptureQuery", "open_capture"]
