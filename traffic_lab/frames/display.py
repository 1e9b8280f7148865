"""How analysis answers look: units, rounding, a notebook's width; the numbers stay numbers.

``df.traffic.summary()`` returns a :class:`Summary`: a read-only mapping of the headline
figures (``s["error_rate"] == 0.10125``, ``s.error_rate``, ``s.to_series()``) that shows itself
as a two-column table with units (``10.1 %``, ``243 ms``, ``1.2 KB``). ``endpoints()``,
``duplicates()`` and ``compare()`` return a :class:`TrafficTable`: an ordinary DataFrame with
the same numeric columns, whose display (in a notebook and in ``repr``) rounds to sensible
precision, shows units, shortens long paths and leaves out the least important columns so that
it fits about 100 characters. Everything pandas derives from one (``head()``, ``nlargest()``,
``table[[...]]``) displays the same way; ``table.display_frame()`` gives the displayed text as
a frame of strings, and ``pd.DataFrame(table)`` a plain frame with pandas' own display.

The unit formatters (:func:`format_ms`, :func:`format_seconds`, :func:`format_bytes`,
:func:`format_percent`, :func:`format_count`) are the one home of those formats.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DISPLAY_WIDTH",
    "DUPLICATE_COLUMNS",
    "Summary",
    "TrafficTable",
    "format_bytes",
    "format_count",
    "format_ms",
    "format_percent",
    "format_seconds",
    "label_duplicates",
    "request_lines",
    "shorten",
]

#: Characters a displayed table aims to fit in (a notebook's width).
DISPLAY_WIDTH = 100
#: Longest path or URL shown in a table cell (longer ones lose their middle).
MAX_PATH = 40
_MISSING = "-"


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, dicts
        return False


# -- units -----------------------------------------------------------------------------------------
def format_ms(ms: float | None) -> str:
    """A latency in milliseconds: 1 decimal under 10 ms, none under 1 s, then seconds.

    Examples
    --------
    >>> [format_ms(v) for v in (0, 0.42, 3.599, 243.4, 4142.25, 95_000, float("nan"))]
    ['0 ms', '0.4 ms', '3.6 ms', '243 ms', '4.1 s', '1 min 35 s', '-']
    """
    if ms is None or _missing(ms):
        return _MISSING
    if ms == 0:
        return "0 ms"
    if abs(ms) < 9.95:
        return f"{ms:.1f} ms"
    if abs(ms) < 999.5:
        return f"{ms:.0f} ms"
    return format_seconds(ms / 1000)


def format_seconds(seconds: float | timedelta | None) -> str:
    """A duration (seconds or a timedelta): ``4.1 s``, ``12 min 05 s``, ``2 h 03 min``.

    Examples
    --------
    >>> [format_seconds(s) for s in (0.25, 4.14, 59.97, 725, 7380, 200_000)]
    ['250 ms', '4.1 s', '1 min 00 s', '12 min 05 s', '2 h 03 min', '2 d 07 h']
    """
    if seconds is None or _missing(seconds):
        return _MISSING
    if isinstance(seconds, timedelta):  # pd.Timedelta too
        seconds = seconds.total_seconds()
    if abs(seconds) < 0.9995:
        return format_ms(seconds * 1000)
    if abs(seconds) < 59.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def format_bytes(n: float | None) -> str:
    """A size in bytes, in B, KB, MB or GB (powers of 1024, one decimal above bytes).

    Examples
    --------
    >>> [format_bytes(n) for n in (0, 512, 1229, 3.5 * 2**20, 2**33)]
    ['0 B', '512 B', '1.2 KB', '3.5 MB', '8.0 GB']
    """
    if n is None or _missing(n):
        return _MISSING
    size = float(n)
    if abs(size) < 1023.5:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if abs(size) < 1023.95 or unit == "GB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_percent(rate: float | None) -> str:
    """A rate (0..1) as a percentage with one decimal (``0 %`` and ``100 %`` exactly).

    Examples
    --------
    >>> [format_percent(r) for r in (0.10125, 0.0, 0.0004, 1.0, 0.99996)]
    ['10.1 %', '0 %', '<0.1 %', '100 %', '>99.9 %']
    """
    if rate is None or _missing(rate):
        return _MISSING
    percent = float(rate) * 100
    if percent in (0.0, 100.0):
        return f"{percent:.0f} %"
    if 0 < percent < 0.05:
        return "<0.1 %"
    if 99.95 <= percent < 100:
        return ">99.9 %"
    return f"{percent:.1f} %"


def format_count(n: float | None) -> str:
    """A count with thousands separators (``3,000``)."""
    if n is None or _missing(n):
        return _MISSING
    return f"{int(n):,}"


def _format_time(value: Any) -> str:
    if _missing(value):
        return _MISSING
    stamp = pd.Timestamp(value)
    zone = " UTC" if stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0) else ""
    return f"{stamp.strftime('%Y-%m-%d %H:%M:%S')}.{stamp.microsecond // 1000:03d}{zone}"


def shorten(text: str, limit: int = MAX_PATH) -> str:
    """``text`` cut to ``limit`` characters by removing its middle (the end of a path says most).

    Examples
    --------
    >>> shorten("/api/products/{id}/variants/{uuid}/images/thumbnail.png", 32)
    '/api/products/{id}…thumbnail.png'
    """
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2 + (limit - 1) % 2
    tail = limit - 1 - head
    cut = text[-tail:] if tail else ""
    slash = cut.find("/")  # start the tail at a segment when that costs little
    if 0 < slash < len(cut) // 2:
        cut = cut[slash + 1 :]
        head = limit - 1 - len(cut)
    return f"{text[:head]}…{cut}"


#: A URL's origin (``scheme://host``, optional: the host group) and its request target.
_URL_PARTS = r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://(?P<host>[^/?#]*))?(?P<target>.*)$"


def _url_parts(urls: pd.Series[Any]) -> tuple[Any, Any]:
    """The host (``""`` without one) and the request target (``/`` when empty) of each URL,
    as Arrow strings (computed in Arrow: a 200k-row duplicates table is labelled in ms)."""
    texts = pa.array(urls.astype(str).to_numpy(dtype=object), pa.string())
    parts: Any = pc.extract_regex(texts, _URL_PARTS)
    host: Any = pc.fill_null(parts.field("host"), "")
    target: Any = parts.field("target")
    rootless = pc.match_substring_regex(target, r"^([?#]|$)")  # empty, or query first
    target = pc.if_else(rootless, pc.binary_join_element_wise("/", target, ""), target)
    return host, target


def request_lines(
    methods: pd.Series[Any], urls: pd.Series[Any], *, host: bool = False
) -> pd.Series[Any]:
    """``METHOD /path?query`` of each row: the request line, without the scheme and host
    (``host=True``: ``METHOD host/path?query``).

    Examples
    --------
    >>> methods, urls = pd.Series(["GET"]), pd.Series(["https://a.example/api/users/42?x=1"])
    >>> request_lines(methods, urls).tolist(), request_lines(methods, urls, host=True).tolist()
    (['GET /api/users/42?x=1'], ['GET a.example/api/users/42?x=1'])
    """
    hosts, targets = _url_parts(urls)
    return _lines(methods, hosts if host else None, targets, urls.index)


def _lines(methods: pd.Series[Any], hosts: Any, targets: Any, index: pd.Index) -> pd.Series[Any]:
    names = pa.array(methods.astype(str).to_numpy(dtype=object), pa.string())
    where = targets if hosts is None else pc.binary_join_element_wise(hosts, targets, "")
    joined: Any = pc.binary_join_element_wise(names, where, " ")
    return pd.Series(joined.to_numpy(zero_copy_only=False), index=index, dtype=object)


#: The columns of :func:`duplicates`, in order (the index is ``request``).
DUPLICATE_COLUMNS = (
    "request_method",
    "request_url",
    "count",
    "repeats",
    "saved_ms",
    "saved_bytes",
    "first_at",
    "last_at",
    "key",
)


def label_duplicates(table: pd.DataFrame) -> TrafficTable:
    """A duplicates table indexed by ``key``, as the pandas and engine computations make it
    (empty: no rows at all), as ``duplicates()`` returns it: indexed by ``request``, the
    request line, with ``key`` the last column."""
    if table.empty:
        empty = {c: pd.Series(dtype=object) for c in DUPLICATE_COLUMNS}
        return TrafficTable(empty, index=pd.Index([], dtype=object, name="request"))
    out = table.reset_index()
    hosts, targets = _url_parts(out["request_url"])
    several = pc.count_distinct(hosts).as_py() > 1  # the same line on two hosts: say which
    lines = _lines(out["request_method"], hosts if several else None, targets, out.index)
    out.index = pd.Index(lines.to_numpy(), name="request")
    return TrafficTable(out[list(DUPLICATE_COLUMNS)])


# -- the summary -----------------------------------------------------------------------------------
#: What each summary figure is called in its display, and how it is shown.
_SUMMARY_ROWS: dict[str, tuple[str, str]] = {
    "exchanges": ("exchanges", "count"),
    "start": ("first request", "time"),
    "end": ("last request", "time"),
    "duration": ("duration", "duration"),
    "hosts": ("hosts", "count"),
    "endpoints": ("endpoints", "count"),
    **{f"status_{c}xx": (f"{c}xx responses", "share") for c in range(1, 6)},
    "failed": ("transport errors", "share"),
    "truncated": ("truncated", "share"),
    "error_rate": ("error rate (4xx, 5xx, failed)", "percent"),
    "p50_ms": ("latency p50", "ms"),
    "p90_ms": ("latency p90", "ms"),
    "p99_ms": ("latency p99", "ms"),
    "max_ms": ("latency max", "ms"),
    "request_bytes": ("request bodies", "bytes"),
    "response_bytes": ("response bodies", "bytes"),
    "repeated_requests": ("repeated requests", "share"),
}


class Summary(Mapping[str, Any]):
    """The headline figures of some traffic (``df.traffic.summary()``,
    ``tl.open_capture(...).summary()``): a read-only mapping from name to number.

    The numbers are exact (``s["error_rate"]``, ``s.error_rate``, ``s.to_dict()``,
    ``s.to_series()``: the figures as a pandas Series); what a notebook or ``print(s)`` shows is
    a two-column table of the same figures with units. ``s.to_frame()`` is the tidy frame
    (``metric``, ``value``); ``s.to_frame(text=True)`` holds the displayed text instead.

    Examples
    --------
    >>> s = Summary({"exchanges": 800, "error_rate": 0.10125, "p50_ms": 243.4})
    >>> s["error_rate"], s.p50_ms
    (0.10125, 243.4)
    >>> print(s)
    exchanges                      800
    error rate (4xx, 5xx, failed)  10.1 %
    latency p50                    243 ms
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private and dunder lookups (copy, pickle) are not figures
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"Summary has no figure {name!r}") from None

    def __reduce__(self) -> tuple[type[Summary], tuple[dict[str, Any]]]:
        return Summary, (self._values,)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._values})

    def to_dict(self) -> dict[str, Any]:
        """The figures as a dict (a copy)."""
        return dict(self._values)

    def to_series(self) -> pd.Series[Any]:
        """The figures as a pandas Series (``object`` dtype, named ``summary``)."""
        return pd.Series(self._values, name="summary", dtype=object)

    def to_frame(self, *, text: bool = False) -> pd.DataFrame:
        """The tidy frame: one row per figure, columns ``metric`` and ``value`` (the number;
        with ``text=True``, the displayed label and text)."""
        if text:
            rows = self._rows()
            return pd.DataFrame({"metric": [r[1] for r in rows], "value": [r[2] for r in rows]})
        return pd.DataFrame(
            {
                "metric": list(self._values),
                "value": pd.Series(list(self._values.values()), dtype=object),
            }
        )

    def text(self, key: str) -> str:
        """How one figure is displayed (``s.text("p50_ms") == "243 ms"``)."""
        return self._format(key, self._values[key])

    def _format(self, key: str, value: Any) -> str:
        kind = _SUMMARY_ROWS.get(key, ("", "plain"))[1]
        if kind == "share":
            total = self._values.get("exchanges")
            if _missing(value) or not total:
                return format_count(value)
            return f"{format_count(value)} ({format_percent(value / total)})"
        return _format_value(value, kind)

    def _rows(self) -> list[tuple[str, str, str]]:
        """``(key, label, text)`` of each figure, in order."""
        return [
            (key, _SUMMARY_ROWS.get(key, (key.replace("_", " "), ""))[0], self._format(key, v))
            for key, v in self._values.items()
        ]

    def __repr__(self) -> str:
        rows = self._rows()
        width = max((len(label) for _, label, _ in rows), default=0)
        return "\n".join(f"{label:<{width}}  {text}" for _, label, text in rows)

    def _repr_html_(self) -> str:
        body = "".join(
            f'<tr><th title="{html.escape(key)}">{html.escape(label)}</th>'
            f"<td>{html.escape(text)}</td></tr>"
            for key, label, text in self._rows()
        )
        return (
            f'{_STYLE}<table class="tl-table tl-summary"><thead><tr><th class="tl-idx">metric</th>'
            f"<th>value</th></tr></thead><tbody>{body}</tbody></table>"
        )


