"""VCR.py cassettes: recorded by VCR.py itself against the loopback server, read exactly; written
by us and replayed by VCR.py itself; invalid cassettes say where."""

from __future__ import annotations

import doctest
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
import yaml

import traffic_lab as tl
from traffic_lab.interop import read_vcr, write_vcr
from traffic_lab.interop import vcr as vcr_module
from traffic_lab.testing import LoopbackServer, make_exchange, sample_json

UA = b"python-httpx/0.28.1"
# What httpx asks for depends on the decoders installed (zstd with zstandard).
with httpx.Client() as _client:
    ACCEPT_ENCODING = _client.headers["accept-encoding"].encode()


def _payload(size: int) -> bytes:
    return json.dumps(sample_json(size)).encode()


def _record(server: LoopbackServer, path: Path, **options: Any) -> dict[str, httpx.Response]:
    """Real traffic through an httpx client, recorded by VCR.py into ``path``."""
    live: dict[str, httpx.Response] = {}
    with vcr.use_cassette(str(path), **options), httpx.Client(base_url=server.url) as client:
        live["gzip"] = client.get("/gzip?size=300")
        live["bytes"] = client.get("/bytes?n=64&seed=7")
        live["headers"] = client.get("/headers")
        live["reason"] = client.get("/reason")
        live["missing"] = client.get("/status/404")
        live["upload"] = client.post(
            "/echo", content=b"\x00\xffbin", headers={"Content-Type": "application/octet-stream"}
        )
        live["json"] = client.post("/echo?x=1", json={"a": 1})
        live["redirect"] = client.get("/redirect/1")
    return live


def _mtime(path: Path) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=os.stat(path).st_mtime_ns // 1000
    )


def _host(server: LoopbackServer) -> bytes:
    return server.url.removeprefix("http://").encode()


def test_yaml_cassette_recorded_by_vcrpy(server: LoopbackServer, tmp_path: Path) -> None:
    path = tmp_path / "recorded.yaml"
    live = _record(server, path)

    exchanges = read_vcr(path)

    gz, binary, headers, reason, missing, upload, posted, redirect = exchanges
    date = live["gzip"].headers["date"].encode()
    software = live["gzip"].headers["server"].encode()
    assert [(e.method, e.url) for e in exchanges] == [
        ("GET", server.url + "/gzip?size=300"),
        ("GET", server.url + "/bytes?n=64&seed=7"),
        ("GET", server.url + "/headers"),
        ("GET", server.url + "/reason"),
        ("GET", server.url + "/status/404"),
        ("POST", server.url + "/echo"),
        ("POST", server.url + "/echo?x=1"),
        ("GET", server.url + "/redirect/1"),
    ]
    # VCR.py 9 stores the wire body: still gzip, with its content-encoding header. Names are
    # lower-case and (YAML) sorted.
    assert gz.response_body == gzip.compress(_payload(300), mtime=0)
    assert gz.response_headers == (
        (b"content-encoding", b"gzip"),
        (b"content-length", b"161"),
        (b"content-type", b"application/json"),
        (b"date", date),
        (b"server", software),
    )
    assert gz.response is not None
    assert gz.response.content == live["gzip"].content == _payload(300)
    assert gz.request_headers == (
        (b"accept", b"*/*"),
        (b"accept-encoding", ACCEPT_ENCODING),
        (b"connection", b"keep-alive"),
        (b"host", _host(server)),
        (b"user-agent", UA),
    )
    assert gz.request_body == b""
    assert binary.response_body == random.Random(7).randbytes(64)
    # Values of one name are grouped: the interleaving a, x, b, x is lost.
    assert headers.response_headers == (
        (b"content-length", b"3"),
        (b"content-type", b"text/plain"),
        (b"date", date),
        (b"server", software),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/"),
        (b"x-dup", b"first"),
        (b"x-dup", b"second"),
        (b"x-latin", b"caf\xe9"),
    )
    assert headers.response_body == b"dup"
    assert (reason.status_code, reason.reason_phrase, reason.response_body) == (
        299,
        "Custom Reason",
        b"ok",
    )
    assert (missing.status_code, missing.reason_phrase) == (404, "Not Found")
    assert missing.response_body == b'{"status": 404}'
    assert upload.request_body == b"\x00\xffbin"
    assert upload.request_headers == (
        (b"accept", b"*/*"),
        (b"accept-encoding", ACCEPT_ENCODING),
        (b"connection", b"keep-alive"),
        (b"content-length", b"5"),
        (b"content-type", b"application/octet-stream"),
        (b"cookie", b"a=1; b=2"),
        (b"host", _host(server)),
        (b"user-agent", UA),
    )
    assert posted.request_body == b'{"a":1}'
    assert posted.response is not None
    assert posted.response.json()["query"] == "x=1"
    assert redirect.status_code == 302
    assert redirect.response_headers[2] == (b"location", b"/json?size=64")
    assert redirect.response_body == b""
    base = _mtime(path)
    assert [e.started_at for e in exchanges] == [base + timedelta(microseconds=i) for i in range(8)]
    assert {e.elapsed for e in exchanges} == {timedelta(0)}
    assert {e.http_version for e in exchanges} == {"HTTP/1.1"}


