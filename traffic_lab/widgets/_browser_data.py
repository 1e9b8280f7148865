"""The data behind the browser: a traffic frame of light columns (no bodies, no headers) from
:func:`traffic_lab.frames.to_pandas`, the filter masks computed on it with numpy and pyarrow,
and the way back from a row to the full :class:`~traffic_lab.Exchange` through the frame's
capture (``df.traffic``'s row identity, ``writer_id`` and ``writer_seq``).

Filtering never builds Python objects per row: categorical columns (method, host, content
type) are integer codes, so a choice is an ``isin`` over small integers; the text search runs in
Arrow; each criterion's mask is cached, so changing one control recomputes one mask and an
``and`` of the others. The result is an index array over the whole frame, and only one page of
it is ever turned into Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exchange import Exchange

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LIGHT_COLUMNS",
    "SORTS",
    "STATUS_CLASSES",
    "Criteria",
    "TrafficView",
    "open_view",
    "status_mask",
]

#: The frame columns the browser loads for every row (the rest is fetched for selected rows).
LIGHT_COLUMNS = [
    "started_at",
    "elapsed_ms",
    "request_method",
    "request_url",
    "request_host",
    "request_path",
    "response_status",
    "response_content_type",
    "response_body_size",
    "error_type",
    "truncated",
]
#: Status filter choices: label -> spec understood by :func:`status_mask`.
STATUS_CLASSES = {
    "any": "",
    "2xx": "2xx",
    "3xx": "3xx",
    "4xx": "4xx",
    "5xx": "5xx",
    "4xx + 5xx": "4xx,5xx",
    "failed (no response)": "failed",
}
#: Sort orders of the table: label -> key.
SORTS = {
    "recorded order": "recorded",
    "newest first": "newest",
    "slowest first": "slowest",
    "largest first": "largest",
}
_NO_STATUS = -1
_GLOB_CHARS = frozenset("*?[")


def status_mask(status: np.ndarray[Any, np.dtype[np.int32]], spec: str) -> np.ndarray[Any, Any]:
    """Rows whose status matches ``spec``, in the grammar of ``Where(status=...)``
    (:func:`traffic_lab.frames.where.parse_status`): classes, codes, ranges, ``failed``.

    Examples
    --------
    >>> s = np.array([200, 404, 503, -1], dtype=np.int32)
    >>> status_mask(s, "4xx,5xx").tolist()
    [False, True, True, False]
    >>> status_mask(s, "error").tolist(), status_mask(s, "200-404").tolist()
    ([False, False, False, True], [True, True, False, False])
    """
    from ..frames.where import parse_status

    return parse_status(spec).mask(status, missing=_NO_STATUS)


@dataclass(frozen=True)
class Criteria:
    """What the browser's controls ask for. Empty values select everything.

    ``search`` is a case-insensitive substring of the URL; starting with ``/`` it is a path
    pattern instead (``*`` matches anything; without ``*`` it is a prefix).
    ``since_us``/``until_us`` bound ``started_at`` (microseconds since the epoch, inclusive).
    """

    methods: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    status: str = ""
    status_range: tuple[int, int] | None = None
    since_us: int | None = None
    until_us: int | None = None
    search: str = ""
    content_types: tuple[str, ...] = ()


def _codes(values: Any) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Integer codes (-1 for missing) and the distinct values of a column or Arrow array."""
    import pandas as pd

    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        categories = [str(c) for c in values.cat.categories]
        return values.cat.codes.to_numpy().astype(np.int32), categories
    if isinstance(values, pd.Series):
        values = pa.array(values, from_pandas=True)
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], encoded.type)
    indices = encoded.indices.fill_null(_NO_STATUS)
    dictionary = [str(v) for v in encoded.dictionary.to_pylist()]
    return indices.to_numpy(zero_copy_only=False).astype(np.int32), dictionary


def _search_regex(pattern: str) -> str:
    """A path pattern: a glob (``*`` within a segment, ``**`` across) or, without glob
    characters, a prefix."""
    from ..frames.where import glob_to_regex

    if _GLOB_CHARS & set(pattern):
        return glob_to_regex(pattern)
    return "^" + re.escape(pattern)


