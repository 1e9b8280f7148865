"""Fuzz tests: every reader of files from elsewhere, fed hostile input (issue #9).

Readers under test: ``read_har``, ``read_vcr`` (YAML and JSON), ``read_http4k``, and the capture
reader (``ParquetStream`` open + iterate, ``ParquetCache`` open + lookups, ``tl.read_capture``,
and ``compact()``, the one reader that deletes). Inputs are valid files mutated by Hypothesis:
bit flips and truncation, any JSON / YAML value in any field, wrong types, huge integers, deep
nesting, NaN and infinities, negative sizes, lone surrogates, path-traversal strings in every
string a reader might use as a path (writer ids, blob digests, ``traffic_lab.replaces``, log
headers, http4k names), symlinks and FIFOs; Parquet files rebuilt with pyarrow (wrong column
types, nulls in required columns, malformed key/value metadata, foreign schemas), and hostile
durable logs.

What every hostile input must do (``run_hostile``):

- end in a traffic_lab error (:class:`~traffic_lab.errors.TrafficLabError`) or finish, warning
  only with ``SkippedFileWarning`` / ``SkippedEntryWarning``; never any other exception or
  warning;
- when it finishes, keep the good data (the exchanges of files and entries the mutation did not
  touch, exactly) and hand out only exchanges a store can hold (``check_storable``);
- take under ``TIME_LIMIT`` seconds and a bounded amount of memory;
- write, delete and open nothing outside its input: every example runs in a fresh folder of
  decoys (``outside/`` folders at every level above the input, with FIFOs that report being
  opened and a capture file whose rows must never show up), compared before and after.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import struct
import tempfile
import threading
import time
import tracemalloc
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import traffic_lab as tl
from traffic_lab.errors import (
    BodySizeWarning,
    InvalidExchangeError,
    SkippedEntryWarning,
    SkippedFileWarning,
    TrafficLabError,
)
from traffic_lab.exchange import check_storable
from traffic_lab.interop import read_har, read_http4k, read_vcr, write_har, write_http4k, write_vcr
from traffic_lab.stores.parquet import SCHEMA
from traffic_lab.stores.parquet._log import encode_record
from traffic_lab.testing import make_exchange

TIME_LIMIT = 10.0  # seconds per hostile input
HANG_LIMIT = 30.0  # a reader still running then is interrupted (a hang)
PYTHON_MEMORY_LIMIT = 256 * 1024 * 1024  # tracemalloc peak per hostile input
RSS_GROWTH_LIMIT = 1024 * 1024  # KiB: ru_maxrss may grow at most 1 GiB per hostile input
SECRET = "outside-secret"  # in every decoy: must never come out of a reader
ALLOWED_WARNINGS = (SkippedFileWarning, SkippedEntryWarning, BodySizeWarning)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


# -- the decoy folder -----------------------------------------------------------------------------
class Box:
    """A fresh folder per example: the input sits four levels down, decoys at every level.

    ``box/outside``, ``box/a/outside``, ``box/a/b/outside`` and ``box/a/b/c/outside`` each hold
    ``victim.txt``, ``victim.parquet`` (a capture data file whose URL says ``SECRET``),
    ``fifo`` (a FIFO) and ``exchange/`` (an http4k exchange folder saying ``SECRET``). The
    input is ``box/a/b/c/input``: a relative path climbing up to four levels from anywhere in it
    lands on a decoy.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.input = root / "a" / "b" / "c" / "input"
        self.outsides = [root, root / "a", root / "a" / "b", root / "a" / "b" / "c"]
        self.fifos: list[Path] = []
        for level in self.outsides:
            out = level / "outside"
            out.mkdir(parents=True)
            (out / "victim.txt").write_text(f"{SECRET}\n")
            shutil.copyfile(decoy_parquet(), out / "victim.parquet")
            os.mkfifo(out / "fifo")
            self.fifos.append(out / "fifo")
            exchange = out / "exchange"
            exchange.mkdir()
            (exchange / "request.txt").write_bytes(
                f"GET https://{SECRET}.example/ HTTP/1.1\r\n\r\n\r\n".encode()
            )
            (exchange / "response.txt").write_bytes(f"HTTP/1.1 200 OK\r\n\r\n\r\n{SECRET}".encode())

    @property
    def outside(self) -> Path:
        return self.root / "a" / "b" / "c" / "outside"

    def fill(self, text: str) -> str:
        """Put the decoys' absolute path into a hostile string template."""
        return text.replace("{OUTSIDE}", str(self.outside))

    def snapshot(self, skip: Path | None = None) -> dict[str, Any]:
        """Every entry of the box (not following links), except ``skip`` and what is under it."""
        seen: dict[str, Any] = {}
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            if skip is not None and (here == skip or skip in here.parents):
                dirnames[:] = []
                continue
            seen[str(here)] = ("dir", sorted([*dirnames, *filenames]))
            for name in filenames:
                path = here / name
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    seen[str(path)] = ("link", os.readlink(path))
                elif stat.S_ISREG(info.st_mode):
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    seen[str(path)] = ("file", info.st_size, info.st_mtime_ns, digest)
                else:
                    seen[str(path)] = ("other", stat.S_IFMT(info.st_mode))
        return seen


@contextlib.contextmanager
def boxed() -> Iterator[Box]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Box(Path(tmp))


class FifoWatch:
    """Reports FIFOs a reader opens; a reader waiting on one is let go (EOF) and named.

    ``outside`` FIFOs are decoys: any open at all means a path escaped its input. ``inside``
    FIFOs stand where a data file, blob or log should be: a reader may open one without
    blocking to look at what it is (``O_NONBLOCK``, then ``fstat``: no race with a swap), but
    must not hold it open (blocked in ``open`` or ``read``): the watch writes to it a moment
    after the reader opened it, which succeeds only while the reader still holds it.
    """

    HOLD = 0.2  # seconds a reader may take to look at an inside FIFO and close it

    def __init__(self, outside: list[Path], inside: list[Path]) -> None:
        self.outside = outside
        self.inside = inside
        self.opened: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for fifo in [*self.outside, *self.inside]:
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue  # no reader has it open: good
                try:
                    if fifo in self.outside:
                        self.opened.append(f"{fifo} (a decoy outside the input)")
                        continue
                    time.sleep(self.HOLD)
                    try:
                        os.write(fd, b"x")
                    except OSError:
                        continue  # the reader looked and closed it (EPIPE): fine
                    self.opened.append(f"{fifo} (held open for {self.HOLD} s)")
                finally:
                    os.close(fd)

    def __enter__(self) -> FifoWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Hang(AssertionError):
    """A reader ran past HANG_LIMIT and was interrupted."""


def _on_alarm(signum: int, frame: object) -> None:
    raise Hang(f"still running after {HANG_LIMIT} s: a hang")


