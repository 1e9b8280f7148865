"""What commands are given: captures to open, options to check, files to read, Ctrl-C; each
problem as its exit code (see :mod:`._output`)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click
import httpx

from ..errors import InteropError, StoreError, StoreNotFoundError
from ._output import BadInputError, CaptureProblemError

if TYPE_CHECKING:
    from ..matching import Matcher
    from ..redaction import Redactor
    from ..stores.parquet import ParquetCache, ParquetStream


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
tags_option = click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A tag stored with every exchange (repeatable).",
)
_DAY_DIR = re.compile(r"day=\d{8}")
_F = TypeVar("_F", bound=Callable[..., Any])


def count_option(*names: str, default: int, minimum: int, help: str) -> Callable[[_F], _F]:
    """An integer option of at least ``minimum``; ``--help`` shows its default."""
    return click.option(
        *names, type=click.IntRange(min=minimum), default=default, show_default=True, help=help
    )


@contextlib.contextmanager
def capture_errors(path: str) -> Iterator[None]:
    """Turn store errors into exit 3 with a message that names the capture."""
    try:
        yield
    except StoreNotFoundError as exc:
        raise CaptureProblemError(f"capture not found: {exc.path}") from exc
    except StoreError as exc:
        raise CaptureProblemError(f"capture unreadable: {exc}") from exc
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        raise CaptureProblemError(f"capture unreadable: {path}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def interop_errors(path: str) -> Iterator[None]:
    """Turn errors reading or writing a foreign file into exit 2 with the library's message."""
    try:
        yield
    except InteropError as exc:
        raise BadInputError(str(exc)) from exc
    except FileExistsError as exc:
        raise BadInputError(f"{path} exists; pass --overwrite to replace it") from exc
    except FileNotFoundError as exc:
        raise BadInputError(f"no such file or folder: {path}") from exc
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        raise BadInputError(f"{path}: {exc.strerror or exc}") from exc


def _check_capture_path(path: str) -> None:
    if "://" in path:
        return
    p = Path(path)
    if not p.exists():
        raise CaptureProblemError(f"capture not found: {path}")
    if not p.is_dir():
        raise CaptureProblemError(
            f"not a capture: {path} is a file (a capture is a folder; "
            "to read a HAR, VCR or http4k file, use 'traffic-lab import')"
        )
    if not os.access(p, os.R_OK | os.X_OK):
        raise CaptureProblemError(f"capture unreadable: {path}: permission denied")
    from ..stores.parquet.writer import INTERNAL_DIR

    # An empty folder is an empty capture; a folder of other things is a mistake (exit 2).
    entries = [e for e in os.listdir(p) if not e.startswith(".")]
    if entries and not any(e == INTERNAL_DIR or _DAY_DIR.fullmatch(e) for e in entries):
        raise BadInputError(
            f"not a capture: {path} holds no capture files (a capture is a folder of "
            "day=YYYYMMDD partitions of Parquet files, as ParquetStream/ParquetCache write them)"
        )


def open_stream(path: str, *, create: bool = False) -> ParquetStream:
    """Open a capture in recorded order; without ``create`` it must exist (else exit 3), and
    is not recovered (that writes)."""
    if not create:
        _check_capture_path(path)
    from ..stores.parquet import ParquetStream

    with capture_errors(path):
        return ParquetStream(path, create=create, recover=create, flush_seconds=5.0)


@contextlib.contextmanager
def reading(path: str) -> Iterator[ParquetStream]:
    """:func:`open_stream` an existing capture, with :func:`capture_errors`; closed after."""
    store = open_stream(path)
    try:
        with capture_errors(path):
            yield store
    finally:
        store.close()


def open_cache(path: str, matcher: Matcher | None = None) -> ParquetCache:
    """Open an existing capture for lookup by request (exit 3 if it is missing)."""
    _check_capture_path(path)
    from ..stores.parquet import ParquetCache

    with capture_errors(path):
        return ParquetCache(path, matcher, create=False, recover=False)


def parse_tags(values: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a value without ``=`` is bad input (exit 2)."""
    tags = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="'--tag'")
        tags[key] = text
    return tags


def validate_base_url(value: str, option: str) -> str:
    """An ``http(s)://host[:port][/path]`` URL without query, else bad input (exit 2)."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise click.BadParameter(f"not a URL: {value!r} ({exc})", param_hint=option) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(
            f"expected an http:// or https:// URL with a host, got {value!r}", param_hint=option
        )
    if url.query or url.fragment:
        raise click.BadParameter(
            f"expected a base URL without query or fragment, got {value!r}", param_hint=option
        )
    return str(url)


def redactor(no_redact: bool) -> Redactor:
    """The default :class:`~traffic_lab.Redactor`, or a disabled one for ``--no-redact``."""
    from ..redaction import Redactor

    return Redactor.disabled() if no_redact else Redactor()


class Interrupt:
    """Ctrl-C as a request to stop between two steps: the first SIGINT sets :attr:`requested`
    (work loops check it); a second raises ``KeyboardInterrupt``, for work stuck in one step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> Interrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (tests driving main() in a thread)
            self._previous = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
