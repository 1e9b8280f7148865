"""Secret scrubbing, applied to a copy of every exchange before any Sink sees it.

The default :class:`Redactor` hides credentials in headers (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, API-key and token headers), in URLs (query
and fragment parameters such as ``token``, ``api_key``, ``secret``, ``password``..., and
userinfo), also inside URL-valued headers (``Location``, ``Content-Location``, ``Referer``,
``Link``, ``Refresh``), in form fields, multipart fields and file names, JSON fields of request
and response bodies (including gzip/deflate/brotli-encoded ones), and in recorded transport
error messages. JSON that cannot be parsed but may name a secret is stored as the replacement
alone (fail closed). ``docs/redaction.md`` has the full table of what is and is not covered.
The live request the server receives and the live response the caller gets are never changed.

Redaction is idempotent: redacting a redacted exchange changes nothing. The default
:class:`~traffic_lab.Matcher` keys requests on their redacted form, so a request that carries a
secret still finds its recorded (redacted) twin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .exchange import Exchange, RecordedError
from .wire import content_codings, decode_body, encode_body, with_content_length

__all__ = [
    "DEFAULT_SECRET_HEADERS",
    "REDACTED",
    "TOKEN_FORMATS",
    "URL_HEADERS",
    "Redactor",
    "is_secret_name",
    "redact_known_tokens",
    "scrub_tokens",
]

REDACTED = "[REDACTED]"

#: Known credential formats: (kind, regular expression).
TOKEN_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_\w{22,255})")),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("stripe_key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("openai_key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}")),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("url_credentials", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@")),
)

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
    # LLM APIs' token counts (usage.input_tokens, max_tokens...), not credentials.
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "max_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "audio_tokens",
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
# An escape that spells a character of a secret name (a letter, digit, "_" or "-"), or U+212A
# KELVIN SIGN, the one non-ASCII character whose lower() is ASCII and part of a secret name
# ("\u0130".lower() is "i" and U+0307, which no name contains).
_ESCAPED_NAME_CHAR = re.compile(
    rb"(?:\\u00|%)(?:[46][0-9a-fA-F]|[57][0-9aA]|3[0-9]|2[dD]|5[fF])"
    rb"|\\u212[aA]|%[eE]2%84%[aA][aA]|\xe2\x84\xaa"
)
# What a header name means to the redactor, as bit flags (cached per raw name).
_LOCATION, _SECRET, _CONTENT_TYPE, _CONTENT_ENCODING = 1, 2, 4, 8
#: Headers whose values hold URLs (or, for Link and Refresh, URLs among other text): their
#: secret query parameters, fragment parameters and userinfo are redacted like the URL's.
URL_HEADERS: frozenset[bytes] = frozenset(
    {b"location", b"content-location", b"referer", b"link", b"refresh"}
)
_LINK_TARGET = re.compile(r"<([^>]*)>")
_REFRESH_URL = re.compile(r"(?is)(^[^;,]*[;,]\s*url\s*=\s*)(.*)$")
# In a transport error's text: a URL, or a name=value pair outside one.
_MESSAGE_PART = re.compile(
    r"(?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+)"
    r"|(?<![\w.\-%])(?P<name>[A-Za-z_][\w.\-]*)=(?P<value>[^\s&'\"<>;,)\]]+)"
)
# Known secret values shorter than this are not searched for in error messages.
_MIN_KNOWN_SECRET = 4
# multipart: the boundary parameter of a Content-Type, the parameters of a
# Content-Disposition, and how deep multipart bodies nested in parts are parsed.
_BOUNDARY = re.compile(rb'(?i)(?:^|;)\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;,]+))')
_DISPOSITION_PARAM = re.compile(rb'(?i);\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_MAX_MULTIPART_DEPTH = 4
# JSON that json.loads cannot take (nested too deep, several documents, or not JSON): read as
# tokens. Every character belongs to one token: a string, a string cut by the end of the text
# ("u"), punctuation, whitespace, or a bare word (numbers, true, false, null... or garbage).
_JSON_TOKEN = re.compile(
    r'(?P<s>"[^"\\]*(?:\\.[^"\\]*)*")'
    r"|(?P<p>[{}\[\]:,])"
    r"|(?P<w>[\s\ufeff]+)"
    r'|(?P<u>"[^"\\]*(?:\\.[^"\\]*)*\\?)'
    r'|(?P<b>[^\s\ufeff{}\[\]:,"]+)',
    re.S,
)
_JSON_CONTROL = re.compile(r"[\x00-\x1f]")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_JSON_LITERALS = frozenset({"true", "false", "null", "NaN", "Infinity", "-Infinity"})
# Candidate field names in a body that cannot be parsed: quoted strings and bare words.
_NAME_CANDIDATE = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"{}\[\]:,;=&\'<>()]+)')
_first = itemgetter(0)
_Pairs = tuple[tuple[bytes, bytes], ...]
# What _layout tells of a header list: kinds, last Content-Type, every Content-Encoding.
_Layout = tuple[int, int, tuple[int, ...]]
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
    """Whether ``body`` may hold a field with a default secret name: ``_BODY_HINT`` matches, or
    a name may be spelled so that no byte search sees it (escapes, a Kelvin sign, UTF-16)."""
    # Latin-1 maps bytes to code points one to one, so ASCII words occur in this str exactly
    # where they occur in body.lower(); str's substring search is ~30% cheaper than bytes'.
    lowered = body.lower().decode("latin-1")
    for word in _BODY_HINT_WORDS:
        if word in lowered:
            if _BODY_HINT.search(body) is not None:
                return True
            break
    # No plain secret name: one may still be written with escapes ("pass\u0077ord" in JSON,
    # "pass%77ord" in a form), with U+212A (its lower() is "k"), or in UTF-16/32 JSON (which
    # json.loads accepts; NUL bytes among the first four). Each test is one C-level scan.
    escapes = "\\u" in lowered or "%" in lowered or "\xe2\x84\xaa" in lowered
    if escapes and _ESCAPED_NAME_CHAR.search(body) is not None:
        return True
    return 0 in body[:4]


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
        # Two bounded caches: what a header name means (bit flags), and what a sequence of
        # header names means (responses from one service repeat the same names in order).
        self._kinds: dict[bytes, int] = {}
        self._layouts: dict[tuple[bytes, ...], _Layout] = {}

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
        req_layout = self._layout(exchange.request_headers)
        req_headers = self._redact_headers(exchange.request_headers, req_layout)
        if req_headers is not exchange.request_headers:
            changes["request_headers"] = req_headers
        req_body = self._redact_body(exchange.request_body, exchange.request_headers, req_layout)
        if req_body is not exchange.request_body:
            changes["request_body"] = req_body
            changes["request_headers"] = with_content_length(
                changes.get("request_headers", exchange.request_headers), len(req_body)
            )
        resp_layout = self._layout(exchange.response_headers)
        resp_headers = self._redact_headers(exchange.response_headers, resp_layout)
        if resp_headers is not exchange.response_headers:
            changes["response_headers"] = resp_headers
        resp_body = self._redact_body(
            exchange.response_body, exchange.response_headers, resp_layout
        )
        if resp_body is not exchange.response_body:
            changes["response_body"] = resp_body
            if not exchange.truncated:  # a cut body's Content-Length tells the full length
                changes["response_headers"] = with_content_length(
                    changes.get("response_headers", exchange.response_headers), len(resp_body)
                )
        error = exchange.error
        if error is not None:
            message = self.redact_message(error.message, exchange)
            if message != error.message:
                changes["error"] = RecordedError(error.type, message)
        result = exchange.replace(**changes) if changes else exchange
        return self.extra(result) if self.extra is not None else result

    # -- parts ----------------------------------------------------------------------------------
    def is_secret_header(self, name: bytes) -> bool:
        """Whether a header's value is redacted."""
        return bool(self._kind(name) & _SECRET)

    def redact_headers(self, pairs: _Pairs) -> _Pairs:
        """Redacted header pairs; the same tuple when nothing is secret."""
        if not self.enabled:
            return pairs
        return self._redact_headers(pairs, self._layout(pairs))

    def _redact_headers(self, pairs: _Pairs, layout: _Layout) -> _Pairs:
        if not layout[0] & (_LOCATION | _SECRET):
            return pairs  # the common case: no header to look at
        out: list[tuple[bytes, bytes]] | None = None
        for i, (name, value) in enumerate(pairs):
            kind = self._kind(name)
            new_value = value
            if kind & _LOCATION:
                new_value = self._redact_url_header(name.lower(), value)
            elif kind & _SECRET:
                new_value = self._redact_header_value(name.lower(), value)
            if out is None and new_value != value:
                out = list(pairs[:i])
            if out is not None:
                out.append((name, new_value))
        return pairs if out is None else tuple(out)

    def _layout(self, pairs: _Pairs) -> _Layout:
        """What the header names of ``pairs`` mean: the union of their kinds, the index of the
        last Content-Type (-1 when absent) and the indexes of every Content-Encoding."""
        names = tuple(map(_first, pairs))
        layout = self._layouts.get(names)
        if layout is None:
            flags, content_type, encodings = 0, -1, []
            for i, name in enumerate(names):
                kind = self._kind(name)
                flags |= kind
                if kind & _CONTENT_TYPE:
                    content_type = i
                elif kind & _CONTENT_ENCODING:
                    encodings.append(i)
            layout = (flags, content_type, tuple(encodings))
            if len(self._layouts) < 1024:
                self._layouts[names] = layout
        return layout

    def _kind(self, name: bytes) -> int:
        kind = self._kinds.get(name)
        if kind is None:
            text = name.decode("latin-1").lower()
            kind = _SECRET if text in self.headers or self.fields(text) else 0
            lowered = name.lower()
            if lowered in URL_HEADERS:
                kind |= _LOCATION
            elif lowered == b"content-type":
                kind |= _CONTENT_TYPE
            elif lowered == b"content-encoding":
                kind |= _CONTENT_ENCODING
            if len(self._kinds) < 4096:
                self._kinds[name] = kind
        return kind

    def _redact_header_value(self, lowered: bytes, value: bytes) -> bytes:
        rep = self._replacement_bytes
        if lowered in (b"authorization", b"proxy-authorization"):
            scheme, sep, _ = value.partition(b" ")
            return scheme + b" " + rep if sep else rep
        if lowered == b"cookie":
            # Each pair's value goes; a pair without "=" is all value (browsers read it as a
            # cookie with an empty name).
            parts = [p.strip() for p in value.split(b";") if p.strip()]
            return b"; ".join(_cookie_pair(p, rep) for p in parts)
        if lowered == b"set-cookie":
            first, sep, attributes = value.partition(b";")
            return _cookie_pair(first.strip(), rep) + (sep + attributes if sep else b"")
        return rep

    def _redact_url_header(self, lowered: bytes, value: bytes) -> bytes:
        text = value.decode("latin-1")
        if lowered == b"link":
            new = _LINK_TARGET.sub(lambda m: f"<{self.redact_url(m.group(1))}>", text)
        elif lowered == b"refresh":
            match = _REFRESH_URL.match(text)
            if match is None:
                return value
            target = match.group(2)
            quoted = len(target) > 1 and target[0] in "'\"" and target[-1] == target[0]
            if quoted:
                target = target[1:-1]
            target = self.redact_url(target)
            new = match.group(1) + (
                f"{match.group(2)[0]}{target}{match.group(2)[0]}" if quoted else target
            )
        else:
            new = self.redact_url(text)
        return value if new == text else new.encode("latin-1")

    def redact_url(self, url: str) -> str:
        """The URL with its secrets replaced: secret query parameter values, the same in a
        fragment written as parameters (``#access_token=...``), and userinfo (the password,
        or a user name alone, which is often a token)."""
        if not self.enabled:
            return url
        if "#" not in url and "@" not in url:  # the common case: at most a query
            if "?" not in url:
                return url
            base, _, query = url.partition("?")
            new_query = self.redact_query(query)
            return url if new_query is query else f"{base}?{new_query}"
        rest, hash_sign, fragment = url.partition("#")
        base, question, query = rest.partition("?")
        new_base = self._redact_userinfo(base) if "@" in base else base
        new_query = self.redact_query(query) if query else query
        new_fragment = self._redact_fragment(fragment) if "=" in fragment else fragment
        if new_base is base and new_query is query and new_fragment is fragment:
            return url
        return f"{new_base}{question}{new_query}{hash_sign}{new_fragment}"

    def _redact_fragment(self, fragment: str) -> str:
        """Parameters in a fragment: ``#access_token=...``, or ``#/route?token=...``."""
        route, question, params = fragment.rpartition("?")
        if not question:
            return self.redact_query(fragment)
        new_params = self.redact_query(params)
        return fragment if new_params is params else f"{route}?{new_params}"

    def _redact_userinfo(self, base: str) -> str:
        scheme_end = base.find("://")
        if scheme_end >= 0:
            start = scheme_end + 3
        elif base.startswith("//"):  # scheme-relative
            start = 2
        else:
            return base
        end = base.find("/", start)
        end = len(base) if end < 0 else end
        userinfo, at, host = base[start:end].rpartition("@")
        if not at:
            return base
        hidden = quote(self.replacement, safe="")
        user, colon, password = userinfo.partition(":")
        if colon:
            if not password or password == hidden:
                return base
            new_userinfo = f"{user}:{hidden}"
        elif userinfo and userinfo != hidden:
            new_userinfo = hidden
        else:
            return base
        return f"{base[:start]}{new_userinfo}@{host}{base[end:]}"

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
        """A JSON, form or multipart body with secret fields replaced; the same object when
        none are.

        Encoded bodies (gzip, deflate, brotli) are decoded, redacted and encoded again. JSON
        that cannot be parsed but may name a secret is replaced whole (see
        ``docs/redaction.md``).
        """
        if not self.enabled or not body:
            return body
        if not isinstance(headers, tuple):
            headers = tuple(headers)
        return self._redact_body(body, headers, self._layout(headers))

    def _redact_body(self, body: bytes, headers: _Pairs, layout: _Layout) -> bytes:
        if not body:
            return body
        _, type_at, encodings = layout  # the last Content-Type counts
        content_type = headers[type_at][1] if type_at >= 0 else b""
        return self._redact_entity(body, content_type, headers, encodings, 0)

    def _redact_entity(
        self, body: bytes, content_type: bytes, headers: _Pairs, coded: tuple[int, ...], depth: int
    ) -> bytes:
        """``body`` of a message or a multipart part, by its type and by the content codings
        of ``headers[i] for i in coded`` (its Content-Encoding headers)."""
        lowered = content_type.lower()
        is_multipart = lowered.lstrip().startswith(b"multipart/")
        is_json = not is_multipart and b"json" in lowered
        is_form = not is_multipart and b"application/x-www-form-urlencoded" in lowered
        if not (is_json or is_form or is_multipart):
            return body
        # Codings are read only now, past the cheap exits: most bodies never get here.
        codings = content_codings([headers[i] for i in coded]) if coded else ()
        decoded = decode_body(body, codings) if codings else body
        if decoded is None:
            # A body that does not decode (cut short, mislabelled, a coding this Python lacks)
            # cannot hold a parseable JSON or form field either: leave it as it is.
            return body
        if is_multipart:
            redacted = self._redact_multipart(decoded, content_type, depth)
        else:
            # The cheap pre-check knows only the default secret names: a custom predicate
            # always gets the body parsed.
            if self.fields is is_secret_name and not _body_hint(decoded):
                return body
            redacted = self._redact_json(decoded) if is_json else self._redact_form(decoded)
        if redacted is None:
            return body
        encoded = encode_body(redacted, codings) if codings else redacted
        return body if encoded is None else encoded

    # -- JSON -----------------------------------------------------------------------------------
    def _redact_json(self, raw: bytes) -> bytes | None:
        try:
            document = json.loads(raw)
            changed, document = self._walk(document)
            if not changed:
                return None
            return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        except (ValueError, RecursionError):
            # Not one JSON document (several, cut, not JSON), or nested deeper than Python
            # recurses: read it token by token instead.
            return self._redact_json_tokens(raw)

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

    def _redact_json_tokens(self, raw: bytes) -> bytes | None:
        """Redaction of JSON that ``json.loads`` refused, without recursion.

        A sequence of JSON values (one nested too deep, or NDJSON) is redacted as the parsed
        path would and written in the same compact form (whitespace between top-level values
        kept). Anything else fails closed: if it may name a secret, the whole body becomes the
        replacement.
        """
        try:
            text: str | None = raw.decode(json.detect_encoding(raw))
        except (UnicodeDecodeError, LookupError):
            text = None
        if text is not None:
            try:
                result = self._scrub_json_text(text)
            except (ValueError, RecursionError):  # a token json cannot read (a bad escape)
                result = None
            if result is not None:
                changed, scrubbed = result
                return scrubbed.encode() if changed else None
        return self._fail_closed(raw)

    def _scrub_json_text(self, text: str) -> tuple[bool, str] | None:
        """``text`` as compact JSON with secret fields replaced, and whether any was; ``None``
        if ``text`` is not a sequence of JSON values. An explicit stack, no recursion."""
        fields, replacement = self.fields, self.replacement
        rep_token = json.dumps(replacement, ensure_ascii=False)
        value, key, colon, after = 0, 1, 2, 3  # what may come next
        state = value
        out: list[str] = []
        top_spaces: list[int] = []  # indexes in out of whitespace between top-level values
        stack: list[str] = []  # the open containers' closing brackets
        may_close = False  # a container just opened: it may close at once
        pending = False  # the next value is a secret-named field's
        scrub_depth = 0  # > 0: in a container under a secret name, opened at this depth
        values = 0  # top-level values
        changed = False
        for match in _JSON_TOKEN.finditer(text):
            kind, token = match.lastgroup, match.group()
            if kind == "w":
                if not stack:
                    top_spaces.append(len(out))
                    out.append(token)
                continue
            if kind == "u":
                return None  # a string cut by the end of the text
            if state == colon:
                if token != ":":
                    return None
                out.append(token)
                state = value
                continue
            if state == after:
                if not stack:
                    state = value  # the next of several top-level values
                elif token == ",":
                    out.append(token)
                    state = key if stack[-1] == "}" else value
                    may_close = False
                    continue
                elif token == stack[-1]:
                    state, may_close = _close_json(stack, out, token), False
                    scrub_depth = 0 if scrub_depth > len(stack) else scrub_depth
                    values += not stack
                    continue
                else:
                    return None
            if state == key:
                if token == "}" and may_close:
                    state, may_close = _close_json(stack, out, token), False
                    scrub_depth = 0 if scrub_depth > len(stack) else scrub_depth
                    values += not stack
                    continue
                if kind != "s":
                    return None
                name, canonical = _json_string(token)
                out.append(canonical)
                pending = not scrub_depth and fields(name)
                state = colon
                continue
            # state == value
            if kind == "p":
                if token in "{[":
                    stack.append("}" if token == "{" else "]")
                    out.append(token)
                    if pending and not scrub_depth:
                        scrub_depth = len(stack)
                    pending, may_close = False, True
                    state = key if token == "{" else value
                    continue
                if token == "]" and may_close and stack and stack[-1] == "]":
                    state, may_close = _close_json(stack, out, token), False
                    scrub_depth = 0 if scrub_depth > len(stack) else scrub_depth
                    values += not stack
                    continue
                return None
            decoded: str | None
            if kind == "s":
                decoded, canonical = _json_string(token)
            elif token in _JSON_LITERALS:
                decoded, canonical = (None if token == "null" else token), token
            elif _JSON_NUMBER.fullmatch(token):
                canonical = json.dumps(json.loads(token))
                decoded = canonical
            else:
                return None
            if (pending or scrub_depth) and decoded is not None and decoded != replacement:
                canonical = rep_token
                changed = True
            out.append(canonical)
            pending, may_close = False, False
            values += not stack
            state = after
        if stack or state in (key, colon):
            return None
        if values <= 1:  # one document: written as the parsed path writes it
            for i in top_spaces:
                out[i] = ""
        return changed, "".join(out)

    def _fail_closed(self, raw: bytes) -> bytes | None:
        """A body that could not be parsed: replaced whole if it may name a secret."""
        if raw == self._replacement_bytes or not self._may_name_secret(raw):
            return None
        return self._replacement_bytes

    def _may_name_secret(self, raw: bytes) -> bool:
        try:
            text = raw.decode(json.detect_encoding(raw))
        except (UnicodeDecodeError, LookupError):
            text = raw.decode("latin-1")
        fields = self.fields
        for match in _NAME_CANDIDATE.finditer(text):
            quoted, word = match.groups()
            name = word if word is not None else quoted
            if "\\" in name and quoted is not None:
                try:
                    name = json.loads(f'"{name}"')
                except ValueError:
                    pass
            if fields(name) or ("%" in name and fields(unquote(name))):
                return True
        return False

    # -- forms and multipart ------------------------------------------------------------------
    def _redact_form(self, raw: bytes) -> bytes | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Not UTF-8: undecodable bytes ride as surrogates and are written back as they were
            # (percent-encoded), so the secret fields still go.
            text = raw.decode("utf-8", "surrogateescape")
            pairs = parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
            fields, replacement = self.fields, self.replacement
            if not any(fields(k) and v != replacement for k, v in pairs):
                return None
            redacted = [(k, replacement if fields(k) else v) for k, v in pairs]
            return urlencode(redacted, errors="surrogateescape").encode("ascii")
        new = self.redact_query(text)
        return None if new is text else new.encode()

    def _redact_multipart(self, body: bytes, content_type: bytes, depth: int) -> bytes | None:
        """A multipart body with secret parts replaced, framing kept byte for byte.

        A part is secret when its field name or its file name is; its content becomes the
        replacement (and a secret file name too). Other parts are redacted by their own
        Content-Type (JSON, form, nested multipart). A body whose parts cannot be found fails
        closed, as JSON does.
        """
        match = _BOUNDARY.search(content_type)
        boundary = (match.group(1) or match.group(2)) if match else None
        if not boundary or depth > _MAX_MULTIPART_DEPTH:
            return self._fail_closed(body)
        delimiter = b"--" + boundary
        first = 0 if body.startswith(delimiter) else body.find(b"\n" + delimiter) + 1
        if first < 0 or (first == 0 and not body.startswith(delimiter)):
            return self._fail_closed(body)
        line_end = body.find(b"\n", first)
        newline = b"\r\n" if line_end > 0 and body[line_end - 1 : line_end] == b"\r" else b"\n"
        separator = newline + delimiter  # before each delimiter after the first
        out = [body[:first]]
        at = first
        while True:
            after = at + len(delimiter)
            line_end = body.find(b"\n", after)
            if body.startswith(b"--", after) or line_end < 0:
                out.append(body[at:])  # the close delimiter and epilogue, or a cut line
                break
            head_start = line_end + 1
            if body.startswith(newline, head_start):  # a part without headers
                head_end = head_start
                content_start = head_start + len(newline)
            else:
                head_end = body.find(newline + newline, head_start)
                if head_end < 0:  # cut within the headers: a file name may still show
                    head, _ = self._redact_part_head(body[head_start:], newline)
                    out += [body[at:head_start], head]
                    break
                content_start = head_end + 2 * len(newline)
            next_at = body.find(separator, content_start)
            content_end = len(body) if next_at < 0 else next_at
            head, content = self._redact_part(
                body[head_start:head_end], body[content_start:content_end], newline, depth
            )
            out += [body[at:head_start], head, body[head_end:content_start], content]
            if next_at < 0:
                break  # cut within the content
            out.append(newline)
            at = next_at + len(newline)
        result = b"".join(out)
        return None if result == body else result

    def _redact_part(
        self, head: bytes, content: bytes, newline: bytes, depth: int
    ) -> tuple[bytes, bytes]:
        new_head, secret = self._redact_part_head(head, newline)
        part_type = b""
        for line in head.split(newline):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-type":
                part_type = value.strip()
        if secret:
            new_content = self._replacement_bytes
        else:
            new_content = self._redact_entity(content, part_type, (), (), depth + 1)
        if new_content != content and b"content-length" in new_head.lower():
            lines = new_head.split(newline)
            for i, line in enumerate(lines):
                name, colon, _ = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    lines[i] = name + colon + b" " + str(len(new_content)).encode()
            new_head = newline.join(lines)
        return new_head, new_content

    def _redact_part_head(self, head: bytes, newline: bytes) -> tuple[bytes, bool]:
        """The part's headers with a secret file name replaced, and whether the part is
        secret (its field name or file name is)."""
        lines = head.split(newline)
        secret = False
        for i, line in enumerate(lines):
            name, colon, value = line.partition(b":")
            if not colon or name.strip().lower() != b"content-disposition":
                continue
            pieces = []
            last = 0
            for param in _DISPOSITION_PARAM.finditer(value):
                kind = param.group(1).lower()
                raw = param.group(2)
                if kind == b"name":
                    secret = secret or self.fields(_param_text(raw))
                elif kind in (b"filename", b"filename*"):
                    text = _param_text(raw, extended=kind == b"filename*")
                    if text != self.replacement and self._is_secret_filename(text):
                        secret = True
                        if kind == b"filename":
                            hidden = b'"' + self._replacement_bytes + b'"'
                        else:
                            hidden = b"UTF-8''" + quote(self.replacement, safe="").encode()
                        pieces += [value[last : param.start(2)], hidden]
                        last = param.end(2)
            if pieces:
                lines[i] = name + colon + b"".join(pieces) + value[last:]
        return (newline.join(lines) if secret else head), secret

    def _is_secret_filename(self, filename: str) -> bool:
        base = filename.replace("\\", "/").rpartition("/")[2]
        stem = base.partition(".")[0]
        return any(self.fields(n) for n in (filename, base, stem) if n)

    # -- transport errors ---------------------------------------------------------------------
    def redact_message(self, message: str, exchange: Exchange | None = None) -> str:
        """A transport error's text with secrets replaced: in URLs (as :meth:`redact_url`),
        in ``name=value`` pairs with a secret name, and, given the ``exchange`` it came from,
        every secret value of that exchange's URL and headers (of 4 characters or more)
        wherever it appears."""
        if not self.enabled or not message:
            return message
        fields, replacement = self.fields, self.replacement
        hidden = (replacement, quote(replacement, safe=""))

        def one(match: re.Match[str]) -> str:
            url = match.group("url")
            if url is not None:
                return self.redact_url(url)
            name = match.group("name")
            start = match.start("value")
            if any(message.startswith(h, start) for h in hidden) or not (
                fields(name) or fields(unquote(name))
            ):
                return match.group()
            return f"{name}={replacement}"

        text = _MESSAGE_PART.sub(one, message)
        if exchange is not None:
            for value in self._secret_values(exchange):
                text = text.replace(value, replacement)
        return text

    def _secret_values(self, exchange: Exchange) -> list[str]:
        """The secret values an exchange's URL and headers carry, longest first."""
        fields = self.fields
        found: set[str] = set()
        rest = exchange.url.partition("#")
        base, _, query = rest[0].partition("?")
        for part in (query, rest[2]):
            for field in part.split("&"):
                key, eq, value = field.partition("=")
                if eq and (fields(key) or fields(unquote(key))):
                    found.update((value, unquote(value), unquote(value.replace("+", " "))))
        authority = base.partition("://")[2].partition("/")[0]
        if "@" in authority:
            user, colon, password = authority.rpartition("@")[0].partition(":")
            found.update((password, unquote(password)) if colon else (user, unquote(user)))
        for pairs in (exchange.request_headers, exchange.response_headers):
            for name, raw in pairs:
                if not self.is_secret_header(name):
                    continue
                value = raw.decode("latin-1").strip()
                lowered = name.lower()
                if lowered in (b"authorization", b"proxy-authorization"):
                    # The credentials; the scheme ("Bearer") stays readable, as in the header.
                    found.add(value.partition(" ")[2].strip() or value)
                elif lowered in (b"cookie", b"set-cookie"):
                    cookies = value.split(";") if lowered == b"cookie" else value.split(";")[:1]
                    for cookie in cookies:
                        found.add(cookie.strip().partition("=")[2] or cookie.strip())
                else:
                    found.add(value)
        hidden = (self.replacement, quote(self.replacement, safe=""))
        usable = {v for v in found if len(v) >= _MIN_KNOWN_SECRET and v not in hidden}
        return sorted(usable, key=len, reverse=True)


