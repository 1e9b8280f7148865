"""@pytest.mark.traffic wraps the whole test in tl.capture(): an application that builds its own
httpx.Client, httpx.AsyncClient and requests.Session is recorded, then replayed with the server
stopped under --traffic-mode=none."""

from __future__ import annotations

import shutil
import textwrap

import pytest

import traffic_lab as tl
from traffic_lab.testing import LoopbackServer

APP = """
import asyncio
import httpx
import requests


def fetch_all(base):
    with httpx.Client(base_url=base) as client:
        a = client.get("/json?size=10").json()
    async def fetch():
        async with httpx.AsyncClient(base_url=base) as client:
            return (await client.get("/gzip?size=200")).json()
    b = asyncio.run(fetch())
    with requests.Session() as session:
        c = session.get(base + "/redirect/1").json()
    return a, b, c
"""

TESTS = """
import pytest
import httpx
import app

URL = {url!r}


@pytest.mark.traffic
def test_app():
    a, b, c = app.fetch_all(URL)
    assert len(a) and len(b) and len(c)


@pytest.mark.traffic
def test_app_and_fixture(traffic_client):
    assert traffic_client.get(URL + "/json?size=11").status_code == 200
    with httpx.Client() as own:
        assert own.get(URL + "/json?size=12").status_code == 200


def test_unmarked_stays_live():
    with httpx.Client() as client:
        assert client.get(URL + "/json?size=13").status_code == 200
"""


@pytest.fixture
def inner(pytester):
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    return pytester


def run(pytester, *args):
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_marked_tests_record_their_own_clients_then_replay_offline(inner):
    inner.syspathinsert()
    inner.makepyfile(app=textwrap.dedent(APP))
    with LoopbackServer() as server:
        inner.makepyfile(test_app=TESTS.format(url=server.url))
        run(inner).assert_outcomes(passed=3)
        assert server.hits == [
            ("GET", "/json?size=10"),
            ("GET", "/gzip?size=200"),
            ("GET", "/redirect/1"),
            ("GET", "/json?size=64"),
            ("GET", "/json?size=11"),
            ("GET", "/json?size=12"),
            ("GET", "/json?size=13"),
        ]
    capture = tl.ParquetStream(inner.path / "captures" / "test_app")
    recorded = [(dict(ex.tags)["test"], ex.url.split("/", 3)[3]) for ex in capture.exchanges()]
    assert recorded == [
        ("test_app.py::test_app", "json?size=10"),
        ("test_app.py::test_app", "gzip?size=200"),
        ("test_app.py::test_app", "redirect/1"),
        ("test_app.py::test_app", "json?size=64"),
        ("test_app.py::test_app_and_fixture", "json?size=11"),  # once, not twice
        ("test_app.py::test_app_and_fixture", "json?size=12"),
    ]
    # The server is gone: the marked tests pass from the capture, the unmarked one cannot.
    result = run(inner, "--traffic-mode=none")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_unmarked_stays_live*ConnectError*"])


def test_a_miss_the_application_swallows_still_fails_the_test(inner):
    inner.syspathinsert()
    inner.makepyfile(
        test_swallow="""
        import httpx
        import pytest

        @pytest.mark.traffic(mode="none")
        def test_careless():
            try:
                httpx.get("http://127.0.0.1:9/nothing")
            except Exception:
                pass
        """
    )
    result = run(inner)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no recorded exchange matches GET http://127.0.0.1:9/nothing*"])
