"""Request matching: a request's key is a pure function of (request, matcher).

Stores compute the key once per exchange, keep it (the ``request_key`` column of a capture) and
index it in a dict: lookups never scan. :meth:`Matcher.diff` explains why two requests do not match,
which strict responders use to name the nearest recorded requests on a miss.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NamedTuple, TypeAlias
from urllib.parse import parse_qsl

import httpx

from .exchange import Exchange
from .redaction import Redactor, _parse_query

__all__ = ["BodyMode", "Matcher"]

BodyMode: TypeAlias = Literal["digest", "json", "form", "auto", "ignore"]
_BODY_MODES = ("digest", "json", "form", "auto", "ignore")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_MAX_URL = 65536  # longer URLs httpx refuses
_Requestish: TypeAlias = httpx.Request | Exchange
# A recorded URL as httpx writes it: a plain ASCII host, a path that needs no decoding, a query
# httpx keeps as it is (QUERY_SAFE), no fragment. _url_parts splits such a URL itself exactly as
# httpx.URL would (tests/stores/test_parquet_keys.py compares them); any other goes to httpx.
_PLAIN_URL = re.compile(
    r"(https?|wss?)://([A-Za-z0-9\-.]+)(?::(\d{1,5}))?"
    r"((?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]*)*)(?:\?([!$-;=?-~]*))?"
)


_StrPairs: TypeAlias = tuple[tuple[str, str], ...]


class _Parts(NamedTuple):
    """The normalised parts of a request that a matcher compares."""

    method: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: _StrPairs
    headers: _StrPairs
    body: str


class Matcher:
    """Computes request keys and explains mismatches.

    By default two requests match when method, scheme, host, port, path, query parameters
    (order ignored) and body digest agree. Values that the matcher's ``redactor`` hides are
    compared in redacted form, so a live request with a secret matches its redacted recording.

    Parameters
    ----------
    method, scheme, host, port, path, query
        Switch a part of the request off (``False``) to ignore it.
    ignore_query
        Query parameter names left out of the key (e.g. a cache-buster or a timestamp).
    headers
        Header names whose values are part of the key (none by default); ``True`` for all
        headers except ``ignore_headers``.
    ignore_headers
        With ``headers=True``: header names left out.
    body
        ``"digest"`` (bytes, default), ``"json"`` (by value: key order and whitespace ignored),
        ``"form"`` (by value: field order ignored), ``"auto"`` (json or form by Content-Type,
        else digest) or ``"ignore"``.
    function
        Your own key function; it replaces all of the above. Its result is turned into a string.
    redactor
        The redactor whose rules recorded exchanges went through (default: ``Redactor()``).

    Examples
    --------
    >>> import httpx, traffic_lab as tl
    >>> m = tl.Matcher()
    >>> a = httpx.Request("GET", "https://api.example/items?b=2&a=1")
    >>> b = httpx.Request("GET", "https://api.example/items?a=1&b=2")
    >>> m.key(a) == m.key(b)
    True
    >>> m.diff(a, httpx.Request("GET", "https://api.example/items?a=1&b=3"))
    ["query 'b': '2' != '3'"]
    """

    def __init__(
        self,
        *,
        method: bool = True,
        scheme: bool = True,
        host: bool = True,
        port: bool = True,
        path: bool = True,
        query: bool = True,
        ignore_query: Iterable[str] = (),
        headers: bool | Iterable[str] = (),
        ignore_headers: Iterable[str] = (),
        body: BodyMode = "digest",
        function: Callable[[httpx.Request], object] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if body not in _BODY_MODES:
            raise ValueError(f"unknown body mode {body!r}; valid modes: {', '.join(_BODY_MODES)}")
        self.method = method
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query
        self.ignore_query = frozenset(ignore_query)
        self.all_headers = headers is True
        self.headers: tuple[str, ...] = (
            () if isinstance(headers, bool) else tuple(sorted(h.lower() for h in headers))
        )
        self.ignore_headers = frozenset(h.lower() for h in ignore_headers)
        self.body: BodyMode = body
        self.function = function
        self.redactor = redactor if redactor is not None else Redactor()

    @property
    def fingerprint(self) -> str | None:
        """A stable description of this matcher's configuration (``None`` with a ``function``).

        Stores keep it beside the keys they persist, to know whether those keys can be reused.
        """
        if self.function is not None:
            return None
        config = [
            self.method,
            self.scheme,
            self.host,
            self.port,
            self.path,
            self.query,
            sorted(self.ignore_query),
            self.all_headers,
            list(self.headers),
            sorted(self.ignore_headers),
            self.body,
            self.redactor.enabled,
            self.redactor.replacement,
            sorted(self.redactor.headers),
        ]
        return hashlib.blake2b(json.dumps(config).encode(), digest_size=8).hexdigest()

    def __repr__(self) -> str:
        return f"Matcher(body={self.body!r}, fingerprint={self.fingerprint!r})"

    # -- keys -----------------------------------------------------------------------------------
    def key(self, request: _Requestish, *, redacted_by: Redactor | None = None) -> str:
        """The key of a request (an ``httpx.Request`` or an ``Exchange``'s request).

        ``redacted_by``: the redactor ``request`` went through already. When its rules are this
        matcher's redactor's, the key is computed without redacting again (redaction is
        idempotent, so the key is the same).
        """
        redacted = redacted_by is not None and _rules(redacted_by) == _rules(self.redactor)
        if self.function is not None:
            req = request.request if isinstance(request, Exchange) else request
            return str(self.function(req))
        method, scheme, host, port, path, query, headers, body = self._parts(request, redacted)
        sep = "\x1f"
        text = [method, sep, scheme, sep, host, sep, str(port), sep, path, sep]
        for k, v in query:
            text += (k, "=", v, "&")
        text.append(sep)
        for k, v in headers:
            text += (k, ":", v, "\n")
        text += (sep, body)
        # UTF-8 of the joined text is the concatenation of the parts' UTF-8: hashed in one
        # update, it gives the same digest as hashing part by part (keys are persisted).
        return hashlib.blake2b("".join(text).encode(), digest_size=16).hexdigest()

    def _parts(self, request: _Requestish, redacted: bool = False) -> _Parts:
        raw_headers: Sequence[tuple[bytes, bytes]] | None
        if isinstance(request, Exchange):
            method = request.method
            scheme, host, port, path, raw_query = _url_parts(request.url)
            raw_headers = request.request_headers
            body = request.request_body
        else:
            method = request.method
            scheme, host, port, path, raw_query = _httpx_url_parts(request.url)
            raw_headers = None  # Headers.raw builds a list: only when headers or a body count
            body = request.content
        if raw_headers is None and (self.all_headers or self.headers or body):
            assert isinstance(request, httpx.Request)
            raw_headers = request.headers.raw
        # A disabled redactor stores secrets as they are, but keys still hide query secrets.
        redactor = None if redacted and self.redactor.enabled else self.redactor
        query: _StrPairs = ()
        if raw_query and self.query:
            pairs = _parse_query(
                raw_query if redactor is None else redactor.redact_query(raw_query)
            )
            if self.ignore_query:
                pairs = [p for p in pairs if p[0] not in self.ignore_query]
            query = tuple(sorted(pairs))
        headers: _StrPairs = ()
        if raw_headers is not None and (self.all_headers or self.headers):
            pairs_in = tuple(raw_headers)
            chosen = []
            for name, value in pairs_in if redactor is None else redactor.redact_headers(pairs_in):
                lname = name.decode("latin-1").lower()
                if (self.all_headers and lname not in self.ignore_headers) or (
                    lname in self.headers
                ):
                    chosen.append((lname, value.decode("latin-1")))
            headers = tuple(sorted(chosen))
        return _Parts(
            method.upper() if self.method else "",
            scheme if self.scheme else "",
            host if self.host else "",
            port if self.port else None,
            path if self.path else "",
            query,
            headers,
            self._body_key(body, tuple(raw_headers), redactor) if raw_headers is not None else "",
        )

    def _body_key(
        self, body: bytes, headers: tuple[tuple[bytes, bytes], ...], redactor: Redactor | None
    ) -> str:
        mode = self.body
        if mode == "ignore" or not body:
            return ""
        if redactor is not None:
            body = redactor.redact_body(body, headers)
        if mode == "auto":
            content_type = b""
            for k, v in headers:
                if k.lower() == b"content-type":
                    content_type = v.lower()
            if b"json" in content_type:
                mode = "json"
            elif b"x-www-form-urlencoded" in content_type:
                mode = "form"
            else:
                mode = "digest"
        if mode == "json":
            try:
                value = json.loads(body)
                return "json:" + json.dumps(value, sort_keys=True, separators=(",", ":"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                pass  # not JSON, or nested too deep to compare by value: compare the bytes
        elif mode == "form":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                pairs = sorted(parse_qsl(text, keep_blank_values=True))
                return "form:" + json.dumps(pairs)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    # -- diagnostics ----------------------------------------------------------------------------
    def diff(self, a: _Requestish, b: _Requestish) -> list[str]:
        """What differs between two requests, in the parts this matcher compares.

        An empty list means they match (for a matcher with a ``function``: equal keys).
        """
        if self.function is not None:
            ka, kb = self.key(a), self.key(b)
            return [] if ka == kb else [f"key function: {ka!r} != {kb!r}"]
        pa, pb = self._parts(a), self._parts(b)
        out = [
            f"{name}: {va!r} != {vb!r}"
            for name, va, vb in zip(pa._fields[:5], pa[:5], pb[:5], strict=True)
            if va != vb
        ]
        out.extend(_diff_pairs("query", pa.query, pb.query))
        out.extend(_diff_pairs("header", pa.headers, pb.headers))
        if pa.body != pb.body:
            out.append(f"body: {_short(pa.body)} != {_short(pb.body)}")
        return out

    def nearest(
        self, request: _Requestish, candidates: Iterable[_Requestish], n: int = 3
    ) -> list[tuple[httpx.Request, list[str]]]:
        """The ``n`` candidates that differ from ``request`` in the fewest parts, with the diffs.

        Used on a miss only (it reads every candidate); lookups themselves never scan.
        """
        scored: list[tuple[int, int, httpx.Request, list[str]]] = []
        for i, candidate in enumerate(candidates):
            differences = self.diff(candidate, request)
            req = candidate.request if isinstance(candidate, Exchange) else candidate
            scored.append((len(differences), i, req, differences))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [(req, diffs) for _, _, req, diffs in scored[:n]]


def _rules(redactor: Redactor) -> tuple[object, ...]:
    """What of a redactor the keys depend on."""
    return redactor.enabled, redactor.replacement, redactor.headers, redactor.fields


def _httpx_url_parts(url: httpx.URL) -> tuple[str, str, int | None, str, str]:
    """(scheme, host, port or the scheme's default, decoded path, raw query) of a URL."""
    port = url.port
    if port is None:
        port = _DEFAULT_PORTS.get(url.scheme)
    return url.scheme, url.host, port, url.path, url.query.decode("ascii", "replace")


def _url_parts(url: str) -> tuple[str, str, int | None, str, str]:
    """:func:`_httpx_url_parts` of a URL string, without parsing the usual recorded URL again.

    httpx lowercases scheme and host, decodes a host starting ``xn--`` and checks IPv4-like
    ones, removes ``.``/``..`` path segments and decodes ``%`` escapes in the path: a URL
    where any of this could apply goes through httpx.URL.
    """
    match = _PLAIN_URL.fullmatch(url) if len(url) <= _MAX_URL else None
    if match is not None:
        scheme, host, port, path, query = match.groups()
        host = host.lower()
        if not (host[0].isdigit() or "xn--" in host or "/." in path):
            return (
                scheme,
                host,
                int(port) if port else _DEFAULT_PORTS[scheme],
                path or "/",
                query or "",
            )
    return _httpx_url_parts(httpx.URL(url))


def _diff_pairs(label: str, a: _StrPairs, b: _StrPairs) -> list[str]:
    if a == b:
        return []
    da: dict[str, list[str]] = {}
    db: dict[str, list[str]] = {}
    for k, v in a:
        da.setdefault(k, []).append(v)
    for k, v in b:
        db.setdefault(k, []).append(v)
    out = []
    for k in sorted(set(da) | set(db)):
        va, vb = da.get(k), db.get(k)
        if va == vb:
            continue
        if va is None:
            out.append(f"{label} {k!r}: only in the second request")
        elif vb is None:
            out.append(f"{label} {k!r}: only in the first request")
        else:
            out.append(f"{label} {k!r}: {_one(va)!r} != {_one(vb)!r}")
    return out


def _one(values: list[str]) -> Any:
    return values[0] if len(values) == 1 else values


def _short(text: str, limit: int = 60) -> str:
    if not text:
        return "(empty)"
    return text if len(text) <= limit else text[: limit - 3] + "..."
