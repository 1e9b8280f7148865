"""What a capture may contain before traffic_lab uses it: one place for every grammar.

A capture is untrusted input. Nothing read from it is used as a path until it matches one of the
grammars below (exactly what traffic_lab writes; tabled in ``docs/capture-format.md``,
*Validation of untrusted captures*); anything else is a corrupt file or row, which the caller
reports naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import pyarrow as pa

MAX_SEGMENT = 999_999_999_999

_WRITER_ID = r"[0-9a-f]{1,64}"
_SEGMENT = r"[0-9]{6,12}"
_WRITER_ID_RE = re.compile(_WRITER_ID)
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_DAY_RE = re.compile(r"day=([1-9][0-9]{4,7})")
_PART_RE = re.compile(rf"part-{_WRITER_ID}-{_SEGMENT}(?:-r[0-9a-f]{{6}})?\.parquet")
_COMPACT_RE = re.compile(r"compact-[0-9]{17,20}-[0-9a-f]{8}\.parquet")
_LOG_RE = re.compile(rf"({_WRITER_ID})-({_SEGMENT})\.log")
_MARKER_RE = re.compile(r"clear-([0-9]{20})-[0-9a-f]{8}\.marker")


# -- names used as paths -----------------------------------------------------------------------
def is_writer_id(value: object) -> bool:
    """Whether ``value`` is a writer id (``[0-9a-f]{1,64}``)."""
    return isinstance(value, str) and _WRITER_ID_RE.fullmatch(value) is not None


def is_segment(value: object) -> bool:
    """Whether ``value`` is a writer's segment (flush) number, 0 to ``MAX_SEGMENT``."""
    return type(value) is int and 0 <= value <= MAX_SEGMENT


def is_digest(value: object) -> bool:
    """Whether ``value`` is a blob digest: exactly 64 lowercase hex digits.

    Examples
    --------
    >>> is_digest("ab" * 32), is_digest("../../etc/passwd"), is_digest("AB" * 32)
    (True, False, False)
    """
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def day_folder(name: str) -> int | None:
    """The day (``YYYYMMDD`` as an int) of a partition folder name, or None if it is not one.

    Examples
    --------
    >>> day_folder("day=20260301"), day_folder("day=20261301"), day_folder("day=2026-03-01")
    (20260301, None, None)
    """
    match = _DAY_RE.fullmatch(name)
    if match is None:
        return None
    value = int(match.group(1))
    try:
        date(value // 10000, value // 100 % 100, value % 100)
    except ValueError:
        return None
    return value


def is_data_file(name: str) -> bool:
    """Whether ``name`` is the name of a capture data file (in a day folder)."""
    return _PART_RE.fullmatch(name) is not None or _COMPACT_RE.fullmatch(name) is not None


def log_name(name: str) -> tuple[str, int] | None:
    """(writer id, segment) of a durable-log segment's file name, or None if it is not one."""
    match = _LOG_RE.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match is not None else None


def marker_cutoff(name: str) -> int | None:
    """The time (µs since the epoch) of a clear marker's file name, or None if it is not one."""
    match = _MARKER_RE.fullmatch(name)
    return int(match.group(1)) if match is not None else None


# -- file metadata -----------------------------------------------------------------------------
def meta_text(metadata: Mapping[bytes, bytes], key: bytes) -> str | None:
    """A key/value metadata entry as text (None when absent); ``ValueError`` unless UTF-8."""
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{key.decode()} is not UTF-8 text") from None


def parse_time_range(text: str | None) -> tuple[int, int]:
    """``first_us,last_us`` (``traffic_lab.time_range``); the widest range when absent."""
    if text is None:
        return 0, 2**62
    first, sep, last = text.partition(",")
    if sep and _is_int(first) and _is_int(last) and int(first) <= int(last):
        return int(first), int(last)
    raise ValueError(f"invalid traffic_lab.time_range {text[:60]!r}")


def _is_int(text: str) -> bool:
    return 0 < len(text) <= 19 and text.lstrip("-").isdigit()


def parse_replaces(text: str | None, rel: str) -> list[str]:
    """The files a data file replaces (``traffic_lab.replaces``), each checked against the
    grammar; ``ValueError`` saying what is wrong otherwise.

    ``rel`` is the file's own relative path, ``day=YYYYMMDD/<name>``.

    Examples
    --------
    >>> own = "day=20260301/compact-01772323200000000-5be1c2aa.parquet"
    >>> parse_replaces('["day=20260301/part-3f9c0a1be2d44c17-000000.parquet"]', own)
    ['day=20260301/part-3f9c0a1be2d44c17-000000.parquet']
    >>> parse_replaces('["../victim.txt"]', own)
    Traceback (most recent call last):
    ...
    ValueError: traffic_lab.replaces names '../victim.txt', not a data file of day=20260301
    """
    if text is None:
        return []
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("traffic_lab.replaces is not JSON") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("traffic_lab.replaces is not a JSON list of file names")
    folder, _, own = rel.partition("/")
    if value and _COMPACT_RE.fullmatch(own) is None:
        raise ValueError("traffic_lab.replaces in a file that compact() did not write")
    for entry in value:
        entry_folder, sep, name = entry.partition("/")
        if not sep or entry_folder != folder or not is_data_file(name):
            raise ValueError(
                f"traffic_lab.replaces names {entry[:60]!r}, not a data file of {folder}"
            )
        if _COMPACT_RE.fullmatch(name) is not None and name >= own:
            raise ValueError(
                f"traffic_lab.replaces names {name}, a compacted file not older than this one"
            )
    return list(value)


# -- column types ------------------------------------------------------------------------------
def check_types(schema: pa.Schema, expected: pa.Schema) -> None:
    """``ValueError`` naming every column of ``schema`` whose type is not the ``expected`` one.

    Nullability and the names of list items (``item``, ``element``) are not compared; a
    string column must be ``string`` (not ``large_string``), a time ``timestamp[us, UTC]``.
    """
    wrong = [
        f"{field.name} is {field.type}, not {expected.field(field.name).type}"
        for field in schema
        if expected.get_field_index(field.name) >= 0
        and not _same_type(field.type, expected.field(field.name).type)
    ]
    if wrong:
        raise ValueError("wrong column types: " + "; ".join(wrong))


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_map(expected):
        return (
            pa.types.is_map(actual)
            and _same_type(actual.key_type, expected.key_type)
            and _same_type(actual.item_type, expected.item_type)
        )
    if pa.types.is_list(expected):
        return pa.types.is_list(actual) and _same_type(actual.value_type, expected.value_type)
    if pa.types.is_struct(expected):
        return (
            pa.types.is_struct(actual)
            and actual.num_fields == expected.num_fields
            and all(
                actual.field(i).name == expected.field(i).name
                and _same_type(actual.field(i).type, expected.field(i).type)
                for i in range(expected.num_fields)
            )
        )
    return bool(actual.equals(expected))
