"""What the widgets share: classed controls, errors shown in the widget, the replay client."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import ipywidgets as w  # type: ignore[import-untyped]  # ipywidgets ships no types
from IPython import get_ipython

from ._html import esc

T = TypeVar("T")


def classed(widget: T, css: str) -> T:
    """``widget`` with a CSS class (the page's styles and the Voila test find controls by it)."""
    widget.add_class(css)  # type: ignore[attr-defined]
    return widget


def button(description: str, action: Callable[[], object], css: str = "", **kwargs: Any) -> Any:
    """A ``Button`` that calls ``action()`` when clicked."""
    widget = w.Button(description=description, **kwargs)
    widget.on_click(lambda _: action())
    return classed(widget, css) if css else widget


def text_box(description: str, width: str, css: str = "", **kwargs: Any) -> Any:
    """A ``Text`` input of a given width."""
    widget = w.Text(description=description, layout=w.Layout(width=width), **kwargs)
    return classed(widget, css) if css else widget


class ErrorArea:
    """Where a widget shows what went wrong in a callback: ``message`` (an HTML line, cleared
    on success) and, under IPython, the traceback in ``output``."""

    def __init__(self) -> None:
        self.message = classed(w.HTML(""), "tl-error")
        self.output = w.Output()
        self.last: BaseException | None = None

    def run(self, action: Callable[[], T]) -> T | None:
        """Call ``action``; on an exception show it here and return ``None``."""
        try:
            result = action()
        except Exception as exc:
            self.last = exc
            self.message.value = (
                f"<span style='color:#c62828'><b>{esc(type(exc).__name__)}</b>: {esc(exc)}</span>"
            )
            if get_ipython() is not None:  # outside IPython, print would go to stdout
                self.output.clear_output()
                with self.output:
                    print("".join(traceback.format_exception(exc)))
            return None
        self.last = None
        if self.message.value:
            self.message.value = ""
            self.output.clear_output()
        return result


class ReplayClient:
    """The ``httpx.Client`` replays are sent with: the one given, else a plain one (10 s
    timeout, no redirects) made on first use and closed by :meth:`close`."""

    def __init__(self, client: httpx.Client | None) -> None:
        self._client = client
        self._owned = client is None

    def get(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=10.0)
        return self._client

    def close(self) -> None:
        if self._owned and self._client is not None:
            self._client.close()
            self._client = None
