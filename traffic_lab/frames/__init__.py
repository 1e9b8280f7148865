"""pandas views of traffic: capture -> DataFrame, DataFrame -> capture, the ``df.traffic``
accessor, decoded views, and secrets in captures.

Importing this package registers the ``df.traffic`` accessor on ``pandas.DataFrame``. See
``docs/analysis.md`` for a guided tour.

=============================  ==================================================================
name                           what it does
=============================  ==================================================================
:func:`to_pandas`              a capture, a store or exchanges -> DataFrame (``where=`` pushed down)
:func:`read_capture`           the same, for a capture path
:func:`write_capture`          a DataFrame (or exchanges) -> a new capture
:class:`Where`                 the ``where=`` spec: host, method, status, time, path glob, tags
:class:`TrafficAccessor`       ``df.traffic``: summary, endpoints, duplicates, compare, replay...
:func:`scan_secrets`           credential-like values stored in a capture
:func:`redact_capture`         rewrite a capture under a new redaction rule, into a new capture
=============================  ==================================================================

Examples
--------
>>> import traffic_lab as tl
>>> from traffic_lab.frames import to_pandas
>>> from traffic_lab.testing import make_exchange
>>> df = to_pandas([make_exchange(url=f"https://api.example/users/{i}") for i in (1, 2)])
>>> df.traffic.endpoints().index.tolist()
[('GET', '/users/{id}')]
"""

from __future__ import annotations

from . import views
from .accessor import TrafficAccessor
from .analysis import DEFAULT_SEGMENT_RULES, path_template
from .convert import (
    ALL_COLUMNS,
    DEFAULT_COLUMNS,
    KEY_COLUMNS,
    read_capture,
    to_pandas,
    write_capture,
)
from .secrets import RedactionReport, redact_capture, redact_known_tokens, scan_secrets
from .where import Where

__all__ = [
    "ALL_COLUMNS",
    "DEFAULT_COLUMNS",
    "DEFAULT_SEGMENT_RULES",
    "KEY_COLUMNS",
    "path_template",
    "read_capture",
    "redact_capture",
    "redact_known_tokens",
    "RedactionReport",
    "scan_secrets",
    "to_pandas",
    "TrafficAccessor",
    "views",
    "Where",
    "write_capture",
]
