"""The capture schema: Arrow types, version, upgrades, and row <-> :class:`Exchange` conversion.

The single source of truth for the columns documented in ``docs/capture-format.md``. Header bytes
are stored one character U+0000-U+00FF per byte (ISO-8859-1), so any bytes survive the round trip.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import CorruptCaptureError, SchemaVersionError
from ...exchange import MAX_CHUNKS, Chunk, Exchange, RecordedError, check_chunks, check_storable
from ...matching import _DEFAULT_PORTS, Matcher

__all__ = [
    "CHUNKS_COLUMN",
    "CHUNKS_FIELD",
    "ChunkColumn",
    "DEFAULT_BLOB_THRESHOLD",
    "EPOCH",
    "HEADERS_TYPE",
    "KEY_HASH_COLUMN",
    "KEY_HASH_FIELD",
    "META_FINGERPRINT",
    "META_REPLACES",
    "META_SCHEMA_VERSION",
    "META_TIME_RANGE",
    "META_WRITER_ID",
    "ONE_US",
    "REQUIRED_COLUMNS",
    "RowReader",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TAGS_TYPE",
    "check_schema",
    "chunks_column",
    "exchanges_to_table",
    "file_schema_version",
    "key_hash",
    "key_hash_column",
    "key_hashes",
    "new_writer_id",
    "row_name",
    "servable_rows",
    "split_url",
    "table_to_exchanges",
    "upgrade_table",
]

#: The version of the capture format this library writes. Independent of the release version.
#: v2 added the ``request_key_hash`` column (see :data:`KEY_HASH_FIELD`); v3 the
#: ``response_chunks`` column (see :data:`CHUNKS_FIELD`).
SCHEMA_VERSION = 3

#: Bodies larger than this (bytes) are stored in content-addressed blob files by default.
DEFAULT_BLOB_THRESHOLD = 1024 * 1024

META_SCHEMA_VERSION = b"traffic_lab.schema_version"
META_FINGERPRINT = b"traffic_lab.matcher_fingerprint"
META_WRITER_ID = b"traffic_lab.writer_id"
META_TIME_RANGE = b"traffic_lab.time_range"
META_REPLACES = b"traffic_lab.replaces"

HEADERS_TYPE = pa.list_(
    pa.field(
        "item",
        pa.struct([pa.field("name", pa.string(), False), pa.field("value", pa.string(), False)]),
        False,
    )
)
TAGS_TYPE = pa.map_(pa.string(), pa.string())


def _message_fields(side: str) -> list[pa.Field[Any]]:
    """The headers, body and content-type columns of a request or a response."""
    return [
        pa.field(f"{side}_headers", HEADERS_TYPE, False),
        pa.field(f"{side}_body", pa.binary()),
        pa.field(f"{side}_body_size", pa.int64(), False),
        pa.field(f"{side}_body_blob", pa.string()),
        pa.field(f"{side}_content_type", pa.string()),
    ]


#: The Arrow schema of a capture file (schema version :data:`SCHEMA_VERSION`).
SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # the stubs type pa.field()'s result loosely
        pa.field("started_at", pa.timestamp("us", tz="UTC"), False),
        pa.field("elapsed", pa.duration("us"), False),
        pa.field("writer_id", pa.string(), False),
        pa.field("writer_seq", pa.int64(), False),
        pa.field("request_method", pa.string(), False),
        pa.field("request_url", pa.string(), False),
        pa.field("request_scheme", pa.string()),
        pa.field("request_host", pa.string()),
        pa.field("request_port", pa.int32()),
        pa.field("request_path", pa.string()),
        pa.field("request_query", pa.string()),
        *_message_fields("request"),
        pa.field("request_key", pa.string(), False),
        pa.field("response_status", pa.int32()),
        pa.field("response_reason", pa.string()),
        pa.field("response_http_version", pa.string()),
        *_message_fields("response"),
        pa.field("response_content_encoding", pa.string()),
        pa.field("truncated", pa.bool_(), False),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("tags", TAGS_TYPE, False),
    ]
)

#: Columns a file must have, without nulls, to be read as a capture (the rest default when
#: absent).
REQUIRED_COLUMNS = ("started_at", "writer_id", "writer_seq", "request_method", "request_url")
#: The epoch and the unit of every time in a capture (µs since the epoch).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)

#: The key-hash column every file written since schema v2 carries beside the row columns: for
#: each row a cache can serve (a response, not truncated) the first 8 bytes of
#: ``blake2b(request_key as UTF-8)``, big-endian, as a signed int64 (:func:`key_hash`); null for
#: the others. An index, not data: it is outside :data:`SCHEMA` (frames and queries never see
#: it), the writer always computes it (:func:`key_hash_column`), and readers never trust it (a
#: cache compares the full key on every hit and computes hashes itself when it is absent or not
#: int64).
KEY_HASH_COLUMN = "request_key_hash"
KEY_HASH_FIELD = pa.field(KEY_HASH_COLUMN, pa.int64())


def _v1_to_v2(table: pa.Table) -> pa.Table:
    """v2 only added the optional ``request_key_hash`` column, outside the row schema: a v1
    table is a v2 table without it (readers compute the hashes), so there is nothing to change."""
    return table


#: The chunks column every file written since schema v3 carries beside the row columns: for a
#: streamed response, each chunk's size (bytes) and offset (µs from the response's start) as
#: the client read it (:attr:`Exchange.chunks <traffic_lab.Exchange.chunks>`); null for a body
#: that came in one piece (so a non-streamed exchange costs one null). Outside :data:`SCHEMA`
#: like the key hashes (frames and queries do not see it); readers check every list
#: (:func:`~traffic_lab.exchange.check_chunks`) and ignore one that does not fit its body.
CHUNKS_COLUMN = "response_chunks"
CHUNKS_FIELD = pa.field(
    CHUNKS_COLUMN,
    pa.list_(
        pa.field(
            "item",
            pa.struct(
                [pa.field("size", pa.int64(), False), pa.field("offset_us", pa.int64(), False)]
            ),
            False,
        )
    ),
)


def _v2_to_v3(table: pa.Table) -> pa.Table:
    """v3 only added the optional ``response_chunks`` column, outside the row schema: a v2 row
    is a v3 row whose body came in one piece, so there is nothing to change."""
    return table


# Upgrade steps: _UPGRADES[v] turns a table of schema version v into version v + 1. A new version
# adds one step and never edits an old one.
_UPGRADES: dict[int, Callable[[pa.Table], pa.Table]] = {1: _v1_to_v2, 2: _v2_to_v3}


def chunks_column(exchanges: Sequence[Exchange]) -> pa.Array[Any]:
    """The ``response_chunks`` column of some exchanges (see :data:`CHUNKS_FIELD`).

    >>> import traffic_lab as tl
    >>> from traffic_lab.exchange import Chunk
    >>> ex = tl.Exchange("GET", "https://a.example/", status_code=200, response_body=b"abc",
    ...                  chunks=(Chunk(1, 0), Chunk(2, 40)))
    >>> chunks_column([ex, ex.replace(chunks=None)]).to_pylist()[1]
    >>> chunks_column([ex]).to_pylist()[0]
    [{'size': 1, 'offset_us': 0}, {'size': 2, 'offset_us': 40}]
    """
    lists = [e.chunks for e in exchanges]
    if not any(lists):
        return pa.nulls(len(lists), CHUNKS_FIELD.type)
    rows = [None if c is None else [{"size": s, "offset_us": o} for s, o in c] for c in lists]
    return pa.array(rows, CHUNKS_FIELD.type)


def key_hash(key: str) -> int:
    """The 64-bit hash of a request key stored in ``request_key_hash`` (stable across runs,
    machines and releases).

    Examples
    --------
    >>> key_hash("0123456789abcdef0123456789abcdef")
    -3698954046548176045
    """
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def key_hashes(keys: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    """:func:`key_hash` of every key of a string array (0 for a null key), as int64.

    One blake2b call a key (about 0.5 µs): the writer computes the column this way once, when a
    file is written; readers only for files without it.
    """
    blake2b = hashlib.blake2b
    digests = b"".join(
        blake2b(k.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        if k is not None
        else bytes(8)
        for k in keys.to_pylist()
    )
    return np.frombuffer(digests, dtype=">i8").astype(np.int64)


def servable_rows(table: pa.Table | pa.RecordBatch) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which rows a cache can serve: a response (a status) that is not truncated."""
    truncated: Any = table.column("truncated")
    servable = pc.and_(
        table.column("response_status").is_valid(), pc.invert(truncated.fill_null(False))
    )
    if isinstance(servable, pa.ChunkedArray):
        servable = servable.combine_chunks()
    return np.asarray(servable.to_numpy(zero_copy_only=False), dtype=bool)


