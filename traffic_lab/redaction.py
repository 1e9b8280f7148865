"""Secret scrubbing, applied to a copy of every exchange before any Sink sees it.

The default :class:`Redactor` hides credentials in headers (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, API-key and token headers), in query
parameters and form fields (``token``, ``api_key``, ``secret``, ``password``...), and in JSON
fields of request and response bodies, including gzip/deflate/brotli-encoded ones. The live
request the server receives and the live response the caller gets are never changed.

Redaction is idempotent: redacting a redacted exchange changes nothing. The default
:class:`~traffic_lab.Matcher` keys requests on their redacted form, so a request that carries a
secret still finds its recorded (redacted) twin.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .exchange import Exchange

__all__ = ["DEFAULT_SECRET_HEADERS", "REDACTED", "Redactor", "is_secret_name"]

REDACTED = "[REDACTED]"

#: Headers whose values are always credentials.
DEFAULT_SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "x-auth-token",
        "x-access-token",
        "x-amz-security-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "private-token",
        "x-vault-token",
    }
)

# Field names (query parameters, form and JSON fields, header names) that hold credentials.
_SECRET_SUBSTRINGS = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "signature",
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
    "client_key",
    "authorization",
    "session_id",
    "sessionid",
)
_SECRET_WHOLE_NAMES = frozenset({"key", "pwd", "pass", "sig", "auth", "code_verifier", "otp"})
# Names that mention a secret but describe it rather than hold it ("token_type": "Bearer").
_DESCRIPTIVE_SUFFIXES = (
    "_type",
    "-type",
    "_url",
    "_uri",
    "_endpoint",
    "_expires_in",
    "_expires_at",
    "_expiry",
    "_count",
    "_length",
    "_hint",
)
# A cheap pre-check on raw bodies: no hit means no JSON/form field can need redacting.
_BODY_HINT = re.compile(
    rb"(?i)token|secret|passw|apikey|api_key|api-key|credential|signature|access_?key|"
    rb"private_?key|client_key|authorization|session_?id|\"(?:key|pwd|pass|sig|auth|otp|"
    rb"code_verifier)\"|(?:^|&)(?:key|pwd|pass|sig|auth|otp|code_verifier)="
)
# Every alternative of _BODY_HINT contains one of these words, so a body that (lowercased: the
# hint ignores ASCII case) holds none of them cannot match it. These substring tests cost about
# 1 us per KB each; the regex itself about 170 us per KB, most of a recording's time budget.
_BODY_HINT_WORDS = (
    "key",
    "pass",
    "sig",
    "auth",
    "session",
    "token",
    "secret",
    "credential",
    "pwd",
    "otp",
    "code_verifier",
)
# What a header name means to the redactor, as bit flags (cached per raw name).
_LOCATION, _SECRET, _CONTENT_TYPE, _CONTENT_ENCODING = 1, 2, 4, 8
_first = itemgetter(0)
_NO_LAYOUT: tuple[object, tuple[int, int, int]] = (None, (0, -1, -1))
# Verdicts of is_secret_name, a pure function of its argument (bounded, like the Redactor's
# header cache): query, form and JSON field names repeat from one exchange to the next.
_SECRET_NAME_CACHE: dict[str, bool] = {}


def is_secret_name(name: str) -> bool:
    """Whether a field, parameter or header name looks like it holds a credential.

    >>> is_secret_name("access_token"), is_secret_name("X-Api-Key"), is_secret_name("monkey")
    (True, True, False)
    """
    cached = _SECRET_NAME_CACHE.get(name)
    if cached is None:
        cached = _is_secret_name(name)
        if len(_SECRET_NAME_CACHE) < 4096:
            _SECRET_NAME_CACHE[name] = cached
    return cached


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if lowered in _SECRET_WHOLE_NAMES:
        return True
    if lowered.endswith(_DESCRIPTIVE_SUFFIXES):
        return False
    return any(s in lowered for s in _SECRET_SUBSTRINGS)


def _body_hint(body: bytes) -> bool:
    """``_BODY_HINT.search(body) is not None``, answered cheaply when no hint word is there."""
    # Latin-1 maps bytes to code points one to one, so ASCII words occur in this str exactly
    # where they occur in body.lower(); str's substring search is ~30% cheaper than bytes'.
    lowered = body.lower().decode("latin-1")
    for word in _BODY_HINT_WORDS:
        if word in lowered:
            return _BODY_HINT.search(body) is not None
    return False


def _parse_query(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``. With nothing to unquote (no ``%``, no
    ``+``) that is a plain split, done here at a third of the cost."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    pairs = []
    for field in query.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return pairs


class Redactor:
    """Scrubs credentials from exchanges before storage.

    Parameters
    ----------
    headers
        Header names (case-insensitive) whose values are always redacted.
    fields
        A predicate on names of query parameters, form fields, JSON fields and headers; by
        default :func:`is_secret_name`.
    replacement
        What a secret value becomes.
    enabled
        ``False`` stores exchanges exactly as they were (see :meth:`disabled`).
    extra
        A last step applied to the redacted exchange, for rules of your own.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> ex = tl.Exchange("GET", "https://api.example/x?token=abc&page=2",
    ...                  request_headers=[(b"Authorization", b"Bearer abc")], status_code=200)
    >>> red = tl.Redactor().redact(ex)
    >>> red.url
    'https://api.example/x?token=%5BREDACTED%5D&page=2'
    >>> red.request_headers
    ((b'Authorization', b'Bearer [REDACTED]'),)
    """

    def __init__(
        self,
        *,
        headers: Iterable[str] = DEFAULT_SECRET_HEADERS,
        fields: Callable[[str], bool] = is_secret_name,
        replacement: str = REDACTED,
        enabled: bool = True,
        extra: Callable[[Exchange], Exchange] | None = None,
    ) -> None:
        self.headers = frozenset(h.lower() for h in headers)
        self.fields = fields
        self.replacement = replacement
        self.enabled = enabled
        self.extra = extra
        self._replacement_bytes = replacement.encode()
        self._header_cache: dict[bytes, bool] = {}
        self._header_kinds: dict[bytes, int] = {}
        self._layouts: dict[tuple[bytes, ...], tuple[int, int, int]] = {}
        self._last_layout: tuple[object, tuple[int, int, int]] = _NO_LAYOUT

    @classmethod
    def disabled(cls) -> Redactor:
        """A redactor that changes nothing: the explicit opt-out of redaction."""
        return cls(enabled=False)

    def __repr__(self) -> str:
        return f"Redactor(enabled={self.enabled}, replacement={self.replacement!r})"

    # -- whole exchanges ------------------------------------------------------------------------
    def redact(self, exchange: Exchange) -> Exchange:
        """A redacted copy of ``exchange`` (the same object when nothing needed redacting)."""
        if not self.enabled:
            return exchange
        changes: dict[str, Any] = {}
        url = self.redact_url(exchange.url)
        if url != exchange.url:
            changes["url"] = url
        req_headers = self.redact_headers(exchange.request_headers)
        if req_headers is not exchange.request_headers:
            changes["request_headers"] = req_headers
        req_body = self.redact_body(exchange.request_body, exchange.request_headers)
        if req_body is not exchange.request_body:
            changes["request_body"] = req_body
            changes["request_headers"] = _fix_length(
                changes.get("request_headers", exchange.request_headers), len(req_body)
            )
        resp_headers = self.redact_headers(exchange.response_headers)
        if resp_headers is not exchange.response_headers:
            changes["response_headers"] = resp_headers
        if not exchange.truncated:
            resp_body = self.redact_body(exchange.response_body, exchange.response_headers)
            if resp_body is not exchange.response_body:
                changes["response_body"] = resp_body
                changes["response_headers"] = _fix_length(
                    changes.get("response_headers", exchange.response_headers), len(resp_body)
                )
        result = exchange.replace(**changes) if changes else exchange
        # Forget the last headers seen (see _layout): the redactor keeps no exchange data.
        self._last_layout = _NO_LAYOUT
        return self.extra(result) if self.extra is not None else result

    # -- parts ----------------------------------------------------------------------------------
    def is_secret_header(self, name: bytes) -> bool:
        """Whether a header's value is redacted."""
        cached = self._header_cache.get(name)
        if cached is None:
            text = name.decode("latin-1").lower()
            cached = text in self.headers or self.fields(text)
            if len(self._header_cache) < 4096:
                self._header_cache[name] = cached
        return cached

    def redact_headers(
        self, pairs: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[tuple[bytes, bytes], ...]:
        """Redacted header pairs; the same tuple when nothing is secret."""
        if not self.enabled:
            return pairs
        if not self._layout(pairs)[0] & (_LOCATION | _SECRET):
            return pairs  # the common case: no header to look at
        kinds = self._header_kinds
        out: list[tuple[bytes, bytes]] | None = None
        for i, (name, value) in enumerate(pairs):
            kind = kinds.get(name)
            if kind is None:
                kind = self._header_kind(name)
            new_value = value
            if kind & _LOCATION:
                new_value = self.redact_url(value.decode("latin-1")).encode("latin-1")
            elif kind & _SECRET:
                new_value = self._redact_header_value(name.lower(), value)
            if out is None and new_value != value:
                out = list(pairs[:i])
            if out is not None:
                out.append((name, new_value))
        return pairs if out is None else tuple(out)

    def _layout(self, pairs: tuple[tuple[bytes, bytes], ...]) -> tuple[int, int, int]:
        """What the header names of ``pairs`` mean: the union of their kinds, and the index of
        the last Content-Type and of the last Content-Encoding (-1 when absent).

        Cached by the sequence of names: responses from one service repeat the same names in
        the same order, and one tuple lookup is cheaper than a Python loop over the pairs.
        """
        last = self._last_layout  # redact() asks twice in a row about the same pairs
        if last[0] is pairs:
            return last[1]
        names = tuple(map(_first, pairs))
        layout = self._layouts.get(names)
        if layout is None:
            kinds = self._header_kinds
            flags, content_type, encoding = 0, -1, -1
            for i, name in enumerate(names):
                kind = kinds.get(name)
                if kind is None:
                    kind = self._header_kind(name)
                flags |= kind
                if kind & _CONTENT_TYPE:
                    content_type = i
                elif kind & _CONTENT_ENCODING:
                    encoding = i
            layout = (flags, content_type, encoding)
            if len(self._layouts) < 1024:
                self._layouts[names] = layout
        if type(pairs) is tuple:  # immutable; holding it keeps its id from being reused
            self._last_layout = (pairs, layout)
        return layout

    def _header_kind(self, name: bytes) -> int:
        lowered = name.lower()
        if lowered == b"location":
            kind = _LOCATION
        else:
            kind = _SECRET if self.is_secret_header(name) else 0
            if lowered == b"content-type":
                kind |= _CONTENT_TYPE
            elif lowered == b"content-encoding":
                kind |= _CONTENT_ENCODING
        if len(self._header_kinds) < 4096:
            self._header_kinds[name] = kind
        return kind

    def _redact_header_value(self, lowered: bytes, value: bytes) -> bytes:
        rep = self._replacement_bytes
        if lowered in (b"authorization", b"proxy-authorization"):
            scheme, sep, _ = value.partition(b" ")
            return scheme + b" " + rep if sep else rep
        if lowered == b"cookie":
            parts = [p.strip() for p in value.split(b";") if p.strip()]
            return b"; ".join(p.partition(b"=")[0] + b"=" + rep for p in parts)
        if lowered == b"set-cookie":
            first, sep, attributes = value.partition(b";")
            name = first.partition(b"=")[0].strip()
            return name + b"=" + rep + (sep + attributes if sep else b"")
        return rep

    def redact_url(self, url: str) -> str:
        """The URL with secret query parameter values replaced."""
        if not self.enabled or "?" not in url:
            return url
        base, _, rest = url.partition("?")
        query, hash_sign, fragment = rest.partition("#")
        new_query = self.redact_query(query)
        if new_query is query:
            return url
        return f"{base}?{new_query}{hash_sign}{fragment}"

    def redact_query(self, query: str) -> str:
        """A query string (or form body) with secret values replaced; the same object if none."""
        pairs = _parse_query(query)
        fields, replacement = self.fields, self.replacement
        for k, v in pairs:
            if fields(k) and v != replacement:
                break
        else:
            return query
        return urlencode([(k, replacement if fields(k) else v) for k, v in pairs])

    def redact_body(self, body: bytes, headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
        """A JSON or form body with secret fields replaced; the same object when none are.

        Encoded bodies (gzip, deflate, brotli) are decoded, redacted and encoded again.
        """
        if not self.enabled or not body:
            return body
        if not isinstance(headers, tuple):
            headers = tuple(headers)
        _, type_at, encoding_at = self._layout(headers)  # the last of each counts
        content_type = headers[type_at][1].lower() if type_at >= 0 else b""
        encoding = headers[encoding_at][1].lower().strip() if encoding_at >= 0 else b""
        is_json = b"json" in content_type
        is_form = b"application/x-www-form-urlencoded" in content_type
        if not (is_json or is_form):
            return body
        decoded = _decode(body, encoding)
        # The cheap pre-check knows only the default secret names: a custom predicate always
        # gets the body parsed.
        default_fields = self.fields is is_secret_name
        if decoded is None or (default_fields and not _body_hint(decoded)):
            return body
        redacted = self._redact_json(decoded) if is_json else self._redact_form(decoded)
        if redacted is None:
            return body
        encoded = _encode(redacted, encoding)
        return body if encoded is None else encoded

    def _redact_json(self, raw: bytes) -> bytes | None:
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        changed, document = self._walk(document)
        if not changed:
            return None
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def _walk(self, node: Any) -> tuple[bool, Any]:
        if isinstance(node, dict):
            changed = False
            out: dict[str, Any] = {}
            for key, value in node.items():
                if isinstance(key, str) and self.fields(key) and value != self.replacement:
                    if value is None or isinstance(value, dict | list):
                        # Containers under a secret name: scrub their leaves, keep the shape.
                        sub_changed, out[key] = self._walk_all(value)
                        changed = changed or sub_changed
                    else:
                        out[key] = self.replacement
                        changed = True
                else:
                    sub_changed, out[key] = self._walk(value)
                    changed = changed or sub_changed
            return changed, out
        if isinstance(node, list):
            changed = False
            items = []
            for item in node:
                sub_changed, new_item = self._walk(item)
                changed = changed or sub_changed
                items.append(new_item)
            return changed, items
        return False, node

    def _walk_all(self, node: Any) -> tuple[bool, Any]:
        if isinstance(node, dict):
            results = {k: self._walk_all(v) for k, v in node.items()}
            return any(c for c, _ in results.values()), {k: v for k, (_, v) in results.items()}
        if isinstance(node, list):
            results_l = [self._walk_all(v) for v in node]
            return any(c for c, _ in results_l), [v for _, v in results_l]
        if node is None or node == self.replacement:
            return False, node
        return True, self.replacement

    def _redact_form(self, raw: bytes) -> bytes | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        new = self.redact_query(text)
        return None if new is text else new.encode()


def _fix_length(
    pairs: tuple[tuple[bytes, bytes], ...], length: int
) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(
        (k, str(length).encode()) if k.lower() == b"content-length" else (k, v) for k, v in pairs
    )


def _decode(body: bytes, encoding: bytes) -> bytes | None:
    try:
        if encoding in (b"", b"identity"):
            return body
        if encoding in (b"gzip", b"x-gzip"):
            return gzip.decompress(body)
        if encoding == b"deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if encoding == b"br":
            brotli = _brotli()
            return None if brotli is None else bytes(brotli.decompress(body))
    except Exception:
        # A body that cannot be decoded (truncated, or mislabelled) cannot hold a parseable
        # JSON or form field either: leave it as it is.
        return None
    return None


def _encode(body: bytes, encoding: bytes) -> bytes | None:
    if encoding in (b"", b"identity"):
        return body
    if encoding in (b"gzip", b"x-gzip"):
        return gzip.compress(body, mtime=0)
    if encoding == b"deflate":
        return zlib.compress(body)
    if encoding == b"br":
        brotli = _brotli()
        return None if brotli is None else bytes(brotli.compress(body))
    return None


def _brotli() -> Any:
    try:
        import brotli

        return brotli
    except ImportError:
        try:
            import brotlicffi

            return brotlicffi
        except ImportError:
            return None
