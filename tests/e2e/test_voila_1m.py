"""The browser over a capture of 1,000,000 exchanges, live in Voila with Debian's chromium: the
list opens on all of them, scrolls to the very end (the last rows are drawn and a click opens
the last exchange), and the 5xx chip narrows it to the 1% that failed. The capture is made by
the test with the scale benchmark's builder (100k recorded exchanges, copied with fresh writer
ids, keys and times). Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from ._harness import ARTIFACTS, ROOT, chromium, serve_voila

SIZE = 1_000_000


def bench_scale():
    spec = importlib.util.spec_from_file_location(
        "bench_scale", ROOT / "benchmarks" / "bench_scale.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("voila-1m")
    capture = work / "capture"
    bench_scale().build_capture(capture, SIZE)
    notebook = work / "big.ipynb"
    code = (
        "from traffic_lab.widgets import TrafficBrowser\n\n"
        f"browser = TrafficBrowser({str(capture)!r})\n"
        "browser"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, notebook)
    with serve_voila(notebook, work / "jupyter") as url:
        yield url


def test_a_million_exchanges_scroll_to_the_end_and_filter(page_url: str) -> None:
    from playwright.sync_api import expect

    with chromium({"width": 1500, "height": 1000}) as context:
        page = context.new_page()
        page.goto(page_url)
        count = page.locator(".tl-browser .tl-count")
        expect(count).to_contain_text(f"{SIZE:,} of {SIZE:,} exchanges", timeout=180_000)
        expect(page.locator(".tl-row[data-index='0']")).to_be_visible()

        # scroll to the end of the list: the last rows are drawn
        page.locator(".tl-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        last = page.locator(f".tl-row[data-index='{SIZE - 1}']")
        expect(last).to_be_visible(timeout=30_000)
        expect(page.locator(f".tl-row[data-index='{SIZE - 2}']")).to_be_visible()
        # the last row ends at the list's bottom edge, whole, and drawing it did not grow the
        # scroll area (a row drawn past the spacer made the list chase its own scrolling)
        box = page.locator(".tl-scroll").bounding_box()
        row_box = last.bounding_box()
        assert box is not None and row_box is not None
        assert row_box["y"] + row_box["height"] <= box["y"] + box["height"] + 0.5
        assert row_box["y"] >= box["y"]
        heights = page.locator(".tl-scroll").evaluate(
            "el => [el.scrollHeight, el.querySelector('.tl-spacer').offsetHeight]"
        )
        assert heights[0] == heights[1]
        path = last.locator(".tl-col-url").inner_text().strip()
        last.click()
        expect(last).to_have_class(re.compile(r"\btl-row-selected\b"))
        expect(page.locator(".tl-detail-pane .tl-detail")).to_contain_text(path, timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "voila-1m-end.png"))

        # the 5xx chip: only the failed 1% (every exchange i with i % 100 == 51)
        page.locator(".tl-chip[data-value='5xx']").click()
        expect(count).to_contain_text(f"{SIZE // 100:,} of {SIZE:,} exchanges", timeout=30_000)
        first = page.locator(".tl-row[data-index='0'] .tl-col-status")
        expect(first).to_have_text(re.compile(r"^50[023]$"), timeout=30_000)
        statuses = page.locator(".tl-row .tl-col-status").all_inner_texts()
        assert statuses and all(s.strip() in ("500", "502", "503") for s in statuses)
        page.screenshot(path=str(ARTIFACTS / "voila-1m-5xx.png"))


def test_the_builder_is_the_benchmarks(tmp_path: Path) -> None:
    """The capture this test browses is the one bench_scale and bench_widgets measure."""
    import traffic_lab as tl

    bench_scale().build_capture(tmp_path / "c", 200_000)
    q = tl.open_capture(tmp_path / "c")
    assert q.count() == 200_000
    assert q.where(status="5xx").count() == 2_000
