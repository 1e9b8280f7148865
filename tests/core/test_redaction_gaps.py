"""Redaction gaps of issue #9 (item 8): nameless cookies, multipart fields and filenames,
URL-valued headers, transport error messages, escaped and deeply nested JSON keys, and the
fail-closed rule for JSON that cannot be parsed. Each test names the exact stored bytes."""

from __future__ import annotations

import json

import httpx
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traffic_lab as tl
from traffic_lab.redaction import is_secret_name
from traffic_lab.testing import make_exchange

R = tl.Redactor()


def headers_of(pairs):
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs]


# -- cookies without a name ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "value", "stored"),
    [
        ("Cookie", "s3cr3t-session", "[REDACTED]"),
        (
            "Cookie",
            "sid=1; s3cr3t-session; theme=dark",
            "sid=[REDACTED]; [REDACTED]; theme=[REDACTED]",
        ),
        ("Cookie", "=s3cr3t-session", "=[REDACTED]"),
        ("Set-Cookie", "s3cr3t-session", "[REDACTED]"),
        ("Set-Cookie", "s3cr3t-session; Path=/; HttpOnly", "[REDACTED]; Path=/; HttpOnly"),
        ("Set-Cookie", "sid=s3cr3t-session; Path=/", "sid=[REDACTED]; Path=/"),
    ],
)
def test_nameless_cookie_values_are_redacted_whole(header, value, stored):
    side = "request_headers" if header == "Cookie" else "response_headers"
    ex = make_exchange(**{side: [(header, value)]})
    red = R.redact(ex)
    assert getattr(red, side)[0] == (header.encode(), stored.encode())
    assert R.redact(red) is red  # idempotent: nothing left to change
    assert getattr(ex, side)[0] == (header.encode(), value.encode())  # the caller's copy


# -- multipart/form-data ------------------------------------------------------------------------
def multipart(boundary=b"XyZ", newline=b"\r\n"):
    n = newline
    return (
        b"--" + boundary + n + b'Content-Disposition: form-data; name="user"' + n + n + b"ada" + n
        + b"--" + boundary + n + b'Content-Disposition: form-data; name="password"' + n + n
        + b"hunter2" + n
        + b"--" + boundary + n
        + b'Content-Disposition: form-data; name="doc"; filename="api_key.txt"' + n
        + b"Content-Type: text/plain" + n + n + b"K-123" + n
        + b"--" + boundary + n
        + b'Content-Disposition: form-data; name="meta"' + n
        + b"Content-Type: application/json" + n + n + b'{"client_secret": "CS-9", "n": 1}' + n
        + b"--" + boundary + n
        + b'Content-Disposition: form-data; name="photo"; filename="cat.png"' + n
        + b"Content-Type: image/png" + n + n + b"\x89PNG-bytes" + n
        + b"--" + boundary + b"--" + n
    )  # fmt: skip


REDACTED_MULTIPART = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="user"\r\n\r\nada\r\n'
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="password"\r\n\r\n[REDACTED]\r\n'
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="doc"; filename="[REDACTED]"\r\n'
    b"Content-Type: text/plain\r\n\r\n[REDACTED]\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="meta"\r\n'
    b'Content-Type: application/json\r\n\r\n{"client_secret":"[REDACTED]","n":1}\r\n'
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="photo"; filename="cat.png"\r\n'
    b"Content-Type: image/png\r\n\r\n\x89PNG-bytes\r\n"
    b"--XyZ--\r\n"
)


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=XyZ", 'multipart/form-data; boundary="XyZ"']
)
def test_multipart_fields_filenames_and_json_parts_are_redacted(content_type):
    body = multipart()
    ex = make_exchange(
        "POST",
        request_headers=[("Content-Type", content_type), ("Content-Length", str(len(body)))],
        request_body=body,
    )
    red = R.redact(ex)
    assert red.request_body == REDACTED_MULTIPART
    assert red.request_headers == (
        (b"Content-Type", content_type.encode()),
        (b"Content-Length", str(len(REDACTED_MULTIPART)).encode()),
    )
    for secret in (b"hunter2", b"K-123", b"CS-9", b"api_key.txt"):
        assert secret not in red.request_body
    assert R.redact(red) is red
    assert ex.request_body == body
    # The stored copy is still a multipart body a server would parse (httpx builds the same).
    rebuilt = httpx.Request(
        "POST",
        "https://a.example/",
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
        data={"user": "ada", "password": "[REDACTED]"},
        files=[
            ("doc", ("[REDACTED]", b"[REDACTED]", "text/plain")),
            ("meta", (None, b'{"client_secret":"[REDACTED]","n":1}', "application/json")),
            ("photo", ("cat.png", b"\x89PNG-bytes", "image/png")),
        ],
    )
    assert rebuilt.read() == REDACTED_MULTIPART