@dataclass
class Outcome:
    """How one hostile read ended: a value, or a traffic_lab error; and what it warned."""

    value: Any = None
    error: TrafficLabError | None = None
    warnings: list[warnings.WarningMessage] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return bool(self.warnings)


def run_hostile(
    read: Callable[[], Any],
    box: Box,
    skip: Path | None = None,
    *,
    memory_limit: int = PYTHON_MEMORY_LIMIT,
    rss_limit: int = RSS_GROWTH_LIMIT,
) -> Outcome:
    """Run one reader on hostile input under every bound of the module docstring."""
    before = box.snapshot(skip)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = Outcome()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with FifoWatch(box.fifos, fifos_in(box.input)) as watch:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                signal.setitimer(signal.ITIMER_REAL, HANG_LIMIT)
                try:
                    outcome.value = read()
                except TrafficLabError as exc:
                    outcome.error = exc
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            outcome.warnings = list(caught)
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, previous)
    say(f"outcome: error={outcome.error!r} warnings={[str(w.message) for w in outcome.warnings]}")
    assert not watch.opened, f"opened a FIFO: {watch.opened}"
    others = [w for w in outcome.warnings if not issubclass(w.category, ALLOWED_WARNINGS)]
    assert not others, (
        f"unexpected warnings: {[f'{w.category.__name__}: {w.message}' for w in others]}"
    )
    assert elapsed < TIME_LIMIT, f"took {elapsed:.1f} s"
    assert peak < memory_limit, f"Python memory peaked at {peak / 2**20:.0f} MiB"
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert rss_growth < rss_limit, f"resident memory grew by {rss_growth / 1024:.0f} MiB"
    assert box.snapshot(skip) == before, "something outside the input was written or deleted"
    return outcome


def say(text: str) -> None:
    """``note()`` inside a Hypothesis test, nothing outside one."""
    with contextlib.suppress(InvalidArgument):
        note(text)


class Seeds(list):  # type: ignore[type-arg]
    """Fixture values with a short repr: Hypothesis prints them with every falsifying example."""

    def __repr__(self) -> str:
        return f"<{len(self)} seeds>"


class SeedMap(dict):  # type: ignore[type-arg]
    def __repr__(self) -> str:
        return f"<seeds {sorted(self)}>"


def fifos_in(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path] if path.is_fifo() else []
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            if not p.is_symlink() and p.is_fifo():
                found.append(p)
    return found


def check_exchanges(exchanges: list[tl.Exchange]) -> None:
    """What a reader hands out: exchanges a store can hold, never a decoy's."""
    for ex in exchanges:
        assert isinstance(ex, tl.Exchange)
        try:
            check_storable(ex)
        except InvalidExchangeError as exc:
            pytest.fail(f"a reader handed out an exchange no store can hold: {exc}")
        text = repr((ex.url, ex.request_body, ex.response_body, ex.request_headers))
        assert SECRET not in text, "a reader followed a path or link out of its input"


def assert_kept(
    got: list[tl.Exchange], good: list[tl.Exchange], ignore: tuple[str, ...] = ()
) -> None:
    """Every good exchange is in ``got``, exactly (up to the fields in ``ignore``)."""

    def key(ex: tl.Exchange) -> tuple[Any, ...]:
        return tuple(repr(getattr(ex, f)) for f in tl.Exchange._FIELDS if f not in ignore)

    have = [key(ex) for ex in got]
    for ex in good:
        assert key(ex) in have, f"a good exchange was lost: {ex!r}"
        have.remove(key(ex))


# -- hostile values -------------------------------------------------------------------------------
TRAVERSALS = [
    *[("../" * k) + "outside/fifo" for k in range(1, 7)],
    *[("../" * k) + "outside/victim.parquet" for k in range(1, 7)],
    *[("../" * k) + "outside/pwned" for k in range(1, 7)],
    "{OUTSIDE}/fifo",
    "{OUTSIDE}/victim.txt",
    "{OUTSIDE}/pwned",
    "..",
    ".",
    "/",
    "",
    "/etc/passwd",
    "..\\..\\outside\\fifo",
    "%2e%2e/%2e%2e/outside/fifo",
    "day=20260301/../../outside/victim.parquet",
    "a\x00b",
    "\n",
]
hostile_texts = st.one_of(
    st.sampled_from(TRAVERSALS),
    st.sampled_from(["\ud800", "\udcff", "x" * 5000, "é" * 300, "0" * 64, "A" * 64, "ab"]),
    st.text(max_size=12),
)
hostile_ints = st.one_of(
    st.sampled_from([0, -1, 2**31 - 1, 2**31, -(2**31), 2**63 - 1, -(2**63), 2**64, 10**30]),
    st.integers(),
)
# Raw JSON texts that Python values cannot say (numbers past every limit, deep nesting).
RAW_JSON = [
    "1" + "0" * 5000,
    "-" + "9" * 5000,
    "1e99999",
    "-1e99999",
    "NaN",
    "Infinity",
    "-Infinity",
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '"\\ud800"',
    '"\\udcff\\u0000"',
]
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    hostile_ints,
    st.floats(),
    hostile_texts,
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_texts, inner, max_size=4),
    max_leaves=12,
)


class Raw:
    """A JSON text spliced into a document as it is (see ``dump_json``)."""

    def __init__(self, text: str) -> None:
        self.text = text


hostile_json = st.one_of(json_values, st.sampled_from(RAW_JSON).map(Raw))


def dump_json(document: Any) -> bytes:
    """``json.dumps`` with ``Raw`` values spliced in and surrogates kept as ``\\u`` escapes."""
    raws: list[str] = []

    def default(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"@@raw{len(raws) - 1}@@"
        raise TypeError(type(value).__name__)

    text = json.dumps(document, default=default)  # ensure_ascii: lone surrogates as escapes
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw, 1)
    return text.encode("ascii")


