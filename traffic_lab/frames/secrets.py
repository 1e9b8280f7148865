"""Secrets in captures: find stored credentials (:func:`scan_secrets`) and rewrite a capture
under a new redaction rule (:func:`redact_capture`) without recording again.

:func:`scan_secrets` reads the URL, headers and decoded bodies of every exchange and reports
known token formats anywhere (:data:`TOKEN_FORMATS`), and values in auth-like fields (headers
the redactor treats as secret; query, form and JSON fields with credential-like names,
:func:`~traffic_lab.redaction.is_secret_name`): ``Basic`` credentials and passwords always, others
when they have at least 16 characters and 3.0 bits of Shannon entropy per character (2.5 for
token-like values of letters and digits). Values already redacted are skipped, and findings show
a masked preview only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import pandas as pd

from ..errors import StoreError
from ..exchange import Exchange
from ..redaction import TOKEN_FORMATS, Redactor, is_secret_name, redact_known_tokens, scrub_tokens
from ..wire import content_codings, decode_body, header_value
from . import convert
from ._capture_ref import IDENTITY, CaptureRef, open_source
from .accessor import TrafficAccessor
from .convert import capture_of, frame_columns, frame_exchanges, write_capture
from .views import _pairs, decode_header
from .where import WhereArg, as_expression

if TYPE_CHECKING:
    from ..matching import Matcher

__all__ = [
    "FINDING_COLUMNS",
    "TOKEN_FORMATS",
    "RedactionReport",
    "redact_capture",
    "redact_known_tokens",
    "scan_secrets",
    "shannon_entropy",
]

_EXCHANGE_COLUMNS = (*IDENTITY, "started_at", "request_method", "request_url")
#: The columns of a :func:`scan_secrets` report.
FINDING_COLUMNS = (*_EXCHANGE_COLUMNS, "location", "name", "kind", "preview")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/=_.~-]+")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_AUTH_SCHEMES = ("bearer", "token", "basic", "digest", "apikey", "key", "sso-key")
_SCAN_COLUMNS = [*_EXCHANGE_COLUMNS, *convert.HEADER_COLUMNS, *convert.BODY_COLUMNS]


def shannon_entropy(value: str) -> float:
    """Bits of Shannon entropy per character.

    Examples
    --------
    >>> shannon_entropy("aaaa"), round(shannon_entropy("abcd"), 1)
    (0.0, 2.0)
    """
    n = len(value)
    return 0.0 - sum(c / n * math.log2(c / n) for c in Counter(value).values())


@dataclasses.dataclass
class _Scanner:
    replacement: str
    min_length: int
    min_entropy: float
    redactor: Redactor
    found: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)

    def add(self, location: str, name: str, kind: str, value: str) -> None:
        self.found.append((location, name, kind, f"{value[:4]}…({len(value)} chars)"))

    def redacted(self, value: str) -> bool:
        return self.replacement in value or unquote(self.replacement) in value

    def formats(self, location: str, name: str, text: str) -> bool:
        before = len(self.found)
        for kind, pattern in TOKEN_FORMATS:
            for match in pattern.finditer(text):
                value = match.group(1) if match.groups() else match.group(0)
                if not self.redacted(value):
                    self.add(location, name, kind, value)
        return len(self.found) > before

    def field(self, location: str, name: str, key: str, value: str) -> None:
        """A value under a credential-like name: passwords always count, the rest by entropy."""
        lowered = key.lower()
        if ("pass" in lowered or lowered == "pwd") and value and not self.redacted(value):
            self.add(location, name, "password", value)
        else:
            self.entropy(location, name, value)

    def entropy(self, location: str, name: str, value: str) -> None:
        if self.redacted(value) or len(value) < self.min_length:
            return
        threshold = self.min_entropy
        if _TOKEN_LIKE.fullmatch(value) and _DIGIT.search(value) and _LETTER.search(value):
            # Short hex tokens cannot reach 3 bits per character (16 symbols, few samples).
            threshold -= 0.5
        if shannon_entropy(value) >= threshold:
            self.add(location, name, "high_entropy", value)

    def url(self, url: str) -> None:
        self.formats("request.url", "", url.partition("?")[0])
        query = url.partition("?")[2].partition("#")[0]
        for key, value in parse_qsl(query, keep_blank_values=True):
            if not self.formats("request.query", key, value) and is_secret_name(key):
                self.field("request.query", key, key, value)

    def headers(self, side: str, pairs: list[tuple[str, str]]) -> None:
        location = f"{side}.header"
        for raw_name, raw_value in pairs:
            name, value = decode_header(raw_name), decode_header(raw_value)
            secret = self.redactor.is_secret_header(raw_name.encode("latin-1"))
            if self.formats(location, name, value) or not secret:
                continue
            lowered = name.lower()
            if lowered in ("cookie", "set-cookie"):
                cookies = value.split(";") if lowered == "cookie" else value.split(";")[:1]
                for cookie in cookies:
                    cname, _, cvalue = cookie.strip().partition("=")
                    self.entropy(location, f"{name}: {cname}", cvalue)
                continue
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in _AUTH_SCHEMES:
                if scheme.lower() == "basic" and not self.redacted(credential):
                    try:
                        decoded = base64.b64decode(credential, validate=True).decode()
                    except (binascii.Error, UnicodeDecodeError):
                        decoded = ""
                    if ":" in decoded:
                        self.add(location, name, "basic_auth", credential)
                        continue
                value = credential
            self.entropy(location, name, value)

    def body(self, side: str, body: bytes, pairs: list[tuple[str, str]]) -> None:
        location = f"{side}.body"
        decoded = decode_body(body, content_codings(pairs))
        if not decoded:
            return
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            return  # binary (an image): no text credentials to find
        self.formats(location, "", text)
        content_type = (header_value(pairs, "content-type") or "").lower()
        if "json" in content_type or text.lstrip()[:1] in ("{", "["):
            try:
                self.json(location, json.loads(text), "$")
            except ValueError:
                pass
        elif "x-www-form-urlencoded" in content_type:
            for key, value in parse_qsl(text, keep_blank_values=True):
                if is_secret_name(key):
                    self.field(location, key, key, value)

    def json(self, location: str, node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}"
                if isinstance(value, str) and isinstance(key, str) and is_secret_name(key):
                    if not any(p.fullmatch(value) for _, p in TOKEN_FORMATS):
                        self.field(location, sub, key, value)
                else:
                    self.json(location, value, sub)
        elif isinstance(node, list):
            for item in node:
                self.json(location, item, f"{path}[]")


def scan_secrets(
    capture: Any,
    *,
    where: WhereArg = None,
    min_length: int = 16,
    min_entropy: float = 3.0,
    redactor: Redactor | None = None,
) -> pd.DataFrame:
    """List credential-like values stored in a capture (see the module docstring).

    ``capture`` is a capture path, a store, exchanges, or a traffic frame (bodies and headers
    are fetched from its capture); ``where=`` selects exchanges (scan a very large capture in
    parts: the selection is read into memory at once); ``min_length`` and ``min_entropy`` are
    the high-entropy rule; ``redactor`` (default ``Redactor()``) decides which headers are
    auth-like and what a redacted value looks like.

    Returns one row per finding, in recorded order, with :data:`FINDING_COLUMNS`: the
    exchange's identity, time, method and URL (masked too); ``location`` (``request.url``,
    ``request.query``, ``request.header``, ``request.body``, ``response.header``,
    ``response.body``); ``name`` (header, parameter or JSON path); ``kind`` (a
    :data:`TOKEN_FORMATS` name, ``basic_auth``, ``password`` or ``high_entropy``); ``preview``
    (the first 4 characters and the length).

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> leaked = make_exchange(request_headers={"Authorization": "token ghp_" + "a1B2" * 9})
    >>> report = tl.frames.scan_secrets([leaked, make_exchange()])
    >>> report[["location", "name", "kind", "preview"]].values.tolist()
    [['request.header', 'Authorization', 'github_token', 'ghp_…(40 chars)']]
    """
    red = redactor if redactor is not None else Redactor()
    # The URL shown in the report is masked too: its query may hold what was found.
    mask = Redactor(replacement=red.replacement)
    if isinstance(capture, pd.DataFrame):
        table = frame_columns(TrafficAccessor(capture).filter(where), _SCAN_COLUMNS)
    else:
        ref = open_source(capture)
        table = ref.read(_SCAN_COLUMNS, as_expression(where, partitioned=ref.partitioned))
    rows: list[tuple[Any, ...]] = []
    for batch in table.to_batches(max_chunksize=1024):
        for record in batch.to_pylist():
            scanner = _Scanner(red.replacement, min_length, min_entropy, red)
            scanner.url(record["request_url"])
            request_pairs = _pairs(record["request_headers"])
            response_pairs = _pairs(record["response_headers"])
            scanner.headers("request", request_pairs)
            scanner.headers("response", response_pairs)
            scanner.body("request", record["request_body"] or b"", request_pairs)
            scanner.body("response", record["response_body"] or b"", response_pairs)
            if not scanner.found:
                continue
            url = mask.redact_url(record["request_url"])
            record["request_url"] = scrub_tokens(url, red.replacement)
            exchange = [record[c] for c in _EXCHANGE_COLUMNS]
            rows.extend((*exchange, *found) for found in scanner.found)
    out = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    out["started_at"] = pd.to_datetime(out["started_at"], utc=True).astype("datetime64[us, UTC]")
    out["writer_seq"] = out["writer_seq"].astype("int64")
    return out


@dataclasses.dataclass(frozen=True)
class RedactionReport:
    """What :func:`redact_capture` did: the exchanges it copied and how many it changed."""

    source: str
    destination: str
    exchanges: int
    changed: int


def redact_capture(
    capture: Any,
    redactor: Redactor,
    destination: str | os.PathLike[str],
    *,
    matcher: Matcher | None = None,
    filesystem: Any = None,
) -> RedactionReport:
    """Rewrite a capture under a redaction rule, into a new capture, without recording again.

    ``capture`` (a capture path, a store, exchanges, or a traffic frame) is only read. Every
    exchange, in recorded order, goes through ``redactor.redact`` into a new capture at
    ``destination`` (a folder or URL on ``filesystem``), which is then read back and checked.
    Delete the old capture yourself: its files still hold the secrets. Rows hidden by
    ``clear()`` are not copied. ``matcher`` keys the new capture (default: the source store's).

    Raises ``FileExistsError`` if ``destination`` is not empty (or is the source), and
    :class:`~traffic_lab.errors.StoreError` if the new capture did not read back as written
    (it is left in place for inspection).

    Examples
    --------
    >>> import os, tempfile, traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> leaked = make_exchange(request_headers={"Authorization": "Bearer " + "x9Y8" * 8})
    >>> folder = tempfile.mkdtemp()
    >>> report = tl.frames.redact_capture([leaked], tl.Redactor(), os.path.join(folder, "clean"))
    >>> report.exchanges, report.changed, len(tl.frames.scan_secrets(report.destination))
    (1, 1, 0)
    """
    target = os.fspath(destination)
    exchanges: Iterator[Exchange]
    if isinstance(capture, pd.DataFrame):
        ref = capture_of(capture) or CaptureRef()
        exchanges = frame_exchanges(capture)
    else:
        ref = open_source(capture)
        exchanges = ref.exchanges()
    if ref.location is not None and os.path.abspath(ref.location) == os.path.abspath(target):
        raise FileExistsError(f"{target} is the capture being redacted; write to a new place")
    if not convert._is_empty(target, filesystem):
        raise FileExistsError(f"{target} exists and is not empty; redact into a new capture")
    if matcher is None and not ref.detached:
        matcher = ref.matcher
    changed = 0
    starts: list[datetime] = []

    def redacted() -> Iterator[Exchange]:
        nonlocal changed
        for exchange in exchanges:
            new = redactor.redact(exchange)
            changed += new is not exchange and new != exchange
            starts.append(new.started_at)
            yield new

    written = write_capture(redacted(), target, matcher=matcher, append=True, filesystem=filesystem)
    check = open_source(target, filesystem=filesystem)  # read-only, as read_capture opens it
    stored: list[Any] = check.read(["started_at"], None).column(0).to_pylist() if written else []
    if sorted(stored) != sorted(starts):
        raise StoreError(
            f"the rewritten capture holds {len(stored)} exchanges, {written} were written; "
            "the source was not changed",
            path=target,
        )
    return RedactionReport(ref.location or ref.describe(), target, written, changed)
