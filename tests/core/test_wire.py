"""traffic_lab.wire: content codings decoded as httpx decodes them (bounded), header lookup,
charsets, reason phrases, URL rebasing; and one multi-coded body seen the same way by every
surface that decodes bodies (redaction, frames, widgets, HAR export)."""

from __future__ import annotations

import gzip
import itertools
import json
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import brotli
import httpx
import pytest

import traffic_lab as tl
from traffic_lab.wire import (
    BodyTooLargeError,
    body_consistent_headers,
    content_charset,
    content_codings,
    decode_body,
    encode_body,
    header_value,
    header_values,
    reason_phrase,
    rebase_url,
    response_reason,
    supports,
    with_content_length,
)

try:
    import zstandard
except ImportError:
    zstandard = None

MiB = 1 << 20
PAYLOAD = json.dumps({"user": "ada", "items": list(range(50)), "note": "é" * 20}).encode()


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 says
    "raw-deflate": _raw_deflate,  # what some servers send as "deflate"
    "br": brotli.compress,
}
if zstandard is not None:
    ENCODERS["zstd"] = zstandard.compress


def _coded(payload: bytes, steps: list[str]) -> tuple[bytes, str]:
    """``payload`` encoded by ``steps`` in order, and its Content-Encoding value."""
    for step in steps:
        payload = ENCODERS[step](payload)
    return payload, ", ".join("deflate" if s == "raw-deflate" else s for s in steps)


def httpx_decoded(body: bytes, content_encoding: str) -> bytes | None:
    """What an httpx client reads from ``body`` (``None`` on httpx.DecodingError)."""
    response = httpx.Response(
        200, headers={"Content-Encoding": content_encoding}, stream=httpx.ByteStream(body)
    )
    try:
        return response.read()
    except httpx.DecodingError:
        return None


def _decode(body: bytes, content_encoding: str, limit: int | None = None) -> bytes | None:
    return decode_body(
        body, content_codings([(b"Content-Encoding", content_encoding.encode())]), limit
    )


@contextmanager
def bounded(seconds: float, peak_mb: float) -> Iterator[None]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < peak_mb * MiB, f"peak memory {peak / MiB:.0f} MB"


# -- content codings --------------------------------------------------------------------------
def test_content_codings_reads_every_header_in_order_as_httpx_does():
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Encoding", b" GZIP ,identity,, "),
        (b"content-encoding", b"br"),
    ]
    assert content_codings(headers) == ["gzip", "br"]
    assert content_codings([(k.decode(), v.decode()) for k, v in headers]) == ["gzip", "br"]
    assert content_codings([(b"Content-Type", b"text/plain")]) == []


@pytest.mark.parametrize(
    "steps",
    [[name] for name in ENCODERS]
    + [list(pair) for pair in itertools.permutations(["gzip", "deflate", "br"], 2)]
    + [["gzip", "br", "deflate"], ["raw-deflate", "gzip"]]
    + ([["gzip", "zstd"], ["zstd", "br"], ["zstd", "zstd"]] if zstandard else []),
    ids=lambda steps: "+".join(steps),
)
def test_decodes_what_httpx_decodes_last_coding_first(steps):
    body, content_encoding = _coded(PAYLOAD, steps)
    assert _decode(body, content_encoding) == PAYLOAD
    assert _decode(body, content_encoding, limit=len(PAYLOAD)) == PAYLOAD
    if not (len(steps) > 1 and "zstd" in steps):
        # httpx 0.28 fails on zstd inside a chain (its MultiDecoder feeds a finished zstd
        # decoder again on flush); everywhere else its bytes are ours.
        assert httpx_decoded(body, content_encoding) == PAYLOAD


def test_gzip_then_br_is_undone_br_first():
    body = brotli.compress(gzip.compress(PAYLOAD))
    assert decode_body(body, ["gzip", "br"]) == PAYLOAD
    assert decode_body(body, ["br", "gzip"]) is None  # the wrong order does not decode


def test_deflate_is_zlib_wrapped_or_raw():
    assert decode_body(zlib.compress(PAYLOAD), ["deflate"]) == PAYLOAD
    assert decode_body(_raw_deflate(PAYLOAD), ["deflate"]) == PAYLOAD