def key_hash_column(table: pa.Table | pa.RecordBatch) -> pa.Array[Any]:
    """The ``request_key_hash`` column of a table in the capture schema (see
    :data:`KEY_HASH_FIELD`)."""
    hashes = key_hashes(table.column("request_key"))
    return pa.array(hashes, pa.int64(), mask=~servable_rows(table))


def new_writer_id() -> str:
    """A fresh random writer id (16 hex digits): names a writer's files and orders its rows."""
    return secrets.token_hex(8)


def file_schema_version(metadata: Mapping[bytes, bytes] | None, *, path: str) -> int:
    """The schema version in a file's key/value metadata; raises
    :class:`~traffic_lab.errors.CorruptCaptureError` if it is missing or not a number.

    Examples
    --------
    >>> file_schema_version({b"traffic_lab.schema_version": b"1"}, path="x.parquet")
    1
    """
    raw = (metadata or {}).get(META_SCHEMA_VERSION)
    if raw is None:
        raise CorruptCaptureError(
            "not a traffic_lab capture file (no traffic_lab.schema_version in its metadata)",
            path=path,
        )
    try:
        version = int(raw)
    except ValueError:
        raise CorruptCaptureError(f"invalid schema version {raw!r}", path=path) from None
    if version < 1:
        raise CorruptCaptureError(f"invalid schema version {version}", path=path)
    return version


