"""Matcher: keys are pure functions of (request, matcher); options; diffs."""

from __future__ import annotations

import json

import httpx
import pytest

import traffic_lab as tl
from traffic_lab.testing import make_exchange


def req(method="GET", url="https://api.example/items?a=1&b=2", **kwargs):
    r = httpx.Request(method, url, **kwargs)
    r.read()
    return r


@pytest.mark.parametrize(
    ("matcher", "a", "b", "same"),
    [
        (tl.Matcher(), req(), req(url="https://api.example/items?b=2&a=1"), True),
        (tl.Matcher(), req(), req(url="https://api.example/items?a=1&b=3"), False),
        (tl.Matcher(), req(), req(url="https://api.example:443/items?a=1&b=2"), True),
        (tl.Matcher(), req(), req(url="http://api.example/items?a=1&b=2"), False),
        (tl.Matcher(), req(), req("POST"), False),
        (tl.Matcher(), req(), req(url="https://other.example/items?a=1&b=2"), False),
        (tl.Matcher(), req(), req(url="https://api.example:8443/items?a=1&b=2"), False),
        (
            tl.Matcher(scheme=False, port=False),
            req(),
            req(url="http://api.example:81/items?a=1&b=2"),
            True,
        ),
        (tl.Matcher(query=False), req(), req(url="https://api.example/items?z=9"), True),
        (tl.Matcher(ignore_query=["b"]), req(), req(url="https://api.example/items?a=1&b=9"), True),
        (
            tl.Matcher(ignore_query=["b"]),
            req(),
            req(url="https://api.example/items?a=2&b=2"),
            False,
        ),
        (tl.Matcher(), req(headers={"X-T": "1"}), req(headers={"X-T": "2"}), True),
        (tl.Matcher(headers=["x-t"]), req(headers={"X-T": "1"}), req(headers={"X-T": "2"}), False),
        (tl.Matcher(headers=["x-t"]), req(headers={"X-T": "1"}), req(headers={"x-t": "1"}), True),
        (
            tl.Matcher(headers=True, ignore_headers=["x-u", "user-agent"]),
            req(headers={"X-U": "1"}),
            req(headers={"X-U": "2"}),
            True,
        ),
        (tl.Matcher(), req("POST", content=b"a"), req("POST", content=b"b"), False),
        (tl.Matcher(body="ignore"), req("POST", content=b"a"), req("POST", content=b"b"), True),
        (
            tl.Matcher(body="json"),
            req("POST", content=b'{"a": 1, "b": [1, 2]}'),
            req("POST", content=b'{"b":[1,2],"a":1}'),
            True,
        ),
        (
            tl.Matcher(),
            req("POST", content=b'{"a": 1, "b": [1, 2]}'),
            req("POST", content=b'{"b":[1,2],"a":1}'),
            False,
        ),
        (
            tl.Matcher(body="json"),
            req("POST", content=b'{"b": [2, 1]}'),
            req("POST", content=b'{"b": [1, 2]}'),
            False,
        ),
        (
            tl.Matcher(body="form"),
            req("POST", content=b"a=1&b=2"),
            req("POST", content=b"b=2&a=1"),
            True,
        ),
        (
            tl.Matcher(body="auto"),
            req("POST", json={"x": 1, "y": 2}),
            req("POST", content=b'{"y":2,"x":1}', headers={"Content-Type": "application/json"}),
            True,
        ),
        (
            tl.Matcher(function=lambda r: r.url.path),
            req(url="https://a.example/p?x=1"),
            req("POST", url="https://b.example/p"),
            True,
        ),
    ],
)
def test_key_options(matcher, a, b, same):
    assert (matcher.key(a) == matcher.key(b)) is same
    assert (matcher.diff(a, b) == []) is same