def _cookie_pair(pair: bytes, replacement: bytes) -> bytes:
    name, eq, _ = pair.partition(b"=")
    return name.strip() + b"=" + replacement if eq else replacement


def _close_json(stack: list[str], out: list[str], token: str) -> int:
    stack.pop()
    out.append(token)
    return 3  # "after a value"


def _json_string(token: str) -> tuple[str, str]:
    """A JSON string token's value and its compact spelling (as ``json.dumps`` writes it)."""
    if "\\" in token:
        value: str = json.loads(token)
        return value, json.dumps(value, ensure_ascii=False)
    if _JSON_CONTROL.search(token):
        raise ValueError("control character in a JSON string")
    return token[1:-1], token


def _param_text(raw: bytes, extended: bool = False) -> str:
    """A Content-Disposition parameter's value as text (quotes and escapes undone; for an
    RFC 8187 ``filename*``, the charset prefix dropped and percent-escapes decoded)."""
    if extended:
        charset, _, rest = raw.strip().partition(b"'")
        value = rest.partition(b"'")[2]
        try:
            return unquote(value.decode("ascii", "replace"), encoding=charset.decode() or "utf-8")
        except LookupError:
            return unquote(value.decode("ascii", "replace"))
    raw = raw.strip()
    if raw.startswith(b'"'):
        raw = re.sub(
            rb"\\(.)", rb"\1", raw[1:-1] if raw.endswith(b'"') and len(raw) > 1 else raw[1:]
        )
    return raw.decode("utf-8", "replace")


