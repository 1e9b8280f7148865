"""The widgets in the two notebook front ends users run: JupyterLab 4 and Notebook 7 serve a
copy of notebook 04, Debian's chromium runs all its cells from the Run menu, and the
TrafficBrowser's anywidget front end draws its list there; a click on a row opens that
exchange's detail. (Voila is covered by test_voila.py.) Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.e2e._harness import ARTIFACTS, ROOT, chromium, serve_jupyter

NOTEBOOK = "04-browse-with-widgets.ipynb"
PAGES = {"lab": "lab/tree/" + NOTEBOOK, "notebook": "notebooks/" + NOTEBOOK}


def wait_for_idle_kernel(page, kernels: list[str], timeout: float = 120) -> None:
    """Until the page has a kernel's channels open and the notebook says it is idle (the Run
    menu runs nothing before that)."""
    deadline = time.monotonic() + timeout
    while not kernels and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    if not kernels:
        raise TimeoutError(f"no kernel connected within {timeout} s")
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        timeout=max(1.0, deadline - time.monotonic()) * 1000
    )


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_the_browser_works_in_jupyterlab_and_notebook_7(app, tmp_path):
    from playwright.sync_api import expect

    # A copy: the front ends autosave, and the repository's notebooks stay without outputs.
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / "notebooks" / NOTEBOOK)
    (root / "data").symlink_to(ROOT / "data")
    with (
        serve_jupyter(app, root / "notebooks", tmp_path / "jupyter") as url,
        chromium({"width": 1400, "height": 1100}) as context,
    ):
        page = context.new_page()
        kernels: list[str] = []
        page.on("websocket", lambda ws: "/api/kernels/" in ws.url and kernels.append(ws.url))
        page.goto(url + PAGES[app])
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        wait_for_idle_kernel(page, kernels)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator("li[data-command='runmenu:run-all']").click()

        browser = page.locator(".tl-browser").first
        expect(browser.locator(".tl-count")).to_contain_text("3,000", timeout=120_000)
        rows = browser.locator(".tl-row")
        expect(rows.first).to_be_visible()
        third = browser.locator(".tl-row[data-index='2']")
        path = third.locator(".tl-col-url").inner_text()
        third.click()
        expect(third).to_have_class(re.compile(r"\btl-row-selected\b"))
        expect(browser.locator(".tl-detail-pane .tl-detail")).to_contain_text(path.strip())
        page.screenshot(path=str(ARTIFACTS / f"{app}-04-browse.png"))