def test_json_cassette_with_decoded_responses(server: LoopbackServer, tmp_path: Path) -> None:
    path = tmp_path / "recorded.json"
    with (
        vcr.use_cassette(str(path), serializer="json", decode_compressed_response=True),
        httpx.Client(base_url=server.url) as client,
    ):
        live = client.get("/gzip?size=300")
        client.get("/json?size=100")

    gz, plain = read_vcr(path)

    # decode_compressed_response=True stores the body decoded, drops content-encoding and
    # fixes content-length; JSON keeps the recorded order of names.
    payload = _payload(300)
    assert gz.response_body == payload == live.content
    assert gz.response_headers == (
        (b"server", live.headers["server"].encode()),
        (b"date", live.headers["date"].encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    )
    assert gz.request_headers[0] == (b"host", _host(server))
    assert plain.response_body == _payload(100)


def _replay(path: Path, exchanges: list[tl.Exchange], **options: Any) -> list[httpx.Response]:
    """Send each exchange's request through httpx with VCR.py replaying ``path``."""
    with vcr.use_cassette(str(path), record_mode="none", **options), httpx.Client() as client:
        return [
            client.request(e.method, e.url, content=e.request_body, headers=list(e.request_headers))
            for e in exchanges
        ]


def _made_exchanges() -> list[tl.Exchange]:
    doc = json.dumps({"name": "kettle"}).encode()
    odd_gzip = gzip.compress(doc, compresslevel=1, mtime=99)
    return [
        make_exchange(
            url="https://api.example/gz",
            response_headers=[("Content-Encoding", "gzip"), ("Content-Type", "application/json")],
            response_body=odd_gzip,
        ),
        make_exchange(
            "POST",
            "https://api.example/bin",
            request_body=b"\x00\x01\xff",
            response_headers=[("Content-Type", "application/octet-stream")],
            response_body=bytes(range(256)),
        ),
        make_exchange(
            url="https://api.example/headers",
            response_headers=[("X-Latin", b"caf\xe9"), ("X-Dup", "1"), ("X-Dup", "2")],
            response_body="ünïcødé ✓".encode(),
        ),
        tl.Exchange(
            "GET",
            "https://api.example/teapot",
            status_code=418,
            reason_phrase="I'm a teapot",
            response_body=b"short and stout",
        ),
    ]


def test_vcrpy_replays_a_yaml_cassette_we_wrote(server: LoopbackServer, tmp_path: Path) -> None:
    recorded = read_vcr(_record_once(server, tmp_path))
    exchanges = recorded + _made_exchanges()
    path = tmp_path / "ours.yaml"
    assert write_vcr(exchanges, path) == 12
    hits = len(server.hits)

    responses = _replay(path, exchanges)

    assert len(server.hits) == hits  # VCR.py answered everything; the server saw nothing
    for response, exchange in zip(responses, exchanges, strict=True):
        expected = exchange.response
        assert expected is not None
        assert response.status_code == exchange.status_code
        assert response.reason_phrase == expected.reason_phrase
        assert response.headers.raw == list(exchange.response_headers)
        assert response.content == expected.content
    assert responses[8].json() == {"name": "kettle"}
    assert responses[10].headers["x-latin"] == "café"


def _record_once(server: LoopbackServer, tmp_path: Path) -> Path:
    path = tmp_path / "recorded.yaml"
    _record(server, path)
    return path


def test_vcrpy_replays_a_json_cassette_we_wrote(tmp_path: Path) -> None:
    exchanges = [_made_exchanges()[0], _made_exchanges()[3]]
    path = tmp_path / "ours.json"
    write_vcr(exchanges, path, decode_compressed_response=True)

    responses = _replay(path, exchanges, serializer="json")

    assert [r.status_code for r in responses] == [200, 418]
    assert responses[0].json() == {"name": "kettle"}
    assert "content-encoding" not in responses[0].headers
    assert responses[0].headers["content-length"] == str(len(b'{"name": "kettle"}'))
    assert responses[1].text == "short and stout"
    assert responses[1].reason_phrase == "I'm a teapot"
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["interactions"][1] == {
        "request": {
            "method": "GET",
            "uri": "https://api.example/teapot",
            "body": "",
            "headers": {},
        },
        "response": {
            "status": {"code": 418, "message": "I'm a teapot"},
            "headers": {},
            "body": {"string": "short and stout"},
        },
    }


def test_round_trip(tmp_path: Path) -> None:
    exchanges = _made_exchanges()
    for name in ("ours.yaml", "ours.yml"):
        write_vcr(exchanges, tmp_path / name)
        again = read_vcr(tmp_path / name)

        for got, expected in zip(again, exchanges, strict=True):
            for part in (
                "method",
                "url",
                "request_headers",
                "request_body",
                "status_code",
                "reason_phrase",
                "response_headers",
                "response_body",
            ):
                assert (part, getattr(got, part)) == (part, getattr(expected, part))
    text = (tmp_path / "ours.yaml").read_text()
    # Bytes go in as !!binary, non-ASCII header values too (VCR.py can replay those).
    assert text.count("!!binary") == 4
    assert '"\\xFCn\\xEFc\\xF8d\\xE9 \\u2713"' in text  # escaped, as VCR.py writes it


def test_yaml_text_that_looks_like_line_breaks_survives(tmp_path: Path) -> None:
    body = "x\x85y\u2028z\r\n\tend \x00".encode()
    exchange = make_exchange(request_body=b"\r", response_body=body)
    write_vcr([exchange], tmp_path / "c.yaml")

    [again] = read_vcr(tmp_path / "c.yaml")

    assert (again.request_body, again.response_body) == (b"\r", body)


def test_write_grouping_loses_only_interleaving(tmp_path: Path) -> None:
    exchange = make_exchange(
        response_headers=[("A", "1"), ("B", "2"), ("a", "3")], response_body=b"x"
    )
    write_vcr([exchange], tmp_path / "c.json")

    [again] = read_vcr(tmp_path / "c.json")

    assert again.response_headers == (
        (b"A", b"1"),
        (b"A", b"3"),
        (b"B", b"2"),
        (b"Content-Length", b"1"),
    )


@pytest.mark.parametrize(
    ("exchange", "name", "field", "message"),
    [
        (
            _made_exchanges()[1],
            "c.json",
            "request_body",
            "a JSON cassette cannot hold a binary body; use YAML",
        ),
        (
            make_exchange(response_headers=[("X", "1")], response_body=b"\xff"),
            "c.json",
            "response_body",
            "a JSON cassette cannot hold a binary body; use YAML (or "
            "decode_compressed_response=True)",
        ),
        (
            make_exchange(status_code=None),
            "c.yaml",
            "status_code",
            "a transport error has no response for VCR.py to replay",
        ),
        (
            make_exchange(truncated=True),
            "c.yaml",
            "truncated",
            "a truncated response cannot be replayed",
        ),
        (
            make_exchange(response_headers=[("Content-Encoding", "gzip")], response_body=b"nope"),
            "c.yaml",
            "response_body",
            "the body does not decode as gzip",
        ),
    ],
)
def test_write_errors(
    tmp_path: Path, exchange: tl.Exchange, name: str, field: str, message: str
) -> None:
    path = tmp_path / name

    with pytest.raises(tl.errors.InteropError) as info:
        write_vcr([make_exchange(), exchange], path, decode_compressed_response=True)

    assert str(info.value) == f"{path}, entry 1, field {field!r}: {message}"
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_writer_never_overwrites_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("keep")

    with pytest.raises(FileExistsError):
        write_vcr([make_exchange()], path)
    assert path.read_text() == "keep"
    write_vcr([make_exchange()], path, overwrite=True)
    assert [e.status_code for e in read_vcr(path)] == [200]
    assert os.listdir(tmp_path) == ["c.yaml"]


def test_serializer_choice(tmp_path: Path) -> None:
    write_vcr([make_exchange()], tmp_path / "cassette", serializer="json")
    write_vcr([make_exchange()], tmp_path / "other")

    assert (tmp_path / "cassette").read_text().startswith("{")
    assert (tmp_path / "other").read_text().startswith("version: 1\n")
    assert [e.url for e in read_vcr(tmp_path / "cassette")] == ["https://api.example.test/items/1"]
    assert [e.url for e in read_vcr(tmp_path / "other")] == ["https://api.example.test/items/1"]
    with pytest.raises(ValueError, match="serializer must be 'yaml' or 'json', not 'toml'"):
        read_vcr(tmp_path / "other", serializer="toml")  # type: ignore[arg-type]


def test_older_httpx_stub_layout(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    document = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "GET",
                    "uri": "https://a.example/x",
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status_code": 200,
                    "http_version": "HTTP/1.1",
                    "headers": {"content-type": ["text/plain"]},
                    "content": "hello",
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(document))

    [exchange] = read_vcr(path)

    assert (exchange.status_code, exchange.reason_phrase) == (200, "")
    assert exchange.response_headers == ((b"content-type", b"text/plain"),)
    assert exchange.response_body == b"hello"


# -- invalid cassettes ----------------------------------------------------------------------------
def _valid(tmp_path: Path) -> dict[str, Any]:
    write_vcr([make_exchange(), make_exchange(json={"a": 1})], tmp_path / "valid.yaml")
    document: dict[str, Any] = yaml.safe_load((tmp_path / "valid.yaml").read_text())
    return document


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("request.method", None, "request.method", "must be a string, not null"),
        ("request.uri", "/relative", "request.uri", "is not an absolute URL: '/relative'"),
        ("request.body", 5, "request.body", "must be a string or bytes or null, not int 5"),
        ("request.headers", {"a": [1]}, "request.headers.a[0]", "must be a string, not int"),
        (
            "request.headers",
            {"a": {"b": 1}},
            "request.headers.a",
            "must be a list of strings, not dict",
        ),
        ("response.status", None, "response.status", "must be an object, not null"),
        (
            "response.status.code",
            "200",
            "response.status.code",
            "must be an integer, not str '200'",
        ),
        ("response.status.code", 7, "response.status.code", "is not an HTTP status code: 7"),
        ("response.body", "text", "response.body", "must be an object, not str 'text'"),
        (
            "response.body.string",
            5,
            "response.body.string",
            "must be a string or bytes or null, not int 5",
        ),
        ("response", None, "response", "must be an object, not null"),
    ],
)
def test_invalid_interaction_names_file_entry_and_field(
    tmp_path: Path, path: str, value: Any, field: str, message: str
) -> None:
    document = _valid(tmp_path)
    *parents, last = path.split(".")
    node = document["interactions"][1]
    for part in parents:
        node = node[part]
    node[last] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))

    with pytest.raises(tl.errors.InteropError) as info:
        read_vcr(bad, strict=True)

    assert (info.value.path, info.value.index, info.value.field) == (str(bad), 1, field)
    assert str(info.value) == f"{bad}, entry 1, field {field!r}: {message}"
    # By default the bad interaction is skipped, with a warning saying the same.
    with pytest.warns(tl.errors.SkippedEntryWarning) as caught:
        kept = read_vcr(bad)
    assert [str(w.message) for w in caught] == [f"{info.value} (entry skipped)"]
    assert [(e.method, e.url, e.response_body) for e in kept] == [
        (e.method, e.url, e.response_body) for e in read_vcr(tmp_path / "valid.yaml")[:1]
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "c.yaml",
            "interactions: [\n",
            ": invalid YAML at line 2 column 1: expected the node content, but found "
            "'<stream end>'",
        ),
        (
            "c.json",
            '{"version": 1,',
            ": invalid JSON at line 1 column 15: Expecting property name enclosed in double quotes",
        ),
        (
            "c.yaml",
            "- request: {}\n",
            ": a cassette from VCR.py before 1.0 (a bare list); migrate it with "
            "python -m vcr.migration",
        ),
        ("c.yaml", "just text\n", ": a cassette is a mapping, not str"),
        ("c.yaml", "", ": is empty"),
        (
            "c.yaml",
            "version: 2\ninteractions: []\n",
            ", field 'version': unsupported cassette format version 2",
        ),
        ("c.yaml", "version: 1\n", ", field 'interactions': is missing"),
        (
            "c.yaml",
            "version: 1\ninteractions: [5]\n",
            ", entry 0: an interaction is a mapping, not int",
        ),
    ],
)
def test_invalid_cassette(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)

    with pytest.raises(tl.errors.InteropError) as info:
        read_vcr(path, strict=True)

    assert str(info.value) == f"{path}{message}"


def test_unsafe_yaml_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"version: 1\ninteractions:\n- !!python/object/apply:os.system\n  - touch {marker}\n"
    )

    with pytest.raises(tl.errors.InteropError, match="could not determine a constructor"):
        read_vcr(path)
    assert not marker.exists()


def test_yaml_needs_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_vcr([make_exchange()], tmp_path / "c.yaml")
    write_vcr([make_exchange()], tmp_path / "c.json")
    monkeypatch.setitem(sys.modules, "yaml", None)

    with pytest.raises(ImportError, match=r"pip install 'traffic_lab\[interop\]'"):
        read_vcr(tmp_path / "c.yaml")
    with pytest.raises(ImportError, match=r"pip install 'traffic_lab\[interop\]'"):
        write_vcr([make_exchange()], tmp_path / "d.yaml")
    assert [e.status_code for e in read_vcr(tmp_path / "c.json")] == [200]


def test_importing_interop_does_not_import_yaml() -> None:
    code = "import sys, traffic_lab.interop; print('yaml' in sys.modules, 'vcr' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout == "False False\n"


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = doctest.testmod(vcr_module, raise_on_error=True)
    assert result.attempted > 0
