"""Small helpers the widgets share: running a callback with its error shown in the widget,
and a default client for replays."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TypeVar

import httpx
import ipywidgets as w  # type: ignore[import-untyped]  # ipywidgets ships no types

from ._html import esc

__all__ = ["ErrorArea", "default_client"]

T = TypeVar("T")


class ErrorArea:
    """Where a widget shows what went wrong in a callback.

    ``message`` (an HTML line, cleared on success) always says it; ``output`` also gets the
    traceback when running under IPython, where an ``Output`` captures it. Tests read
    ``message.value``.
    """

    def __init__(self) -> None:
        self.message = w.HTML("")
        self.message.add_class("tl-error")
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
            self._traceback(exc)
            return None
        self.last = None
        if self.message.value:
            self.message.value = ""
            self.output.clear_output()
        return result

    def _traceback(self, exc: BaseException) -> None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - ipywidgets depends on IPython
            return
        if get_ipython() is None:
            return
        self.output.clear_output()
        with self.output:
            print("".join(traceback.format_exception(exc)))


def default_client() -> httpx.Client:
    """The client replays use when none is given: plain httpx, 10 s timeout, no redirects."""
    return httpx.Client(timeout=10.0)