def check_schema(schema: pa.Schema, *, path: str) -> int:
    """Check that a file's schema can be read as a capture; return its schema version.

    Raises :class:`~traffic_lab.errors.SchemaVersionError` for a version newer than this
    library, :class:`~traffic_lab.errors.CorruptCaptureError` for a foreign schema.

    Examples
    --------
    >>> from traffic_lab.stores.parquet import SCHEMA
    >>> check_schema(SCHEMA.with_metadata({"traffic_lab.schema_version": "1"}), path="f")
    1
    """
    version = _readable_version(schema.metadata, SCHEMA_VERSION, path)
    missing = [name for name in REQUIRED_COLUMNS if schema.get_field_index(name) < 0]
    if missing:
        raise CorruptCaptureError(f"foreign schema: missing columns {missing}", path=path)
    return version


def _readable_version(metadata: Mapping[bytes, bytes] | None, newest: int, path: str) -> int:
    version = file_schema_version(metadata, path=path)
    if version > newest:
        raise SchemaVersionError(
            f"written with capture schema v{version}, newer than this traffic_lab "
            f"(reads up to v{newest}); upgrade traffic_lab to read it",
            path=path,
        )
    return version


def upgrade_table(
    table: pa.Table,
    *,
    path: str,
    upgrades: Mapping[int, Callable[[pa.Table], pa.Table]] | None = None,
    target: int = SCHEMA_VERSION,
) -> pa.Table:
    """Bring a table read from a capture file (with the file's key/value metadata) to version
    ``target``, one step of ``upgrades`` at a time (defaults: this library's); ``path`` is named
    in errors.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"a": [1]}).replace_schema_metadata({"traffic_lab.schema_version": "1"})
    >>> step = {1: lambda t: t.append_column("b", pa.array([2]))}
    >>> upgrade_table(t, path="f", upgrades=step, target=2).column_names
    ['a', 'b']
    """
    chain = _UPGRADES if upgrades is None else upgrades
    version = _readable_version(table.schema.metadata, target, path)
    metadata = dict(table.schema.metadata or {})
    while version < target:
        step = chain.get(version)
        if step is None:
            raise SchemaVersionError(f"no upgrade from capture schema v{version}", path=path)
        table = step(table)
        version += 1
    metadata[META_SCHEMA_VERSION] = str(version).encode()
    return table.replace_schema_metadata(metadata)


