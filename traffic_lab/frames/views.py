"""Decoded views of a traffic frame's rows (``df.traffic.body()``, ``.text()``, ``.json()``,
``.headers()``, ``.header(name)``): wire bytes decoded on demand, for the frame's rows only,
fetching bodies and headers the frame did not load from its capture (or from ``source=``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..wire import content_charset, content_codings, decode_body, header_value
from .convert import frame_columns

__all__ = [
    "Side",
    "body",
    "decode_header",
    "header",
    "header_pairs",
    "json_values",
    "text",
]

#: Which message of the exchange a view looks at.
Side = Literal["request", "response"]


def decode_header(stored: str) -> str:
    """A stored header string as httpx shows it: UTF-8 when its bytes are UTF-8.

    Captures store each header byte as one character (ISO-8859-1), so any bytes survive.

    Examples
    --------
    >>> decode_header("caf\\xc3\\xa9"), decode_header("caf\\xe9")
    ('café', 'café')
    """
    if stored.isascii():
        return stored
    try:
        return stored.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return stored


def _pairs(cell: Any) -> list[tuple[str, str]]:
    return [(item["name"], item["value"]) for item in cell or ()]


def _side(df: pd.DataFrame, side: Side, source: Any, *parts: str) -> pa.Table:
    """The ``{side}_{part}`` columns for the frame's rows."""
    if side not in ("request", "response"):
        raise ValueError(f"side must be 'request' or 'response', not {side!r}")
    return frame_columns(df, [f"{side}_{part}" for part in parts], source)


def _decoded(df: pd.DataFrame, side: Side, source: Any) -> Iterator[tuple[bytes | None, Any]]:
    """Per row: the body decoded from its Content-Encoding (``None`` if that fails), the headers."""
    table = _side(df, side, source, "body", "headers")
    for raw, cell in zip(table[0].to_pylist(), table[1].to_pylist(), strict=True):
        pairs = _pairs(cell)
        yield decode_body(raw or b"", content_codings(pairs)), pairs


def body(
    df: pd.DataFrame, side: Side = "response", *, decoded: bool = True, source: Any = None
) -> pd.Series[Any]:
    """Body bytes per row: decoded from their Content-Encoding (``None`` where that fails), or
    as stored on the wire with ``decoded=False``.

    Examples
    --------
    >>> import gzip, traffic_lab as tl
    >>> from traffic_lab.frames import to_pandas, views
    >>> from traffic_lab.testing import make_exchange
    >>> ex = make_exchange(response_headers={"Content-Encoding": "gzip"},
    ...                    response_body=gzip.compress(b'{"a": 1}'))
    >>> views.body(to_pandas([ex])).tolist()
    [b'{"a": 1}']
    """
    if decoded:
        values = [body for body, _ in _decoded(df, side, source)]
    else:
        values = [raw or b"" for raw in _side(df, side, source, "body")[0].to_pylist()]
    return pd.Series(values, index=df.index, name=f"{side}_body", dtype=object)


def text(df: pd.DataFrame, side: Side = "response", *, source: Any = None) -> pd.Series[Any]:
    """Body text per row: decoded bytes in the Content-Type charset (default UTF-8); ``None``
    for bodies that are not text in that charset (images) or do not decode.

    Examples
    --------
    >>> from traffic_lab.frames import to_pandas, views
    >>> from traffic_lab.testing import make_exchange
    >>> views.text(to_pandas([make_exchange(response_body=b"caf\\xc3\\xa9")])).tolist()
    ['café']
    """
    values: list[str | None] = []
    for decoded, pairs in _decoded(df, side, source):
        try:
            charset = content_charset(header_value(pairs, "content-type"))
            values.append(None if decoded is None else decoded.decode(charset))
        except UnicodeDecodeError:
            values.append(None)
    return pd.Series(values, index=df.index, name=f"{side}_text", dtype=object)


def json_values(df: pd.DataFrame, side: Side = "response", *, source: Any = None) -> pd.Series[Any]:
    """Parsed JSON per row (dicts, lists...); ``None`` for empty or non-JSON bodies.

    Examples
    --------
    >>> from traffic_lab.frames import to_pandas, views
    >>> from traffic_lab.testing import make_exchange
    >>> views.json_values(to_pandas([make_exchange(json={"id": 7})])).tolist()
    [{'id': 7}]
    """
    values: list[Any] = []
    for decoded, _ in _decoded(df, side, source):
        try:
            values.append(json.loads(decoded) if decoded else None)
        except (ValueError, UnicodeDecodeError):
            values.append(None)
    return pd.Series(values, index=df.index, name=f"{side}_json", dtype=object)


def header_pairs(
    df: pd.DataFrame, side: Side = "response", *, source: Any = None
) -> pd.Series[Any]:
    """Headers per row as an ordered list of ``(name, value)`` pairs, duplicates kept.

    Examples
    --------
    >>> from traffic_lab.frames import to_pandas, views
    >>> from traffic_lab.testing import make_exchange
    >>> ex = make_exchange(response_headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
    ...                    response_body=b"x")
    >>> views.header_pairs(to_pandas([ex])).iloc[0]
    [('Set-Cookie', 'a=1'), ('Set-Cookie', 'b=2'), ('Content-Length', '1')]
    """
    values = [
        [(decode_header(n), decode_header(v)) for n, v in _pairs(cell)]
        for cell in _side(df, side, source, "headers")[0].to_pylist()
    ]
    return pd.Series(values, index=df.index, name=f"{side}_headers", dtype=object)


def header(
    df: pd.DataFrame, name: str, side: Side = "response", *, source: Any = None
) -> pd.Series[Any]:
    """One header's value per row (case-insensitive name); repeated headers are joined with
    ``", "`` as ``httpx.Headers`` does; missing where the row lacks it. Computed in Arrow.

    Examples
    --------
    >>> from traffic_lab.frames import to_pandas, views
    >>> from traffic_lab.testing import make_exchange
    >>> ex = make_exchange(response_headers={"X-Trace": "abc"}, response_body=b"")
    >>> views.header(to_pandas([ex, make_exchange()]), "x-trace").tolist()
    ['abc', nan]
    """
    lists: Any = _side(df, side, source, "headers")[0].combine_chunks()
    n = len(lists)
    flat: Any = lists.flatten()
    parents = pc.list_parent_indices(lists)
    mask = pc.equal(pc.utf8_lower(flat.field("name")), pa.scalar(name.lower()))
    matched = pa.table({"row": parents.filter(mask), "value": flat.field("value").filter(mask)})
    grouped = matched.group_by("row", use_threads=False).aggregate([("value", "list")])
    rows = grouped.column("row").to_numpy()
    joined: Any = pc.binary_join(grouped.column("value_list"), ", ")
    index = np.full(n, -1, dtype=np.int64)
    index[rows] = np.arange(len(rows))
    positions = pa.array(index, mask=index < 0)
    result = joined.take(positions) if len(rows) else pa.nulls(n, pa.string())
    values = result.to_pandas()
    if not pc.all(pc.string_is_ascii(result)).as_py():
        values = values.map(lambda v: decode_header(v) if isinstance(v, str) else v)
    return values.set_axis(df.index).rename(name.lower())
