"""The pytest plugin through ``pytester``: inner test sessions record into and replay from their
module's capture; the loopback server's hits show what reached the network."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import textwrap

import pytest

import traffic_lab as tl

INI = "[pytest]\nfilterwarnings = error\n"


@pytest.fixture
def inner(pytester):
    pytester.makeini(INI)
    return pytester


def write(pytester, server, body: str, name: str = "test_api") -> None:
    """An inner test module; ``URL`` is the loopback server's base URL."""
    source = f"import pytest\nimport traffic_lab as tl\n\nURL = {server.url!r}\n\n"
    # A rewrite within the same second and of the same size would reuse a stale .pyc.
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)
    pytester.makepyfile(**{name: source + textwrap.dedent(body)})


def run(pytester, *args: str):
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def new_hits(server, before: int) -> list[tuple[str, str]]:
    return server.hits[before:]


TWO_TESTS = """
def test_json(traffic_client):
    assert traffic_client.get(URL + "/json?size=10").status_code == 200

def test_echo(traffic_client):
    assert traffic_client.post(URL + "/echo", content=b"hi").json()["body"] == "aGk="
"""


def test_registered_through_the_pytest11_entry_point():
    [entry] = importlib.metadata.entry_points(group="pytest11", name="traffic_lab")
    assert entry.value == "traffic_lab.pytest_plugin"


def test_loading_the_plugin_stays_light():
    code = (
        "import sys, traffic_lab.pytest_plugin; "
        "print([m for m in ('pyarrow', 'pandas', 'uvicorn', 'traffic_lab.stores.parquet') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_once_records_then_replays_without_the_network(inner, server):
    write(inner, server, TWO_TESTS)
    before = len(server.hits)
    run(inner).assert_outcomes(passed=2)
    assert new_hits(server, before) == [("GET", "/json?size=10"), ("POST", "/echo")]
    capture = tl.ParquetStream(inner.path / "captures" / "test_api")
    assert [dict(ex.tags)["test"] for ex in capture.exchanges()] == [
        "test_api.py::test_json",
        "test_api.py::test_echo",
    ]
    before = len(server.hits)
    run(inner).assert_outcomes(passed=2)
    assert new_hits(server, before) == []


def test_none_mode_fails_a_miss_with_the_nearest_recording(inner, server):
    write(inner, server, TWO_TESTS)
    run(inner).assert_outcomes(passed=2)
    write(inner, server, TWO_TESTS.replace("size=10", "size=11"))
    before = len(server.hits)
    result = run(inner, "--traffic-mode=none")
    result.assert_outcomes(passed=1, failed=1)
    assert new_hits(server, before) == []
    result.stdout.fnmatch_lines(
        [
            "traffic_lab: --traffic-mode=none",
            "*UnmatchedRequestError: record mode 'none': no recorded exchange matches GET "
            f"{server.url}/json?size=11",
            "E * nearest recorded requests:",
            f"E *   GET {server.url}/json?size=10",
            "E *     - query 'size': '10' != '11'",
            "*- traffic_lab -*",
            f"traffic_lab: capture {inner.path / 'captures' / 'test_api'}; record mode 'none' "
            "(from --traffic-mode). To record what is missing, run with "
            "--traffic-mode=new_episodes.",
        ]
    )


def test_none_mode_on_an_empty_capture(inner, server):
    write(inner, server, TWO_TESTS)
    before = len(server.hits)
    result = run(inner, "--traffic-mode", "none")
    result.assert_outcomes(failed=2)
    assert new_hits(server, before) == []
    result.stdout.fnmatch_lines(["E * the store holds no recorded requests to compare with"])


def test_a_swallowed_miss_still_fails_the_test(inner, server):
    write(
        inner,
        server,
        """
        def test_careless(traffic_client):
            try:
                traffic_client.get(URL + "/json?size=99")
            except Exception:
                pass
        """,
    )
    result = run(inner, "--traffic-mode=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"record mode 'none': no recorded exchange matches GET {server.url}/json?size=99",
            "the store holds no recorded requests to compare with",
            "*- traffic_lab -*",
        ]
    )


def test_once_replays_a_recorded_module_and_misses_new_requests(inner, server):
    write(inner, server, TWO_TESTS)
    run(inner).assert_outcomes(passed=2)
    extra = """
    def test_new(traffic_client):
        traffic_client.get(URL + "/json?size=12")
    """
    write(inner, server, TWO_TESTS + textwrap.dedent(extra))
    result = run(inner)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "traffic_lab: capture *; record mode 'once' (from the default): the capture held "
            "recordings when this module started, so it only replays. To record what is "
            "missing, run with --traffic-mode=new_episodes."
        ]
    )
    before = len(server.hits)
    run(inner, "--traffic-mode=new_episodes").assert_outcomes(passed=3)
    assert new_hits(server, before) == [("GET", "/json?size=12")]


def test_marker_mode_and_the_option_overriding_it(inner, server):
    write(inner, server, TWO_TESTS)
    run(inner).assert_outcomes(passed=2)
    marked = """
    @pytest.mark.traffic(mode="all")
    def test_always_live(traffic_client):
        assert traffic_client.get(URL + "/json?size=10").status_code == 200
    """
    write(inner, server, TWO_TESTS + textwrap.dedent(marked))
    before = len(server.hits)
    run(inner).assert_outcomes(passed=3)
    assert new_hits(server, before) == [("GET", "/json?size=10")]
    before = len(server.hits)
    run(inner, "--traffic-mode=none").assert_outcomes(passed=3)
    assert new_hits(server, before) == []