def test_key_is_pure_and_same_for_exchange_and_request():
    m = tl.Matcher()
    ex = make_exchange("POST", "https://api.example/x?q=1", request_body=b"payload")
    assert (
        m.key(ex)
        == m.key(ex.request)
        == m.key(req("POST", "https://api.example/x?q=1", content=b"payload"))
    )
    assert m.key(ex) == tl.Matcher().key(ex)
    assert len(m.key(ex)) == 32


def test_secret_values_do_not_change_the_key():
    m = tl.Matcher()
    live = req(
        "POST", "https://api.example/login?token=abc&x=1", json={"user": "u", "password": "p"}
    )
    other = req(
        "POST", "https://api.example/login?token=zzz&x=1", json={"user": "u", "password": "q"}
    )
    redacted = tl.Redactor().redact(tl.Exchange.from_httpx(live, httpx.Response(200)))
    assert m.key(live) == m.key(redacted) == m.key(other)
    assert m.key(live) != m.key(
        req("POST", "https://api.example/login?token=abc&x=2", json={"user": "u", "password": "p"})
    )


def test_diff_lists_every_difference():
    m = tl.Matcher(headers=["accept"], body="json")
    a = req("GET", "https://a.example/x?p=1&q=2", headers={"Accept": "a/b"})
    b = req("POST", "https://b.example:8080/y?p=2&r=3", headers={"Accept": "c/d"}, json={"k": 1})
    assert m.diff(a, b) == [
        "method: 'GET' != 'POST'",
        "host: 'a.example' != 'b.example'",
        "port: 443 != 8080",
        "path: '/x' != '/y'",
        "query 'p': '1' != '2'",
        "query 'q': only in the first request",
        "query 'r': only in the second request",
        "header 'accept': 'a/b' != 'c/d'",
        'body: (empty) != json:{"k":1}',
    ]


def test_nearest_orders_by_fewest_differences():
    m = tl.Matcher()
    candidates = [
        make_exchange("GET", "https://a.example/items/1"),
        make_exchange("POST", "https://b.example/other"),
        make_exchange("GET", "https://a.example/items/2"),
    ]
    nearest = m.nearest(req(url="https://a.example/items/2?x=1"), candidates, n=2)
    assert [(str(r.url), d) for r, d in nearest] == [
        ("https://a.example/items/2", ["query 'x': only in the second request"]),
        (
            "https://a.example/items/1",
            ["path: '/items/1' != '/items/2'", "query 'x': only in the second request"],
        ),
    ]


def test_fingerprint_tracks_configuration():
    assert tl.Matcher().fingerprint == tl.Matcher().fingerprint
    assert tl.Matcher().fingerprint != tl.Matcher(body="json").fingerprint
    assert tl.Matcher(function=lambda r: "k").fingerprint is None


def test_invalid_body_mode():
    with pytest.raises(
        ValueError, match="unknown body mode 'xml'; valid modes: digest, json, form, auto, ignore"
    ):
        tl.Matcher(body="xml")  # type: ignore[arg-type]


def test_json_mode_falls_back_to_digest_for_non_json():
    m = tl.Matcher(body="json")
    assert m.key(req("POST", content=b"not json")) != m.key(req("POST", content=b"not json!"))
    assert json.loads(b'{"a":1}') == {"a": 1}


def test_json_nested_too_deep_to_compare_by_value_is_keyed_by_its_bytes():
    deep = b"[" * 100_000 + b"]" * 100_000
    matcher = tl.Matcher(body="json")
    headers = {"content-type": "application/json"}
    a = httpx.Request("POST", "https://a.example/x", content=deep, headers=headers)
    b = httpx.Request("POST", "https://a.example/x", content=deep, headers=headers)
    other = httpx.Request("POST", "https://a.example/x", content=deep + b" ", headers=headers)
    assert matcher.key(a) == matcher.key(b)
    assert matcher.key(a) != matcher.key(other)
    assert tl.Matcher(body="auto").key(a) == tl.Matcher(body="auto").key(b)
