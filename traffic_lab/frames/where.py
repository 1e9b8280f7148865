"""Row predicates over a capture: :class:`Where`, compiled to a ``pyarrow.compute`` Expression.

``where=`` is spelled the same way everywhere (loading frames, secret scans, rewrites): a
:class:`Where`, a ``dict`` of its fields, or an Expression over the capture's columns. It is
pushed down to the Parquet files: a time range prunes day partitions and row groups, and
``response_status`` has row-group statistics too (hosts and methods match without case, so
their statistics cannot prune).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "StatusFilter",
    "StatusSpec",
    "Where",
    "WhereArg",
    "as_expression",
    "as_wheres",
    "glob_to_regex",
    "parse_status",
    "rows_where",
]

#: What ``Where(status=...)`` accepts: a code, a class like ``"5xx"``, a ``range``, or codes.
StatusSpec: TypeAlias = int | str | range | Iterable[int]
#: What ``where=`` accepts wherever it appears.
WhereArg: TypeAlias = "Where | Mapping[str, Any] | pc.Expression | None"

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_GLOB_CHARS = frozenset("*?[")
# A glob's parts: ``**``, ``*``, ``?``, a character class, a run of literal text, a lone ``[``.
_GLOB_PART = re.compile(r"\*\*|\*|\?|\[!?[^\]]*\]|[^*?\[]+|\[")
_GLOB_WILDCARDS = {"**": ".*", "*": "[^/]*", "?": "[^/]"}


def glob_to_regex(pattern: str) -> str:
    """An anchored RE2 regular expression for a path glob.

    ``*`` matches within one path segment (not ``/``), ``**`` matches across segments, ``?``
    matches one character other than ``/``, and ``[...]`` is a character class.

    Examples
    --------
    >>> glob_to_regex("/users/*")
    '^/users/[^/]*$'
    >>> glob_to_regex("/api/**/image.png")
    '^/api/.*/image\\\\.png$'
    """

    def part(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in _GLOB_WILDCARDS:
            return _GLOB_WILDCARDS[token]
        if len(token) > 1 and token[0] == "[":
            return f"[^{token[2:]}" if token[1] == "!" else token
        return re.escape(token)

    return f"^{_GLOB_PART.sub(part, pattern)}$"


def _as_time(value: datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"Where({name}=...) takes a datetime or an ISO 8601 string")
    if value.tzinfo is None:
        raise ValueError(f"Where({name}=...) must be timezone-aware, e.g. 2026-03-01T12:00Z")
    return value.astimezone(UTC)


def _day(moment: datetime) -> int:
    return moment.year * 10000 + moment.month * 100 + moment.day


def _strings(value: str | Iterable[str], name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        values: tuple[Any, ...] = (value,)
    elif isinstance(value, Iterable):
        values = tuple(value)
    else:
        values = ()
    if not values or not all(isinstance(v, str) for v in values):
        raise TypeError(f"Where({name}=...) takes a string or a non-empty collection of strings")
    return values


def _text_match(field: str, values: Sequence[str], *, fold: str | None = None) -> pc.Expression:
    """Equality or, for globs, a regex match. ``fold`` (``"lower"``/``"upper"``, the case the
    values were normalised to) compares without case: the column's values are folded too,
    since a capture may store ``API.example`` or ``get`` (imported from a HAR, made by hand)."""
    column = pc.field(field)
    globs = [v for v in values if _GLOB_CHARS & set(v)]
    exact = [v for v in values if v not in globs]
    parts = [
        pc.match_substring_regex(column, pattern=glob_to_regex(glob), ignore_case=fold is not None)
        for glob in globs
    ]
    if exact:
        folded: Any = column
        if fold is not None:
            folded = pc.utf8_lower(column) if fold == "lower" else pc.utf8_upper(column)
        parts.insert(0, folded == exact[0] if len(exact) == 1 else folded.isin(exact))
    return functools.reduce(operator.or_, parts)


_STATUS_TOKEN = re.compile(r"([1-9])xx|(\d{1,3})|(\d{1,3})-(\d{1,3})|(failed|error)")
_STATUS_HELP = (
    "use a code (404), a class (5xx), a range (500-599), 'failed' (no response), "
    "or several separated by commas ('4xx,5xx,failed')"
)


@dataclasses.dataclass(frozen=True)
class StatusFilter:
    """A parsed status filter: inclusive code ranges, and whether failed exchanges match.

    The one grammar for status filters in traffic_lab: ``Where(status=...)``, the browser's
    status box and the command line's ``--status`` all parse with :func:`parse_status`.
    """

    ranges: tuple[tuple[int, int], ...] = ()
    failed: bool = False

    def expression(self) -> pc.Expression:
        """The filter over a capture's ``response_status`` column."""
        field = pc.field("response_status")
        parts: list[pc.Expression] = []
        for low, high in self.ranges:
            parts.append(field == low if low == high else (field >= low) & (field <= high))
        if self.failed:
            parts.append(field.is_null())
        return functools.reduce(operator.or_, parts) if parts else pc.scalar(False)

    def mask(self, status: np.ndarray[Any, Any], missing: int = -1) -> np.ndarray[Any, Any]:
        """Which entries of an integer status array match (``missing``: no response).

        Examples
        --------
        >>> s = np.array([200, 404, 503, -1])
        >>> parse_status("4xx,5xx").mask(s).tolist(), parse_status("failed").mask(s).tolist()
        ([False, True, True, False], [False, False, False, True])
        """
        mask = np.zeros(len(status), dtype=bool)
        for low, high in self.ranges:
            mask |= (status >= low) & (status <= high)
        if self.failed:
            mask |= status == missing
        return mask