def test_marker_matcher(inner, server):
    body = """
    @pytest.mark.traffic(mode="new_episodes", matcher=tl.Matcher(ignore_query=["ts"]))
    def test_search(traffic_client):
        assert traffic_client.get(URL + "/json?size=5&ts=TS").json() is not None
    """
    write(inner, server, body.replace("TS", "1"))
    run(inner).assert_outcomes(passed=1)
    write(inner, server, body.replace("TS", "2"))
    before = len(server.hits)
    run(inner).assert_outcomes(passed=1)
    assert new_hits(server, before) == []


def test_rewrite_records_everything_again(inner, server):
    write(inner, server, TWO_TESTS)
    run(inner).assert_outcomes(passed=2)
    before = len(server.hits)
    run(inner, "--traffic-mode=rewrite").assert_outcomes(passed=2)
    assert len(new_hits(server, before)) == 2
    cache = tl.ParquetCache(inner.path / "captures" / "test_api")
    assert len(cache) == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_client_records_and_replays(inner, server, backend):
    body = f"""
    @pytest.fixture
    def anyio_backend():
        return {backend!r}

    @pytest.mark.anyio
    async def test_async(async_traffic_client):
        response = await async_traffic_client.get(URL + "/json?size=7")
        assert response.status_code == 200

    @pytest.mark.anyio
    async def test_async_context(async_traffic_client):
        async with async_traffic_client as client:
            assert (await client.get(URL + "/gzip")).json() is not None
    """
    write(inner, server, body)
    before = len(server.hits)
    run(inner).assert_outcomes(passed=2)
    assert new_hits(server, before) == [("GET", "/json?size=7"), ("GET", "/gzip")]
    before = len(server.hits)
    run(inner).assert_outcomes(passed=2)
    assert new_hits(server, before) == []


def test_traffic_capture_fixture_and_tags(inner, server):
    write(
        inner,
        server,
        """
        @pytest.mark.traffic(tags={"suite": "smoke"})
        def test_counts(traffic_client, traffic_capture):
            traffic_client.get(URL + "/json?size=3")
            [exchange] = traffic_capture.exchanges()
            assert dict(exchange.tags) == {"test": "test_api.py::test_counts", "suite": "smoke"}
        """,
    )
    run(inner).assert_outcomes(passed=1)


def test_ini_options(pytester, server):
    pytester.makeini(INI + "traffic_capture_dir = recorded\ntraffic_mode = none\n")
    write(pytester, server, TWO_TESTS)
    before = len(server.hits)
    result = run(pytester)
    result.assert_outcomes(failed=2)
    assert new_hits(server, before) == []
    result.stdout.fnmatch_lines(
        [f"traffic_lab: capture {pytester.path / 'recorded' / 'test_api'}; record mode 'none' "
         "(from the traffic_mode ini option)*"]
    )  # fmt: skip
    run(pytester, "--traffic-mode=once").assert_outcomes(passed=2)
    assert (pytester.path / "recorded" / "test_api").is_dir()


def test_capture_path_fixture_can_be_overridden(inner, server, tmp_path):
    inner.makeconftest(
        f"""
        import pathlib, pytest

        @pytest.fixture(scope="module")
        def traffic_capture_path():
            return pathlib.Path({str(tmp_path / "elsewhere")!r})
        """
    )
    write(inner, server, TWO_TESTS)
    run(inner).assert_outcomes(passed=2)
    assert len(list(tl.ParquetStream(tmp_path / "elsewhere").exchanges())) == 2


def test_bad_marker_arguments_are_errors(inner, server):
    write(
        inner,
        server,
        """
        @pytest.mark.traffic(mode="sometimes")
        def test_mode(traffic_client):
            pass

        @pytest.mark.traffic(speed=2)
        def test_kwarg(traffic_client):
            pass
        """,
    )
    result = run(inner)
    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    assert (
        "InvalidRecordModeError: unknown record mode 'sometimes'; valid modes: once, "
        "new_episodes, none, all, rewrite"
    ) in output
    assert (
        "test_api.py::test_kwarg: unknown @pytest.mark.traffic argument(s) ['speed']; "
        "known: ['matcher', 'mode', 'redactor', 'tags']"
    ) in output


def test_bad_option_value_is_a_usage_error(inner):
    result = run(inner, "--traffic-mode=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--traffic-mode: invalid choice: 'sometimes'*"])


def test_marker_is_registered(inner):
    result = run(inner, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.traffic(mode=None, matcher=None, redactor=None, tags=None): *"]
    )
    inner.makepyfile("import pytest\n@pytest.mark.traffic(mode='none')\ndef test_x():\n    pass\n")
    run(inner, "--strict-markers").assert_outcomes(passed=1)


def test_nothing_happens_without_the_fixtures(inner):
    inner.makepyfile("def test_plain():\n    assert True\n")
    result = run(inner)
    result.assert_outcomes(passed=1)
    assert not (inner.path / "captures").exists()
    assert "traffic_lab:" not in result.stdout.str()  # no header line, no report section