# -- tables ----------------------------------------------------------------------------------------
#: Short display headers of analysis columns (a ``compare()`` column keeps its side's suffix).
_HEADERS = {
    "count": "count",
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p99_ms": "p99",
    "mean_ms": "mean",
    "max_ms": "max",
    "errors_4xx": "4xx",
    "errors_5xx": "5xx",
    "failed": "failed",
    "error_rate": "errors",
    "server_error_rate": "5xx+failed",
    "request_bytes_mean": "req mean",
    "response_bytes_mean": "resp mean",
    "response_bytes_max": "resp max",
    "response_bytes_total": "resp total",
    "request_method": "method",
    "request_url": "url",
    "repeats": "repeats",
    "saved_ms": "saved time",
    "saved_bytes": "saved bytes",
    "first_at": "first",
    "last_at": "last",
    "p50_ratio": "p50 ratio",
    "statuses": "statuses",
    "schema_changed": "schema",
    "fields_added": "added",
    "fields_removed": "removed",
    "types_changed": "types changed",
}

#: Columns left out of a display that would not fit, first to last (the rest go from the right).
_DROP_ORDER = (
    "key",
    "request_method",
    "request_url",
    "last_at",
    "first_at",
    "request_bytes_mean",
    "response_bytes_max",
    "mean_ms",
    "errors_4xx",
    "errors_5xx",
    "failed",
    "p90_ms",
    "server_error_rate",
    "response_bytes_mean",
    "p90_ms_",
    "response_bytes_mean_",
    "statuses_",
    "types_changed",
    "fields_removed",
    "fields_added",
    "error_rate_",
    "count_",
)