def tree_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in a parsed JSON/YAML document."""
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths.extend(tree_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths.extend(tree_paths(value, (*prefix, i)))
    return paths


def set_path(document: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    node = document
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return document


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """Bit flips, truncation, insertion or garbage: the damage a disk or a download does."""
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "garbage", "empty"]))
    if kind == "empty" or not data:
        return b""
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=200))
    out = bytearray(data)
    if kind == "insert":
        at = draw(st.integers(0, len(out)))
        out[at:at] = draw(st.binary(min_size=1, max_size=16))
        return bytes(out)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(out) - 1))
        out[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(out)


@dataclass
class Mutation:
    """What was done to a document: the path of the value changed, or None for raw bytes."""

    path: tuple[Any, ...] | None
    data: bytes

    def __repr__(self) -> str:
        return f"Mutation(path={self.path!r}, data={self.data[:200]!r}... ({len(self.data)} bytes))"


@st.composite
def document_mutations(
    draw: st.DrawFn, document: Any, dump: Callable[[Any], bytes], extra: st.SearchStrategy[Any]
) -> Mutation:
    """A parsed document with one value replaced (or deleted), or its bytes damaged."""
    if draw(st.integers(0, 4)) == 0:
        return Mutation(None, draw(byte_mutations(dump(document))))
    doc = copy.deepcopy(document)
    path = draw(st.sampled_from(tree_paths(doc)))
    if path and draw(st.integers(0, 5)) == 0:
        return Mutation(path, dump(set_path(doc, path, None, delete=True)))
    value = draw(st.one_of(hostile_json, extra))
    return Mutation(path, dump(set_path(doc, path, value)))


def entry_index(
    mutation: Mutation, entries_path: tuple[Any, ...], shared: tuple[Any, ...] = ()
) -> int | bool | None:
    """Which entry a mutation touched: its index, ``None`` for none, ``True`` for unknown.

    ``shared`` is where the document keeps what entries refer to (HAR pages): a change there
    may touch any entry.
    """
    path = mutation.path
    if path is None or (shared and path[: len(shared)] == shared):
        return True
    n = len(entries_path)
    if path[:n] == entries_path and len(path) > n:
        return int(path[n])
    if entries_path[: len(path)] == path:
        return True  # the entries list itself, or a parent of it
    return None


def good_entries(template: list[tl.Exchange], touched: int | bool | None) -> list[tl.Exchange]:
    if touched is True:
        return []
    return [ex for i, ex in enumerate(template) if i != touched]


# -- HAR ------------------------------------------------------------------------------------------
def _template_exchanges() -> list[tl.Exchange]:
    return [
        make_exchange(json={"id": 1}),
        make_exchange(
            "POST",
            "https://api.example.test/ünï?q=1",
            request_headers=[("Content-Type", "application/x-www-form-urlencoded")],
            request_body=b"a=1&b=%C3%A9",
            status_code=201,
            response_headers=[("Content-Encoding", "gzip"), ("Set-Cookie", "s=1; Path=/")],
            response_body=gzip.compress(b'{"ok": true}', mtime=0),
        ),
        make_exchange(url="https://api.example.test/bin", response_body=bytes(range(256))),
        make_exchange(url="https://api.example.test/down", status_code=None),
    ]


@pytest.fixture(scope="module")
def har_seeds() -> Iterator[list[tuple[Any, list[tl.Exchange]]]]:
    """Parsed HAR documents to mutate, with what they read as: ours, and mitmproxy's."""
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "ours.har"
        write_har(_template_exchanges(), ours)
        mitm = Path(__file__).resolve().parents[2] / "data" / "interop" / "mitmproxy.har"
        seeds = Seeds()
        for path in (ours, mitm):
            seeds.append((json.loads(path.read_bytes()), read_har(path)))
        yield seeds


@given(data=st.data())
def test_read_har_survives_hostile_files(
    har_seeds: list[tuple[Any, list[tl.Exchange]]], data: st.DataObject
) -> None:
    document, template = har_seeds[data.draw(st.integers(0, len(har_seeds) - 1))]
    mutation = data.draw(document_mutations(document, dump_json, st.nothing()))
    compression = data.draw(st.sampled_from(["", ".gz", ".zhar"]))
    payload = mutation.data
    if compression == ".gz":
        payload = gzip.compress(payload, mtime=0)
    elif compression == ".zhar":
        payload = zlib.compress(payload)
    note(f"mutation at {mutation.path!r}: {mutation.data[:300]!r}")
    with boxed() as box:
        path = box.input.with_suffix(".har" + compression)
        path.write_bytes(payload)
        got = run_hostile(lambda: read_har(path), box)
        if got.error is None:
            check_exchanges(got.value)
            touched = entry_index(mutation, ("log", "entries"), shared=("log", "pages"))
            if got.skipped:
                assert_kept(got.value, good_entries(template, touched))
            elif touched is None:
                assert_kept(got.value, template)


def test_read_har_refuses_a_decompression_bomb() -> None:
    # 1.5 GiB of spaces in front of a valid document, as a gzip file of ~2.5 MB: past the
    # reader's decompression limit (1 GiB by default, docs/threat-model.md). Written as 96
    # gzip members of 16 MiB each (a gzip file may hold many), so it is quick to make.
    member = gzip.compress(b" " * (16 * 1024 * 1024), compresslevel=9, mtime=0)
    with boxed() as box:
        path = box.input.with_suffix(".har.gz")
        with path.open("wb") as out:
            for _ in range(96):
                out.write(member)
            out.write(gzip.compress(b'{"log": {"version": "1.2", "entries": []}}', mtime=0))
        # The default limit lets up to 1 GiB be decompressed before the reader refuses.
        got = run_hostile(
            lambda: read_har(path),
            box,
            memory_limit=int(1.5 * 2**30),  # bytes
            rss_limit=2 * 2**20,  # KiB: 2 GiB
        )
        assert got.error is not None, "a 1.5 GiB document was decompressed whole"


# -- VCR.py cassettes -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vcr_seeds() -> Iterator[dict[str, tuple[Any, list[tl.Exchange]]]]:
    complete = [ex for ex in _template_exchanges() if ex.status_code is not None]
    with tempfile.TemporaryDirectory() as tmp:
        seeds = SeedMap()
        for kind in ("yaml", "json"):
            path = Path(tmp) / f"cassette.{kind}"
            if kind == "json":
                ok = [ex for ex in complete if _is_utf8(ex.response_body)]
                write_vcr(ok, path)
                document = json.loads(path.read_bytes())
            else:
                write_vcr(complete, path)
                document = yaml.safe_load(path.read_bytes())
            seeds[kind] = (document, read_vcr(path))
        yield seeds


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# YAML that plain data cannot say: tags that would run code, aliases, YAML's own types.
RAW_YAML = [
    "!!python/object/apply:os.system ['touch {OUTSIDE}/pwned']",
    "!!python/object/new:builtins.open ['{OUTSIDE}/pwned', 'w']",
    "!!binary '%%%not base64'",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "2001-12-14t21:59:43.10-05:00",
    "2026-03-01",
    ".nan",
    "-.inf",
    "0x7fffffffffffffffffff",
    "1" + "0" * 5000,
    "&loop [*loop]",
    "[" * 20_000 + "]" * 20_000,
    "{a: " * 20_000 + "1" + "}" * 20_000,
]
BILLION_LAUGHS = "\n".join(
    ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
)


class RawYaml:
    def __init__(self, text: str) -> None:
        self.text = text


