"""StreamPlayer: step through a ReadWriteStream in recorded order, against a target: the
stream's own responder (``tl.responder``), or a base URL the recorded requests are sent to, as
:func:`traffic_lab.transports.replay_requests` does."""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any

import httpx
import ipywidgets as w  # type: ignore[import-untyped]  # ipywidgets ships no types
import traitlets

from ..exchange import Exchange
from ..protocols import Replay
from ..transports.requester import ResponseDiff, build_replay_request, diff_responses
from ..transports.responder import NO_MORE_TRAFFIC, responder
from ._controls import ErrorArea, ReplayClient, button, classed, text_box
from ._html import _STYLE, diff_html, esc, message_html, request_target

__all__ = ["Step", "StreamPlayer"]

_RESPONDER = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One played exchange: its index in the stream, the recorded exchange, and the answer.

    ``response`` is ``None`` when sending failed (``error`` says why); ``diff`` is ``None``
    then too. At exhaustion ``recorded`` is ``None`` and ``response`` is the 503.
    """

    index: int
    recorded: Exchange | None
    response: httpx.Response | None
    diff: ResponseDiff | None = None
    error: str = ""

    @property
    def same(self) -> bool:
        """The answer matches the recording (volatile headers ignored)."""
        return self.response is not None and self.diff is not None and not self.diff


@dataclass(frozen=True)
class _Tail:
    """A Replay of a stream's exchanges from ``offset`` on (for a responder that starts there)."""

    stream: Replay
    offset: int

    def exchanges(self) -> Iterator[Exchange]:
        return itertools.islice(self.stream.exchanges(), self.offset, None)

    def requests(self) -> Iterator[httpx.Request]:
        return (exchange.request for exchange in self.exchanges())

    def responses(self) -> Iterator[httpx.Response]:
        return itertools.islice(self.stream.responses(), self.offset, None)


def _label(exchange: Exchange) -> str:
    return f"{exchange.method} {request_target(exchange.url)}"


