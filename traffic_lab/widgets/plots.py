"""Plots of traffic: a timeline (waterfall) of exchanges, latency per endpoint, status mix over
time, as ``matplotlib`` figures drawn with the Agg renderer.

A PNG shows in JupyterLab, Voila, ``nbconvert --to html`` and GitHub without JavaScript. No
``pyplot`` (no global state): importing this module registers a PNG formatter for ``Figure``
with IPython, so a returned figure shows in a cell.

Input: a traffic frame (``tl.read_capture``) with ``started_at``, ``elapsed_ms`` (or a timedelta
``elapsed``), ``request_method``, ``request_path`` (or ``request_url``) and ``response_status``.
Endpoints are templated as ``df.traffic.endpoints()`` does (``GET /api/users/{id}``, one
definition: :func:`traffic_lab.frames.analysis.path_templates`), and long ones are shortened
as the analysis tables shorten them. Legends sit outside the axes, so they never cover data.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - exercised where matplotlib is missing
    raise ImportError(
        "traffic_lab.widgets.plots needs matplotlib: pip install 'traffic_lab[notebook]'"
    ) from exc

from ..frames.analysis import path_templates
from ..frames.display import format_count, format_seconds, shorten
from ._browser_data import TrafficView, codes_of
from ._controls import classed

if TYPE_CHECKING:
    import ipywidgets as w  # type: ignore[import-untyped]  # ipywidgets ships no types
    from matplotlib.axes import Axes

__all__ = [
    "STATUS_COLORS",
    "figure_png",
    "latency_by_endpoint",
    "plot_images",
    "status_mix",
    "timeline",
]

#: Colours of the status classes (``"error"``: a transport error, no response).
STATUS_COLORS = {
    "2xx": "#2e7d32",
    "3xx": "#1f5fa8",
    "4xx": "#ef8f00",
    "5xx": "#c62828",
    "error": "#6a1b9a",
}
_CLASSES = list(STATUS_COLORS)
#: What the legends call each class.
_LABELS = {"error": "failed"}
_BOX = ("whislo", "q1", "med", "q3", "whishi")  # matplotlib's bxp keys: 5th to 95th percentile


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # attaches an Agg canvas to the figure
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _register_ipython() -> None:
    from IPython import get_ipython  # ipywidgets depends on IPython

    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        formatter.for_type(Figure, figure_png)


_register_ipython()


def _class_index(status: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """0..3 for 2xx..5xx (1xx counts as 2xx), 4 for a transport error."""
    index = np.clip(status // 100 - 2, 0, 3)
    return np.where(status < 0, 4, index)


class _Columns:
    """The arrays the plots need: some rows of a browser's :class:`TrafficView`."""

    def __init__(self, view: TrafficView, rows: np.ndarray[Any, Any]) -> None:
        self.start_us = view.start_us[rows]
        self.elapsed_ms = view.elapsed_us[rows] / 1000
        self.status = view.status[rows]
        self.methods: Any = view.method_names(rows)  # Arrow strings
        self.paths: Any = view.path.take(pa.array(rows, pa.int64()))

    def __len__(self) -> int:
        return len(self.start_us)

    def endpoint_names(self) -> Any:
        """``METHOD /templated/path`` of each row (the templates of ``df.traffic.endpoints()``:
        ``/api/users/{id}``), as Arrow strings."""
        return pc.binary_join_element_wise(self.methods, path_templates(self.paths), " ")

    def endpoints(self) -> tuple[np.ndarray[Any, Any], list[str]]:
        """Codes (-1 for none) and names of the rows' endpoints (:meth:`endpoint_names`)."""
        return codes_of(self.endpoint_names())


#: Longest endpoint shown as a tick label (longer ones lose their middle).
MAX_LABEL = 48


def _label(text: str) -> str:
    """A path from a capture as matplotlib text: shortened, and with ``$`` escaped so that a
    recorded path is never parsed as mathtext (a malformed one would fail the drawing)."""
    return shorten(text, MAX_LABEL).replace("$", r"\$")


def _outside_legend(ax: Axes, handles: list[Any] | None = None) -> None:
    """The legend to the right of the axes, outside them: it never covers data."""
    kwargs: dict[str, Any] = {"handles": handles} if handles is not None else {}
    ax.legend(
        **kwargs,
        title="status",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )


def _legend(ax: Axes, present: set[int]) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(color=STATUS_COLORS[name], label=_LABELS.get(name, name))
        for name in (_CLASSES[k] for k in sorted(present))
    ]
    if handles:
        _outside_legend(ax, handles)


