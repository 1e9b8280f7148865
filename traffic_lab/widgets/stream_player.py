"""StreamPlayer: step through a ReadWriteStream in recorded order, against a target: the
stream's own responder (``tl.responder``), or a base URL the recorded requests are sent to, as
:func:`traffic_lab.transports.replay_requests` does.

An anywidget: the kernel holds the stream and the cursor; the page (``static/player.js``) shows
the controls, the progress line, the cursor's neighbourhood and the detail pane
(:func:`~traffic_lab.widgets._detail.detail_html`, built in the kernel with every text escaped).
Playing is paced by the page: after each tick the kernel says how long to wait before the next
one (the recorded gap over the speed), so a pause click is handled between ticks. Where no
kernel runs (nbconvert, a saved page), the display bundle's ``text/html`` snapshot shows the
same progress line and detail.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any

import anywidget
import httpx
import traitlets

from ..exchange import Exchange
from ..protocols import Replay
from ..transports.requester import (
    ReplayResult,
    ResponseDiff,
    build_replay_request,
    diff_responses,
)
from ..transports.responder import NO_MORE_TRAFFIC, responder
from ._controls import ReplayClient
from ._detail import detail_html
from ._html import esc, request_target
from ._static import STATIC, StaticSnapshot, widget_css

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


#: Playing speeds: how much faster than recorded the exchanges follow each other.
SPEEDS = {"1x": 1.0, "2x": 2.0, "10x": 10.0, "max": 0.0}
#: A recorded pause longer than this is shortened to it when playing at a speed.
MAX_GAP = 5.0
#: At ``max`` speed, each tick plays for about this long before the page is updated.
MAX_TICK = 0.1


def player_css() -> str:
    """The player's style sheet, with the detail pane's."""
    return widget_css("player", "detail")


class StreamPlayer(StaticSnapshot, anywidget.AnyWidget):
    """Step through a ReadWriteStream in order, or play it at 1x, 2x, 10x or full speed.

    The page shows a progress line (*n of N*), the played and upcoming exchanges around the
    cursor, and the last played exchange in the detail pane, its *Replay* tab holding the
    answer beside the recording and their diff. Past the end, a step answers 503 "no more
    traffic to replay", as the stream's responder does.

    Parameters
    ----------
    stream
        A ReadWriteStream or any Replay (``exchanges()`` in recorded order).
    target
        ``""`` (default): the stream's responder answers, in order, a streamed body (one
        recorded with its chunks) at its recorded pace times :attr:`speed` (at once at
        ``"max"``; its chunk arrivals are in the detail pane's *Timing* tab). A base URL
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

    _esm = STATIC / "player.js"
    _css = player_css()

    #: Exchanges played so far (the cursor).
    position = traitlets.Int(0, read_only=True).tag(sync=True)
    #: Exchanges in the stream.
    total = traitlets.Int(0, read_only=True).tag(sync=True)
    #: True once every exchange was played and a further step answered 503.
    exhausted = traitlets.Bool(False, read_only=True).tag(sync=True)
    target = traitlets.Unicode(_RESPONDER).tag(sync=True)
    #: ``"1x"``, ``"2x"``, ``"10x"`` (the recorded pace, sped up) or ``"max"``.
    speed = traitlets.Enum(list(SPEEDS), "1x").tag(sync=True)
    #: The page is playing (ticking); a pause, the end of the stream or an error stops it.
    playing = traitlets.Bool(False).tag(sync=True)
    #: ``{"same", "differ", "failed", "statuses": {code: n}}`` for the progress line.
    tally = traitlets.Dict().tag(sync=True)
    #: The cursor's neighbourhood: ``{"index", "label", "recorded", "outcome", "state"}``
    #: dicts, state one of ``same``, ``differ``, ``failed`` (played), ``next``, ``pending``.
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: The progress line (:meth:`progress_text`).
    progress = traitlets.Unicode("").tag(sync=True)
    #: What the target is, in words.
    header = traitlets.Unicode("").tag(sync=True)
    #: The detail pane (HTML, every capture text escaped).
    detail = traitlets.Unicode("").tag(sync=True)
    #: The last error from a page command (``""`` when the last one succeeded).
    error = traitlets.Unicode("").tag(sync=True)

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
        self.stream = stream
        self.window = window
        self._client = ReplayClient(client)
        self._responder_client: httpx.Client | None = None
        self.target = target
        self.observe(self._on_target, names=["target", "speed"])
        self.on_msg(self._on_msg)
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
        self.playing = False
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.history: deque[Step] = deque(maxlen=self.window)
        self.last: Step | None = None
        self._iterator = iter(self.stream.exchanges())
        self._pending: deque[Exchange] = deque()
        self._close_responder()
        self._render()

    def _on_target(self, change: Any) -> None:
        # A responder must start where the cursor is, and pace streamed bodies at the speed
        # chosen: made again on the next step.
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
            # Streamed bodies (SSE, chunked) arrive at their recorded pace times the speed; at
            # "max" at once, in their recorded chunks.
            factor = SPEEDS[self.speed]
            handler = responder(
                _Tail(self.stream, self.position),
                timing="recorded" if factor else "none",
                speed=factor or 1.0,
            )
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
        """Play the pending exchanges (at most ``limit``) at once; returns how many were played.

        (The page's Play button plays at :attr:`speed` instead, tick by tick.)
        """
        played = 0
        while self.pending and (limit is None or played < limit):
            self._step()
            played += 1
        self._render()
        return played

    # -- the page's commands -------------------------------------------------------------------
    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        command = content.get("cmd") if isinstance(content, dict) else None
        try:
            if command == "step":
                self.playing = False
                self.step()
            elif command == "reset":
                self.reset()
            elif command == "play":
                self.playing = self.pending > 0
                self._tick()
            elif command == "pause":
                self.playing = False
            elif command == "tick":
                self._tick()
            else:
                return
        except Exception as exc:
            self.playing = False
            self.error = f"{type(exc).__name__}: {exc}"
            self._render()
            return
        self.error = ""

    def _tick(self) -> float | None:
        """One tick of playing: a step (at ``max`` speed: steps for :data:`MAX_TICK` s), then
        the page is told how long to wait before the next tick. Returns that wait in seconds,
        or ``None`` when playing stopped."""
        if not self.playing:
            return None
        factor = SPEEDS[self.speed]
        if factor:
            self._step()
        else:
            until = time.monotonic() + MAX_TICK
            while self.pending and time.monotonic() < until:
                self._step()
        if not self.pending:
            self.playing = False
        self._render()
        if not self.playing:
            return None
        wait = self._gap() / factor if factor else 0.0
        self.send({"type": "tick", "wait_ms": round(wait * 1000)})
        return wait

    def _gap(self) -> float:
        """The recorded pause between the last played exchange and the next (at most
        :data:`MAX_GAP` seconds; 0 when out of order)."""
        nxt = self._peek(1)
        last = self.last.recorded if self.last is not None else None
        if not nxt or last is None:
            return 0.0
        gap = (nxt[0].started_at - last.started_at).total_seconds()
        return min(max(gap, 0.0), MAX_GAP)

    # -- what the page shows ---------------------------------------------------------------------
    def _render(self) -> None:
        target = self.target.strip()
        self.header = (
            f"target: {target}"
            if target
            else "target: the stream's responder (recorded responses, in order)"
        )
        self.tally = {
            "same": self.counts["same"],
            "differ": self.counts["differ"],
            "failed": self.counts["failed"],
            "statuses": dict(sorted(self.statuses.items())),
        }
        self.progress = self.progress_text()
        self.rows = self._rows()
        self.detail = self._detail(style=False)

    def _rows(self) -> list[dict[str, Any]]:
        rows = []
        for step in self.history:
            assert step.recorded is not None  # an exhausted step is not kept in the history
            if step.response is None:
                outcome, state = f"failed: {step.error}", "failed"
            else:
                outcome = f"{step.recorded.status_code} \u2192 {step.response.status_code}"
                state = "same" if step.same else "differ"
                outcome += f" {state}"
            rows.append(self._row(step.index, step.recorded, outcome, state))
        for offset, exchange in enumerate(self._peek(self.window)):
            state = "next" if offset == 0 else "pending"
            rows.append(self._row(self.position + offset, exchange, "", state))
        return rows

    @staticmethod
    def _row(index: int, exchange: Exchange, outcome: str, state: str) -> dict[str, Any]:
        status = exchange.status_code
        return {
            "index": index,
            "label": _label(exchange),
            "recorded": str(status) if status is not None else "error",
            "outcome": outcome,
            "state": state,
        }

    def _detail(self, *, style: bool) -> str:
        """The detail pane: the last played exchange with its answer (the *Replay* tab), or
        before any step the next one; at exhaustion the 503."""
        step = self.last
        uid = f"tlp{self.model_id[:8]}"
        if step is not None and step.recorded is None:
            response = step.response
            assert response is not None
            return (
                "<div class='tl-p-exhausted'><b>stream exhausted</b>: "
                f"{response.status_code} &ldquo;{esc(response.text)}&rdquo;</div>"
            )
        if step is not None and step.recorded is not None:
            error = RuntimeError(step.error) if step.response is None else None
            replay = ReplayResult(step.recorded, step.response, error)
            pane = detail_html(step.recorded, replay=replay, uid=f"{uid}-{step.index}", style=style)
            return f"<div class='tl-p-caption'>step {step.index}: played</div>{pane}"
        upcoming = self._peek(1)
        if not upcoming:
            return "<div class='tl-p-caption'>the stream is empty</div>"
        pane = detail_html(upcoming[0], uid=f"{uid}-{self.position}", style=style)
        return f"<div class='tl-p-caption'>step {self.position}: next</div>{pane}"

    def progress_text(self) -> str:
        """The progress line: ``2 of 4 played · 2 pending · same 2 · differ 0 · failed 0``."""
        if self.exhausted:
            state = "exhausted"
        else:
            state = f"{self.pending:,} pending" if self.pending else "all played"
        text = (
            f"{self.position:,} of {self.total:,} played \u00b7 {state} \u00b7 "
            f"same {self.counts['same']:,} \u00b7 differ {self.counts['differ']:,} \u00b7 "
            f"failed {self.counts['failed']:,}"
        )
        statuses = " ".join(f"{code}\u00d7{n:,}" for code, n in sorted(self.statuses.items()))
        return text + (f" \u00b7 statuses {statuses}" if statuses else "")

    # -- the static snapshot -------------------------------------------------------------------
    def snapshot_html(self) -> str:
        """The player as static HTML (no script): the header, the progress line, the cursor's
        neighbourhood and the detail pane, the CSS inlined. Every capture text is escaped."""
        done = self.position / self.total if self.total else 0.0
        rows = "".join(
            f"<tr class='tl-p-row tl-p-{esc(row['state'])}'><td class='tl-p-mark'>"
            f"{_MARKS.get(row['state'], '')}</td><td class='tl-p-num'>{row['index']}</td>"
            f"<td class='tl-p-label'>{esc(row['label'])}</td><td>{esc(row['recorded'])}</td>"
            f"<td class='tl-p-outcome'>{esc(row['outcome'])}</td></tr>"
            for row in self.rows
        )
        if not self.pending:
            rows += (
                "<tr class='tl-p-row tl-p-end'><td class='tl-p-mark'>\u25b6</td><td></td>"
                "<td colspan='3'>end of stream: a further step answers 503 "
                f"&ldquo;{esc(NO_MORE_TRAFFIC)}&rdquo;</td></tr>"
            )
        return (
            f"<div class='tl-player tl-snapshot'><style>{player_css()}</style>"
            f"<div class='tl-p-head'><b>Stream player</b> \u00b7 {self.total:,} exchanges "
            f"\u00b7 {esc(self.header)}</div>"
            f"<div class='tl-p-progress'><div class='tl-p-track'><div class='tl-p-fill' "
            f"style='width:{done * 100:.1f}%'></div></div>"
            f"<span class='tl-p-text'>{esc(self.progress_text())}</span></div>"
            "<table class='tl-p-rows'><thead><tr><th></th><th>#</th><th>request</th>"
            f"<th>recorded</th><th>answered</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<div class='tl-p-detail'>{self.detail}</div></div>"
        )

    def close(self) -> None:
        """Close the widget and the clients it made."""
        self._close_responder()
        self._client.close()
        super().close()


_MARKS = {"same": "\u2713", "differ": "\u2713", "failed": "\u2717", "next": "\u25b6"}
