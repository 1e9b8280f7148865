"""The plots: figures from a traffic frame, and their PNG rendering."""

from __future__ import annotations

import doctest

import pandas as pd
import pytest

from traffic_lab.frames import to_pandas
from traffic_lab.widgets import _browser_data, browser, inspector, plots, stream_player
from traffic_lab.widgets.plots import figure_png, latency_by_endpoint, status_mix, timeline
from traffic_lab.wire import bodies


@pytest.fixture
def frame(capture):
    return to_pandas(capture)


def frame_of(paths, *, elapsed=None, spacing_s=0.01, method="GET"):
    """A small traffic frame: one exchange per path, ``spacing_s`` apart."""
    n = len(paths)
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    return pd.DataFrame(
        {
            "started_at": [start + pd.Timedelta(seconds=spacing_s * i) for i in range(n)],
            "elapsed_ms": elapsed if elapsed is not None else [10.0] * n,
            "request_method": [method] * n,
            "request_path": paths,
            "response_status": [200] * n,
        }
    )


def test_timeline_draws_one_bar_per_exchange_up_to_the_limit(frame):
    figure = timeline(frame, limit=50)
    axes = figure.axes[0]
    assert axes.get_title() == f"Timeline of the first 50 of {len(frame):,} exchanges"
    assert len(axes.patches) == 50
    assert axes.get_xlabel() == "time since the first exchange shown (ms)"
    assert figure_png(figure).startswith(b"\x89PNG\r\n\x1a\n")


def test_timeline_of_a_selection_that_fits_says_all():
    figure = timeline(frame_of(["/a"] * 120, elapsed=[1.0] * 120), limit=150)
    assert figure.axes[0].get_title() == "Timeline of all 120 exchanges"
    assert len(figure.axes[0].patches) == 120


def test_timeline_slowest_draws_the_slowest_in_start_order():
    elapsed = [5.0, 50.0, 1.0, 40.0, 30.0]
    df = frame_of([f"/users/{i}" for i in range(5)], elapsed=elapsed)
    axes = timeline(df, limit=3, select="slowest").axes[0]
    assert axes.get_title() == "Timeline of the 3 slowest of 5 exchanges"
    assert [p.get_width() for p in axes.patches] == [50.0, 40.0, 30.0]  # in start order
    with pytest.raises(ValueError, match="select= takes 'first' or 'slowest'"):
        timeline(df, select="fastest")


def test_timeline_labels_rows_with_path_templates_not_ids():
    uuid = "0c6f1a57-6c8e-4c5b-9a0e-2d3c4b5a6f70"
    df = frame_of(["/api/users/42", f"/api/orders/{uuid}", "/api/reports/3fa2b9c01e"])
    axes = timeline(df).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == [
        "GET /api/users/{id}",
        "GET /api/orders/{uuid}",
        "GET /api/reports/{hash}",
    ]
    assert axes.get_ylim() == (2.5, -0.5)  # the first exchange at the top


def test_long_endpoint_labels_are_shortened():
    long = "/api/catalogue/departments/{id}/products/items/variants/images/thumbnail.png"
    axes = timeline(frame_of([long.replace("{id}", "7")])).axes[0]
    (label,) = [t.get_text() for t in axes.get_yticklabels()]
    assert label == "GET /api/catalogue/departme…images/thumbnail.png" and len(label) == 48


def test_a_dollar_in_a_recorded_path_is_text_not_mathtext():
    df = frame_of(["/a/$x^{$/b", "/c$$d"])
    for draw in (timeline, latency_by_endpoint):
        figure = draw(df)
        assert figure_png(figure).startswith(b"\x89PNG")  # mathtext would fail to parse here
        labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
        assert any(label.startswith(r"GET /a/\$x^{\$/b") for label in labels)


