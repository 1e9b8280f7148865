"""The detail pane in a real browser (Debian chromium through Playwright) with JavaScript
turned OFF, as in a static snapshot: tabs, the Preview/Raw switch, the sorted-headers toggle
and the JSON tree work by CSS and <details> alone. Screenshots in the light and a dark theme
(JupyterLab's variables) are kept in ``test-artifacts/`` to be looked at.

Fails, never skips, when playwright or /usr/bin/chromium is missing (CI installs them).
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from traffic_lab.testing import make_exchange
from traffic_lab.transports import ReplayResult
from traffic_lab.widgets._detail import detail_css, detail_html

from ._harness import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

#: JupyterLab's dark theme values for the variables the pane reads.
DARK = """
--jp-layout-color0: #111111; --jp-layout-color1: #1e1e1e; --jp-layout-color2: #2b2b2b;
--jp-ui-font-color0: #ffffff; --jp-ui-font-color1: rgba(255,255,255,0.87);
--jp-ui-font-color2: rgba(255,255,255,0.54); --jp-border-color2: #3a3a3a;
--jp-brand-color1: #42a5f5; --jp-success-color1: #66bb6a; --jp-warn-color1: #ffa726;
--jp-error-color1: #ef5350; --jp-info-color1: #29b6f6;
--jp-mirror-editor-property-color: #7bb8f0; --jp-mirror-editor-string-color: #ff7b72;
--jp-mirror-editor-number-color: #a5d6a7; --jp-mirror-editor-keyword-color: #c792ea;
--jp-mirror-editor-atom-color: #9e9e9e;
"""
AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
#: What nbconvert's lab template does to tables in an output (from its CSS): the panes sit
#: inside such an output in an exported notebook and must not be right-aligned or striped.
RENDERED_HTML = """
.jp-RenderedHTMLCommon table { margin-left: auto; margin-right: auto; table-layout: fixed; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: 0.5em; }
:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td,
:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon th,
:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon tr { text-align: right; }
.jp-RenderedHTMLCommon tbody tr:nth-child(odd) { background: #fafafa; }
.jp-RenderedHTMLCommon tbody tr:nth-child(even) { background: #eeeeee; }
"""


def exchanges():
    users = {
        "id": 42,
        "name": "Ada <admin>",
        "active": True,
        "manager": None,
        "score": 97.5,
        "roles": ["admin", "ops"],
        "address": {"city": "London", "geo": {"lat": 51.5, "lng": -0.12}},
        "projects": [{"id": i, "name": f"p{i}"} for i in range(3)],
    }
    body = gzip.compress(httpx.Response(200, json=users).content, mtime=0)
    recorded = make_exchange(
        "GET",
        "https://api.example.test/users/42?expand=projects&fields=id,name",
        request_headers=[
            ("User-Agent", "python-httpx/0.28"),
            ("Accept", "application/json"),
            ("Accept-Encoding", "gzip"),
            ("Authorization", "[REDACTED]"),
        ],
        response_headers=[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Server", "demo"),
            ("Cache-Control", "no-store"),
            ("X-Request-Id", "7f3a"),
        ],
        response_body=body,
        started_at=AT,
        elapsed_ms=243.7,
        tags={"session": "demo"},
    )
    changed = dict(users, score=88.0, roles=["admin"])
    live = httpx.Response(
        200,
        json=changed,
        headers={"Server": "demo-2"},
        request=httpx.Request("GET", recorded.url),
    )
    return recorded, ReplayResult(recorded, live)


def page_html(theme: str) -> str:
    recorded, replay = exchanges()
    panes = [
        ("Response (JSON preview)", detail_html(recorded, uid="a", tab="response", style=False)),
        ("Headers", detail_html(recorded, uid="b", style=False)),
        ("Replay", detail_html(recorded, uid="c", replay=replay, style=False)),
        ("Code", detail_html(recorded, uid="d", tab="code", style=False)),
    ]
    variables = DARK if theme == "dark" else ""
    cells = "".join(f"<h4>{title}</h4>{pane}" for title, pane in panes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<style>{detail_css()}</style>"
        f"<style>body {{ {variables} background: var(--jp-layout-color0, #fff);"
        " color: var(--jp-ui-font-color1, #000); font-family: sans-serif; margin: 16px;"
        f" width: 860px; }} h4 {{ margin: 14px 0 4px; }} {RENDERED_HTML}</style>"
        f"</head><body><div class='jp-RenderedHTMLCommon'>{cells}</div></body></html>"
    )


@pytest.fixture(scope="module")
def browser_context() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (CI installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed (dev extra)")
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            java_script_enabled=False,  # a static snapshot: nothing may need it
            viewport={"width": 900, "height": 900},
        )
        context.route("http*://**/*", lambda route: route.abort())  # nothing leaves the page
        try:
            yield context
        finally:
            context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_snapshot_renders_and_works_without_javascript(browser_context, tmp_path, theme):
    from playwright.sync_api import expect

    path = tmp_path / f"detail-{theme}.html"
    path.write_text(page_html(theme), encoding="utf-8")
    page = browser_context.new_page()  # type: ignore[attr-defined]
    page.goto(path.as_uri())
    pane = page.locator("#tl-d-a")
    expect(pane.locator(".tl-d-panel-response")).to_be_visible()
    expect(pane.locator(".tl-d-panel-headers")).to_be_hidden()
    expect(pane.locator(".tl-d-preview .tl-j-key").first).to_have_text('"id"')
    geo = pane.locator("summary", has_text='"geo"')
    expect(geo).to_be_visible()  # level 3: closed at first
    expect(pane.locator(".tl-j-key", has_text='"lat"')).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"detail-pane-{theme}.png"), full_page=True)

    geo.click()
    expect(pane.locator(".tl-j-key", has_text='"lat"')).to_be_visible()
    pane.locator("label", has_text="Raw").click()
    expect(pane.locator(".tl-d-raw")).to_be_visible()
    expect(pane.locator(".tl-d-raw .tl-d-note")).to_have_text("177 bytes on the wire")
    pane.locator("label", has_text="Headers").click()
    expect(pane.locator(".tl-d-panel-headers")).to_be_visible()
    expect(pane.locator(".tl-d-panel-response")).to_be_hidden()
    names = pane.locator(".tl-d-panel-headers details").nth(1).locator("table:visible th")
    expect(names).to_have_text(
        [
            "Content-Type",
            "Content-Encoding",
            "Server",
            "Cache-Control",
            "X-Request-Id",
            "Content-Length",
        ]
    )
    pane.locator("label.tl-d-sortlabel").click()
    expect(names).to_have_text(
        [
            "Cache-Control",
            "Content-Encoding",
            "Content-Length",
            "Content-Type",
            "Server",
            "X-Request-Id",
        ]
    )
    expect(page.locator("#tl-d-c .tl-d-panel-replay")).to_be_visible()
    expect(page.locator("#tl-d-c .tl-diff")).to_contain_text("json $.score")
    cell = names.first.evaluate(
        "e => [getComputedStyle(e).textAlign, getComputedStyle(e.parentElement).backgroundColor]"
    )
    assert cell == ["left", "rgba(0, 0, 0, 0)"]
    colour = page.locator("#tl-d-a").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == ("rgb(30, 30, 30)" if theme == "dark" else "rgb(255, 255, 255)")
    page.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_player_snapshot_renders(browser_context, tmp_path, theme):
    from playwright.sync_api import expect

    from traffic_lab import MemoryStream
    from traffic_lab.widgets import StreamPlayer

    stream = MemoryStream()
    recorded, _ = exchanges()
    for i, status in enumerate((200, 201, 404, 200, 500, 200)):
        stream.put(
            make_exchange(
                "POST" if status == 201 else "GET",
                f"https://api.example.test/api/orders/{i}",
                status_code=status,
                json={"order": i, "status": "shipped" if status == 200 else "error"},
                started_at=AT,
            )
        )
    stream.put(recorded)
    player = StreamPlayer(stream, window=4)
    player.play(limit=3)
    variables = DARK if theme == "dark" else ""
    path = tmp_path / f"player-{theme}.html"
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><style>body {"
        f"{variables} background: var(--jp-layout-color0, #fff); margin: 16px; width: 860px;"
        f"}} {RENDERED_HTML}</style></head><body><div class='jp-RenderedHTMLCommon'>"
        f"{player.snapshot_html()}</div></body></html>",
        encoding="utf-8",
    )
    page = browser_context.new_page()  # type: ignore[attr-defined]
    page.goto(path.as_uri())
    expect(page.locator(".tl-p-text")).to_have_text(
        "3 of 7 played · 4 pending · same 3 · differ 0 · failed 0 · statuses 200\u00d71 201\u00d71 404\u00d71"
    )
    expect(page.locator(".tl-p-row.tl-p-next")).to_contain_text("GET /api/orders/3")
    label = page.locator(".tl-p-row .tl-p-label").first
    assert label.evaluate("e => getComputedStyle(e).textAlign") == "left"
    expect(page.locator(".tl-p-detail .tl-d-panel-replay")).to_be_visible()
    expect(page.locator(".tl-p-detail .tl-d-same")).to_have_text(
        "same as recorded (volatile headers ignored)"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"player-snapshot-{theme}.png"), full_page=True)
    page.close()
    player.close()