# -- Exchange -> row ------------------------------------------------------------------------------
def split_url(url: str) -> tuple[str, str, int | None, str, str | None]:
    """Split a URL into (scheme, host, port, path, query); the port defaults by scheme.

    Examples
    --------
    >>> split_url("https://api.example/v1/items?a=1")
    ('https', 'api.example', 443, '/v1/items', 'a=1')
    >>> split_url("http://[::1]:8080/")
    ('http', '::1', 8080, '/', None)
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", None, url, None
    cut = len(rest)
    for ch in "/?#":
        at = rest.find(ch, 0, cut)
        if at != -1:
            cut = at
    authority, tail = rest[:cut], rest[cut:]
    tail = tail.partition("#")[0]
    path, has_query, query = tail.partition("?")
    hostport = authority.rpartition("@")[2]
    port: int | None = None
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if port_text.isdigit():
        port = int(port_text)
    scheme = scheme.lower()
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return scheme, host, port, path or "/", query if has_query else None


def _strings(items: Sequence[bytes]) -> pa.Array[Any]:
    """Bytes -> Arrow strings, mapping each byte to U+0000-U+00FF (fast path for ASCII)."""
    binary = pa.array(items, pa.binary())
    data = binary.buffers()[2]
    if data is None or data.to_pybytes().isascii():
        return binary.view(pa.string())
    return pa.array([item.decode("latin-1") for item in items], pa.string())


def _headers_array(lists: Sequence[Sequence[tuple[bytes, bytes]]]) -> pa.Array[Any]:
    pairs = list(itertools.chain.from_iterable(lists))
    names = list(map(itemgetter(0), pairs))
    values = list(map(itemgetter(1), pairs))
    offsets = pa.array(itertools.accumulate(map(len, lists), initial=0), pa.int32())
    items = pa.StructArray.from_arrays(
        [_strings(names), _strings(values)], fields=list(HEADERS_TYPE.value_type)
    )
    return pa.ListArray.from_arrays(offsets, items, type=HEADERS_TYPE)


def _last_header(headers: pa.Array[Any], name: str) -> pa.Array[Any]:
    """Each row's value of its last header ``name`` (ASCII case-insensitive), else null."""
    lists: Any = headers
    lowered: Any = pc.ascii_lower(lists.values.field("name"))
    named: Any = pc.equal(lowered, pa.scalar(name))
    hits = np.flatnonzero(named.to_numpy(zero_copy_only=False))
    rows = np.searchsorted(lists.offsets.to_numpy(), hits, side="right") - 1
    is_last = np.append(rows[1:] != rows[:-1], True)[: len(hits)]
    picks = np.full(len(headers), -1, np.int64)
    picks[rows[is_last]] = hits[is_last]
    indices: Any = pa.array(picks, mask=picks < 0)
    taken: pa.Array[Any] = pc.take(lists.values.field("value"), indices)
    return taken


def _tags_array(tags: Sequence[Mapping[str, str]]) -> pa.Array[Any]:
    if not any(tags):
        offsets: Any = pa.array([0] * (len(tags) + 1), pa.int32())
        empty: Any = pa.array([], pa.string())
        result: pa.Array[Any] = pa.MapArray.from_arrays(offsets, empty, empty)
        return result
    return pa.array([list(t.items()) for t in tags], TAGS_TYPE)