def test_multipart_with_bare_newlines_and_a_cut_end_is_still_redacted():
    body = multipart(newline=b"\n")
    cut = body[: body.index(b"K-123") + 3]  # the client stopped in the middle of the file
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
        request_body=cut,
    )
    assert R.redact(ex).request_body == (
        b"--XyZ\n"
        b'Content-Disposition: form-data; name="user"\n\nada\n'
        b"--XyZ\n"
        b'Content-Disposition: form-data; name="password"\n\n[REDACTED]\n'
        b"--XyZ\n"
        b'Content-Disposition: form-data; name="doc"; filename="[REDACTED]"\n'
        b"Content-Type: text/plain\n\n[REDACTED]"
    )


def test_multipart_filename_star_and_secret_path_filenames():
    body = (
        b"--b\r\n"
        b"Content-Disposition: form-data; name=\"up\"; filename*=UTF-8''private%5Fkey.pem\r\n\r\n"
        b"-----BEGIN KEY-----\r\n"
        b"--b\r\n"
        b'Content-Disposition: form-data; name="up2"; filename="C:\\\\secrets\\\\notes.txt"\r\n\r\n'
        b"n0tes\r\n"
        b"--b--"
    )
    ex = make_exchange(
        "PUT",
        request_headers={"Content-Type": "multipart/form-data; boundary=b"},
        request_body=body,
    )
    assert R.redact(ex).request_body == (
        b"--b\r\n"
        b"Content-Disposition: form-data; name=\"up\"; filename*=UTF-8''%5BREDACTED%5D\r\n\r\n"
        b"[REDACTED]\r\n"
        b"--b\r\n"
        b'Content-Disposition: form-data; name="up2"; filename="[REDACTED]"\r\n\r\n'
        b"[REDACTED]\r\n"
        b"--b--"
    )


def test_multipart_preamble_epilogue_and_nested_multipart():
    inner = (
        b"--in\r\n"
        b'Content-Disposition: file; filename="token.txt"\r\n\r\nT0K\r\n'
        b"--in\r\n"
        b'Content-Disposition: file; filename="a.txt"\r\n\r\nA\r\n'
        b"--in--"
    )
    body = (
        b"preamble\r\n--out\r\n"
        b'Content-Disposition: form-data; name="files"\r\n'
        b"Content-Type: multipart/mixed; boundary=in\r\n\r\n" + inner + b"\r\n"
        b"--out--\r\nepilogue"
    )
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "multipart/form-data; boundary=out"},
        request_body=body,
    )
    assert R.redact(ex).request_body == body.replace(b'"token.txt"', b'"[REDACTED]"').replace(
        b"T0K", b"[REDACTED]"
    )


def test_multipart_nested_deeper_than_four_levels_fails_closed():
    def level(n, content):
        return (
            f"--b{n}\r\nContent-Type: multipart/mixed; boundary=b{n + 1}\r\n\r\n".encode()
            + content
            + f"\r\n--b{n}--".encode()
        )

    innermost = b'--b6\r\nContent-Disposition: form-data; name="token"\r\n\r\nT0K\r\n--b6--'
    body = innermost
    for n in range(5, 0, -1):
        body = level(n, body)
    ex = make_exchange(
        "POST", request_headers={"Content-Type": "multipart/mixed; boundary=b1"}, request_body=body
    )
    # Levels 1 to 5 are parsed; the part holding level 6 is more than four levels down and
    # names a secret: its content is replaced whole.
    assert R.redact(ex).request_body == body.replace(innermost, b"[REDACTED]")


def test_json_duplicate_keys_are_merged_when_the_body_parses():
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "application/json"},
        request_body=b'{"a": 1, "token": "T1", "a": 2, "token": "T2"}',
    )
    assert R.redact(ex).request_body == b'{"a":2,"token":"[REDACTED]"}'


def test_multipart_without_secret_names_is_the_same_object():
    body = multipart().replace(b'name="password"', b'name="comment"')
    body = body.replace(b"api_key.txt", b"notes.txt").replace(b"client_secret", b"client_name")
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
        request_body=body,
    )
    assert R.redact(ex) is ex


