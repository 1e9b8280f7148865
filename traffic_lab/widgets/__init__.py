"""Notebook widgets: browse, filter, inspect and replay captures (:class:`TrafficBrowser`,
:class:`ExchangeInspector`), step through a stream (:class:`StreamPlayer`), plot traffic
(:func:`timeline`, :func:`latency_by_endpoint`, :func:`status_mix`; need matplotlib), and an
exchange's request as a shell or Python snippet (:func:`to_curl`, :func:`to_httpx_code`).

The browser and the stream player are anywidgets (their ES modules and CSS ship in the package:
no build step, no CDN), the inspector is stock ipywidgets; they work in JupyterLab 4, Notebook 7
and Voila.
Nothing from a capture is executed or injected: every text shown in HTML is escaped.
Needs the ``notebook`` extra: ``pip install 'traffic_lab[notebook]'``.
"""

from __future__ import annotations

try:
    import ipywidgets  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the import-guard test in a subprocess
    raise ImportError(
        "traffic_lab.widgets needs ipywidgets: pip install 'traffic_lab[notebook]'"
    ) from exc

from typing import TYPE_CHECKING

from .._lazy import lazy_exports as _lazy_exports
from ..wire.bodies import body_view
from .browser import TrafficBrowser
from .inspector import ExchangeInspector
from .snippets import to_curl, to_httpx_code
from .stream_player import StreamPlayer

if TYPE_CHECKING:
    from .plots import latency_by_endpoint, status_mix, timeline

__all__ = [
    "body_view",
    "ExchangeInspector",
    "latency_by_endpoint",
    "status_mix",
    "StreamPlayer",
    "timeline",
    "to_curl",
    "to_httpx_code",
    "TrafficBrowser",
]

# The plots need matplotlib, which loads only when a plot is first asked for.
__getattr__, __dir__ = _lazy_exports(
    __name__, dict.fromkeys(("latency_by_endpoint", "status_mix", "timeline"), ".plots")
)
