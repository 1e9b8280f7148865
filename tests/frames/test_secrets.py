"""Secrets in captures: scan_secrets finds credentials stored with redaction disabled, and
redact_capture rewrites a capture into a new one that scans clean, losing nothing else."""

from __future__ import annotations

import gzip
import json
import os

import httpx
import pandas as pd
import pytest

import traffic_lab as tl
from traffic_lab.demo import DemoAPI
from traffic_lab.frames import read_capture, redact_capture, redact_known_tokens, scan_secrets
from traffic_lab.frames.secrets import FINDING_COLUMNS, shannon_entropy
from traffic_lab.testing import LoopbackServer

from .conftest import exchange, record_demo

GITHUB = "ghp_" + "Zq3" * 12  # 36 characters after the prefix
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
RANDOM_BEARER = "q8Vt2LmZx9Kp4RwN7sYb1HcJ6eUa3GdF"


@pytest.fixture(scope="module")
def leaky_capture(tmp_path_factory):
    """Credentials recorded with redaction switched off, over real sockets."""
    folder = tmp_path_factory.mktemp("leaky") / "c"
    off = tl.Redactor.disabled()
    with (
        LoopbackServer() as server,
        DemoAPI(slowness=0) as api,
        tl.ParquetStream(folder, flush_seconds=None) as stream,
        httpx.Client(
            base_url=server.url, transport=tl.RecordingTransport(stream, redactor=off)
        ) as loop,
        httpx.Client(
            base_url=api.url, transport=tl.RecordingTransport(stream, redactor=off)
        ) as demo,
    ):
        loop.get("/status/200", headers={"Authorization": f"token {GITHUB}"})
        loop.get("/status/201", headers={"X-Api-Key": AWS_KEY_ID})
        loop.get("/status/202", params={"access_token": JWT, "page": "2"})
        loop.get("/status/203", headers={"Authorization": f"Bearer {RANDOM_BEARER}"})
        loop.get("/status/207", auth=("ada", "lovelace"))
        loop.get("/json?size=200")  # nothing secret
        demo.post("/api/login", json={"username": "ada", "password": "demo"})
        demo.get("/api/users/1", headers={"Authorization": "Bearer short"})  # too short to tell
    return folder


EXPECTED = {
    ("/status/200", "request.header", "Authorization", "github_token", "ghp_…(40 chars)"),
    ("/status/201", "request.header", "X-Api-Key", "aws_access_key_id", "AKIA…(20 chars)"),
    ("/status/202", "request.query", "access_token", "jwt", f"eyJh…({len(JWT)} chars)"),
    ("/status/203", "request.header", "Authorization", "high_entropy", "q8Vt…(32 chars)"),
    ("/status/207", "request.header", "Authorization", "basic_auth", "YWRh…(16 chars)"),
    ("/api/login", "request.body", "$.password", "password", "demo…(4 chars)"),
    ("/api/login", "response.body", "$.access_token", "high_entropy", "fdee…(64 chars)"),
    ("/api/login", "response.header", "Set-Cookie: session", "high_entropy", "fdee…(16 chars)"),
    # The client kept the session cookie and sent it back.
    ("/api/users/1", "request.header", "Cookie: session", "high_entropy", "fdee…(16 chars)"),
}


def findings(report: pd.DataFrame) -> set[tuple[str, ...]]:
    paths = report.request_url.map(lambda u: httpx.URL(u).path)
    return set(zip(paths, report.location, report.name, report.kind, report.preview, strict=True))


def test_scan_finds_known_formats_and_high_entropy_credentials(leaky_capture):
    report = scan_secrets(leaky_capture)
    assert tuple(report.columns) == FINDING_COLUMNS
    assert findings(report) == EXPECTED
    assert len(report) == len(EXPECTED)
    assert str(report.started_at.dtype) == "datetime64[us, UTC]"
    assert report.started_at.is_monotonic_increasing
    # Neither previews nor URLs hold the secret itself.
    for secret in (GITHUB, AWS_KEY_ID, JWT, RANDOM_BEARER):
        assert not report.preview.str.contains(secret, regex=False).any()
        assert not report.request_url.str.contains(secret, regex=False).any()
    [jwt_url] = report[report.kind == "jwt"].request_url
    assert jwt_url.endswith("/status/202?access_token=%5BREDACTED%5D&page=2")


def test_scan_accepts_where_frames_and_stores(leaky_capture):
    only_demo = scan_secrets(leaky_capture, where={"path": "/api/**"})
    assert {row[0] for row in findings(only_demo)} == {"/api/login", "/api/users/1"}
    df = read_capture(leaky_capture)
    assert findings(scan_secrets(df[df.response_status == 201])) == {
        e for e in EXPECTED if e[0] == "/status/201"
    }
    assert findings(scan_secrets(df, where={"status": 207})) == {
        e for e in EXPECTED if e[0] == "/status/207"
    }
    store = tl.ParquetStream(leaky_capture, create=False)
    assert findings(scan_secrets(store)) == EXPECTED
    assert findings(scan_secrets(list(store.exchanges()))) == EXPECTED