def dump_yaml(document: Any) -> bytes:
    raws: list[str] = []

    class Dumper(yaml.SafeDumper):
        pass

    def represent(dumper: yaml.SafeDumper, value: RawYaml) -> Any:
        raws.append(value.text)
        return dumper.represent_str(f"@@raw{len(raws) - 1}@@")

    def represent_json(dumper: yaml.SafeDumper, value: Raw) -> Any:
        return represent(dumper, RawYaml(value.text))  # JSON texts are YAML too

    Dumper.add_representer(RawYaml, represent)
    Dumper.add_representer(Raw, represent_json)
    text = yaml.dump(document, Dumper=Dumper, sort_keys=False)
    for i, raw in enumerate(raws):
        text = text.replace(f"'@@raw{i}@@'", raw, 1).replace(f"@@raw{i}@@", raw, 1)
    if "*l9" in text or "*l8" in text:
        text = BILLION_LAUGHS + "\n" + text
    return text.encode("utf-8", "surrogatepass")


raw_yaml = st.one_of(
    st.sampled_from(RAW_YAML).map(RawYaml),
    st.sampled_from(["*l9", "[*l9, *l9]", "{k: *l8}"]).map(RawYaml),
)


@given(data=st.data())
def test_read_vcr_survives_hostile_cassettes(
    vcr_seeds: dict[str, tuple[Any, list[tl.Exchange]]], data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(["yaml", "json"]))
    document, template = vcr_seeds[kind]
    if kind == "json":
        mutation = data.draw(document_mutations(document, dump_json, st.nothing()))
    else:
        mutation = data.draw(document_mutations(document, dump_yaml, raw_yaml))
    note(f"mutation at {mutation.path!r}: {mutation.data[:300]!r}")
    with boxed() as box:
        path = box.input.with_suffix(f".{kind}")
        path.write_bytes(mutation.data.replace(b"{OUTSIDE}", str(box.outside).encode()))
        got = run_hostile(lambda: read_vcr(path), box)
        if got.error is None:
            check_exchanges(got.value)
            touched = entry_index(mutation, ("interactions",))
            # Cassettes hold no times: started_at is the file's modification time.
            if got.skipped:
                assert_kept(got.value, good_entries(template, touched), ("started_at",))
            elif touched is None:
                assert_kept(got.value, template, ("started_at",))


# -- http4k trees ---------------------------------------------------------------------------------
HTTP4K_LINES = [
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Content-Encoding: gzip",
    b"Content-Encoding: br, zstd, gzip",
    b"Host: ../../outside",
    b"X: " + b"y" * 70_000,
    b"Bad Header: x",
    b"X:\x00",
    b": empty",
    b"X: a\rb",
]
START_LINES = [
    b"GET ../../outside/victim.txt HTTP/1.1",
    b"GET /../../outside HTTP/1.1",
    b"GET {OUTSIDE}/victim.txt HTTP/1.1",
    b"GET file:///etc/passwd HTTP/1.1",
    b"GET https://a.example:99999/ HTTP/1.1",
    b"G\xc3\xa9T https://a.example/ HTTP/1.1",
    b"GET  https://a.example/  HTTP/1.1",
    b"HTTP/1.1 99999999999999999999 Big",
    b"HTTP/1.1 \xd9\xa3\xd9\xa0\xd9\xa0 Arabic",
    b"HTTP/1.1 -200 Minus",
    b"HTTP/1.1 200 \xe2\x82\xac",
    b"HTTP/9 200 OK",
    b"\xff\xfe",
    b"",
]


@pytest.fixture(scope="module")
def http4k_seed() -> Iterator[tuple[Path, list[tl.Exchange]]]:
    complete = [ex for ex in _template_exchanges() if ex.status_code is not None]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        write_http4k(complete, root)
        yield Seeds([root, read_http4k(root)])


@given(data=st.data())
def test_read_http4k_survives_hostile_trees(
    http4k_seed: tuple[Path, list[tl.Exchange]], data: st.DataObject
) -> None:
    seed, template = http4k_seed
    folders = sorted(p.name for p in seed.iterdir())
    with boxed() as box:
        shutil.copytree(seed, box.input, symlinks=True)
        target = data.draw(st.integers(0, len(folders) - 1))
        folder = box.input / folders[target]
        name = data.draw(st.sampled_from(["request.txt", "response.txt"]))
        file = folder / name
        kind = data.draw(
            st.sampled_from(
                ["bytes", "line", "start", "missing", "directory", "fifo", "symlink", "folder"]
            )
        )
        note(f"{kind} on {folders[target]}/{name}")
        if kind == "bytes":
            file.write_bytes(data.draw(byte_mutations(file.read_bytes())))
        elif kind == "line":
            start, _, rest = file.read_bytes().partition(b"\r\n")
            line = data.draw(st.sampled_from(HTTP4K_LINES) | st.binary(max_size=40))
            file.write_bytes(start + b"\r\n" + line + b"\r\n" + rest)
        elif kind == "start":
            _, _, rest = file.read_bytes().partition(b"\r\n")
            line = data.draw(st.sampled_from(START_LINES) | st.binary(max_size=40))
            file.write_bytes(box.fill(line.decode("latin-1")).encode("latin-1") + b"\r\n" + rest)
        elif kind == "missing":
            file.unlink()
        elif kind == "directory":
            file.unlink()
            file.mkdir()
        elif kind == "fifo":
            file.unlink()
            os.mkfifo(file)
        elif kind == "symlink":
            file.unlink()
            decoy = data.draw(st.sampled_from(["victim.txt", "fifo", "exchange/" + name]))
            file.symlink_to(box.outside / decoy)
        else:  # the exchange folder itself: a link to a decoy, or a hostile name
            if data.draw(st.booleans()):
                shutil.rmtree(folder)
                folder.symlink_to(box.outside / "exchange", target_is_directory=True)
            else:
                hostile = data.draw(
                    st.sampled_from(["...", "\n", "é" * 100, "x" * 255, " ", "-", "~"])
                    | st.text(
                        st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                        min_size=1,
                        max_size=30,
                    )
                )
                new = box.input / hostile
                if new.exists() or len(os.fsencode(hostile)) > 255 or hostile in (".", ".."):
                    new = box.input / "renamed"
                folder.rename(new)  # a name the reader may refuse: the entry counts as touched
        got = run_hostile(lambda: read_http4k(box.input), box)
        if got.error is None:
            check_exchanges(got.value)
            if got.skipped:
                keep = [ex for i, ex in enumerate(template) if i != target]
                # http4k trees hold no times: started_at is request.txt's modification time.
                assert_kept(got.value, keep, ("started_at",))


# -- Parquet captures -----------------------------------------------------------------------------
_DECOY: list[Path] = []


def decoy_parquet() -> Path:
    """A valid capture data file whose only row says ``SECRET`` (made once per session)."""
    if not _DECOY:
        folder = Path(tempfile.mkdtemp(prefix="traffic_lab-decoy-"))
        with tl.ParquetStream(folder / "capture") as store:
            store.put(
                make_exchange(url=f"https://{SECRET}.example/", response_body=SECRET.encode())
            )
        [file] = (folder / "capture").glob("day=*/*.parquet")
        _DECOY.append(file)
    return _DECOY[0]


