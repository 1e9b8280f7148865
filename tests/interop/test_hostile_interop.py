"""Hostile and broken files given to the importers (issue #9).

Imported files come from anyone. Whatever is in them, a reader ends with exchanges every store can
hold, skipped entries named by a warning, or one :class:`~traffic_lab.errors.InteropError` naming the
file (and the entry and field where there is one): never a raw ``KeyError``, ``RecursionError``,
``UnicodeError`` or ``OSError``, never a hang, never memory in proportion to a bomb's payload, and
never a byte read from outside the tree or written outside the target.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import json
import os
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

import traffic_lab as tl
from traffic_lab.errors import InvalidExchangeError, SkippedEntryWarning
from traffic_lab.interop import har as har_module
from traffic_lab.interop import http4k as http4k_module
from traffic_lab.interop import (
    read_har,
    read_http4k,
    read_vcr,
    write_har,
    write_http4k,
    write_vcr,
)
from traffic_lab.testing import make_exchange

MiB = 1 << 20


@contextmanager
def bounded(seconds: float = 5.0, peak_mb: float | None = None) -> Iterator[None]:
    """The block must finish within ``seconds`` and, if given, allocate at most ``peak_mb``."""
    if peak_mb is not None:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        peak = 0
        if peak_mb is not None:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    if peak_mb is not None:
        assert peak < peak_mb * MiB, f"peak memory {peak / MiB:.0f} MB"


def _skipped(caught: Any) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, SkippedEntryWarning)]


# -- HAR ------------------------------------------------------------------------------------------
def _har(tmp_path: Path, count: int = 3) -> dict[str, Any]:
    exchanges = [make_exchange(url=f"https://api.example/{i}") for i in range(count)]
    write_har(exchanges, tmp_path / "valid.har")
    document: dict[str, Any] = json.loads((tmp_path / "valid.har").read_text())
    return document


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("key", "value", "field", "message"),
    [
        (
            "request.url",
            "https://api.example:99999999999/1",
            "request.url",
            "has a port outside 0-65535: 'https://api.example:99999999999/1'",
        ),
        (
            "time",
            1e16,
            "time",
            "cannot store this exchange: elapsed = 115740740 days, 17:46:40: "
            "must be from 0 to 36600 days",
        ),
        (
            "request.method",
            "G@T",
            "request.method",
            "cannot store this exchange: method = 'G@T': must be an HTTP token of 1-64 characters",
        ),
        (
            "request.url",
            "https://api.example/\ud800",
            "request.url",
            "is not valid Unicode text (surrogates not allowed at 20): "
            "'https://api.example/\\ud800'",
        ),
        (
            "startedDateTime",
            "0001-01-01T00:00:00+05:00",
            "startedDateTime",
            "is out of range in UTC: '0001-01-01T00:00:00+05:00'",
        ),
    ],
)
def test_har_entry_no_store_can_hold_is_skipped_and_named(
    tmp_path: Path, key: str, value: Any, field: str, message: str
) -> None:
    document = _har(tmp_path)
    node = document["log"]["entries"][1]
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    path = _write(tmp_path / "bad.har", document)
    where = f"{path}, entry 1, field {field!r}: {message}"

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_har(path)

    assert _skipped(caught) == [f"{where} (entry skipped)"]
    assert [e.url for e in kept] == ["https://api.example/0", "https://api.example/2"]
    with pytest.raises(tl.errors.InteropError) as info:
        read_har(path, strict=True)
    assert (info.value.path, info.value.index, info.value.field) == (str(path), 1, field)
    assert str(info.value) == where


def test_har_error_preview_is_bounded(tmp_path: Path) -> None:
    document = _har(tmp_path)
    document["log"]["entries"][0]["request"]["method"] = [[0] * 1000] * 1000
    document["log"]["entries"][1]["request"]["method"] = "X" * 5_000_000
    path = _write(tmp_path / "bad.har", document)

    with bounded(seconds=5), pytest.warns(SkippedEntryWarning) as caught:
        kept = read_har(path)

    assert _skipped(caught) == [
        f"{path}, entry 0, field 'request.method': must be a string, not list <list of 1000> "
        "(entry skipped)",
        f"{path}, entry 1, field 'request.method': cannot store this exchange: method = "
        f"{'X' * 60!r}... (5000000 long): must be an HTTP token of 1-64 characters "
        "(entry skipped)",
    ]
    assert [e.url for e in kept] == ["https://api.example/2"]


def test_har_huge_integer_names_the_entry_and_field(tmp_path: Path) -> None:
    document = _har(tmp_path)
    digits = "9" * 5000
    text = json.dumps(document).replace('"status": 200', f'"status": {digits}', 2)
    # In a field no reader looks at, a huge integer costs nothing.
    text = text.replace('"log": {', f'"log": {{"_size": {digits}, ', 1)
    path = tmp_path / "bad.har"
    path.write_text(text)
    message = "has 5000 digits: numbers of more than 40 are not read"

    with bounded(seconds=5), pytest.warns(SkippedEntryWarning) as caught:
        kept = read_har(path)

    assert _skipped(caught) == [
        f"{path}, entry {i}, field 'response.status': {message} (entry skipped)" for i in (0, 1)
    ]
    assert [e.url for e in kept] == ["https://api.example/2"]


def test_har_deeply_nested_json_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.har"
    path.write_text('{"log": {"entries": [' + "[" * 200_000 + "]" * 200_000 + "]}}")

    with bounded(seconds=5), pytest.raises(tl.errors.InteropError) as info:
        read_har(path)

    assert str(info.value) == f"{path}: is nested too deeply to read (JSON arrays and objects)"
    assert info.value.index is None


def _gzip_bomb(path: Path, size: int) -> None:
    """A valid gzip file of ``size`` spaces, written without holding them in memory."""
    chunk = b" " * MiB
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b'{"log": {"entries": [')
        for _ in range(size // MiB):
            out.write(chunk)


def _zlib_bomb(path: Path, size: int) -> None:
    compressor = zlib.compressobj(9)
    chunk = b" " * MiB
    with open(path, "wb") as out:
        out.write(compressor.compress(b'{"log": {"entries": ['))
        for _ in range(size // MiB):
            out.write(compressor.compress(chunk))
        out.write(compressor.flush())


@pytest.mark.parametrize(("name", "make"), [("bomb.har.gz", _gzip_bomb), ("bomb.zhar", _zlib_bomb)])
def test_har_decompression_bomb_stops_at_max_bytes(tmp_path: Path, name: str, make: Any) -> None:
    path = tmp_path / name
    make(path, 256 * MiB)
    assert path.stat().st_size < 2 * MiB

    with bounded(seconds=5, peak_mb=40), pytest.raises(tl.errors.InteropError) as info:
        read_har(path, max_bytes=8 * MiB)

    assert str(info.value) == f"{path}: decompresses to more than max_bytes={8 * MiB}"


def test_har_max_bytes_defaults_to_one_gib_and_applies_to_plain_files(tmp_path: Path) -> None:
    assert inspect.signature(read_har).parameters["max_bytes"].default == 1 << 30
    document = _har(tmp_path)
    path = _write(tmp_path / "plain.har", document)
    size = path.stat().st_size

    assert len(read_har(path, max_bytes=size)) == 3
    with pytest.raises(tl.errors.InteropError) as info:
        read_har(path, max_bytes=size - 1)
    assert str(info.value) == f"{path}: is larger than max_bytes={size - 1}"
    with pytest.raises(ValueError, match="max_bytes must be a positive integer, not 0"):
        read_har(path, max_bytes=0)


def test_har_compressed_files_within_max_bytes_still_read(tmp_path: Path) -> None:
    exchanges = [make_exchange(url=f"https://api.example/{i}") for i in range(50)]
    for name in ("c.har.gz", "c.zhar"):
        write_har(exchanges, tmp_path / name)
        assert read_har(tmp_path / name) == exchanges


def test_har_wire_body_bomb_is_not_decoded_past_the_text(tmp_path: Path) -> None:
    # _trafficLab.responseBody claims wire bytes for a small gzip body; here they are a bomb.
    exchange = make_exchange(
        response_headers={"content-encoding": "gzip"},
        response_body=gzip.compress(b"small", mtime=0),
    )
    write_har([exchange], tmp_path / "valid.har")
    document = json.loads((tmp_path / "valid.har").read_text())
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(compressor.compress(b"\0" * MiB) for _ in range(300)) + compressor.flush()
    document["log"]["entries"][0]["_trafficLab"]["responseBody"] = base64.b64encode(bomb).decode()
    path = _write(tmp_path / "bomb.har", document)

    with bounded(seconds=5, peak_mb=40):
        [read] = read_har(path, strict=True)

    assert gzip.decompress(read.response_body) == b"small"  # re-encoded from the HAR text


def test_har_input_that_is_not_a_file_is_an_interop_error(tmp_path: Path) -> None:
    with pytest.raises(tl.errors.InteropError) as info:
        read_har(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot be opened: Is a directory"
    with pytest.raises(FileNotFoundError):
        read_har(tmp_path / "missing.har")


def test_har_any_failure_of_one_entry_costs_only_that_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = _har(tmp_path)
    path = _write(tmp_path / "v.har", document)
    real = har_module._read_entry

    def flaky(entry: Any, where: Any, pages: Any) -> tl.Exchange:
        if where.index == 1:
            raise KeyError("surprise")
        return real(entry, where, pages)

    monkeypatch.setattr(har_module, "_read_entry", flaky)

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_har(path)

    assert _skipped(caught) == [
        f"{path}, entry 1: cannot be read: KeyError: 'surprise' (entry skipped)"
    ]
    assert len(kept) == 2
    with pytest.raises(
        tl.errors.InteropError, match=r"entry 1: cannot be read: KeyError: 'surprise'$"
    ):
        read_har(path, strict=True)


def test_har_many_bad_entries_name_twenty_and_count_the_rest(tmp_path: Path) -> None:
    document = _har(tmp_path, count=1)
    document["log"]["entries"] = [7] * 100_000 + document["log"]["entries"]
    path = _write(tmp_path / "many.har", document)

    with bounded(seconds=5), pytest.warns(SkippedEntryWarning) as caught:
        kept = read_har(path)

    messages = _skipped(caught)
    assert messages[:20] == [
        f"{path}, entry {i}: an entry must be an object, not int (entry skipped)" for i in range(20)
    ]
    assert messages[20:] == [
        f"{path}: 99980 more entries skipped; only the first 20 are named "
        "(strict=True raises on the first bad entry)"
    ]
    assert {w.filename for w in caught} == {__file__}  # they point at the caller
    assert [e.url for e in kept] == ["https://api.example/0"]


# -- VCR cassettes --------------------------------------------------------------------------------
def _alias_bomb(levels: int, where: str) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    top = f"*a{levels - 1}"
    method = top if where == "method" else "GET"
    headers = f"{{x: {top}}}" if where == "headers" else "{}"
    return (
        "bomb:\n"
        + "".join(f"  {line}\n" for line in lines)
        + "version: 1\ninteractions:\n"
        + f"- request: {{method: {method}, uri: 'http://a/', body: '', headers: {headers}}}\n"
        + "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ''}}\n"
    )


@pytest.mark.parametrize("where", ["method", "headers"])
def test_vcr_alias_bomb_is_refused_before_it_expands(tmp_path: Path, where: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(9, where))
    assert path.stat().st_size < 700

    with bounded(seconds=5, peak_mb=50), pytest.raises(tl.errors.InteropError) as info:
        read_vcr(path)

    budget = 4 * path.stat().st_size + 16_000_000
    assert str(info.value) == (
        f"{path}: YAML aliases expand the document past {budget} nodes and characters: "
        "refused as an alias bomb"
    )


def test_vcr_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("version: 1\ninteractions: &loop [*loop]\n")

    with bounded(seconds=5), pytest.raises(tl.errors.InteropError) as info:
        read_vcr(path)

    assert str(info.value) == f"{path}: a YAML alias refers to a node that contains it (recursive)"


def test_vcr_aliases_as_pyyaml_writes_them_are_read(tmp_path: Path) -> None:
    write_vcr(
        [make_exchange(url=f"https://api.example/{i}") for i in range(3)], tmp_path / "c.yaml"
    )
    document = yaml.safe_load((tmp_path / "c.yaml").read_text())
    shared = {"accept": ["application/json"]}
    for interaction in document["interactions"]:
        interaction["request"]["headers"] = shared  # one object: the dumper writes an alias
    text = yaml.dump(document)
    assert "&id001" in text and "*id001" in text
    path = tmp_path / "aliased.yaml"
    path.write_text(text)

    exchanges = read_vcr(path, strict=True)

    assert [e.request_headers for e in exchanges] == [((b"accept", b"application/json"),)] * 3


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "deep.yaml",
            "version: 1\ninteractions: " + "[" * 50_000 + "]" * 50_000 + "\n",
            "invalid YAML at line 2 column 114: nested deeper than 100 levels",
        ),
        (
            "deep.json",
            '{"version": 1, "interactions": ' + "[" * 200_000 + "]" * 200_000 + "}",
            "is nested too deeply to read (JSON arrays and objects)",
        ),
    ],
)
def test_vcr_deep_nesting_is_an_error_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    with bounded(seconds=5), pytest.raises(tl.errors.InteropError) as info:
        read_vcr(path)

    assert str(info.value) == f"{path}: {message}"


def _cassette(tmp_path: Path) -> dict[str, Any]:
    write_vcr(
        [make_exchange(url=f"https://api.example/{i}") for i in range(3)], tmp_path / "v.json"
    )
    document: dict[str, Any] = json.loads((tmp_path / "v.json").read_text())
    return document


@pytest.mark.parametrize("serializer", ["yaml", "json"])
def test_vcr_huge_integer_names_the_interaction(tmp_path: Path, serializer: str) -> None:
    document = _cassette(tmp_path)
    marker = 123456789
    document["interactions"][1]["response"]["status"]["code"] = marker
    text = yaml.safe_dump(document) if serializer == "yaml" else json.dumps(document)
    path = tmp_path / f"bad.{serializer}"
    path.write_text(text.replace(str(marker), "9" * 5000))

    with bounded(seconds=5), pytest.warns(SkippedEntryWarning) as caught:
        kept = read_vcr(path)

    assert _skipped(caught) == [
        f"{path}, entry 1, field 'response.status.code': has 5000 digits: numbers of more "
        "than 40 are not read (entry skipped)"
    ]
    assert [e.url for e in kept] == ["https://api.example/0", "https://api.example/2"]


def test_vcr_huge_version_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: " + "9" * 5000 + "\ninteractions: []\n")

    with pytest.raises(tl.errors.InteropError) as info:
        read_vcr(path)

    assert str(info.value) == (
        f"{path}, field 'version': has 5000 digits: numbers of more than 40 are not read"
    )


@pytest.mark.parametrize(
    ("key", "value", "field", "message"),
    [
        (
            "uri",
            "https://api.example/\ud800x",
            "request.uri",
            "is not valid Unicode text (surrogates not allowed at 20): "
            "'https://api.example/\\ud800x'",
        ),
        (
            "uri",
            "https://api.example:70000/1",
            "request.uri",
            "has a port outside 0-65535: 'https://api.example:70000/1'",
        ),
        (
            "method",
            "G@T",
            "request.method",
            "cannot store this exchange: method = 'G@T': must be an HTTP token of 1-64 characters",
        ),
    ],
)
def test_vcr_interaction_no_store_can_hold_is_skipped_and_named(
    tmp_path: Path, key: str, value: str, field: str, message: str
) -> None:
    document = _cassette(tmp_path)
    document["interactions"][1]["request"][key] = value
    path = _write(tmp_path / "bad.json", document)
    where = f"{path}, entry 1, field {field!r}: {message}"

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_vcr(path)

    assert _skipped(caught) == [f"{where} (entry skipped)"]
    assert [e.url for e in kept] == ["https://api.example/0", "https://api.example/2"]
    with pytest.raises(tl.errors.InteropError) as info:
        read_vcr(path, strict=True)
    assert str(info.value) == where


# -- http4k trees ---------------------------------------------------------------------------------
REQUEST = b"GET http://a.example/%d HTTP/1.1\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _tree(tmp_path: Path, names: list[str]) -> Path:
    root = tmp_path / "store"
    for i, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "request.txt").write_bytes(REQUEST % i)
        (folder / "response.txt").write_bytes(RESPONSE)
    return root


def test_http4k_symlinked_message_file_is_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"GET http://a.example/secret HTTP/1.1\r\n\r\n\r\nTOKEN=hunter2")
    root = _tree(tmp_path, ["0", "1", "2"])
    (root / "1" / "request.txt").unlink()
    (root / "1" / "request.txt").symlink_to(secret)
    message = (
        f"{root / '1' / 'request.txt'}, entry 1: "
        "is a symbolic link: read_http4k never follows links"
    )

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root)

    assert _skipped(caught) == [f"{message} (entry skipped)"]
    assert [e.url for e in kept] == ["http://a.example/0", "http://a.example/2"]
    assert not any(b"hunter2" in e.request_body for e in kept)
    with pytest.raises(tl.errors.InteropError) as info:
        read_http4k(root, strict=True)
    assert str(info.value) == message


def test_http4k_symlinked_folder_out_of_the_tree_is_not_entered(tmp_path: Path) -> None:
    outside = _tree(tmp_path / "elsewhere", ["private"])
    root = _tree(tmp_path, ["0"])
    (root / "linked").symlink_to(outside)
    message = f"{root / 'linked'}: is a symbolic link: read_http4k never follows links"

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root)

    assert _skipped(caught) == [f"{message} (skipped)"]
    assert [e.url for e in kept] == ["http://a.example/0"]
    with pytest.raises(tl.errors.InteropError) as info:
        read_http4k(root, strict=True)
    assert str(info.value) == message


def test_http4k_folder_names_outside_the_grammar_are_not_entered(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["0", "bad name", "caf\u00e9"])

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root)

    problem = "is not an http4k folder name (URL path characters, 1-255 bytes) (skipped)"
    assert sorted(_skipped(caught)) == sorted(
        f"{root / name}: {problem}" for name in ("bad name", "caf\u00e9")
    )
    assert [e.url for e in kept] == ["http://a.example/0"]


def test_http4k_unreadable_folder_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path, ["0", "locked/1"])
    real = http4k_module._list_folder

    def list_folder(root_fd: int, parts: tuple[str, ...]) -> Any:
        if parts == ("locked",):
            raise PermissionError(13, "Permission denied")
        return real(root_fd, parts)

    monkeypatch.setattr(http4k_module, "_list_folder", list_folder)

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root)

    assert _skipped(caught) == [f"{root / 'locked'}: cannot be read: Permission denied (skipped)"]
    assert {w.filename for w in caught} == {__file__}
    assert [e.url for e in kept] == ["http://a.example/0"]


def test_http4k_tree_deeper_than_the_limit_is_not_entered(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["0", "/".join(["d"] * 70)])

    with bounded(seconds=5), pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root)

    deepest = root.joinpath(*["d"] * 65)
    assert _skipped(caught) == [f"{deepest}: is more than 64 folders deep (skipped)"]
    assert [e.url for e in kept] == ["http://a.example/0"]


def test_http4k_paths_longer_than_the_system_allows_are_read(tmp_path: Path) -> None:
    # 20 folders of 250 bytes: a path of over 5000 bytes, past PATH_MAX. The exchange used to
    # vanish without a word (os.walk swallowed "File name too long").
    root = tmp_path / "store"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    names = [f"{i:02d}" + "x" * 248 for i in range(20)]
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        for file, data in (("request.txt", REQUEST % 7), ("response.txt", RESPONSE)):
            out = os.open(file, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, data)
            os.close(out)
    finally:
        os.close(fd)

    [exchange] = read_http4k(root, strict=True)

    assert (exchange.url, exchange.response_body) == ("http://a.example/7", b"ok")


def test_http4k_fifo_message_file_is_refused_without_blocking(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["0", "1"])
    (root / "1" / "response.txt").unlink()
    os.mkfifo(root / "1" / "response.txt")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            read_http4k(root, strict=True)
        except BaseException as exc:
            outcome.append(exc)

    # A blocking open() of the FIFO would hang: run it on a thread the test can abandon.
    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(5)

    assert not reader.is_alive()
    [error] = outcome
    assert type(error) is tl.errors.InteropError
    assert str(error) == f"{root / '1' / 'response.txt'}, entry 1: is not a regular file"


def test_http4k_huge_status_code_is_named(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["0", "1"])
    (root / "1" / "response.txt").write_bytes(b"HTTP/1.1 " + b"9" * 5000 + b" OK\r\n\r\n\r\n")

    with pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root)

    [message] = _skipped(caught)
    assert message.startswith(
        f"{root / '1' / 'response.txt'}, entry 1, field 'status line': "
        f"is not an HTTP status code: {'9' * 60!r}... (5000 long)"
    )
    assert [e.url for e in kept] == ["http://a.example/0"]


def test_http4k_body_bomb_stops_at_max_bytes(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["0", "1"])
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(compressor.compress(b"\0" * MiB) for _ in range(256)) + compressor.flush()
    (root / "1" / "response.txt").write_bytes(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + bomb
    )
    assert inspect.signature(read_http4k).parameters["max_bytes"].default == 1 << 30

    with bounded(seconds=5, peak_mb=40), pytest.warns(SkippedEntryWarning) as caught:
        kept = read_http4k(root, max_bytes=8 * MiB)

    assert _skipped(caught) == [
        f"{root / '1' / 'response.txt'}, entry 1, field 'body': "
        f"the body decodes to more than max_bytes={8 * MiB} (entry skipped)"
    ]
    assert [e.url for e in kept] == ["http://a.example/0"]


def test_http4k_message_file_over_max_bytes_is_named(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["0", "1"])
    (root / "1" / "response.txt").write_bytes(RESPONSE + b"x" * 1000)

    with pytest.raises(tl.errors.InteropError) as info:
        read_http4k(root, strict=True, max_bytes=500)

    assert str(info.value) == (
        f"{root / '1' / 'response.txt'}, entry 1: is larger than max_bytes=500"
    )


def test_write_http4k_refuses_a_path_segment_no_folder_can_hold(tmp_path: Path) -> None:
    long_segment = "a" * 300
    exchanges = [make_exchange(), make_exchange(url=f"https://api.example/{long_segment}/x")]

    with pytest.raises(tl.errors.InteropError) as info:
        write_http4k(exchanges, tmp_path / "out", layout="tree")

    assert str(info.value) == (
        f"{tmp_path / 'out'}, entry 1, field 'url': has a path segment of 300 bytes: "
        "a folder name holds at most 255"
    )
    assert os.listdir(tmp_path) == []


def test_write_http4k_tree_names_stay_inside_the_target(tmp_path: Path) -> None:
    urls = [
        "https://api.example/../../escape",
        "https://api.example/%2e%2e/%2E%2E/x",
        "https://api.example/a\\b",
        "https://api.example/request.txt/x",
        "https://api.example/" + "/".join(["d"] * 10),
    ]
    exchanges = [make_exchange(url=url) for url in urls]
    target = tmp_path / "out"

    assert write_http4k(exchanges, target, layout="tree") == len(urls)

    assert os.listdir(tmp_path) == ["out"]
    folders = sorted(str(Path(d).relative_to(target)) for d, _, files in os.walk(target) if files)
    assert [f.rsplit("/", 1)[0] for f in folders] == [
        "%2e%2e/%2E%2E/x",
        "a%5Cb",
        "d/d/d/d/d/d/d/d/d/d",
        "escape",
        "request%2Etxt/x",
    ]
    assert sorted(e.url for e in read_http4k(target, strict=True)) == sorted(
        e.url for e in exchanges
    )


@pytest.mark.parametrize("writer", ["har", "vcr"])
def test_writers_replace_a_symlinked_target_never_write_through_it(
    tmp_path: Path, writer: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    target = tmp_path / "out" / f"capture.{'har' if writer == 'har' else 'yaml'}"
    target.parent.mkdir()
    target.symlink_to(outside)
    write = write_har if writer == "har" else write_vcr

    assert write([make_exchange()], target, overwrite=True) == 1

    assert outside.read_text() == "keep me"
    assert not target.is_symlink()
    assert sorted(os.listdir(target.parent)) == [target.name]


def test_write_http4k_replaces_a_symlinked_target_folder_never_writes_through_it(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep me")
    target = tmp_path / "out"
    target.symlink_to(outside)

    assert write_http4k([make_exchange()], target, overwrite=True) == 1

    assert os.listdir(outside) == ["keep"]
    assert target.is_dir() and not target.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["out", "outside"]


def test_every_reader_skips_by_default_and_takes_strict() -> None:
    for reader in (read_har, read_vcr, read_http4k):
        assert inspect.signature(reader).parameters["strict"].default is False


# -- writers: lossless for what a store holds, refusing what it cannot ------------------------
def test_har_keeps_bodies_whose_charset_text_would_not_give_the_same_bytes(tmp_path):
    from traffic_lab.interop import read_har, write_har

    ex = tl.Exchange(
        "POST",
        "https://api.example/items",
        request_headers=[(b"Content-Type", b"text/plain; charset=utf-16")],
        request_body=b"ab",  # no byte-order mark: as UTF-16 text it would come back with one
        status_code=200,
        response_headers=[(b"Content-Type", b"text/plain; charset=utf-16"), (b"X", b"y")],
        response_body=b"cd",
    )
    path = tmp_path / "x.har"
    write_har([ex], path)
    entry = json.loads(path.read_text())["log"]["entries"][0]
    assert entry["request"]["postData"]["encoding"] == "base64"
    assert entry["response"]["content"]["encoding"] == "base64"
    [back] = read_har(path)
    assert (back.request_body, back.response_body) == (b"ab", b"cd")


def test_har_keeps_a_content_length_that_does_not_say_the_body_length(tmp_path):
    from traffic_lab.interop import read_har, write_har

    head = tl.Exchange(
        "HEAD",
        "https://api.example/file",
        status_code=200,
        response_headers=[(b"Content-Length", b"1234")],
    )
    odd = tl.Exchange(
        "GET", "https://api.example/x", status_code=200,
        response_headers=[(b"Content-Length", b"gzip")], response_body=b"{}",
    )  # fmt: skip
    path = tmp_path / "x.har"
    write_har([head, odd], path)
    back = read_har(path)
    assert [b.response_headers for b in back] == [head.response_headers, odd.response_headers]
    assert [b.response_body for b in back] == [b"", b"{}"]


@pytest.mark.parametrize("writer", ["har", "vcr", "http4k"])
def test_writers_refuse_what_no_store_can_hold_and_write_nothing(tmp_path, writer):
    from traffic_lab import interop

    good = tl.Exchange("GET", "https://api.example/ok", status_code=200)
    bad = good.replace(status_code=0)
    target = tmp_path / (
        "out" if writer == "http4k" else f"out.{'yaml' if writer == 'vcr' else writer}"
    )
    write = getattr(interop, f"write_{writer}")
    with pytest.raises(InvalidExchangeError, match="status_code = 0: must be 100-999"):
        write([good, bad], target)
    assert list(tmp_path.iterdir()) == []
