"""Redactor: default rules, encodings, idempotence, opt-out."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import pytest

import traffic_lab as tl
from traffic_lab.redaction import is_secret_name
from traffic_lab.testing import make_exchange


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("refresh_token", True),
        ("api_key", True),
        ("apiKey", True),
        ("X-Api-Key", True),
        ("client_secret", True),
        ("password", True),
        ("key", True),
        ("sig", True),
        ("X-Amz-Signature", True),
        ("monkey", False),
        ("keyword", False),
        ("author", False),
        ("sort_key_order", False),
        ("Idempotency-Key", False),
        ("token_type", False),
        ("token_endpoint", False),
        ("password_hint", False),
        ("page", False),
        ("Content-Type", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_headers_keep_shape_and_hide_values():
    ex = make_exchange(
        request_headers=[
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("Proxy-Authorization", "opaque"),
            ("Cookie", "sid=1; theme=dark"),
            ("X-Api-Key", "k"),
            ("X-Request-Id", "keep-me"),
        ],
        response_headers=[
            ("Set-Cookie", "sid=2; Path=/; HttpOnly"),
            ("Location", "https://app.example/cb?code=c&access_token=t&state=s"),
        ],
    )
    red = tl.Redactor().redact(ex)
    assert red.request_headers == (
        (b"Authorization", b"Basic [REDACTED]"),
        (b"Proxy-Authorization", b"[REDACTED]"),
        (b"Cookie", b"sid=[REDACTED]; theme=[REDACTED]"),
        (b"X-Api-Key", b"[REDACTED]"),
        (b"X-Request-Id", b"keep-me"),
    )
    assert red.response_headers[:2] == (
        (b"Set-Cookie", b"sid=[REDACTED]; Path=/; HttpOnly"),
        (b"Location", b"https://app.example/cb?code=c&access_token=%5BREDACTED%5D&state=s"),
    )
    # The original exchange is untouched.
    assert ex.request_headers[0] == (b"Authorization", b"Basic dXNlcjpwYXNz")


def test_nested_json_fields_and_lists():
    doc = {
        "user": {"name": "a", "password": "p", "tokens": [{"value": "x"}]},
        "items": [{"api_key": 1}, {"ok": True}],
        "secret": None,
    }
    ex = make_exchange(
        "POST",
        request_body=json.dumps(doc).encode(),
        request_headers={"Content-Type": "application/json"},
    )
    red = tl.Redactor().redact(ex)
    assert json.loads(red.request_body) == {
        "user": {"name": "a", "password": "[REDACTED]", "tokens": [{"value": "[REDACTED]"}]},
        "items": [{"api_key": "[REDACTED]"}, {"ok": True}],
        "secret": None,
    }
    assert dict(red.request_headers).get(b"Content-Length") is None


@pytest.mark.parametrize(
    ("encoding", "encode", "decode"),
    [
        ("gzip", gzip.compress, gzip.decompress),
        ("deflate", zlib.compress, zlib.decompress),
        ("br", brotli.compress, brotli.decompress),
    ],
)
def test_encoded_json_response_is_redacted_and_reencoded(encoding, encode, decode):
    body = encode(b'{"id_token": "eyJ", "n": 1}')
    ex = make_exchange(
        response_headers=[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Encoding", encoding),
            ("Content-Length", str(len(body))),
        ],
        response_body=body,
    )
    red = tl.Redactor().redact(ex)
    assert json.loads(decode(red.response_body)) == {"id_token": "[REDACTED]", "n": 1}
    assert dict(red.response_headers)[b"Content-Length"] == str(len(red.response_body)).encode()
    assert red.response.json() == {"id_token": "[REDACTED]", "n": 1}


def test_nothing_to_redact_returns_same_object():
    ex = make_exchange(json={"id": 1, "name": "n"})
    assert tl.Redactor().redact(ex) is ex


def test_redaction_is_idempotent():
    ex = make_exchange(
        "POST",
        "https://a.example/x?token=t",
        request_headers={
            "Authorization": "Bearer b",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        request_body=b"password=p&user=u",
    )
    once = tl.Redactor().redact(ex)
    assert once.request_body == b"password=%5BREDACTED%5D&user=u"
    assert tl.Redactor().redact(once) == once


def test_disabled_and_custom_rules():
    ex = make_exchange("GET", "https://a.example/x?token=t&mine=m")
    assert tl.Redactor.disabled().redact(ex) is ex
    custom = tl.Redactor(fields=lambda name: name == "mine", replacement="***")
    assert custom.redact(ex).url == "https://a.example/x?token=t&mine=%2A%2A%2A"
    tagged = tl.Redactor(extra=lambda e: e.replace(tags={"redacted": "yes"})).redact(ex)
    assert dict(tagged.tags) == {"redacted": "yes"}


def test_truncated_and_non_json_bodies_are_left_alone():
    cut = gzip.compress(b'{"token": "t"}')[:10]
    ex = make_exchange(
        response_headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        response_body=cut,
    )
    assert tl.Redactor().redact(ex).response_body == cut
    text = make_exchange(response_headers={"Content-Type": "text/plain"}, response_body=b"token=t")
    assert tl.Redactor().redact(text).response_body == b"token=t"


def test_custom_field_rule_applies_to_json_and_form_bodies():
    redactor = tl.Redactor(fields=lambda name: name == "ssn")
    ex = make_exchange(
        "POST",
        "https://a.example/x?ssn=1",
        request_headers={"Content-Type": "application/json"},
        request_body=b'{"ssn": "123-45-6789", "name": "n"}',
        response_headers={"Content-Type": "application/x-www-form-urlencoded"},
        response_body=b"ssn=987&ok=1",
    )
    red = redactor.redact(ex)
    assert red.url == "https://a.example/x?ssn=%5BREDACTED%5D"
    assert json.loads(red.request_body) == {"ssn": "[REDACTED]", "name": "n"}
    assert red.response_body == b"ssn=%5BREDACTED%5D&ok=1"