class Template:
    """A small valid capture: two writers' files, a blob, and the exchanges of each file.

    A plain class with a short repr (Hypothesis prints a dataclass fixture field by field with
    every falsifying example).
    """

    def __init__(
        self, root: Path, files: dict[str, list[tl.Exchange]], blob: str, blob_owner: str
    ) -> None:
        self.root = root
        self.files = files
        self.blob = blob  # the digest of a blob...
        self.blob_owner = blob_owner  # ...that this file refers to

    @property
    def exchanges(self) -> list[tl.Exchange]:
        return [ex for exs in self.files.values() for ex in exs]

    def __repr__(self) -> str:
        return f"<capture template {sorted(self.files)}>"


@pytest.fixture(scope="module")
def capture_template() -> Iterator[Template]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "capture"
        first = [
            make_exchange(url="https://api.example.test/a/1", json={"id": 1}),
            make_exchange(
                "POST",
                "https://api.example.test/a/2",
                request_body=b"q" * 200,
                response_body=b"big" * 100,  # above blob_threshold: a blob
            ),
            make_exchange(url="https://api.example.test/a/3", status_code=None),
        ]
        second = [
            make_exchange(url="https://api.example.test/b/1", response_body=b"\x00\xff"),
            make_exchange(url="https://api.example.test/b/2", status_code=404),
        ]
        files: dict[str, list[tl.Exchange]] = {}
        for i, batch in enumerate((first, second)):
            batch = [
                ex.replace(started_at=T0 + timedelta(days=i, seconds=j))
                for j, ex in enumerate(batch)
            ]
            with tl.ParquetStream(root, blob_threshold=64) as store:
                for ex in batch:
                    store.put(ex)
            [rel] = [
                str(p.relative_to(root))
                for p in root.glob("day=*/*.parquet")
                if str(p.relative_to(root)) not in files
            ]
            files[rel] = batch
        blob = hashlib.sha256(first[1].response_body).hexdigest()
        assert (root / "_traffic_lab" / "blobs" / blob[:2] / blob).is_file()
        yield Template(root, files, blob, next(iter(files)))


def read_capture_everything(path: Path, template: Template) -> dict[str, Any]:
    """Every way to read a capture; each must end in a traffic_lab error or finish."""
    results: dict[str, Any] = {}

    def attempt(name: str, read: Callable[[], Any]) -> None:
        try:
            results[name] = read()
        except TrafficLabError as exc:
            results[name] = exc

    def stream() -> list[tl.Exchange]:
        with tl.ParquetStream(path, create=False) as store:
            return list(store.exchanges())

    def cache() -> list[tl.Exchange]:
        with tl.ParquetCache(path, create=False) as store:
            found = [store.lookup(ex.new_request()) for ex in template.exchanges]
            return [*list(store.exchanges()), *(ex for ex in found if ex is not None)]

    def frame() -> list[str]:
        df = tl.read_capture(path, columns="all", bodies=True, headers=True)
        return [str(url) for url in df["request_url"]]

    def compact() -> list[tl.Exchange]:
        with tl.ParquetStream(path, create=False) as store:
            store.compact()
            return list(store.exchanges())

    attempt("stream", stream)
    attempt("cache", cache)
    attempt("frame", frame)
    attempt("compact", compact)
    return results


def check_capture_results(results: dict[str, Any], good: list[tl.Exchange] | None) -> None:
    for name in ("stream", "cache", "compact"):
        value = results[name]
        if isinstance(value, TrafficLabError):
            continue
        check_exchanges(value)
        if good is not None and name != "cache":
            assert_kept(value, good)
    urls = results["frame"]
    if not isinstance(urls, TrafficLabError):
        assert not any(SECRET in url for url in urls), "read_capture followed a link out"
        if good is not None:
            missing = [ex.url for ex in good if ex.url not in urls]
            assert not missing, f"read_capture lost good rows: {missing}"


def _zoo_array(kind: str, n: int, text: str) -> pa.Array[Any]:
    """An array of ``n`` values of a type a column should not have (or of hostile values)."""
    cycle = lambda values: [values[i % len(values)] for i in range(n)]  # noqa: E731
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate makes it invalid UTF-8
    text = raw.decode("utf-8", "replace")  # for the nested types pyarrow builds from str
    if kind == "int64":
        return pa.array(cycle([2**63 - 1, -(2**63), -1, 0]), pa.int64())
    if kind == "int32":
        return pa.array(cycle([2**31 - 1, -(2**31), -1]), pa.int32())
    if kind == "string":
        return pa.array([raw] * n, pa.binary()).view(pa.string())
    if kind == "invalid_utf8":
        return pa.array([b"\xff\xfe\xed" + raw] * n, pa.binary()).view(pa.string())
    if kind == "binary":
        return pa.array([b"\x00\xff" * 3] * n, pa.binary())
    if kind == "large_string":
        return pa.array([raw] * n, pa.large_binary()).view(pa.large_string())
    if kind == "dictionary":
        return pa.array([raw] * n, pa.binary()).view(pa.string()).dictionary_encode()
    if kind == "bool":
        return pa.array(cycle([True, False]), pa.bool_())
    if kind == "float":
        return pa.array(cycle([float("nan"), float("inf"), -float("inf"), 1e308]), pa.float64())
    if kind in ("null", "null_typed"):
        return pa.nulls(n)
    if kind == "timestamp":
        return pa.array(cycle([-(2**63) + 1, 2**63 - 1, -1]), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        )
    if kind == "timestamp_ns":
        return pa.array(cycle([2**62, -(2**62)]), pa.int64()).cast(pa.timestamp("ns"))
    if kind == "duration":
        return pa.array(cycle([-1, 2**63 - 1, -(2**63) + 1]), pa.int64()).cast(pa.duration("us"))
    if kind == "list":
        return pa.array([[text, text]] * n, pa.list_(pa.string()))
    if kind == "headers_wrong":
        return pa.array(
            [[{"name": 1, "value": None}]] * n,
            pa.list_(pa.struct([("name", pa.int64()), ("value", pa.string())])),
        )
    if kind == "headers_null_name":
        t = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
        return pa.array([[{"name": None, "value": text}]] * n, t)
    if kind == "headers_text":
        t = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
        return pa.array([[{"name": text, "value": text}, {"name": "Ā€", "value": "\u0100"}]] * n, t)
    if kind == "map_wrong":
        return pa.array([[("k", 1)]] * n, pa.map_(pa.string(), pa.int64()))
    if kind == "map_dup":
        return pa.array([[(text, "a"), (text, "b")]] * n, pa.map_(pa.string(), pa.string()))
    if kind == "struct":
        return pa.array([{"a": text}] * n, pa.struct([("a", pa.string())]))
    raise AssertionError(kind)


