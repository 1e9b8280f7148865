"""Capture -> DataFrame (:func:`read_capture`, alias :func:`to_pandas`) and DataFrame -> capture
(:func:`write_capture`). A traffic frame has one row per exchange and the capture's columns
(``docs/analysis.md``), with ``elapsed`` as ``elapsed_ms`` (float milliseconds).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pafs

from ..exchange import Exchange
from ..protocols import exchanges_of
from ..stores.parquet import SCHEMA, ParquetStream, table_to_exchanges
from ._capture_ref import CAPTURE_COLUMNS, IDENTITY, SOURCE_ATTR, CaptureRef, open_source
from .where import Where, WhereArg, as_expression, as_wheres

if TYPE_CHECKING:
    from ..matching import Matcher

__all__ = [
    "ALL_COLUMNS",
    "BODY_COLUMNS",
    "DEFAULT_COLUMNS",
    "HEADER_COLUMNS",
    "KEY_COLUMNS",
    "SOURCE_ATTR",
    "CaptureRef",  # re-exported for the engine: what a frame or query reads from
    "capture_columns",
    "capture_of",
    "frame_columns",
    "frame_exchanges",
    "frame_to_table",
    "open_source",
    "read_capture",
    "read_capture_table",
    "read_frame",
    "to_pandas",
    "write_capture",
]

#: Always in a traffic frame: the row identity, the order, the match key and the request line.
KEY_COLUMNS: tuple[str, ...] = (
    "started_at",
    "writer_id",
    "writer_seq",
    "request_key",
    "request_method",
    "request_url",
)
BODY_COLUMNS: tuple[str, ...] = ("request_body", "response_body")
HEADER_COLUMNS: tuple[str, ...] = ("request_headers", "response_headers")
_BLOB_COLUMNS = ("request_body_blob", "response_body_blob")
#: Every frame column (blob references are resolved into the body columns, never shown).
ALL_COLUMNS: tuple[str, ...] = tuple(
    "elapsed_ms" if c == "elapsed" else c for c in CAPTURE_COLUMNS if c not in _BLOB_COLUMNS
)
#: The metadata columns loaded by default: everything but bodies and headers.
DEFAULT_COLUMNS: tuple[str, ...] = tuple(
    c for c in ALL_COLUMNS if c not in BODY_COLUMNS + HEADER_COLUMNS
)
# What table_to_exchanges reads: the columns that rebuild an exchange.
_REBUILD: tuple[str, ...] = (
    "started_at",
    "elapsed",
    "request_method",
    "request_url",
    "request_headers",
    "request_body",
    "response_status",
    "response_reason",
    "response_http_version",
    "response_headers",
    "response_body",
    "truncated",
    "error_type",
    "error_message",
    "tags",
)
_CATEGORIES = ("request_method", "request_host")

ColumnsArg = Sequence[str] | Literal["all"] | None


def _frame_name(capture_name: str) -> str:
    return "elapsed_ms" if capture_name == "elapsed" else capture_name


def capture_columns(columns: ColumnsArg, bodies: bool = False, headers: bool = False) -> list[str]:
    """The capture column names (schema order) that :func:`read_capture` reads for these
    arguments: ``columns`` checked, :data:`KEY_COLUMNS` added."""
    if columns is None:
        chosen = set(DEFAULT_COLUMNS)
    elif isinstance(columns, str):
        if columns != "all":
            raise ValueError(f"columns= takes a list of column names or 'all', not {columns!r}")
        chosen = set(ALL_COLUMNS)
    else:
        chosen = set(columns)
        unknown = sorted(chosen - set(ALL_COLUMNS) - {"elapsed"})
        if unknown:
            raise ValueError(f"unknown columns {unknown}; a traffic frame has {list(ALL_COLUMNS)}")
    chosen |= set(KEY_COLUMNS)
    if bodies:
        chosen |= set(BODY_COLUMNS)
    if headers:
        chosen |= set(HEADER_COLUMNS)
    wanted = {"elapsed" if c == "elapsed_ms" else c for c in chosen}
    return [c for c in CAPTURE_COLUMNS if c in wanted]


def _types_mapper(arrow_type: pa.DataType) -> Any:
    if arrow_type == pa.int32():
        return pd.Int32Dtype()  # status and port: integers with NA for failed exchanges
    if pa.types.is_map(arrow_type) or pa.types.is_list(arrow_type):
        return pd.ArrowDtype(arrow_type)  # headers and tags stay Arrow: no object per row
    return None


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """A capture-schema Arrow table as a traffic frame (dtypes as in ``docs/analysis.md``)."""
    for i, name in enumerate(table.column_names):
        column: Any = table.column(i)
        if name == "elapsed":
            # safe=False: a corrupt row's huge duration loses precision instead of failing
            column = pc.divide(column.cast(pa.int64()).cast(pa.float64(), safe=False), 1000.0)
        elif name in _CATEGORIES:
            column = column.dictionary_encode()
        table = table.set_column(i, _frame_name(name), column)
    # Not split_blocks=True: its zero-copy columns are read-only, and assigning into the frame
    # (df.loc[i, "request_url"] = ...) would fail.
    return table.to_pandas(types_mapper=_types_mapper)


def read_capture(
    source: Any,
    columns: ColumnsArg = None,
    where: WhereArg = None,
    bodies: bool = False,
    *,
    headers: bool = False,
    filesystem: Any = None,
) -> pd.DataFrame:
    """Load a capture, or a store's exchanges, into a DataFrame: one row per exchange.

    ``source`` is a Parquet capture's folder or URL (on ``filesystem``; opened read-only, logs
    of crashed durable writers are not folded in), a store with ``to_arrow(columns=, filter=)``
    or ``exchanges()``, or an iterable of :class:`~traffic_lab.Exchange`. ``columns`` are frame
    column names (default :data:`DEFAULT_COLUMNS`: all but bodies and headers; ``"all"``), with
    :data:`KEY_COLUMNS` always included; ``bodies`` and ``headers`` add those columns (wire
    bytes; Arrow lists of name/value pairs). ``where`` (a :class:`~traffic_lab.frames.Where`, a
    dict of its fields, or an Expression) is pushed down to the Parquet files.

    Returns a frame in recorded order, typed as ``docs/analysis.md`` lists (``response_status``
    is ``Int32``, NA for an exchange that failed in the transport). Raises
    :class:`~traffic_lab.errors.StoreNotFoundError` if there is no capture at a path.

    Examples
    --------
    >>> import tempfile, traffic_lab as tl
    >>> from traffic_lab.frames import to_pandas
    >>> from traffic_lab.testing import make_exchange
    >>> stream = tl.MemoryStream()
    >>> for status in (200, 404, 503):
    ...     stream.put(make_exchange(url=f"https://api.example/users/{status}",
    ...                              status_code=status))
    >>> df = to_pandas(stream, where={"status": "5xx"})
    >>> df[["request_method", "request_path", "response_status"]]
      request_method request_path  response_status
    0            GET   /users/503              503
    >>> str(df.response_status.dtype), str(df.started_at.dtype)
    ('Int32', 'datetime64[us, UTC]')
    >>> folder = tempfile.mkdtemp()
    >>> with tl.ParquetStream(folder) as stream:
    ...     stream.put(make_exchange(json={"id": 1}))
    >>> df = tl.read_capture(folder, bodies=True)
    >>> df.response_body.tolist(), df.elapsed_ms.tolist()
    ([b'{"id":1}'], [12.5])
    """
    ref = open_source(source, filesystem=filesystem)
    expr = as_expression(where, partitioned=ref.partitioned)
    return read_frame(ref, capture_columns(columns, bodies, headers), expr, as_wheres(where))


def read_frame(
    ref: CaptureRef,
    columns: Sequence[str],
    where: pc.Expression | None,
    wheres: Sequence[Where] | None = None,
) -> pd.DataFrame:
    """The traffic frame of capture ``columns`` of ``ref``'s rows matching ``where``, linked
    to the capture (what :func:`read_capture` returns); ``wheres`` as for
    :meth:`CaptureRef.read`."""
    df = table_to_frame(ref.read(columns, where, wheres=wheres))
    df.attrs[SOURCE_ATTR] = ref
    return df


#: The same function as :func:`read_capture`.
to_pandas = read_capture


def read_capture_table(
    source: Any,
    columns: Sequence[str],
    where: WhereArg = None,
    *,
    filesystem: Any = None,
    dictionaries: Sequence[str] = (),
) -> tuple[pa.Table, dict[str, Any]]:
    """Exactly ``columns`` (capture column names: ``elapsed``, not ``elapsed_ms``) of a capture,
    in recorded order, as an Arrow table; and the ``attrs`` that link a frame made from its rows
    (with :func:`table_to_frame`) to the capture, as :func:`read_capture` links its frames.

    For readers that keep columns compactly in memory (the notebook browser): no key column is
    added and nothing is converted to pandas. ``source`` and ``where`` as for
    :func:`read_capture`; the text columns ``dictionaries`` may come back as Arrow
    dictionaries (a Parquet capture stores low-cardinality columns so).
    """
    ref = open_source(source, filesystem=filesystem)
    expr = as_expression(where, partitioned=ref.partitioned)
    table = ref.read(list(columns), expr, wheres=as_wheres(where), dictionaries=dictionaries)
    return table, {SOURCE_ATTR: ref}


def _series_to_arrow(series: pd.Series[Any], name: str) -> Any:
    target = SCHEMA.field(name).type
    if name == "elapsed":
        ms = series.to_numpy(dtype="float64", na_value=0.0)
        return pa.array(np.rint(ms * 1000.0).astype(np.int64), pa.int64()).cast(target)
    try:
        arr: Any = pa.array(series, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        return arr.cast(target, safe=not pa.types.is_timestamp(target))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # A hand-made column (headers as tuples, tags as dicts...): from Python values.
        return pa.array(_plain_values(series.tolist(), name), target, from_pandas=True)


def _plain_values(values: list[Any], name: str) -> list[Any]:
    """Python values of a hand-made frame column in the shapes Arrow expects."""
    if name in HEADER_COLUMNS:
        return [
            None
            if v is None
            else [p if isinstance(p, dict) else {"name": str(p[0]), "value": str(p[1])} for p in v]
            for v in values
        ]
    if name == "tags":
        return [list(v.items()) if isinstance(v, dict) else v for v in values]
    return values


def frame_to_table(df: pd.DataFrame, columns: Iterable[str] | None = None) -> pa.Table:
    """The frame's capture columns (default: all; names it lacks are skipped) as an Arrow table
    in the capture's types."""
    wanted = CAPTURE_COLUMNS if columns is None else columns
    names = [c for c in wanted if _frame_name(c) in df.columns]
    arrays = [_series_to_arrow(df[_frame_name(name)], name) for name in names]
    return pa.Table.from_arrays(arrays, names=names) if names else pa.table({})


