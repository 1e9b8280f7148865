"""pytest plugin: httpx clients that record into and replay from a capture per test module.

Registered through the ``pytest11`` entry point; it imports only pytest until a test asks for
``traffic_client`` / ``async_traffic_client`` (an ``httpx.Client`` / ``AsyncClient`` over a
:class:`~traffic_lab.ParquetCache` at ``<test file's folder>/captures/<module name>``),
``traffic_capture`` (that cache) or ``traffic_capture_path`` (override it to move captures).
A test marked ``@pytest.mark.traffic`` runs whole inside :func:`traffic_lab.capture`: clients
that the code under test builds (httpx, requests, SDKs) record and replay through the same store.
The record mode comes from ``--traffic-mode``, else ``@pytest.mark.traffic(mode=...)``, else the
``traffic_mode`` ini option, else ``once``; a miss fails the test even if the test catches it.
docs/cli.md describes the modes, the marker and the ini options.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from .errors import UnmatchedRequestError
    from .matching import Matcher
    from .stores.parquet import ParquetCache

__all__ = [
    "MODES",
    "async_traffic_client",
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "traffic_capture",
    "traffic_capture_path",
    "traffic_client",
]

#: The record modes, as ``traffic_lab.transports.RecordMode`` names them.
MODES = ("once", "new_episodes", "none", "all", "rewrite")
_MARKER_ARGS = frozenset({"mode", "matcher", "redactor", "tags"})
_MISSES = pytest.StashKey[list["UnmatchedRequestError"]]()
_SETUP = pytest.StashKey["_TestSetup"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("traffic_lab", "traffic_lab: record and replay HTTP traffic")
    group.addoption(
        "--traffic-mode",
        dest="traffic_lab_mode",
        choices=MODES,
        default=None,
        help="record mode for every test using traffic_client / async_traffic_client or "
        "marked @pytest.mark.traffic, "
        "over markers: once (default), new_episodes, none (no network), all, rewrite.",
    )
    parser.addini(
        "traffic_capture_dir",
        "traffic_lab: folder of the per-module captures, relative to each test file's folder "
        "(default: captures).",
        default="captures",
    )
    parser.addini(
        "traffic_mode",
        "traffic_lab: default record mode when neither --traffic-mode nor a marker sets one "
        "(default: once).",
        default="once",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "traffic(mode=None, matcher=None, redactor=None, tags=None): record mode, request "
        "matcher, redactor and tags of the traffic_lab clients of this test.",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    mode = config.getoption("traffic_lab_mode")
    return f"traffic_lab: --traffic-mode={mode}" if mode else None


# -- modes ---------------------------------------------------------------------------------------
def _session_mode(config: pytest.Config) -> tuple[str, str]:
    """The mode set for the whole run, and where it was set."""
    option = config.getoption("traffic_lab_mode")
    if option:
        return str(option), "--traffic-mode"
    ini = str(config.getini("traffic_mode") or "once")
    return ini, "the traffic_mode ini option" if ini != "once" else "the default"


def _marker_kwargs(node: Any) -> dict[str, Any]:
    marker = node.get_closest_marker("traffic")
    if marker is None:
        return {}
    kwargs = dict(marker.kwargs)
    if marker.args:
        if len(marker.args) > 1 or "mode" in kwargs:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.traffic takes the mode as its only positional "
                "argument"
            )
        kwargs["mode"] = marker.args[0]
    unknown = set(kwargs) - _MARKER_ARGS
    if unknown:
        raise pytest.UsageError(
            f"{node.nodeid}: unknown @pytest.mark.traffic argument(s) {sorted(unknown)}; "
            f"known: {sorted(_MARKER_ARGS)}"
        )
    return kwargs


# -- the module's capture ------------------------------------------------------------------------
class _ModuleCapture:
    """The capture of one test module, opened once per module, with one store per matcher."""

    def __init__(self, path: Path, session_mode: str) -> None:
        from .stores.parquet import ParquetCache

        self.path = path
        default = ParquetCache(path)
        if session_mode == "rewrite":
            default.clear()
        self.was_empty = len(default) == 0
        self._default = default
        self._stores: dict[object, ParquetCache] = {default.matcher.fingerprint: default}
        self._active: ParquetCache = default

    def store_for(self, matcher: Matcher | None) -> ParquetCache:
        """The store keyed by ``matcher``, seeing everything the others recorded so far."""
        from .stores.parquet import ParquetCache

        if matcher is None:
            store = self._default
        else:
            key: object = matcher.fingerprint or id(matcher)
            store = self._stores.get(key) or ParquetCache(self.path, matcher)
            self._stores[key] = store
        if store is not self._active:
            self._active.flush()
            store.refresh()
            self._active = store
        return store

    def close(self) -> None:
        for store in self._stores.values():
            store.close()


@pytest.fixture(scope="module")
def traffic_capture_path(request: pytest.FixtureRequest) -> Path:
    """Where the test module's capture lives: ``<traffic_capture_dir>/<module name>``."""
    module = Path(request.path)
    folder = Path(str(request.config.getini("traffic_capture_dir") or "captures"))
    if not folder.is_absolute():
        folder = module.parent / folder
    return folder / module.stem