def test_x_gzip_is_gzip():  # RFC 9110 8.4.1.3 (httpx leaves it encoded)
    assert decode_body(gzip.compress(PAYLOAD), ["x-gzip"]) == PAYLOAD
    assert gzip.decompress(encode_body(PAYLOAD, ["x-gzip"]) or b"") == PAYLOAD


def test_bytes_after_a_gzip_stream_are_ignored_as_httpx_ignores_them():
    body = gzip.compress(PAYLOAD) + b"trailing junk"
    assert decode_body(body, ["gzip"]) == PAYLOAD == httpx_decoded(body, "gzip")


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"] + (["zstd"] if zstandard else []))
@pytest.mark.parametrize("cut", [1, 8, 0.5])
def test_a_body_cut_short_is_none(coding, cut):
    body, _ = _coded(PAYLOAD, [coding])
    keep = int(len(body) * cut) if isinstance(cut, float) else len(body) - cut
    assert decode_body(body[:keep], [coding]) is None
    assert decode_body(body[:keep], [coding], limit=10 * MiB) is None


def test_a_truncated_gzip_body_is_none_where_httpx_gives_a_prefix():
    body = gzip.compress(PAYLOAD)[:-8]  # the CRC and length trailer are gone
    assert httpx_decoded(body, "gzip") == PAYLOAD  # httpx cannot tell
    assert decode_body(body, ["gzip"]) is None


@pytest.mark.parametrize(
    ("body", "codings"),
    [
        (b"not gzip at all", ["gzip"]),
        (b"not deflate", ["deflate"]),
        (b"not brotli", ["br"]),
        (gzip.compress(PAYLOAD), ["compress"]),  # unknown coding
        (gzip.compress(PAYLOAD), ["gzip", "snappy"]),  # one of them unknown
    ],
)
def test_bad_bytes_and_unknown_codings_are_none(body, codings):
    assert decode_body(body, codings) is None


def test_no_body_or_no_coding_is_the_body_itself():
    assert decode_body(b"", ["gzip", "compress"]) == b""
    assert decode_body(PAYLOAD, []) is PAYLOAD


def test_a_missing_optional_package_makes_its_coding_unsupported(monkeypatch):
    monkeypatch.setitem(sys.modules, "brotli", None)
    monkeypatch.setitem(sys.modules, "brotlicffi", None)
    assert not supports("br")
    assert decode_body(brotli.compress(PAYLOAD), ["br"]) is None
    assert encode_body(PAYLOAD, ["br"]) is None
    assert supports("gzip") and supports("deflate")


@pytest.mark.skipif(zstandard is None, reason="zstandard is not installed")
def test_zstd_frames_one_after_another_are_one_body():
    body = zstandard.compress(b"first ") + zstandard.compress(b"second")
    assert decode_body(body, ["zstd"]) == b"first second" == httpx_decoded(body, "zstd")
    assert decode_body(body + b"junk", ["zstd"]) is None


