"""The data behind the browser: a traffic frame of light columns (no bodies, no headers), its
filter masks (numpy over integer codes, Arrow over distinct strings; one cached mask per
criterion), and the way back from a row to the full exchange through the frame's capture."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial, reduce
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..exchange import Exchange
from ..wire.bodies import media_type

if TYPE_CHECKING:
    import pandas as pd

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
#: What a view reads from a capture (capture column names; no pandas frame is made of them).
CAPTURE_LIGHT_COLUMNS = [
    "started_at",
    "elapsed",
    "writer_id",
    "writer_seq",
    "request_method",
    "request_url",
    "request_host",
    "response_status",
    "response_content_type",
    "response_body_size",
    "error_type",
    "truncated",
]
#: Light columns read as Arrow dictionaries (few distinct values; no string per row is made).
DICTIONARY_COLUMNS = ["writer_id", "request_method", "request_host", "response_content_type"]
#: Status filter choices: label -> spec (the grammar of ``Where(status=...)``).
STATUS_CLASSES = {
    "any": "",
    "2xx": "2xx",
    "3xx": "3xx",
    "4xx": "4xx",
    "5xx": "5xx",
    "4xx + 5xx": "4xx,5xx",
    "failed (no response)": "failed",
}
#: The list's columns: key -> header label. Each sorts (see :func:`sort_key`).
COLUMNS = {
    "time": "Time (UTC)",
    "method": "Method",
    "host": "Host",
    "url": "Path",
    "status": "Status",
    "type": "Type",
    "size": "Size",
    "duration": "Duration",
}
#: Named sort orders (v1's, kept for code that uses them): name -> (column, descending).
SORTS = {
    "recorded": ("", False),
    "newest": ("time", True),
    "slowest": ("duration", True),
    "largest": ("size", True),
}
_NO_STATUS = -1
#: At most this many chips per facet (the most frequent values).
FACET_LIMIT = 30
#: A frame's rows in at most this many runs of consecutive rows are sliced out of it.
MAX_SLICES = 64
#: Bins of the time brush's histogram.
HISTOGRAM_BINS = 60
_GLOB_CHARS = frozenset("*?[")
_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*://"
_PATH = f"^(?:{_SCHEME[1:]}[^/?#]*)?(?P<p>[^?#]*)"


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


def codes_of(values: Any) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Integer codes (-1 for missing) and the distinct values of a column or Arrow array."""
    import pandas as pd

    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        categories = [str(c) for c in values.cat.categories]
        return values.cat.codes.to_numpy().astype(np.int32), categories
    if isinstance(values, pd.Series):
        values = pa.array(values, from_pandas=True)
    if pa.types.is_dictionary(values.type):
        return _dictionary_codes(values)
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], encoded.type)
    indices = encoded.indices.fill_null(_NO_STATUS)
    dictionary = [str(v) for v in encoded.dictionary.to_pylist()]
    return indices.to_numpy(zero_copy_only=False).astype(np.int32), dictionary


def _dictionary_codes(values: Any) -> tuple[np.ndarray[Any, Any], list[str]]:
    """:func:`codes_of` for an Arrow dictionary column (as a capture's files store hosts,
    methods...): its chunks' dictionaries unified, the values no row uses dropped."""
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    if chunked.num_chunks == 0:
        return np.zeros(0, np.int32), []
    unified: Any = chunked.unify_dictionaries()
    dictionary = unified.chunk(0).dictionary
    indices: Any = pa.chunked_array([c.indices for c in unified.chunks], unified.type.index_type)
    codes = indices.fill_null(-1).to_numpy().astype(np.int32)
    used = np.bincount(codes[codes >= 0], minlength=len(dictionary)) > 0
    remap = np.full(len(dictionary) + 1, _NO_STATUS, dtype=np.int32)  # [-1] stays missing
    remap[:-1][used] = np.arange(int(used.sum()), dtype=np.int32)
    kept = [str(v) for v, u in zip(dictionary.to_pylist(), used, strict=True) if u]
    return remap[codes], kept


