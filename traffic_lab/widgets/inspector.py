"""The detail pane: one exchange's request and response, a replay with its diff, and the
request as curl and httpx code."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import ipywidgets as w  # type: ignore[import-untyped]  # ipywidgets ships no types
import traitlets

from ..exchange import Exchange
from ..transports.requester import ReplayResult, build_replay_request, diff_responses
from ._controls import ErrorArea, ReplayClient, button, classed, text_box
from ._detail import detail_html
from ._html import (
    _STYLE,
    diff_html,
    esc,
    exchange_summary_html,
    message_html,
    message_view,
)
from ._static import StaticSnapshot
from .snippets import to_curl, to_httpx_code

__all__ = ["ExchangeInspector"]

_TABS = ("Request", "Response", "Replay", "Code")


def _message_box(exchange: Exchange, side: str) -> w.VBox:
    """HTML for the message, plus an ``Image`` when its body is a raster image."""
    view = message_view(exchange, side)
    parts: list[w.Widget] = [w.HTML(message_html(exchange, side, view))]
    if view.kind == "image":
        layout = w.Layout(max_width="256px", min_width="64px", border="1px solid #ddd")
        image = w.Image(value=view.data, format=view.mime.split("/")[1], layout=layout)
        parts.append(classed(image, "tl-image"))
    return w.VBox(parts)


class ExchangeInspector(StaticSnapshot, w.VBox):  # type: ignore[misc]  # untyped base
    """The detail pane for one exchange (set :attr:`exchange`).

    Tabs: *Request* and *Response* (first line, headers, body decoded from gzip/deflate/brotli
    and shown as indented JSON, text, an image or a hex dump), *Replay* (the recorded response
    beside the live one and their :func:`~traffic_lab.transports.diff_responses`), *Code* (curl
    and httpx).

    Parameters
    ----------
    exchange
        The exchange to show (or ``None``: an empty pane).
    client
        The ``httpx.Client`` replays are sent with (its transport, auth and headers apply).
        Default: a plain client with a 10 s timeout, made on first replay.
    base_url
        Replay to this base URL instead of the recorded host (``http://127.0.0.1:8000``).

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> from traffic_lab.widgets import ExchangeInspector
    >>> ex = tl.Exchange.from_httpx(httpx.Request("GET", "https://a.example/x"),
    ...                             httpx.Response(200, json={"id": 1}))
    >>> pane = ExchangeInspector(ex, client=httpx.Client(transport=httpx.MockTransport(
    ...     lambda r: httpx.Response(200, json={"id": 2}))))
    >>> print(pane.replay().diff())
    json $.id: 1 -> 2
    """

    exchange = traitlets.Instance(Exchange, allow_none=True)
    base_url = traitlets.Unicode("")
    #: The last replay's live response (``None`` before a replay or after it failed).
    live = traitlets.Instance(httpx.Response, allow_none=True, read_only=True)

    def __init__(
        self,
        exchange: Exchange | None = None,
        *,
        client: httpx.Client | None = None,
        base_url: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._client = ReplayClient(client)
        self.errors = ErrorArea()
        self.summary = w.HTML("")
        self.base_url_text = text_box(
            "Replay to", "420px", "tl-base-url", placeholder="recorded host"
        )
        self.replay_button = button(
            "Replay",
            lambda: self.errors.run(self.replay),
            "tl-replay",
            button_style="primary",
            tooltip="send the request again",
        )
        self.request_box = w.VBox()
        self.response_box = w.VBox()
        self.replay_status = classed(w.HTML("<i>not replayed yet</i>"), "tl-replay-status")
        self.recorded_box = w.VBox(layout=w.Layout(width="50%"))
        self.live_box = w.VBox(layout=w.Layout(width="50%"))
        self.diff = classed(w.HTML(""), "tl-diff-view")
        self.replay_box = w.VBox(
            [self.replay_status, self.diff, w.HBox([self.recorded_box, self.live_box])]
        )
        self.curl = w.Textarea(layout=w.Layout(width="100%", height="120px"))
        self.httpx_code = w.Textarea(layout=w.Layout(width="100%", height="180px"))
        code_box = w.VBox(
            [
                w.HTML("<b>curl</b> (select and copy)"),
                self.curl,
                w.HTML("<b>Python, httpx</b>"),
                self.httpx_code,
            ]
        )
        tabs = [self.request_box, self.response_box, self.replay_box, code_box]
        self.tabs = w.Tab(children=tabs, titles=_TABS)
        self.actions = w.HBox([self.base_url_text, self.replay_button])
        self.observe(self._on_exchange, names="exchange")
        traitlets.link((self, "base_url"), (self.base_url_text, "value"))
        self.base_url = base_url
        self.exchange = exchange
        self._on_exchange()

    def _on_exchange(self, change: object = None) -> None:
        exchange = self.exchange
        self.set_trait("live", None)
        self._replay: ReplayResult | None = None
        if exchange is None:
            self.summary.value = f"{_STYLE}<div class='tl-note'>no exchange selected</div>"
            self.children = [self.summary]
            return
        self.summary.value = exchange_summary_html(exchange)
        self.request_box.children = (_message_box(exchange, "request"),)
        self.response_box.children = (_message_box(exchange, "response"),)
        self.replay_status.value = "<i>not replayed yet: press Replay</i>"
        self.diff.value = ""
        self.recorded_box.children = self.live_box.children = ()
        self.tabs.selected_index = _TABS.index("Response")
        self.curl.value = to_curl(exchange)
        self.httpx_code.value = to_httpx_code(exchange)
        self.children = [
            self.summary,
            self.actions,
            self.errors.message,
            self.errors.output,
            self.tabs,
        ]

    @property
    def client(self) -> httpx.Client:
        """The client replays are sent with."""
        return self._client.get()

    def replay(self) -> ReplayResult:
        """Send the request again (to :attr:`base_url` if set) and show live vs recorded.

        Returns a :class:`~traffic_lab.transports.ReplayResult` (its ``diff()`` is the one
        shown); a transport error propagates (the button shows it in the pane).
        """
        exchange = self.exchange
        if exchange is None:
            raise ValueError("no exchange selected")
        request = build_replay_request(self.client, exchange, self.base_url.strip() or None)
        sent = f"{esc(request.method)} {esc(request.url)}"
        self.replay_status.value = f"<i>sending {sent}...</i>"
        started = time.perf_counter()
        try:
            response = self.client.send(request)
        except Exception:
            self.replay_status.value = f"<b>replay failed</b>: {sent}"
            raise
        # Measured here: a response from a MockTransport or a handler never gets .elapsed.
        ms = (time.perf_counter() - started) * 1000
        live = Exchange.from_httpx(request, response, elapsed=timedelta(milliseconds=ms))
        diff = diff_responses(exchange, response)
        self.set_trait("live", response)
        verdict = "same as recorded" if not diff else "differs from the recording"
        self.replay_status.value = (
            f"{_STYLE}<b>replayed</b> {sent} &rarr; <b>{response.status_code}</b> in {ms:,.1f} "
            f"ms: <span class='{'tl-same' if not diff else 'tl-s4'}'>{verdict}</span>"
        )
        self.diff.value = diff_html(diff)
        self.recorded_box.children = (w.HTML("<b>recorded</b>"), _message_box(exchange, "response"))
        self.live_box.children = (w.HTML("<b>live</b>"), _message_box(live, "response"))
        self.tabs.selected_index = _TABS.index("Replay")
        self._replay = ReplayResult(exchange, response)
        return self._replay

    def snapshot_html(self) -> str:
        """The pane as static HTML (no script, the CSS inlined): the exchange in the detail
        pane of :func:`~traffic_lab.widgets._detail.detail_html`, with the last replay."""
        if self.exchange is None:
            return "<div class='tl-detail tl-note'>no exchange selected</div>"
        return detail_html(self.exchange, replay=self._replay, uid=f"tli{self.model_id[:8]}")

    def close(self) -> None:
        """Close the widget, and the replay client if the pane made it."""
        self._client.close()
        super().close()
