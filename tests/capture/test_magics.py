"""The %%traffic and %traffic magics: a notebook run twice through nbclient (the second time with
the demo API stopped, served from the capture), and the magics in an in-process IPython shell."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

import traffic_lab as tl
from traffic_lab.demo import DemoAPI
from traffic_lab.testing import LoopbackServer


@pytest.fixture
def jupyter_env(tmp_path: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            mp.setenv(name, str(tmp_path / name.lower()))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield


def notebook(url: str, capture: Path) -> nbformat.NotebookNode:
    cells = [
        f"%load_ext traffic_lab\nimport httpx, requests\nURL = {url!r}\nCAPTURE = {str(capture)!r}",
        "%%traffic {CAPTURE} --tag run=nb\n"
        "with httpx.Client(base_url=URL) as client:\n"
        "    user = client.get('/api/users/3').json()\n"
        "user['name']",
        "%%traffic {CAPTURE}\nrequests.get(URL + '/api/orders').json()['orders'][0]['id']",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def run(nb: nbformat.NotebookNode) -> list[str]:
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return [
        "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs
        )
        for cell in nb.cells
    ]


def test_a_notebook_runs_twice_the_second_time_from_the_capture(tmp_path, jupyter_env):
    capture = tmp_path / "nb-capture"
    with DemoAPI() as api:
        url = api.url
        first = run(notebook(url, capture))
    # The API is stopped: every request of the second run is answered from the capture.
    second = run(notebook(url, capture))
    assert "'user-3'" in first[1] and "'user-3'" in second[1]
    assert "traffic_lab: 1 recorded, 0 replayed, 0 missed" in first[1]
    assert "traffic_lab: 0 recorded, 1 replayed, 0 missed" in second[1]
    assert "traffic_lab: 0 recorded, 1 replayed, 0 missed" in second[2]
    order_id = re.compile(r"'[0-9a-f-]{36}'")
    assert order_id.findall(first[2]) == order_id.findall(second[2]) != []
    df = tl.read_capture(capture)
    tags = sorted(tuple(sorted(t)) for t in df["tags"])
    assert tags == [(("cell", "2"), ("run", "nb")), (("cell", "3"),)]


def test_the_magics_in_a_shell(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "traffic_lab")
        target = tmp_path / "shell"
        with LoopbackServer() as server:
            shell.user_ns.update(URL=server.url, T=str(target), httpx=httpx)
            shell.parent_header = {"metadata": {"cellId": "cell-abc"}}
            result = shell.run_cell("%%traffic {T} --tag k=v\nhttpx.get(URL + '/json?size=5')")
            assert result.success
            shell.run_line_magic("traffic", f"on {target} --tag run=s")
            first = shell.execution_count
            shell.parent_header = {"metadata": {"cellId": "cell-1"}}
            shell.run_cell("httpx.get(URL + '/json?size=6')", store_history=True)
            shell.parent_header = {"metadata": {"cellId": "cell-2"}}
            shell.run_cell("httpx.get(URL + '/json?size=7')", store_history=True)
            shell.run_line_magic("traffic", "off")
            shell.run_cell("httpx.get(URL + '/json?size=8')", store_history=True)
        df = tl.read_capture(target)
        by_size = {
            httpx.URL(u).params["size"]: dict(t)
            for u, t in zip(df["request_url"], df["tags"], strict=True)
        }
        assert sorted(by_size) == ["5", "6", "7"]  # size 8 ran after %traffic off
        assert {"k": "v", "cell_id": "cell-abc"}.items() <= by_size["5"].items()
        # %traffic on names each cell that runs after it.
        assert by_size["6"] == {"cell": str(first), "cell_id": "cell-1", "run": "s"}
        assert by_size["7"] == {"cell": str(first + 1), "cell_id": "cell-2", "run": "s"}
        # A miss in mode none fails the cell with the miss.
        result = shell.run_cell(
            f"%%traffic {target} --mode none\nhttpx.get('http://127.0.0.1:9/x')"
        )
        assert isinstance(result.error_in_exec, tl.errors.UnmatchedRequestError)
        with pytest.raises(ValueError, match="usage"):
            shell.run_line_magic("traffic", "sideways")
    finally:
        InteractiveShell.clear_instance()


def test_traffic_cell_replays_a_stream_at_the_recorded_pace(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    cell = (
        "import time\nstart = time.perf_counter()\n"
        "with httpx.Client() as c, c.stream('GET', URL + SSE) as r:\n"
        "    pieces = list(r.iter_raw())\n"
        "took = time.perf_counter() - start"
    )
    try:
        shell.run_line_magic("load_ext", "traffic_lab")
        target = tmp_path / "sse"
        sse = "/stream?chunks=5&size=8&delay_ms=50&sse=1"
        with LoopbackServer() as server:
            shell.user_ns.update(URL=server.url, T=str(target), httpx=httpx, SSE=sse)
            assert shell.run_cell("%%traffic {T}\n" + cell).success
        live = shell.user_ns["pieces"]
        [recorded] = list(tl.ParquetStream(target).exchanges())
        span = recorded.chunks[-1].offset_us / 1e6
        line = "%%traffic {T} --mode none --timing recorded --speed 2\n"
        assert shell.run_cell(line + cell).success
        assert shell.user_ns["pieces"] == live
        assert 0.4 * span <= shell.user_ns["took"] < 0.8 * span + 0.15
        result = shell.run_cell("%%traffic {T} --timing sometimes\n1")
        assert "usage: %%traffic PATH" in str(result.error_before_exec or result.error_in_exec)
    finally:
        InteractiveShell.clear_instance()
