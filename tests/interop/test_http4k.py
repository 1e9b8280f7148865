"""http4k DiskStream / DiskTree folders: the committed samples in http4k's layout, byte-exact
writing, round trips with real traffic, and errors that name the file."""

from __future__ import annotations

import base64
import doctest
import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.interop import http4k as http4k_module
from traffic_lab.interop import read_http4k, write_http4k
from traffic_lab.testing import LoopbackServer, make_exchange

T0 = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def _files(root: Path, name: str) -> list[Path]:
    return sorted(root.rglob(name), key=lambda p: p.relative_to(root).parts)


def _stamp(root: Path) -> list[datetime]:
    """Give each request.txt a known modification time, in folder order; return the times."""
    times = []
    for i, request in enumerate(_files(root, "request.txt")):
        moment = T0 + timedelta(seconds=i, microseconds=i)
        ns = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
        os.utime(request, ns=(ns, ns))
        times.append(moment)
    return times


@pytest.fixture
def disk_stream(data_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "disk_stream"
    shutil.copytree(data_dir / "http4k" / "disk_stream", root)
    return root


@pytest.fixture
def disk_tree(data_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "disk_tree"
    shutil.copytree(data_dir / "http4k" / "disk_tree", root)
    return root


def test_disk_stream_sample(disk_stream: Path) -> None:
    times = _stamp(disk_stream)

    exchanges = read_http4k(disk_stream)

    base = "http://127.0.0.1:9000"
    expected = [
        tl.Exchange(
            "GET",
            base + "/users?page=2",
            request_headers=[(b"Accept", b"application/json"), (b"User-Agent", b"http4k")],
            status_code=200,
            reason_phrase="OK",
            response_headers=[(b"Content-Type", b"application/json"), (b"Content-Length", b"15")],
            response_body=b'{"users":[1,2]}',
            started_at=times[0],
        ),
        tl.Exchange(
            "POST",
            base + "/users",
            request_headers=[(b"Content-Type", b"application/json; charset=utf-8")],
            request_body='{"name":"Zoë"}'.encode(),
            status_code=201,
            reason_phrase="Created",
            response_headers=[
                (b"Location", b"/users/3"),
                (b"Set-Cookie", b"a=1"),
                (b"X-Trace", b"t1"),
                (b"Set-Cookie", b"b=2"),
            ],
            started_at=times[1],
        ),
        # No headers: http4k writes an extra CRLF before the body, which is not body.
        tl.Exchange(
            "GET",
            base + "/missing",
            status_code=404,
            reason_phrase="Not Found",
            response_body=b"not here",
            started_at=times[2],
        ),
        # A null header value is written (and read) as "null".
        tl.Exchange(
            "DELETE",
            base + "/users/3",
            request_headers=[(b"X-Request-Id", b"null")],
            status_code=204,
            reason_phrase="No Content",
            response_headers=[(b"X-Deleted", b"users/3")],
            started_at=times[3],
        ),
        # Bodies are kept byte for byte, CRLFs included (http4k's own parser drops them).
        tl.Exchange(
            "PUT",
            base + "/notes/1",
            request_headers=[(b"Content-Type", b"text/plain")],
            request_body=b"line one\r\nline two\r\n",
            status_code=200,
            reason_phrase="OK",
            response_headers=[(b"Content-Type", b"text/plain")],
            response_body=b"saved\r\n",
            started_at=times[4],
        ),
    ]
    assert len(exchanges) == 5
    for got, want in zip(exchanges, expected, strict=True):
        for name in tl.Exchange._FIELDS:
            assert (name, getattr(got, name)) == (name, getattr(want, name))


def test_disk_tree_sample(disk_tree: Path) -> None:
    times = _stamp(disk_tree)

    exchanges = read_http4k(disk_tree)

    assert [(e.method, e.url, e.status_code) for e in exchanges] == [
        ("GET", "http://shop.example:8080/", 302),
        ("GET", "http://shop.example:8080/api/items/1", 200),
        ("GET", "http://shop.example:8080/api/items/2", 200),
        ("POST", "http://shop.example:8080/api/orders", 202),
    ]
    root, one, _two, order = exchanges
    assert root.response_headers == ((b"Location", b"/api/items"),)
    assert one.request_headers == ((b"Host", b"shop.example:8080"), (b"Accept", b"*/*"))
    assert one.response_body == b'{"id":1,"name":"kettle"}'
    assert (order.http_version, order.reason_phrase) == ("HTTP/2", "Accepted")
    assert order.request_body == b'{"item":1}'
    assert order.response_body == b'{"order":"o-1"}'
    assert [e.started_at for e in exchanges] == times
    assert {e.elapsed for e in exchanges} == {timedelta(0)}
    assert [e.url for e in read_http4k(disk_tree, base_url="https://shop.example/")] == [
        "https://shop.example/",
        "https://shop.example/api/items/1",
        "https://shop.example/api/items/2",
        "https://shop.example/api/orders",
    ]


def test_written_messages_are_byte_identical_to_http4k(disk_stream: Path, tmp_path: Path) -> None:
    exchanges = read_http4k(disk_stream)

    assert write_http4k(exchanges, tmp_path / "stream") == 5
    assert write_http4k(exchanges, tmp_path / "tree", layout="tree") == 5

    originals = [
        (r.read_bytes(), (r.parent / "response.txt").read_bytes())
        for r in _files(disk_stream, "request.txt")
    ]
    written = [
        (r.read_bytes(), (r.parent / "response.txt").read_bytes())
        for r in _files(tmp_path / "stream", "request.txt")
    ]
    assert written == originals
    # DiskTree: <request path>/<base64 SHA-1 of request.txt, "/" as "_">, as http4k's toFolder.
    tree = tmp_path / "tree"
    folders = sorted(str(r.parent.relative_to(tree)) for r in tree.rglob("request.txt"))
    expected = []
    for request, _response in originals:
        path = request.split(b" ")[1].split(b"?")[0].decode().removeprefix("http://127.0.0.1:9000/")
        digest = base64.b64encode(hashlib.sha1(request).digest()).decode().replace("/", "_")
        expected.append(f"{path}/{digest}")
    assert folders == sorted(expected)
    by_request = sorted(exchanges, key=lambda e: (e.url, e.method))
    assert sorted(read_http4k(tree), key=lambda e: (e.url, e.method)) == by_request


def test_written_tree_matches_the_sample_tree(disk_tree: Path, tmp_path: Path) -> None:
    # The sample's requests have only a path as target; rebuilt with absolute URLs they would
    # hash differently, so compare folder names computed from the sample's own request.txt.
    for request in _files(disk_tree, "request.txt"):
        text = request.read_bytes()
        digest = base64.b64encode(hashlib.sha1(text).digest()).decode().replace("/", "_")
        assert request.parent.name == digest


def test_stream_round_trip_keeps_order_and_start_times(tmp_path: Path) -> None:
    exchanges = [
        make_exchange(
            url="https://api.example/gz",
            response_headers=[("Content-Encoding", "gzip"), ("Content-Type", "application/json")],
            response_body=gzip.compress(b'{"a": 1}', compresslevel=1, mtime=5),
            started_at=T0,
        ),
        make_exchange(
            "POST",
            "https://api.example/bin",
            request_headers=[("Content-Type", "application/octet-stream")],
            request_body=bytes(range(256)),
            response_body=b"\xff\x00\xfe",
            started_at=T0,
        ),
        make_exchange(url="https://api.example/early", started_at=T0 - timedelta(days=1)),
        tl.Exchange(
            "GET",
            "https://api.example/teapot",
            status_code=418,
            reason_phrase="",
            http_version="HTTP/2",
            started_at=T0,
        ),
    ]

    write_http4k(exchanges, tmp_path / "stream")
    again = read_http4k(tmp_path / "stream")

    names = sorted(os.listdir(tmp_path / "stream"))
    assert [len(n) for n in names] == [55] * 4
    assert all(n[:19].isdigit() for n in names)
    assert [e.url for e in again] == [e.url for e in exchanges]
    for got, want in zip(again, exchanges, strict=True):
        assert got == want.replace(elapsed=timedelta(0))


def test_real_traffic_round_trip(server: LoopbackServer, tmp_path: Path) -> None:
    exchanges = []
    with httpx.Client(base_url=server.url) as client:
        for i, url in enumerate(["/json?size=100", "/gzip?size=200", "/bytes?n=32", "/headers"]):
            response = client.get(url)
            exchanges.append(
                tl.Exchange.from_httpx(
                    response.request, response, started_at=T0 + timedelta(seconds=i)
                )
            )
        response = client.post("/echo", content=b"payload")
        exchanges.append(tl.Exchange.from_httpx(response.request, response, started_at=T0))

    write_http4k(exchanges, tmp_path / "stream")
    write_http4k(exchanges, tmp_path / "tree", layout="tree")

    again = read_http4k(tmp_path / "stream")
    assert again == [e.replace(elapsed=timedelta(0)) for e in exchanges]
    assert again[3].response_headers[-2:] == ((b"X-Latin", b"caf\xe9"), (b"Content-Length", b"3"))
    tree = read_http4k(tmp_path / "tree")
    assert sorted(tree, key=lambda e: e.url) == sorted(again, key=lambda e: e.url)
    store = tl.MemoryCache()
    for exchange in tree:
        store.put(exchange)
    served = store.get(httpx.Request("GET", server.url + "/gzip?size=200"))
    assert served is not None
    assert served.read() == exchanges[1].response_body


def test_tree_keeps_the_last_of_repeated_requests(tmp_path: Path) -> None:
    first = make_exchange(json={"v": 1})
    second = make_exchange(json={"v": 2})

    assert write_http4k([first, second], tmp_path / "tree", layout="tree") == 1

    [kept] = read_http4k(tmp_path / "tree")
    assert kept.response is not None
    assert kept.response.json() == {"v": 2}


def test_stream_order_is_folder_name_order_as_in_http4k(tmp_path: Path) -> None:
    root = tmp_path / "stream"
    for name in ("9-b", "10-a", "100-c"):
        (root / name).mkdir(parents=True)
        (root / name / "request.txt").write_bytes(
            f"GET http://a.example/{name} HTTP/1.1\r\n\r\n\r\n".encode()
        )
        (root / name / "response.txt").write_bytes(b"HTTP/1.1 200 OK\r\n\r\n\r\n")
    (root / "README").write_text("not an exchange")

    assert [e.path for e in read_http4k(root)] == ["/10-a", "/100-c", "/9-b"]


def test_body_stored_decoded_under_content_encoding_is_encoded_again(tmp_path: Path) -> None:
    folder = tmp_path / "stream" / "1"
    folder.mkdir(parents=True)
    (folder / "request.txt").write_bytes(b"GET http://a.example/x HTTP/1.1\r\nA: 1\r\n\r\n")
    (folder / "response.txt").write_bytes(
        b'HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\n{"a": 1}'
    )

    [exchange] = read_http4k(tmp_path / "stream")

    assert exchange.response_body == gzip.compress(b'{"a": 1}', mtime=0)
    assert exchange.response_headers == (
        (b"Content-Encoding", b"gzip"),
        (b"Content-Length", str(len(exchange.response_body)).encode()),
    )
    assert exchange.response is not None
    assert exchange.response.json() == {"a": 1}


# -- errors ---------------------------------------------------------------------------------------
def _folder(tmp_path: Path, request: bytes | None, response: bytes | None) -> Path:
    root = tmp_path / "store"
    good = root / "0-good"
    good.mkdir(parents=True)
    (good / "request.txt").write_bytes(b"GET http://a.example/ HTTP/1.1\r\n\r\n\r\n")
    (good / "response.txt").write_bytes(b"HTTP/1.1 200 OK\r\n\r\n\r\n")
    bad = root / "1-bad"
    bad.mkdir()
    if request is not None:
        (bad / "request.txt").write_bytes(request)
    if response is not None:
        (bad / "response.txt").write_bytes(response)
    return root


OK_REQUEST = b"GET http://a.example/x HTTP/1.1\r\nAccept: */*\r\n\r\n"
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("request_text", "response_text", "file", "field", "message"),
    [
        (OK_REQUEST, None, "response.txt", None, "is missing: an exchange folder needs both files"),
        (None, OK_RESPONSE, "request.txt", None, "is missing: an exchange folder needs both files"),
        (b"", OK_RESPONSE, "request.txt", None, "is empty"),
        (
            b"GET /x\r\nHost: a\r\n\r\n",
            OK_RESPONSE,
            "request.txt",
            "request line",
            "must be 'METHOD target VERSION', not 'GET /x'",
        ),
        (
            b"GET http://a.example/ HTTP/1.1",
            OK_RESPONSE,
            "request.txt",
            "request line",
            "has no line end after the start line",
        ),
        (
            b"GET http://a.example/ HTTP/1.1\r\nBad header\r\n\r\n",
            OK_RESPONSE,
            "request.txt",
            "headers",
            "invalid header section: illegal header line: bytearray(b'Bad header')",
        ),
        (
            b"GET http://a.example/ HTTP/1.1\r\nA: 1\r\n",
            OK_RESPONSE,
            "request.txt",
            "headers",
            "the header section does not end with an empty line",
        ),
        (
            b"GET /x HTTP/1.1\r\nAccept: */*\r\n\r\n",
            OK_RESPONSE,
            "request.txt",
            "request line",
            "the target '/x' is only a path and there is no Host header; pass base_url=",
        ),
        (
            OK_REQUEST,
            b"HTTP/1.1 OK\r\n\r\n\r\n",
            "response.txt",
            "status line",
            "must be 'VERSION CODE REASON', not 'HTTP/1.1 OK'",
        ),
        (
            OK_REQUEST,
            b"HTTP/1.1 42 Odd\r\n\r\n\r\n",
            "response.txt",
            "status line",
            "is not an HTTP status code: 42",
        ),
        (
            OK_REQUEST,
            b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
            "response.txt",
            "headers",
            "invalid header section: bad Content-Length",
        ),
    ],
)
def test_invalid_message_names_file_entry_and_field(
    tmp_path: Path,
    request_text: bytes | None,
    response_text: bytes | None,
    file: str,
    field: str | None,
    message: str,
) -> None:
    root = _folder(tmp_path, request_text, response_text)

    with pytest.raises(tl.errors.InteropError) as info:
        read_http4k(root, strict=True)

    path = str(root / "1-bad" / file)
    assert (info.value.path, info.value.index, info.value.field) == (path, 1, field)
    where = f"{path}, entry 1" + (f", field {field!r}" if field else "")
    assert str(info.value) == f"{where}: {message}"
    # By default the bad exchange is skipped, with a warning saying the same.
    with pytest.warns(tl.errors.SkippedEntryWarning) as caught:
        kept = read_http4k(root)
    assert [str(w.message) for w in caught] == [f"{where}: {message} (entry skipped)"]
    assert [(e.url, e.status_code) for e in kept] == [("http://a.example/", 200)]


def test_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    with pytest.raises(tl.errors.InteropError, match="an http4k store is a folder, not a file"):
        read_http4k(tmp_path / "file")
    with pytest.raises(FileNotFoundError):
        read_http4k(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("exchange", "field", "message"),
    [
        (make_exchange(status_code=None), "status_code", "a transport error has no http4k form"),
        (make_exchange(truncated=True), "truncated", "a truncated response has no http4k form"),
    ],
)
def test_write_errors(tmp_path: Path, exchange: tl.Exchange, field: str, message: str) -> None:
    root = tmp_path / "out"

    with pytest.raises(tl.errors.InteropError) as info:
        write_http4k([make_exchange(), exchange], root)

    assert str(info.value) == f"{root}, entry 1, field {field!r}: {message}"
    assert os.listdir(tmp_path) == []


def test_writer_never_overwrites_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "out"
    write_http4k([make_exchange(url="https://a.example/old")], root)

    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        write_http4k([make_exchange(url="https://a.example/new")], root)
    assert [e.url for e in read_http4k(root)] == ["https://a.example/old"]

    write_http4k([make_exchange(url="https://a.example/new")], root, overwrite=True)
    assert [e.url for e in read_http4k(root)] == ["https://a.example/new"]
    assert os.listdir(tmp_path) == ["out"]
    with pytest.raises(ValueError, match="layout must be 'stream' or 'tree', not 'flat'"):
        write_http4k([], tmp_path / "x", layout="flat")  # type: ignore[arg-type]


def test_a_failing_source_leaves_nothing(tmp_path: Path) -> None:
    def exchanges() -> Iterator[tl.Exchange]:
        yield make_exchange()
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_http4k(exchanges(), tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = doctest.testmod(http4k_module, raise_on_error=True)
    assert result.attempted > 0
