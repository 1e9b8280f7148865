"""Every notebook in notebooks/ runs top to bottom with nbclient, as a user would run it: cwd is
notebooks/, against the demo API it starts on 127.0.0.1 and the sample capture in data/, with
the widget state stored (``store_widget_state=True``) as JupyterLab saves it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import traffic_lab as tl

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep Jupyter, IPython and matplotlib state out of $HOME (the kernel inherits this)."""
    base = tmp_path_factory.mktemp("jupyter")
    names = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "MPLCONFIGDIR": "mpl",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, folder in names.items():
            mp.setenv(name, str(base / folder))
        # jupyter_core warns once about its platformdirs migration unless told which to use.
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        mp.delenv("TRAFFIC_LAB_CAPTURE", raising=False)
        yield


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def test_the_five_notebooks_exist():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, jupyter_env):
    notebook = execute(path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count for c in code)
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in code
        for o in c.outputs
    )
    views = [
        o.data[WIDGET_VIEW]["model_id"]
        for c in code
        for o in c.outputs
        if WIDGET_VIEW in o.get("data", {})
    ]
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    if path.name.startswith("01-"):
        assert "from the capture in" in text and "from the server in" in text
        assert "[REDACTED]" in text and "no recorded exchange matches GET" in text
    elif path.name.startswith("02-"):
        assert "no more traffic to replay" in text
        assert len(views) == 1 and views[0] in state
        player = state[views[0]]  # an anywidget; its state as the last cell left it
        assert player["model_name"] == "AnyModel"
        assert player["state"]["_esm"].startswith("// traffic_lab StreamPlayer")
        assert player["state"]["exhausted"] is True
        assert player["state"]["position"] == player["state"]["total"] == 40
        # Beside the live view, a static snapshot as the player was when shown.
        snapshots = [
            o.data["text/html"]
            for c in code
            for o in c.outputs
            if WIDGET_VIEW in o.get("data", {}) and "tl-snapshot" in o.data.get("text/html", "")
        ]
        assert len(snapshots) == 1 and "2 of 40 played" in snapshots[0]
    elif path.name.startswith("03-"):
        assert len(images) == 4
        # The analysis answers display with units, and label rows by what people read.
        html = "\n".join(
            str(o.get("data", {}).get("text/html", "")) for c in code for o in c.outputs
        )
        assert re.search(r"error rate \(4xx, 5xx, failed\)</th><td>\d+\.\d %</td>", html)
        assert re.search(r"latency p50\s+\d+(\.\d)? ms", text)
        assert re.search(r'<th class="tl-idx" title="GET [^"]+">GET \S+/api/search\?q=', html)
        assert "api.shop.test" in text and "staging.shop.test" in text
        # The open_capture section counts what read_capture loads for the same filter.
        sample = Path(__file__).resolve().parents[2] / "data" / "sample-capture"
        staging = tl.read_capture(sample, where={"host": "staging.shop.test"})
        assert f"{len(staging)} exchanges on staging" in text
    elif path.name.startswith("05-"):
        # Recorded by %%traffic cells (httpx, requests and the openai SDK), then replayed with
        # the demo API stopped: every request of the offline cell came from the capture.
        assert "traffic_lab: 23 recorded, 3 replayed, 0 missed" in text
        assert "traffic_lab: 2 recorded, 0 replayed, 0 missed" in text
        assert "traffic_lab: 0 recorded, 28 replayed, 0 missed" in text
        assert "APIConnectionError caused by: record mode 'none': no recorded exchange" in text
        answer = re.search(r"complete: (You asked .*)", text)
        assert answer is not None
        for label in ("streamed", "offline, complete", "offline, streamed"):
            assert f"{label}: {answer.group(1)}" in text
        assert len(views) == 1 and views[0] in state
    else:
        # The browser (an anywidget) and the label its `selected` observer keeps up to date.
        assert len(views) == 2 and all(v in state for v in views)
        browser, picked = state[views[0]], state[views[1]]
        assert browser["model_name"] == "AnyModel"
        assert browser["state"]["matches"] == browser["state"]["total"] == 3000
        assert browser["state"]["_esm"].startswith("// traffic_lab TrafficBrowser")
        assert picked["model_name"] == "HTMLModel"
        assert picked["state"]["value"] == "browser.selected: 0 rows ()"
        # Beside the live view, a static snapshot for pages without a kernel.
        snapshots = [
            o.data["text/html"]
            for c in code
            for o in c.outputs
            if WIDGET_VIEW in o.get("data", {}) and "tl-snapshot" in o.data.get("text/html", "")
        ]
        assert len(snapshots) == 1 and "of 3,000 exchanges" in snapshots[0]
        assert "exchanges written to errors.har" in text