# -- known token formats, anywhere ----------------------------------------------------------------
def scrub_tokens(text: str, replacement: str = REDACTED) -> str:
    """``text`` with every value of a :data:`TOKEN_FORMATS` format replaced."""
    for _, pattern in TOKEN_FORMATS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(0).replace(m.group(1), replacement), text)
        else:
            text = pattern.sub(replacement, text)
    return text


def _scrub_body(
    body: bytes, headers: tuple[tuple[bytes, bytes], ...], replacement: str
) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    codings = content_codings(headers)
    decoded = decode_body(body, codings)
    if not decoded:
        return body, headers
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return body, headers
    scrubbed = scrub_tokens(text, replacement)
    if scrubbed == text:
        return body, headers
    encoded = encode_body(scrubbed.encode("utf-8"), codings)
    if encoded is None:
        return body, headers
    return encoded, with_content_length(headers, len(encoded))


def redact_known_tokens(exchange: Exchange, replacement: str = REDACTED) -> Exchange:
    """Replace values of :data:`TOKEN_FORMATS` wherever they appear: URL, any header, text
    bodies (decoded and encoded again). Use it as a redactor's last step,
    ``Redactor(extra=redact_known_tokens)``, to catch tokens in fields with innocent names.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> from traffic_lab.testing import make_exchange
    >>> ex = make_exchange(json={"note": "key AKIAABCDEFGHIJKLMNOP"})
    >>> redact_known_tokens(ex).response.json()
    {'note': 'key [REDACTED]'}
    """
    changes: dict[str, Any] = {}
    url = scrub_tokens(exchange.url, replacement)
    if url != exchange.url:
        changes["url"] = url
    for side in ("request", "response"):
        headers: tuple[tuple[bytes, bytes], ...] = getattr(exchange, f"{side}_headers")
        new_headers = tuple(
            (n, scrub_tokens(v.decode("latin-1"), replacement).encode("latin-1"))
            for n, v in headers
        )
        if side == "response" and exchange.truncated:
            body: bytes = exchange.response_body
        else:
            old_body: bytes = getattr(exchange, f"{side}_body")
            body, new_headers = _scrub_body(old_body, new_headers, replacement)
            if body is not old_body:
                changes[f"{side}_body"] = body
        if new_headers != headers:
            changes[f"{side}_headers"] = new_headers
    return exchange.replace(**changes) if changes else exchange
