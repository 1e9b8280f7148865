"""TrafficBrowser: filter, page through, inspect, replay and export a capture in a notebook."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import ipywidgets as w  # type: ignore[import-untyped]  # ipywidgets ships no types
import numpy as np
import traitlets

from ..exchange import Exchange
from ..transports.requester import ReplayResult
from ._browser_data import SORTS, STATUS_CLASSES, Criteria, TrafficView, open_view
from ._controls import ErrorArea, button, classed, text_box
from ._html import _STYLE, esc, shorten
from .inspector import ExchangeInspector

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrafficBrowser"]

_ANY = ""
_NO_ROW = -1
_PLACEHOLDER = ("\u2014 select an exchange \u2014", _NO_ROW)
_ALL_STATUSES = (100, 599)
_MAX_CHOICES = 200
_TIME_STEPS = 60
_COLUMNS = ("#", "time (UTC)", "method", "URL", "status", "ms", "bytes", "type")


def _status_class(status: int | None) -> str:
    if status is None or status < 0:
        return "tl-serr"
    return f"tl-s{min(max(status // 100, 1), 5)}"


def _choices(values: list[str], codes: np.ndarray[Any, Any]) -> list[tuple[str, str]]:
    """Dropdown options: "any", then the values by how often they occur (at most 200)."""
    counts = np.bincount(codes[codes >= 0], minlength=len(values))
    ranked = sorted(range(len(values)), key=lambda i: -counts[i])[:_MAX_CHOICES]
    options = [("any", _ANY)] + [(f"{values[i]} ({counts[i]:,})", values[i]) for i in ranked]
    missing = int((codes < 0).sum())
    if missing:
        options.append((f"(none) ({missing:,})", "(none)"))
    return options


def _time_options(start_us: np.ndarray[Any, Any]) -> list[tuple[str, int]]:
    """The time slider's steps over the capture: (label, microseconds since the epoch)."""
    if not len(start_us):
        return [("-", 0)]
    low, high = int(start_us.min()), int(start_us.max())
    edges = sorted({int(s) for s in np.linspace(low, high, _TIME_STEPS + 1)} | {high})
    fmt = "%H:%M:%S" if high - low < 86_400_000_000 else "%Y-%m-%d %H:%M"
    return [(datetime.fromtimestamp(e / 1e6, UTC).strftime(fmt), e) for e in edges]


def _int_pair(default: tuple[int, int]) -> Any:
    return traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=default).tag(filter=True)