def test_timeline_over_ten_seconds_counts_in_seconds():
    df = frame_of(["/a", "/b"], elapsed=[100.0, 2000.0], spacing_s=30)
    axes = timeline(df).axes[0]
    assert axes.get_xlabel() == "time since the first exchange shown (s)"
    assert [p.get_x() for p in axes.patches] == [0.0, 30.0]
    assert [p.get_width() for p in axes.patches] == [0.1, 2.0]


def _overlaps_data(figure):
    """Whether the figure's legend covers any part of its axes' data area (drawn first)."""
    figure.canvas.draw()
    axes = figure.axes[0]
    legend = axes.get_legend()
    renderer = figure.canvas.get_renderer()
    return legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))


def test_legends_sit_outside_the_data_area(frame):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for figure in (timeline(frame), status_mix(frame)):
        FigureCanvasAgg(figure)
        assert figure.axes[0].get_legend().get_title().get_text() == "status"
        assert not _overlaps_data(figure)
        # The figure still holds the legend (constrained layout made room for it).
        inside = figure.axes[0].get_legend().get_window_extent().x1 <= figure.bbox.x1
        assert inside


def test_plot_titles_and_axis_labels_carry_units(frame):
    latency = latency_by_endpoint(frame).axes[0]
    assert latency.get_xlabel() in ("latency (ms)", "latency (ms, log scale)")
    mix = status_mix(frame, bins=10).axes[0]
    assert mix.get_xlabel() == "time (UTC)" and mix.get_ylabel() == "exchanges per bucket"
    assert mix.get_title().startswith("Status mix over time (buckets of ")
    assert "e+" not in mix.get_title()


def test_latency_by_endpoint_uses_the_frames_endpoint_templates(frame):
    figure = latency_by_endpoint(frame, top=5)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert len(labels) == 5
    endpoints = frame.traffic.endpoints()
    busiest = (
        endpoints.sort_values("count", ascending=False).head(5) if "count" in endpoints else None
    )
    assert any("/api/users/{id}" in label for label in labels)
    if busiest is not None:
        assert {f"{m} {p}" for m, p in busiest.index} == {
            label.split("  (n=")[0] for label in labels
        }


def test_status_mix_stacks_every_exchange(frame):
    figure = status_mix(frame, bins=10)
    axes = figure.axes[0]
    total = sum(patch.get_height() for patch in axes.patches)
    assert total == len(frame)
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend[0] == "2xx" and "failed" in legend


def test_empty_frame_says_so(frame):
    empty = frame.iloc[:0]
    for draw in (timeline, latency_by_endpoint, status_mix):
        axes = draw(empty).axes[0]
        assert [t.get_text() for t in axes.texts] == ["no exchanges"]


def test_draws_into_given_axes_and_accepts_a_timedelta_elapsed(frame):
    from matplotlib.figure import Figure

    figure = Figure()
    left, right = figure.subplots(1, 2)
    legacy = frame.assign(elapsed=pd.to_timedelta(frame.elapsed_ms, unit="ms")).drop(
        columns="elapsed_ms"
    )
    assert timeline(legacy, ax=left) is figure
    assert status_mix(frame, ax=right) is figure


def test_not_a_traffic_frame():
    with pytest.raises(ValueError, match="not a traffic frame"):
        timeline(pd.DataFrame({"x": [1]}))


def test_figures_display_as_png_under_ipython():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        plots._register_ipython()
        data, _ = shell.display_formatter.format(
            timeline(
                pd.DataFrame(
                    {
                        "started_at": pd.to_datetime(["2026-01-01T00:00:00Z"]),
                        "elapsed_ms": [1.0],
                        "request_method": ["GET"],
                        "request_path": ["/"],
                        "response_status": [200],
                    }
                )
            )
        )
        assert data["image/png"].startswith(b"\x89PNG")
    finally:
        InteractiveShell.clear_instance()


@pytest.mark.parametrize(
    "module", [_browser_data, bodies, browser, inspector, plots, stream_player]
)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