class StreamPlayer(w.VBox):  # type: ignore[misc]  # untyped base
    """Step through a ReadWriteStream in order; play the rest with a progress bar.

    Parameters
    ----------
    stream
        A ReadWriteStream or any Replay (``exchanges()`` in recorded order).
    target
        ``""`` (default): the stream's responder answers, in order. A base URL
        (``"http://127.0.0.1:8000"``): the recorded requests are sent there.
    client
        The ``httpx.Client`` used for a base-URL target (default: a plain client).
    window
        How many played and pending exchanges the cursor view shows around the cursor.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> from traffic_lab.widgets import StreamPlayer
    >>> stream = tl.MemoryStream()
    >>> for i in range(3):
    ...     stream.put(make_exchange(url=f"https://api.example/items/{i}"))
    >>> player = StreamPlayer(stream)
    >>> player.step().same, player.position, player.pending
    (True, 1, 2)
    >>> player.play()
    2
    >>> last = player.step()
    >>> player.exhausted, last.response.status_code, last.response.text
    (True, 503, 'no more traffic to replay')
    """

    #: Exchanges played so far (the cursor).
    position = traitlets.Int(0, read_only=True)
    #: Exchanges in the stream.
    total = traitlets.Int(0, read_only=True)
    #: True once every exchange was played and a further step answered 503.
    exhausted = traitlets.Bool(False, read_only=True)
    target = traitlets.Unicode(_RESPONDER)

    def __init__(
        self,
        stream: Replay,
        *,
        target: str = _RESPONDER,
        client: httpx.Client | None = None,
        window: int = 6,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.add_class("tl-player")
        self.stream = stream
        self.window = window
        self._client = ReplayClient(client)
        self._responder_client: httpx.Client | None = None
        self.errors = ErrorArea()
        self.header = w.HTML("")
        self.target_text = text_box(
            "Target", "420px", "tl-target", value=target, placeholder="the stream's responder"
        )
        traitlets.link((self.target_text, "value"), (self, "target"))
        run = self.errors.run
        self.step_button = button("Step", lambda: run(self.step), "tl-step", icon="step-forward")
        self.play_button = button(
            "Play remaining", lambda: run(self.play), "tl-play", button_style="primary"
        )
        self.reset_button = button("Reset", lambda: run(self.reset), icon="undo")
        progress = w.IntProgress(value=0, min=0, max=1, description="Played")
        self.progress = classed(progress, "tl-progress")
        self.counts_html = classed(w.HTML(""), "tl-counts")
        self.cursor_html = classed(w.HTML(""), "tl-cursor")
        self.detail = classed(w.HTML(""), "tl-step-detail")
        self.children = (
            self.header,
            w.HBox([self.target_text, self.step_button, self.play_button, self.reset_button]),
            w.HBox([self.progress, self.counts_html], layout=w.Layout(align_items="center")),
            self.cursor_html,
            self.errors.message,
            self.errors.output,
            self.detail,
        )
        self.observe(self._on_target, names="target")
        self.reset()  # sets the cursor and the counts

    @property
    def pending(self) -> int:
        """Exchanges not played yet."""
        return self.total - self.position

    def reset(self) -> None:
        """Rewind the cursor to the start of the stream and clear the counts."""
        stream = self.stream
        total = len(stream) if isinstance(stream, Sized) else sum(1 for _ in stream.exchanges())
        self.set_trait("total", total)
        self.set_trait("position", 0)
        self.set_trait("exhausted", False)
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.history: deque[Step] = deque(maxlen=self.window)
        self.last: Step | None = None
        self._iterator = iter(self.stream.exchanges())
        self._pending: deque[Exchange] = deque()
        self._close_responder()
        self.progress.max = max(self.total, 1)
        self._render()

    def _on_target(self, change: Any) -> None:
        # A responder must start where the cursor is: made again on the next step.
        self._close_responder()
        self._render()

    def _close_responder(self) -> None:
        if self._responder_client is not None:
            self._responder_client.close()
            self._responder_client = None

    def _peek(self, count: int) -> list[Exchange]:
        self._pending.extend(itertools.islice(self._iterator, max(0, count - len(self._pending))))
        return list(itertools.islice(self._pending, count))

    @property
    def client(self) -> httpx.Client:
        """The client a step sends with: the responder's, or the one for a base-URL target."""
        if self.target.strip() != _RESPONDER:
            return self._client.get()
        if self._responder_client is None:
            handler = responder(_Tail(self.stream, self.position))
            self._responder_client = httpx.Client(transport=httpx.MockTransport(handler))
        return self._responder_client

    def step(self) -> Step:
        """Play the next exchange (or, past the end, show the 503 of an exhausted stream)."""
        result = self._step()
        self._render()
        return result

    def _step(self) -> Step:
        if not self._peek(1):
            self.set_trait("exhausted", True)
            self.last = Step(self.position, None, httpx.Response(503, text=NO_MORE_TRAFFIC))
            return self.last
        recorded = self._pending.popleft()
        index = self.position
        client = self.client
        request = build_replay_request(client, recorded, self.target.strip() or None)
        try:
            response = client.send(request)
        except Exception as exc:  # a transport error, or a recorded one raised again
            result = Step(index, recorded, None, None, f"{type(exc).__name__}: {exc}")
            self.counts["failed"] += 1
        else:
            diff = diff_responses(recorded, response)
            result = Step(index, recorded, response, diff)
            self.counts["same" if not diff else "differ"] += 1
            self.statuses[str(response.status_code)] += 1
        self.set_trait("position", index + 1)
        self.history.append(result)
        self.last = result
        return result

    def play(self, limit: int | None = None) -> int:
        """Play the pending exchanges (at most ``limit``); returns how many were played."""
        played = 0
        shown = time.monotonic()
        while self.pending and (limit is None or played < limit):
            self._step()
            played += 1
            self.progress.value = self.position
            if time.monotonic() - shown > 0.2:
                self._render_counts()
                shown = time.monotonic()
        self._render()
        return played

    def _render(self) -> None:
        target = self.target.strip()
        where = f"<code>{esc(target)}</code>" if target else "the stream's responder"
        if not target:
            where += " (recorded responses, in order)"
        self.header.value = (
            f"{_STYLE}<b>Stream player</b>: {self.total:,} exchanges &middot; target: {where}"
        )
        self.progress.value = self.position
        self._render_counts()
        self._render_cursor()
        self._render_detail()
        self.step_button.disabled = self.exhausted
        self.play_button.disabled = self.pending == 0

    def _render_counts(self) -> None:
        statuses = " ".join(f"{esc(code)}&times;{n:,}" for code, n in sorted(self.statuses.items()))
        if self.exhausted:
            state = "<b style='color:#c62828'>exhausted</b>"
        else:
            state = f"{self.pending:,} pending" if self.pending else "<b>all played</b>"
        self.counts_html.value = (
            f"{_STYLE}{self.position:,}/{self.total:,} played &middot; {state} &middot; "
            f"<span class='tl-same'>same {self.counts['same']:,}</span> &middot; "
            f"<span class='tl-s4'>differ {self.counts['differ']:,}</span> &middot; "
            f"<span class='tl-s5'>failed {self.counts['failed']:,}</span>"
            + (f" &middot; statuses {statuses}" if statuses else "")
        )

    def _render_cursor(self) -> None:
        rows = []
        for step in self.history:
            assert step.recorded is not None  # an exhausted step is not kept in the history
            if step.response is None:
                outcome, css = f"failed: {step.error}", "tl-s5"
            else:
                outcome = f"{step.recorded.status_code} \u2192 {step.response.status_code}"
                outcome += "  same" if step.same else "  differs"
                css = "tl-same" if step.same else "tl-s4"
            rows.append(
                f"<tr style='color:#555'><td>\u2713</td><td class='tl-num'>{step.index}</td>"
                f"<td>{esc(_label(step.recorded))}</td><td class='{css}'>{esc(outcome)}</td></tr>"
            )
        upcoming = self._peek(self.window)
        for offset, exchange in enumerate(upcoming):
            marker, style = ("\u25b6", "font-weight:bold") if offset == 0 else ("", "color:#999")
            recorded = exchange.status_code if exchange.status_code is not None else "error"
            rows.append(
                f"<tr style='{style}'><td>{marker}</td><td class='tl-num'>"
                f"{self.position + offset}</td><td>{esc(_label(exchange))}</td>"
                f"<td>recorded {esc(recorded)}</td></tr>"
            )
        if not upcoming:
            rows.append(
                "<tr><td>\u25b6</td><td></td><td colspan='2'><b>end of stream</b>: a further "
                f"step answers 503 &ldquo;{esc(NO_MORE_TRAFFIC)}&rdquo;</td></tr>"
            )
        self.cursor_html.value = (
            f"{_STYLE}<table class='tl-table'><tr><th></th><th>#</th><th>request</th>"
            f"<th>recorded &rarr; answered</th></tr>{''.join(rows)}</table>"
        )

    def _render_detail(self) -> None:
        step = self.last
        if step is None:
            self.detail.value = ""
            return
        if step.recorded is None:
            assert step.response is not None
            self.detail.value = (
                f"{_STYLE}<div class='tl-exhausted'><b>stream exhausted</b>: "
                f"{step.response.status_code} &ldquo;{esc(step.response.text)}&rdquo;</div>"
            )
            return
        live = ""
        if step.response is not None:
            live_exchange = Exchange.from_httpx(step.response.request, step.response)
            live = message_html(live_exchange, "response")
            verdict = diff_html(step.diff) if step.diff is not None else ""
        else:
            verdict = f"<b style='color:#c62828'>{esc(step.error)}</b>"
        self.detail.value = (
            f"{_STYLE}<b>step {step.index}</b>: {esc(_label(step.recorded))}{verdict}"
            "<table style='width:100%;table-layout:fixed'><tr><th>recorded</th><th>answered</th>"
            f"</tr><tr><td style='vertical-align:top'>{message_html(step.recorded, 'response')}"
            f"</td><td style='vertical-align:top'>{live}</td></tr></table>"
        )

    def close(self) -> None:
        """Close the widget and the clients it made."""
        self._close_responder()
        self._client.close()
        super().close()