# -- URLs inside headers -------------------------------------------------------------------------
def test_secret_query_parameters_inside_url_valued_headers():
    ex = make_exchange(
        request_headers=[
            ("Referer", "https://app.example/page?access_token=T0K&tab=2"),
            ("Origin", "https://app.example"),
        ],
        response_headers=[
            ("Content-Location", "/items/1?api_key=K123"),
            ("Link", '<https://api.example/items?page=2&token=T0K>; rel="next", </x>; rel="a"'),
            ("Refresh", "5; url=https://app.example/next?password=P4SS"),
            ("Location", "https://app.example/cb#access_token=T0K&token_type=bearer&state=s"),
        ],
    )
    red = R.redact(ex)
    assert headers_of(red.request_headers) == [
        ("Referer", "https://app.example/page?access_token=%5BREDACTED%5D&tab=2"),
        ("Origin", "https://app.example"),
    ]
    assert headers_of(red.response_headers) == [
        ("Content-Location", "/items/1?api_key=%5BREDACTED%5D"),
        (
            "Link",
            '<https://api.example/items?page=2&token=%5BREDACTED%5D>; rel="next", </x>; rel="a"',
        ),
        ("Refresh", "5; url=https://app.example/next?password=%5BREDACTED%5D"),
        (
            "Location",
            "https://app.example/cb#access_token=%5BREDACTED%5D&token_type=bearer&state=s",
        ),
    ]
    assert R.redact(red) is red


def test_url_userinfo_is_redacted():
    ex = make_exchange(url="https://ada:pw-123@api.example/x?page=1")
    assert R.redact(ex).url == "https://ada:%5BREDACTED%5D@api.example/x?page=1"
    token_user = make_exchange(url="https://ghp_abcdef@git.example/repo")
    assert R.redact(token_user).url == "https://%5BREDACTED%5D@git.example/repo"
    at_in_path = make_exchange(url="https://npm.example/@scope/pkg")
    assert R.redact(at_in_path) is at_in_path


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        (
            "https://app.example/#access_token=T&x=1",
            "https://app.example/#access_token=%5BREDACTED%5D&x=1",
        ),
        (
            "https://app.example/#/cb?token=T&x=1",
            "https://app.example/#/cb?token=%5BREDACTED%5D&x=1",
        ),
        ("https://app.example/#section-2", "https://app.example/#section-2"),
        ("//ada:pw@cdn.example/x", "//ada:%5BREDACTED%5D@cdn.example/x"),
        ("/relative?sig=S&a=1", "/relative?sig=%5BREDACTED%5D&a=1"),
        ("/x?pass%77ord=P&a=1", "/x?password=%5BREDACTED%5D&a=1"),
    ],
)
def test_redact_url_fragments_and_relative_urls(url, stored):
    assert R.redact_url(url) == stored
    assert R.redact_url(stored) == stored


# -- transport error messages -------------------------------------------------------------------
def test_recorded_error_message_is_redacted():
    class Failing(httpx.BaseTransport):
        def handle_request(self, request):
            raise httpx.ConnectError(
                f"cannot reach {request.url} (proxy https://u:pw-77@proxy.example:3128), "
                "retry with token=T0K; auth header was Bearer B3ARER-XYZ",
                request=request,
            )

    stream = tl.MemoryStream()
    client = httpx.Client(transport=tl.RecordingTransport(stream, Failing()))
    with pytest.raises(httpx.ConnectError) as raised:
        client.get(
            "https://api.example/x?access_token=Q-SECRET&page=2",
            headers={"Authorization": "Bearer B3ARER-XYZ"},
        )
    assert "Q-SECRET" in str(raised.value)  # the caller's exception is unchanged
    (ex,) = stream.exchanges()
    assert ex.error == tl.exchange.RecordedError(
        "httpx.ConnectError",
        "cannot reach https://api.example/x?access_token=%5BREDACTED%5D&page=2 "
        "(proxy https://u:%5BREDACTED%5D@proxy.example:3128), "
        "retry with token=[REDACTED]; auth header was Bearer [REDACTED]",
    )
    assert R.redact(ex) is ex


