"""The real-browser test: Voila serves notebook 04 with a live kernel, Debian's chromium (driven
by Playwright) filters by status, selects an exchange and replays it, and the detail pane and
the diff appear. The screenshot is kept in ``test-artifacts/``.

This test fails, never skips, when voila, playwright or /usr/bin/chromium is missing: CI
installs them (``.ci/run``), and a skipped browser test would hide a broken notebook surface.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ._harness import ARTIFACTS, ROOT, chromium, serve_voila

NOTEBOOK = ROOT / "notebooks" / "04-browse-with-widgets.ipynb"


@pytest.fixture(scope="session")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Voila serving notebook 04 on a free port of 127.0.0.1; stopped at the end."""
    with serve_voila(NOTEBOOK, tmp_path_factory.mktemp("voila")) as url:
        yield url


@pytest.fixture(scope="session")
def sample():
    from traffic_lab.frames import read_capture

    return read_capture(ROOT / "data" / "sample-capture")


def status_texts(page, count: int = 10) -> list[str]:
    return page.locator(".tl-row .tl-col-status").all_inner_texts()[:count]


def status_labels(sample, descending: bool) -> list[str]:
    """The first ten status cells of the list sorted by status (no response: -1, shown as the
    error type; equal statuses keep recorded order)."""
    status = sample.response_status.fillna(-1).astype(int)
    order = sample.assign(key=-status if descending else status).sort_values("key", kind="stable")
    top = order.head(10)
    return [
        str(s) if s >= 0 else str(e)
        for s, e in zip(top.response_status.fillna(-1).astype(int), top.error_type, strict=True)
    ]


