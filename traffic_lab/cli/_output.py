"""What commands print and how they end: consoles, notes, progress bars, tables, exit codes."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click
from rich import box
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
from rich.table import Table

EXIT_DIFFERENCES = 1
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

    exit_code = 3


class NetworkProblemError(click.ClickException):
    """Exit 4: an upstream or target is unreachable, or a port cannot be listened on."""

    exit_code = 4


class BadInputError(click.ClickException):
    """Exit 2: a file or value given on the command line is not usable."""

    exit_code = 2


def command(name: str, epilog: str, **settings: Any) -> Callable[[Any], click.Command]:
    """A click command whose help ends with ``epilog`` (examples...) and the exit codes."""
    return click.command(name, epilog=f"\b\n{epilog}\n{EXIT_CODES_HELP}", **settings)


def make_console(stderr: bool = False) -> Console:
    """Where results (stdout), or progress, notes and warnings (stderr) go. Not a terminal: no
    colours, and no width limit on lines."""
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream,
        highlight=False,
        width=None if terminal else 10_000,
        no_color=not terminal or None,
        force_terminal=None if terminal or stderr else False,
    )


def note(message: str) -> None:
    """A line of information on stderr (plain text, never markup)."""
    click.echo(message, err=True)


def plural(n: int, noun: str) -> str:
    """``"1 exchange"``, ``"2 exchanges"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def show_warnings() -> None:
    """Show library warnings (a skipped capture file...) as one plain line on stderr."""

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def simple_table(
    *columns: str, right: Iterable[str] = (), fold: Iterable[str] | None = None, **options: Any
) -> Table:
    """A table with a rule under its head and no border; ``right``: right-aligned columns;
    ``fold``: the columns that wrap (the others never do; long values fold)."""
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, **options)
    right, wrapping = set(right), None if fold is None else set(fold)
    for name in columns:
        settings: dict[str, Any] = {"justify": "right" if name in right else "left"}
        if wrapping is not None:
            settings.update(no_wrap=name not in wrapping, overflow="fold")
        grid.add_column(name, **settings)
    return grid


@contextlib.contextmanager
def progress(description: str, total: int | None, *, quiet: bool = False) -> Iterator[Any]:
    """A progress bar on stderr (a spinner when ``total`` is unknown); nothing when stderr is
    not a terminal or ``quiet``. Yields ``advance(n=1)``."""
    err = make_console(stderr=True)
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    bar = Progress(*columns, console=err, transient=True, disable=quiet or not err.is_terminal)
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def interrupted(message: str) -> click.exceptions.Exit:
    """Say what an interrupted command left behind; the exit (130) to raise."""
    note(f"interrupted: {message}")
    return click.exceptions.Exit(EXIT_INTERRUPTED)
