"""StreamPlayer, headless: the cursor, stepping, playing with progress, exhaustion."""

from __future__ import annotations

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.demo import generate_traffic
from traffic_lab.testing import make_exchange
from traffic_lab.widgets import StreamPlayer


@pytest.fixture
def small_stream() -> tl.MemoryStream:
    stream = tl.MemoryStream()
    for i, status in enumerate((200, 404, 200, 500)):
        stream.put(
            make_exchange(url=f"https://api.example/items/{i}", status_code=status, json={"i": i})
        )
    return stream


def cursor_rows(player: StreamPlayer) -> list[str]:
    return player.cursor_html.value.split("<tr")[2:]


def test_responder_target_answers_the_recording_in_order(small_stream):
    player = StreamPlayer(small_stream)
    assert (player.total, player.position, player.pending) == (4, 0, 4)
    assert "the stream's responder" in player.header.value
    rows = cursor_rows(player)
    assert "\u25b6" in rows[0] and "/items/0" in rows[0] and "recorded 200" in rows[0]
    step = player.step()
    assert step.index == 0 and step.same and step.response.json() == {"i": 0}
    assert step.response.extensions[tl.exchange.REPLAYED] is True
    rows = cursor_rows(player)
    assert "\u2713" in rows[0] and "200 \u2192 200" in rows[0] and "same" in rows[0]
    assert "\u25b6" in rows[1] and "/items/1" in rows[1]
    assert player.progress.value == 1 and "1/4 played" in player.counts_html.value
    assert "step 0" in player.detail.value


def test_play_remaining_then_exhaustion_answers_503(small_stream):
    player = StreamPlayer(small_stream)
    player.play_button.click()
    assert player.position == 4 and player.pending == 0 and not player.exhausted
    assert player.progress.value == player.progress.max == 4
    assert player.counts == {"same": 4}
    assert dict(player.statuses) == {"200": 2, "404": 1, "500": 1}
    assert "statuses 200&times;2 404&times;1 500&times;1" in player.counts_html.value
    assert player.play_button.disabled
    assert "end of stream" in player.cursor_html.value
    player.step_button.click()
    assert player.exhausted and player.step_button.disabled
    assert player.last.response.status_code == 503
    assert player.last.response.text == tl.transports.NO_MORE_TRAFFIC
    assert (
        "stream exhausted" in player.detail.value
        and "no more traffic to replay" in player.detail.value
    )
    assert "exhausted" in player.counts_html.value


def test_play_with_a_limit_and_reset(small_stream):
    player = StreamPlayer(small_stream)
    assert player.play(limit=3) == 3
    assert player.position == 3
    player.reset_button.click()
    assert (player.position, player.pending, player.exhausted) == (0, 4, False)
    assert player.counts == {} and player.detail.value == ""
    assert player.step().recorded.url.endswith("/items/0")


def test_switching_to_the_responder_mid_way_starts_where_the_cursor_is(small_stream):
    def live(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"live": True})

    player = StreamPlayer(
        small_stream,
        target="http://live.invalid",
        client=httpx.Client(transport=httpx.MockTransport(live)),
    )
    first = player.step()
    assert not first.same and first.response.request.url == "http://live.invalid/items/0"
    assert player.counts == {"differ": 1}
    player.target_text.value = ""  # the responder answers from the cursor on
    second = player.step()
    assert second.same and second.response.json() == {"i": 1}


def test_recorded_transport_error_is_counted_as_failed():
    stream = tl.MemoryStream()
    stream.put(make_exchange(status_code=None))
    stream.put(make_exchange(json={"ok": True}))
    player = StreamPlayer(stream)
    failed = player.step()
    assert failed.response is None and "ConnectError" in failed.error
    assert "failed: ConnectError" in player.cursor_html.value
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
    assert len(cursor_rows(player)) == 3 + 3
