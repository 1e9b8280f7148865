"""Round-trip properties: every exchange is either held exactly or refused at once (issue #9).

The one rule for what a store can hold is :func:`traffic_lab.exchange.check_storable`. For any
exchange, and for every sink:

- the stores (``MemoryStream``, ``MemoryCache``, ``ParquetStream`` buffered and
  ``durable=True``, ``ParquetCache``, and the durable log a crashed writer leaves behind)
  accept it exactly when ``check_storable`` does. Accepted, it reads back equal (``Exchange``
  equality *and* the bytes a replay puts on the wire), from Parquet in a fresh interpreter;
  refused, ``put()`` raises ``InvalidExchangeError``
  and nothing else, and the exchanges put before and after it are all published;
- the exporters (``write_har``, ``write_vcr``) refuse an exchange ``check_storable`` refuses with
  ``InvalidExchangeError`` and write nothing. A file they write, their reader reads back equal,
  up to the limits of the format, each stated below as an explicit normalisation.

Two kinds of exchanges are drawn. ``httpx_exchanges`` are what httpx itself builds
(``Exchange.from_httpx`` of an ``httpx.Request`` / ``httpx.Response``): any body bytes, header
names that are tokens and values h11 allows, statuses 100-999, ports 0-65535 and unicode hosts,
paths and queries, Latin-1 reasons, errors in place of responses, truncated bodies. They must
never be refused by a store, and HAR and VCR.py must hold them (VCR.py: those with a complete
response). ``hostile_exchanges`` are built with the constructor from values nothing checked:
out-of-range ports and statuses, any method and URL text, lone surrogates, any header bytes,
times at the ends of ``datetime``'s range, negative and huge ``elapsed``.

This file is also the reader process: ``python test_roundtrip_properties.py`` reads capture
paths on stdin and prints a canonical dump of each capture's exchanges (see ``_worker``).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import select
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, event, example, given, note
from hypothesis import strategies as st

import traffic_lab as tl
from traffic_lab.errors import InteropError, InvalidExchangeError
from traffic_lab.exchange import MAX_ELAPSED, RecordedError, check_storable
from traffic_lab.interop import read_har, read_vcr, write_har, write_vcr

ROOT = Path(__file__).resolve().parents[2]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
BLOB_THRESHOLD = 8  # small enough that most drawn bodies go to blob files
_MARK = "@@traffic_lab_reader@@ "


# -- canonical form: what "reads back equal" compares ---------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pairs(pairs: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[_b64(name), _b64(value)] for name, value in pairs]


def _wire(ex: tl.Exchange) -> dict[str, Any]:
    """The bytes a replay of ``ex`` hands to httpx: request line, headers, bodies."""
    wire: dict[str, Any] = {}
    try:
        request = ex.new_request()
        wire["request"] = [
            request.method,
            str(request.url),
            _pairs(request.headers.raw),
            _b64(request.content),
        ]
    except Exception as exc:  # an exchange whose URL httpx cannot parse: the same either way
        wire["request"] = f"{type(exc).__name__}"
    if ex.status_code is None:
        wire["response"] = None
        return wire
    response = ex.new_response()
    wire["response"] = [
        response.status_code,
        _b64(response.extensions["reason_phrase"]),
        _b64(response.extensions["http_version"]),
        _pairs(response.headers.raw),
        _b64(b"".join(response.iter_raw())),
    ]
    return wire


def canonical(ex: tl.Exchange) -> dict[str, Any]:
    """Every part of an exchange as JSON-safe data (bytes as base64, times in µs)."""
    error = ex.error
    return {
        "method": ex.method,
        "url": ex.url,
        "request_headers": _pairs(ex.request_headers),
        "request_body": _b64(ex.request_body),
        "status_code": ex.status_code,
        "reason_phrase": ex.reason_phrase,
        "http_version": ex.http_version,
        "response_headers": _pairs(ex.response_headers),
        "response_body": _b64(ex.response_body),
        "started_us": (ex.started_at - EPOCH) // US,
        "elapsed_us": ex.elapsed // US,
        "error": None if error is None else [error.type, error.message],
        "tags": [[k, v] for k, v in sorted(ex.tags.items())],
        "truncated": ex.truncated,
        "wire": _wire(ex),
    }


def _worker() -> None:
    """The reader process: one JSON request per stdin line, one reply line each."""
    for line in sys.stdin:
        path = json.loads(line)["path"]
        reply: dict[str, Any] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                # A capture nothing was accepted into may not exist yet: it opens empty.
                store = tl.ParquetStream(path)
                reply["exchanges"] = [canonical(ex) for ex in store.exchanges()]
                store.close()
            except Exception as exc:
                reply["error"] = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
        reply["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
        sys.stdout.write(_MARK + json.dumps(reply) + "\n")
        sys.stdout.flush()


class CaptureReader:
    """A fresh interpreter that opens captures and dumps their exchanges (``_worker``)."""

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env=env,
            text=True,
        )

    def read(self, path: Path, timeout: float = 120.0) -> dict[str, Any]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        proc.stdin.flush()
        fd = proc.stdout.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                pytest.fail(f"the reader process did not answer within {timeout} s")
            line = proc.stdout.readline()
            if not line:
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace")[-3000:]
                pytest.fail(f"the reader process died:\n{err}")
            if line.startswith(_MARK):
                result: dict[str, Any] = json.loads(line[len(_MARK) :])
                return result

    def close(self) -> None:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        self._stderr.close()


@pytest.fixture(scope="module")
def reader() -> Iterator[CaptureReader]:
    process = CaptureReader()
    try:
        yield process
    finally:
        process.close()


# -- strategies: what httpx builds ----------------------------------------------------------------
TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Names and values that mean something to a format (bodies, codings, cookies, redirects), drawn
# often beside random ones so the formats' special cases are reached.
NAMES = [
    b"Content-Type",
    b"content-type",
    b"Content-Encoding",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Set-Cookie",
    b"Cookie",
    b"Location",
    b"Host",
    b"Authorization",
]
VALUES = [
    b"gzip",
    b"br",
    b"deflate",
    b"zstd",
    b"gzip, br",
    b"identity",
    b"0",
    b"12",
    b"chunked",
    b"text/plain; charset=utf-8",
    b"text/plain; charset=latin-1",
    b"text/html; charset=utf-16",
    b"application/json",
    b"application/x-www-form-urlencoded",
    b"a=b; Path=/; HttpOnly",
    b"https://x.example/",
]
NO_SURROGATES = st.characters(blacklist_categories=("Cs",))
URL_TEXT = st.characters(blacklist_categories=("Cs", "Cc"))  # httpx refuses control characters
LATIN_1 = st.characters(max_codepoint=255)

header_names = st.one_of(
    st.sampled_from(NAMES), st.text(TOKEN, min_size=1, max_size=12).map(str.encode)
)
# h11's field-value: no CR, LF or NUL, no whitespace at either end; any other byte (obs-text too).
header_values = st.one_of(
    st.sampled_from(VALUES),
    st.binary(max_size=24).map(lambda b: b.translate(None, b"\r\n\x00").strip(b" \t")),
)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=5)
bodies = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20, alphabet=NO_SURROGATES).map(str.encode),
    st.binary(max_size=40).map(lambda b: gzip.compress(b, mtime=0)),
)
methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
    st.text(TOKEN, min_size=1, max_size=64),
)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_unicode_label = st.text("abcäöüßéñçøжфыйкωπλ例え日本中文", min_size=1, max_size=8)
hosts = st.one_of(
    st.lists(st.one_of(_label, _unicode_label), min_size=1, max_size=3).map(".".join),
    st.sampled_from(["127.0.0.1", "[::1]", "[2001:db8::7]", "localhost"]),
)
url_texts = st.builds(
    lambda scheme, host, port, path, query, fragment: (
        f"{scheme}://{host}{'' if port is None else f':{port}'}/{path}"
        f"{'' if query is None else f'?{query}'}{'' if fragment is None else f'#{fragment}'}"
    ),
    st.sampled_from(["http", "https"]),
    hosts,
    st.none() | st.integers(0, 65535),
    st.text(URL_TEXT, max_size=16),
    st.none() | st.text(URL_TEXT, max_size=16),
    st.none() | st.text(URL_TEXT, max_size=6),
)
offsets = st.just(UTC) | st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
recent_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets
)
tag_maps = st.dictionaries(
    st.text(NO_SURROGATES, max_size=8), st.text(NO_SURROGATES, max_size=12), max_size=3
)
transport_errors = st.builds(
    lambda kind, message: kind(message),
    st.sampled_from([httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, OSError]),
    st.text(NO_SURROGATES, max_size=20),
)


@st.composite
def httpx_exchanges(draw: st.DrawFn) -> tl.Exchange:
    """An exchange as httpx builds it, recorded with ``Exchange.from_httpx``."""
    try:
        request = httpx.Request(
            draw(methods), draw(url_texts), headers=draw(header_lists), content=draw(bodies)
        )
    except (httpx.InvalidURL, UnicodeError):
        assume(False)  # httpx itself cannot make this request (an IDNA label it refuses...)
        raise
    outcome = draw(st.sampled_from(["response", "response", "response", "error", "both"]))
    common: dict[str, Any] = {
        "started_at": draw(recent_times),
        "elapsed": draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2))),
        "tags": draw(tag_maps),
        "truncated": draw(st.sampled_from([False, False, False, True])),
    }
    if outcome == "error":
        return tl.Exchange.from_httpx(request, None, error=draw(transport_errors), **common)
    status, headers, body = draw(st.integers(100, 999)), draw(header_lists), draw(bodies)
    extensions = {
        "reason_phrase": draw(st.text(LATIN_1, max_size=16)).encode("latin-1"),
        "http_version": draw(st.sampled_from([b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2", b"HTTP/3"])),
    }
    # content= adds Content-Length and reads (decodes) the body at once, as a handler's
    # response is; stream= keeps the headers as given and the body unread.
    response = None
    if draw(st.booleans()):
        try:
            response = httpx.Response(status, headers=headers, content=body, extensions=extensions)
        except httpx.DecodingError:  # a Content-Encoding the body does not decode under
            pass
    if response is None:
        stream = httpx.ByteStream(body)
        response = httpx.Response(status, headers=headers, stream=stream, extensions=extensions)
    error = draw(transport_errors) if outcome == "both" else None
    return tl.Exchange.from_httpx(request, response, error=error, **common)


# -- strategies: values nothing checked -----------------------------------------------------------
hostile_urls = st.one_of(
    url_texts,
    st.builds(
        lambda host, port, path: f"http://{host}:{port}/{path}",
        hosts,
        st.one_of(st.integers(65536, 10**12), st.sampled_from([65536, 99999, 100000, 2**31])),
        st.text(max_size=8),
    ),
    st.sampled_from(
        [
            "http://[::1",
            "http://a:-1/",
            "https://a:/",
            "https://a.example:\uff18\uff10/",  # fullwidth digits
            "x://",
            "http:///p",
            "a b",
            "http://a.example/\x00",
            "http://a.example/\x1f",
            "http://a.example/\x7f",
            "http://a b.example/",
            "http://ä.example/ü",
            "HTTP://A.EXAMPLE/",
            "http://a.example/%zz",
            "http://user:pass@a.example/",
            "http://a.example/" + "x" * 10_000,
        ]
    ),
    st.text(max_size=30),
)
hostile_headers = st.lists(
    st.tuples(st.one_of(header_names, st.binary(max_size=10)), st.binary(max_size=16)),
    max_size=4,
)
# For each part of an exchange, values nothing checked: some storable, most not.
HOSTILE_PARTS: dict[str, st.SearchStrategy[Any]] = {
    "method": st.one_of(methods, st.text(max_size=70)),
    "url": hostile_urls,
    "request_headers": hostile_headers,
    "status_code": st.one_of(
        st.none(),
        st.integers(100, 999),
        st.sampled_from([0, 99, 1000, -1, 2**31, 2**63]),
        st.integers(-(2**40), 2**40),
    ),
    "reason_phrase": st.text(max_size=12),
    "http_version": st.sampled_from(["HTTP/1.1", "HTTP/2", "h2", "", " HTTP/1.1 "])
    | st.text(max_size=40),
    "response_headers": hostile_headers,
    "started_at": st.datetimes(timezones=offsets)
    | st.sampled_from(
        [
            datetime.min.replace(tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
            # Aware times whose UTC form is outside datetime's range.
            datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
        ]
    ),
    "elapsed": st.one_of(st.timedeltas(), st.sampled_from([MAX_ELAPSED, MAX_ELAPSED + US, -US])),
    "error": st.none() | st.builds(RecordedError, st.text(max_size=12), st.text(max_size=20)),
    "tags": st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3),
}


@st.composite
def hostile_exchanges(draw: st.DrawFn) -> tl.Exchange:
    """An exchange httpx built, with one to three parts replaced by raw values."""
    base = draw(httpx_exchanges())
    names = draw(
        st.lists(st.sampled_from(sorted(HOSTILE_PARTS)), min_size=1, max_size=3, unique=True)
    )
    changes = {name: draw(HOSTILE_PARTS[name]) for name in names}
    no_response = changes.get("status_code", base.status_code) is None
    if no_response and changes.get("error", base.error) is None:
        changes["error"] = RecordedError("httpx.ConnectError", "refused")
    return base.replace(**changes)


# Each item: (made by httpx?, exchange); three in four made by httpx, so that batches of a few
# are often all storable and reach the reading side.
_by_httpx = httpx_exchanges().map(lambda ex: (True, ex))
any_exchanges = st.one_of(
    _by_httpx, _by_httpx, _by_httpx, hostile_exchanges().map(lambda ex: (False, ex))
)


# Edge cases every profile runs first (``@example``), between two plain exchanges: values at the
# boundaries of what check_storable accepts, each once found to break a sink.
_PLAIN = tl.Exchange(
    "GET",
    "https://api.example/items/1",
    request_headers=[(b"Host", b"api.example")],
    status_code=200,
    response_headers=[(b"Content-Type", b"application/json")],
    response_body=b'{"id": 1}',
    started_at=datetime(2026, 3, 1, tzinfo=UTC),
)
_AFTER = _PLAIN.replace(url="https://api.example/items/2")
EDGE_CASES = [
    _PLAIN.replace(url="http://a.example/\x1f"),  # storable text, but not a URL httpx parses
    _PLAIN.replace(url="http://[::1"),
    _PLAIN.replace(url="https://api.example:65536/"),
    _PLAIN.replace(started_at=datetime(999, 12, 31, 23, tzinfo=UTC)),  # a 7-digit day
    _PLAIN.replace(started_at=datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))),
    _PLAIN.replace(started_at=datetime.max.replace(tzinfo=timezone(timedelta(hours=-1)))),
    _PLAIN.replace(started_at=datetime.max.replace(tzinfo=UTC), elapsed=MAX_ELAPSED),
    _PLAIN.replace(status_code=0),
    _PLAIN.replace(status_code=None, error=RecordedError("httpx.ConnectError", "")),
    _PLAIN.replace(response_headers=[(b"Content-Length", b"gzip")]),  # disagrees with the body
    _PLAIN.replace(
        method="POST",
        request_headers=[(b"Content-Type", b"text/plain; charset=utf-16")],
        request_body=b"ab",
    ),
    _PLAIN.replace(tags={"": ""}),
    _PLAIN.replace(request_headers=[(b"", b"")]),  # an empty header name
    _PLAIN.replace(response_headers=[(b"X-A", b"1"), (b"x-b", b"2"), (b"x-a", b"3")]),
]


def with_edge_cases(**other: Any) -> Any:
    """Run a test on each edge case (between two plain exchanges) before anything drawn."""

    def decorate(test: Any) -> Any:
        for ex in EDGE_CASES:
            test = example(batch=[(True, _PLAIN), (False, ex), (True, _AFTER)], **other)(test)
        return test

    return decorate


def describe(ex: tl.Exchange) -> str:
    """Every part of an exchange, for falsifying examples (``repr`` shows only a few)."""
    parts = ", ".join(f"{name}={getattr(ex, name)!r}" for name in tl.Exchange._FIELDS[2:])
    return f"Exchange({ex.method!r}, {ex.url!r}, {parts})"


def note_all(exchanges: Iterable[tl.Exchange]) -> None:
    for i, ex in enumerate(exchanges):
        note(f"[{i}] {describe(ex)}")


def storable(ex: tl.Exchange) -> bool:
    """``check_storable``'s verdict; it may only ever raise ``InvalidExchangeError``."""
    try:
        check_storable(ex)
    except InvalidExchangeError:
        return False
    return True