def capture_of(df: pd.DataFrame) -> CaptureRef | None:
    """The reference to the capture a frame came from (``df.attrs["traffic_lab.source"]``)."""
    ref = df.attrs.get(SOURCE_ATTR)
    return ref if isinstance(ref, CaptureRef) else None


def frame_columns(df: pd.DataFrame, columns: Sequence[str], source: Any = None) -> pa.Table:
    """Capture columns for the frame's rows, in its row order: taken from the frame where it
    has them, fetched from its capture otherwise (by ``writer_id``, ``writer_seq``).

    Raises ``ValueError`` when columns are missing and the frame has no capture to fetch them
    from, ``LookupError`` when rows are no longer in the capture.
    """
    table = frame_to_table(df, columns)
    missing = [c for c in columns if c not in table.column_names]
    if not missing:
        return table.select(list(columns))
    ref = open_source(source) if source is not None else capture_of(df)
    frame_missing = [_frame_name(c) for c in missing]
    if ref is None or ref.detached:
        raise ValueError(
            f"the frame has no {frame_missing} columns and no capture to load them from "
            "(df.attrs['traffic_lab.source'] is missing); load them with to_pandas(...) or "
            "pass source="
        )
    absent = [c for c in IDENTITY if c not in df.columns]
    if absent:
        raise ValueError(
            f"the frame lacks {absent}, which identify its rows in the capture; "
            f"cannot fetch {frame_missing}"
        )
    fetched = ref.fetch(frame_to_table(df, IDENTITY), missing)
    arrays = [
        table.column(name) if name in table.column_names else fetched.column(name)
        for name in columns
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))