def test_browse_sort_search_filter_select_replay_in_chromium(voila_url, sample):
    from playwright.sync_api import expect

    total = len(sample)
    expected_5xx = int((sample.response_status >= 500).sum())
    orders = int(sample.request_url.str.lower().str.contains("/api/orders", regex=False).sum())
    with chromium({"width": 1600, "height": 1400}) as context:
        page = context.new_page()
        page.goto(voila_url)
        count = page.locator(".tl-browser .tl-count")
        # the kernel runs the whole notebook first; its last cell resets the filters
        expect(count).to_contain_text(f"{total:,} of {total:,} exchanges", timeout=120_000)
        rows = page.locator(".tl-row")
        expect(rows.first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "voila-04-browser-open.png"))

        # click a row: the detail shows that exchange
        third = page.locator(".tl-row[data-index='2']")
        path = third.locator(".tl-col-url").inner_text()
        position = int(third.get_attribute("data-position"))
        third.click()
        expect(third).to_have_class(re.compile(r"\btl-row-selected\b"))
        detail = page.locator(".tl-detail-pane .tl-detail")
        expect(detail).to_contain_text(sample.request_url.iloc[position])
        picked = page.locator(".tl-picked")
        expect(picked).to_contain_text(f"browser.selected: 1 rows ({position})")

        # keyboard down: the next exchange
        page.keyboard.press("ArrowDown")
        fourth = page.locator(".tl-row[data-index='3']")
        expect(fourth).to_have_class(re.compile(r"\btl-row-selected\b"))
        nxt = int(fourth.get_attribute("data-position"))
        expect(picked).to_contain_text(f"browser.selected: 1 rows ({nxt})")
        expect(detail).to_contain_text(sample.request_url.iloc[nxt])
        assert path  # the row showed its path

        # shift-click: a range, handed to pandas as browser.selected
        page.locator(".tl-row[data-index='6']").click(modifiers=["Shift"])
        expect(picked).to_contain_text(f"browser.selected: 4 rows ({nxt}, ")

        # click the status header: sorted, then reversed
        header = page.locator(".tl-header-cell[data-col=status]")
        header.click()
        expect(header).to_have_class(re.compile(r"\btl-sorted-asc\b"))
        first_ten = page.locator(".tl-rows > .tl-row:nth-child(-n+10) .tl-col-status")
        expect(first_ten).to_have_text(status_labels(sample, descending=False))
        header.click()
        expect(header).to_have_class(re.compile(r"\btl-sorted-desc\b"))
        expect(first_ten).to_have_text(status_labels(sample, descending=True))

        # type a search
        search = page.locator(".tl-search")
        search.fill("/api/orders")
        search.press("Enter")
        expect(count).to_contain_text(f"{orders:,} of {total:,} exchanges")
        expect(rows.first.locator(".tl-col-url")).to_contain_text("/api/orders")
        search.fill("")
        search.press("Enter")
        expect(count).to_contain_text(f"{total:,} of {total:,} exchanges")

        # ctrl-click adds a row to the selection
        page.locator(".tl-row[data-index='0']").click()
        page.locator(".tl-row[data-index='2']").click(modifiers=["Control"])
        expect(picked).to_contain_text("browser.selected: 2 rows")
        expect(page.locator(".tl-row.tl-row-selected")).to_have_count(2)

        # Enter opens the detail pane the close button hid
        root = page.locator(".tl-browser").first
        page.locator(".tl-close-detail").click()
        expect(root).to_have_class(re.compile(r"\btl-detail-closed\b"))
        page.locator(".tl-scroll").focus()
        page.keyboard.press("Enter")
        expect(root).not_to_have_class(re.compile(r"\btl-detail-closed\b"))

        # resize a column by its header's edge; hide one from the column menu
        url_head = page.locator(".tl-header-cell[data-col=url]")
        before = url_head.bounding_box()["width"]
        grip = url_head.locator(".tl-resize").bounding_box()
        page.mouse.move(grip["x"] + 2, grip["y"] + 5)
        page.mouse.down()
        page.mouse.move(grip["x"] + 102, grip["y"] + 5, steps=5)
        page.mouse.up()
        assert url_head.bounding_box()["width"] == pytest.approx(before + 100, abs=2)
        cell = rows.first.locator(".tl-col-url").bounding_box()["width"]
        assert cell == pytest.approx(before + 100, abs=2)
        page.locator(".tl-menu-button").click()
        page.locator(".tl-column-menu input[data-col=type]").uncheck()
        expect(page.locator(".tl-header-cell[data-col=type]")).to_have_count(0)
        expect(rows.first.locator(".tl-col-type")).to_have_count(0)
        page.locator(".tl-column-menu input[data-col=type]").check()
        expect(page.locator(".tl-header-cell[data-col=type]")).to_have_count(1)
        page.locator(".tl-menu-button").click()

        # the time brush: drag over the first half of the histogram, click to clear
        brush = page.locator(".tl-brush").bounding_box()
        page.mouse.move(brush["x"] + 2, brush["y"] + 10)
        page.mouse.down()
        page.mouse.move(brush["x"] + brush["width"] / 2, brush["y"] + 10, steps=5)
        page.mouse.up()
        expect(count).not_to_contain_text(f"{total:,} of {total:,}")
        shown = int(count.inner_text().split(" of ")[0].replace(",", ""))
        assert 0 < shown < total
        page.mouse.click(brush["x"] + 20, brush["y"] + 10)
        expect(count).to_contain_text(f"{total:,} of {total:,} exchanges")

        # the 5xx chip: only 5xx rows
        chip = page.locator(".tl-chip[data-value='5xx']")
        expect(chip).to_contain_text(f"{expected_5xx:,}")
        chip.click()
        expect(chip).to_have_class(re.compile(r"\btl-chip-on\b"))
        expect(count).to_contain_text(f"{expected_5xx:,} of {total:,} exchanges")
        shown = status_texts(page, 100)
        assert shown and all(s.startswith("5") for s in shown), shown
        page.screenshot(path=str(ARTIFACTS / "voila-04-browser-5xx.png"))

        # replay a 5xx (the second: the notebook's code replayed the first): the verdict
        # and the diff appear in the detail
        second = rows.nth(1)
        second.click()
        url = str(sample.request_url.iloc[int(second.get_attribute("data-position"))])
        expect(detail).to_contain_text(url)
        verdict = detail.locator(".tl-d-same, .tl-d-differs")
        expect(verdict).to_have_count(0)
        page.locator("button.tl-replay").click()
        expect(verdict).to_be_visible(timeout=30_000)
        expect(detail).to_contain_text("replayed")
        page.screenshot(path=str(ARTIFACTS / "voila-04-browse.png"), full_page=True)