def exchanges_to_table(
    exchanges: Iterable[Exchange],
    matcher: Matcher | None = None,
    *,
    keys: Sequence[str] | None = None,
    writer_id: str | None = None,
    first_seq: int = 0,
    seqs: Sequence[int] | None = None,
    blob_threshold: int | None = None,
    store_blob: Callable[[bytes], str] | None = None,
    fingerprint: str | None = None,
) -> pa.Table:
    """Convert exchanges to an Arrow table in the capture schema, one row each, in order.

    Parameters
    ----------
    matcher, keys
        ``matcher`` (default :class:`~traffic_lab.Matcher`) computes the ``request_key``
        column unless ``keys`` (one per exchange) are given; its fingerprint, or
        ``fingerprint``, is written to the metadata.
    writer_id, first_seq, seqs
        The writer id (default: a fresh random one) and each row's sequence number (``seqs``,
        or ``first_seq``, ``first_seq + 1``...).
    blob_threshold, store_blob
        Bodies longer than ``blob_threshold`` go to ``store_blob(body) -> digest``; the row
        keeps the digest in ``*_body_blob`` and a null body.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> ex = tl.Exchange("GET", "https://api.example/items?a=1", status_code=200,
    ...                  response_body=b"[]")
    >>> table = exchanges_to_table([ex], tl.Matcher())
    >>> table.num_rows, table["request_host"][0].as_py(), table["response_body"][0].as_py()
    (1, 'api.example', b'[]')
    """
    if matcher is None:
        matcher = Matcher()
    items = exchanges if isinstance(exchanges, list) else list(exchanges)
    n = len(items)
    if keys is None:
        keys = [matcher.key(e) for e in items]
    elif len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} exchanges")
    if seqs is None:
        seqs = range(first_seq, first_seq + n)
    wid = writer_id if writer_id is not None else new_writer_id()

    urls = [e.url for e in items]
    parts = [split_url(u) for u in urls]
    request_headers = _headers_array([e.request_headers for e in items])
    response_headers = _headers_array([e.response_headers for e in items])

    def body_columns(bodies: list[bytes]) -> list[pa.Array[Any]]:
        """The body, its size, its blob: bodies over ``blob_threshold`` go to ``store_blob``."""
        inline: list[bytes | None] = list(bodies)
        blobs: list[str | None] = [None] * n
        if store_blob is not None and blob_threshold is not None:
            for i, body in enumerate(bodies):
                if len(body) > blob_threshold:
                    blobs[i] = store_blob(body)
                    inline[i] = None
        return [
            pa.array(inline, pa.binary()),
            pa.array([len(b) for b in bodies], pa.int64()),
            pa.array(blobs, pa.string()),
        ]

    errors = [e.error for e in items]
    metadata = {
        META_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
        META_FINGERPRINT: (
            fingerprint if fingerprint is not None else (matcher.fingerprint or "")
        ).encode(),
        META_WRITER_ID: wid.encode(),
    }
    columns: list[pa.Array[Any]] = [
        pa.array([e.started_at for e in items], pa.timestamp("us", tz="UTC")),
        pa.array([e.elapsed for e in items], pa.duration("us")),
        pa.repeat(pa.scalar(wid, pa.string()), n),
        pa.array(seqs, pa.int64()),
        pa.array([e.method for e in items], pa.string()),
        pa.array(urls, pa.string()),
        pa.array([p[0] for p in parts], pa.string()),
        pa.array([p[1] for p in parts], pa.string()),
        pa.array([p[2] for p in parts], pa.int32()),
        pa.array([p[3] for p in parts], pa.string()),
        pa.array([p[4] for p in parts], pa.string()),
        request_headers,
        *body_columns([e.request_body for e in items]),
        _last_header(request_headers, "content-type"),
        pa.array(keys, pa.string()),
        pa.array([e.status_code for e in items], pa.int32()),
        pa.array([e.reason_phrase if e.status_code is not None else None for e in items]),
        pa.array([e.http_version if e.status_code is not None else None for e in items]),
        response_headers,
        *body_columns([e.response_body for e in items]),
        _last_header(response_headers, "content-type"),
        _last_header(response_headers, "content-encoding"),
        pa.array([e.truncated for e in items], pa.bool_()),
        pa.array([err.type if err is not None else None for err in errors], pa.string()),
        pa.array([err.message if err is not None else None for err in errors], pa.string()),
        _tags_array([e.tags for e in items]),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA.with_metadata(metadata))


# -- row -> Exchange ------------------------------------------------------------------------------
def _column(
    table: pa.Table | pa.RecordBatch, name: str, default: Any, n: int, cast: Any = None
) -> list[Any]:
    if table.schema.get_field_index(name) < 0:
        return [default] * n
    column = table.column(name)
    return (column if cast is None else column.cast(cast)).to_pylist()


