"""StreamPlayer, headless: the cursor, stepping, playing at a speed tick by tick as the page
drives it, exhaustion (503), the detail pane at the cursor, and the static snapshot."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.demo import generate_traffic
from traffic_lab.exchange import Chunk
from traffic_lab.testing import make_exchange
from traffic_lab.widgets import StreamPlayer
from traffic_lab.widgets.stream_player import MAX_GAP, player_css

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def small_stream() -> tl.MemoryStream:
    stream = tl.MemoryStream()
    for i, status in enumerate((200, 404, 200, 500)):
        stream.put(
            make_exchange(
                url=f"https://api.example/items/{i}",
                status_code=status,
                json={"i": i},
                started_at=T0 + timedelta(seconds=(0, 1, 1.5, 30)[i]),
            )
        )
    return stream


def command(player: StreamPlayer, cmd: str) -> list[dict]:
    """Send a command as the page does; return the messages the kernel sent back."""
    sent: list[dict] = []
    player.send = sent.append  # type: ignore[method-assign]
    player._on_msg(player, {"cmd": cmd}, [])
    return sent


def states(player: StreamPlayer) -> list[tuple[int, str, str, str]]:
    return [(r["index"], r["label"], r["state"], r["outcome"]) for r in player.rows]


def test_responder_target_answers_the_recording_in_order(small_stream):
    player = StreamPlayer(small_stream)
    assert (player.total, player.position, player.pending) == (4, 0, 4)
    assert player.header == "target: the stream's responder (recorded responses, in order)"
    assert player.progress == "0 of 4 played · 4 pending · same 0 · differ 0 · failed 0"
    assert states(player) == [
        (0, "GET /items/0", "next", ""),
        (1, "GET /items/1", "pending", ""),
        (2, "GET /items/2", "pending", ""),
        (3, "GET /items/3", "pending", ""),
    ]
    assert player.detail.startswith("<div class='tl-p-caption'>step 0: next</div>")
    step = player.step()
    assert step.index == 0 and step.same and step.response.json() == {"i": 0}
    assert step.response.extensions[tl.exchange.REPLAYED] is True
    assert states(player)[:2] == [
        (0, "GET /items/0", "same", "200 → 200 same"),
        (1, "GET /items/1", "next", ""),
    ]
    assert player.progress == (
        "1 of 4 played · 3 pending · same 1 · differ 0 · failed 0 · statuses 200\u00d71"
    )
    assert player.tally == {"same": 1, "differ": 0, "failed": 0, "statuses": {"200": 1}}
    # the detail pane shows the played exchange, its Replay tab open on the answer
    assert player.detail.startswith("<div class='tl-p-caption'>step 0: played</div>")
    assert "tl-d-tab-replay" in player.detail and "checked><label" in player.detail
    assert "same as recorded (volatile headers ignored)" in player.detail
    assert "https://api.example/items/0" in player.detail


def test_step_command_then_exhaustion_answers_503(small_stream):
    player = StreamPlayer(small_stream)
    assert player.play() == 4
    assert player.position == 4 and player.pending == 0 and not player.exhausted
    assert player.counts == {"same": 4}
    assert dict(player.statuses) == {"200": 2, "404": 1, "500": 1}
    assert player.progress.endswith("statuses 200\u00d72 404\u00d71 500\u00d71")
    assert "all played" in player.progress
    assert command(player, "step") == []
    assert player.exhausted
    assert player.last.response.status_code == 503
    assert player.last.response.text == tl.transports.NO_MORE_TRAFFIC
    assert player.detail == (
        "<div class='tl-p-exhausted'><b>stream exhausted</b>: 503 "
        "&ldquo;no more traffic to replay&rdquo;</div>"
    )
    assert player.progress.startswith("4 of 4 played · exhausted")
    assert player.error == ""


def test_play_ticks_follow_the_recorded_pace_at_the_chosen_speed(small_stream):
    player = StreamPlayer(small_stream)
    player.speed = "2x"
    assert command(player, "play") == [{"type": "tick", "wait_ms": 500}]  # 1 s recorded, 2x
    assert player.playing and player.position == 1
    assert command(player, "tick") == [{"type": "tick", "wait_ms": 250}]  # 0.5 s
    assert command(player, "pause") == [] and not player.playing
    assert command(player, "tick") == [] and player.position == 2  # a late tick does nothing
    player.speed = "1x"
    # a 28.5 s pause in the recording is shortened to MAX_GAP
    assert command(player, "play") == [{"type": "tick", "wait_ms": int(MAX_GAP * 1000)}]
    assert command(player, "tick") == []  # the last one: playing stops by itself
    assert (player.position, player.playing, player.exhausted) == (4, False, False)


def test_play_at_max_speed_plays_in_batches(small_stream):
    player = StreamPlayer(small_stream)
    player.speed = "max"
    assert command(player, "play") == []  # all four in the first batch: nothing left to tick
    assert (player.position, player.playing) == (4, False)
    assert player.counts == {"same": 4}


def test_reset_command(small_stream):
    player = StreamPlayer(small_stream)
    assert player.play(limit=3) == 3
    command(player, "reset")
    assert (player.position, player.pending, player.exhausted) == (0, 4, False)
    assert player.counts == {} and player.tally["same"] == 0
    assert player.detail.startswith("<div class='tl-p-caption'>step 0: next</div>")
    assert player.step().recorded.url.endswith("/items/0")


def test_a_failing_command_is_shown_not_raised(small_stream):
    player = StreamPlayer(small_stream, target="http://\x00")
    command(player, "play")
    assert player.error == (
        "InvalidURL: Invalid non-printable ASCII character in URL, '\\x00' at position 7."
    )
    assert not player.playing and player.position == 0
    player.target = ""
    command(player, "step")
    assert player.error == "" and player.position == 1


def test_switching_to_the_responder_mid_way_starts_where_the_cursor_is(small_stream):
    def live(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"live": True})

    player = StreamPlayer(
        small_stream,
        target="http://live.invalid",
        client=httpx.Client(transport=httpx.MockTransport(live)),
    )
    assert player.header == "target: http://live.invalid"
    first = player.step()
    assert not first.same and first.response.request.url == "http://live.invalid/items/0"
    assert player.counts == {"differ": 1}
    assert "differs from the recording" in player.detail
    assert "<th>json $.i</th>" in player.detail
    player.target = ""  # the responder answers from the cursor on
    second = player.step()
    assert second.same and second.response.json() == {"i": 1}


def test_recorded_transport_error_is_counted_as_failed():
    stream = tl.MemoryStream()
    stream.put(make_exchange(status_code=None))
    stream.put(make_exchange(json={"ok": True}))
    player = StreamPlayer(stream)
    failed = player.step()
    assert failed.response is None and "ConnectError" in failed.error
    assert states(player)[0][2:] == ("failed", f"failed: {failed.error}")
    assert "replay failed: RuntimeError: ConnectError" in player.detail
    assert player.play() == 1
    assert player.counts == {"failed": 1, "same": 1}


def test_live_target_against_the_demo_api(demo_api):
    stream = tl.MemoryStream()
    with httpx.Client(transport=tl.RecordingTransport(stream), base_url=demo_api.url) as client:
        generate_traffic(client, 40, seed=5)
    player = StreamPlayer(stream, target=demo_api.url)
    assert player.play() == 40
    assert sum(player.counts.values()) == 40 and player.counts["failed"] == 0
    # The demo API answers the same as recorded, except what depends on its request count
    # (created ids, the every-fourth-call rate limit): some differ, most are the same.
    assert player.counts["same"] > player.counts["differ"] > 0
    step = player.step()
    assert player.exhausted and step.response.status_code == 503
    player.close()


def test_stream_without_len_is_counted():
    class Plain:
        def exchanges(self):
            return iter([make_exchange(), make_exchange()])

        def requests(self):
            return (e.request for e in self.exchanges())

        def responses(self):
            return (e.response for e in self.exchanges())

    assert StreamPlayer(Plain()).total == 2


def test_parquet_stream(stream):
    player = StreamPlayer(stream, window=3)
    assert player.total == len(stream)
    player.play(limit=5)
    assert player.position == 5 and len(player.history) == 3
    assert [row["state"] for row in player.rows] == ["same"] * 3 + ["next", "pending", "pending"]


def test_empty_stream():
    player = StreamPlayer(tl.MemoryStream())
    assert player.detail == "<div class='tl-p-caption'>the stream is empty</div>"
    assert player.rows == [] and player.progress.startswith("0 of 0 played · all played")


def test_snapshot_and_mime_bundle(small_stream):
    small_stream.put(make_exchange(url=f"https://evil.example/{HOSTILE}", json={HOSTILE: 1}))
    player = StreamPlayer(small_stream, window=2)
    player.play(limit=1)
    html = player.snapshot_html()
    assert html.startswith(f"<div class='tl-player tl-snapshot'><style>{player_css()}</style>")
    assert (
        "<div class='tl-p-head'><b>Stream player</b> · 5 exchanges · target: the stream&#x27;s "
        "responder (recorded responses, in order)</div>"
    ) in html
    assert "<div class='tl-p-fill' style='width:20.0%'></div>" in html
    assert (
        "<span class='tl-p-text'>1 of 5 played · 4 pending · same 1 · differ 0 · failed 0 · "
        "statuses 200\u00d71</span>"
    ) in html
    assert (
        "<tr class='tl-p-row tl-p-same'><td class='tl-p-mark'>✓</td><td class='tl-p-num'>0</td>"
        "<td class='tl-p-label'>GET /items/0</td><td>200</td>"
        "<td class='tl-p-outcome'>200 → 200 same</td></tr>"
        "<tr class='tl-p-row tl-p-next'><td class='tl-p-mark'>▶</td><td class='tl-p-num'>1</td>"
        "<td class='tl-p-label'>GET /items/1</td><td>404</td><td class='tl-p-outcome'></td></tr>"
    ) in html
    assert f"<div class='tl-p-detail'>{player.detail}</div></div>" in html
    player.play()
    html = player.snapshot_html()
    assert "<script" not in html
    assert "GET /&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "end of stream: a further step answers 503" in html
    data, _ = player._repr_mimebundle_()
    assert list(data) == ["text/plain", "application/vnd.jupyter.widget-view+json", "text/html"]
    assert data["text/html"] == html
    player.close()


def _sse_stream() -> tl.MemoryStream:
    """One recorded SSE stream: 5 events 40 ms apart (recorded chunks)."""
    events = [f"data: {i}\n\n".encode() for i in range(5)]
    chunks = tuple(Chunk(len(e), i * 40_000) for i, e in enumerate(events))
    stream = tl.MemoryStream()
    body = b"".join(events)
    sse = make_exchange(url="https://api.example/v1/chat/completions", response_body=body)
    stream.put(sse.replace(chunks=chunks))
    return stream


@pytest.mark.parametrize(("speed", "low", "high"), [("1x", 0.16, 0.5), ("2x", 0.08, 0.16)])
def test_the_responder_leg_replays_a_streamed_body_at_the_recorded_pace(speed, low, high):
    player = StreamPlayer(_sse_stream())
    player.speed = speed
    start = time.perf_counter()
    step = player.step()
    took = time.perf_counter() - start
    assert step.same and step.response.content == b"".join(
        f"data: {i}\n\n".encode() for i in range(5)
    )
    assert 0.8 * low <= took < high + 0.1, took
    # The detail pane's Timing tab lists the chunk arrivals.
    assert "Chunk arrivals (5 chunks, the last at 160.0 ms)" in player.detail
    player.close()


def test_at_max_speed_a_streamed_body_is_replayed_at_once():
    player = StreamPlayer(_sse_stream())
    player.speed = "max"
    start = time.perf_counter()
    assert player.step().same
    assert time.perf_counter() - start < 0.1
    player.close()
