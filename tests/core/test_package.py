"""The public surface: exports, errors, protocols, import weight, memory stores."""

from __future__ import annotations

import subprocess
import sys
import threading
import types

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import make_exchange


def test_all_is_sorted_and_complete():
    assert tl.__all__ == sorted(tl.__all__, key=str.casefold)
    public = {
        name
        for name, value in vars(tl).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    # Lazily exported names appear in vars() only once used.
    assert public <= set(tl.__all__)
    for name in tl.__all__:
        assert getattr(tl, name) is not None


def test_top_level_holds_the_concepts_and_everything_else_its_module():
    assert (
        len(tl.__all__) == 31
    )  # 26 + capture, no_capture, the requests adapters, the magics' hook
    assert set(tl.__all__) >= {"Sink", "Source", "Replay", "ReadWriteCache", "ReadWriteStream"}
    # Errors live in tl.errors, constants and replay helpers in their modules.
    assert tl.errors.UnmatchedRequestError.__module__ == "traffic_lab.errors"
    assert tl.transports.replay_requests.__module__ == "traffic_lab.transports.requester"
    assert tl.exchange.FROM_CACHE == "traffic_lab.from_cache"
    for moved in ("UnmatchedRequestError", "FROM_CACHE", "replay_requests", "scan_secrets"):
        assert moved not in tl.__all__
        with pytest.raises(AttributeError, match=f"has no attribute '{moved}'"):
            getattr(tl, moved)


def test_lazy_names_load_on_first_use_and_are_listed():
    code = (
        "import sys, traffic_lab as tl; "
        "before = 'traffic_lab.frames' in sys.modules; "
        "where = tl.Where; "
        "print(before, 'traffic_lab.frames' in sys.modules, where is tl.frames.Where, "
        "'read_capture' in dir(tl), 'widgets' in dir(tl))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True", "True", "True"]


def test_import_is_light():
    code = (
        "import sys, traffic_lab; "
        "heavy = [m for m in ('pandas', 'pyarrow', 'ipywidgets', 'uvicorn', 'yaml', 'requests', 'IPython') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (tl.errors.StoreNotFoundError("missing", path="/x"), FileNotFoundError),
        (tl.errors.CorruptCaptureError("bad", path="/x"), ValueError),
        (tl.errors.SchemaVersionError("new", path="/x"), ValueError),
        (
            tl.errors.UnmatchedRequestError("m", request=httpx.Request("GET", "https://a/")),
            LookupError,
        ),
        (tl.errors.ReplayExhaustedError("done"), LookupError),
        (tl.errors.InvalidRecordModeError("mode"), ValueError),
        (tl.errors.InteropError("bad", path="f.har", index=3, field="request.url"), ValueError),
    ],
)
def test_errors_subclass_their_builtin(error, builtin):
    assert isinstance(error, tl.TrafficLabError)
    assert isinstance(error, builtin)


def test_error_messages_name_the_place():
    assert (
        str(tl.errors.StoreNotFoundError("no such capture", path="/data/c"))
        == "/data/c: no such capture"
    )
    assert str(
        tl.errors.InteropError("not a string", path="f.har", index=3, field="request.url")
    ) == ("f.har, entry 3, field 'request.url': not a string")


def test_memory_stores_satisfy_the_protocols():
    assert isinstance(tl.MemoryCache(), tl.ReadWriteCache)
    assert isinstance(tl.MemoryStream(), tl.ReadWriteStream)
    assert isinstance(tl.MemoryCache(), tl.AsyncSource)
    assert not isinstance(tl.MemoryStream(), tl.Source)


def test_user_store_without_subclassing_works_with_transports():
    class DictStore:
        def __init__(self):
            self.items = {}

        def put(self, exchange):
            self.items[exchange.url] = exchange

        def get(self, request):
            ex = self.items.get(str(request.url))
            return ex.new_response() if ex else None

    store = DictStore()
    live = httpx.MockTransport(lambda r: httpx.Response(200, text=r.url.path))
    transport = tl.CachingTransport(store, tl.RecordingTransport(store, live))
    with httpx.Client(transport=transport) as client:
        client.get("https://a.example/p")
        second = client.get("https://a.example/p")
    assert second.text == "/p" and second.extensions[tl.exchange.FROM_CACHE] is True


def test_memory_cache_latest_wins_and_skips_unservable():
    cache = tl.MemoryCache()
    cache.put(make_exchange(json={"v": 1}))
    cache.put(make_exchange(json={"v": 2}))
    cache.put(make_exchange(json={"v": 3}, truncated=True))
    cache.put(make_exchange(status_code=None))
    request = httpx.Request("GET", "https://api.example.test/items/1")
    assert cache.get(request).read() == b'{"v":2}'
    assert request in cache
    assert len(cache) == 4 and len(cache.keys()) == 1
    assert cache.lookup(request).response.json() == {"v": 2}
    cache.clear()
    assert len(cache) == 0 and cache.get(request) is None


def test_memory_stream_concurrent_puts_keep_everything():
    stream = tl.MemoryStream()

    def put_many(t):
        for i in range(500):
            stream.put(make_exchange(url=f"https://a.example/{t}/{i}"))

    threads = [threading.Thread(target=put_many, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    urls = [e.url for e in stream.exchanges()]
    assert len(urls) == len(set(urls)) == 4000
    # Per-thread order is kept.
    for t in range(8):
        mine = [u for u in urls if u.startswith(f"https://a.example/{t}/")]
        assert mine == [f"https://a.example/{t}/{i}" for i in range(500)]
    assert stream[0].url == urls[0]
    assert [r.url.path for r in stream.requests()][:1] == [httpx.URL(urls[0]).path]


def test_known_token_redaction_is_core_and_light():
    code = (
        "import sys, traffic_lab as tl; "
        "from traffic_lab.redaction import redact_known_tokens; "
        "from traffic_lab.testing import make_exchange; "
        "red = tl.Redactor(extra=redact_known_tokens); "
        "ex = red.redact(make_exchange(json={'note': 'key AKIAABCDEFGHIJKLMNOP'})); "
        "print(ex.response.json()['note'], 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["key", "[REDACTED]", "False"]
