"""TrafficBrowser: a network-panel view of a capture in a notebook (an anywidget).

The kernel holds the capture's light columns (:class:`~._browser_data.TrafficView`: numpy codes
and numbers, Arrow strings) and answers the front end (``static/browser.js``) with only the rows
in view. Filters, sort and selection are traitlets, so code and the page drive the same state.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import httpx
import numpy as np
import pandas as pd
import traitlets

from ..exchange import Exchange
from ..frames.display import format_bytes, format_ms
from ..transports.requester import ReplayResult, build_replay_request
from ._browser_data import COLUMNS, Criteria, TrafficView, open_view, sort_key
from ._controls import ReplayClient
from ._detail import detail_html
from ._html import esc, shorten
from ._static import STATIC, StaticSnapshot, widget_css

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TrafficBrowser"]

#: Rows in the static snapshot's list.
SNAPSHOT_ROWS = 20
#: The most rows one window request is answered with.
MAX_WINDOW = 500
_NO_ROW = -1
#: Exchanges read ahead below the selected row (and two above), for the arrow keys.
NEIGHBOURS = 12
#: ... when they were recorded at most this many rows away from it.
NEAR_ROWS = 2048


def browser_css() -> str:
    """The browser's style sheet, with the detail pane's."""
    return widget_css("browser", "detail")


def _list_filter(description: str) -> Any:
    return traitlets.List(traitlets.Unicode(), help=description).tag(sync=True, filter=True)


#: Lists at least this long sort by duration (slowest first) in the background once open.
PREFETCH_ROWS = 2_000_000


class TrafficBrowser(StaticSnapshot, anywidget.AnyWidget):
    """Browse a capture like a browser's network panel: a virtual list of every exchange,
    filter chips, search, a time brush, sort by any column, the selected exchange's detail,
    replay with a diff, and the selection handed back to pandas.

    Only the rows in view travel to the page, so it stays fast on millions of exchanges; the
    selected exchange is read back in full (bodies included) from its store.

    Parameters
    ----------
    source
        A capture: a ``ParquetStream``/``ParquetCache`` (or a path to one), a DataFrame from
        ``traffic_lab.frames``, a memory store, or an iterable of exchanges.
    where
        Read only these exchanges from the capture (a ``traffic_lab.Where``, its dict, or an
        Arrow Expression; pushed down to the Parquet files). Not for a DataFrame.
    client
        The ``httpx.Client`` replays are sent with (inject one to point at a test server or to
        add auth). Default: a plain client made on first replay.
    base_url
        Replay to this base URL instead of the recorded host (editable in the detail pane).

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> from traffic_lab.widgets import TrafficBrowser
    >>> stream = tl.MemoryStream()
    >>> for status in (200, 404, 500, 200):
    ...     stream.put(make_exchange(status_code=status))
    >>> browser = TrafficBrowser(stream)
    >>> browser.status = "4xx,5xx"
    >>> browser.matches, browser.selected_exchange
    (2, None)
    >>> browser.click(1)
    >>> browser.selected_exchange.status_code, len(browser.selected)
    (500, 1)
    """

    _esm = STATIC / "browser.js"
    _css = browser_css()

    # The filters (tagged ``filter``): each has a control, and ``filter()`` sets them at once.
    methods = _list_filter("request methods to keep (any if empty)")
    hosts = _list_filter("hosts to keep (any if empty)")
    content_types = _list_filter("media types to keep (any if empty)")
    status = traitlets.Unicode("", help="2xx, 4xx,5xx, 404, 500-599 or failed").tag(
        sync=True, filter=True
    )
    search = traitlets.Unicode("", help="URL substring, or a /path/glob*").tag(
        sync=True, filter=True
    )
    search_bodies = traitlets.Bool(False, help="search decoded bodies too (bounded)").tag(
        sync=True, filter=True
    )
    time_range = traitlets.List(
        traitlets.Int(), help="[since, until] in microseconds since the epoch; [] for all"
    ).tag(sync=True, filter=True)
    #: A column of :data:`COLUMNS` (``"-status"``: descending); ``""`` for recorded order.
    sort = traitlets.Unicode("").tag(sync=True, filter=True)

    # What the page shows.
    total = traitlets.Int(0).tag(sync=True)
    matches = traitlets.Int(0, read_only=True).tag(sync=True)
    header = traitlets.Unicode("").tag(sync=True)
    columns = traitlets.List(traitlets.List()).tag(sync=True)
    hidden_columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    facets = traitlets.Dict().tag(sync=True)
    histogram = traitlets.Dict().tag(sync=True)
    #: The rows in view: ``{"start", "rows", "generation"}`` (rows: see ``list_rows``).
    window = traitlets.Dict().tag(sync=True)
    generation = traitlets.Int(0).tag(sync=True)
    #: Positions (in the whole capture) of the selected exchanges, in selection order.
    selected_positions = traitlets.List(traitlets.Int()).tag(sync=True)
    #: Index in the list of the focused row (the detail shows it); -1 for none.
    cursor = traitlets.Int(_NO_ROW).tag(sync=True)
    detail_html = traitlets.Unicode("").tag(sync=True)
    detail_open = traitlets.Bool(True).tag(sync=True)
    base_url = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    #: The selected rows as a traffic frame (observe it: ``browser.observe(f, "selected")``).
    selected = traitlets.Instance(pd.DataFrame, allow_none=False)

    def __init__(
        self,
        source: object,
        *,
        where: Any = None,
        client: httpx.Client | None = None,
        base_url: str = "",
        **kwargs: Any,
    ) -> None:
        self._client = ReplayClient(client)  # first: close() runs even if opening fails
        self.view: TrafficView = open_view(source, where)
        self._rows: np.ndarray[Any, Any] = np.arange(self.view.n)
        self._axis = (0, 1)  # the selection's time axis: set by _apply
        self._window = (0, 0)
        self._anchor = _NO_ROW
        self._exchange: tuple[int, Exchange] | None = None
        self._nearby: dict[int, Exchange] = {}
        self._replay: ReplayResult | None = None
        self._batching = False
        self._counted: tuple[Criteria, bool, str] | None = None
        low, high, counts = self.view.histogram()
        super().__init__(
            total=self.view.n,
            columns=[[key, label] for key, label in COLUMNS.items()],
            facets={k: [list(pair) for pair in v] for k, v in self.view.facets().items()},
            histogram={"low": low, "high": high, "counts": counts},
            selected=self.view.frame_rows(np.zeros(0, dtype=np.int64)),
            base_url=base_url,
            **kwargs,
        )
        self.observe(self._on_filters, names=self.trait_names(filter=True))
        self.observe(self._on_selection, names="selected_positions")
        self.observe(self._on_cursor, names="cursor")
        self.on_msg(self._on_message)
        self._apply()
        if self.view.n >= PREFETCH_ROWS:
            # "slowest first" is the sort people ask for; at 10M rows it takes half a second
            self.view.prefetch("duration", descending=True)

    # -- filters -------------------------------------------------------------------------------
    def criteria(self) -> Criteria:
        """The current filters as a :class:`~traffic_lab.widgets._browser_data.Criteria`."""
        since, until = self.time_range if len(self.time_range) == 2 else (None, None)
        return Criteria(
            methods=tuple(self.methods),
            hosts=tuple(self.hosts),
            status=self.status,
            since_us=since,
            until_us=until,
            search="" if self.search_bodies else self.search,
            content_types=tuple(self.content_types),
        )

    def filter(self, **values: Any) -> TrafficBrowser:
        """Set several filters at once (one refresh): ``browser.filter(status="5xx", hosts=[h])``.

        Unknown names raise ``TypeError``. Returns the browser, so it displays in a cell.
        """
        filters = self.trait_names(filter=True)
        unknown = set(values) - set(filters)
        if unknown:
            raise TypeError(f"unknown filters {sorted(unknown)}; use {sorted(filters)}")
        self._batching = True
        try:
            with self.hold_trait_notifications():
                for name, value in values.items():
                    setattr(self, name, value)
        finally:
            self._batching = False
        self._apply()
        return self

    def reset(self) -> None:
        """Clear every filter (and the sort)."""
        self.filter(**{name: self.trait_defaults(name) for name in self.trait_names(filter=True)})

    # A bad value raises in the caller's cell and is not kept.
    @traitlets.validate("sort")
    def _valid_sort(self, proposal: Any) -> str:
        sort_key(proposal["value"])
        return str(proposal["value"])

    @traitlets.validate("status")
    def _valid_status(self, proposal: Any) -> str:
        from ..frames.where import parse_status

        if proposal["value"].strip():
            parse_status(proposal["value"])
        return str(proposal["value"])

    def _on_filters(self, change: Any) -> None:
        if not self._batching:
            self._apply()

    def _apply(self) -> None:
        criteria = self.criteria()
        rows = self.view.select(criteria, self.sort)
        if self.search_bodies and self.search.strip():
            rows = self._search_bodies(rows, self.search.strip())
        self._rows = rows
        counted = (criteria, self.search_bodies, self.search)
        if counted != self._counted:  # a new sort keeps the same rows: no new counts
            self._counted = counted
            self._axis = self.view.time_axis(rows)
            self.set_trait("matches", len(rows))
            self.header = self.header_text()
        position = self._exchange[0] if self._exchange is not None else _NO_ROW
        self.generation += 1
        self._send_window(*self._window)
        self.cursor = self.index_of(position)

    def _search_bodies(self, rows: np.ndarray[Any, Any], text: str) -> np.ndarray[Any, Any]:
        """The rows whose URL, or decoded request or response body, holds ``text`` (case
        folded). Bodies are read from the capture in batches, for at most
        :data:`~.body_search.BODY_SEARCH_LIMIT` rows; ``progress`` says how far it got."""
        from .body_search import search_bodies

        def report(done: int, total: int, hits: int) -> None:
            self.progress = f"searched bodies of {done:,} of {total:,} exchanges: {hits:,} hits"

        url_hits = self.view.select(Criteria(search=text))
        return search_bodies(self.view, rows, text, url_hits, report)

    def header_text(self) -> str:
        """The header line: counts and latency percentiles of the selection."""
        line = f"{len(self._rows):,} of {self.view.n:,} exchanges"
        latency = self.view.latency(self._rows)
        if latency is not None:
            p50, p95, p99 = latency
            line += f" \u00b7 p50 {p50:,.1f} ms \u00b7 p95 {p95:,.1f} ms \u00b7 p99 {p99:,.1f} ms"
        return line

    # -- the list ------------------------------------------------------------------------------
    @property
    def rows(self) -> np.ndarray[Any, Any]:
        """Positions (in the whole capture) of the matching exchanges, in list order."""
        return self._rows

    def index_of(self, position: int) -> int:
        """The list index of the exchange at ``position`` (-1 when it is filtered out)."""
        if position < 0:
            return _NO_ROW
        found = np.flatnonzero(self._rows == position)
        return int(found[0]) if len(found) else _NO_ROW

    def window_rows(self, start: int, count: int) -> dict[str, Any]:
        """Answer the front end's request for rows ``[start, start + count)`` of the list (at
        most :data:`MAX_WINDOW`): sets and returns :attr:`window`."""
        return self._send_window(start, count)

    def _send_window(self, start: int, count: int) -> dict[str, Any]:
        count = max(0, min(int(count), MAX_WINDOW))
        start = max(0, min(int(start), max(len(self._rows) - count, 0)))
        self._window = (start, count)
        positions = self._rows[start : start + count]
        self.window = {
            "start": start,
            "rows": self.view.list_rows(positions, self._axis),
            "generation": self.generation,
        }
        return self.window

    # -- selection -----------------------------------------------------------------------------
    def click(self, index: int, *, shift: bool = False, toggle: bool = False) -> None:
        """Act as a click on the list's row ``index``: select it alone; with ``shift`` the range
        from the last clicked row; with ``toggle`` (ctrl/cmd) add or remove it."""
        if not 0 <= index < len(self._rows):
            raise IndexError(f"no row {index} in the list (0..{len(self._rows) - 1})")
        position = int(self._rows[index])
        if shift and self._anchor >= 0:
            low, high = sorted((self._anchor, index))
            self.selected_positions = self._rows[low : high + 1].tolist()
        elif toggle:
            chosen = list(self.selected_positions)
            if position in chosen:
                chosen.remove(position)
            else:
                chosen.append(position)
            self.selected_positions = chosen
            self._anchor = index
        else:
            self.selected_positions = [position]
            self._anchor = index
        self.cursor = index

    def move(self, step: int) -> None:
        """Move the selection ``step`` rows (the keyboard's up and down arrows)."""
        if not len(self._rows):
            return
        index = min(max(self.cursor + step if self.cursor >= 0 else 0, 0), len(self._rows) - 1)
        self.click(index)

    def select(self, positions: Sequence[int]) -> None:
        """Select the exchanges at these positions (in the whole capture)."""
        bad = [p for p in positions if not 0 <= p < self.view.n]
        if bad:
            raise IndexError(f"no exchange at positions {bad[:5]} (0..{self.view.n - 1})")
        self.selected_positions = [int(p) for p in positions]
        self.cursor = self.index_of(self.selected_positions[-1]) if positions else _NO_ROW
        if positions and self.cursor < 0:  # filtered out of the list: still shown
            self._show(self.selected_positions[-1])

    def _on_selection(self, change: Any) -> None:
        self.selected = self.view.frame_rows(np.asarray(self.selected_positions, dtype=np.int64))

    def _on_cursor(self, change: Any) -> None:
        if self.cursor >= 0:
            self._show(int(self._rows[self.cursor]))

    def _show(self, position: int) -> None:
        if self._exchange is not None and self._exchange[0] == position:
            return
        self._replay = None
        self._exchange = (position, self._read(position))
        self._render_detail()

    def _read(self, position: int) -> Exchange:
        """The exchange at ``position``, read with its neighbours in the list: one read of the
        capture costs about the same for a few rows as for one, and the arrow keys then find
        the next exchange already here (:data:`NEIGHBOURS`)."""
        cached = self._nearby.get(position)
        if cached is not None:
            return cached
        around = (
            self._rows[max(self.cursor - 2, 0) : self.cursor + NEIGHBOURS]
            if (self.cursor >= 0 and self._rows[self.cursor] == position)
            else np.array([], dtype=np.int64)
        )
        # Only rows recorded near it: far ones (a sorted list) would widen the read.
        near = around[(np.abs(around - position) <= NEAR_ROWS) & (around != position)]
        batch = [position, *near.tolist()]
        self._nearby = dict(zip(batch, self.view.exchanges(batch), strict=True))
        return self._nearby[position]

    def _render_detail(self) -> None:
        if self._exchange is None:
            self.detail_html = ""
            return
        position, exchange = self._exchange
        self.detail_html = detail_html(
            exchange, replay=self._replay, uid=f"tl{position}", style=False
        )

    @property
    def selected_exchange(self) -> Exchange | None:
        """The exchange shown in the detail pane, bodies included (``None`` before a click)."""
        return self._exchange[1] if self._exchange is not None else None

    # -- the front end's messages -------------------------------------------------------------
    def _on_message(self, widget: object, content: Any, buffers: object) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "window":
                self.window_rows(int(content["start"]), int(content["count"]))
            elif kind == "click":
                self.click(
                    int(content["index"]),
                    shift=bool(content.get("shift")),
                    toggle=bool(content.get("toggle")),
                )
            elif kind == "move":
                self.move(int(content["step"]))
            elif kind == "open":
                self.detail_open = True
            elif kind == "replay":
                self.replay()
            elif kind == "reset":
                self.reset()
            self.error = ""
        except Exception as exc:  # shown in the widget: a callback's error has no cell
            self.error = f"{type(exc).__name__}: {exc}"

    # -- replay --------------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        """The client replays are sent with."""
        return self._client.get()

    def replay(self) -> ReplayResult:
        """Send the selected exchange's request again (to :attr:`base_url` if set) and show the
        live response's diff with the recording in the detail pane.

        Returns a :class:`~traffic_lab.transports.ReplayResult`; a transport error propagates
        (the page shows it).
        """
        exchange = self.selected_exchange
        if exchange is None:
            raise ValueError("no exchange selected")
        request = build_replay_request(self.client, exchange, self.base_url.strip() or None)
        started = time.perf_counter()
        try:
            response = self.client.send(request)
        except httpx.TransportError as exc:
            self._replay = ReplayResult(exchange, None, exc)  # the pane says what failed
            self._render_detail()
            raise
        # Measured here: a response from a MockTransport or a handler never gets .elapsed.
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        self._replay = ReplayResult(exchange, response)
        self._render_detail()
        return self._replay

    # -- results -------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """The matching exchanges as a traffic frame (light columns), in list order.

        Still linked to its capture: ``browser.frame().traffic`` works on it.
        """
        return self.view.frame_rows(self._rows)

    def exchanges(self, limit: int | None = None) -> list[Exchange]:
        """The matching exchanges (bodies included), in list order; at most ``limit``."""
        rows = self._rows if limit is None else self._rows[:limit]
        return self.view.exchanges(rows)

    def export(
        self, path: str | os.PathLike[str], format: str = "har", *, selection: bool = False
    ) -> int:
        """Write the matching exchanges (or, with ``selection=True``, the selected ones) to a
        HAR file or a new capture folder; returns the count.

        Parameters
        ----------
        path
            The HAR file, or the capture folder (must not exist yet, or be empty).
        format
            ``"har"`` or ``"capture"`` (Parquet, readable with ``tl.ParquetStream(path)``).
        selection
            Export the selected rows (``browser.selected``) instead of the whole list.
        """
        frame = self.selected if selection else self.frame()
        if format == "har":
            from ..frames.convert import frame_exchanges
            from ..interop import write_har

            return write_har(list(frame_exchanges(frame)), Path(path))
        if format == "capture":
            from ..frames.convert import write_capture

            return write_capture(frame, path)
        raise ValueError(f"unknown export format {format!r}: use 'har' or 'capture'")

    def close(self) -> None:
        """Close the widget, and the replay client if the browser made it."""
        self._client.close()
        super().close()

    # -- the static snapshot -------------------------------------------------------------------
    def snapshot_html(self) -> str:
        """The browser as static HTML (no script): the header line, the first
        :data:`SNAPSHOT_ROWS` rows of the list, and the shown (or first) exchange's detail.
        Every text from the capture is escaped."""
        positions = self._rows[:SNAPSHOT_ROWS]
        shown = [k for k in COLUMNS if k not in self.hidden_columns]
        head = "".join(
            f"<th class='tl-header-cell' data-col='{k}'>{esc(COLUMNS[k])}</th>" for k in shown
        )
        head += "<th class='tl-header-cell' data-col='waterfall'>Waterfall</th>"
        # Where each column's value is in a list row (index 6 is the status class).
        cells = dict(zip(COLUMNS, (1, 2, 3, 4, 5, 7, 8, 9), strict=True))
        units = {"size": format_bytes, "duration": format_ms}
        widths = {"url": 56, "host": 28, "status": 18, "type": 24}  # characters, then "..."
        body = []
        for row in self.view.list_rows(positions, self._axis):
            values = [
                esc(
                    units[k](row[cells[k]])
                    if k in units
                    else shorten(str(row[cells[k]]), widths.get(k, 120))
                )
                for k in shown
            ]
            tds = "".join(
                f"<td class='tl-cell tl-col-{k}{' ' + row[6] if k == 'status' else ''}'>{v}</td>"
                for k, v in zip(shown, values, strict=True)
            )
            bar = (
                f"<div class='tl-bar {row[6]}' style='margin-left:{row[10] * 100:.2f}%;"
                f"width:max(2px,{row[11] * 100:.2f}%)'></div>"
            )
            selected = " tl-row-selected" if row[0] in self.selected_positions else ""
            wf = f"<td class='tl-cell tl-waterfall'>{bar}</td>"
            body.append(f"<tr class='tl-row{selected}'>{tds}{wf}</tr>")
        more = len(self._rows) - len(positions)
        if more > 0:
            body.append(
                f"<tr><td class='tl-note' colspan='{len(shown) + 1}'>\u2026 and {more:,} more"
                " (the live widget scrolls through all of them)</td></tr>"
            )
        exchange = self.selected_exchange
        position = self._exchange[0] if self._exchange is not None else _NO_ROW
        if exchange is None and len(self._rows):
            position = int(self._rows[0])
            exchange = self.view.exchanges([position])[0]
        detail = (
            detail_html(exchange, replay=self._replay, uid=f"tls{position}", style=False)
            if exchange is not None
            else "<div class='tl-detail tl-note'>no exchange</div>"
        )
        return (
            f"<div class='tl-browser tl-snapshot'><style>{browser_css()}</style>"
            f"<div class='tl-count'>{esc(self.header_text())}</div>"
            f"<div class='tl-split'><div class='tl-list-pane'><table class='tl-table'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            f"<div class='tl-detail-pane'>{detail}</div></div></div>"
        )