def sort_key(sort: str) -> tuple[str, bool]:
    """(column, descending) of a sort: a named one (:data:`SORTS`), ``"status"`` (a column of
    :data:`COLUMNS`, ascending) or ``"-status"`` (descending); ``""`` is recorded order."""
    if not sort or sort in SORTS:
        return SORTS[sort or "recorded"]
    column, descending = sort.removeprefix("-"), sort.startswith("-")
    if column not in COLUMNS:
        names = [*SORTS, *COLUMNS, *(f"-{c}" for c in COLUMNS)]
        raise ValueError(f"unknown sort {sort!r}; use one of {names}")
    return column, descending


#: Bits of a sort key's digit: a digit spans fewer than 4,096 values, which Arrow sorts with a
#: counting sort (measured at 10M rows: 30-80 ms up to 4,000 values, a comparison sort of
#: 1.5 s from 16,000).
_COUNTING_BITS = 12


def stable_argsort(key: np.ndarray[Any, Any], descending: bool = False) -> np.ndarray[Any, Any]:
    """``np.argsort(key, kind="stable")`` (of ``-key`` when ``descending``: equal keys keep
    their order either way), faster for integer keys spanning less than 2**32:
    least-significant-digit passes of Arrow's counting sort over 12-bit digits (one pass for a
    key of fewer than 4,096 values), the gathers in Arrow's memory pool (fresh numpy arrays of
    10M rows cost as much in page faults as the sorting). At 10M rows: a status or host 150 ->
    35 ms, a duration (19 bits) 1.3 s -> 0.46 s the first time."""
    if key.dtype.kind not in "iu" or not len(key):
        return np.argsort(-key if descending else key, kind="stable")
    low, high = int(key.min()), int(key.max())
    span = high - low
    if span >= 1 << 32:
        return np.argsort(-key if descending else key, kind="stable")
    # offsets from the low end, or from the high end when descending: ascending either way
    offset = pa.array(((high - key) if descending else (key - low)).astype(np.uint32))
    order: Any = None
    for shift in range(0, max(1, span.bit_length()), _COUNTING_BITS):
        shifted = pc.shift_right(offset, shift) if shift else offset
        digit = pc.bit_wise_and(shifted, (1 << _COUNTING_BITS) - 1).cast(pa.uint16())
        if order is not None:
            digit = pc.take(digit, order)
        step = pc.array_sort_indices(digit)  # a counting sort: the digit spans < 4,096 values
        order = step if order is None else pc.take(order, step)
    ordered: np.ndarray[Any, Any] = order.to_numpy().view(np.int64)  # indices < 2**63
    return ordered


def _ranked(codes: np.ndarray[Any, Any], distinct: pa.Array[Any]) -> np.ndarray[Any, Any]:
    """Each row's rank among the sorted distinct values (missing values first)."""
    rank = np.empty(len(distinct) + 1, dtype=np.int64)
    order = np.asarray(pc.sort_indices(distinct).to_numpy(zero_copy_only=False))
    rank[order] = np.arange(1, len(distinct) + 1)
    rank[-1] = 0  # code -1: no value
    ranks: np.ndarray[Any, Any] = rank[codes]
    return ranks


def status_class(status: int | None) -> str:
    """The CSS class of a status: ``tl-s2``... ``tl-s5``, ``tl-serr`` for no response."""
    if status is None or status < 0:
        return "tl-serr"
    return f"tl-s{min(max(status // 100, 1), 5)}"


def _frame_slices(frame: pd.DataFrame, positions: np.ndarray[Any, Any]) -> pd.DataFrame:
    """``frame``'s rows at ``positions``: a few runs of consecutive rows as slices (an ``iloc``
    with a list takes from every chunk of the Arrow string columns: 0.3 s at 1M rows)."""
    import pandas as pd

    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    if not len(positions) or len(breaks) >= MAX_SLICES:
        return frame.iloc[positions]
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(positions)]])
    runs = zip(starts, ends, strict=True)
    parts = [frame.iloc[positions[a] : positions[b - 1] + 1] for a, b in runs]
    rows = pd.concat(parts) if len(parts) > 1 else parts[0]
    rows.attrs = dict(frame.attrs)
    return rows


