"""The durable log's binary records (``TLLOG2``/``TLR2``): every field round-trips, segments of
the first format (``TLLOG1``/``TLR1``) still read, and a crafted record is named and skipped."""

from __future__ import annotations

import re
import struct
import zlib
from datetime import timedelta

import pytest

import traffic_lab as tl
from traffic_lab.errors import SkippedEntryWarning
from traffic_lab.exchange import RecordedError
from traffic_lab.stores.parquet._log import (
    _FIXED,
    DurableLog,
    encode_binary_record,
    encode_record,
    read_log,
)

from .conftest import T0, exchange

WID = "0123456789abcdef"

ODD = [
    exchange(1),
    exchange(2, status=None),  # a transport error, no response
    exchange(3).replace(
        request_headers=[(b"X-Bin", b"\x00\xff\xfe"), (b"caf\xe9", b""), (b"X-Bin", b"2")],
        request_body=b"\x00" * 3,
        tags={"session": "s\u00e9", "empty": ""},
        truncated=True,
        reason_phrase="Sp\u00e9cial",
        http_version="HTTP/2",
    ),
    tl.Exchange(
        "PATCH",
        "https://\u4e2d\u56fd.example/\u00e9?q=\u00e9",
        status_code=599,
        error=RecordedError("httpx.ReadError", "cut \u00e9"),
        started_at=T0 - timedelta(days=365 * 60),  # before 1970
        elapsed=timedelta(days=3),
    ),
]


def test_every_field_of_a_binary_record_round_trips(tmp_path):
    path = str(tmp_path / f"{WID}-000000.log")
    log = DurableLog(path, writer_id=WID, segment=0, fingerprint="f")
    for seq, ex in enumerate(ODD):
        log.append(encode_binary_record(seq * 7, ex, f"key{seq}"))
    log.append(encode_binary_record(99, exchange(9), "k")[:-3])  # torn by a crash
    log.close()
    contents = read_log(path)
    assert contents.records == [(seq * 7, ex, f"key{seq}") for seq, ex in enumerate(ODD)]
    assert contents.bad_records == [] and contents.torn_bytes > 0
    with open(path, "rb") as f:
        assert f.read(7) == b"TLLOG2\n"


def test_segments_of_the_first_format_and_mixed_records_still_read(tmp_path):
    header = b'{"writer_id": "%s", "segment": 0, "fingerprint": ""}\n' % WID.encode()
    records = [encode_record(0, ODD[0], "k0"), encode_binary_record(1, ODD[2], "k1")]
    for magic in (b"TLLOG1\n", b"TLLOG2\n"):
        path = tmp_path / f"{WID}-000000.log"
        path.write_bytes(magic + header + b"".join(records))
        assert read_log(str(path)).records == [(0, ODD[0], "k0"), (1, ODD[2], "k1")]


def _framed(payload: bytes) -> bytes:
    return struct.pack("<4sII", b"TLR2", len(payload), zlib.crc32(payload)) + payload


def _crafted(
    fixed: tuple[int, ...], fields: list[bytes], lengths: list[int] | None = None
) -> bytes:
    lengths = [len(f) for f in fields] if lengths is None else lengths
    return _framed(
        _FIXED.pack(*fixed) + struct.pack(f"<{len(lengths)}I", *lengths) + b"".join(fields)
    )


_PLAIN = [b"GET", b"https://a.example/", b"OK", b"HTTP/1.1", b"k", b"", b""]
_OK = (1, 0, 0, 200, 0, 0, 0, 0)
CRAFTED = {
    "too short": _framed(b"\x00" * 10),
    "huge header count": _crafted((1, 0, 0, 200, 0, 2**32 - 1, 0, 0), _PLAIN),
    "huge tag count": _crafted((1, 0, 0, 200, 0, 0, 0, 2**31), _PLAIN),
    "lengths past the end": _crafted(_OK, _PLAIN, [*map(len, _PLAIN[:-1]), 2**32 - 1]),
    "lengths short of the end": _crafted(_OK, [*_PLAIN[:-1], b"xx"], [*map(len, _PLAIN[:-1]), 1]),
    "sequence out of range": _crafted((2**64 - 1, *_OK[1:]), _PLAIN),
    "unknown flags": _crafted((1, 0, 0, 200, 4, 0, 0, 0), _PLAIN),
    "method not UTF-8": _crafted(_OK, [b"\xff", *_PLAIN[1:]]),
    "tag not UTF-8": _crafted(
        (1, 0, 0, 200, 0, 0, 0, 1), [*_PLAIN[:5], b"a", b"\xc3", *_PLAIN[5:]]
    ),
    "not a storable port": _crafted(_OK, [b"GET", b"https://a.example:99999/", *_PLAIN[2:]]),
    "no status nor error": _crafted((1, 0, 0, 0, 0, 0, 0, 0), _PLAIN),
    "time out of range": _crafted((1, 2**62, 0, 200, 0, 0, 0, 0), _PLAIN),
}


@pytest.mark.parametrize("crafted", CRAFTED.values(), ids=CRAFTED.keys())
def test_recovery_skips_a_crafted_binary_record_and_keeps_the_rest(tmp_path, crafted):
    cap = tmp_path / "cap"
    path = str(cap / "_traffic_lab" / "logs" / f"{WID}-000000.log")
    log = DurableLog(path, writer_id=WID, segment=0, fingerprint="")
    log.append(encode_binary_record(0, exchange(0), "k0"))
    log.append(crafted)
    log.append(encode_binary_record(2, exchange(2), "k2"))
    log.close()
    with pytest.warns(SkippedEntryWarning, match=re.escape(f"{path}: record 1: ")):
        stream = tl.ParquetStream(cap)
    assert [e.url for e in stream.exchanges()] == [exchange(0).url, exchange(2).url]