# -- JSON keys written with escapes, nesting, and bodies that cannot be parsed ------------------
@pytest.mark.parametrize(
    "body",
    [
        b'{"pass\\u0077ord": "hunter2", "n": 1}',
        b'{"\\u0070\\u0061\\u0073\\u0073\\u0077\\u006f\\u0072\\u0064": "hunter2", "n": 1}',
        '{"PASSWORD": "hunter2", "n": 1}'.replace("A", "\\u0041").encode(),
    ],
)
def test_json_keys_written_with_escapes_are_redacted(body):
    ex = make_exchange(
        "POST", request_headers={"Content-Type": "application/json"}, request_body=body
    )
    stored = R.redact(ex).request_body
    assert b"hunter2" not in stored
    assert list(json.loads(stored).values()) == ["[REDACTED]", 1]


def test_json_key_with_a_kelvin_sign_is_redacted():
    # "\u212a".lower() == "k": the key reads "api_key" to is_secret_name, not to a byte search.
    body = '{"api_\u212aey": "K123"}'.encode()
    ex = make_exchange(response_headers={"Content-Type": "application/json"}, response_body=body)
    assert R.redact(ex).response_body == '{"api_\u212aey":"[REDACTED]"}'.encode()


def test_form_field_names_written_with_percent_escapes_are_redacted():
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "application/x-www-form-urlencoded"},
        request_body=b"pass%77ord=hunter2&user=ada",
    )
    assert R.redact(ex).request_body == b"password=%5BREDACTED%5D&user=ada"


def test_utf16_json_is_redacted():
    body = json.dumps({"token": "T0K"}).encode("utf-16")
    ex = make_exchange(response_headers={"Content-Type": "application/json"}, response_body=body)
    assert R.redact(ex).response_body == b'{"token":"[REDACTED]"}'


def nested(depth, inner):
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("depth", [500, 5000, 50_000])
def test_deeply_nested_json_is_redacted_without_recursion_error(depth):
    # 500 levels parse; deeper ones raise RecursionError in json and are redacted token by
    # token instead: either way the stored body is the same compact JSON.
    body = (
        '{"a": ' + nested(depth, '{"token": "T0K", "n": [1, 2.5e3, true]}') + ', "b": 2}'
    ).encode()
    ex = make_exchange(
        "POST",
        request_headers=[("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        request_body=body,
    )
    red = R.redact(ex)
    expected = '{"a":' + nested(depth, '{"token":"[REDACTED]","n":[1,2500.0,true]}') + ',"b":2}'
    assert red.request_body == expected.encode()
    assert dict(red.request_headers)[b"Content-Length"] == str(len(expected)).encode()
    assert R.redact(red) is red


def test_deep_json_under_a_secret_key_scrubs_every_leaf_and_keeps_shape():
    inner = '{"user": "ada", "pin": 1234, "x": null, "p\\u0077d": "\\u00e9t\\u00e9"}'
    body = ('{"credentials": ' + nested(3000, inner) + ', "ok": "caf\u00e9"}').encode()
    ex = make_exchange(response_headers={"Content-Type": "application/json"}, response_body=body)
    leaves = '{"user":"[REDACTED]","pin":"[REDACTED]","x":null,"pwd":"[REDACTED]"}'
    assert (
        R.redact(ex).response_body
        == ('{"credentials":' + nested(3000, leaves) + ',"ok":"caf\u00e9"}').encode()
    )


def test_ndjson_is_redacted_line_by_line():
    body = b'{"id": 1, "token": "T1"}\n{"id": 2, "token": "T2"}\n'
    ex = make_exchange(
        response_headers={"Content-Type": "application/x-ndjson"}, response_body=body
    )
    assert R.redact(ex).response_body == (
        b'{"id":1,"token":"[REDACTED]"}\n{"id":2,"token":"[REDACTED]"}\n'
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"password": "hunter2", "n": ',  # cut
        b'{"note": "abc, "password": "hunter2"}',  # a broken string
        b"{password: 'hunter2'}",  # not JSON at all
        b'{"a": ' + nested(5000, '"x"').encode() + b', "token": "T0K"',  # deep and cut
    ],
)
def test_json_that_cannot_be_parsed_but_names_a_secret_is_stored_redacted_whole(body):
    ex = make_exchange(
        "POST", request_headers={"Content-Type": "application/json"}, request_body=body
    )
    red = R.redact(ex)
    assert red.request_body == b"[REDACTED]"
    assert R.redact(red) is red


def test_json_that_cannot_be_parsed_without_secret_names_is_kept():
    body = b'{"id": 1, "name": "ada"'
    ex = make_exchange(
        "POST", request_headers={"Content-Type": "application/json"}, request_body=body
    )
    assert R.redact(ex) is ex
    custom = tl.Redactor(fields=lambda name: name == "ssn")
    assert custom.redact(ex) is ex
    leaky = make_exchange(
        "POST", request_headers={"Content-Type": "application/json"}, request_body=b'{"ssn": "1-2'
    )
    assert custom.redact(leaky).request_body == b"[REDACTED]"


def test_truncated_json_response_is_redacted_and_keeps_its_length_header():
    body = b'{"access_token": "T0K", "items": [1, 2'
    ex = make_exchange(
        response_headers=[("Content-Type", "application/json"), ("Content-Length", "4096")],
        response_body=body,
        truncated=True,
    )
    red = R.redact(ex)
    assert red.response_body == b"[REDACTED]"
    assert red.truncated is True
    assert red.response_headers == (
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"4096"),
    )