class TrafficBrowser(w.VBox):  # type: ignore[misc]  # untyped base
    """Browse a capture: filters, a paginated table, the selected exchange, replay and export.

    Only one page is ever rendered, so it stays responsive on millions of exchanges; the
    selected exchange is read back in full (bodies included) from its store.

    Parameters
    ----------
    source
        A capture: a ``ParquetStream``/``ParquetCache`` (or a path to one), a DataFrame from
        ``traffic_lab.frames``, a memory store, or an iterable of exchanges.
    where
        Read only these exchanges from the capture (a ``traffic_lab.Where``, its dict, or
        an Arrow Expression; pushed down to the Parquet files). Not for a DataFrame.
    client
        The ``httpx.Client`` replays are sent with (inject one to point at a test server or
        to add auth). Default: a plain client made on first replay.
    base_url
        Replay to this base URL instead of the recorded host (editable in the pane).
    page_size
        Rows per page (10 to 200).

    Attributes
    ----------
    inspector : ExchangeInspector
        The detail pane of the selected exchange.
    view : TrafficView
        The light table and its filters.

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
    >>> browser.selected = int(browser.rows[0])
    >>> browser.selected_exchange.status_code
    404
    """

    # The filters (tagged ``filter``): each has a control, and ``filter()`` sets them at once.
    method = traitlets.Unicode(_ANY).tag(filter=True)
    host = traitlets.Unicode(_ANY).tag(filter=True)
    status = traitlets.Unicode(_ANY, help="2xx, 4xx,5xx, 404, 500-599 or error").tag(filter=True)
    status_range = _int_pair(_ALL_STATUSES)
    content_type = traitlets.Unicode(_ANY).tag(filter=True)
    search = traitlets.Unicode("", help="URL substring, or a /path/glob*").tag(filter=True)
    time_range = _int_pair((0, 0))
    sort = traitlets.Unicode("recorded").tag(filter=True)
    page = traitlets.Int(0)
    page_size = traitlets.Int(25)
    #: Position (in the whole capture) of the selected exchange; -1 for none.
    selected = traitlets.Int(_NO_ROW)
    #: How many exchanges match the filters.
    matches = traitlets.Int(0, read_only=True)

    def __init__(
        self,
        source: object,
        *,
        where: Any = None,
        client: httpx.Client | None = None,
        base_url: str = "",
        page_size: int = 25,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.add_class("tl-browser")
        self.view: TrafficView = open_view(source, where)
        self._rows: np.ndarray[Any, Any] = np.arange(self.view.n)
        self._syncing = False
        self._batching = False
        self._plots_stale = True
        self.errors = ErrorArea()
        self.inspector = ExchangeInspector(client=client, base_url=base_url)
        self._build()
        self.observe(self._on_filters, names=self.trait_names(filter=True))
        self.observe(self._on_page, names=["page", "page_size"])
        self.observe(lambda _: self.errors.run(self._show_selected), names="selected")
        self.page_size = min(self.page_size_select.options, key=lambda o: abs(o - page_size))
        options = self.time_slider.options
        self._time_full = (options[0][1], options[-1][1])
        self.time_range = self._time_full
        self._apply()

    def _build(self) -> None:
        v = self.view
        small = w.Layout(width="auto", min_width="150px")

        def dropdown(description: str, options: list[tuple[str, str]]) -> w.Dropdown:
            return w.Dropdown(options=options, description=description, layout=small)

        self.method_select = dropdown("Method", _choices(v.methods, v.methods_codes))
        self.host_select = dropdown("Host", _choices(v.hosts, v.host_codes))
        self.status_select = dropdown("Status", list(STATUS_CLASSES.items()))
        self.status_slider = w.IntRangeSlider(
            value=_ALL_STATUSES,
            min=_ALL_STATUSES[0],
            max=_ALL_STATUSES[1],
            description="Status range",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.type_select = dropdown("Type", _choices(v.content_types, v.ctype_codes))
        self.search_text = text_box(
            "Search", "320px", placeholder="text in URL, or /api/users/*", continuous_update=False
        )
        times = _time_options(v.start_us)
        self.time_slider = w.SelectionRangeSlider(
            options=times,
            index=(0, len(times) - 1),
            description="Time (UTC)",
            continuous_update=False,
            layout=w.Layout(width="520px"),
        )
        self.sort_select = dropdown("Sort", list(SORTS.items()))
        controls = [
            (self.method_select, "method", "tl-method"),
            (self.host_select, "host", "tl-host"),
            (self.status_select, "status", "tl-status"),
            (self.type_select, "content_type", "tl-type"),
            (self.sort_select, "sort", "tl-sort"),
            (self.search_text, "search", "tl-search"),
            (self.status_slider, "status_range", "tl-status-range"),
            (self.time_slider, "time_range", "tl-time"),
        ]
        for control, name, css in controls:
            control.add_class(css)
            if name in ("status", "time_range"):
                # Code may set any spec or (since, until); the control follows where it can.
                traitlets.dlink((control, "value"), (self, name))
            else:
                traitlets.link((control, "value"), (self, name))
        self.observe(self._status_to_dropdown, names="status")
        self.reset_button = button("Reset filters", self.reset, icon="undo")
        filters = w.Box(
            [c for c, _, _ in controls] + [self.reset_button], layout=w.Layout(flex_flow="row wrap")
        )

        narrow, wide = w.Layout(width="40px"), w.Layout(width="80px")
        self.first_button = button("\u00ab", lambda: self._go(0), layout=narrow)
        self.prev_button = button("\u2039 Prev", lambda: self._go(self.page - 1), layout=wide)
        self.next_button = button(
            "Next \u203a", lambda: self._go(self.page + 1), "tl-next", layout=wide
        )
        self.last_button = button("\u00bb", lambda: self._go(self.pages - 1), layout=narrow)
        self.page_label = w.HTML("")
        self.page_size_select = w.Dropdown(
            options=[10, 25, 50, 100, 200], description="Rows", layout=w.Layout(width="140px")
        )
        traitlets.link((self.page_size_select, "value"), (self, "page_size"))
        rows = w.Dropdown(
            options=[_PLACEHOLDER], description="Exchange", layout=w.Layout(width="100%")
        )
        self.row_select = classed(rows, "tl-row-select")
        self.row_select.observe(self._on_row_select, names="value")

        self.export_path = text_box("Export to", "360px", value="selection.har")
        formats = [("HAR file", "har"), ("capture folder", "capture")]
        self.export_format = w.Dropdown(options=formats, layout=w.Layout(width="160px"))
        self.export_button = button(
            "Export selection",
            lambda: self.errors.run(self._export_clicked),
            "tl-export",
            icon="download",
        )
        self.export_status = w.HTML("")
        self.header = classed(w.HTML(""), "tl-header")
        self.table = classed(w.HTML(""), "tl-table-view")
        pager = w.HBox(
            [
                self.first_button,
                self.prev_button,
                self.page_label,
                self.next_button,
                self.last_button,
                self.page_size_select,
            ],
            layout=w.Layout(align_items="center"),
        )
        table_tab = w.VBox([pager, self.table])
        self.plots = w.VBox([w.HTML("<i>plots of the selection draw when this tab opens</i>")])
        self.views = w.Tab(children=[table_tab, self.plots], titles=("Table", "Plots"))
        self.views.observe(self._on_view_tab, names="selected_index")
        export = w.HBox([self.export_path, self.export_format, self.export_button])
        self.children = (
            self.header,
            filters,
            self.views,
            self.row_select,
            self.inspector,
            w.HTML("<hr style='margin:4px 0'>"),
            export,
            self.export_status,
            self.errors.message,
            self.errors.output,
        )

    # -- filters -------------------------------------------------------------------------------
    def criteria(self) -> Criteria:
        """The current filters as a :class:`~traffic_lab.widgets._browser_data.Criteria`."""
        full_time = self.time_range in (self._time_full, (0, 0))
        since, until = (None, None) if full_time else self.time_range
        return Criteria(
            methods=(self.method,) if self.method else (),
            hosts=(self.host,) if self.host else (),
            status=self.status,
            status_range=None if self.status_range == _ALL_STATUSES else self.status_range,
            since_us=since,
            until_us=until,
            search=self.search,
            content_types=(self.content_type,) if self.content_type else (),
        )

    def filter(self, **values: Any) -> TrafficBrowser:
        """Set several filters at once (one refresh): ``browser.filter(status="5xx", host=...)``.

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
        self._on_filters()  # one refresh for all of them
        return self

    def reset(self) -> None:
        """Clear every filter."""
        self._batching = True
        try:
            self.time_slider.index = (0, len(self.time_slider.options) - 1)
        finally:
            self._batching = False
        defaults = {name: self.trait_defaults(name) for name in self.trait_names(filter=True)}
        self.filter(**{**defaults, "time_range": self._time_full})

    def _status_to_dropdown(self, change: Any) -> None:
        if change["new"] in STATUS_CLASSES.values():  # else the dropdown keeps its choice
            self.status_select.value = change["new"]

    def _on_filters(self, change: object = None) -> None:
        if not self._batching:
            self.errors.run(self._apply)

    def _apply(self) -> None:
        self._rows = self.view.select(self.criteria(), self.sort)
        self.set_trait("matches", len(self._rows))
        self._plots_stale = True
        self._render_header()
        if self.page != 0:
            self.page = 0  # renders through _on_page
        else:
            self._render_page()
        if self.views.selected_index == 1:
            self.errors.run(self._draw_plots)

    # -- the table -----------------------------------------------------------------------------
    @property
    def rows(self) -> np.ndarray[Any, Any]:
        """Positions (in the whole capture) of the matching exchanges, in table order."""
        return self._rows

    @property
    def pages(self) -> int:
        """Number of pages of matching exchanges (at least 1)."""
        return max(1, -(-len(self._rows) // self.page_size))

    def _go(self, page: int) -> None:
        self.page = max(0, min(page, self.pages - 1))

    def _on_page(self, change: object = None) -> None:
        if 0 <= self.page < self.pages:
            self._render_page()
        else:
            self._go(self.page)  # renders through this observer again

    def page_rows(self) -> np.ndarray[Any, Any]:
        """Positions of the exchanges on the current page."""
        start = self.page * self.page_size
        return self._rows[start : start + self.page_size]

    def _render_header(self) -> None:
        v, rows = self.view, self._rows
        matched = f"{_STYLE}<b>{len(rows):,}</b> of {v.n:,} exchanges match"
        if not len(rows):
            self.header.value = f"{matched} <span class='tl-note'>(loosen the filters)</span>"
            return
        p50, p95 = np.percentile(v.elapsed_ms[rows], [50, 95])
        classes = np.bincount(np.clip(v.status[rows] // 100, 0, 6), minlength=7)
        share = [
            f"<span class='tl-s{k}'>{k}xx {classes[k] / len(rows):.1%}</span>"
            for k in (2, 3, 4, 5)
            if classes[k]
        ]
        failed = int(classes[0])  # status -1 // 100 == -1, clipped to 0: transport errors
        if failed:
            share.append(f"<span class='tl-serr'>errors {failed:,}</span>")
        self.header.value = (
            f"{matched} &middot; latency p50 {p50:,.1f} ms, p95 {p95:,.1f} ms &middot; "
            + " ".join(share)
        )

    def _render_page(self) -> None:
        positions = self.page_rows()
        start, total = self.page * self.page_size, len(self._rows)
        self.page_label.value = (
            f"rows {start + 1:,}\u2013{start + len(positions):,} of {total:,} "
            f"(page {self.page + 1:,}/{self.pages:,})"
            if total
            else "no rows"
        )
        body, options = [], [_PLACEHOLDER]
        for r in self.view.rows(positions):
            status, url = r["status"], r["url"]
            shown = status if status is not None else (r["error_type"] or "error")
            started = r["started_at"]
            when = started.strftime("%H:%M:%S.%f")[:-3] if started is not None else ""
            selected = " class='tl-selected'" if r["position"] == self.selected else ""
            body.append(
                f"<tr{selected}><td class='tl-num'>{r['position']}</td><td>{esc(when)}</td>"
                f"<td>{esc(r['method'])}</td><td title='{esc(url)}'>{esc(shorten(url, 100))}</td>"
                f"<td class='{_status_class(status)}'>{esc(shown)}</td>"
                f"<td class='tl-num'>{r['elapsed_ms']:,.1f}</td>"
                f"<td class='tl-num'>{r['size']:,}</td><td>{esc(r['content_type'])}</td></tr>"
            )
            label = f"#{r['position']}  {r['method']} {shorten(url, 90)}  \u2192 "
            label += f"{status if status is not None else 'error'}  {r['elapsed_ms']:,.0f} ms"
            options.append((label, r["position"]))
        if not body:
            body.append("<tr><td colspan='8' class='tl-note'>no exchanges match</td></tr>")
        head = "".join(f"<th>{h}</th>" for h in _COLUMNS)
        self.table.value = f"{_STYLE}<table class='tl-table'><tr>{head}</tr>{''.join(body)}</table>"
        self._syncing = True
        try:
            value = self.selected if self.selected in set(positions.tolist()) else _NO_ROW
            self.row_select.options = options
            self.row_select.value = value
        finally:
            self._syncing = False
        self.first_button.disabled = self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.last_button.disabled = self.page >= self.pages - 1

    # -- selection -----------------------------------------------------------------------------
    def _on_row_select(self, change: Any) -> None:
        if not self._syncing and change["new"] != _NO_ROW:
            self.selected = int(change["new"])

    def _show_selected(self) -> None:
        position = self.selected
        if position == _NO_ROW:
            self.inspector.exchange = None
        else:
            if not 0 <= position < self.view.n:
                raise IndexError(f"no exchange at position {position} (0..{self.view.n - 1})")
            self.inspector.exchange = self.view.exchanges([position])[0]
        self._render_page()

    @property
    def selected_exchange(self) -> Exchange | None:
        """The selected exchange, bodies included (``None`` when nothing is selected)."""
        return self.inspector.exchange

    def replay(self) -> ReplayResult:
        """Replay the selected exchange (see :meth:`ExchangeInspector.replay`)."""
        return self.inspector.replay()

    # -- results -------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """The matching exchanges as a traffic frame (light columns), in table order.

        Still linked to its capture: ``browser.frame().traffic`` works on it.
        """
        return self.view.frame.iloc[self._rows]

    def exchanges(self, limit: int | None = None) -> list[Exchange]:
        """The matching exchanges (bodies included), in table order; at most ``limit``."""
        rows = self._rows if limit is None else self._rows[:limit]
        return self.view.exchanges(rows)

    def export(self, path: str | os.PathLike[str], format: str = "har") -> int:
        """Write the matching exchanges to a HAR file or a new capture folder; returns the count.

        Parameters
        ----------
        path
            The HAR file, or the capture folder (must not exist yet, or be empty).
        format
            ``"har"`` or ``"capture"`` (Parquet, readable with ``tl.ParquetStream(path)``).
        """
        if format == "har":
            from ..interop import write_har

            return write_har(self.exchanges(), Path(path))
        if format == "capture":
            from ..frames.convert import write_capture

            return write_capture(self.frame(), path)
        raise ValueError(f"unknown export format {format!r}: use 'har' or 'capture'")

    def _export_clicked(self) -> None:
        path = self.export_path.value.strip()
        if not path:
            raise ValueError("give a path to export to")
        count = self.export(path, self.export_format.value)
        self.export_status.value = f"wrote {count:,} exchanges to <code>{esc(path)}</code>"

    def close(self) -> None:
        """Close the widget, and the replay client if the browser made it."""
        self.inspector.close()
        super().close()

    # -- plots ---------------------------------------------------------------------------------
    def _on_view_tab(self, change: Any) -> None:
        if change["new"] == 1 and self._plots_stale:
            self.errors.run(self._draw_plots)

    def _draw_plots(self) -> None:
        try:
            from . import plots
        except ImportError as exc:
            self.plots.children = (w.HTML(f"<i>{esc(exc)}</i>"),)
        else:
            self.plots.children = tuple(plots.plot_images(self.view, self._rows))
        self._plots_stale = False