def _put(store: Any, ex: tl.Exchange, ok: bool, name: str) -> None:
    """``store.put(ex)``, which must refuse ``ex`` exactly when ``check_storable`` does.

    Any exception other than ``InvalidExchangeError`` propagates: a raw exception from ``put()``
    is a failure of its own.
    """
    try:
        store.put(ex)
    except InvalidExchangeError as exc:
        assert not ok, f"{name}.put() refused an exchange check_storable accepts: {exc}"
        return
    assert ok, f"{name}.put() accepted an exchange check_storable refuses: {ex!r}"


def _recorded_order(accepted: list[tl.Exchange]) -> list[dict[str, Any]]:
    # A capture reads back in recorded order: started_at, then (one writer) put order.
    ordered = sorted(accepted, key=lambda ex: (ex.started_at - EPOCH) // US)
    return [_capture_view(ex) for ex in ordered]


def _capture_view(ex: tl.Exchange) -> dict[str, Any]:
    """What a capture holds of ``ex``: all of it, with one limit of the format.

    LIMIT (capture format, docs/capture-format.md): ``response_reason`` and
    ``response_http_version`` are null for an exchange that failed in the transport: a failed
    exchange reads back with reason ``""`` and version ``"HTTP/1.1"``. Exchanges httpx builds
    (``from_httpx`` without a response) have exactly those, so this only touches hand-built ones.
    """
    if ex.status_code is None:
        ex = ex.replace(reason_phrase="", http_version="HTTP/1.1")
    return canonical(ex)


def _crashed_writer_log(folder: Path, accepted: list[tl.Exchange]) -> None:
    """The durable log a ``durable=True`` writer leaves when it is killed before a flush."""
    from traffic_lab.stores.parquet._log import DurableLog, encode_record

    writer_id = "0123456789abcdef"
    log = DurableLog(
        str(folder / "_traffic_lab" / "logs" / f"{writer_id}-000000.log"),
        writer_id=writer_id,
        segment=0,
        fingerprint="",  # no fingerprint: readers recompute keys, so any key will do
    )
    for seq, ex in enumerate(accepted):
        log.append(encode_record(seq, ex, ""))
    log.close()  # the lock goes, the segment stays: what the kernel leaves of a dead writer


# -- stores ---------------------------------------------------------------------------------------
@given(
    batch=st.lists(any_exchanges, min_size=1, max_size=6),
    blob_threshold=st.sampled_from([None, BLOB_THRESHOLD]),
)
@with_edge_cases(blob_threshold=BLOB_THRESHOLD)
def test_stores_hold_exactly_what_check_storable_accepts(
    reader: CaptureReader, batch: list[tuple[bool, tl.Exchange]], blob_threshold: int | None
) -> None:
    note_all(ex for _, ex in batch)
    verdicts = [storable(ex) for _, ex in batch]
    for (by_httpx, ex), ok in zip(batch, verdicts, strict=True):
        # What httpx builds is always storable.
        assert ok or not by_httpx, f"check_storable refuses what httpx built: {ex!r}"
    accepted = [ex for (_, ex), ok in zip(batch, verdicts, strict=True) if ok]
    note(f"accepted {len(accepted)} of {len(batch)}")
    event(f"stores: {min(len(accepted), 3)}{'+' if len(accepted) > 2 else ''} accepted")

    memory_stream, memory_cache = tl.MemoryStream(), tl.MemoryCache()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        options: dict[str, Any] = {"flush_seconds": None}
        if blob_threshold is not None:
            options["blob_threshold"] = blob_threshold
        parquet = {
            "buffered": tl.ParquetStream(root / "buffered", **options),
            "durable": tl.ParquetStream(root / "durable", durable=True, **options),
            "cache": tl.ParquetCache(root / "cache", **options),  # the same files, keyed
        }
        try:
            for (_, ex), ok in zip(batch, verdicts, strict=True):
                _put(memory_stream, ex, ok, "MemoryStream")
                _put(memory_cache, ex, ok, "MemoryCache")
                for name, store in parquet.items():
                    _put(store, ex, ok, f"{type(store).__name__}({name})")
        finally:
            for store in parquet.values():
                store.close()
        assert list(memory_stream.exchanges()) == accepted
        assert list(memory_cache.exchanges()) == accepted
        if accepted:
            _crashed_writer_log(root / "crashed", accepted)
        expected = _recorded_order(accepted)
        for name in ("buffered", "durable", "cache", "crashed"):
            if name == "crashed" and not accepted:
                continue
            got = reader.read(root / name)
            assert got.get("error") is None, f"{name}: {got['error']}"
            assert got["warnings"] == [], f"{name}: {got['warnings']}"
            assert got["exchanges"] == expected, f"{name}: read back differs"


# Values no store can hold: one of each rule of check_storable.
unstorable_changes = st.sampled_from(
    [
        {"url": "https://api.example:65536/"},
        {"url": "https://api.example:99999999999/x"},
        {"url": "no scheme"},
        {"url": "https://api.example/\udcff"},
        {"method": "GET /"},
        {"method": ""},
        {"method": "X" * 65},
        {"status_code": 99},
        {"status_code": 1000},
        {"status_code": -1},
        {"reason_phrase": "€uro"},
        {"reason_phrase": "\ud800"},
        {"http_version": "HTTP/1.1\r\n"},
        {"http_version": "H" * 33},
        {"elapsed": -US},
        {"elapsed": MAX_ELAPSED + US},
        {"tags": {"\udcff": "x"}},
        {"tags": {"k": "\ud800"}},
        {"error": RecordedError("httpx.ConnectError", "\udfff")},
    ]
)


@given(
    before=st.lists(httpx_exchanges(), min_size=1, max_size=3),
    bad=httpx_exchanges(),
    change=unstorable_changes,
    after=st.lists(httpx_exchanges(), min_size=1, max_size=3),
)
def test_one_bad_exchange_never_costs_the_others(
    reader: CaptureReader,
    before: list[tl.Exchange],
    bad: tl.Exchange,
    change: dict[str, Any],
    after: list[tl.Exchange],
) -> None:
    bad = bad.replace(**change)
    note_all([*before, bad, *after])
    with pytest.raises(InvalidExchangeError):
        check_storable(bad)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, options in (
            ("buffered", {"flush_seconds": None}),
            ("durable", {"durable": True, "flush_seconds": None}),
        ):
            store = tl.ParquetStream(root / name, **options)
            try:
                for ex in before:
                    store.put(ex)
                with pytest.raises(InvalidExchangeError):
                    store.put(bad)
                if name == "durable":
                    # The refused exchange never reached the log: a crash now loses nothing
                    # and recovers nothing that was refused.
                    from traffic_lab.stores.parquet._log import read_log

                    logs = sorted((root / name / "_traffic_lab" / "logs").glob("*.log"))
                    logged = [ex for log in logs for _, ex, _ in read_log(str(log)).records]
                    assert logged == before
                for ex in after:
                    store.put(ex)
            finally:
                store.close()  # flushes: must not fail because of the refused exchange
            got = reader.read(root / name)
            assert got.get("error") is None, f"{name}: {got['error']}"
            assert got["warnings"] == []
            assert got["exchanges"] == _recorded_order(before + after)


# -- HAR ------------------------------------------------------------------------------------------
_HAR_VERSIONS = {
    "http/1.0": "HTTP/1.0",
    "http/1.1": "HTTP/1.1",
    "http/2": "HTTP/2",
    "http/2.0": "HTTP/2",
    "h2": "HTTP/2",
    "h2c": "HTTP/2",
    "http/3": "HTTP/3",
    "http/3.0": "HTTP/3",
    "h3": "HTTP/3",
}


def _har_view(ex: tl.Exchange) -> tl.Exchange:
    """What a HAR file holds of ``ex``. Its limits, all from the HAR 1.2 model:

    - LIMIT: ``httpVersion`` is free text that browsers spell ``h2``, ``http/2.0``...: the reader
      names it as httpx does (``HTTP/2``), an empty one is ``HTTP/1.1``, surrounding whitespace
      goes. What httpx builds (``HTTP/1.0``, ``HTTP/1.1``, ``HTTP/2``, ``HTTP/3``) is unchanged.
    - LIMIT: headers named ``:...`` (request and response) are HTTP/2 pseudo-headers browsers
      list; the reader drops them (the method, URL and status say the same). Never a token, so
      never from httpx.
    - LIMIT: a failed exchange is an entry with ``status: 0``: it has no response headers, body
      or reason. httpx-built failed exchanges have none of them.
    - Everything else is exact, times to the microsecond (``startedDateTime`` with µs, ``time``
      in fractional ms), header bytes that are not UTF-8 included (surrogate-escaped).
    """
    version = ex.http_version.strip()
    version = _HAR_VERSIONS.get(version.lower(), version) if version else "HTTP/1.1"
    changes: dict[str, Any] = {
        "http_version": version,
        "request_headers": tuple(p for p in ex.request_headers if not p[0].startswith(b":")),
        "response_headers": tuple(p for p in ex.response_headers if not p[0].startswith(b":")),
    }
    if ex.status_code is None:
        changes.update(reason_phrase="", response_headers=(), response_body=b"")
    return ex.replace(**changes)


def _read_back(read: Any, path: Path) -> list[tl.Exchange]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result: list[tl.Exchange] = read(path)
    assert [str(w.message) for w in caught] == [], "a file we wrote reads back with warnings"
    return result


@given(batch=st.lists(any_exchanges, min_size=1, max_size=4))
@with_edge_cases()
def test_har_holds_every_exchange_or_refuses_it(batch: list[tuple[bool, tl.Exchange]]) -> None:
    exchanges = [ex for _, ex in batch]
    note_all(exchanges)
    # har.* tags are HAR's own fields (pages, timings), tested in tests/interop/test_har.py.
    assume(not any(k.startswith("har.") for ex in exchanges for k in ex.tags))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture.har"
        if not all(storable(ex) for ex in exchanges):
            event("HAR: refused (not storable)")
            with pytest.raises(InvalidExchangeError):
                write_har(exchanges, path)
            assert not path.exists() and os.listdir(tmp) == []
            return
        try:
            write_har(exchanges, path)
        except (InvalidExchangeError, InteropError):
            # A storable exchange HAR cannot hold: only hand-built ones, never httpx's.
            assert not all(by_httpx for by_httpx, _ in batch), "HAR refused what httpx built"
            assert os.listdir(tmp) == []
            return
        event("HAR: written and read back")
        got = _read_back(read_har, path)
        assert [canonical(ex) for ex in got] == [canonical(_har_view(ex)) for ex in exchanges]


# -- VCR.py cassettes -----------------------------------------------------------------------------
def _grouped(pairs: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """Headers as a cassette holds them: ``{name: [values]}``, names matched without case."""
    spelling: dict[bytes, bytes] = {}
    values: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        key = name.lower()
        spelling.setdefault(key, name)
        values.setdefault(key, []).append(value)
    return tuple((spelling[k], v) for k, vs in values.items() for v in vs)


def _vcr_view(ex: tl.Exchange, started_at: datetime) -> tl.Exchange:
    """What a VCR.py cassette holds of ``ex``. Its limits, all from VCR.py's cassette model:

    - LIMIT: headers are a mapping ``{name: [values]}``: values of one name (matched without
      case, spelled as it first appears) are grouped at the place of its first appearance, so
      the interleaving ``a, b, a`` becomes ``a, a, b``. Values themselves are exact bytes.
    - LIMIT: no HTTP version: every interaction reads back as ``HTTP/1.1``.
    - LIMIT: nothing about time and no tags: ``started_at`` is the cassette's modification time
      plus one µs per interaction (so time order is cassette order), ``elapsed`` is zero, tags
      are empty.
    - LIMIT: only complete responses (VCR.py replays responses): a failed or truncated exchange
      makes ``write_vcr`` raise ``InteropError`` and write nothing; a transport error recorded
      beside a response is not kept.
    - LIMIT (JSON cassettes only): JSON holds text, so a body that is not UTF-8 makes
      ``write_vcr`` raise ``InteropError``; YAML cassettes hold any bytes (``!!binary``).
    """
    return ex.replace(
        request_headers=_grouped(ex.request_headers),
        response_headers=_grouped(ex.response_headers),
        http_version="HTTP/1.1",
        started_at=started_at,
        elapsed=timedelta(0),
        tags={},
        error=None,
    )


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(
    batch=st.lists(any_exchanges, min_size=1, max_size=4),
    serializer=st.sampled_from(["yaml", "json"]),
)
@with_edge_cases(serializer="yaml")
def test_vcr_holds_every_complete_exchange_or_refuses_it(
    batch: list[tuple[bool, tl.Exchange]], serializer: str
) -> None:
    exchanges = [ex for _, ex in batch]
    note_all(exchanges)
    unstorable = not all(storable(ex) for ex in exchanges)
    beyond_format = any(ex.status_code is None or ex.truncated for ex in exchanges) or (
        serializer == "json"
        and not all(_utf8(ex.request_body) and _utf8(ex.response_body) for ex in exchanges)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cassette.{serializer}"
        if unstorable or beyond_format:
            event(f"VCR: refused ({'not storable' if unstorable else 'beyond the format'})")
            expected: tuple[type[Exception], ...] = ()
            if unstorable:
                expected += (InvalidExchangeError,)
            if beyond_format:  # either error may come first
                expected += (InteropError,)
            with pytest.raises(expected):
                write_vcr(exchanges, path)
            assert os.listdir(tmp) == []
            return
        try:
            write_vcr(exchanges, path)
        except (InvalidExchangeError, InteropError):
            assert not all(by_httpx for by_httpx, _ in batch), "VCR.py refused what httpx built"
            assert os.listdir(tmp) == []
            return
        event(f"VCR ({serializer}): written and read back")
        got = _read_back(read_vcr, path)
        assert len(got) == len(exchanges)
        first = got[0].started_at
        assert [ex.started_at for ex in got] == [first + i * US for i in range(len(got))]
        assert [canonical(ex) for ex in got] == [
            canonical(_vcr_view(ex, back.started_at))
            for ex, back in zip(exchanges, got, strict=True)
        ]


if __name__ == "__main__":
    _worker()