def parse_status(spec: StatusSpec) -> StatusFilter:
    """Parse a status filter: a code, ``"5xx"``, ``"500-599"``, ``"4xx,5xx"``, ``"failed"``
    (also spelled ``"error"``: exchanges that got no response), a ``range`` or a collection of
    codes. Raises ``ValueError`` (``TypeError`` for a value of the wrong type) saying what is
    accepted.

    Examples
    --------
    >>> parse_status("4xx, 500-502,failed")
    StatusFilter(ranges=((400, 499), (500, 502)), failed=True)
    >>> parse_status(range(200, 300)), parse_status([301, 302]).ranges
    (StatusFilter(ranges=((200, 299),), failed=False), ((301, 301), (302, 302)))
    """
    if isinstance(spec, bool):
        raise TypeError(f"Where(status={spec!r}): {_STATUS_HELP}")
    if isinstance(spec, int):
        return StatusFilter(((spec, spec),))
    if isinstance(spec, range):
        if spec.step == 1:
            return StatusFilter(((spec.start, spec.stop - 1),)) if len(spec) else StatusFilter()
        return StatusFilter(tuple((c, c) for c in spec))
    if isinstance(spec, str):
        ranges: list[tuple[int, int]] = []
        failed = False
        tokens = [t.strip().lower() for t in spec.split(",")]
        if not any(tokens):
            raise ValueError(f"Where(status={spec!r}) is empty: {_STATUS_HELP}")
        for token in filter(None, tokens):
            match = _STATUS_TOKEN.fullmatch(token)
            if match is None:
                raise ValueError(f"Where(status={spec!r}): {token!r} is not valid; {_STATUS_HELP}")
            klass, code, low, high, word = match.groups()
            if klass is not None:
                ranges.append((int(klass) * 100, int(klass) * 100 + 99))
            elif code is not None:
                ranges.append((int(code), int(code)))
            elif word is not None:
                failed = True
            elif int(low) > int(high):
                raise ValueError(f"Where(status={spec!r}): {token!r} runs backwards")
            else:
                ranges.append((int(low), int(high)))
        return StatusFilter(tuple(ranges), failed)
    if isinstance(spec, Iterable):
        codes = list(spec)
        if codes and all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            return StatusFilter(tuple((c, c) for c in codes))
    raise TypeError(f"Where(status={spec!r}): {_STATUS_HELP}")


