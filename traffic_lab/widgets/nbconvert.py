"""Static HTML exports show traffic_lab's widget snapshots, never an empty box.

Each traffic_lab widget puts a static ``text/html`` snapshot in its display bundle beside the
live widget view. ``jupyter nbconvert --to html`` prefers the live view whenever the notebook
holds saved widget state (JupyterLab's "Save Widget State Automatically", or nbclient's
``store_widget_state=True``), and that view needs the widgets' JavaScript from a CDN: offline,
or for widgets the CDN renderer does not know (anywidget front ends), it stays blank.

:class:`PreferSnapshots` is an nbconvert preprocessor that keeps, for every output that carries
both, the snapshot and drops the live view, so the page reads the same with or without a
network::

    jupyter nbconvert --to html \\
        --HTMLExporter.preprocessors=traffic_lab.widgets.nbconvert.PreferSnapshots report.ipynb

Outputs without a snapshot (stock ipywidgets) are left as they are. Notebooks saved without
widget state need nothing: nbconvert then renders the ``text/html`` snapshot by itself.
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor

__all__ = ["PreferSnapshots", "prefer_snapshots"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def prefer_snapshots(outputs: list[Any]) -> int:
    """Drop the live widget view from each output (a notebook output dict) that also holds a
    ``text/html`` snapshot; return how many were changed. Other outputs are not touched."""
    changed = 0
    for output in outputs:
        data = output.get("data") if isinstance(output, dict) else None
        if isinstance(data, dict) and WIDGET_VIEW in data and "text/html" in data:
            del data[WIDGET_VIEW]
            changed += 1
    return changed


class PreferSnapshots(Preprocessor):
    """nbconvert preprocessor: outputs with a static snapshot export as the snapshot."""

    def preprocess_cell(
        self, cell: Any, resources: dict[str, Any], index: int
    ) -> tuple[Any, dict[str, Any]]:
        if cell.get("cell_type") == "code":
            prefer_snapshots(cell.get("outputs", []))
        return cell, resources
