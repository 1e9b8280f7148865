"""VCR.py cassettes (YAML or JSON) import and export.

A cassette is ``{"version": 1, "interactions": [{"request": {...}, "response": {...}}]}``::

    request:  {method, uri, body, headers: {name: [value, ...]}}
    response: {status: {code, message}, headers: {name: [value, ...]}, body: {string}}

What VCR.py (9.x) itself records through httpx, and what that means here:

- the response body is the *wire* body: a gzip response is stored gzip-compressed (YAML
  ``!!binary``) with its ``content-encoding`` header, unless the cassette was recorded with
  ``decode_compressed_response=True``, which stores it decoded and drops the header. Either way
  the body and headers of a cassette agree, and they are imported exactly as they are;
- header names are lower-case (httpx's ``multi_items()``), and in YAML cassettes sorted
  alphabetically (``yaml.dump`` sorts keys); JSON cassettes keep the recorded order. Values of
  one name are grouped, so the interleaving of different names (``a, b, a``) is lost;
- bodies are text when they decode as UTF-8 and bytes (``!!binary``) otherwise; empty request
  bodies are ``''``;
- nothing about time is stored: imported exchanges start at the cassette file's modification
  time, one microsecond apart so that time order is cassette order, with zero ``elapsed``;
- header values that are not ASCII are text decoded by httpx (as Latin-1 when they are not
  UTF-8); they are imported as Latin-1 bytes when they fit, else UTF-8. VCR.py itself cannot
  replay such a value from a text field (httpx refuses non-ASCII text headers), so
  :func:`write_vcr` writes them as ``!!binary`` in YAML cassettes, which it can.

YAML is read with PyYAML's safe loader only: nothing in a cassette is ever constructed or run
beyond plain data. PyYAML is needed for YAML cassettes only
(``pip install 'traffic_lab[interop]'``).

Untrusted cassettes: YAML aliases are allowed (PyYAML's dumper, and so VCR.py, writes them
for shared lists and mappings), but the document they expand to is measured before anything
is constructed, and a cassette whose aliases would expand it past four times its own size plus
16 million nodes and characters (a "billion laughs" alias bomb) is refused, as is a recursive
alias. Nesting deeper than :data:`MAX_YAML_DEPTH` levels, or deeper than the JSON parser can
follow, is an error, and an integer of more than 40 digits is refused as a number. An
interaction that cannot be read or stored is skipped with a
:class:`~traffic_lab.errors.SkippedEntryWarning` naming the file, the interaction and the
field (``strict=True`` raises the :class:`~traffic_lab.errors.InteropError` instead).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import preview
from ..exchange import Exchange, check_storable
from ..wire import body_consistent_headers, content_codings, decode_body
from ._common import (
    MAX_INT_DIGITS,
    HugeInteger,
    PathArg,
    Skips,
    Where,
    cut,
    field,
    fields_named,
    file_guard,
    load_json,
    open_input,
    optional,
    parse_url,
    read_entries,
    write_file_atomic,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["MAX_YAML_DEPTH", "Serializer", "read_vcr", "write_vcr"]

#: A cassette serializer, as VCR.py names them.
Serializer = Literal["yaml", "json"]

_NONE = type(None)
_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The deepest nesting of YAML collections read (a cassette needs 6 levels).
MAX_YAML_DEPTH = 100
# What YAML aliases may expand a document to, in nodes plus scalar characters: four times the
# text (more than any alias-free document reaches) plus this much.
_YAML_EXPANSION_ALLOWANCE = 16_000_000
# Where a value refused by check_storable came from in an interaction.
_LOCATE = fields_named(
    {
        "method": "request.method",
        "url": "request.uri",
        "port": "request.uri",
        "status_code": "response.status.code",
        "reason_phrase": "response.status.message",
    }
)


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


# -- reading ------------------------------------------------------------------------------------
def read_vcr(
    path: PathArg, *, serializer: Serializer | None = None, strict: bool = False
) -> list[Exchange]:
    """Read a VCR.py cassette into a list of exchanges, in the cassette's order.

    The whole cassette is read and checked before anything is returned. A file that is not a
    cassette (or is an alias bomb: see the module documentation) raises
    :class:`~traffic_lab.errors.InteropError` naming the file. An interaction that is invalid, or
    holds a value no store can hold (see :func:`~traffic_lab.exchange.check_storable`), is
    **skipped by default** with a :class:`~traffic_lab.errors.SkippedEntryWarning` naming the
    file, the interaction index and the field, and the others are kept; ``strict=True``
    raises the :class:`~traffic_lab.errors.InteropError` instead.

    Parameters
    ----------
    path
        The cassette file.
    serializer
        ``"yaml"`` or ``"json"``; by default ``.json`` files are JSON, ``.yaml`` / ``.yml``
        files YAML, and other files JSON when they start with ``{``, else YAML.
    strict
        Raise on the first bad interaction instead of skipping it.

    Returns
    -------
    list of Exchange
        Bodies and headers exactly as the cassette holds them (see the module documentation).

    Raises
    ------
    InteropError
        The file is not a valid cassette or (with ``strict``) an interaction is invalid.
        Nothing else escapes from a bad file.
    FileNotFoundError
        There is no such file.

    Examples
    --------
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
    where = Where(str(file))
    if serializer is not None:
        _serializer_for(file, serializer, None)  # a bad argument is a ValueError, not the file's
    with open_input(file, where) as stream, file_guard(where.path):
        data = stream.read()
        mtime_ns = os.fstat(stream.fileno()).st_mtime_ns
    with file_guard(where.path):
        kind = _serializer_for(file, serializer, data)
        document = _load(data, kind, where)
        del data
        if isinstance(document, list):
            raise where.error(
                "a cassette from VCR.py before 1.0 (a bare list); migrate it with "
                "python -m vcr.migration"
            )
        if document is None:
            raise where.error("is empty")
        if not isinstance(document, dict):
            raise where.error(f"a cassette is a mapping, not {type(document).__name__}")
        version = field(document, "version", int, where, "")
        if version != 1:
            raise where.error(f"unsupported cassette format version {version}", "version")
        interactions = field(document, "interactions", list, where, "")
        base = _EPOCH + timedelta(microseconds=mtime_ns // 1000)
        return read_entries(
            ((where.at(i), item) for i, item in enumerate(interactions)),
            lambda item, at: _read_interaction(item, at, base + (at.index or 0) * _ONE_US),
            Skips(where.path, strict=strict),
            locate=_LOCATE,
        )


def _load(data: bytes, kind: Serializer, where: Where) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise where.error(f"is not UTF-8 text (bad byte at offset {exc.start})") from exc
    if kind == "json":
        return load_json(text, where)
    yaml = _yaml()
    loader = _cassette_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        budget = 4 * len(text) + _YAML_EXPANSION_ALLOWANCE
        _check_expansion(node, budget, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise where.error(f"invalid YAML{at}: {cut(problem)}") from exc
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
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"nested deeper than {MAX_YAML_DEPTH} levels",
                        self.peek_event().start_mark,
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_yaml_int(self, node: Any) -> Any:
            if len(str(node.value)) > MAX_INT_DIGITS:
                return HugeInteger(len(str(node.value)))
            return super().construct_yaml_int(node)

    CassetteLoader.add_constructor("tag:yaml.org,2002:int", CassetteLoader.construct_yaml_int)
    return CassetteLoader


class _TooLarge(Exception):
    pass


def _check_expansion(root: Any, budget: int, where: Where) -> None:
    """Refuse a composed YAML graph whose aliases expand it past ``budget``.

    An alias is a second reference to a node: constructed, the data is shared, but whatever
    walks it (a ``repr``, a copy, a merge key ``<<``) pays for every reference. The expanded
    size (nodes plus scalar characters) is computed once per node, without recursion.
    """
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
                raise where.error(
                    f"YAML aliases expand the document past {budget} nodes and characters: "
                    "refused as an alias bomb"
                )
            sizes[key] = size
        elif key not in sizes:
            if key in open_nodes:
                raise where.error("a YAML alias refers to a node that contains it (recursive)")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _read_interaction(item: Any, where: Where, started_at: datetime) -> Exchange:
    if not isinstance(item, dict):
        raise where.error(f"an interaction is a mapping, not {type(item).__name__}")
    request = field(item, "request", dict, where, "")
    response = field(item, "response", dict, where, "")

    method = field(request, "method", str, where, "request")
    if not method or not method.isascii() or any(c.isspace() for c in method):
        raise where.error(f"is not an HTTP method: {preview(method)}", "request.method")
    uri = field(request, "uri", str, where, "request")
    parsed = parse_url(uri, where, "request.uri")
    if not parsed.scheme or not parsed.host:
        raise where.error(f"is not an absolute URL: {preview(uri)}", "request.uri")
    request_headers = _read_headers(request, where, "request")
    request_body = _body(
        optional(request, "body", (str, bytes, _NONE), where, "request", None),
        where,
        "request.body",
    )

    if "status_code" in response:
        # The layout older VCR.py httpx stubs wrote: {status_code, headers, content}.
        status = field(response, "status_code", int, where, "response")
        reason = ""
        body_value = optional(response, "content", (str, bytes, _NONE), where, "response", None)
        body = _body(body_value, where, "response.content")
    else:
        status_map = field(response, "status", dict, where, "response")
        status = field(status_map, "code", int, where, "response.status")
        reason = optional(status_map, "message", (str, _NONE), where, "response.status", "")
        reason = reason or ""
        body_map = field(response, "body", dict, where, "response")
        body_value = optional(body_map, "string", (str, bytes, _NONE), where, "response.body", None)
        body = _body(body_value, where, "response.body.string")
    if not 100 <= status <= 999:
        raise where.error(f"is not an HTTP status code: {status}", "response.status.code")
    try:
        reason.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise where.error("must be Latin-1 text", "response.status.message") from exc
    response_headers = _read_headers(response, where, "response")
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


def _body(value: str | bytes | None, where: Where, name: str) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8")  # VCR.py encodes text bodies as UTF-8 too
    except UnicodeEncodeError as exc:
        raise where.error(f"cannot be encoded as UTF-8: {exc.reason}", name) from exc


def _read_headers(
    message: Mapping[str, Any], where: Where, prefix: str
) -> list[tuple[bytes, bytes]]:
    headers = optional(message, "headers", (dict, _NONE), where, prefix, None) or {}
    pairs: list[tuple[bytes, bytes]] = []
    for name, values in headers.items():
        where_name = f"{prefix}.headers.{name}"
        if not isinstance(name, str) or not name:
            raise where.error("header names must be non-empty strings", f"{prefix}.headers")
        if isinstance(values, str | bytes):
            values = [values]
        if not isinstance(values, list):
            raise where.error(f"must be a list of strings, not {type(values).__name__}", where_name)
        key = _header_bytes(name, where, where_name)
        for k, value in enumerate(values):
            if isinstance(value, bytes):
                pairs.append((key, value))
            elif isinstance(value, str):
                pairs.append((key, _header_bytes(value, where, f"{where_name}[{k}]")))
            else:
                got = "null" if value is None else type(value).__name__
                raise where.error(f"must be a string, not {got}", f"{where_name}[{k}]")
    return pairs


def _header_bytes(text: str, where: Where, name: str) -> bytes:
    # httpx decoded the recorded bytes as ASCII, else UTF-8, else Latin-1: Latin-1 first gets
    # the original bytes back whenever they were not UTF-8, and the same text either way.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise where.error(f"cannot be encoded as header bytes: {exc.reason}", name) from exc


# -- writing ------------------------------------------------------------------------------------
def write_vcr(
    exchanges: Iterable[Exchange],
    path: PathArg,
    *,
    serializer: Serializer | None = None,
    decode_compressed_response: bool = False,
    overwrite: bool = False,
) -> int:
    """Write exchanges as a VCR.py cassette that VCR.py can replay, atomically.

    Bodies are written as text when they are UTF-8 and as bytes (YAML ``!!binary``) otherwise,
    as VCR.py does; header names keep their order and case, values of one name are grouped.
    JSON cannot hold bytes, so a JSON cassette raises :class:`~traffic_lab.errors.InteropError` for
    a body that is not UTF-8 text, unless ``decode_compressed_response`` decodes it first.

    Parameters
    ----------
    exchanges
        What to write, in order. Exchanges without a response (transport errors) and truncated
        ones cannot be replayed and raise :class:`~traffic_lab.errors.InteropError`: filter them out
        first, e.g. ``[ex for ex in exchanges if ex.ok]``.
    path
        The cassette to create.
    serializer
        ``"yaml"`` or ``"json"``; by default JSON for a ``.json`` path, else YAML.
    decode_compressed_response
        Store gzip / deflate / brotli responses decoded, without their ``Content-Encoding``
        and with a matching ``Content-Length``, like VCR.py's option of the same name.
    overwrite
        Replace an existing file; without it an existing file raises ``FileExistsError``.

    Returns
    -------
    int
        The number of interactions written.

    Examples
    --------
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
    where = Where(str(file))
    interactions = [
        _interaction(exchange, where.at(i), kind, decode_compressed_response)
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
    exchange: Exchange, where: Where, kind: Serializer, decode_compressed: bool
) -> dict[str, Any]:
    check_storable(exchange)  # what no store can hold is not written either
    if exchange.status_code is None:
        raise where.error("a transport error has no response for VCR.py to replay", "status_code")
    if exchange.truncated:
        raise where.error("a truncated response cannot be replayed", "truncated")
    headers = exchange.response_headers
    body = exchange.response_body
    codings = content_codings(headers)
    if decode_compressed and codings:
        decoded = decode_body(body, codings)
        if decoded is None:
            raise where.error(f"the body does not decode as {', '.join(codings)}", "response_body")
        body = decoded
        headers = body_consistent_headers(
            headers,
            body,
            method=exchange.method,
            status_code=exchange.status_code,
            drop_encoding=True,
        )
    return {
        "request": {
            "method": exchange.method,
            "uri": exchange.url,
            "body": _body_value(exchange.request_body, kind, where, "request_body"),
            "headers": _headers(exchange.request_headers, kind),
        },
        "response": {
            "status": {"code": exchange.status_code, "message": exchange.reason_phrase},
            "headers": _headers(headers, kind),
            "body": {"string": _body_value(body, kind, where, "response_body")},
        },
    }


def _body_value(body: bytes, kind: Serializer, where: Where, name: str) -> str | bytes:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        if kind == "yaml":
            return body
    hint = " (or decode_compressed_response=True)" if name == "response_body" else ""
    raise where.error(f"a JSON cassette cannot hold a binary body; use YAML{hint}", name)


def _headers(pairs: Iterable[tuple[bytes, bytes]], kind: Serializer) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    names: dict[str, str] = {}
    for key, value in pairs:
        text_key = key.decode("latin-1")
        name = names.setdefault(text_key.lower(), text_key)
        if value.isascii():
            grouped.setdefault(name, []).append(value.decode("ascii"))
        elif kind == "yaml":
            grouped.setdefault(name, []).append(value)  # !!binary: VCR.py replays bytes as-is
        else:
            grouped.setdefault(name, []).append(value.decode("latin-1"))
    return grouped