ZOO = [
    "int64", "int32", "string", "invalid_utf8", "binary", "large_string", "dictionary", "bool",
    "float", "null", "null_typed", "null_typed", "timestamp", "timestamp_ns", "duration", "list", "headers_wrong",
    "headers_null_name", "headers_text", "map_wrong", "map_dup", "struct",
]  # fmt: skip
META_KEYS = [
    b"traffic_lab.schema_version",
    b"traffic_lab.matcher_fingerprint",
    b"traffic_lab.writer_id",
    b"traffic_lab.time_range",
    b"traffic_lab.replaces",
    b"ARROW:schema",
]
META_VALUES = [
    b"", b"1", b"2", b"0", b"-1", b"1e400", b"NaN", b" 1", b"\xff\xfe", b"9" * 5000,
    b"1,2", b"2,1", b"a,b", b"1,2,3", b"-9223372036854775808,9223372036854775807",
    b"99999999999999999999999,1", b"0,99999999999999999999999",
    b"[]", b"{}", b"null", b"[1, 2]", b'["day=20260301"]', b"[" * 50_000 + b"]" * 50_000,
    b'["' + b"../" * 3 + b'outside/victim.parquet"]', b'["{OUTSIDE}/victim.parquet"]',
    b'["../../../outside/victim.parquet", "../../../../outside/victim.parquet"]',
    b'["day=20260301/../../../outside/victim.parquet"]', b'["\\ud800"]', b'"day=20260301"',
    b"0123456789abcdef", b"../../outside/pwned", b"../" * 8,
]  # fmt: skip