def test_secret_named_headers_outside_the_default_list_are_redacted():
    ex = make_exchange(
        request_headers=[("X-My-Token", "T0K"), ("X-Signature", "S1G"), ("X-Trace", "keep")]
    )
    assert headers_of(R.redact(ex).request_headers) == [
        ("X-My-Token", "[REDACTED]"),
        ("X-Signature", "[REDACTED]"),
        ("X-Trace", "keep"),
    ]


def test_form_body_that_is_not_utf8_keeps_its_other_bytes():
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "application/x-www-form-urlencoded"},
        request_body=b"name=caf\xe9&token=T0K",
    )
    assert R.redact(ex).request_body == b"name=caf%E9&token=%5BREDACTED%5D"


def test_documented_limits_are_real():
    """What docs/redaction.md lists as not covered is stored as it came."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    ex = make_exchange(
        "POST",
        "https://api.example/x",
        request_headers=[
            ("X-Custom-Auth", "C-SECRET"),  # neither listed nor a secret name
            ("X-Callback-Url", "https://cb.example/?token=T0K"),  # not a URL header we know
            ("Authorization", "sk_live_1 sk_live_2"),  # the first word is taken for a scheme
            ("Content-Type", "text/plain"),
        ],
        request_body=b"password=hunter2",  # free text: not a form, whatever it looks like
        response_headers=[("Content-Type", "application/json"), ("Content-Encoding", "zstd")],
        response_body=b'{"token": "not really zstd"}',  # an encoding the redactor cannot undo
    )
    red = R.redact(ex)
    assert headers_of(red.request_headers) == [
        ("X-Custom-Auth", "C-SECRET"),
        ("X-Callback-Url", "https://cb.example/?token=T0K"),
        ("Authorization", "sk_live_1 [REDACTED]"),
        ("Content-Type", "text/plain"),
    ]
    assert red.request_body == b"password=hunter2"
    assert red.response_body == b'{"token": "not really zstd"}'
    # A secret in a field with an ordinary name stays, in JSON as in forms and queries.
    data = make_exchange(json={"data": jwt, "id": 1})
    assert R.redact(data) is data
    # Known secret values shorter than 4 characters are not searched for in error texts.
    failed = make_exchange(
        url="https://api.example/?key=abc",
        status_code=None,
        error=tl.exchange.RecordedError("httpx.ConnectError", "failed on abc"),
    )
    assert R.redact(failed).error == tl.exchange.RecordedError(
        "httpx.ConnectError", "failed on abc"
    )


# -- everything at once, through a real recording into a Parquet capture ---------------------------
def test_recorded_parquet_capture_holds_none_of_the_secrets(tmp_path):
    secrets = [b"hunter2", b"K-123", b"CS-9", b"api_key.txt", b"T0K", b"s3ss10n", b"P4SS", b"pw-1"]

    def handler(request):
        return httpx.Response(
            200,
            headers=[
                ("Set-Cookie", "s3ss10n; Path=/"),
                ("Content-Location", "/r?token=T0K"),
                ("Content-Type", "application/json"),
            ],
            content=b'{"d": ' + nested(3000, '{"pass\\u0077ord": "P4SS"}').encode() + b"}",
        )

    folder = tmp_path / "capture"
    with tl.ParquetStream(folder) as stream:
        client = httpx.Client(transport=tl.RecordingTransport(stream, httpx.MockTransport(handler)))
        client.post(
            "https://ada:pw-1@api.example/up",
            headers={
                "Content-Type": "multipart/form-data; boundary=XyZ",
                "Cookie": "s3ss10n",
                "Referer": "https://app.example/?token=T0K",
            },
            content=multipart(),
        )
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert files
    for path in files:
        raw = path.read_bytes()
        assert not [s for s in secrets if s in raw], path
    table = pq.read_table(next(p for p in files if p.suffix == ".parquet"))
    text = repr(table.to_pylist()).encode()
    assert not [s for s in secrets if s in text]
    assert b"[REDACTED]" in text


# -- a request carrying secrets still finds its recording ----------------------------------------
def test_secret_bearing_multipart_and_url_header_requests_hit_the_cache():
    cache = tl.MemoryCache(tl.Matcher(headers=["referer"]))
    calls = []

    def handler(request):
        calls.append(request.read())
        return httpx.Response(200, text="live")

    headers = {
        "Content-Type": "multipart/form-data; boundary=XyZ",
        "Referer": "https://app.example/?token=T0K",
    }
    recorder = httpx.Client(transport=tl.RecordingTransport(cache, httpx.MockTransport(handler)))
    recorder.post("https://api.example/up", headers=headers, content=multipart())
    assert calls == [multipart()]  # the server got the real secrets
    offline = httpx.Client(
        transport=tl.CachingTransport(cache, httpx.MockTransport(lambda r: httpx.Response(599)))
    )
    hit = offline.post("https://api.example/up", headers=headers, content=multipart())
    assert (hit.status_code, hit.text) == (200, "live")
    other = {**headers, "Referer": "https://app.example/?token=T0K&tab=2"}
    assert (
        offline.post("https://api.example/up", headers=other, content=multipart()).status_code
        == 599
    )


# -- properties ----------------------------------------------------------------------------------
NAMES = st.sampled_from(
    ["id", "name", "password", "api_key", "token_type", "key", "Key", "monkey", "\u212aey", "x"]
)
LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4)
)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(NAMES, children, max_size=3),
    max_leaves=12,
)
PROPERTY = settings(max_examples=150, deadline=None, database=None)


@PROPERTY
@given(DOCUMENTS, st.sampled_from([None, 1, 2]), st.booleans())
def test_token_path_writes_what_the_parsed_path_writes(document, indent, ascii_only):
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only)
    changed, walked = R._walk(document)
    expected = json.dumps(walked, ensure_ascii=False, separators=(",", ":"))
    assert R._scrub_json_text(text) == (changed, expected)
    # The same document nested too deep for json: the same bytes, nested.
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "application/json"},
        request_body=nested(3000, text).encode(),
    )
    stored = R.redact(ex).request_body
    assert stored == (nested(3000, expected).encode() if changed else ex.request_body)


@PROPERTY
@given(
    st.sampled_from(
        [
            b"application/json",
            b"application/x-ndjson",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=b",
            b"multipart/mixed",
        ]
    ),
    st.binary(max_size=200)
    | st.lists(
        st.sampled_from(
            [
                b'{"token": "',
                b'"',
                b"[",
                b"]",
                b"{",
                b"}",
                b":",
                b",",
                b"\\u0077",
                b"--b\r\n",
                b'Content-Disposition: form-data; name="key"\r\n\r\n',
                b"password=",
                b"&",
                b"%77",
                b"1",
                b"null",
                b"\r\n",
                b"--b--",
            ]
        ),
        max_size=30,
    ).map(b"".join),
)
def test_any_body_redacts_without_error_and_idempotently(content_type, body):
    ex = make_exchange(
        "POST", request_headers=[("Content-Type", content_type.decode())], request_body=body
    )
    once = R.redact(ex)
    assert R.redact(once) is once


@PROPERTY
@given(st.lists(st.tuples(NAMES, st.text(min_size=1, max_size=6), st.booleans()), max_size=5))
def test_multipart_parts_are_redacted_by_name_and_framing_kept(fields):
    def build(parts):
        files = [
            (
                n,
                ("f.bin", v.encode(), "application/octet-stream")
                if is_file
                else (None, v.encode()),
            )
            for n, v, is_file in parts
        ]
        headers = {"Content-Type": "multipart/form-data; boundary=B0UND"}
        return httpx.Request("POST", "https://a.example/", files=files, headers=headers).read()

    if not fields:
        return
    body = build(fields)
    ex = make_exchange(
        "POST",
        request_headers={"Content-Type": "multipart/form-data; boundary=B0UND"},
        request_body=body,
    )
    expected = build([(n, "[REDACTED]" if is_secret_name(n) else v, f) for n, v, f in fields])
    assert R.redact(ex).request_body == expected