def _gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    return b"".join(compressor.compress(zeros) for _ in range(size // MiB)) + compressor.flush()


def _brotli_bomb(size: int) -> bytes:
    compressor = brotli.Compressor(quality=5)
    zeros = bytes(MiB)
    return b"".join(compressor.process(zeros) for _ in range(size // MiB)) + compressor.finish()


BOMBS = [
    ("gzip", lambda: (_gzip_bomb(128 * MiB), ["gzip"])),
    ("deflate", lambda: (zlib.compress(bytes(128 * MiB), 1), ["deflate"])),
    ("br", lambda: (_brotli_bomb(128 * MiB), ["br"])),
    # The outer coding is small; the one under it is the bomb.
    ("deflate over gzip", lambda: (zlib.compress(_gzip_bomb(128 * MiB)), ["gzip", "deflate"])),
]
if zstandard is not None:
    BOMBS.append(("zstd", lambda: (zstandard.compress(bytes(128 * MiB)), ["zstd"])))


@pytest.mark.parametrize(("name", "make"), BOMBS, ids=[name for name, _ in BOMBS])
def test_a_bomb_stops_at_the_limit_with_bounded_memory(name, make):
    body, codings = make()
    assert len(body) < MiB
    with bounded(seconds=5, peak_mb=20 + len(body) / MiB), pytest.raises(BodyTooLargeError) as info:
        decode_body(body, codings, limit=8 * MiB)
    assert info.value.limit == 8 * MiB
    assert str(info.value) == f"decodes to more than {8 * MiB} bytes"


def test_the_limit_is_inclusive():
    body = gzip.compress(PAYLOAD)
    assert decode_body(body, ["gzip"], limit=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(BodyTooLargeError):
        decode_body(body, ["gzip"], limit=len(PAYLOAD) - 1)


@pytest.mark.parametrize("codings", [["gzip"], ["deflate"], ["br"], ["gzip", "br"], []])
def test_encode_body_round_trips_and_is_deterministic(codings):
    encoded = encode_body(PAYLOAD, codings)
    assert encoded is not None
    assert encode_body(PAYLOAD, codings) == encoded
    assert decode_body(encoded, codings) == PAYLOAD
    assert httpx_decoded(encoded, ", ".join(codings) or "identity") == PAYLOAD


@pytest.mark.skipif(zstandard is None, reason="zstandard is not installed")
def test_encode_body_zstd():
    assert decode_body(encode_body(PAYLOAD, ["zstd"]) or b"", ["zstd"]) == PAYLOAD


def test_encode_body_refuses_an_unknown_coding():
    assert encode_body(PAYLOAD, ["gzip", "compress"]) is None


# -- headers ----------------------------------------------------------------------------------
def test_header_lookup_first_and_all_values_any_case_same_type():
    raw = [(b"Set-Cookie", b"a=1"), (b"X-Trace", b"t"), (b"SET-COOKIE", b"b=2")]
    assert header_values(raw, "set-cookie") == [b"a=1", b"b=2"]
    assert header_value(raw, "Set-Cookie") == b"a=1"
    assert header_value(raw, "x-missing") is None
    assert header_values(raw, "x-missing") == []
    text = [(k.decode(), v.decode()) for k, v in raw]
    assert header_values(text, "SET-cookie") == ["a=1", "b=2"]
    assert header_value(httpx.Headers(raw).raw, "x-trace") == b"t"


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        (None, "utf-8"),
        ("", "utf-8"),
        ("application/json", "utf-8"),
        ("text/html; charset=ISO-8859-1", "iso8859-1"),
        ('text/html; charset="utf-16"', "utf-16"),
        (b"text/plain;CHARSET=latin1", "iso8859-1"),
        ("text/plain; charset=utf8; q=1", "utf-8"),
        ("text/plain; charset=no-such-codec", "utf-8"),
        ("text/plain; charset=", "utf-8"),
        ("text/plain; charset=\x00\n", "utf-8"),
    ],
)
def test_content_charset(content_type, charset):
    assert content_charset(content_type) == charset


def test_content_charset_default():
    assert content_charset("text/plain", default="latin-1") == "latin-1"


def test_reason_phrases_are_httpx_s_and_empty_where_http_names_none():
    for status in range(100, 1000):
        assert reason_phrase(status) == httpx.codes.get_reason_phrase(status)
    assert (reason_phrase(200), reason_phrase(418), reason_phrase(599)) == (
        "OK",
        "I'm a teapot",
        "",
    )
    assert reason_phrase(600) == reason_phrase(999) == ""


def test_response_reason_prefers_what_came_with_the_response():
    sent = httpx.Response(200, extensions={"reason_phrase": b"Tr\xe8s bien"})
    assert response_reason(sent) == "Très bien"
    assert response_reason(httpx.Response(404)) == "Not Found"
    assert response_reason(httpx.Response(799)) == ""


def test_content_length_follows_the_body():
    pairs = ((b"Content-Length", b" 3 "), (b"Content-Encoding", b"gzip"))
    assert with_content_length(pairs, 3) == pairs  # already right: kept byte for byte
    assert with_content_length(pairs, 5) == ((b"Content-Length", b"5"), pairs[1])
    assert body_consistent_headers(
        pairs, b"hello", method="GET", status_code=200, drop_encoding=True
    ) == ((b"Content-Length", b"5"),)
    for method, status in [("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 101)]:
        assert (
            body_consistent_headers(
                pairs, b"", method=method, status_code=status, drop_encoding=False
            )
            == pairs
        )


# -- URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (
            "https://api.example/v1/users?page=2",
            "http://localhost:8000",
            "http://localhost:8000/v1/users?page=2",
        ),
        (
            "https://api.example/v1/users",
            "http://127.0.0.1:9/staging/",
            "http://127.0.0.1:9/staging/v1/users",
        ),
        ("https://api.example", "https://other.example", "https://other.example/"),
        ("https://api.example?q=1", "https://other.example/p", "https://other.example/p/?q=1"),
        ("https://api.example/x#frag", "https://other.example/#top", "https://other.example/x"),
        (
            "https://api.example/x?b=2",
            "https://other.example/p?a=1",
            "https://other.example/p/x?b=2",
        ),
        ("https://api.example/a b?q=x y", "http://h", "http://h/a%20b?q=x%20y"),
        ("https://api.example/%2F?x=%26", "http://h", "http://h/%2F?x=%26"),
        ("https://u:p@api.example:8443/x?y=1", "http://h", "http://h/x?y=1"),
        ("https://[::1]:8443?y=1#f", "http://h", "http://h/?y=1"),
    ],
)
def test_rebase_url_keeps_path_and_query(url, base, expected):
    assert str(rebase_url(url, base)) == expected
    assert str(rebase_url(httpx.URL(url), httpx.URL(base))) == expected


def test_rebase_url_refuses_what_httpx_cannot_parse():
    with pytest.raises(httpx.InvalidURL):
        rebase_url("https://api.example/x", "https://\x00/")


# -- one multi-coded body, every surface ------------------------------------------------------
DOCUMENT = {"user": "ada", "password": "hunter2", "items": [1, 2, 3]}


def _multi_coded(document: dict[str, object]) -> tl.Exchange:
    """A JSON response sent as ``Content-Encoding: gzip, br`` (gzip applied first)."""
    payload = json.dumps(document).encode()
    body = brotli.compress(gzip.compress(payload, mtime=0))
    return tl.Exchange(
        "POST",
        "https://api.example/login",
        status_code=200,
        response_headers=[
            (b"Content-Type", b"application/json"),
            (b"Content-Encoding", b"gzip, br"),
            (b"Content-Length", str(len(body)).encode()),
        ],
        response_body=body,
    )


def test_redaction_decodes_a_multi_coded_body_and_encodes_it_again():
    exchange = _multi_coded(DOCUMENT)
    stored = tl.Redactor().redact(exchange)
    assert stored.response_body != exchange.response_body
    assert dict(stored.response_headers)[b"Content-Encoding"] == b"gzip, br"
    assert (
        dict(stored.response_headers)[b"Content-Length"] == str(len(stored.response_body)).encode()
    )
    redacted = {**DOCUMENT, "password": "[REDACTED]"}
    assert json.loads(decode_body(stored.response_body, ["gzip", "br"]) or b"") == redacted
    assert stored.response is not None and stored.response.json() == redacted  # httpx agrees


def test_redaction_leaves_a_multi_coded_body_without_secrets_as_it_was():
    exchange = _multi_coded({"user": "ada", "items": [1, 2, 3]})
    stored = tl.Redactor().redact(exchange)
    assert stored.response_body == exchange.response_body


def test_every_surface_decodes_the_same_multi_coded_body_to_the_same_bytes(tmp_path: Path):
    pytest.importorskip("ipywidgets")
    from traffic_lab.frames import to_pandas
    from traffic_lab.interop import write_har
    from traffic_lab.widgets._html import message_view

    document = {"user": "ada", "items": [1, 2, 3], "note": "café"}
    exchange = _multi_coded(document)
    expected = json.dumps(document).encode()
    assert exchange.response is not None
    via_httpx = exchange.response.content

    stored = tl.Redactor().redact(exchange)
    via_redaction = decode_body(stored.response_body, content_codings(stored.response_headers))

    tl.write_capture([stored], tmp_path / "capture")
    frame = tl.read_capture(tmp_path / "capture")
    via_frames = frame.traffic.body().iloc[0]
    assert frame.traffic.text().iloc[0] == expected.decode()
    assert frame.traffic.json().iloc[0] == document
    assert to_pandas([stored]).traffic.body().iloc[0] == expected  # a frame without a capture

    view = message_view(stored, "response")
    assert (view.kind, view.note) == ("json", "decoded from gzip, br")
    via_widget = view.data

    write_har([stored], tmp_path / "out.har")
    [entry] = json.loads((tmp_path / "out.har").read_text())["log"]["entries"]
    assert entry["response"]["content"]["compression"] == len(expected) - len(stored.response_body)
    via_har = entry["response"]["content"]["text"].encode()

    assert via_httpx == via_redaction == via_frames == via_widget == via_har == expected
