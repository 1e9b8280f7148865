"""Every notebook, run and saved to HTML with nbconvert as the report does it, then opened in
Debian's chromium with no network: no output area is blank, no widget view is left waiting for
a renderer, and the browser's and player's static snapshots are visible. Screenshots are kept
in ``test-artifacts/``.

Two ways a notebook reaches HTML are covered: saved with its widget state (as JupyterLab and
the report save it) and exported through ``PreferSnapshots``; and saved without widget state,
exported by stock nbconvert, which then picks the snapshot by itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbconvert import HTMLExporter

from tests.e2e._harness import ARTIFACTS, JUPYTER_DIRS, chromium
from tests.notebooks.test_notebooks import NOTEBOOKS, execute
from traffic_lab.widgets.nbconvert import WIDGET_VIEW, PreferSnapshots, prefer_snapshots

# In the page: every output area, how much it shows, and widget views nothing rendered.
MEASURE = """() => {
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
  return {
    outputs: outputs.map(o => ({
      height: o.getBoundingClientRect().height,
      text: o.innerText.trim().length,
      media: o.querySelectorAll('img, svg, table').length,
    })),
    waiting: document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length,
    snapshots: [...document.querySelectorAll('.tl-snapshot')].map(s => ({
      height: s.getBoundingClientRect().height, text: s.innerText})),
  };
}"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Each notebook run once with nbclient, its widget state stored."""
    base = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as mp:
        for name, folder in JUPYTER_DIRS.items():
            (base / folder).mkdir()
            mp.setenv(name, str(base / folder))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        mp.delenv("TRAFFIC_LAB_CAPTURE", raising=False)
        yield {path.stem: execute(path) for path in NOTEBOOKS}


def to_html(notebook: Any, *, snapshots: bool) -> str:
    exporter = HTMLExporter(preprocessors=[PreferSnapshots] if snapshots else [])
    body, _ = exporter.from_notebook_node(copy.deepcopy(notebook))
    return str(body)


def measure(html: str, tmp_path: Path, name: str) -> dict[str, Any]:
    page_file = tmp_path / f"{name}.html"
    page_file.write_text(html, encoding="utf-8")
    with chromium({"width": 1280, "height": 900}) as context:
        page = context.new_page()
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(ARTIFACTS / f"html-{name}.png"), full_page=True)
        result: dict[str, Any] = page.evaluate(MEASURE)
    return result


def assert_nothing_blank(result: dict[str, Any]) -> None:
    assert result["waiting"] == 0
    blank = [o for o in result["outputs"] if o["height"] < 4 or (not o["text"] and not o["media"])]
    assert blank == [], f"{len(blank)} of {len(result['outputs'])} output areas are blank"


def test_prefer_snapshots_keeps_snapshots_and_the_text_of_stock_text_widgets():
    def view(model_id):
        return {"model_id": model_id, "version_major": 2, "version_minor": 0}

    state = {
        "h": {"model_name": "HTMLModel", "state": {"value": "<b>3 rows</b>"}},
        "l": {"model_name": "LabelModel", "state": {"value": "a <b> c"}},
        "s": {"model_name": "IntSliderModel", "state": {"value": 3}},
        "x": {"model_name": "HTMLModel", "state": {"value": 7}},
    }
    outputs = [
        {"output_type": "display_data", "data": {WIDGET_VIEW: view("m"), "text/html": "<i>s</i>"}},
        {"output_type": "display_data", "data": {WIDGET_VIEW: view("h"), "text/plain": "HTML()"}},
        {"output_type": "display_data", "data": {WIDGET_VIEW: view("l"), "text/plain": "Label()"}},
        {"output_type": "display_data", "data": {WIDGET_VIEW: view("s"), "text/plain": "Int()"}},
        {"output_type": "display_data", "data": {WIDGET_VIEW: view("x"), "text/plain": "HTML()"}},
        {"output_type": "display_data", "data": {WIDGET_VIEW: view("gone")}},
        {"output_type": "stream", "text": "x"},
    ]
    assert prefer_snapshots(outputs, state) == 3
    assert outputs[0]["data"] == {"text/html": "<i>s</i>"}
    shown = "<div class='tl-static-widget'>"
    assert outputs[1]["data"] == {
        "text/plain": "HTML()",
        "text/html": shown + "<b>3 rows</b></div>",
    }
    assert outputs[2]["data"]["text/html"] == shown + "a &lt;b&gt; c</div>"
    for kept in outputs[3:6]:  # a slider, a value that is not text, a model not saved
        assert WIDGET_VIEW in kept["data"] and "text/html" not in kept["data"]


@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_saved_with_widget_state_exports_snapshots(executed, stem, tmp_path):
    notebook = executed[stem]
    html = to_html(notebook, snapshots=True)
    result = measure(html, tmp_path, stem)
    assert_nothing_blank(result)
    if stem.startswith(("02-", "04-")):
        # The player (02) and the browser (04) show their snapshots: a header line and rows.
        assert result["snapshots"], "no traffic_lab snapshot in the page"
        assert all(s["height"] > 100 for s in result["snapshots"])
    if stem.startswith("04-"):
        text = result["snapshots"][0]["text"]
        assert "exchanges" in text and "GET" in text


@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS if p.stem[:3] in ("02-", "04-")])
def test_saved_without_widget_state_stock_nbconvert_shows_snapshots(executed, stem, tmp_path):
    notebook = copy.deepcopy(executed[stem])
    notebook.metadata.pop("widgets", None)
    nbformat.validate(notebook)
    result = measure(to_html(notebook, snapshots=False), tmp_path, f"{stem}-stateless")
    assert_nothing_blank(result)
    assert result["snapshots"] and all(s["height"] > 100 for s in result["snapshots"])


@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_no_result_is_a_raw_pandas_repr(executed, stem):
    # A Series or frame shown as plain text ("Name: x, dtype: float64") reads as a debugging
    # dump in an exported report: results show as tables (or the display helpers' HTML).
    raw = [
        output["data"]["text/plain"]
        for cell in executed[stem].cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result"
        and "text/html" not in output["data"]
        and "dtype: " in output["data"].get("text/plain", "")
    ]
    assert raw == []