@dataclasses.dataclass(frozen=True)
class Where:
    """Which exchanges to read from a capture; every field given must hold (AND).

    - ``host``: a host, a glob (``"*.example.com"``) or several (any may match);
      ``method``: one or several (both case-insensitive).
    - ``status``: a code (``404``), a class (``"5xx"``), a range (``"500-599"``), several
      separated by commas, ``"failed"`` (no response), a ``range`` (stop excluded) or codes:
      the grammar of :func:`parse_status`.
    - ``start`` <= started_at < ``end``: timezone-aware datetimes or ISO 8601 strings with an
      offset (``"2026-03-01T12:00Z"``).
    - ``path``: a glob or several (``*`` stays within a segment, ``**`` crosses segments); the
      query string is not part of the path.
    - ``failed``: ``True`` for exchanges that failed in the transport, ``False`` for the others.
    - ``tags``: tag values that must all match (``{"session": "before"}``; kept as sorted pairs).

    Examples
    --------
    >>> import traffic_lab as tl
    >>> tl.Where(status="5xx").expression()
    <pyarrow.compute.Expression ((response_status >= 500) and (response_status <= 599))>
    >>> w = tl.Where(host="api.example", status="5xx", path="/users/*", start="2026-03-01T00:00Z")
    >>> tl.Where(method=["get", "head"]).method
    ('GET', 'HEAD')
    """

    host: str | tuple[str, ...] | None = None
    method: str | tuple[str, ...] | None = None
    status: StatusSpec | None = None
    start: datetime | str | None = None
    end: datetime | str | None = None
    path: str | tuple[str, ...] | None = None
    failed: bool | None = None
    tags: Mapping[str, str] | tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name, normal in (("host", str.lower), ("method", str.upper), ("path", str)):
            if getattr(self, name) is not None:
                set_(self, name, tuple(normal(v) for v in _strings(getattr(self, name), name)))
        for name in ("start", "end"):
            if getattr(self, name) is not None:
                set_(self, name, _as_time(getattr(self, name), name))
        if self.status is not None and not isinstance(self.status, int | str | range):
            set_(self, "status", tuple(self.status))
        if self.status is not None:
            parse_status(self.status)  # fail now, not when the filter runs
        if self.tags is not None:
            # Kept as sorted pairs so that a Where stays hashable.
            set_(self, "tags", tuple(sorted(dict(self.tags).items())))

    def expression(self, *, partitioned: bool = False) -> pc.Expression | None:
        """The filter as a ``pyarrow.compute`` Expression, or ``None`` when nothing is filtered.

        ``partitioned=True`` also constrains the ``day`` partition column of a Parquet capture's
        dataset from ``start``/``end``, so whole files are skipped without being opened.
        """
        parts: list[pc.Expression] = []
        if self.host is not None:
            parts.append(_text_match("request_host", self.host, fold="lower"))
        if self.method is not None:
            parts.append(_text_match("request_method", self.method, fold="upper"))
        if self.status is not None:
            parts.append(parse_status(self.status).expression())
        # start <= started_at < end; whole days for the partition column.
        bounds: Any = ((self.start, operator.ge, operator.ge), (self.end, operator.lt, operator.le))
        for moment, on_time, on_day in bounds:
            if isinstance(moment, datetime):
                parts.append(on_time(pc.field("started_at"), pa.scalar(moment, _TIMESTAMP)))
                if partitioned:
                    parts.append(on_day(pc.field("day"), _day(moment)))
        if self.path is not None:
            parts.append(_text_match("request_path", self.path))
        if self.failed is not None:
            valid: Any = pc.field("error_type").is_valid()
            parts.append(valid if self.failed else pc.invert(valid))
        for name, value in dict(self.tags or {}).items():
            parts.append(pc.map_lookup(pc.field("tags"), pa.scalar(name), "first") == value)
        return functools.reduce(operator.and_, parts) if parts else None

    def predicate(self, t: Any) -> Any:
        """The filter as an Ibis predicate over the capture columns of table ``t`` (``None``
        when nothing is filtered), for engines that read the files themselves (DuckDB,
        Spark): the same rows as :meth:`expression` (a test checks both)."""
        import ibis

        parts: list[Any] = []

        def text(column: Any, values: Sequence[str], *, fold: str | None = None) -> Any:
            globs = [v for v in values if _GLOB_CHARS & set(v)]
            exact = [v for v in values if v not in globs]
            folded = column.lower() if fold == "lower" else column.upper() if fold else column
            options = [folded.isin(exact)] if exact else []
            for glob in globs:
                options.append(column.re_search(("(?i)" if fold else "") + glob_to_regex(glob)))
            return functools.reduce(operator.or_, options)

        if self.host is not None:
            parts.append(text(t.request_host, self.host, fold="lower"))
        if self.method is not None:
            parts.append(text(t.request_method, self.method, fold="upper"))
        if self.status is not None:
            status = parse_status(self.status)
            column = t.response_status
            options = [(column >= low) & (column <= high) for low, high in status.ranges]
            if status.failed:
                options.append(column.isnull())
            parts.append(
                functools.reduce(operator.or_, options) if options else ibis.literal(False)
            )
        if self.start is not None:
            parts.append(t.started_at >= ibis.literal(self.start))
        if self.end is not None:
            parts.append(t.started_at < ibis.literal(self.end))
        if self.path is not None:
            parts.append(text(t.request_path, self.path))
        if self.failed is not None:
            parts.append(t.error_type.notnull() if self.failed else t.error_type.isnull())
        for name, value in dict(self.tags or {}).items():
            parts.append(t.tags.get(name) == value)
        return functools.reduce(operator.and_, parts) if parts else None