def frame_exchanges(df: pd.DataFrame, source: Any = None) -> Iterator[Exchange]:
    """The rows as :class:`~traffic_lab.Exchange` objects, in row order.

    Values come from the frame's columns (edits count); for rows of a capture, columns the frame
    did not load (bodies, headers...) are fetched from it by row identity, or from ``source``
    (a ``ValueError`` if there is none: rebuilding without them would silently drop data).

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> df = tl.frames.to_pandas([make_exchange(json={"id": 1})])
    >>> [ex.response.json() for ex in df.traffic.exchanges()]
    [{'id': 1}]
    """
    if len(df) == 0:
        return iter(())
    if all(c in df.columns for c in IDENTITY):
        table = frame_columns(df, _REBUILD, source)
    else:
        table = frame_to_table(df, _REBUILD)
    for required in ("request_method", "request_url"):
        if required not in table.column_names:
            raise ValueError(f"cannot rebuild exchanges without a {required!r} column")
    return table_to_exchanges(table)


def _is_empty(path: str, filesystem: Any) -> bool:
    """Whether a destination folder (or prefix) is absent or holds nothing."""
    if filesystem is None:
        local = path.removeprefix("file://")
        if "://" in local:
            fs, root = pafs.FileSystem.from_uri(path)
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(local)
    else:
        if not isinstance(filesystem, pafs.FileSystem):
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))  # type: ignore[abstract]
        fs, root = filesystem, path.partition("://")[2] or path
    kind = fs.get_file_info(root).type
    if kind != pafs.FileType.Directory:
        return kind == pafs.FileType.NotFound
    return not fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))


