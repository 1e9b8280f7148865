"""Analyses behind ``df.traffic``: endpoint templates, summaries, duplicates, comparisons.

Endpoint templates replace the path segments that name one resource among many with a
placeholder, so that ``/users/17`` and ``/users/42`` both count under ``/users/{id}``. The
default rules (:data:`DEFAULT_SEGMENT_RULES`, first match wins) recognise numbers ``{id}``,
UUIDs ``{uuid}`` and hash-like tokens ``{hash}``: hex strings of 8 or more characters with
both digits and letters, and 20 or more letters, digits, ``_`` or ``-`` with at least one digit
and one letter. Templates are computed in Arrow once per distinct path.

JSON schema drift (:func:`json_shape`, :func:`shape_drift`) compares the *shapes* of JSON
bodies: every path to a value (``$.items[].price``) with the set of JSON types seen there
(``object``, ``array``, ``string``, ``number``, ``boolean``, ``null``; integers and floats are
both ``number``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import views

if TYPE_CHECKING:
    from ..matching import Matcher

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

DEFAULT_SEGMENT_RULES: tuple[SegmentRule, ...] = (
    ("{uuid}", r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    ("{id}", r"^[0-9]+$"),
    ("{hash}", (r"^[0-9a-fA-F]{8,}$", r"[0-9]", r"[a-fA-F]")),
    ("{hash}", (r"^[A-Za-z0-9_-]{20,}$", r"[0-9]", r"[A-Za-z]")),
)


def path_templates(paths: Any, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> Any:
    """The endpoint template of each path: an Arrow string array (or chunked array) in, an
    Arrow string array out; nulls stay null."""
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
    result = path_templates(pa.array([path], pa.string()), rules)[0].as_py()
    return str(result)


def endpoint_series(
    df: pd.DataFrame, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
) -> pd.Series[Any]:
    """The endpoint template of each row (categorical), from ``request_path`` (or the URL)."""
    paths: Any
    if "request_path" in df.columns:
        paths = pa.array(df["request_path"], pa.string(), from_pandas=True)
    else:
        urls = pa.array(df["request_url"], pa.string(), from_pandas=True)
        parts: Any = pc.extract_regex(urls, r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*(?P<path>[^?#]*)")
        path = parts.field("path")
        paths = pc.if_else(pc.equal(path, pa.scalar("")), "/", path)
    templates = path_templates(paths, rules).dictionary_encode()
    series: pd.Series[Any] = templates.to_pandas()
    series.index = df.index
    series.name = "endpoint"
    return series


def _need(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what} needs the columns {missing}; load the frame with them")


def _status_flags(df: pd.DataFrame) -> pd.DataFrame:
    status = df["response_status"].astype("Float64")
    failed = status.isna().to_numpy(dtype=bool)
    values = status.to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(
        {
            "failed": failed,
            "c4xx": (values >= 400) & (values < 500),
            "c5xx": values >= 500,
        },
        index=df.index,
    )


def summary(df: pd.DataFrame) -> pd.Series[Any]:
    """See :meth:`TrafficAccessor.summary`."""
    _need(
        df,
        ["started_at", "elapsed_ms", "request_host", "response_status", "response_body_size"],
        "summary()",
    )
    n = len(df)
    flags = _status_flags(df)
    status = df["response_status"]
    classes = {}
    for low in (100, 200, 300, 400, 500):
        classes[f"status_{low // 100}xx"] = int(((status >= low) & (status < low + 100)).sum())
    elapsed = df["elapsed_ms"]
    quantiles = elapsed.quantile([0.5, 0.9, 0.99]) if n else pd.Series([np.nan] * 3)
    endpoints = (
        len(
            pd.DataFrame(
                {"m": df["request_method"].astype(str), "e": endpoint_series(df).astype(str)}
            ).drop_duplicates()
        )
        if n
        else 0
    )
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
        "truncated": int(df["truncated"].sum()) if "truncated" in df.columns else 0,
        "error_rate": float((flags["failed"] | flags["c4xx"] | flags["c5xx"]).mean()) if n else 0.0,
        "p50_ms": float(quantiles.iloc[0]),
        "p90_ms": float(quantiles.iloc[1]),
        "p99_ms": float(quantiles.iloc[2]),
        "max_ms": float(elapsed.max()) if n else np.nan,
        "request_bytes": int(df["request_body_size"].sum())
        if "request_body_size" in df.columns
        else 0,
        "response_bytes": int(df["response_body_size"].sum()),
        "repeated_requests": repeats,
    }
    return pd.Series(values, name="summary", dtype=object)


def _group_keys(
    df: pd.DataFrame, rules: Sequence[SegmentRule], by_host: bool
) -> tuple[list[pd.Series[Any]], list[str]]:
    keys: list[pd.Series[Any]] = []
    names: list[str] = []
    if by_host:
        keys.append(df["request_host"].astype(str).rename("host"))
        names.append("host")
    keys.append(df["request_method"].astype(str).rename("method"))
    keys.append(endpoint_series(df, rules).astype(str))
    names += ["method", "endpoint"]
    return keys, names


def endpoints(
    df: pd.DataFrame,
    *,
    by_host: bool = False,
    rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
) -> pd.DataFrame:
    """See :meth:`TrafficAccessor.endpoints`."""
    _need(
        df,
        ["elapsed_ms", "response_status", "response_body_size", "request_body_size"],
        "endpoints()",
    )
    keys, names = _group_keys(df, rules, by_host)
    flags = _status_flags(df)
    data = pd.DataFrame(
        {
            "elapsed_ms": df["elapsed_ms"].to_numpy(),
            "failed": flags["failed"].to_numpy(),
            "c4xx": flags["c4xx"].to_numpy(),
            "c5xx": flags["c5xx"].to_numpy(),
            "request_bytes": df["request_body_size"].to_numpy(dtype="float64"),
            "response_bytes": df["response_body_size"].to_numpy(dtype="float64"),
        }
    )
    for key in keys:
        data[key.name] = key.to_numpy()
    grouped = data.groupby(names, sort=True, observed=True)
    latency = grouped["elapsed_ms"]
    out = pd.DataFrame({"count": grouped.size()})
    quantiles = latency.quantile(np.array([0.5, 0.9, 0.99])).unstack()
    out["p50_ms"] = quantiles[0.5]
    out["p90_ms"] = quantiles[0.9]
    out["p99_ms"] = quantiles[0.99]
    out["mean_ms"] = latency.mean()
    out["max_ms"] = latency.max()
    out["errors_4xx"] = grouped["c4xx"].sum().astype("int64")
    out["errors_5xx"] = grouped["c5xx"].sum().astype("int64")
    out["failed"] = grouped["failed"].sum().astype("int64")
    out["error_rate"] = (out["errors_4xx"] + out["errors_5xx"] + out["failed"]) / out["count"]
    out["server_error_rate"] = (out["errors_5xx"] + out["failed"]) / out["count"]
    out["request_bytes_mean"] = grouped["request_bytes"].mean()
    out["response_bytes_mean"] = grouped["response_bytes"].mean()
    out["response_bytes_max"] = grouped["response_bytes"].max().astype("int64")
    out["response_bytes_total"] = grouped["response_bytes"].sum().astype("int64")
    out["count"] = out["count"].astype("int64")
    return out.sort_values("count", ascending=False, kind="stable")


def duplicates(
    df: pd.DataFrame, key: str | Sequence[str] | Matcher = "request_key"
) -> pd.DataFrame:
    """See :meth:`TrafficAccessor.duplicates`."""
    from ..matching import Matcher

    _need(
        df,
        ["started_at", "elapsed_ms", "response_status", "response_body_size", "request_body_size"],
        "duplicates()",
    )
    if isinstance(key, Matcher):
        from .convert import frame_exchanges

        keys = pd.Series([key.key(e) for e in frame_exchanges(df)], index=df.index)
    elif isinstance(key, str):
        _need(df, [key], "duplicates()")
        keys = df[key].astype(str)
    else:
        columns = list(key)
        _need(df, columns, "duplicates()")
        keys = df[columns].astype(str).agg("\x1f".join, axis=1)
    truncated = (
        df["truncated"].to_numpy(dtype=bool)
        if "truncated" in df.columns
        else np.zeros(len(df), dtype=bool)
    )
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
        columns = ["request_method", "request_url", "count", "repeats", "saved_ms", "saved_bytes"]
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        empty.index.name = "key"
        return empty
    # A cache answers a repeat once an earlier exchange with the same key could be served:
    # a response that arrived complete (failed and truncated exchanges are never served).
    servable_before = data.groupby("key", sort=False)["servable"].cumsum() - data["servable"]
    data["hit"] = servable_before.to_numpy() > 0
    data["saved_ms"] = np.where(data["hit"], data["elapsed_ms"], 0.0)
    data["saved_bytes"] = np.where(data["hit"], data["bytes"], 0)
    grouped = data.groupby("key", sort=False)
    out = pd.DataFrame(
        {
            "request_method": grouped["method"].first(),
            "request_url": grouped["url"].first(),
            "count": grouped.size().astype("int64"),
            "repeats": grouped["hit"].sum().astype("int64"),
            "saved_ms": grouped["saved_ms"].sum(),
            "saved_bytes": grouped["saved_bytes"].sum().astype("int64"),
            "first_at": grouped["started_at"].min(),
            "last_at": grouped["started_at"].max(),
        }
    )
    out.index.name = "key"
    return out.sort_values(["saved_ms", "count"], ascending=False, kind="stable")


# -- JSON shapes ---------------------------------------------------------------------------------
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def json_shape(
    doc: Any, shape: dict[str, set[str]] | None = None, path: str = "$"
) -> dict[str, set[str]]:
    """Every path in a JSON document with the types seen there (merged into ``shape``).

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