def _base(column: str) -> str:
    """The analysis column a (possibly ``compare()``-suffixed) column is made of."""
    if column in _HEADERS:
        return column
    stem, _, _ = column.rpartition("_")
    return stem if stem in _HEADERS else column


def _kind(column: str, values: pd.Series[Any]) -> str:
    base = _base(column)
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "time"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "duration"
    if not pd.api.types.is_numeric_dtype(dtype):
        return "path" if base in ("endpoint", "request_url", "request", "url", "path") else "plain"
    if base.endswith("_ms"):
        return "ms"
    if base.endswith("ratio"):
        return "ratio"
    if "rate" in base:
        return "percent"
    if "bytes" in base:
        return "bytes"
    if pd.api.types.is_integer_dtype(dtype):
        return "count"
    return "number"


#: The formatter of each kind of value that has a unit (see :func:`_kind`).
_FORMATS: dict[str, Callable[[Any], str]] = {
    "ms": format_ms,
    "duration": format_seconds,
    "time": _format_time,
    "percent": format_percent,
    "bytes": format_bytes,
    "count": format_count,
}


def _format_value(value: Any, kind: str) -> str:
    if kind == "path":
        return _MISSING if _missing(value) else shorten(str(value))
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v:,}" for k, v in value.items()) or _MISSING
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or _MISSING
    if _missing(value):
        return _MISSING
    if kind in _FORMATS:
        return _FORMATS[kind](value)
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "number" and isinstance(value, float | np.floating):
        number = float(value)
        return f"{number:,.3g}" if abs(number) < 1000 else f"{number:,.0f}"
    return str(value)


