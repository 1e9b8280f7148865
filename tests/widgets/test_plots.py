"""The plots: figures from a traffic frame, and their PNG rendering."""

from __future__ import annotations

import doctest

import pandas as pd
import pytest

from traffic_lab.frames import to_pandas
from traffic_lab.widgets import _browser_data, _html, browser, inspector, plots, stream_player
from traffic_lab.widgets.plots import figure_png, latency_by_endpoint, status_mix, timeline


@pytest.fixture
def frame(capture):
    return to_pandas(capture)


def test_timeline_draws_one_bar_per_exchange_up_to_the_limit(frame):
    figure = timeline(frame, limit=50)
    axes = figure.axes[0]
    assert axes.get_title() == f"Timeline of the first 50 of {len(frame)} exchanges"
    assert len(axes.patches) == 50
    assert axes.get_xlabel() == "ms since the first request"
    assert figure_png(figure).startswith(b"\x89PNG\r\n\x1a\n")


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
    assert legend[0] == "2xx" and "error" in legend


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


@pytest.mark.parametrize("module", [_browser_data, _html, browser, inspector, plots, stream_player])
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
