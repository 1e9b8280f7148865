"""``import``, ``export``, ``compact`` and ``scan-secrets``, run as the console script."""

from __future__ import annotations

import json

import pytest

import traffic_lab as tl
from traffic_lab import interop
from traffic_lab.testing import make_exchange

from .conftest import T0, run, sample_exchanges, write_capture


def listing(capture):
    done = run("ls", capture, "--json", "--all")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


GITHUB = "ghp_" + "a1B2c3D4" * 4 + "e5F6"
SESSION = "Zq8vK2mX9pL4wR7tY1nB"


def with_secrets():
    """Exchanges holding credentials in headers, the query and JSON bodies."""
    return [
        make_exchange(
            url="https://api.example.test/me?api_key=sk_live_0123456789abcdefABCD&page=1",
            request_headers={"Authorization": f"token {GITHUB}", "Accept": "*/*"},
            json={"id": 1},
            started_at=T0,
        ),
        make_exchange(
            "POST",
            "https://api.example.test/login",
            request_headers={"Content-Type": "application/json"},
            request_body=b'{"user": "ada", "password": "hunter2"}',
            response_headers={"Set-Cookie": f"session={SESSION}; Path=/"},
            json={"token_type": "Bearer"},
            started_at=T0,
        ),
        make_exchange(url="https://api.example.test/public", json={"ok": True}, started_at=T0),
    ]


# -- import --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "writer", "text_only"),
    [
        ("session.har", interop.write_har, False),
        ("session.json", interop.write_har, False),
        ("cassette.yaml", interop.write_vcr, False),
        ("cassette.json", interop.write_vcr, True),  # JSON cassettes hold text bodies only
        ("http4k-tree", interop.write_http4k, False),
    ],
)
def test_import_each_format(tmp_path, name, writer, text_only):
    exchanges = [ex for ex in sample_exchanges() if ex.ok]
    if text_only:
        exchanges = [ex for ex in exchanges if b"json" in dict(ex.response_headers)[b"Content-Type"]
                     and b"Content-Encoding" not in dict(ex.response_headers)]  # fmt: skip
    source = tmp_path / name
    writer(exchanges, source)
    capture = tmp_path / "capture"
    done = run("import", source, capture)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"imported {len(exchanges)} exchanges from {source} into {capture}\n"
    rows = listing(capture)
    assert [(r["method"], r["url"], r["status"]) for r in rows] == [
        (ex.method, ex.url, ex.status_code) for ex in exchanges
    ]


def test_import_redacts_unless_told_not_to(tmp_path):
    har = tmp_path / "secrets.har"
    interop.write_har(with_secrets(), har)
    run("import", har, tmp_path / "clean", "--tag", "source=browser")
    run("import", har, tmp_path / "raw", "--no-redact")
    clean = list(tl.ParquetStream(tmp_path / "clean").exchanges())
    raw = list(tl.ParquetStream(tmp_path / "raw").exchanges())
    assert clean[0].url == "https://api.example.test/me?api_key=%5BREDACTED%5D&page=1"
    assert (b"Authorization", b"token [REDACTED]") in clean[0].request_headers
    assert json.loads(clean[1].request_body) == {"user": "ada", "password": "[REDACTED]"}
    assert dict(clean[0].tags) == {"source": "browser"}
    assert raw[0].url == "https://api.example.test/me?api_key=sk_live_0123456789abcdefABCD&page=1"
    assert (b"Authorization", f"token {GITHUB}".encode()) in raw[0].request_headers


def test_import_adds_to_an_existing_capture(tmp_path):
    capture = write_capture(tmp_path / "capture", sample_exchanges())
    har = tmp_path / "more.har"
    interop.write_har([make_exchange(url="https://api.example.test/more")], har)
    assert run("import", har, capture).returncode == 0
    assert len(listing(capture)) == 7


def test_import_bad_files_are_bad_input(tmp_path):
    broken = tmp_path / "broken.har"
    broken.write_text('{"log": {"version": "1.2", "entries": [{"request": 5}]}}')
    done = run("import", broken, tmp_path / "capture", "--strict")
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {broken}, entry 0")
    assert not (tmp_path / "capture").exists()

    missing = run("import", tmp_path / "nope.har", tmp_path / "capture")
    assert (missing.returncode, missing.stderr) == (
        2,
        f"Error: no such file or folder: {tmp_path / 'nope.har'}\n",
    )

    odd = tmp_path / "traffic.txt"
    odd.write_text("x")
    unknown = run("import", odd, tmp_path / "capture")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        f"Error: cannot tell the format of {odd} from its name; pass --format (har, vcr, http4k)\n",
    )
    assert run("import", odd, tmp_path / "capture", "--format", "zip").returncode == 2


