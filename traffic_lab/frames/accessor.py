"""The ``df.traffic`` accessor, registered on ``pandas.DataFrame`` when ``traffic_lab.frames``
is imported (pandas builds one on every ``df.traffic``: the constructor only checks columns).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from ..transports.requester import replay_requests
from . import analysis, views
from ._capture_ref import CAPTURE_COLUMNS
from .convert import capture_of, frame_exchanges, frame_to_table
from .where import Where, WhereArg, as_expression

if TYPE_CHECKING:
    import httpx

    from ._capture_ref import CaptureRef

__all__ = ["REQUIRED_COLUMNS", "TrafficAccessor"]

#: The columns without which a frame is not a traffic frame.
REQUIRED_COLUMNS = frozenset({"request_method", "request_url"})

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _on_frame(f: Callable[Concatenate[pd.DataFrame, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """``f(df, ...)`` as the method ``df.traffic.<name>(...)`` (same docstring)."""

    @functools.wraps(f)
    def method(self: TrafficAccessor, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return f(self._df, *args, **kwargs)

    return method


@pd.api.extensions.register_dataframe_accessor("traffic")
class TrafficAccessor:
    """Traffic analysis on a DataFrame of exchanges (``df.traffic``).

    Any frame with ``request_method`` and ``request_url`` columns qualifies. The accessor is
    also a Replay (``exchanges()``, ``requests()``, ``responses()``), so
    ``tl.responder(df.traffic)`` serves the frame's responses in its row order.

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

    @property
    def source(self) -> CaptureRef | None:
        """The capture the frame came from (``df.attrs["traffic_lab.source"]``), if known."""
        return capture_of(self._df)

    def filter(self, where: WhereArg = None, **fields: Any) -> pd.DataFrame:
        """The rows matching a ``where=`` spec (or its fields as keywords), evaluated exactly as
        it is pushed down to a capture (the frame needs the columns the spec uses).

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
        expr = as_expression(where)
        if expr is None:
            return self._df
        # Only the columns the filter names are converted.
        table = frame_to_table(self._df, [c for c in CAPTURE_COLUMNS if c in str(expr)])
        table = table.append_column("__row", pa.array(np.arange(len(self._df))))
        return self._df.iloc[table.filter(expr).column("__row").to_numpy()]

    summary = _on_frame(analysis.summary)
    endpoint = _on_frame(analysis.endpoint_series)
    endpoints = _on_frame(analysis.endpoints)
    duplicates = _on_frame(analysis.duplicates)
    compare = _on_frame(analysis.compare)
    body = _on_frame(views.body)
    text = _on_frame(views.text)
    json = _on_frame(views.json_values)
    headers = _on_frame(views.header_pairs)
    header = _on_frame(views.header)
    exchanges = _on_frame(frame_exchanges)

    def requests(self) -> Iterator[httpx.Request]:
        """The rows' requests as ``httpx.Request`` objects, in row order."""
        return (exchange.request for exchange in self.exchanges())

    def responses(self) -> Iterator[httpx.Response]:
        """The rows' responses (read), in row order; raises a recorded transport error again."""
        for exchange in self.exchanges():
            yield exchange.response or exchange.new_response()  # new_response() raises it

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
        recorded one.

        Returns a frame indexed like this one: ``recorded_status``, ``live_status`` (``Int32``,
        NA on a transport error), ``live_elapsed_ms``, ``live_response_bytes`` (decoded),
        ``changed``, ``changes`` (the diff as text), ``error`` and ``result`` (the
        :class:`~traffic_lab.transports.ReplayResult`).
        """
        results = list(
            replay_requests(
                self.exchanges(), client, base_url=base_url, concurrency=concurrency, rate=rate
            )
        )
        lives = [result.response for result in results]
        diffs = [r.diff() if r.response is not None else None for r in results]
        data = {
            "recorded_status": [result.recorded.status_code for result in results],
            "live_status": [live.status_code if live is not None else None for live in lives],
            "live_elapsed_ms": [_elapsed_ms(live) for live in lives],
            "live_response_bytes": [
                len(live.content) if live is not None else None for live in lives
            ],
            "changed": [bool(diff) if diff is not None else True for diff in diffs],
            "changes": [str(diff) if diff is not None else "" for diff in diffs],
            "error": [repr(r.error) if r.error is not None else None for r in results],
            "result": results,
        }
        out = pd.DataFrame(data, index=self._df.index[: len(results)])
        for column in ("recorded_status", "live_status", "live_response_bytes"):
            out[column] = out[column].astype("Int32")
        return out


def _elapsed_ms(response: httpx.Response | None) -> float:
    try:
        return response.elapsed.total_seconds() * 1000 if response is not None else float("nan")
    except RuntimeError:  # a response that was never closed (some mock transports)
        return float("nan")