def write_capture(
    data: Any,
    path: str | os.PathLike[str],
    *,
    matcher: Matcher | None = None,
    source: Any = None,
    append: bool = False,
    filesystem: Any = None,
) -> int:
    """Write a DataFrame's rows, a store's exchanges or any exchanges as a Parquet capture.

    A frame's rows become exchanges as ``df.traffic.exchanges()`` builds them (edits count;
    what the frame did not load comes from its capture, or from ``source``), each with a fresh
    identity in the new capture. ``path`` (a folder or object-store URL, on ``filesystem``) must
    not exist or be empty unless ``append=True`` (else ``FileExistsError``); ``matcher`` computes
    ``request_key``. Returns how many exchanges were written. Files appear atomically: if
    writing fails part way, the destination holds the files published so far.

    Examples
    --------
    >>> import tempfile, os, httpx, traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> stream = tl.MemoryStream()
    >>> for status in (200, 500, 200, 503):
    ...     stream.put(make_exchange(status_code=status))
    >>> df = tl.frames.to_pandas(stream)
    >>> errors = df[df.response_status >= 500]
    >>> folder = os.path.join(tempfile.mkdtemp(), "errors")
    >>> tl.write_capture(errors, folder)
    2
    >>> [r.status_code for r in tl.ParquetStream(folder).responses()]
    [500, 503]
    """
    target = os.fspath(path)
    if not append and not _is_empty(target, filesystem):
        raise FileExistsError(
            f"{target} exists and is not empty; write a new capture elsewhere, or pass "
            "append=True to add to it"
        )
    if isinstance(data, pd.DataFrame):
        exchanges = frame_exchanges(data, source)
    else:
        exchanges = exchanges_of(data, "write_capture()")
    written = 0
    with ParquetStream(target, matcher, filesystem=filesystem, flush_seconds=None) as out:
        for exchange in exchanges:
            if not isinstance(exchange, Exchange):
                raise TypeError(f"expected traffic_lab.Exchange, got {type(exchange).__name__}")
            out.put(exchange)
            written += 1
    return written