@pytest.fixture(scope="module")
def _traffic_module(
    request: pytest.FixtureRequest, traffic_capture_path: Path
) -> Iterator[_ModuleCapture]:
    with contextlib.closing(
        _ModuleCapture(traffic_capture_path, _session_mode(request.config)[0])
    ) as capture:
        yield capture


# -- one test's setup ----------------------------------------------------------------------------
class _TestSetup:
    """What a test's clients share: the store, the resolved mode and how it was chosen."""

    def __init__(self, request: pytest.FixtureRequest, module: _ModuleCapture) -> None:
        from .transports import RecordMode

        node = request.node
        kwargs = _marker_kwargs(node)
        session_mode, source = _session_mode(request.config)
        if source == "--traffic-mode" or "mode" not in kwargs:
            mode = session_mode
        else:
            mode, source = str(kwargs["mode"]), "@pytest.mark.traffic"
        RecordMode.parse(mode)  # an unknown mode fails here, listing the valid ones
        # "rewrite" records like "all": the capture was cleared when the module started, if
        # the mode was set for the whole run.
        once = "new_episodes" if module.was_empty else "none"
        self.effective = {"once": once, "rewrite": "all"}.get(mode, mode)
        self.mode = mode
        self.source = source
        self.store = module.store_for(kwargs.get("matcher"))
        self.redactor = kwargs.get("redactor")
        self.tags = {"test": node.nodeid, **dict(kwargs.get("tags") or {})}
        self.path = module.path
        self.misses: list[UnmatchedRequestError] = node.stash.setdefault(_MISSES, [])

    def hint(self) -> str:
        why = f"record mode {self.mode!r} (from {self.source})"
        if self.mode == "once":
            why += ": the capture held recordings when this module started, so it only replays"
        return (
            f"traffic_lab: capture {self.path}; {why}. To record what is missing, run with "
            "--traffic-mode=new_episodes."
        )


def _setup(request: pytest.FixtureRequest, module: _ModuleCapture) -> _TestSetup:
    stash = request.node.stash
    setup: _TestSetup = stash.get(_SETUP, None) or _TestSetup(request, module)
    stash[_SETUP] = setup
    return setup


def _refuse_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(
        f"traffic_lab: record mode 'none' let {request.method} {request.url} reach the network"
    )