def _valid(text: str) -> str:
    """``text`` with lone surrogates replaced: pyarrow builds nested strings only from valid text."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _rewrite(path: Path, table: pa.Table, metadata: dict[bytes, bytes] | None) -> None:
    path.unlink()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _log_record(
    parts: Any, request_body: bytes, response_body: bytes, meta_len: int | None
) -> bytes:
    meta = parts if isinstance(parts, bytes) else dump_json(parts)
    length = len(meta) if meta_len is None else meta_len
    payload = struct.pack("<I", length % 2**32) + meta + request_body + response_body
    return struct.pack("<4sII", b"TLR1", len(payload), zlib.crc32(payload)) + payload


@st.composite
def capture_mutations(
    draw: st.DrawFn, template: Template
) -> tuple[str, Callable[[Box], set[str] | None]]:
    """A named change to a copy of the template capture, and the good files it leaves alone.

    The change returns the relative paths of the template files it touched, or ``None`` when no
    file's rows can be promised (a clear marker hides rows by design).
    """
    rels = sorted(template.files)
    target = draw(st.sampled_from(rels))
    kind = draw(
        st.sampled_from(
            [
                "bytes",
                "column",
                "value",
                "drop",
                "metadata",
                "foreign",
                "odd_file",
                "blob",
                "log",
                "marker",
            ]
        )
    )
    text = draw(hostile_texts)
    detail = ""

    if kind == "bytes":
        mutated = draw(byte_mutations((template.root / target).read_bytes()))

        def change(box: Box) -> set[str] | None:
            (box.input / target).write_bytes(mutated)
            return {target}

    elif kind == "column":
        column = draw(st.sampled_from([*SCHEMA.names, "day", "extra"]))
        zoo = draw(st.sampled_from(ZOO))
        detail = f"{column} as {zoo}"

        def change(box: Box) -> set[str] | None:
            path = box.input / target
            table = pq.read_table(path)
            meta = table.schema.metadata
            if zoo == "null_typed" and column in table.column_names:
                # Nulls where the schema says "not null", in the column's own type.
                array = pa.nulls(table.num_rows, table.schema.field(column).type)
            else:
                array = _zoo_array(zoo, table.num_rows, box.fill(text))
            if column in table.column_names:
                table = table.set_column(table.column_names.index(column), column, array)
            else:
                table = table.append_column(column, array)
            _rewrite(path, table, meta)
            return {target}

    elif kind == "value":
        column = draw(st.sampled_from(SCHEMA.names))
        row = draw(st.integers(0, 1))
        int_value = draw(hostile_ints)
        detail = f"{column}[{row}] = {text!r} / {int_value}"

        def change(box: Box) -> set[str] | None:
            path = box.input / target
            table = pq.read_table(path)
            meta = table.schema.metadata
            field_type = table.schema.field(column).type
            if pa.types.is_timestamp(field_type) or pa.types.is_duration(field_type):
                values = table.column(column).cast(pa.int64()).to_pylist()
                values[row] = max(-(2**63) + 1, min(2**63 - 1, int_value))
                array = pa.array(values, pa.int64()).cast(field_type)
            elif pa.types.is_integer(field_type):
                info = 2 ** (field_type.bit_width - 1)
                values = table.column(column).to_pylist()
                values[row] = max(-info, min(info - 1, int_value))
                array = pa.array(values, field_type)
            elif pa.types.is_string(field_type):
                values = table.column(column).to_pylist()
                values[row] = box.fill(text).encode("utf-8", "surrogatepass")
                array = pa.array(values, pa.binary()).view(pa.string())
            elif pa.types.is_binary(field_type):
                values = table.column(column).to_pylist()
                values[row] = box.fill(text).encode("utf-8", "surrogatepass")
                array = pa.array(values, pa.binary())
            elif pa.types.is_list(field_type):
                values = table.column(column).to_pylist()
                values[row] = [{"name": _valid(box.fill(text)), "value": "\x00\n"}] * 3
                array = pa.array(
                    values, pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
                )
            elif pa.types.is_map(field_type):
                values = table.column(column).to_pylist()
                values[row] = [(_valid(box.fill(text)), "v"), (_valid(box.fill(text)), "w")]
                array = pa.array(values, field_type)
            else:  # bool
                array = pa.array([None] * table.num_rows, field_type)
            table = table.set_column(table.column_names.index(column), column, array)
            _rewrite(path, table, meta)
            return {target}

    elif kind == "drop":
        column = draw(st.sampled_from(SCHEMA.names))
        detail = column

        def change(box: Box) -> set[str] | None:
            path = box.input / target
            table = pq.read_table(path)
            _rewrite(path, table.drop_columns([column]), table.schema.metadata)
            return {target}

    elif kind == "metadata":
        key = draw(st.sampled_from(META_KEYS))
        value = draw(st.sampled_from([None, *META_VALUES]) | st.binary(max_size=20))
        detail = f"{key!r} = {value if value is None else value[:60]!r}"

        def change(box: Box) -> set[str] | None:
            path = box.input / target
            table = pq.read_table(path)
            meta = dict(table.schema.metadata or {})
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value.replace(b"{OUTSIDE}", str(box.outside).encode())
            _rewrite(path, table, meta)
            # A compacted file hides the files it replaces (that is the format): the other
            # template file may be named, so only the rows of untouched, unnamed files count.
            named = {rel for rel in rels if rel.encode() in (value or b"")}
            return {target} | named

    elif kind == "foreign":
        what = draw(
            st.sampled_from(["no_metadata", "missing_columns", "all_strings", "empty", "newer"])
        )
        detail = what
        name = f"{target.split('/')[0]}/part-{draw(st.sampled_from(['f0', 'ffffffffffffffff']))}-000000.parquet"

        def change(box: Box) -> set[str] | None:
            path = box.input / name
            version = {b"traffic_lab.schema_version": b"1"}
            if what == "no_metadata":
                pq.write_table(pa.table({"x": [1, 2]}), path)
            elif what == "missing_columns":
                pq.write_table(
                    pa.table({"request_url": ["u"]}).replace_schema_metadata(version), path
                )
            elif what == "all_strings":
                names = ["started_at", "writer_id", "writer_seq", "request_method", "request_url"]
                t = pa.table({n: [_valid(box.fill(text))] for n in names})
                t = t.replace_schema_metadata(version)
                pq.write_table(t, path)
            elif what == "empty":
                pq.write_table(SCHEMA.empty_table().replace_schema_metadata(version), path)
            else:  # a newer schema version: must raise SchemaVersionError, never be skipped
                t = pq.read_table(box.input / target)
                meta = dict(t.schema.metadata or {})
                meta[b"traffic_lab.schema_version"] = b"99"
                pq.write_table(t.replace_schema_metadata(meta), path)
            return set()

    elif kind == "odd_file":
        what = draw(
            st.sampled_from(
                [
                    "fifo",
                    "directory",
                    "symlink_file",
                    "symlink_fifo",
                    "symlink_day",
                    "text",
                    "root_parquet",
                    "bad_day",
                ]
            )
        )
        detail = what
        bad_day = draw(
            st.sampled_from(["day=99999999", "day=00000000", "day=20261399", "day=2026", "day=-1"])
        )

        def change(box: Box) -> set[str] | None:
            day = box.input / target.split("/")[0]
            name = day / "part-0000000000000000-000009.parquet"
            if what == "fifo":
                os.mkfifo(name)
            elif what == "directory":
                name.mkdir()
            elif what == "symlink_file":
                name.symlink_to(box.outside / "victim.parquet")
            elif what == "symlink_fifo":
                name.symlink_to(box.outside / "fifo")
            elif what == "symlink_day":
                linked = box.outside / "day"
                linked.mkdir(exist_ok=True)
                shutil.copyfile(
                    box.outside / "victim.parquet", linked / "part-aaaaaaaaaaaaaaaa-000000.parquet"
                )
                (box.input / "day=20260310").symlink_to(linked, target_is_directory=True)
            elif what == "text":
                name.write_text(box.fill(text), "utf-8", "surrogatepass")
            elif what == "root_parquet":
                shutil.copyfile(box.outside / "victim.parquet", box.input / "part-x.parquet")
            else:
                bad = box.input / bad_day
                bad.mkdir(exist_ok=True)
                shutil.copyfile(box.input / target, bad / "part-bbbbbbbbbbbbbbbb-000000.parquet")
            return set()

    elif kind == "blob":
        what = draw(
            st.sampled_from(
                ["missing", "altered", "fifo", "directory", "symlink", "symlink_dir", "digest"]
            )
        )
        detail = what

        def change(box: Box) -> set[str] | None:
            blobs = box.input / "_traffic_lab" / "blobs"
            blob = blobs / template.blob[:2] / template.blob
            if what == "missing":
                blob.unlink()
            elif what == "altered":
                blob.write_bytes(blob.read_bytes() + b"!")
            elif what == "fifo":
                blob.unlink()
                os.mkfifo(blob)
            elif what == "directory":
                blob.unlink()
                blob.mkdir()
            elif what == "symlink":
                blob.unlink()
                blob.symlink_to(box.outside / "fifo")
            elif what == "symlink_dir":
                shutil.rmtree(blobs)
                blobs.symlink_to(box.outside, target_is_directory=True)
            else:  # a digest that is a path
                path = box.input / template.blob_owner
                table = pq.read_table(path)
                for column in ("request_body_blob", "response_body_blob"):
                    values = table.column(column).to_pylist()
                    digest = box.fill(text).encode("utf-8", "surrogatepass")  # maybe not UTF-8
                    values = [digest if v is not None else v for v in values]
                    values[0] = digest
                    array = pa.array(values, pa.binary()).view(pa.string())
                    table = table.set_column(table.column_names.index(column), column, array)
                _rewrite(path, table, table.schema.metadata)
            return {template.blob_owner}  # its rows may be refused with it

    elif kind == "log":
        what = draw(
            st.sampled_from(
                [
                    "header",
                    "record_part",
                    "record_raw",
                    "meta_len",
                    "body_len",
                    "bytes",
                    "symlink",
                    "fifo",
                    "directory",
                ]
            )
        )
        detail = what
        part_index = draw(st.integers(0, 15))
        value = draw(hostile_json)
        raw = draw(st.binary(max_size=64))
        header_key = draw(st.sampled_from(["writer_id", "segment", "fingerprint", None]))
        detail = f"{what}, part {part_index}, header key {header_key}, value {value!r:.80}"
        good = template.exchanges[0]
        valid_log = (
            b"TLLOG1\n"
            + json.dumps(
                {"writer_id": "fedcba9876543210", "segment": 0, "fingerprint": ""}
            ).encode()
            + b"\n"
            + encode_record(0, good.replace(url="https://api.example.test/log"), "")
        )
        damaged_log = draw(byte_mutations(valid_log))

        def change(box: Box) -> set[str] | None:
            logs = box.input / "_traffic_lab" / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            path = logs / "fedcba9876543210-000000.log"
            header: Any = {"writer_id": "fedcba9876543210", "segment": 0, "fingerprint": ""}
            record = encode_record(0, good.replace(url="https://api.example.test/log"), "")
            if what == "header":
                header = value if header_key is None else {**header, header_key: value}
            if what in ("record_part", "meta_len", "body_len"):
                parts = json.loads(record[16 : 16 + struct.unpack_from("<I", record, 12)[0]])
                if what == "record_part":
                    parts[part_index] = value
                    record = _log_record(parts, b"", good.response_body, None)
                elif what == "meta_len":
                    record = _log_record(parts, b"", b"", 2**32 - 1)
                else:
                    parts[15] = -5 if part_index % 2 else 2**40
                    record = _log_record(parts, b"", b"", None)
            elif what == "record_raw":
                record = _log_record(raw, b"", b"", None)
            data = (
                b"TLLOG1\n"
                + dump_json(header).replace(b"{OUTSIDE}", str(box.outside).encode())
                + b"\n"
                + record
            )
            if what == "bytes":
                data = damaged_log
            if what == "symlink":
                path.symlink_to(box.outside / "fifo")
            elif what == "fifo":
                os.mkfifo(path)
            elif what == "directory":
                path.mkdir()
            else:
                path.write_bytes(data)
            return set()

    else:  # marker
        name = draw(
            st.sampled_from(
                [
                    "clear-99999999999999999999-ab.marker",
                    "clear-00000000000000000000-ab.marker",
                    "clear-18446744073709551616-ab.marker",
                    "clear-9223372036854775807-ab.marker",
                ]
            )
        )
        detail = name

        def change(box: Box) -> set[str] | None:
            markers = box.input / "_traffic_lab" / "markers"
            markers.mkdir(parents=True, exist_ok=True)
            (markers / name).write_bytes(b'{"cleared_before_us": "x"}')
            return None

    return f"{kind} ({detail}) on {target}, text {text!r}", change


@given(data=st.data())
def test_capture_readers_survive_hostile_captures(
    capture_template: Template, data: st.DataObject
) -> None:
    label, change = data.draw(capture_mutations(capture_template))
    note(label)
    with boxed() as box:
        shutil.copytree(capture_template.root, box.input, symlinks=True)
        touched = change(box)
        results = run_hostile(
            lambda: read_capture_everything(box.input, capture_template), box, skip=box.input
        )
        assert results.error is None  # read_capture_everything catches traffic_lab errors
        note(
            f"results: { {k: (v if isinstance(v, Exception) else len(v)) for k, v in results.value.items()} }"
        )
        good = None
        if touched is not None:
            good = [
                ex
                for rel, exs in capture_template.files.items()
                if rel not in touched
                for ex in exs
            ]
        check_capture_results(results.value, good)


# -- known hostile captures: every profile runs these, whatever Hypothesis draws ------------------
def _set_column(box: Box, rel: str, column: str, array: Any) -> None:
    path = box.input / rel
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index(column), column, array)
    _rewrite(path, table, table.schema.metadata)


def _set_metadata(box: Box, rel: str, key: bytes, value: bytes) -> None:
    path = box.input / rel
    table = pq.read_table(path)
    _rewrite(path, table, {**(table.schema.metadata or {}), key: value})


def _write_log(box: Box, header: bytes, records: bytes = b"") -> None:
    logs = box.input / "_traffic_lab" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "fedcba9876543210-000000.log").write_bytes(b"TLLOG1\n" + header + b"\n" + records)


_HEADERS = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
_LOG_RECORD = encode_record(0, make_exchange(url="https://api.example.test/log"), "")
# Each builder damages a copy of the template and returns the template files it touched.
KNOWN_HOSTILE: dict[str, Callable[[Box, Template, str], set[str]]] = {
    "header name null": lambda box, t, rel: (
        _set_column(box, rel, "response_headers", pa.array([[{"name": None, "value": "x"}]] * len(t.files[rel]), _HEADERS)),
        {rel},
    )[1],
    "writer_id not UTF-8": lambda box, t, rel: (
        _set_column(box, rel, "writer_id", pa.array([b"\xed\xa0\x80"] * len(t.files[rel]), pa.binary()).view(pa.string())),
        {rel},
    )[1],
    "started_at at int64's end": lambda box, t, rel: (
        _set_column(box, rel, "started_at", pa.array([2**63 - 1] * len(t.files[rel]), pa.int64()).cast(pa.timestamp("us", tz="UTC"))),
        {rel},
    )[1],
    "replaces climbs out": lambda box, t, rel: (
        _set_metadata(box, rel, b"traffic_lab.replaces", json.dumps(["../../../outside/victim.parquet", "../../../../outside/victim.parquet", str(box.outside / "victim.parquet")]).encode()),
        {rel},
    )[1],
    "fingerprint not UTF-8": lambda box, t, rel: (
        _set_metadata(box, rel, b"traffic_lab.matcher_fingerprint", b"\xff\xfe"),
        {rel},
    )[1],
    "time range past int64": lambda box, t, rel: (
        _set_metadata(box, rel, b"traffic_lab.time_range", b"99999999999999999999999,1"),
        {rel},
    )[1],
    "clear marker past int64": lambda box, t, rel: (
        (box.input / "_traffic_lab" / "markers").mkdir(parents=True, exist_ok=True),
        (box.input / "_traffic_lab" / "markers" / "clear-99999999999999999999-ab.marker").write_text("{}"),
        set(),
    )[2],
    "blob is a FIFO": lambda box, t, rel: (
        (box.input / "_traffic_lab" / "blobs" / t.blob[:2] / t.blob).unlink(),
        os.mkfifo(box.input / "_traffic_lab" / "blobs" / t.blob[:2] / t.blob),
        {t.blob_owner},
    )[2],
    "blob digest climbs out": lambda box, t, rel: (
        _set_column(box, t.blob_owner, "response_body_blob", pa.array(["../../../../outside/fifo", None, None], pa.string())),
        {t.blob_owner},
    )[1],
    "foreign file with string times": lambda box, t, rel: (
        pq.write_table(
            pa.table({n: ["x"] for n in ["started_at", "writer_id", "writer_seq", "request_method", "request_url"]}).replace_schema_metadata({"traffic_lab.schema_version": "1"}),
            box.input / rel.split("/")[0] / "part-f0-000000.parquet",
        ),
        set(),
    )[1],
    "log header is a list": lambda box, t, rel: (_write_log(box, b"[]", _LOG_RECORD), set())[1],
    "log writer id climbs out": lambda box, t, rel: (
        _write_log(box, json.dumps({"writer_id": "../../../../outside/pwned", "segment": 0, "fingerprint": ""}).encode(), _LOG_RECORD),
        set(),
    )[1],
    "log segment huge": lambda box, t, rel: (
        _write_log(box, json.dumps({"writer_id": "fedcba9876543210", "segment": 10**300, "fingerprint": ""}).encode(), _LOG_RECORD),
        set(),
    )[1],
    "data file links out": lambda box, t, rel: (
        (box.input / rel.split("/")[0] / "part-0000000000000000-000009.parquet").symlink_to(box.outside / "victim.parquet"),
        set(),
    )[1],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KNOWN_HOSTILE))
def test_capture_readers_survive_known_hostile_captures(
    capture_template: Template, name: str
) -> None:
    rel = capture_template.blob_owner
    with boxed() as box:
        shutil.copytree(capture_template.root, box.input, symlinks=True)
        touched = KNOWN_HOSTILE[name](box, capture_template, rel)
        results = run_hostile(
            lambda: read_capture_everything(box.input, capture_template), box, skip=box.input
        )
        good = [ex for r, exs in capture_template.files.items() if r not in touched for ex in exs]
        check_capture_results(results.value, good)
