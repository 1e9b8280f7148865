"""pandas views of traffic (``docs/analysis.md``); importing it registers ``df.traffic``.

:func:`read_capture` (alias :func:`to_pandas`) loads a capture, a store or exchanges into a
DataFrame (``where=``, a :class:`Where`, is pushed down); :func:`write_capture` turns one back
into a new capture; :class:`TrafficAccessor` is ``df.traffic`` (summary, endpoints,
duplicates, compare, replay, decoded views), whose answers display with units (:class:`Summary`,
:class:`TrafficTable`); :func:`scan_secrets` lists credentials stored in a
capture and :func:`redact_capture` rewrites one under a new redaction rule.

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
from .display import Summary, TrafficTable
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
    "Summary",
    "to_pandas",
    "TrafficAccessor",
    "TrafficTable",
    "views",
    "Where",
    "write_capture",
]