@functools.cache
def _noting_transport() -> type:
    import httpx

    from .errors import UnmatchedRequestError

    class NotingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
        """Notes every miss on the test, so that a miss the test swallows still fails it."""

        traffic_lab_transport = True  # tl.capture() leaves it alone: recorded once

        def __init__(self, inner: Any, misses: list[Any]) -> None:
            self._inner = inner
            self._misses = misses

        @contextlib.contextmanager
        def _noting(self) -> Iterator[None]:
            try:
                yield
            except UnmatchedRequestError as exc:
                self._misses.append(exc)
                raise

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            with self._noting():
                return self._inner.handle_request(request)  # type: ignore[no-any-return]

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            with self._noting():
                return await self._inner.handle_async_request(request)  # type: ignore[no-any-return]

        def close(self) -> None:
            self._inner.close()

        async def aclose(self) -> None:
            await self._inner.aclose()

    return NotingTransport


def _transport(request: pytest.FixtureRequest, module: _ModuleCapture, *, is_async: bool) -> Any:
    """The test's capture transport over the network (or none, in mode "none"), noting misses."""
    import httpx

    from .transports import AsyncCaptureTransport, CaptureTransport

    setup = _setup(request, module)
    inner: Any
    if setup.effective == "none":
        # CaptureTransport never sends in mode "none"; this makes sure of it.
        inner = httpx.MockTransport(_refuse_network)
    elif is_async:
        # No pooled connections: nothing is left for a sync teardown to close on a finished
        # event loop, whatever runs the async test (anyio, pytest-asyncio, trio).
        inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    else:
        inner = httpx.HTTPTransport()
    kind = AsyncCaptureTransport if is_async else CaptureTransport
    capture = kind(
        setup.store, inner, mode=setup.effective, redactor=setup.redactor, tags=setup.tags
    )
    return _noting_transport()(capture, setup.misses)


@pytest.fixture
def traffic_capture(
    request: pytest.FixtureRequest, _traffic_module: _ModuleCapture
) -> ParquetCache:
    """The :class:`~traffic_lab.ParquetCache` this test's traffic clients record into."""
    return _setup(request, _traffic_module).store


@pytest.fixture
def traffic_client(
    request: pytest.FixtureRequest, _traffic_module: _ModuleCapture
) -> Iterator[httpx.Client]:
    """An ``httpx.Client`` that records into and replays from the module's capture."""
    import httpx

    with httpx.Client(transport=_transport(request, _traffic_module, is_async=False)) as client:
        yield client


@pytest.fixture
def async_traffic_client(
    request: pytest.FixtureRequest, _traffic_module: _ModuleCapture
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that records into and replays from the module's capture.

    It keeps no connections between requests, so it needs no ``aclose()`` and works under any
    async test runner; ``async with async_traffic_client:`` is fine too.
    """
    import httpx

    return httpx.AsyncClient(transport=_transport(request, _traffic_module, is_async=True))


# -- @pytest.mark.traffic: the whole test inside tl.capture() -------------------------------------
@pytest.fixture(autouse=True)
def _traffic_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``@pytest.mark.traffic`` runs inside :func:`traffic_lab.capture` over its
    module's capture, so clients the code under test builds itself (httpx, requests, SDKs) are
    recorded and replayed. Process-wide for the test: threads and event loops the test starts
    are covered too. The mode, matcher, redactor and tags are the traffic fixtures' own."""
    if request.node.get_closest_marker("traffic") is None:
        yield
        return
    from .transports.capturing import Capture

    module: _ModuleCapture = request.getfixturevalue("_traffic_module")
    setup = _setup(request, module)
    block = Capture(
        setup.store,
        setup.effective,
        redactor=setup.redactor,
        tags=setup.tags,
        scope="process",
        report=False,
        on_miss=setup.misses.append,
    )
    with block:
        yield


# -- failing on misses ---------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test that passed although a request found no recording (it caught the error)."""
    result = yield
    misses = item.stash.get(_MISSES, None)
    if misses:
        pytest.fail(str(misses[0]), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Any:
    """Say which capture and mode a test that failed on a miss used, and how to record."""
    report = yield
    if report.when == "call" and report.failed and item.stash.get(_MISSES, None):
        report.sections.append(("traffic_lab", item.stash[_SETUP].hint()))
    return report