def _endpoint_shapes(
    df: pd.DataFrame, keys: pd.Series[Any], sample: int
) -> dict[Any, dict[str, set[str]]]:
    """JSON response shapes per endpoint, from up to ``sample`` successful (2xx) JSON bodies
    each: error bodies have shapes of their own, and the status mix already shows them."""
    status = df["response_status"].to_numpy(dtype="float64", na_value=np.nan)
    rows = (status >= 200) & (status < 300)
    if "response_content_type" in df.columns:
        content_type = df["response_content_type"].astype(str).str.lower()
        rows &= content_type.str.contains("json", regex=False).to_numpy(dtype=bool)
    chosen = df[rows]
    chosen_keys = keys[rows]
    if chosen.empty:
        return {}
    position = chosen_keys.groupby(chosen_keys, sort=False).cumcount()
    chosen = chosen[position.to_numpy() < sample]
    chosen_keys = chosen_keys[position.to_numpy() < sample]
    docs = views.json_values(chosen)
    shapes: dict[Any, dict[str, set[str]]] = {}
    for key, doc in zip(chosen_keys.tolist(), docs.tolist(), strict=True):
        if doc is not None:
            json_shape(doc, shapes.setdefault(key, {}))
    return shapes


def _side_stats(
    df: pd.DataFrame, rules: Sequence[SegmentRule], by_host: bool, sample: int
) -> tuple[pd.DataFrame, dict[Any, dict[str, set[str]]]]:
    stats = endpoints(df, by_host=by_host, rules=rules)
    keys, names = _group_keys(df, rules, by_host)
    key_frame = pd.DataFrame({k.name: k.to_numpy() for k in keys}, index=df.index)
    tuples = pd.Series(list(key_frame.itertuples(index=False, name=None)), index=df.index)
    answered = df["response_status"].notna().to_numpy(dtype=bool)
    counted = key_frame[answered].assign(status=df["response_status"][answered].astype("int64"))
    mixes: dict[Any, dict[int, int]] = {}
    sizes = counted.groupby([*names, "status"], sort=True).size()
    for index, count in sizes.items():
        assert isinstance(index, tuple)
        mixes.setdefault(index[:-1], {})[int(index[-1])] = int(count)
    stats["statuses"] = pd.Series([mixes.get(k, {}) for k in stats.index], index=stats.index)
    return stats, _endpoint_shapes(df, tuples, sample)