def test_redact_capture_writes_a_clean_copy_and_keeps_everything_else(leaky_capture, tmp_path):
    destination = tmp_path / "clean"
    report = redact_capture(leaky_capture, tl.Redactor(), destination)
    assert (report.exchanges, report.changed) == (8, 7)
    assert report.source == str(leaky_capture)
    assert report.destination == str(destination)
    assert scan_secrets(destination).empty
    # The source is untouched: its secrets are still there, for you to delete.
    assert findings(scan_secrets(leaky_capture)) == EXPECTED
    originals = list(tl.ParquetStream(leaky_capture, create=False).exchanges())
    rewritten = list(tl.ParquetStream(destination, create=False).exchanges())
    assert rewritten == [tl.Redactor().redact(ex) for ex in originals]
    assert [ex.response.json() for ex in rewritten[5:6]] == [originals[5].response.json()]
    login = rewritten[6]
    assert login.response.json()["access_token"] == "[REDACTED]"
    assert json.loads(login.request_body) == {"username": "ada", "password": "[REDACTED]"}


def test_redact_capture_takes_frames_and_empty_sources(leaky_capture, tmp_path):
    df = read_capture(leaky_capture)
    report = redact_capture(df[df.response_status == 201], tl.Redactor(), tmp_path / "one")
    assert (report.exchanges, report.changed) == (1, 1)
    assert report.source == str(leaky_capture)
    [rewritten] = tl.ParquetStream(tmp_path / "one").exchanges()
    assert dict(rewritten.request_headers)[b"X-Api-Key"] == b"[REDACTED]"
    empty = redact_capture([], tl.Redactor(), tmp_path / "none")
    assert (empty.exchanges, empty.changed) == (0, 0)


def test_redact_capture_refuses_to_overwrite(leaky_capture, tmp_path):
    with pytest.raises(FileExistsError, match="is the capture being redacted"):
        redact_capture(leaky_capture, tl.Redactor(), leaky_capture)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        redact_capture(leaky_capture, tl.Redactor(), taken)
    assert os.listdir(taken) == ["notes.txt"]


def test_tokens_in_innocent_fields_need_redact_known_tokens(tmp_path):
    leaks = [
        exchange(0, body=json.dumps({"note": f"use {GITHUB}"}).encode()),
        exchange(
            1, body=gzip.compress(f"key={AWS_KEY_ID}".encode()), content_type="text/plain"
        ).replace(
            response_headers=[(b"Content-Type", b"text/plain"), (b"Content-Encoding", b"gzip")]
        ),
        exchange(2, path=f"/callback?state={JWT}"),
        exchange(3).replace(request_headers=[(b"X-Debug", f"token={GITHUB}".encode())]),
    ]
    assert set(scan_secrets(leaks).kind) == {"github_token", "aws_access_key_id", "jwt"}
    assert len(scan_secrets(leaks)) == 4
    plain = redact_capture(leaks, tl.Redactor(), tmp_path / "plain")
    assert plain.changed == 0
    assert len(scan_secrets(tmp_path / "plain")) == 4
    thorough = tl.Redactor(extra=redact_known_tokens)
    report = redact_capture(leaks, thorough, tmp_path / "thorough")
    assert report.changed == 4
    assert scan_secrets(tmp_path / "thorough").empty
    cleaned = list(tl.ParquetStream(tmp_path / "thorough").exchanges())
    assert cleaned[0].response.json() == {"note": "use [REDACTED]"}
    assert cleaned[1].response.text == "key=[REDACTED]"
    assert cleaned[1].response_body[:2] == b"\x1f\x8b"  # still gzip on the wire
    assert cleaned[2].url == "https://api.example/callback?state=[REDACTED]"
    assert cleaned[3].request_headers == ((b"X-Debug", b"token=[REDACTED]"),)


def test_redact_known_tokens_keeps_lengths_consistent():
    ex = exchange(0, body=f"token {GITHUB}".encode(), content_type="text/plain").replace(
        response_headers=[(b"Content-Type", b"text/plain"), (b"Content-Length", b"45")]
    )
    out = redact_known_tokens(ex)
    assert out.response_body == b"token [REDACTED]"
    assert dict(out.response_headers)[b"Content-Length"] == b"16"
    clean = exchange(1)
    assert redact_known_tokens(clean) is clean


def test_demo_traffic_scans_clean_with_the_default_redactor(demo_capture):
    assert scan_secrets(demo_capture).empty


def test_demo_traffic_without_redaction_leaks_the_session(tmp_path):
    folder = record_demo(tmp_path / "c", n=30, redactor=tl.Redactor.disabled())
    report = scan_secrets(folder)
    per_kind = report.groupby(["location", "name", "kind"]).size().to_dict()
    assert per_kind == {
        ("request.body", "$.password", "password"): 1,
        # Every call after the login sends the token and the session cookie the client kept.
        ("request.header", "Authorization", "high_entropy"): 29,
        ("request.header", "Cookie: session", "high_entropy"): 29,
        ("response.body", "$.access_token", "high_entropy"): 1,
        ("response.header", "Set-Cookie: session", "high_entropy"): 1,
    }


def test_entropy():
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("abab") == 1.0
    assert shannon_entropy(RANDOM_BEARER) > 4.5
