"""Analyses behind ``df.traffic``: endpoint templates, summaries, duplicates, comparisons.

Endpoint templates replace the path segments that name one resource among many with a
placeholder (``/users/17`` -> ``/users/{id}``), computed in Arrow once per distinct path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..matching import Matcher
from . import views
from .convert import frame_exchanges
from .display import Summary, TrafficTable, label_duplicates

__all__ = [
    "DEFAULT_SEGMENT_RULES",
    "SegmentRule",
    "compare",
    "duplicates",
    "endpoint_series",
    "endpoints",
    "json_shape",
    "path_template",
    "path_templates",
    "shape_drift",
    "summary",
]

#: A segment rule: the placeholder, and a regex (or several that must all match) that a whole
#: path segment must match to be replaced (RE2 syntax, as in ``pyarrow.compute``).
SegmentRule: TypeAlias = tuple[str, str | Sequence[str]]

#: Numbers ``{id}``, UUIDs ``{uuid}``, and hash-like tokens ``{hash}``: hex of 8+ characters, or
#: 20+ letters, digits, ``_`` or ``-``, with both digits and letters. The first match wins.
DEFAULT_SEGMENT_RULES: tuple[SegmentRule, ...] = (
    ("{uuid}", r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    ("{id}", r"^[0-9]+$"),
    ("{hash}", (r"^[0-9a-fA-F]{8,}$", r"[0-9]", r"[a-fA-F]")),
    ("{hash}", (r"^[A-Za-z0-9_-]{20,}$", r"[0-9]", r"[A-Za-z]")),
)


def path_templates(paths: Any, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> Any:
    """The endpoint template of each path (Arrow strings in and out; nulls stay null)."""
    if isinstance(paths, pa.ChunkedArray):
        paths = paths.combine_chunks() if paths.num_chunks else pa.array([], pa.string())
    encoded: Any = pc.dictionary_encode(paths)
    distinct = encoded.dictionary
    segments: Any = pc.split_pattern(distinct, "/")
    flat: Any = segments.flatten()
    done = pa.array(np.zeros(len(flat), dtype=bool))
    for placeholder, patterns in rules:
        regexes = [patterns] if isinstance(patterns, str) else list(patterns)
        hit = pc.invert(done)
        for regex in regexes:
            hit = pc.and_(hit, pc.match_substring_regex(flat, regex))
        flat = pc.if_else(hit, placeholder, flat)
        done = pc.or_(done, hit)
    rebuilt = pa.ListArray.from_arrays(segments.offsets, flat)
    templated: Any = pc.binary_join(rebuilt, "/")
    return templated.take(encoded.indices)


def path_template(path: str, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> str:
    """The endpoint template of one path.

    Examples
    --------
    >>> path_template("/api/users/42/orders/0c6f1a57-6c8e-4c5b-9a0e-2d3c4b5a6f70")
    '/api/users/{id}/orders/{uuid}'
    >>> path_template("/api/reports/3fa2b9c01e"), path_template("/api/decade/image.png")
    ('/api/reports/{hash}', '/api/decade/image.png')
    """
    return str(path_templates(pa.array([path], pa.string()), rules)[0].as_py())


def endpoint_series(
    df: pd.DataFrame, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
) -> pd.Series[Any]:
    """The endpoint template of each row (``/users/{id}``, categorical), from ``request_path``
    (or the URL)."""
    paths: Any
    if "request_path" in df.columns:
        paths = pa.array(df["request_path"], pa.string(), from_pandas=True)
    else:
        urls = pa.array(df["request_url"], pa.string(), from_pandas=True)
        parts: Any = pc.extract_regex(urls, r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*(?P<path>[^?#]*)")
        path = parts.field("path")
        paths = pc.if_else(pc.equal(path, pa.scalar("")), "/", path)
    series: pd.Series[Any] = path_templates(paths, rules).dictionary_encode().to_pandas()
    return series.set_axis(df.index).rename("endpoint")


def _need(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what} needs the columns {missing}; load the frame with them")


def _status_flags(df: pd.DataFrame) -> pd.DataFrame:
    status = df["response_status"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    flags = {"errors_4xx": (status >= 400) & (status < 500), "errors_5xx": status >= 500}
    return pd.DataFrame({**flags, "failed": np.isnan(status)}, index=df.index)


def _total(df: pd.DataFrame, column: str) -> int:
    return int(df[column].sum()) if column in df.columns else 0


def summary(df: pd.DataFrame) -> Summary:
    """Headline figures: counts, time span, status classes, error rate, latency, bytes.

    ``error_rate`` counts 4xx, 5xx and transport failures; ``repeated_requests`` counts rows
    whose ``request_key`` appeared earlier. Returns a :class:`~traffic_lab.frames.display.Summary`:
    a mapping of the exact figures (``s["error_rate"]``, ``s.to_series()``) that displays as a
    table with units.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> exs = [make_exchange(status_code=s, elapsed_ms=ms) for s, ms in [(200, 10), (500, 30)]]
    >>> s = tl.frames.to_pandas(exs).traffic.summary()
    >>> [s[k] for k in ("exchanges", "status_2xx", "status_5xx", "error_rate", "p50_ms")]
    [2, 1, 1, 0.5, 20.0]
    >>> print(s)  # doctest: +ELLIPSIS
    exchanges                      2
    first request                  2026-01-01 12:00:00.000 UTC
    ...
    error rate (4xx, 5xx, failed)  50.0 %
    latency p50                    20 ms
    ...
    """
    _need(
        df,
        ["started_at", "elapsed_ms", "request_host", "response_status", "response_body_size"],
        "summary()",
    )
    n = len(df)
    flags = _status_flags(df)
    status = df["response_status"]
    classes = {
        f"status_{c}xx": int(((status >= c * 100) & (status < c * 100 + 100)).sum())
        for c in range(1, 6)
    }
    elapsed = df["elapsed_ms"]
    quantiles = elapsed.quantile([0.5, 0.9, 0.99]) if n else pd.Series([np.nan] * 3)
    methods = df["request_method"].astype(str)
    endpoints = len(set(zip(methods, endpoint_series(df).astype(str), strict=True)))
    repeats = int(df["request_key"].duplicated().sum()) if "request_key" in df.columns else 0
    start: Any = df["started_at"].min() if n else pd.NaT
    end: Any = df["started_at"].max() if n else pd.NaT
    values: dict[str, Any] = {
        "exchanges": n,
        "start": start,
        "end": end,
        "duration": (end - start) if n else pd.NaT,
        "hosts": int(df["request_host"].nunique()),
        "endpoints": endpoints,
        **classes,
        "failed": int(flags["failed"].sum()),
        "truncated": _total(df, "truncated"),
        "error_rate": float(flags.any(axis=1).mean()) if n else 0.0,
        **{f"p{q}_ms": float(v) for q, v in zip((50, 90, 99), quantiles, strict=True)},
        "max_ms": float(elapsed.max()) if n else np.nan,
        "request_bytes": _total(df, "request_body_size"),
        "response_bytes": int(df["response_body_size"].sum()),
        "repeated_requests": repeats,
    }
    return Summary(values)


def _group_keys(df: pd.DataFrame, rules: Sequence[SegmentRule], by_host: bool) -> pd.DataFrame:
    """What endpoint tables group by: (``host``), ``method``, ``endpoint``."""
    keys = {"method": df["request_method"], "endpoint": endpoint_series(df, rules)}
    if by_host:
        keys = {"host": df["request_host"], **keys}
    return pd.DataFrame({k: v.astype(str).to_numpy() for k, v in keys.items()}, index=df.index)


def endpoints(
    df: pd.DataFrame,
    *,
    by_host: bool = False,
    rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
) -> pd.DataFrame:
    """Per endpoint (method and path template): counts, latency, errors, payload sizes.

    ``by_host`` groups by host too; ``rules`` are the segment rules for templates. Returns a
    frame indexed by (``method``, ``endpoint``), most requested first: ``count``, ``p50_ms``,
    ``p90_ms``, ``p99_ms`` (linear interpolation), ``mean_ms``, ``max_ms``, ``errors_4xx``,
    ``errors_5xx``, ``failed`` (transport errors), ``error_rate`` (all three over count),
    ``server_error_rate`` (5xx and failed), ``request_bytes_mean``, ``response_bytes_mean``,
    ``response_bytes_max``, ``response_bytes_total`` (wire sizes). The frame is a
    :class:`~traffic_lab.frames.display.TrafficTable`: numbers as computed, displayed rounded
    with units within a notebook's width.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> exs = [make_exchange(url=f"https://a.example/users/{i}", elapsed_ms=10 * i)
    ...        for i in range(1, 5)]
    >>> table = tl.frames.to_pandas(exs).traffic.endpoints()
    >>> table.loc[("GET", "/users/{id}"), ["count", "p50_ms", "error_rate"]].tolist()
    [4.0, 25.0, 0.0]
    >>> table[["count", "p50_ms", "error_rate"]]
    method  endpoint     count    p50  errors
    GET     /users/{id}      4  25 ms     0 %
    """
    _need(
        df,
        ["elapsed_ms", "response_status", "response_body_size", "request_body_size"],
        "endpoints()",
    )
    keys = _group_keys(df, rules, by_host)
    data = pd.concat([keys, _status_flags(df)], axis=1).assign(
        elapsed_ms=df["elapsed_ms"].to_numpy(),
        request_bytes=df["request_body_size"].to_numpy(dtype="float64"),
        response_bytes=df["response_body_size"].to_numpy(dtype="float64"),
    )
    grouped = data.groupby(list(keys.columns), sort=True, observed=True)
    latency = grouped["elapsed_ms"]
    out = pd.DataFrame({"count": grouped.size().astype("int64")})
    quantiles = latency.quantile(np.array([0.5, 0.9, 0.99])).unstack()
    for q in (50, 90, 99):  # an empty frame has no groups, hence no quantile columns
        out[f"p{q}_ms"] = quantiles[q / 100] if len(out) else np.nan
    out["mean_ms"] = latency.mean()
    out["max_ms"] = latency.max()
    for column in ("errors_4xx", "errors_5xx", "failed"):
        out[column] = grouped[column].sum().astype("int64")
    out["error_rate"] = (out["errors_4xx"] + out["errors_5xx"] + out["failed"]) / out["count"]
    out["server_error_rate"] = (out["errors_5xx"] + out["failed"]) / out["count"]
    out["request_bytes_mean"] = grouped["request_bytes"].mean()
    out["response_bytes_mean"] = grouped["response_bytes"].mean()
    out["response_bytes_max"] = grouped["response_bytes"].max().astype("int64")
    out["response_bytes_total"] = grouped["response_bytes"].sum().astype("int64")
    return TrafficTable(out.sort_values("count", ascending=False, kind="stable"))


def duplicates(
    df: pd.DataFrame, key: str | Sequence[str] | Matcher = "request_key"
) -> pd.DataFrame:
    """Requests repeated under the same key, and what a cache would have saved.

    ``key`` is a column (default ``request_key``, the capture matcher's key), several columns,
    or a :class:`~traffic_lab.Matcher` to key the requests afresh. Returns one row per repeated
    key, largest savings first, indexed by ``request`` (the first request's method and URL
    path and query, ``GET /api/users/42?x=1``, with the host when the rows span several:
    ``GET api.example/users/42``; two keys can share a line when their bodies differ):
    ``request_method``,
    ``request_url`` (of the first), ``count``, ``repeats`` (rows a cache would have answered:
    those after the first complete response for the key), ``saved_ms`` (their elapsed time),
    ``saved_bytes`` (their request and response body bytes), ``first_at``, ``last_at``,
    ``key``. A :class:`~traffic_lab.frames.display.TrafficTable`, as :func:`endpoints`.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> exs = [make_exchange(elapsed_ms=ms, response_body=b"12345") for ms in (40, 30, 20)]
    >>> table = tl.frames.to_pandas(exs).traffic.duplicates()
    >>> table[["count", "repeats", "saved_ms", "saved_bytes"]].to_dict("records")
    [{'count': 3, 'repeats': 2, 'saved_ms': 50.0, 'saved_bytes': 10}]
    >>> table.index.tolist()
    ['GET /items/1']
    """
    _need(
        df,
        ["started_at", "elapsed_ms", "response_status", "response_body_size", "request_body_size"],
        "duplicates()",
    )
    if isinstance(key, Matcher):
        keys = pd.Series([key.key(e) for e in frame_exchanges(df)], index=df.index)
    else:
        columns = [key] if isinstance(key, str) else list(key)
        _need(df, columns, "duplicates()")
        texts = df[columns].astype(str)
        keys = texts.iloc[:, 0] if len(columns) == 1 else texts.agg("\x1f".join, axis=1)
    truncated = df.get("truncated", pd.Series(False, index=df.index)).to_numpy(dtype=bool)
    data = pd.DataFrame(
        {
            "key": keys.to_numpy(),
            "started_at": df["started_at"].to_numpy(),
            "pos": np.arange(len(df)),
            "elapsed_ms": df["elapsed_ms"].to_numpy(),
            "bytes": (df["response_body_size"] + df["request_body_size"]).to_numpy(),
            "servable": df["response_status"].notna().to_numpy(dtype=bool) & ~truncated,
            "method": df["request_method"].astype(str).to_numpy(),
            "url": df["request_url"].astype(str).to_numpy(),
        }
    )
    counts = data["key"].map(data["key"].value_counts())
    data = data[counts.to_numpy() > 1].sort_values(["key", "started_at", "pos"], kind="stable")
    if data.empty:
        return label_duplicates(pd.DataFrame())
    # A cache answers a repeat once an earlier exchange with the same key could be served:
    # a response that arrived complete (failed and truncated exchanges are never served).
    servable_before = data.groupby("key", sort=False)["servable"].cumsum() - data["servable"]
    data["hit"] = servable_before.to_numpy() > 0
    data["saved_ms"] = np.where(data["hit"], data["elapsed_ms"], 0.0)
    data["saved_bytes"] = np.where(data["hit"], data["bytes"], 0)
    out = data.groupby("key", sort=False).agg(
        request_method=("method", "first"),
        request_url=("url", "first"),
        count=("pos", "size"),
        repeats=("hit", "sum"),
        saved_ms=("saved_ms", "sum"),
        saved_bytes=("saved_bytes", "sum"),
        first_at=("started_at", "min"),
        last_at=("started_at", "max"),
    )
    out = out.astype({"count": "int64", "repeats": "int64", "saved_bytes": "int64"})
    return label_duplicates(out.sort_values(["saved_ms", "count"], ascending=False, kind="stable"))


_JSON_TYPES = (
    (type(None), "null"),
    (bool, "boolean"),
    (int | float, "number"),
    (str, "string"),
    (dict, "object"),
    (list, "array"),
)


def _json_type(value: Any) -> str:
    return next((name for t, name in _JSON_TYPES if isinstance(value, t)), type(value).__name__)


def json_shape(
    doc: Any, shape: dict[str, set[str]] | None = None, path: str = "$"
) -> dict[str, set[str]]:
    """Every path in a JSON document with the types seen there (merged into ``shape``); integers
    and floats are both ``number``.

    Examples
    --------
    >>> for path, types in sorted(json_shape({"id": 1, "tags": ["a"], "owner": None}).items()):
    ...     print(path, sorted(types))
    $ ['object']
    $.id ['number']
    $.owner ['null']
    $.tags ['array']
    $.tags[] ['string']
    """
    out: dict[str, set[str]] = {} if shape is None else shape
    out.setdefault(path, set()).add(_json_type(doc))
    if isinstance(doc, dict):
        for key, value in doc.items():
            json_shape(value, out, f"{path}.{key}")
    elif isinstance(doc, list):
        for item in doc:
            json_shape(item, out, f"{path}[]")
    return out


def shape_drift(
    before: dict[str, set[str]], after: dict[str, set[str]]
) -> tuple[list[str], list[str], list[str]]:
    """Fields added, fields removed, and type changes (``"$.total: number -> string"``).

    Examples
    --------
    >>> shape_drift(json_shape({"a": 1, "b": 2}), json_shape({"a": "x", "c": 3}))
    (['$.c'], ['$.b'], ['$.a: number -> string'])
    """
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = [
        f"{p}: {'|'.join(sorted(before[p]))} -> {'|'.join(sorted(after[p]))}"
        for p in sorted(set(before) & set(after))
        if before[p] != after[p]
    ]
    return added, removed, changed


#: One side of a comparison: endpoint stats with a ``statuses`` column, and JSON shapes.
ComparedSide: TypeAlias = tuple[pd.DataFrame, dict[Any, dict[str, set[str]]]]


def endpoint_shapes(
    df: pd.DataFrame, keys: pd.Series[Any], sample: int
) -> dict[Any, dict[str, set[str]]]:
    """JSON response shapes per endpoint, from up to ``sample`` 2xx JSON bodies each (error
    bodies have shapes of their own, and the status mix already shows them)."""
    status = df["response_status"].to_numpy(dtype="float64", na_value=np.nan)
    rows = (status >= 200) & (status < 300)
    if "response_content_type" in df.columns:
        content_type = df["response_content_type"].astype(str).str.lower()
        rows &= content_type.str.contains("json", regex=False).to_numpy(dtype=bool)
    if not rows.any():
        return {}
    rows[rows] = keys[rows].groupby(keys[rows], sort=False).cumcount().to_numpy() < sample
    shapes: dict[Any, dict[str, set[str]]] = {}
    docs = views.json_values(df[rows]).tolist()
    for key, doc in zip(keys[rows].tolist(), docs, strict=True):
        if doc is not None:
            json_shape(doc, shapes.setdefault(key, {}))
    return shapes


def _side_stats(
    df: pd.DataFrame, rules: Sequence[SegmentRule], by_host: bool, sample: int
) -> ComparedSide:
    stats = endpoints(df, by_host=by_host, rules=rules)
    key_frame = _group_keys(df, rules, by_host)
    tuples = pd.Series(list(key_frame.itertuples(index=False, name=None)), index=df.index)
    answered = df["response_status"].notna().to_numpy(dtype=bool)
    counted = key_frame[answered].assign(status=df["response_status"][answered].astype("int64"))
    mixes: dict[Any, dict[int, int]] = {}
    sizes = counted.groupby([*key_frame.columns, "status"], sort=True).size()
    for index, count in sizes.items():
        assert isinstance(index, tuple)
        mixes.setdefault(index[:-1], {})[int(index[-1])] = int(count)
    stats["statuses"] = pd.Series([mixes.get(k, {}) for k in stats.index], index=stats.index)
    return stats, endpoint_shapes(df, tuples, sample)


def compare(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    labels: tuple[str, str] = ("a", "b"),
    by_host: bool = False,
    sample: int = 100,
    rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
) -> pd.DataFrame:
    """Compare this frame (``a``) with another (``b``), endpoint by endpoint.

    JSON schema drift compares the shapes of up to ``sample`` 2xx JSON responses per
    endpoint and side (bodies are fetched for those rows only). Returns a frame indexed like
    :func:`endpoints`, endpoints of both sides; columns, with the ``labels`` as suffixes:
    ``count_*``, ``error_rate_*``, ``statuses_*`` (status code to count; transport failures count
    in ``error_rate`` only), ``p50_ms_*``, ``p50_ratio`` (b over a), ``p90_ms_*``,
    ``response_bytes_mean_*``, ``schema_changed``, ``fields_added``, ``fields_removed`` (JSON
    paths such as ``$.items[].price``) and ``types_changed`` (``"$.total: number -> string"``).

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> a = tl.frames.to_pandas([make_exchange(json={"id": 1, "name": "x"})])
    >>> b = tl.frames.to_pandas([make_exchange(json={"id": "1", "email": "e"})])
    >>> row = a.traffic.compare(b).iloc[0]
    >>> row.fields_added, row.fields_removed, row.types_changed
    (['$.email'], ['$.name'], ['$.id: number -> string'])
    """
    if labels[0] == labels[1]:
        raise ValueError("labels must differ")
    return compare_sides(
        _side_stats(a, rules, by_host, sample), _side_stats(b, rules, by_host, sample), labels
    )


def compare_sides(a: ComparedSide, b: ComparedSide, labels: tuple[str, str]) -> pd.DataFrame:
    """:func:`compare`'s table from each side's endpoint stats (:func:`endpoints` with a
    ``statuses`` column) and JSON shapes per endpoint (:func:`endpoint_shapes`), however each
    side was computed (in pandas here, by the engine over files in ``open_capture``)."""
    (stats_a, shapes_a), (stats_b, shapes_b) = a, b
    la, lb = labels
    metrics = ["count", "error_rate", "statuses", "p50_ms", "p90_ms", "response_bytes_mean"]
    left, right = stats_a[metrics].add_suffix(f"_{la}"), stats_b[metrics].add_suffix(f"_{lb}")
    out = left.join(right, how="outer", sort=True)
    for label in (la, lb):
        out[f"count_{label}"] = out[f"count_{label}"].fillna(0).astype("int64")
        out[f"statuses_{label}"] = pd.Series(
            [v if isinstance(v, dict) else {} for v in out[f"statuses_{label}"]], index=out.index
        )
    out["p50_ratio"] = out[f"p50_ms_{lb}"] / out[f"p50_ms_{la}"]
    drifts = [
        shape_drift(shapes_a[key], shapes_b[key])
        if key in shapes_a and key in shapes_b
        else ([], [], [])
        for key in out.index
    ]
    drift_columns = ["fields_added", "fields_removed", "types_changed"]
    for i, column in enumerate(drift_columns):
        out[column] = pd.Series([d[i] for d in drifts], index=out.index, dtype=object)
    out["schema_changed"] = [any(d) for d in drifts]
    order = [f"{metric}_{label}" for metric in metrics for label in labels]
    order.insert(order.index(f"p50_ms_{lb}") + 1, "p50_ratio")
    return TrafficTable(out[[*order, "schema_changed", *drift_columns]])
