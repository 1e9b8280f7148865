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

Stock ipywidgets have no snapshot; the two that only show text (``HTML`` and ``Label``) are
exported as the text their saved state holds, and any other is left as it is. Notebooks saved
without widget state need nothing: nbconvert then renders the ``text/html`` snapshot by itself.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from nbconvert.preprocessors import Preprocessor

__all__ = ["PreferSnapshots", "prefer_snapshots"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _static_text(model: Any) -> str | None:
    """The HTML a stock text widget shows, from its saved state (``None``: not one of them)."""
    if not isinstance(model, Mapping) or not isinstance(model.get("state"), Mapping):
        return None
    value = model["state"].get("value")
    if not isinstance(value, str):
        return None
    if model.get("model_name") in ("HTMLModel", "HTMLMathModel"):
        return f"<div class='tl-static-widget'>{value}</div>"
    if model.get("model_name") == "LabelModel":
        return f"<div class='tl-static-widget'>{html.escape(value)}</div>"
    return None


def prefer_snapshots(outputs: list[Any], widget_state: Mapping[str, Any] | None = None) -> int:
    """Drop the live widget view from each output (a notebook output dict) that also holds a
    ``text/html`` snapshot, and turn the view of a stock ``HTML``/``Label`` widget found in
    ``widget_state`` (model id -> saved model) into its text; return how many were changed.
    Other outputs are not touched."""
    changed = 0
    for output in outputs:
        data = output.get("data") if isinstance(output, dict) else None
        if not isinstance(data, dict) or WIDGET_VIEW not in data:
            continue
        if "text/html" not in data:
            view = data[WIDGET_VIEW]
            model_id = view.get("model_id") if isinstance(view, Mapping) else None
            text = _static_text((widget_state or {}).get(model_id)) if model_id else None
            if text is None:
                continue
            data["text/html"] = text
        del data[WIDGET_VIEW]
        changed += 1
    return changed


class PreferSnapshots(Preprocessor):
    """nbconvert preprocessor: outputs with a static snapshot export as the snapshot."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        widgets = nb.get("metadata", {}).get("widgets", {})
        state = widgets.get(WIDGET_STATE, {}).get("state", {}) if isinstance(widgets, dict) else {}
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                prefer_snapshots(cell.get("outputs", []), state if isinstance(state, dict) else {})
        return nb, resources
