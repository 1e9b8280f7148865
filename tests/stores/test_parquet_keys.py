"""Keys computed once: the matcher's split of a recorded URL is httpx's, and a redacted exchange
is keyed without redacting it again, to the same key (keys are persisted in captures)."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traffic_lab as tl
from traffic_lab.matching import _httpx_url_parts, _url_parts

# Every character class httpx treats differently, and the tricks: case, IDNA and IPv4-like hosts,
# default and odd ports, dot segments, escapes, fragments, userinfo, spaces and controls.
_SCHEMES = ["http", "https", "ws", "wss", "HTTPS", "ftp", "Http"]
_HOSTS = [
    "api.example",
    "API.Example",
    "xn--fiqs8s.icom.museum",
    "a.XN--fiqs8s",
    "127.0.0.1",
    "1a2b3c4",
    "999.1.1.1",
    "[::1]",
    "a..b",
    "-",
    "user:pw@a.example",
    "a_b.example",
    "a%41.example",
    "",
]
_PORTS = ["", ":", ":80", ":443", ":0080", ":8080", ":65535", ":99999", ":123456", ":x"]
_PATH_CHARS = "aZ09-._~!$&'()*+,;=:@/%[]\\^|` \"<>{}é\t"
_QUERY_CHARS = "aZ09-._~!$&'()*+,;=:@/?%[]\\^|`{}\"<> é#\x7f"


def _check(url: str) -> None:
    try:
        expected = _httpx_url_parts(httpx.URL(url))
    except Exception as exc:
        with pytest.raises(type(exc)):
            _url_parts(url)
        return
    assert _url_parts(url) == expected, url


@pytest.mark.parametrize(
    "scheme,host,port",
    list(itertools.product(_SCHEMES, _HOSTS, _PORTS)),
)
def test_the_url_split_is_httpx_s_for_every_scheme_host_and_port(scheme, host, port):
    for tail in ["", "/", "/a/b", "/a/../b", "/./x", "/a.b", "?q=1", "/p?a=1&b=%20#f", "//x"]:
        _check(f"{scheme}://{host}{port}{tail}")


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(
    st.sampled_from(_SCHEMES),
    st.sampled_from(_HOSTS),
    st.sampled_from(_PORTS),
    st.text(_PATH_CHARS, max_size=12),
    st.one_of(st.none(), st.text(_QUERY_CHARS, max_size=12)),
)
def test_the_url_split_is_httpx_s_for_any_path_and_query(scheme, host, port, path, query):
    url = f"{scheme}://{host}{port}/{path}" + ("" if query is None else f"?{query}")
    _check(url)


def test_a_long_url_is_refused_as_httpx_refuses_it():
    _check("https://a.example/" + "a" * 70_000)


def _secret_exchange(**kw) -> tl.Exchange:
    return tl.Exchange(
        "POST",
        "https://api.example/login?user=me&token=s3cr3t",
        request_headers=[
            (b"Content-Type", b"application/json"),
            (b"Authorization", b"Bearer s3cr3t"),
        ],
        request_body=b'{"password": "hunter2", "user": "me"}',
        status_code=200,
        **kw,
    )


@pytest.mark.parametrize(
    "options,rules",
    [
        ({}, {}),
        ({"body": "json"}, {}),
        ({"body": "auto", "headers": True}, {}),
        ({"headers": ["authorization"], "ignore_query": ["user"]}, {}),
        ({"body": "json"}, {"replacement": "<hidden>"}),
        ({}, {"enabled": False}),
    ],
    ids=["default", "json", "auto-all-headers", "chosen", "replacement", "no-redaction"],
)
def test_a_redacted_exchange_keys_the_same_without_redacting_again(options, rules):
    matcher = tl.Matcher(redactor=tl.Redactor(**rules), **options)
    raw = _secret_exchange()
    redacted = matcher.redactor.redact(raw)
    key = matcher.key(raw)
    assert matcher.key(redacted) == key
    assert matcher.key(redacted, redacted_by=tl.Redactor(**rules)) == key
    assert matcher.key(redacted, redacted_by=matcher.redactor) == key
    # other rules: the matcher redacts with its own
    assert matcher.key(raw, redacted_by=tl.Redactor(replacement="***")) == key
    if matcher.all_headers:
        return  # httpx adds Host and Content-Length to a live request
    live = httpx.Request(
        "POST",
        raw.url,
        headers=list(raw.request_headers),
        content=raw.request_body,
    )
    assert matcher.key(live) == key  # a live request with the secret finds the recording


@pytest.mark.parametrize("store_type", [tl.ParquetCache, tl.ParquetStream])
@pytest.mark.parametrize("durable", [False, True])
def test_recording_into_a_parquet_store_redacts_once_and_keys_the_redacted_copy_once(
    tmp_path, store_type, durable, monkeypatch
):
    matcher = tl.Matcher(body="json")
    calls = []
    for name in ("redact_query", "redact_body", "redact_headers"):
        original = getattr(matcher.redactor, name)
        monkeypatch.setattr(
            matcher.redactor, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a)
        )
    store = store_type(tmp_path / "cap", matcher, durable=durable, flush_seconds=None)
    assert isinstance(store, tl.protocols.DeferredRedaction)

    def live(request):
        return httpx.Response(200, json={"ok": True})

    transport = tl.RecordingTransport(store, httpx.MockTransport(live))
    with httpx.Client(transport=transport) as client:
        raw = _secret_exchange()
        client.post(raw.url, headers=list(raw.request_headers), content=raw.request_body)
    store.close()
    assert calls == []  # the transport's redactor has the matcher's rules: no second pass
    [recorded] = list(tl.ParquetStream(tmp_path / "cap").exchanges())
    assert "s3cr3t" not in recorded.url and b"hunter2" not in recorded.request_body
    [written] = tl.ParquetStream(tmp_path / "cap").to_arrow()["request_key"].to_pylist()
    assert written == tl.Matcher(body="json").key(recorded)
    live_request = httpx.Request(
        "POST", raw.url, headers=list(raw.request_headers), content=raw.request_body
    )
    assert tl.ParquetCache(tmp_path / "cap", tl.Matcher(body="json")).get(live_request)


def test_put_redacting_with_other_rules_keys_as_put_does(tmp_path):
    matcher = tl.Matcher()
    with tl.ParquetCache(tmp_path / "cap", matcher) as cache:
        cache.put_redacting(_secret_exchange(), tl.Redactor(replacement="***"))
    [written] = tl.ParquetStream(tmp_path / "cap").to_arrow()["request_key"].to_pylist()
    [stored] = list(tl.ParquetStream(tmp_path / "cap").exchanges())
    assert "token=%2A%2A%2A" in stored.url
    assert written == matcher.key(stored)