def compare(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    labels: tuple[str, str] = ("a", "b"),
    by_host: bool = False,
    sample: int = 100,
    rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
) -> pd.DataFrame:
    """See :meth:`TrafficAccessor.compare`."""
    la, lb = labels
    if la == lb:
        raise ValueError("labels must differ")
    stats_a, shapes_a = _side_stats(a, rules, by_host, sample)
    stats_b, shapes_b = _side_stats(b, rules, by_host, sample)
    metrics = ["count", "error_rate", "p50_ms", "p90_ms", "response_bytes_mean", "statuses"]
    left = stats_a[metrics].add_suffix(f"_{la}")
    right = stats_b[metrics].add_suffix(f"_{lb}")
    out = left.join(right, how="outer", sort=True)
    for label in (la, lb):
        out[f"count_{label}"] = out[f"count_{label}"].fillna(0).astype("int64")
        out[f"statuses_{label}"] = pd.Series(
            [v if isinstance(v, dict) else {} for v in out[f"statuses_{label}"]], index=out.index
        )
    out["p50_ratio"] = out[f"p50_ms_{lb}"] / out[f"p50_ms_{la}"]
    added: list[list[str]] = []
    removed: list[list[str]] = []
    changed: list[list[str]] = []
    for key in out.index:
        before, after = shapes_a.get(key), shapes_b.get(key)
        if before is None or after is None:
            added.append([])
            removed.append([])
            changed.append([])
            continue
        plus, minus, types = shape_drift(before, after)
        added.append(plus)
        removed.append(minus)
        changed.append(types)
    out["fields_added"] = pd.Series(added, index=out.index, dtype=object)
    out["fields_removed"] = pd.Series(removed, index=out.index, dtype=object)
    out["types_changed"] = pd.Series(changed, index=out.index, dtype=object)
    out["schema_changed"] = [
        bool(x or y or z) for x, y, z in zip(added, removed, changed, strict=True)
    ]
    order = [
        f"count_{la}",
        f"count_{lb}",
        f"error_rate_{la}",
        f"error_rate_{lb}",
        f"statuses_{la}",
        f"statuses_{lb}",
        f"p50_ms_{la}",
        f"p50_ms_{lb}",
        "p50_ratio",
        f"p90_ms_{la}",
        f"p90_ms_{lb}",
        f"response_bytes_mean_{la}",
        f"response_bytes_mean_{lb}",
        "schema_changed",
        "fields_added",
        "fields_removed",
        "types_changed",
    ]
    return out[order]