def test_import_skips_a_bad_entry_names_it_and_keeps_the_others(tmp_path):
    entry = {
        "startedDateTime": "2026-01-01T12:00:00.000Z",
        "time": 12.5,
        "request": {"method": "GET", "url": "https://api.example/ok", "httpVersion": "HTTP/1.1",
                    "headers": [], "queryString": [], "cookies": [], "headersSize": -1,
                    "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [],
                     "cookies": [], "content": {"size": 2, "mimeType": "text/plain", "text": "ok"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 2},
        "cache": {}, "timings": {"send": 0, "wait": 12.5, "receive": 0},
    }  # fmt: skip
    bad = json.loads(json.dumps(entry))
    bad["request"]["url"] = "https://api.example:99999999999/bad"
    har = tmp_path / "mixed.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry, bad, entry]}}))
    done = run("import", har, tmp_path / "capture")
    assert done.returncode == 0, done.stderr
    assert f"{har}, entry 1, field 'request.url'" in done.stderr
    assert "port" in done.stderr
    assert f"imported 2 exchanges from {har}" in done.stderr
    listed = [
        json.loads(line)["url"]
        for line in run("ls", tmp_path / "capture", "--json").stdout.splitlines()
    ]
    assert listed == ["https://api.example/ok", "https://api.example/ok"]
    strict = run("import", har, tmp_path / "strict", "--strict")
    assert strict.returncode == 2
    assert strict.stderr.startswith(f"Error: {har}, entry 1, field 'request.url'")
    assert not (tmp_path / "strict").exists()


def test_import_bad_tag_is_a_usage_error(tmp_path):
    har = tmp_path / "s.har"
    interop.write_har([make_exchange()], har)
    done = run("import", har, tmp_path / "c", "--tag", "novalue")
    assert done.returncode == 2
    assert "expected KEY=VALUE, got 'novalue'" in done.stderr


# -- export --------------------------------------------------------------------------------------
def test_export_har_keeps_everything(sample, tmp_path):
    target = tmp_path / "out.har"
    done = run("export", sample, target)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"exported 6 exchanges to {target}\n"
    assert interop.read_har(target) == sample_exchanges()


@pytest.mark.parametrize(
    ("name", "reader", "kind"),
    [
        ("cassette.yaml", interop.read_vcr, "vcr"),
        ("http4k-stream", interop.read_http4k, "http4k"),
    ],
)
def test_export_leaves_out_what_the_format_cannot_hold(sample, tmp_path, name, reader, kind):
    target = tmp_path / name
    done = run("export", sample, target)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"exported 5 exchanges to {target}; left out 1 without a complete response "
        f"(no {kind} form)\n"
    )
    assert [ex.url for ex in reader(target)] == [ex.url for ex in sample_exchanges() if ex.ok]


def test_export_refuses_to_overwrite(sample, tmp_path):
    target = tmp_path / "out.har"
    target.write_text("keep me")
    done = run("export", sample, target)
    assert (done.returncode, done.stderr) == (
        2,
        f"Error: {target} exists; pass --overwrite to replace it\n",
    )
    assert target.read_text() == "keep me"
    assert run("export", sample, target, "--overwrite").returncode == 0
    assert len(interop.read_har(target)) == 6


def test_export_json_needs_a_format(sample, tmp_path):
    done = run("export", sample, tmp_path / "out.json")
    assert done.returncode == 2
    assert "cannot tell the format of" in done.stderr
    assert run("export", sample, tmp_path / "out.json", "--format", "har").returncode == 0


# -- compact -------------------------------------------------------------------------------------
def test_compact_merges_files_without_changing_what_readers_see(tmp_path):
    capture = write_capture(tmp_path / "capture", sample_exchanges(), files=3)
    before = listing(capture)
    assert len(list(capture.glob("day=*/*.parquet"))) == 3
    done = run("compact", capture)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "merged 3 files into 1 (6 exchanges); removed 0 temporary files\n"
    assert len(list(capture.glob("day=*/*.parquet"))) == 1
    assert listing(capture) == before


# -- scan-secrets --------------------------------------------------------------------------------
def test_scan_secrets_finds_credentials_and_exits_1(tmp_path):
    capture = write_capture(tmp_path / "capture", with_secrets())
    done = run("scan-secrets", capture, "--json")
    assert done.returncode == 1, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"index": 0, "method": "GET", "location": "request.query", "name": "api_key",
         "kind": "stripe_key", "preview": "sk_l…(28 chars)"},
        {"index": 0, "method": "GET", "location": "request.header", "name": "Authorization",
         "kind": "github_token", "preview": "ghp_…(40 chars)"},
        {"index": 1, "method": "POST", "location": "response.header",
         "name": "Set-Cookie: session", "kind": "high_entropy", "preview": "Zq8v…(20 chars)"},
        {"index": 1, "method": "POST", "location": "request.body", "name": "$.password",
         "kind": "password", "preview": "hunt…(7 chars)"},
    ]  # fmt: skip
    assert done.stderr == "4 secrets found in 2 of 3 exchanges\n"
    for secret in (GITHUB, SESSION, "hunter2", "0123456789abcdef"):
        assert secret not in done.stdout
    table = run("scan-secrets", capture)
    assert table.returncode == 1
    assert [line.split() for line in table.stdout.splitlines()][2:4] == [
        ["0", "request.query", "api_key", "stripe_key", "sk_l…(28", "chars)"],
        ["0", "request.header", "Authorization", "github_token", "ghp_…(40", "chars)"],
    ]


def test_scan_secrets_of_a_redacted_capture_is_clean(tmp_path):
    redactor = tl.Redactor()
    capture = write_capture(tmp_path / "capture", [redactor.redact(ex) for ex in with_secrets()])
    done = run("scan-secrets", capture)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "",
        "0 secrets found in 0 of 3 exchanges\n",
    )