def _strings(series: Any) -> pa.Array[Any]:
    """One contiguous Arrow string array (a ``take`` from a chunked one copies every chunk)."""
    array = pa.array(series, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    result: pa.Array[Any] = array.cast(pa.string())
    return result


def _normalized_codes(
    codes: np.ndarray[Any, Any], values: list[str], normalize: Callable[[str], str]
) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Codes after mapping each distinct value through ``normalize`` (merging equal results)."""
    merged: dict[str, int] = {}
    remap = np.array(
        [merged.setdefault(normalize(v), len(merged)) for v in values] + [_NO_STATUS],
        dtype=np.int32,
    )
    return remap[codes], list(merged)


def _media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


class TrafficView:
    """A traffic frame of light columns with cached filter masks; see :func:`open_view`.

    Parameters
    ----------
    frame
        A traffic frame (``traffic_lab.frames``): one row per exchange with at least
        ``request_method`` and ``request_url``; ``started_at``, ``elapsed_ms``,
        ``response_status``, ``response_content_type`` and ``response_body_size`` are used
        when present.
    fetch
        Positions -> the full exchanges (bodies included), in the order asked. Default: the
        frame's rows through ``traffic_lab.frames`` (which reads what the frame lacks from
        its capture).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        fetch: Callable[[np.ndarray[Any, Any]], list[Exchange]] | None = None,
    ) -> None:
        import pandas as pd

        for name in ("request_method", "request_url"):
            if name not in frame.columns:
                raise ValueError(f"not a traffic frame: no {name!r} column")
        frame = frame.reset_index(drop=True)
        self.frame = frame
        self._fetch = fetch if fetch is not None else self._fetch_from_frame
        n = len(frame)
        self.n = n
        self.methods_codes, self.methods = _codes(frame["request_method"])
        self.url = _strings(frame["request_url"])
        if "request_host" in frame.columns:
            self.host_codes, self.hosts = _codes(frame["request_host"])
        else:
            authority = pc.extract_regex(self.url, r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<a>[^/?#]*)")
            self.host_codes, self.hosts = _codes(pc.struct_field(authority, [0]))
        if "request_path" in frame.columns:
            self.path = _strings(frame["request_path"])
        else:
            path = pc.extract_regex(
                self.url, r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?(?P<p>[^?#]*)"
            )
            self.path = pc.struct_field(path, [0])
        if "response_content_type" in frame.columns:
            # Normalise the few distinct values, not the million rows.
            self.ctype_codes, self.content_types = _normalized_codes(
                *_codes(frame["response_content_type"]), _media_type
            )
        else:
            self.ctype_codes, self.content_types = np.full(n, _NO_STATUS, np.int32), []
        if "response_status" in frame.columns:
            status = pd.to_numeric(frame["response_status"]).fillna(_NO_STATUS)
            self.status = status.to_numpy(dtype=np.int32)
        else:
            self.status = np.full(n, 200, dtype=np.int32)
        if "started_at" in frame.columns:
            started = pd.to_datetime(frame["started_at"], utc=True).astype("datetime64[us, UTC]")
            self.start_us = started.to_numpy(dtype="datetime64[us]", na_value=0).view(np.int64)
        else:
            self.start_us = np.zeros(n, dtype=np.int64)
        if "elapsed_ms" in frame.columns:
            self.elapsed_ms = frame["elapsed_ms"].to_numpy(dtype=float, na_value=0.0)
        elif "elapsed" in frame.columns:
            elapsed = pd.to_timedelta(frame["elapsed"]).dt.total_seconds() * 1000
            self.elapsed_ms = elapsed.to_numpy(dtype=float, na_value=0.0)
        else:
            self.elapsed_ms = np.zeros(n)
        if "response_body_size" in frame.columns:
            self.size = frame["response_body_size"].to_numpy(dtype=np.int64, na_value=0)
        else:
            self.size = np.zeros(n, dtype=np.int64)
        self._identity: tuple[np.ndarray[Any, Any], list[str], np.ndarray[Any, Any]] | None
        self._identity = None
        if "writer_id" in frame.columns and "writer_seq" in frame.columns:
            writer_codes, writers = _codes(frame["writer_id"])
            seqs = frame["writer_seq"].to_numpy(dtype=np.int64, na_value=-1)
            self._identity = (writer_codes, writers, seqs)
        if "error_type" in frame.columns:
            self.error_type = _strings(frame["error_type"])
        else:
            self.error_type = pa.nulls(n, pa.string())
        self._masks: dict[str, tuple[object, np.ndarray[Any, Any] | None]] = {}
        self._orders: dict[str, np.ndarray[Any, Any]] = {}
        self._url_index: tuple[np.ndarray[Any, Any], pa.Array[Any]] | None = None
        self._path_index: tuple[np.ndarray[Any, Any], pa.Array[Any]] | None = None

    # -- filtering -----------------------------------------------------------------------------
    def _mask(
        self, name: str, value: object, compute: Callable[[], np.ndarray[Any, Any] | None]
    ) -> np.ndarray[Any, Any] | None:
        cached = self._masks.get(name)
        if cached is not None and cached[0] == value:
            return cached[1]
        mask = compute()
        self._masks[name] = (value, mask)
        return mask

    def _isin(
        self, codes: np.ndarray[Any, Any], values: Sequence[str], wanted: Sequence[str]
    ) -> np.ndarray[Any, Any] | None:
        if not wanted:
            return None
        index = {v: i for i, v in enumerate(values)}
        chosen = [index[w] for w in wanted if w in index]
        if "(none)" in wanted:
            chosen.append(_NO_STATUS)
        return np.isin(codes, np.array(chosen, dtype=np.int32))

    @staticmethod
    def _index(values: pa.Array[Any], lower: bool) -> tuple[np.ndarray[Any, Any], pa.Array[Any]]:
        """Codes and distinct values (lower-cased if asked) of a string column, built once."""
        encoded: Any = pc.dictionary_encode(values)
        codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        dictionary = encoded.dictionary
        return codes, pc.utf8_lower(dictionary) if lower else dictionary

    def _search(self, text: str) -> np.ndarray[Any, Any] | None:
        """Search the distinct URLs (or paths), then map the hits to rows: traffic repeats
        URLs, and a case-insensitive search on pre-lowered text avoids a regex engine."""
        text = text.strip()
        if not text:
            return None
        if text.startswith("/"):
            if self._path_index is None:
                self._path_index = self._index(self.path, lower=False)
            codes, values = self._path_index
            hits = pc.match_substring_regex(values, _search_regex(text))
        else:
            if self._url_index is None:
                self._url_index = self._index(self.url, lower=True)
            codes, values = self._url_index
            hits = pc.match_substring(values, text.lower())
        matched = np.asarray(hits.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        if not len(matched):
            return np.zeros(self.n, dtype=bool)
        hit_rows: np.ndarray[Any, Any] = matched[codes]
        return hit_rows

    def _time(self, since: int | None, until: int | None) -> np.ndarray[Any, Any] | None:
        if since is None and until is None:
            return None
        mask = np.ones(self.n, dtype=bool)
        if since is not None:
            mask &= self.start_us >= since
        if until is not None:
            mask &= self.start_us <= until
        return mask

    def _status_range(self, bounds: tuple[int, int] | None) -> np.ndarray[Any, Any] | None:
        if bounds is None:
            return None
        low, high = bounds
        return (self.status >= low) & (self.status <= high)

    def select(self, criteria: Criteria, sort: str = "recorded") -> np.ndarray[Any, Any]:
        """Positions of the rows that meet ``criteria``, in the ``sort`` order (see :data:`SORTS`).

        Masks are cached per criterion, so a change to one control costs one mask.
        """
        c = criteria
        masks = [
            self._mask(
                "methods",
                c.methods,
                lambda: self._isin(self.methods_codes, self.methods, c.methods),
            ),
            self._mask("hosts", c.hosts, lambda: self._isin(self.host_codes, self.hosts, c.hosts)),
            self._mask(
                "status",
                c.status,
                lambda: status_mask(self.status, c.status) if c.status else None,
            ),
            self._mask("status_range", c.status_range, lambda: self._status_range(c.status_range)),
            self._mask(
                "time", (c.since_us, c.until_us), lambda: self._time(c.since_us, c.until_us)
            ),
            self._mask("search", c.search, lambda: self._search(c.search)),
            self._mask(
                "content_types",
                c.content_types,
                lambda: self._isin(self.ctype_codes, self.content_types, c.content_types),
            ),
        ]
        active = [m for m in masks if m is not None]
        combined: np.ndarray[Any, Any] | None = None
        if active:
            combined = active[0].copy()
            for m in active[1:]:
                combined &= m
        if sort == "recorded":
            return np.arange(self.n) if combined is None else np.flatnonzero(combined)
        if sort == "newest":
            rows = np.arange(self.n) if combined is None else np.flatnonzero(combined)
            return rows[::-1]
        # The whole capture is sorted once per key; a filter then keeps the order's matches.
        order = self._sorted(sort)
        return order if combined is None else order[combined[order]]

    def _sorted(self, sort: str) -> np.ndarray[Any, Any]:
        order = self._orders.get(sort)
        if order is None:
            key = {"slowest": self.elapsed_ms, "largest": self.size}.get(sort)
            if key is None:
                raise ValueError(f"unknown sort {sort!r}; use one of {list(SORTS.values())}")
            # Stable: equal keys keep recorded order.
            order = np.argsort(-key, kind="stable")
            self._orders[sort] = order
        return order

    # -- rows ----------------------------------------------------------------------------------
    def method_names(self, positions: np.ndarray[Any, Any]) -> pa.Array[Any]:
        """The methods of some rows, as an Arrow string array."""
        names = pa.array([*self.methods, ""], pa.string())
        codes = self.methods_codes[positions]
        return names.take(np.where(codes < 0, len(self.methods), codes))

    def rows(self, positions: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
        """Plain Python values of some rows (for rendering one page): position, started_at
        (aware datetime or ``None``), elapsed_ms, method, url, status (``None`` for a
        transport error), error_type, content_type, size."""
        take = pa.array(positions, pa.int64())
        urls = self.url.take(take).to_pylist()
        methods = self.method_names(positions).to_pylist()
        errors = self.error_type.take(take).to_pylist()
        ctypes = [self.content_types[c] if c >= 0 else "" for c in self.ctype_codes[positions]]
        starts = pa.array(self.start_us[positions], pa.timestamp("us", tz="UTC")).to_pylist()
        out = []
        for i, pos in enumerate(positions.tolist()):
            status = int(self.status[pos])
            out.append(
                {
                    "position": pos,
                    "started_at": starts[i] if self.start_us[pos] else None,
                    "elapsed_ms": float(self.elapsed_ms[pos]),
                    "method": methods[i],
                    "url": urls[i],
                    "status": None if status == _NO_STATUS else status,
                    "error_type": errors[i],
                    "content_type": ctypes[i],
                    "size": int(self.size[pos]),
                }
            )
        return out

    def exchanges(self, positions: Sequence[int] | np.ndarray[Any, Any]) -> list[Exchange]:
        """The full exchanges (bodies included) at ``positions``, in that order."""
        array = np.asarray(positions, dtype=np.int64)
        if not len(array):
            return []
        return self._fetch(array)

    def _fetch_from_frame(self, positions: np.ndarray[Any, Any]) -> list[Exchange]:
        """Rows rebuilt by ``traffic_lab.frames``. A frame linked to its capture is asked for
        by row identity only (a one-row ``iloc`` of a million-row frame copies whole Arrow
        columns); the capture supplies the rest, as recorded."""
        import pandas as pd

        from ..frames.convert import capture_of, frame_exchanges

        frame = self.frame
        if self._identity is not None and capture_of(frame) is not None:
            writer_codes, writers, seqs = self._identity
            keys = pd.DataFrame(
                {
                    "writer_id": [writers[c] for c in writer_codes[positions]],
                    "writer_seq": seqs[positions],
                }
            )
            keys.attrs.update(frame.attrs)
            return list(frame_exchanges(keys))
        return list(frame_exchanges(frame.iloc[positions]))

    def subframe(self, positions: np.ndarray[Any, Any] | None = None) -> pd.DataFrame:
        """The frame's rows at ``positions`` (all rows when ``None``), a traffic frame still
        linked to its capture (``df.traffic`` works on it)."""
        return self.frame if positions is None else self.frame.iloc[positions]

    def __repr__(self) -> str:
        return f"<TrafficView {self.n:,} exchanges>"


def open_view(source: object, where: Any = None) -> TrafficView:
    """Open anything the browser accepts as a :class:`TrafficView`.

    Accepted: a traffic DataFrame (``traffic_lab.frames``), or anything
    :func:`traffic_lab.frames.to_pandas` reads: a capture path, a Parquet store, a memory store
    or Replay, an iterable of :class:`~traffic_lab.Exchange`. ``where`` (a ``Where``, its
    dict, or an Arrow Expression) is pushed down when the capture is read.
    """
    if isinstance(source, TrafficView):
        return source
    import pandas as pd

    from ..frames import to_pandas

    if isinstance(source, pd.DataFrame):
        if where is not None:
            raise TypeError("where= filters a capture being read; filter the DataFrame instead")
        return TrafficView(source)
    columns = [c for c in LIGHT_COLUMNS if c != "elapsed_ms"] + ["elapsed"]
    return TrafficView(to_pandas(source, columns=columns, where=where))
