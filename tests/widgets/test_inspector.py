"""ExchangeInspector (the ipywidgets detail pane), headless: replay with a diff, and the static
snapshot (the detail pane's HTML) in its display bundle."""

from __future__ import annotations

import httpx

from traffic_lab.testing import make_exchange
from traffic_lab.widgets import ExchangeInspector


def test_replay_and_snapshot():
    exchange = make_exchange(url="https://api.example/users/1", json={"id": 1, "name": "<b>"})
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"id": 2, "name": "<b>"}))
    )
    pane = ExchangeInspector(exchange, client=client)
    uid = f"tli{pane.model_id[:8]}"
    before = pane.snapshot_html()
    assert f'<div class="tl-detail" id="tl-d-{uid}">' in before
    assert (
        f'id="tl-d-{uid}-tab-headers" checked>' in before
        and "tl-d-tab tl-d-tab-replay" not in before
    )
    assert str(pane.replay().diff()) == "json $.id: 1 -> 2"
    after = pane.snapshot_html()
    assert f'id="tl-d-{uid}-tab-replay" checked>' in after
    assert "<th>json $.id</th><td class='tl-old'>1</td><td class='tl-new'>2</td>" in after
    assert "<b>" not in after.replace("<b>recorded</b>", "")
    data = pane._repr_mimebundle_()
    assert list(data) == ["text/plain", "application/vnd.jupyter.widget-view+json", "text/html"]
    assert data["text/html"] == after
    pane.exchange = None
    assert pane.snapshot_html() == "<div class='tl-detail tl-note'>no exchange selected</div>"
    pane.close()
    client.close()