def _strings(series: Any) -> pa.Array[Any]:
    """One contiguous Arrow string array (a ``take`` from a chunked one copies every chunk)."""
    array = (
        series
        if isinstance(series, pa.Array | pa.ChunkedArray)
        else pa.array(series, from_pandas=True)
    )
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    result: pa.Array[Any] = array.cast(pa.string())  # decodes a dictionary array too
    return result


def _url_part(urls: pa.Array[Any], regex: str) -> Any:
    """The one named group of ``regex`` in each URL (null where it does not match)."""
    return pc.struct_field(pc.extract_regex(urls, regex), [0])


class TrafficView:
    """A traffic frame of light columns with cached filter masks; see :func:`open_view`.

    ``frame`` has one row per exchange with at least ``request_method`` and ``request_url`` (or
    ``request_path``); ``started_at``, ``elapsed_ms`` (or ``elapsed``), ``response_status``,
    ``response_content_type`` and ``response_body_size`` are used when present.

    >>> import pandas as pd
    >>> view = TrafficView(pd.DataFrame({"request_method": ["GET", "POST", "GET"],
    ...                                  "request_url": ["https://a/x", "https://a/y", "https://b/"],
    ...                                  "response_status": [200, 503, None]}))
    >>> [view.select(Criteria(status=s)).tolist() for s in ("4xx,5xx", "failed", "200-404")]
    [[1], [2], [0]]
    >>> view.select(Criteria(methods=("GET",), search="A/"), sort="newest").tolist()
    [0]
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        import pandas as pd

        has = set(frame.columns).__contains__
        if not has("request_method"):
            raise ValueError("not a traffic frame: no 'request_method' column")
        if not (has("request_url") or has("request_path")):
            raise ValueError("not a traffic frame: no 'request_url' column")
        self._frame: pd.DataFrame | None = frame.reset_index(drop=True)
        frame = self._frame
        self._attrs: dict[str, Any] = {str(k): v for k, v in frame.attrs.items()}
        self.n = n = len(frame)

        def numbers(name: str, dtype: Any, missing: Any, default: Any = None) -> Any:
            if not has(name):
                return np.full(n, missing if default is None else default, dtype=dtype)
            return frame[name].to_numpy(dtype=dtype, na_value=missing)

        self.methods_codes, self.methods = codes_of(frame["request_method"])
        self.url = _strings(frame["request_url" if has("request_url") else "request_path"])
        if has("request_host"):
            host: Any = frame["request_host"]
        else:
            host = _url_part(self.url, _SCHEME + "(?P<a>[^/?#]*)")
        self.host_codes, self.hosts = codes_of(host)
        self._path = _strings(frame["request_path"]) if has("request_path") else None
        nulls = pa.nulls(n, pa.string())
        self._content_types(
            *codes_of(frame["response_content_type"] if has("response_content_type") else nulls)
        )
        self.status = numbers("response_status", np.int32, _NO_STATUS, default=200)
        if has("started_at"):
            started = pd.to_datetime(frame["started_at"], utc=True).astype("datetime64[us, UTC]")
            self.start_us = started.to_numpy(dtype="datetime64[us]", na_value=0).view(np.int64)
        else:
            self.start_us = np.zeros(n, dtype=np.int64)
        if has("elapsed") and not has("elapsed_ms"):
            elapsed = pd.to_timedelta(frame["elapsed"]).dt.total_seconds() * 1000
            elapsed_ms = elapsed.to_numpy(dtype=float, na_value=0.0)
        else:
            elapsed_ms = numbers("elapsed_ms", float, 0.0)
        self.elapsed_us = np.rint(elapsed_ms * 1000).astype(np.int64)
        self.size = numbers("response_body_size", np.int64, 0)
        self._identity: tuple[np.ndarray[Any, Any], list[str], np.ndarray[Any, Any]] | None
        self._identity = None
        if has("writer_id") and has("writer_seq"):
            writer_codes, writers = codes_of(frame["writer_id"])
            self._identity = (writer_codes, writers, numbers("writer_seq", np.int64, -1))
        self.error_type = _strings(frame["error_type"]) if has("error_type") else nulls
        self.truncated = numbers("truncated", bool, False)
        self._caches()

    def _caches(self) -> None:
        self._masks: dict[str, tuple[object, np.ndarray[Any, Any] | None]] = {}
        self._orders: dict[tuple[str, bool], np.ndarray[Any, Any]] = {}
        self._sorting: dict[tuple[str, bool], threading.Event] = {}  # by prefetch()
        self._indexes: dict[bool, Any] = {}
        self._urls: tuple[np.ndarray[Any, Any], pa.Array[Any]] | None = None

    def url_index(self) -> tuple[np.ndarray[Any, Any], pa.Array[Any]]:
        """Each row's code among the distinct URLs (-1 for none), and those URLs; made once,
        for the URL search, the path search and the URL sort (traffic repeats URLs)."""
        if self._urls is None:
            encoded: Any = pc.dictionary_encode(self.url)
            codes = encoded.indices.fill_null(_NO_STATUS).to_numpy(zero_copy_only=False)
            self._urls = (np.asarray(codes, dtype=np.int32), encoded.dictionary)
        return self._urls

    def _content_types(self, codes: np.ndarray[Any, Any], types: list[str]) -> None:
        """Keep the stored content types as codes, and their media types (``text/html`` for
        ``text/html; charset=x``): normalised over the few distinct values, not every row."""
        self._raw_ctype = (codes, types)
        merged: dict[str, int] = {}
        remap = [merged.setdefault(media_type(t), len(merged)) for t in types]
        self.ctype_codes = np.array([*remap, _NO_STATUS], dtype=np.int32)[codes]
        self.content_types = list(merged)

    @classmethod
    def from_table(cls, table: pa.Table, attrs: dict[str, Any]) -> TrafficView:
        """A view of an Arrow table of :data:`CAPTURE_LIGHT_COLUMNS` (as
        :func:`~traffic_lab.frames.convert.read_capture_table` reads them): text becomes
        integer codes and one URL array, numbers become numpy; no pandas frame is kept
        (:meth:`frame_rows` makes one for the rows asked for). ``attrs`` link those frames to
        their capture."""
        self = cls.__new__(cls)
        self._frame = None
        self._attrs = dict(attrs)
        self.n = table.num_rows

        def numbers(name: str, dtype: Any, missing: Any) -> np.ndarray[Any, Any]:
            column = table.column(name)
            if pa.types.is_timestamp(column.type) or pa.types.is_duration(column.type):
                column = column.cast(pa.int64())
            if column.null_count:
                column = pc.fill_null(column, missing)
            return np.asarray(column.to_numpy(), dtype=dtype)

        self.methods_codes, self.methods = codes_of(table.column("request_method"))
        self.url = _strings(table.column("request_url"))
        self.host_codes, self.hosts = codes_of(table.column("request_host"))
        self._path = None
        self._content_types(*codes_of(table.column("response_content_type")))
        self.status = numbers("response_status", np.int32, _NO_STATUS)
        self.start_us = numbers("started_at", np.int64, 0)
        self.elapsed_us = numbers("elapsed", np.int64, 0)
        self.size = numbers("response_body_size", np.int64, 0)
        writer_codes, writers = codes_of(table.column("writer_id"))
        self._identity = (writer_codes, writers, numbers("writer_seq", np.int64, -1))
        self.error_type = _strings(table.column("error_type"))
        self.truncated = numbers("truncated", bool, False)
        self._caches()
        return self

    @property
    def elapsed_ms(self) -> np.ndarray[Any, Any]:
        """Every row's duration in ms (computed from :attr:`elapsed_us`, whole microseconds
        as a capture stores them: prefer ``elapsed_us[rows] / 1000`` for some rows)."""
        ms: np.ndarray[Any, Any] = self.elapsed_us / 1000
        return ms

    @property
    def path(self) -> pa.Array[Any]:
        """The path of every URL (computed on first use from the URLs)."""
        if self._path is None:
            self._path = _url_part(self.url, _PATH)
        return self._path

    @property
    def frame(self) -> pd.DataFrame:
        """Every row as a traffic frame (made from the columns in memory when the view was
        built from a table: prefer :meth:`frame_rows` for some rows)."""
        if self._frame is not None:
            return self._frame
        return self.frame_rows(np.arange(self.n))

    def frame_rows(self, positions: np.ndarray[Any, Any]) -> pd.DataFrame:
        """Some rows as a traffic frame, in this order, indexed by position, linked to the
        capture (``df.traffic`` and the exchanges' bodies work): the light columns of
        :func:`~traffic_lab.frames.read_capture`, with its dtypes."""
        import pandas as pd

        from ..frames.convert import table_to_frame

        positions = np.asarray(positions, dtype=np.int64)
        if self._frame is not None:
            return _frame_slices(self._frame, positions)
        take = pa.array(positions, pa.int64())
        urls = self.url.take(take)
        status = self.status[positions]
        ctype_codes, ctypes = self._raw_ctype
        writer_codes, writers, seqs = self._identity or (np.zeros(0, np.int32), [], None)

        def coded(codes: np.ndarray[Any, Any], values: list[str]) -> pa.Array[Any]:
            picked = codes[positions]
            return pa.DictionaryArray.from_arrays(
                pa.array(picked, pa.int32(), mask=picked < 0), pa.array(values, pa.string())
            )

        columns: dict[str, Any] = {
            "started_at": pa.array(self.start_us[positions], pa.timestamp("us", tz="UTC")),
            "elapsed": pa.array(self.elapsed_us[positions], pa.duration("us")),
            "writer_id": coded(writer_codes, writers).cast(pa.string()),
            "writer_seq": pa.array(
                seqs[positions] if seqs is not None else np.full(len(positions), -1), pa.int64()
            ),
            "request_method": coded(self.methods_codes, self.methods),
            "request_url": urls,
            "request_host": coded(self.host_codes, self.hosts),
            "request_path": (
                self._path.take(take) if self._path is not None else _url_part(urls, _PATH)
            ),
            "response_status": pa.array(status, pa.int32(), mask=status == _NO_STATUS),
            "response_content_type": coded(ctype_codes, ctypes).cast(pa.string()),
            "response_body_size": pa.array(self.size[positions], pa.int64()),
            "error_type": self.error_type.take(take),
            "truncated": pa.array(self.truncated[positions], pa.bool_()),
        }
        frame = table_to_frame(pa.table(columns))
        frame.index = pd.Index(positions)
        frame.attrs.update(self._attrs)
        return frame

    # -- filtering -----------------------------------------------------------------------------
    def _mask(
        self, name: str, value: Any, compute: Callable[[Any], np.ndarray[Any, Any] | None]
    ) -> np.ndarray[Any, Any] | None:
        """``compute(value)``, or ``None`` (no filter) for an empty value; cached per name."""
        cached = self._masks.get(name)
        if cached is not None and cached[0] == value:
            return cached[1]
        mask = compute(value) if value else None
        self._masks[name] = (value, mask)
        return mask

    @staticmethod
    def _isin(
        codes: np.ndarray[Any, Any], values: Sequence[str], wanted: Sequence[str]
    ) -> np.ndarray[Any, Any]:
        chosen = [values.index(w) for w in wanted if w in values]
        if "(none)" in wanted:
            chosen.append(_NO_STATUS)
        return np.isin(codes, np.array(chosen, dtype=np.int32))

    @staticmethod
    def _between(
        values: np.ndarray[Any, Any], low: int | None, high: int | None
    ) -> np.ndarray[Any, Any]:
        mask = np.ones(len(values), dtype=bool)
        if low is not None:
            mask &= values >= low
        if high is not None:
            mask &= values <= high
        return mask

    def _search(self, text: str) -> np.ndarray[Any, Any] | None:
        """Search the distinct URLs (or paths), then map the hits to rows: traffic repeats
        URLs, and a case-insensitive search on pre-lowered text avoids a regex engine."""
        text = text.strip()
        if not text:
            return None
        by_path = text.startswith("/")
        codes, urls = self.url_index()
        if by_path not in self._indexes:
            # the paths (or lower-cased text) of the distinct URLs only
            self._indexes[by_path] = _url_part(urls, _PATH) if by_path else pc.utf8_lower(urls)
        distinct = self._indexes[by_path]
        if not by_path:
            hits = pc.match_substring(distinct, text.lower())
        elif _GLOB_CHARS & set(text):
            from ..frames.where import glob_to_regex

            hits = pc.match_substring_regex(distinct, glob_to_regex(text))
        else:
            hits = pc.starts_with(distinct, text)
        matched = np.asarray(hits.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        hit_rows: np.ndarray[Any, Any] = np.append(matched, False)[codes]  # code -1: null
        return hit_rows

    def select(self, criteria: Criteria, sort: str = "") -> np.ndarray[Any, Any]:
        """Positions of the rows that meet ``criteria``, in ``sort`` order (:func:`sort_key`)."""
        from ..frames.where import parse_status

        c, isin = criteria, self._isin
        times = None if c.since_us is None and c.until_us is None else (c.since_us, c.until_us)
        parts = [
            ("methods", c.methods, partial(isin, self.methods_codes, self.methods)),
            ("hosts", c.hosts, partial(isin, self.host_codes, self.hosts)),
            ("status", c.status, lambda s: parse_status(s).mask(self.status, missing=_NO_STATUS)),
            ("status_range", c.status_range, lambda r: self._between(self.status, *r)),
            ("time", times, lambda t: self._between(self.start_us, *t)),
            ("search", c.search, self._search),
            ("content_types", c.content_types, partial(isin, self.ctype_codes, self.content_types)),
        ]
        active = [m for m in itertools.starmap(self._mask, parts) if m is not None]
        combined = reduce(np.logical_and, active) if active else None
        rows = np.arange(self.n) if combined is None else np.flatnonzero(combined)
        column, descending = sort_key(sort)
        if not column:
            return rows[::-1] if descending else rows
        # The whole capture is sorted once per key; a filter then keeps the order's matches.
        order = self.order(column, descending)
        return order if combined is None else order[combined[order]]

    def order(self, column: str, descending: bool = False) -> np.ndarray[Any, Any]:
        """Positions of every row sorted by a list column (see :data:`COLUMNS`), cached per
        (column, direction). Stable both ways: equal keys keep recorded order. Text columns
        sort by the rank of their distinct values (numpy over integer codes)."""
        cached = self._orders.get((column, descending))
        if cached is not None:
            return cached
        pending = self._sorting.get((column, descending))
        if pending is not None:  # being sorted in the background: wait for it
            pending.wait()
            cached = self._orders.get((column, descending))
            if cached is not None:
                return cached
        return self._sort(column, descending)

    def _sort(self, column: str, descending: bool) -> np.ndarray[Any, Any]:
        order = stable_argsort(self._sort_key(column), descending)
        self._orders[(column, descending)] = order
        return order

    def prefetch(self, column: str, descending: bool = False) -> None:
        """Sort by ``column`` in a background thread, so that the first :meth:`order` by it
        (waiting for the thread if it is still running) costs nothing more. A failure is left
        to :meth:`order` to meet again."""
        wanted = (column, descending)
        if wanted in self._orders or wanted in self._sorting:
            return
        if column not in COLUMNS:  # raised here, not in the thread
            raise ValueError(f"unknown sort column {column!r}; use one of {list(COLUMNS)}")
        done = threading.Event()
        self._sorting[wanted] = done

        def work() -> None:
            try:
                self._sort(column, descending)
            except Exception:  # order() sorts again, and raises there
                pass
            finally:
                done.set()
                self._sorting.pop(wanted, None)

        threading.Thread(target=work, name=f"traffic_lab sort {column}", daemon=True).start()

    def _sort_key(self, column: str) -> np.ndarray[Any, Any]:
        numbers: dict[str, np.ndarray[Any, Any]] = {
            "time": self.start_us,
            "status": self.status,
            "size": self.size,
            "duration": self.elapsed_us,
        }
        if column in numbers:
            return numbers[column]
        texts = {
            "method": (self.methods_codes, self.methods),
            "host": (self.host_codes, self.hosts),
            "type": (self.ctype_codes, self.content_types),
        }
        if column in texts:
            codes, values = texts[column]
            return _ranked(codes, pa.array(values, pa.string()))
        if column == "url":
            return _ranked(*self.url_index())
        raise ValueError(f"unknown sort column {column!r}; use one of {list(COLUMNS)}")

    # -- what the list shows ------------------------------------------------------------------
    def facets(self, limit: int = FACET_LIMIT) -> dict[str, list[tuple[str, int]]]:
        """The filter chips and their counts over the whole capture: methods, status classes
        (the ``Where`` grammar: ``2xx``... ``failed``), hosts and media types, each by count
        (at most ``limit``)."""

        def ranked(values: list[str], codes: np.ndarray[Any, Any]) -> list[tuple[str, int]]:
            counts = np.bincount(codes[codes >= 0], minlength=len(values))
            top = np.argsort(-counts, kind="stable")[:limit]
            return [(values[i], int(counts[i])) for i in top if counts[i]]

        classes = np.bincount(np.clip(self.status // 100, 0, 6), minlength=7)
        status = [(f"{k}xx", int(classes[k])) for k in (1, 2, 3, 4, 5) if classes[k]]
        if classes[0]:  # status -1 (no response) clips to 0
            status.append(("failed", int(classes[0])))
        return {
            "method": ranked(self.methods, self.methods_codes),
            "status": status,
            "host": ranked(self.hosts, self.host_codes),
            "type": ranked(self.content_types, self.ctype_codes),
        }

    def histogram(self, bins: int = HISTOGRAM_BINS) -> tuple[int, int, list[int]]:
        """(first start, last start, counts of exchanges per equal time bin): the time brush."""
        if not self.n:
            return 0, 0, []
        low, high = int(self.start_us.min()), int(self.start_us.max())
        # integer bins: float edges lose the microseconds of 2026 timestamps
        index = (self.start_us - low) * bins // (high - low + 1)
        return low, high, np.bincount(index, minlength=bins).tolist()

    def latency(self, rows: np.ndarray[Any, Any]) -> tuple[float, float, float] | None:
        """p50, p95 and p99 of the rows' durations in ms (``None`` for no rows)."""
        if not len(rows):
            return None
        every = len(rows) == self.n  # all rows, in some order: no fancy-index copy
        p50, p95, p99 = np.percentile(
            self.elapsed_us if every else self.elapsed_us[rows], [50, 95, 99]
        )
        return float(p50) / 1000, float(p95) / 1000, float(p99) / 1000

    def time_axis(self, rows: np.ndarray[Any, Any]) -> tuple[int, int]:
        """(first start, last end) of the rows in microseconds: the waterfall's axis."""
        if not len(rows):
            return 0, 1
        every = len(rows) == self.n  # all rows, in some order: no copy of the columns
        starts = self.start_us if every else self.start_us[rows]
        ends = starts + (self.elapsed_us if every else self.elapsed_us[rows])
        low, high = int(starts.min()), int(ends.max())
        return low, max(high, low + 1)

    def list_rows(self, positions: np.ndarray[Any, Any], axis: tuple[int, int]) -> list[list[Any]]:
        """Compact rows for the list (the front end's window): position, time, method, host,
        path and query, status (a number, or the error type for no response), status class,
        media type, size, duration in ms, and the waterfall bar's start and width as fractions
        of ``axis`` (see :meth:`time_axis`)."""
        from ._html import request_target

        low, high = axis
        span = high - low
        out = []
        for r in self.rows(positions):
            status = r["status"]
            started = r["started_at"]
            start_us = int(started.timestamp() * 1_000_000) if started is not None else low
            out.append(
                [
                    r["position"],
                    started.strftime("%H:%M:%S.%f")[:-3] if started is not None else "",
                    r["method"],
                    r["host"],
                    request_target(r["url"]),
                    status if status is not None else (r["error_type"] or "failed"),
                    status_class(status),
                    r["content_type"],
                    r["size"],
                    round(r["elapsed_ms"], 1),
                    round(min(max((start_us - low) / span, 0.0), 1.0), 4),
                    round(min(r["elapsed_ms"] * 1000 / span, 1.0), 4),
                ]
            )
        return out

    # -- rows ----------------------------------------------------------------------------------
    def method_names(self, positions: np.ndarray[Any, Any]) -> pa.Array[Any]:
        """The methods of some rows, as an Arrow string array."""
        names = pa.array([*self.methods, ""], pa.string())
        codes = self.methods_codes[positions]
        return names.take(np.where(codes < 0, len(self.methods), codes))

    def rows(self, positions: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
        """Plain Python values of some rows (for rendering one page): position, started_at
        (aware datetime or ``None``), elapsed_ms, method, host, url, status (``None`` for a
        transport error), error_type, content_type, size."""
        take = pa.array(positions, pa.int64())
        starts: list[Any] = pa.array(
            self.start_us[positions], pa.timestamp("us", tz="UTC")
        ).to_pylist()
        content_types = [*self.content_types, ""]  # code -1: none
        hosts = [*self.hosts, ""]
        columns = {
            "position": positions.tolist(),
            "started_at": [s if s.timestamp() else None for s in starts],
            "elapsed_ms": (self.elapsed_us[positions] / 1000).tolist(),
            "method": self.method_names(positions).to_pylist(),
            "host": [hosts[c] for c in self.host_codes[positions]],
            "url": self.url.take(take).to_pylist(),
            "status": [None if s == _NO_STATUS else s for s in self.status[positions].tolist()],
            "error_type": self.error_type.take(take).to_pylist(),
            "content_type": [content_types[c] for c in self.ctype_codes[positions]],
            "size": self.size[positions].tolist(),
        }
        return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]

    def exchanges(self, positions: Sequence[int] | np.ndarray[Any, Any]) -> list[Exchange]:
        """The full exchanges (bodies included) at ``positions``, in that order (a frame linked
        to its capture asks it by row identity: an ``iloc`` would copy whole Arrow columns)."""
        import pandas as pd

        from ..frames.convert import capture_of, frame_exchanges

        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return []
        linked = pd.DataFrame()
        linked.attrs.update(self._attrs)
        if self._identity is not None and capture_of(linked) is not None:
            writer_codes, writers, seqs = self._identity
            keys = pd.DataFrame(
                {
                    "writer_id": [writers[c] for c in writer_codes[positions]],
                    "writer_seq": seqs[positions],
                }
            )
            keys.attrs.update(self._attrs)
            found = list(frame_exchanges(keys))
            return _with_recorded_chunks(capture_of(linked), keys, found)
        return list(frame_exchanges(self.frame_rows(positions)))

    def __repr__(self) -> str:
        return f"<TrafficView {self.n:,} exchanges>"


def open_view(source: object, where: Any = None) -> TrafficView:
    """A :class:`TrafficView` of a traffic DataFrame, or of anything
    :func:`traffic_lab.frames.to_pandas` reads (read with ``where`` pushed down)."""
    if isinstance(source, TrafficView):
        return source
    import pandas as pd

    from ..frames.convert import read_capture_table

    if isinstance(source, pd.DataFrame):
        if where is not None:
            raise TypeError("where= filters a capture being read; filter the DataFrame instead")
        return TrafficView(source)
    table, attrs = read_capture_table(
        source, CAPTURE_LIGHT_COLUMNS, where, dictionaries=DICTIONARY_COLUMNS
    )
    return TrafficView.from_table(table, attrs)


def _with_recorded_chunks(
    ref: Any, keys: pd.DataFrame, exchanges: list[Exchange]
) -> list[Exchange]:
    """``exchanges`` (the rows named by ``keys``) with the chunks their capture recorded for
    streamed responses (the Timing tab shows their arrivals); rows read whole are unchanged."""
    from ..stores.parquet import ParquetBase

    store = ref.store() if ref is not None and ref.partitioned else None
    if not isinstance(store, ParquetBase):
        return exchanges
    names = list(zip(keys["writer_id"], keys["writer_seq"].astype("int64"), strict=True))
    rows = {
        (str(w), int(s)): len(ex.response_body or b"")
        for (w, s), ex in zip(names, exchanges, strict=True)
        if ex.chunks is None
    }
    chunks = store.recorded_chunks(rows)
    return [
        ex.replace(chunks=chunks[(str(w), int(s))]) if (str(w), int(s)) in chunks else ex
        for (w, s), ex in zip(names, exchanges, strict=True)
    ]
