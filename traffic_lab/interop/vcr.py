"""VCR.py cassettes (YAML or JSON) import and export.

A cassette is ``{"version": 1, "interactions": [{"request": {...}, "response": {...}}]}``::

    request:  {method, uri, body, headers: {name: [value, ...]}}
    response: {status: {code, message}, headers: {name: [value, ...]}, body: {string}}

Bodies and headers are imported exactly as the cassette holds them; ``docs/interop.md`` says
what VCR.py records (wire bodies, grouped header values, no times) and what that means here.
YAML is read with PyYAML's safe loader only, its aliases bounded (no "billion laughs"), and
needs PyYAML (``pip install 'traffic_lab[interop]'``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..exchange import Exchange, check_storable
from ..wire import body_consistent_headers, content_codings, decode_body
from ._entries import (
    MAX_INT_DIGITS,
    HugeInteger,
    Locator,
    Pairs,
    PathArg,
    Skips,
    check_method,
    check_reason,
    check_status,
    cut,
    field,
    file_guard,
    from_mtime,
    load_json,
    open_input,
    parse_url,
    read_entries,
    utf8_text,
    write_file_atomic,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["MAX_YAML_DEPTH", "Serializer", "read_vcr", "write_vcr"]

#: A cassette serializer, as VCR.py names them.
Serializer = Literal["yaml", "json"]

_NONE = type(None)
_ONE_US = timedelta(microseconds=1)

#: The deepest nesting of YAML collections read (a cassette needs 6 levels).
MAX_YAML_DEPTH = 100
# What YAML aliases may expand a document to, in nodes plus scalar characters: four times the
# text (more than any alias-free document reaches) plus this much.
_YAML_EXPANSION_ALLOWANCE = 16_000_000
# Where a value refused by check_storable came from in an interaction.
_LOCATE = {
    "method": "request.method",
    "url": "request.uri",
    "port": "request.uri",
    "status_code": "response.status.code",
    "reason_phrase": "response.status.message",
}


def _yaml() -> ModuleType:
    try:
        import yaml
    except ImportError as exc:
        raise ImportError("YAML cassettes need PyYAML: pip install 'traffic_lab[interop]'") from exc
    return yaml


def _serializer_for(path: Path, serializer: Serializer | None, data: bytes | None) -> Serializer:
    if serializer is not None:
        if serializer not in ("yaml", "json"):
            raise ValueError(f"serializer must be 'yaml' or 'json', not {serializer!r}")
        return serializer
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml") or data is None:
        return "yaml"
    return "json" if data.lstrip()[:1] == b"{" else "yaml"


def read_vcr(
    path: PathArg, *, serializer: Serializer | None = None, strict: bool = False
) -> list[Exchange]:
    """Read a VCR.py cassette into a list of exchanges, in the cassette's order.

    ``serializer`` is ``"yaml"`` or ``"json"``; by default ``.json`` files are JSON, ``.yaml``
    / ``.yml`` files YAML, and others JSON when they start with ``{``. Bad interactions are
    skipped with a warning, or raised with ``strict=True``. Raises
    :class:`~traffic_lab.errors.InteropError` for a file that is not a cassette (or an alias bomb).

    >>> import tempfile, pathlib
    >>> from traffic_lab.interop import read_vcr, write_vcr
    >>> from traffic_lab.testing import make_exchange
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cassette.yaml"
    >>> write_vcr([make_exchange(json={"id": 1})], path)
    1
    >>> [ex] = read_vcr(path)
    >>> ex.status_code, ex.response.json(), ex.request_headers
    (200, {'id': 1}, ())
    """
    file = Path(path)
    loc = Locator(str(file))
    if serializer is not None:
        _serializer_for(file, serializer, None)  # a bad argument is a ValueError, not the file's
    with open_input(file, loc) as stream, file_guard(loc.path):
        data = stream.read()
        mtime_ns = os.fstat(stream.fileno()).st_mtime_ns
    with file_guard(loc.path):
        kind = _serializer_for(file, serializer, data)
        document = _load(data, kind, loc)
        del data
        if isinstance(document, list):
            raise loc.error(
                "a cassette from VCR.py before 1.0 (a bare list); migrate it with "
                "python -m vcr.migration"
            )
        if document is None:
            raise loc.error("is empty")
        if not isinstance(document, dict):
            raise loc.error(f"a cassette is a mapping, not {type(document).__name__}")
        version = field(document, "version", int, loc, "")
        if version != 1:
            raise loc.error(f"unsupported cassette format version {version}", "version")
        interactions = field(document, "interactions", list, loc, "")
        # No times in a cassette: the file's mtime, one microsecond apart in cassette order.
        base = from_mtime(mtime_ns)
        return read_entries(
            ((loc.at(i), item) for i, item in enumerate(interactions)),
            lambda item, at: _read_interaction(item, at, base + (at.index or 0) * _ONE_US),
            Skips(loc.path, strict=strict),
            locate=_LOCATE,
        )


def _load(data: bytes, kind: Serializer, loc: Locator) -> Any:
    text = utf8_text(data, loc)
    if kind == "json":
        return load_json(text, loc)
    yaml = _yaml()
    loader = _cassette_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, 4 * len(text) + _YAML_EXPANSION_ALLOWANCE, loc)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise loc.error(f"invalid YAML{at}: {cut(problem)}") from exc
    finally:
        loader.dispose()


@functools.cache
def _cassette_loader() -> Any:
    """PyYAML's safe loader, with nesting and integer size bounded."""
    yaml = _yaml()

    class CassetteLoader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    problem = f"nested deeper than {MAX_YAML_DEPTH} levels"
                    mark = self.peek_event().start_mark
                    raise yaml.composer.ComposerError(None, None, problem, mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_yaml_int(self, node: Any) -> Any:
            if len(str(node.value)) > MAX_INT_DIGITS:
                return HugeInteger(len(str(node.value)))
            return super().construct_yaml_int(node)

    CassetteLoader.add_constructor("tag:yaml.org,2002:int", CassetteLoader.construct_yaml_int)
    return CassetteLoader


def _check_expansion(root: Any, budget: int, loc: Locator) -> None:
    """Refuse a YAML graph whose aliases expand it past ``budget`` nodes plus characters."""
    yaml = _yaml()
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1 + len(node.value)
            continue
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = list(node.value)
        if leaving:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > budget:
                raise loc.error(
                    f"YAML aliases expand the document past {budget} nodes and characters: "
                    "refused as an alias bomb"
                )
            sizes[key] = size
        elif key not in sizes:
            if key in open_nodes:
                raise loc.error("a YAML alias refers to a node that contains it (recursive)")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _read_interaction(item: Any, loc: Locator, started_at: datetime) -> Exchange:
    if not isinstance(item, dict):
        raise loc.error(f"an interaction is a mapping, not {type(item).__name__}")
    request = field(item, "request", dict, loc, "")
    response = field(item, "response", dict, loc, "")

    method = check_method(field(request, "method", str, loc, "request"), loc, "request.method")
    uri = field(request, "uri", str, loc, "request")
    parse_url(uri, loc, "request.uri")
    request_headers = _read_headers(request, loc, "request")
    request_body = _body(request, "body", loc, "request")

    if "status_code" in response:
        # The layout older VCR.py httpx stubs wrote: {status_code, headers, content}.
        status = field(response, "status_code", int, loc, "response")
        reason = ""
        body = _body(response, "content", loc, "response")
    else:
        status_map = field(response, "status", dict, loc, "response")
        status = field(status_map, "code", int, loc, "response.status")
        reason = field(status_map, "message", (str, _NONE), loc, "response.status", "") or ""
        body_map = field(response, "body", dict, loc, "response")
        body = _body(body_map, "string", loc, "response.body")
    check_status(status, loc, "response.status.code")
    check_reason(reason, loc, "response.status.message")
    response_headers = _read_headers(response, loc, "response")
    return Exchange(
        method,
        uri,
        request_headers=request_headers,
        request_body=request_body,
        status_code=status,
        reason_phrase=reason,
        response_headers=response_headers,
        response_body=body,
        started_at=started_at,
    )


def _body(obj: Mapping[str, Any], key: str, loc: Locator, prefix: str) -> bytes:
    value = field(obj, key, (str, bytes, _NONE), loc, prefix, None)
    if not isinstance(value, str):
        return value or b""
    try:
        return value.encode("utf-8")  # VCR.py encodes text bodies as UTF-8 too
    except UnicodeEncodeError as exc:
        raise loc.error(f"cannot be encoded as UTF-8: {exc.reason}", f"{prefix}.{key}") from exc


def _read_headers(message: Mapping[str, Any], loc: Locator, prefix: str) -> Pairs:
    headers = field(message, "headers", (dict, _NONE), loc, prefix, None) or {}
    pairs: list[tuple[bytes, bytes]] = []
    for name, values in headers.items():
        name_at = f"{prefix}.headers.{name}"
        if not isinstance(name, str) or not name:
            raise loc.error("header names must be non-empty strings", f"{prefix}.headers")
        if isinstance(values, str | bytes):
            values = [values]
        if not isinstance(values, list):
            raise loc.error(f"must be a list of strings, not {type(values).__name__}", name_at)
        key = _header_bytes(name, loc, name_at)
        for k, value in enumerate(values):
            if isinstance(value, bytes):
                pairs.append((key, value))
            elif isinstance(value, str):
                pairs.append((key, _header_bytes(value, loc, f"{name_at}[{k}]")))
            else:
                got = "null" if value is None else type(value).__name__
                raise loc.error(f"must be a string, not {got}", f"{name_at}[{k}]")
    return tuple(pairs)


def _header_bytes(text: str, loc: Locator, name: str) -> bytes:
    # httpx decoded the recorded bytes as ASCII, else UTF-8, else Latin-1: Latin-1 first gets
    # the original bytes back whenever they were not UTF-8, and the same text either way.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise loc.error(f"cannot be encoded as header bytes: {exc.reason}", name) from exc


def write_vcr(
    exchanges: Iterable[Exchange],
    path: PathArg,
    *,
    serializer: Serializer | None = None,
    decode_compressed_response: bool = False,
    overwrite: bool = False,
) -> int:
    """Write exchanges as a VCR.py cassette that VCR.py can replay, atomically; return the
    number of interactions written.

    ``serializer`` defaults to JSON for a ``.json`` path, else YAML. With
    ``decode_compressed_response`` (VCR.py's option) encoded responses are stored decoded,
    without ``Content-Encoding``. Raises :class:`~traffic_lab.errors.InteropError` for an exchange
    without a response (filter with ``ex.ok``), a truncated one, or a binary body in a JSON
    cassette; ``FileExistsError`` unless ``overwrite=True``.

    >>> import json, tempfile, pathlib
    >>> from traffic_lab.interop import write_vcr
    >>> from traffic_lab.testing import make_exchange
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cassette.json"
    >>> write_vcr([make_exchange(json={"id": 1})], path)
    1
    >>> json.loads(path.read_text())["interactions"][0]["response"]["body"]
    {'string': '{"id":1}'}
    """
    file = Path(path)
    kind = _serializer_for(file, serializer, None)
    loc = Locator(str(file))
    interactions = [
        _interaction(exchange, loc.at(i), kind, decode_compressed_response)
        for i, exchange in enumerate(exchanges)
    ]
    document = {"version": 1, "interactions": interactions}
    if kind == "json":
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        # Non-ASCII stays escaped, as VCR.py writes it: raw, some characters (U+0085 NEL) would
        # read back as line breaks.
        text = _yaml().safe_dump(document, sort_keys=False)
    write_file_atomic(file, text.encode("utf-8"), overwrite=overwrite)
    return len(interactions)


def _interaction(
    exchange: Exchange, loc: Locator, kind: Serializer, decode_compressed: bool
) -> dict[str, Any]:
    check_storable(exchange)  # what no store can hold is not written either
    if exchange.status_code is None:
        raise loc.error("a transport error has no response for VCR.py to replay", "status_code")
    if exchange.truncated:
        raise loc.error("a truncated response cannot be replayed", "truncated")
    headers = exchange.response_headers
    body = exchange.response_body
    codings = content_codings(headers)
    if decode_compressed and codings:
        decoded = decode_body(body, codings)
        if decoded is None:
            raise loc.error(f"the body does not decode as {', '.join(codings)}", "response_body")
        body = decoded
        status = exchange.status_code
        headers = body_consistent_headers(
            headers, body, method=exchange.method, status_code=status, drop_encoding=True
        )
    return {
        "request": {
            "method": exchange.method,
            "uri": exchange.url,
            "body": _body_value(exchange.request_body, kind, loc, "request_body"),
            "headers": _headers(exchange.request_headers, kind),
        },
        "response": {
            "status": {"code": exchange.status_code, "message": exchange.reason_phrase},
            "headers": _headers(headers, kind),
            "body": {"string": _body_value(body, kind, loc, "response_body")},
        },
    }


def _body_value(body: bytes, kind: Serializer, loc: Locator, name: str) -> str | bytes:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        if kind == "yaml":
            return body
    hint = " (or decode_compressed_response=True)" if name == "response_body" else ""
    raise loc.error(f"a JSON cassette cannot hold a binary body; use YAML{hint}", name)


def _headers(pairs: Iterable[tuple[bytes, bytes]], kind: Serializer) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    names: dict[str, str] = {}
    for key, value in pairs:
        text_key = key.decode("latin-1")
        name = names.setdefault(text_key.lower(), text_key)
        # Non-ASCII bytes as !!binary in YAML: VCR.py replays bytes as they are.
        binary = kind == "yaml" and not value.isascii()
        grouped.setdefault(name, []).append(value if binary else value.decode("latin-1"))
    return grouped