class TrafficTable(pd.DataFrame):
    """A DataFrame of analysis results (``endpoints()``, ``duplicates()``, ``compare()``)
    that displays rounded, with units, within about :data:`DISPLAY_WIDTH` characters.

    Only the display differs from a plain DataFrame: the values, dtypes and every pandas
    operation are pandas'. Frames derived from one (``head()``, ``sort_values()``,
    ``table[[...]]``) are TrafficTables too. In the display, latency columns read ``243 ms``,
    rates ``10.1 %``, sizes ``1.2 KB``; headers are short (``p50`` for ``p50_ms``); paths
    longer than 40 characters lose their middle; when the columns do not fit, the least
    important are left out and named under the table. ``pd.DataFrame(table)`` is the plain
    frame, with pandas' own display.

    Examples
    --------
    >>> t = TrafficTable(
    ...     {"count": [1200, 3], "p50_ms": [243.4, 3.599], "error_rate": [0.10125, 0.0]},
    ...     index=pd.Index(["/api/users/{id}", "/api/search"], name="endpoint"),
    ... )
    >>> t.loc["/api/search", "p50_ms"]
    np.float64(3.599)
    >>> print(t)
    endpoint         count     p50  errors
    /api/users/{id}  1,200  243 ms  10.1 %
    /api/search          3  3.6 ms     0 %
    """

    @property
    def _constructor(self) -> type[TrafficTable]:
        return TrafficTable

    # -- the displayed text ----------------------------------------------------------------------
    def display_frame(
        self, *, width: int = DISPLAY_WIDTH, max_rows: int | None = None
    ) -> pd.DataFrame:
        """The display as a frame of strings: the rows shown (all up to pandas'
        ``display.max_rows``, else the first ``display.min_rows``), the index levels as leading
        columns, the columns that fit ``width`` under their short headers."""
        shown, _ = self._display(width, max_rows)
        return shown

    def _display(self, width: int, max_rows: int | None) -> tuple[pd.DataFrame, list[str]]:
        """The displayed strings and the names of the columns left out."""
        limit = pd.get_option("display.max_rows") if max_rows is None else max_rows
        rows = self
        if limit is not None and len(self) > limit:
            rows = self.head(max(pd.get_option("display.min_rows") or 10, 1))
        cells: dict[str, list[str]] = {}
        headers: dict[str, str] = {}
        names = [n if n is not None else "" for n in rows.index.names]
        plain = pd.DataFrame(rows)
        for i, name in enumerate(names):
            key = f"\0{i}"
            level = pd.Series(plain.index.get_level_values(i))
            kind = _kind(str(name), level)
            cells[key] = [_format_value(v, kind) for v in level]
            headers[key] = str(name)
        for column in plain.columns:
            values = plain[column]
            kind = _kind(str(column), values)
            cells[str(column)] = [_format_value(v, kind) for v in values]
            base = _base(str(column))
            suffix = str(column)[len(base) + 1 :] if base != column else ""
            headers[str(column)] = f"{_HEADERS.get(base, base)} {suffix}".strip()

        def cost(key: str) -> int:
            return max([len(headers[key]), *map(len, cells[key])]) + 2

        dropped: list[str] = []
        columns = [str(c) for c in plain.columns]
        total = sum(cost(k) for k in cells)
        droppable = list(columns)
        while total > width and len(droppable) > 1:
            victim = next(
                (
                    c
                    for rule in _DROP_ORDER
                    for c in droppable
                    if c == rule or (rule.endswith("_") and c.startswith(rule))
                ),
                droppable[-1],
            )
            group = [victim]
            for rule in _DROP_ORDER:
                if rule.endswith("_") and victim.startswith(rule):
                    group = [c for c in droppable if c.startswith(rule)]
                    break
            for column in group:
                droppable.remove(column)
                dropped.append(column)
                total -= cost(column)
        keep = [k for k in cells if k not in dropped]
        shown = pd.DataFrame({i: cells[k] for i, k in enumerate(keep)}, dtype=object)
        shown.columns = pd.Index([headers[k] for k in keep])
        return self._sparsify(shown, len(names)), [c for c in columns if c in dropped]

    @staticmethod
    def _sparsify(shown: pd.DataFrame, levels: int) -> pd.DataFrame:
        """Blank an outer index label repeated from the row above (as pandas shows a
        MultiIndex), for all but the innermost level."""
        if levels < 2 or shown.empty:
            return shown
        out = shown.copy()
        for level in range(levels - 1):
            column = out.iloc[:, level]
            previous = shown.iloc[:, : level + 1].shift(1)
            same = (shown.iloc[:, : level + 1] == previous).all(axis=1)
            out.iloc[:, level] = column.where(~same, "")
        return out

    def _footer(self, dropped: Sequence[str], shown_rows: int) -> str:
        notes = []
        if shown_rows < len(self):
            notes.append(f"first {shown_rows:,} of {len(self):,} rows")
        if dropped:
            notes.append(f"{len(dropped)} more columns: {', '.join(dropped)}")
        return textwrap.fill("; ".join(notes), DISPLAY_WIDTH - 2, subsequent_indent=" ")

    def __repr__(self) -> str:
        if self.empty:
            return pd.DataFrame.__repr__(self)
        shown, dropped = self._display(DISPLAY_WIDTH, None)
        levels = self.index.nlevels
        lines = []
        widths = [max([len(h), *map(len, shown.iloc[:, i])]) for i, h in enumerate(shown.columns)]
        for row in [list(shown.columns), *shown.itertuples(index=False, name=None)]:
            parts = [
                str(v).ljust(w) if i < levels else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(parts).rstrip())
        footer = self._footer(dropped, len(shown))
        return "\n".join([*lines, f"({footer})"] if footer else lines)

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        if self.empty:
            return pd.DataFrame(self).to_html()
        shown, dropped = self._display(DISPLAY_WIDTH, None)
        levels = self.index.nlevels
        plain = pd.DataFrame(self)
        full_index = plain.index.to_frame(index=False).astype(str).to_numpy()
        titles = [*plain.index.names, *(c for c in plain.columns if str(c) not in dropped)]
        index_class = ' class="tl-idx"'
        head = "".join(
            f'<th title="{html.escape(str(t))}"{index_class if i < levels else ""}>'
            f"{html.escape(str(h))}</th>"
            for i, (h, t) in enumerate(zip(shown.columns, titles, strict=True))
        )
        body = []
        for r, row in enumerate(shown.itertuples(index=False, name=None)):
            cells = []
            for i, value in enumerate(row):
                if i < levels:
                    full = html.escape(full_index[r][i])
                    cells.append(f'<th class="tl-idx" title="{full}">{html.escape(value)}</th>')
                else:
                    cells.append(f"<td>{html.escape(value)}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        footer = self._footer(dropped, len(shown))
        caption = f"<caption>{html.escape(footer)}</caption>" if footer else ""
        return (
            f'{_STYLE}<table class="tl-table">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )


_STYLE = (
    "<style>"
    ".tl-table{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums;"
    "margin:2px 0}"
    ".tl-table th,.tl-table td{padding:2px 8px;border:none;text-align:right!important;"
    "white-space:nowrap}"
    ".tl-table thead th{border-bottom:1px solid var(--jp-border-color1,#bbb);font-weight:600}"
    ".tl-table th.tl-idx{text-align:left!important}"
    ".tl-table tbody th{font-weight:normal}"
    ".tl-summary tbody th{text-align:left!important}"
    ".tl-table tbody tr:nth-child(odd){background:var(--jp-layout-color2,#f5f5f5)}"
    ".tl-table caption{caption-side:bottom;text-align:left;font-size:11px;"
    "color:var(--jp-ui-font-color2,#666);padding-top:2px}"
    "</style>"
)