def _setup(
    frame: Any, ax: Axes | None, size: tuple[float, float], title: str
) -> tuple[_Columns | None, Figure, Axes]:
    """The plot's columns (``None`` when there are no rows: the axes then say so), figure and
    axes (``ax``, or those of a new figure)."""
    if isinstance(frame, _Columns):
        c = frame
    else:
        for name in ("started_at", "request_method", "response_status"):
            if name not in frame.columns:
                raise ValueError(f"not a traffic frame: no {name!r} column")
        if "elapsed_ms" not in frame.columns and "elapsed" not in frame.columns:
            raise ValueError("not a traffic frame: no 'elapsed_ms' (or 'elapsed') column")
        view = TrafficView(frame)
        c = _Columns(view, np.arange(view.n))
    figure = Figure(figsize=size, layout="constrained") if ax is None else ax.get_figure()
    assert isinstance(figure, Figure)
    ax = figure.add_subplot() if ax is None else ax
    if len(c.start_us):
        return c, figure, ax
    ax.text(0.5, 0.5, "no exchanges", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_axis_off()
    return None, figure, ax


def timeline(
    frame: Any, *, limit: int = 150, select: str = "first", ax: Axes | None = None
) -> Figure:
    """A waterfall of exchanges: one bar per exchange from its start to its end, coloured by
    status class, labelled with its endpoint (``GET /api/users/{id}``).

    Every exchange is drawn when there are at most ``limit``; otherwise ``select`` chooses
    which ``limit`` are, and the title says so: ``"first"`` (by start time) or ``"slowest"``
    (drawn in start order).

    Parameters
    ----------
    frame
        A traffic frame (see the module's docstring for its columns).
    limit
        At most this many exchanges (a waterfall of thousands of bars says little).
    select
        ``"first"`` or ``"slowest"``: which exchanges, when there are more than ``limit``.
    ax
        Draw into these axes instead of a new figure (as every plot here can).

    Examples
    --------
    >>> import pandas as pd
    >>> from traffic_lab.widgets.plots import timeline
    >>> df = pd.DataFrame({"started_at": pd.to_datetime(["2026-01-01T00:00:00Z"] * 3),
    ...                    "elapsed_ms": [5.0, 20.0, 7.0],
    ...                    "request_method": ["GET", "POST", "GET"],
    ...                    "request_path": ["/users/1", "/users", "/users/2"],
    ...                    "response_status": [200, 500, 200]})
    >>> timeline(df).axes[0].get_title()
    'Timeline of all 3 exchanges'
    >>> axes = timeline(df, limit=2, select="slowest").axes[0]
    >>> axes.get_title(), [t.get_text() for t in axes.get_yticklabels()]
    ('Timeline of the 2 slowest of 3 exchanges', ['POST /users', 'GET /users/{id}'])
    """
    if select not in ("first", "slowest"):
        raise ValueError(f"select= takes 'first' or 'slowest', got {select!r}")
    rows = min(len(frame), limit)
    c, figure, axes = _setup(frame, ax, (10, float(np.clip(1.5 + rows / 25, 4.5, 8))), "Timeline")
    if c is None:
        return figure
    n = len(c.start_us)
    by_start = np.argsort(c.start_us, kind="stable")
    if n <= limit:
        order = by_start
        title = f"Timeline of all {format_count(n)} exchanges"
    elif select == "first":
        order = by_start[:limit]
        title = f"Timeline of the first {format_count(limit)} of {format_count(n)} exchanges"
    else:
        slowest = np.argsort(-c.elapsed_ms, kind="stable")[:limit]
        order = slowest[np.argsort(c.start_us[slowest], kind="stable")]
        title = f"Timeline of the {format_count(limit)} slowest of {format_count(n)} exchanges"
    left_ms = (c.start_us[order] - c.start_us[order[0]]) / 1000.0
    width_ms = np.maximum(c.elapsed_ms[order], 0.0)
    span_ms = float(np.max(left_ms + width_ms)) if len(order) else 0.0
    seconds = span_ms >= 10_000
    scale = 1000.0 if seconds else 1.0
    classes = _class_index(c.status[order])
    colors = [STATUS_COLORS[_CLASSES[k]] for k in classes]
    y = np.arange(len(order))
    axes.barh(y, width_ms / scale, left=left_ms / scale, color=colors, height=0.8, linewidth=0)
    # Instant exchanges would vanish: mark every start.
    axes.scatter(left_ms / scale, y, s=4, c=colors, marker="|")
    names = c.endpoint_names().take(pa.array(order, pa.int64()))
    labels = [_label(str(name)) for name in names.to_pylist()]
    step = max(1, -(-len(order) // 40))
    axes.set_yticks(y[::step], labels[::step], fontsize=7)
    axes.set_ylim(len(order) - 0.5, -0.5)  # the first exchange at the top
    unit = "s" if seconds else "ms"
    axes.set_xlabel(f"time since the first exchange shown ({unit})")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    _legend(axes, set(classes.tolist()))
    return figure


def latency_by_endpoint(frame: Any, *, top: int = 12, ax: Axes | None = None) -> Figure:
    """Latency distribution per endpoint (``METHOD /path/{id}``): boxes of the 25th-75th
    percentiles with the median, whiskers at the 5th and 95th, for the ``top`` busiest.

    Examples
    --------
    >>> import pandas as pd
    >>> from traffic_lab.widgets.plots import latency_by_endpoint
    >>> df = pd.DataFrame({"started_at": pd.to_datetime(["2026-01-01T00:00:00Z"] * 3),
    ...                    "elapsed_ms": [5.0, 7.0, 300.0],
    ...                    "request_method": ["GET"] * 3,
    ...                    "request_path": ["/users/1", "/users/2", "/search"],
    ...                    "response_status": [200, 200, 200]})
    >>> # Slowest at the top: tick labels run from the bottom up.
    >>> [t.get_text() for t in latency_by_endpoint(df).axes[0].get_yticklabels()]
    ['GET /users/{id}  (n=2)', 'GET /search  (n=1)']
    """
    c, figure, axes = _setup(frame, ax, (10, 4.5), "Latency by endpoint")
    if c is None:
        return figure
    codes, names = c.endpoints()
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    busiest = np.argsort(-counts, kind="stable")[:top]
    stats = []
    for code in busiest:
        quantiles = np.percentile(c.elapsed_ms[codes == code], [5, 25, 50, 75, 95])
        label = f"{_label(names[code])}  (n={counts[code]:,})"
        stats.append({"label": label, "fliers": [], **dict(zip(_BOX, quantiles, strict=True))})
    stats.sort(key=lambda s: s["med"])
    axes.bxp(stats, orientation="horizontal", showfliers=False, patch_artist=True)
    for patch in axes.patches:
        patch.set_facecolor("#cfe3f7")
    low = min(s["whislo"] for s in stats)
    high = max(s["whishi"] for s in stats)
    log = low > 0 and high / low > 50
    if log:
        axes.set_xscale("log")
    axes.tick_params(axis="y", labelsize=8)
    axes.set_xlabel("latency (ms, log scale)" if log else "latency (ms)")
    axes.set_title(f"Latency by endpoint (the {len(stats)} busiest; whiskers 5th-95th percentile)")
    axes.grid(axis="x", alpha=0.3)
    return figure


def status_mix(frame: Any, *, bins: int = 40, ax: Axes | None = None) -> Figure:
    """Status classes over time: stacked counts of 2xx, 3xx, 4xx, 5xx and transport errors
    in ``bins`` equal time buckets.

    Examples
    --------
    >>> import pandas as pd
    >>> from traffic_lab.widgets.plots import status_mix
    >>> df = pd.DataFrame({"started_at": pd.to_datetime(["2026-01-01T00:00:00Z",
    ...                                                  "2026-01-01T00:01:00Z"]),
    ...                    "elapsed_ms": [5.0, 7.0],
    ...                    "request_method": ["GET"] * 2, "request_path": ["/a", "/b"],
    ...                    "response_status": [200, 503]})
    >>> status_mix(df).axes[0].get_ylabel()
    'exchanges per bucket'
    """
    import matplotlib.dates as mdates

    c, figure, axes = _setup(frame, ax, (10, 3.5), "Status mix")
    if c is None:
        return figure
    low, high = int(c.start_us.min()), int(c.start_us.max())
    edges = np.linspace(low, max(high, low + 1), bins + 1)
    bucket = np.clip(np.searchsorted(edges, c.start_us, side="right") - 1, 0, bins - 1)
    classes = _class_index(c.status)
    counts = np.zeros((len(_CLASSES), bins))
    np.add.at(counts, (classes, bucket), 1)
    width_us = (edges[1] - edges[0]) if bins else 1.0
    centers = (edges[:-1] + width_us / 2).astype("int64").astype("datetime64[us]")
    bar_width = width_us / 86_400e6 * 0.95  # in days, as matplotlib's dates count
    bottom = np.zeros(bins)
    for k, (name, color) in enumerate(STATUS_COLORS.items()):
        if counts[k].any():
            label = _LABELS.get(name, name)
            axes.bar(centers, counts[k], width=bar_width, bottom=bottom, color=color, label=label)
            bottom += counts[k]
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_ylabel("exchanges per bucket")
    axes.set_xlabel("time (UTC)")
    axes.set_title(f"Status mix over time (buckets of {format_seconds(width_us / 1e6)})")
    _outside_legend(axes)
    axes.grid(axis="y", alpha=0.3)
    return figure


def plot_images(view: TrafficView, rows: np.ndarray[Any, Any]) -> list[w.Widget]:
    """The three plots of some rows of a browser's view, as ``Image`` widgets."""
    import ipywidgets as w

    data = _Columns(view, rows)
    images: list[w.Widget] = []
    for draw in (status_mix, latency_by_endpoint, timeline):
        png = figure_png(draw(data))
        image = w.Image(value=png, format="png", layout=w.Layout(max_width="100%"))
        images.append(classed(image, f"tl-plot-{draw.__name__}"))
    return images
