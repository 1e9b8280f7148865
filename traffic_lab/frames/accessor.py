"""The ``df.traffic`` accessor, registered on ``pandas.DataFrame`` when ``traffic_lab.frames``
is imported.

It follows pandas' accessor contract: the constructor is cheap (pandas builds a new accessor on
every ``df.traffic``) and raises ``AttributeError`` for a frame that is not a traffic frame, so
``hasattr(df, "traffic")`` is False for it. The work happens in the methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import analysis, views
from .analysis import DEFAULT_SEGMENT_RULES, SegmentRule
from .convert import capture_of, frame_exchanges, frame_to_table
from .where import Where, WhereArg, as_expression

if TYPE_CHECKING:
    import httpx

    from ..exchange import Exchange
    from ..matching import Matcher
    from ._capture_ref import CaptureRef
    from .views import Side

__all__ = ["REQUIRED_COLUMNS", "TrafficAccessor"]

#: The columns without which a frame is not a traffic frame.
REQUIRED_COLUMNS = frozenset({"request_method", "request_url"})
_FIELD_COLUMNS = {
    "host": "request_host",
    "method": "request_method",
    "status": "response_status",
    "start": "started_at",
    "end": "started_at",
    "path": "request_path",
    "failed": "error_type",
    "tags": "tags",
}


def _where_columns(where: Where) -> list[str]:
    return sorted({c for f, c in _FIELD_COLUMNS.items() if getattr(where, f) is not None})


@pd.api.extensions.register_dataframe_accessor("traffic")
class TrafficAccessor:
    """Traffic analysis on a DataFrame of exchanges (``df.traffic``).

    A traffic frame comes from :func:`~traffic_lab.read_capture` or
    :func:`~traffic_lab.frames.to_pandas`; any frame with ``request_method`` and
    ``request_url`` columns qualifies. The accessor is also a Replay (``exchanges()``,
    ``requests()``, ``responses()``), so ``tl.responder(df.traffic)`` serves the frame's
    responses in its row order.

    Examples
    --------
    >>> import pandas as pd, traffic_lab.frames
    >>> hasattr(pd.DataFrame({"a": [1]}), "traffic")
    False
    """

    def __init__(self, df: pd.DataFrame) -> None:
        missing = REQUIRED_COLUMNS - set(df.columns)
        if missing:
            raise AttributeError(
                f"not a traffic frame (missing columns {sorted(missing)}); load one with "
                "traffic_lab.read_capture() or traffic_lab.frames.to_pandas()"
            )
        self._df = df

    # -- source ----------------------------------------------------------------------------------
    @property
    def source(self) -> CaptureRef | None:
        """The capture the frame came from (``df.attrs["traffic_lab.source"]``), if known."""
        return capture_of(self._df)

    # -- selection -------------------------------------------------------------------------------
    def filter(self, where: WhereArg = None, **fields: Any) -> pd.DataFrame:
        """The rows matching a ``where=`` spec, evaluated exactly as it is pushed down to a
        capture (the frame needs the columns the spec uses).

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> df = tl.frames.to_pandas([make_exchange(status_code=s) for s in (200, 502, 404)])
        >>> df.traffic.filter(status="5xx").response_status.tolist()
        [502]
        """
        if fields:
            if where is not None:
                raise TypeError("pass either where= or keyword fields, not both")
            where = Where(**fields)
        if isinstance(where, dict):
            where = Where(**where)
        expr = as_expression(where)
        if expr is None:
            return self._df
        import numpy as np
        import pyarrow as pa

        # Only the columns a Where looks at are converted (an Expression may use any).
        columns = _where_columns(where) if isinstance(where, Where) else None
        table = frame_to_table(self._df, columns)
        table = table.append_column("__row", pa.array(np.arange(len(self._df))))
        rows = table.filter(expr).column("__row").to_numpy()
        return self._df.iloc[rows]

    # -- analyses --------------------------------------------------------------------------------
    def summary(self) -> pd.Series[Any]:
        """Headline figures: counts, time span, status classes, error rate, latency, bytes.

        ``error_rate`` counts 4xx, 5xx and transport failures; ``repeated_requests`` counts rows
        whose ``request_key`` appeared earlier.

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> exs = [make_exchange(status_code=s, elapsed_ms=ms) for s, ms in [(200, 10), (500, 30)]]
        >>> s = tl.frames.to_pandas(exs).traffic.summary()
        >>> s[["exchanges", "status_2xx", "status_5xx", "error_rate", "p50_ms"]].tolist()
        [2, 1, 1, 0.5, 20.0]
        """
        return analysis.summary(self._df)

    def endpoint(self, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES) -> pd.Series[Any]:
        """The endpoint template of each row (``/users/{id}``), categorical."""
        return analysis.endpoint_series(self._df, rules)

    def endpoints(
        self, *, by_host: bool = False, rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES
    ) -> pd.DataFrame:
        """Per endpoint (method and path template): counts, latency, errors, payload sizes.

        Parameters
        ----------
        by_host
            Group by host too.
        rules
            Segment rules for templates (default
            :data:`~traffic_lab.frames.analysis.DEFAULT_SEGMENT_RULES`: ``{id}``, ``{uuid}``,
            ``{hash}``).

        Returns
        -------
        pandas.DataFrame
            Indexed by (``method``, ``endpoint``), most requested first. Columns: ``count``,
            ``p50_ms``, ``p90_ms``, ``p99_ms`` (linear interpolation), ``mean_ms``,
            ``max_ms``, ``errors_4xx``, ``errors_5xx``, ``failed`` (transport errors),
            ``error_rate`` (all three over count), ``server_error_rate`` (5xx and failed),
            ``request_bytes_mean``, ``response_bytes_mean``, ``response_bytes_max``,
            ``response_bytes_total`` (wire sizes).

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> exs = [make_exchange(url=f"https://a.example/users/{i}", elapsed_ms=10 * i)
        ...        for i in range(1, 5)]
        >>> df = tl.frames.to_pandas(exs)
        >>> table = df.traffic.endpoints()
        >>> table[["count", "p50_ms", "error_rate"]]  # doctest: +NORMALIZE_WHITESPACE
                             count  p50_ms  error_rate
        method endpoint
        GET    /users/{id}      4    25.0         0.0
        """
        return analysis.endpoints(self._df, by_host=by_host, rules=rules)

    def duplicates(self, key: str | Sequence[str] | Matcher = "request_key") -> pd.DataFrame:
        """Requests repeated under the same key, and what a cache would have saved.

        Parameters
        ----------
        key
            A column (default ``request_key``, the capture matcher's key), several columns, or
            a :class:`~traffic_lab.Matcher` to key the requests afresh.

        Returns
        -------
        pandas.DataFrame
            One row per repeated key (index ``key``): ``request_method``, ``request_url`` (of
            the first), ``count``, ``repeats`` (rows a cache would have answered: those after
            the first complete response for the key), ``saved_ms`` (their elapsed time),
            ``saved_bytes`` (their request and response body bytes), ``first_at``, ``last_at``.
            Largest savings first.

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> exs = [make_exchange(elapsed_ms=ms, response_body=b"12345") for ms in (40, 30, 20)]
        >>> table = tl.frames.to_pandas(exs).traffic.duplicates()
        >>> table[["count", "repeats", "saved_ms", "saved_bytes"]].to_dict("records")
        [{'count': 3, 'repeats': 2, 'saved_ms': 50.0, 'saved_bytes': 10}]
        """
        return analysis.duplicates(self._df, key)

    def compare(
        self,
        other: pd.DataFrame,
        *,
        labels: tuple[str, str] = ("a", "b"),
        by_host: bool = False,
        sample: int = 100,
        rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
    ) -> pd.DataFrame:
        """Compare this frame (``a``) with another (``b``), endpoint by endpoint.

        Two captures, two sessions (``where={"tags": {"session": ...}}``), before and after a
        deploy. JSON schema drift compares the shapes of up to ``sample`` successful (2xx) JSON
        responses per endpoint and side (bodies are fetched for those rows only).

        Returns
        -------
        pandas.DataFrame
            Indexed like :meth:`endpoints`, endpoints of both sides (outer join). Columns, with
            the ``labels`` as suffixes: ``count_*``, ``error_rate_*``, ``statuses_*`` (dict of
            status code to count; transport failures count in ``error_rate`` only),
            ``p50_ms_*``, ``p90_ms_*``, ``p50_ratio`` (b over a), ``response_bytes_mean_*``,
            then ``schema_changed``, ``fields_added``, ``fields_removed`` (JSON paths such as
            ``$.items[].price``) and ``types_changed`` (``"$.total: number -> string"``).

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
        return analysis.compare(
            self._df, other, labels=labels, by_host=by_host, sample=sample, rules=rules
        )

    # -- back to httpx ---------------------------------------------------------------------------
    def exchanges(self, source: Any = None) -> Iterator[Exchange]:
        """The rows as :class:`~traffic_lab.Exchange` objects, in row order.

        Values come from the frame's columns (edits count); columns it did not load (bodies,
        headers...) are fetched from its capture by row identity, or from ``source``.

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> df = tl.frames.to_pandas([make_exchange(json={"id": 1})])
        >>> [ex.response.json() for ex in df.traffic.exchanges()]
        [{'id': 1}]
        """
        return frame_exchanges(self._df, source)

    def requests(self) -> Iterator[httpx.Request]:
        """The rows' requests as ``httpx.Request`` objects, in row order."""
        return (exchange.request for exchange in self.exchanges())

    def responses(self) -> Iterator[httpx.Response]:
        """The rows' responses (read), in row order; raises a recorded transport error again."""
        for exchange in self.exchanges():
            response = exchange.response
            if response is None:
                assert exchange.error is not None
                raise exchange.error.to_exception(exchange.request)
            yield response

    def replay(
        self,
        client: httpx.Client,
        *,
        base_url: str | None = None,
        concurrency: int = 1,
        rate: float | None = None,
    ) -> pd.DataFrame:
        """Send the rows' requests again through ``client`` (see
        :func:`~traffic_lab.transports.replay_requests`) and compare each live response with the
        recorded
        one.

        Returns
        -------
        pandas.DataFrame
            Indexed like the frame: ``recorded_status``, ``live_status`` (``Int32``, NA on a
            transport error), ``live_elapsed_ms``, ``live_response_bytes`` (decoded),
            ``changed`` (the diff is not empty), ``changes`` (the diff as text), ``error`` and
            ``result`` (the :class:`~traffic_lab.transports.ReplayResult`).
        """
        from ..transports.requester import replay_requests

        rows: list[dict[str, Any]] = []
        for result in replay_requests(
            self.exchanges(), client, base_url=base_url, concurrency=concurrency, rate=rate
        ):
            live = result.response
            diff = result.diff() if live is not None else None
            rows.append(
                {
                    "recorded_status": result.recorded.status_code,
                    "live_status": live.status_code if live is not None else None,
                    "live_elapsed_ms": _elapsed_ms(live),
                    "live_response_bytes": len(live.content) if live is not None else None,
                    "changed": bool(diff) if diff is not None else True,
                    "changes": str(diff) if diff is not None else "",
                    "error": repr(result.error) if result.error is not None else None,
                    "result": result,
                }
            )
        out = pd.DataFrame(rows, index=self._df.index[: len(rows)])
        if out.empty:
            out = pd.DataFrame(columns=["recorded_status", "live_status", "changed"])
        for column in ("recorded_status", "live_status", "live_response_bytes"):
            if column in out.columns:
                out[column] = out[column].astype("Int32")
        return out

    # -- decoded views ---------------------------------------------------------------------------
    def body(self, side: Side = "response", *, decoded: bool = True) -> pd.Series[Any]:
        """Body bytes per row, decoded from gzip/deflate/brotli (see :func:`views.body`)."""
        return views.body(self._df, side, decoded=decoded)

    def text(self, side: Side = "response") -> pd.Series[Any]:
        """Body text per row (see :func:`views.text`)."""
        return views.text(self._df, side)

    def json(self, side: Side = "response") -> pd.Series[Any]:
        """Parsed JSON bodies per row, ``None`` where not JSON (see :func:`views.json_values`).

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> tl.frames.to_pandas([make_exchange(json=[1, 2])]).traffic.json().tolist()
        [[1, 2]]
        """
        return views.json_values(self._df, side)

    def headers(self, side: Side = "response") -> pd.Series[Any]:
        """Headers per row as ordered ``(name, value)`` pairs (see :func:`views.header_pairs`)."""
        return views.header_pairs(self._df, side)

    def header(self, name: str, side: Side = "response") -> pd.Series[Any]:
        """One header's value per row, case-insensitive (see :func:`views.header`).

        Examples
        --------
        >>> import traffic_lab as tl
        >>> from traffic_lab.testing import make_exchange
        >>> df = tl.frames.to_pandas([make_exchange(json={})])
        >>> df.traffic.header("content-type").tolist()
        ['application/json']
        """
        return views.header(self._df, name, side)


def _elapsed_ms(response: httpx.Response | None) -> float:
    if response is None:
        return float("nan")
    try:
        return response.elapsed.total_seconds() * 1000
    except RuntimeError:  # a response that was never closed (some mock transports)
        return float("nan")