class _HeaderColumn:
    """A headers column decoded to bytes once; rows' tuples are built on demand."""

    __slots__ = ("_names", "_offsets", "_values")

    def __init__(self, table: pa.Table | pa.RecordBatch, name: str) -> None:
        self._offsets: list[int] = []
        self._names: list[bytes | None] = []
        self._values: list[bytes | None] = []
        if table.schema.get_field_index(name) < 0:
            self._offsets = [0] * (table.num_rows + 1)
            return
        column = table.column(name)
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        offsets = self._offsets
        for chunk in chunks:
            lists: Any = chunk
            if chunk.type != HEADERS_TYPE:
                try:
                    lists = chunk.cast(HEADERS_TYPE)
                except pa.ArrowInvalid:
                    pass  # a null name or value the format allows none of: row() refuses it
            if lists.null_count:
                lists = lists.fill_null(pa.scalar([], lists.type))
            # A sliced list array shares its parent's values: flatten() and rebase the offsets
            # so only this slice's headers are decoded.
            chunk_offsets = lists.offsets.to_pylist()
            base = len(self._names) - chunk_offsets[0]
            if offsets:
                offsets.pop()
            offsets.extend(o + base for o in chunk_offsets)
            flat = lists.flatten()
            self._names.extend(_latin1_bytes(flat.field("name")))
            self._values.extend(_latin1_bytes(flat.field("value")))
        if not offsets:
            offsets.append(0)

    def row(self, i: int) -> tuple[tuple[bytes, bytes], ...]:
        a, b = self._offsets[i], self._offsets[i + 1]
        names, values = self._names[a:b], self._values[a:b]
        if None in names or None in values:
            raise ValueError("a header name or value is null (the format allows none)")
        return tuple(zip(names, values, strict=True))  # type: ignore[arg-type]


def _latin1_bytes(strings: Any) -> list[bytes | None]:
    """One-byte-per-character strings back to their bytes; text other tools wrote (above
    U+00FF) becomes UTF-8, a null stays ``None`` (a corrupt row, refused when read)."""
    data = strings.buffers()[2]
    if data is None or data.to_pybytes().isascii():
        return strings.view(pa.binary()).to_pylist()  # type: ignore[no-any-return]
    return [None if s is None else _header_bytes(s) for s in strings.to_pylist()]


