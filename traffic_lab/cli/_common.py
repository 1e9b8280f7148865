"""What every command shares: exit codes, errors, consoles, progress, opening captures, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import InteropError, StoreError, StoreNotFoundError

if TYPE_CHECKING:
    from ..matching import Matcher
    from ..stores.parquet import ParquetCache, ParquetStream

__all__ = [
    "EXIT_CAPTURE",
    "EXIT_CODES_HELP",
    "EXIT_DIFFERENCES",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "BadInputError",
    "CaptureProblemError",
    "Interrupt",
    "NetworkProblemError",
    "capture_errors",
    "err_console",
    "interop_errors",
    "interrupted",
    "note",
    "open_cache",
    "open_stream",
    "out_console",
    "parse_tags",
    "progress",
    "show_warnings",
    "validate_base_url",
]

EXIT_OK = 0
EXIT_DIFFERENCES = 1
EXIT_USAGE = 2
EXIT_CAPTURE = 3
EXIT_NETWORK = 4
EXIT_INTERRUPTED = 130

#: The exit-code table shown in ``--help`` (``\b`` keeps click from re-wrapping it).
EXIT_CODES_HELP = """\b
Exit codes:
  0    done; no differences, no findings
  1    differences found (replay) or secrets found (scan-secrets)
  2    bad usage or bad input (options, URLs, files to import)
  3    capture not found or unreadable
  4    network problem (upstream or target unreachable, port in use)
  130  interrupted by Ctrl-C before finishing (what was done is kept)"""


class CaptureProblemError(click.ClickException):
    """Exit 3: the capture does not exist or cannot be read."""

    exit_code = EXIT_CAPTURE


class NetworkProblemError(click.ClickException):
    """Exit 4: an upstream or target is unreachable, or a port cannot be listened on."""

    exit_code = EXIT_NETWORK


class BadInputError(click.ClickException):
    """Exit 2: a file or value given on the command line is not usable."""

    exit_code = EXIT_USAGE


def out_console() -> Console:
    """Where results go (stdout). Not a terminal: no colours, and no width limit on lines."""
    stream = sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream,
        highlight=False,
        width=None if terminal else 10_000,
        no_color=not terminal or None,
        force_terminal=False if not terminal else None,
    )


def err_console() -> Console:
    """Where progress, notes and warnings go (stderr)."""
    terminal = sys.stderr.isatty()
    return Console(
        stderr=True,
        highlight=False,
        width=None if terminal else 10_000,
        no_color=not terminal or None,
    )


def note(message: str) -> None:
    """A line of information on stderr (plain text, never markup)."""
    click.echo(message, err=True)


def show_warnings() -> None:
    """Show library warnings (a skipped capture file...) as one plain line on stderr."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


@contextlib.contextmanager
def progress(description: str, total: int | None, *, quiet: bool = False) -> Iterator[Any]:
    """A progress bar on stderr (a spinner when ``total`` is unknown); nothing when stderr is
    not a terminal or ``quiet``. Yields ``advance(n=1)``."""
    console = err_console()
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    bar = Progress(
        *columns,
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def _is_local(path: str) -> bool:
    return "://" not in path


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


_DAY_DIR = re.compile(r"day=\d{8}")


def _check_capture_path(path: str) -> None:
    if not _is_local(path):
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
    """Open a capture in recorded order; without ``create`` it must exist (else exit 3).

    Captures opened only to read are not recovered (that writes): ``recover=create``.
    """
    if not create:
        _check_capture_path(path)
    from ..stores.parquet import ParquetStream

    with capture_errors(path):
        return ParquetStream(path, create=create, recover=create, flush_seconds=5.0)


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


class Interrupt:
    """Ctrl-C as a request to stop between two steps, instead of an exception at any point.

    The first SIGINT sets :attr:`requested`; work loops check it and stop cleanly. A second one
    raises ``KeyboardInterrupt`` as usual, for work stuck in a single step.
    """

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


def interrupted(message: str) -> click.exceptions.Exit:
    """Say what an interrupted command left behind; the exit (130) to raise."""
    note(f"interrupted: {message}")
    return click.exceptions.Exit(EXIT_INTERRUPTED)
