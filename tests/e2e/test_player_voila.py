"""StreamPlayer v2 live in Voila with Debian's chromium: step shows the next exchange in the
detail pane (the tab the reader chose is kept), play at max speed runs to the end, and a step
past the end shows the 503 of an exhausted stream. The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import nbformat

from ._harness import ARTIFACTS, chromium, serve_voila

CELLS = [
    """\
from datetime import UTC, datetime, timedelta

import traffic_lab as tl
from traffic_lab.testing import make_exchange
from traffic_lab.widgets import StreamPlayer

stream = tl.MemoryStream()
t0 = datetime(2030, 1, 1, tzinfo=UTC)
for i, status in enumerate((200, 404, 200)):
    stream.put(make_exchange(url=f"https://api.example/items/{i}", status_code=status,
                             json={"item": i}, started_at=t0 + timedelta(milliseconds=100 * i)))
player = StreamPlayer(stream)
player""",
]


def test_player_steps_plays_and_exhausts_in_chromium(tmp_path):
    from playwright.sync_api import expect

    notebook = tmp_path / "player.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, notebook)
    with serve_voila(notebook, tmp_path) as url, chromium({"width": 1100, "height": 900}) as ctx:
        page = ctx.new_page()
        page.goto(url)
        progress = page.locator(".tl-player .tl-p-text")
        expect(progress).to_have_text(
            "0 of 3 played · 3 pending · same 0 · differ 0 · failed 0", timeout=60_000
        )
        detail = page.locator(".tl-player .tl-p-detail")
        expect(detail.locator(".tl-p-caption")).to_have_text("step 0: next")
        expect(detail.locator(".tl-d-url")).to_have_text("https://api.example/items/0")

        page.locator(".tl-p-step").click()
        expect(progress).to_contain_text("1 of 3 played")
        expect(detail.locator(".tl-p-caption")).to_have_text("step 0: played")
        expect(detail.locator(".tl-d-panel-replay .tl-d-same")).to_be_visible()
        expect(page.locator(".tl-p-row.tl-p-next")).to_contain_text("GET /items/1")

        detail.locator("label", has_text="Response").click()  # the reader's tab is kept
        page.locator(".tl-p-step").click()
        expect(detail.locator(".tl-d-url")).to_have_text("https://api.example/items/1")
        expect(detail.locator(".tl-d-panel-response")).to_be_visible()
        expect(detail.locator(".tl-d-panel-response .tl-j-key").first).to_have_text('"item"')
        page.screenshot(path=str(ARTIFACTS / "voila-player.png"), full_page=True)

        page.locator(".tl-p-speed").select_option("max")
        page.locator(".tl-p-play").click()
        expect(progress).to_have_text(
            "3 of 3 played · all played · same 3 · differ 0 · failed 0 · statuses 200\u00d72 404\u00d71"
        )
        expect(page.locator(".tl-p-play")).to_be_disabled()
        page.locator(".tl-p-step").click()
        expect(detail).to_have_text("stream exhausted: 503 “no more traffic to replay”")
        expect(page.locator(".tl-p-step")).to_be_disabled()
        expect(progress).to_contain_text("exhausted")
        page.screenshot(path=str(ARTIFACTS / "voila-player-exhausted.png"), full_page=True)

        page.locator(".tl-p-reset").click()
        expect(progress).to_contain_text("0 of 3 played")
        page.locator(".tl-player").focus()  # keys: → steps, space plays
        page.keyboard.press("ArrowRight")
        expect(progress).to_contain_text("1 of 3 played")
        page.keyboard.press(" ")
        expect(progress).to_contain_text("3 of 3 played")