def _header_bytes(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


class RowReader:
    """Rows of a table in the capture schema, decoded once per column (on the first exchange
    asked for), built one at a time.

    With ``where`` (the file the rows came from), every exchange is checked as ``put()`` checks
    it, and a row that cannot become one (a value no store can hold, an unreadable blob) raises
    :class:`~traffic_lab.errors.CorruptCaptureError` naming the file and the row.
    """

    def __init__(
        self,
        table: pa.Table | pa.RecordBatch,
        blobs: Callable[[str], bytes] | None = None,
        where: str | None = None,
    ) -> None:
        self.num_rows = table.num_rows
        self._table = table
        self._blobs = blobs
        self._where = where
        self._decoded = False

    def _decode(self) -> None:
        table, n = self._table, self.num_rows
        self._started = _column(table, "started_at", None, n, pa.int64())
        self._elapsed = _column(table, "elapsed", None, n, pa.int64())
        self._methods = _column(table, "request_method", None, n)
        self._urls = _column(table, "request_url", None, n)
        self._request_headers = _HeaderColumn(table, "request_headers")
        self._request_bodies = _column(table, "request_body", b"", n)
        self._request_blobs = _column(table, "request_body_blob", None, n)
        self._statuses = _column(table, "response_status", None, n)
        self._reasons = _column(table, "response_reason", "", n)
        self._versions = _column(table, "response_http_version", "HTTP/1.1", n)
        self._response_headers = _HeaderColumn(table, "response_headers")
        self._response_bodies = _column(table, "response_body", b"", n)
        self._response_blobs = _column(table, "response_body_blob", None, n)
        self._truncated = _column(table, "truncated", False, n)
        self._error_types = _column(table, "error_type", None, n)
        self._error_messages = _column(table, "error_message", None, n)
        self._tags = _column(table, "tags", None, n)
        self._chunks = ChunkColumn(table)
        # Set last: a thread that reads the flag finds every column (two threads that come
        # first may both decode; each gets the same columns).
        self._decoded = True

    def exchange(self, i: int) -> Exchange:
        """The exchange of row ``i``."""
        if not self._decoded:
            self._decode()
        if self._where is None:
            return self._exchange(i)
        try:
            exchange = self._exchange(i)
            check_storable(exchange)
            return exchange
        except (ValueError, TypeError, OverflowError) as exc:
            raise CorruptCaptureError(
                f"{row_name(self._table, i)}: {exc}", path=self._where
            ) from exc

    def in_memory(self, i: int) -> bool:
        """Whether row ``i`` is decoded and reads no blob file."""
        return self._decoded and self._request_blobs[i] is None and self._response_blobs[i] is None

    def _body(self, inline: list[Any], blobs: list[Any], i: int) -> bytes:
        digest = blobs[i]
        if digest is None:
            return inline[i] or b""
        if self._blobs is None:
            raise ValueError(f"a body is stored in blob {digest}; pass blobs= to read it")
        return self._blobs(digest)

    def _exchange(self, i: int) -> Exchange:
        error = None
        if self._error_types[i] is not None:
            error = RecordedError(self._error_types[i], self._error_messages[i] or "")
        row_tags = self._tags[i]
        elapsed = self._elapsed[i]
        started = self._started[i]
        version = self._versions[i]
        response_body = self._body(self._response_bodies, self._response_blobs, i)
        return Exchange(
            self._methods[i],
            self._urls[i],
            request_headers=self._request_headers.row(i),
            request_body=self._body(self._request_bodies, self._request_blobs, i),
            status_code=self._statuses[i],
            reason_phrase=self._reasons[i] or "",
            http_version=version if version is not None else "HTTP/1.1",
            response_headers=self._response_headers.row(i),
            response_body=response_body,
            started_at=EPOCH + timedelta(microseconds=started) if started is not None else None,
            elapsed=timedelta(microseconds=elapsed) if elapsed is not None else timedelta(0),
            error=error,
            tags={k: v or "" for k, v in row_tags} if row_tags else None,
            truncated=bool(self._truncated[i]),
            chunks=self._chunks.row(i, len(response_body)),
        )


class ChunkColumn:
    """The ``response_chunks`` column, checked row by row when asked: a list that does not fit
    its row (sizes that do not sum to the body's length, offsets that go back or out of range,
    more than :data:`~traffic_lab.exchange.MAX_CHUNKS`, a column of another type) is ignored,
    and the body replays in one piece."""

    __slots__ = ("_offsets", "_offsets_us", "_sizes", "_valid")

    def __init__(self, table: pa.Table | pa.RecordBatch) -> None:
        self._offsets: Any = None
        if table.schema.get_field_index(CHUNKS_COLUMN) < 0:
            return
        column: Any = table.column(CHUNKS_COLUMN)
        if column.type != CHUNKS_FIELD.type or column.null_count == len(column):
            return
        lists: Any = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        values = lists.values  # offsets index into these (a slice keeps its parent's)
        self._offsets = lists.offsets.to_numpy()
        self._valid = lists.is_valid().to_numpy(zero_copy_only=False)
        self._sizes = values.field("size").to_numpy(zero_copy_only=False)
        self._offsets_us = values.field("offset_us").to_numpy(zero_copy_only=False)

    def row(self, i: int, body_size: int) -> tuple[Chunk, ...] | None:
        """Row ``i``'s chunks if they describe its body of ``body_size`` bytes, else None."""
        if self._offsets is None or not self._valid[i]:
            return None
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        if not 1 <= b - a <= MAX_CHUNKS:
            return None
        chunks = tuple(map(Chunk, self._sizes[a:b].tolist(), self._offsets_us[a:b].tolist()))
        return chunks if check_chunks(chunks, body_size) is None else None


def row_name(table: pa.Table | pa.RecordBatch, i: int) -> str:
    """How messages name row ``i``: by its identity ``(writer_id, writer_seq)``."""
    names = table.schema.names
    if "writer_id" not in names or "writer_seq" not in names:
        return f"row {i}"
    writer_id = table.column("writer_id")[i].as_py()
    return f"row ({writer_id}, {table.column('writer_seq')[i].as_py()})"


def table_to_exchanges(
    table: pa.Table | pa.RecordBatch,
    *,
    blobs: Callable[[str], bytes] | None = None,
) -> Iterator[Exchange]:
    """Turn rows in the capture schema (a table or record batch) back into exchanges.

    Columns but ``request_method`` and ``request_url`` may be missing (they default), so a
    table built from a DataFrame converts too. ``blobs`` reads a blob-stored body by its
    digest; without it a row whose body is in a blob raises ``ValueError``.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> ex = tl.Exchange("GET", "https://api.example/", status_code=204)
    >>> [back] = table_to_exchanges(exchanges_to_table([ex]))
    >>> back == ex
    True
    """
    rows = RowReader(table, blobs)
    for i in range(rows.num_rows):
        yield rows.exchange(i)