def as_wheres(where: WhereArg) -> tuple[Where, ...] | None:
    """``where`` as :class:`Where` objects for engines that read the files themselves: ``()``
    for no filter, ``None`` for an Expression (which only pyarrow can apply). Raises as
    :func:`as_expression` does for anything else."""
    if where is None:
        return ()
    if isinstance(where, Where):
        return (where,)
    if isinstance(where, Mapping):
        return (_from_fields(where),)
    if isinstance(where, pc.Expression):
        return None
    raise _not_a_filter(where)


def rows_where(t: Any, wheres: Sequence[Where], cutoff: int | None) -> Any:
    """Ibis table ``t`` (capture columns, read from a capture's live files) with the clear
    ``cutoff`` (µs since the epoch: earlier rows are hidden) and every one of ``wheres``."""
    import ibis

    predicates = [w.predicate(t) for w in wheres]
    if cutoff is not None:
        moment = pa.scalar(cutoff, _TIMESTAMP).as_py()
        predicates.append(t.started_at >= ibis.literal(moment))
    kept = [p for p in predicates if p is not None]
    return t.filter(functools.reduce(operator.and_, kept)) if kept else t


def as_expression(where: WhereArg, *, partitioned: bool = False) -> pc.Expression | None:
    """Compile any accepted ``where=`` value to an Expression (``None``: no filter).

    Examples
    --------
    >>> as_expression({"status": 404})
    <pyarrow.compute.Expression (response_status == 404)>
    >>> as_expression(None) is None
    True
    """
    if where is None:
        return None
    if isinstance(where, pc.Expression):
        return where
    if isinstance(where, Where):
        return where.expression(partitioned=partitioned)
    if isinstance(where, Mapping):
        return _from_fields(where).expression(partitioned=partitioned)
    raise _not_a_filter(where)


def _from_fields(where: Mapping[str, Any]) -> Where:
    """A :class:`Where` from a dict of its fields (``TypeError`` naming an unknown key)."""
    fields = {f.name for f in dataclasses.fields(Where)}
    unknown = sorted(set(where) - fields)
    if unknown:
        raise TypeError(f"unknown where= keys {unknown}; valid keys: {sorted(fields)}")
    return Where(**where)


def _not_a_filter(where: object) -> TypeError:
    return TypeError(
        "where= takes a traffic_lab.Where, a dict of its fields or a pyarrow.compute "
        f"Expression, not {type(where).__name__}"
    )
