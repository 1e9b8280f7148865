"""IPython magics (``%load_ext traffic_lab``): record and replay what a cell, or a session, sends.

``%%traffic captures/x [--mode none] [--tag k=v ...]``
    Runs the cell inside :func:`traffic_lab.capture` and shows "N recorded, M replayed,
    K missed" under it. Each exchange is tagged with the cell: ``cell`` (the execution count)
    and ``cell_id`` (when the front end sends one, as JupyterLab and nbclient do).
``%traffic on captures/x [--mode ...] [--tag k=v ...]`` / ``%traffic off``
    Every request of the session, from any thread, until ``off`` (a process-wide capture:
    kernels run cells in fresh contexts, so a context-scoped one would end with its cell).
    Each cell run after it retags what is recorded next with that cell.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .capturing import Capture, show_report

__all__ = ["register"]

_SESSION: dict[int, tuple[Capture, Any]] = {}  # id(shell) -> the session's capture, its hook


def _parser(prog: str, with_switch: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, add_help=False, exit_on_error=False)
    if with_switch:
        parser.add_argument("switch", choices=["on", "off"])
        parser.add_argument("target", nargs="?")
    else:
        parser.add_argument("target")
    parser.add_argument("--mode", default="new_episodes")
    parser.add_argument("--tag", action="append", default=[], metavar="K=V")
    parser.add_argument("--timing", choices=["none", "recorded"], default="none")
    parser.add_argument("--speed", type=float, default=1.0)
    return parser


def _parse(line: str, *, with_switch: bool) -> argparse.Namespace:
    prog = "%traffic" if with_switch else "%%traffic"
    try:
        args = _parser(prog, with_switch).parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit) as exc:
        usage = (
            "%traffic on PATH [--mode MODE] [--tag K=V] [--timing recorded [--speed X]]"
            " | %traffic off"
            if with_switch
            else "%%traffic PATH [--mode MODE] [--tag K=V] [--timing recorded [--speed X]]"
        )
        raise ValueError(f"{exc}; usage: {usage}") from None
    for tag in args.tag:
        if "=" not in tag:
            raise ValueError(f"--tag takes K=V, not {tag!r}")
    return args


def _cell_tags(shell: Any, extra: list[str], cell_id: object = None) -> dict[str, str]:
    # IPython counts a cell (stored in history, as kernels do) before running it: the running
    # cell's number is one less.
    tags = {"cell": str(shell.execution_count - 1)}
    if cell_id is None:
        parent = getattr(shell, "parent_header", None) or {}
        cell_id = (parent.get("metadata") or {}).get("cellId")
    if isinstance(cell_id, str) and cell_id:
        tags["cell_id"] = cell_id
    for tag in extra:
        key, _, value = tag.partition("=")
        tags[key] = value
    return tags


def traffic_cell(shell: Any, line: str, cell: str) -> None:
    """``%%traffic``: run ``cell`` inside a capture and show what it did."""
    args = _parse(line, with_switch=False)
    block = Capture(
        args.target,
        args.mode,
        tags=_cell_tags(shell, args.tag),
        report=False,
        timing=args.timing,
        speed=args.speed,
    )
    with block:
        result = shell.run_cell(cell, store_history=False)
    assert block.report is not None
    show_report(block.report)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec


def traffic_line(shell: Any, line: str) -> None:
    """``%traffic on PATH`` / ``%traffic off``: a capture for the whole session."""
    args = _parse(line, with_switch=True)
    current = _SESSION.pop(id(shell), None)
    if current is not None:
        shell.events.unregister("pre_run_cell", current[1])
        current[0].__exit__(None, None, None)
    if args.switch == "off":
        if current is None:
            print("traffic_lab: no session capture was on")
        return
    if not args.target:
        raise ValueError("usage: %traffic on PATH [--mode MODE] [--tag K=V]")
    session = Capture(
        args.target,
        args.mode,
        tags=_cell_tags(shell, args.tag),
        scope="process",
        report=True,
        timing=args.timing,
        speed=args.speed,
    )
    session.__enter__()

    def name_the_cell(info: Any) -> None:
        session.retag(_cell_tags(shell, args.tag, getattr(info, "cell_id", None)))

    shell.events.register("pre_run_cell", name_the_cell)
    _SESSION[id(shell)] = (session, name_the_cell)
    print(f"traffic_lab: recording to {session.target} (mode {session.effective_mode.value})")


def register(shell: Any) -> None:
    """Register the magics on an IPython shell (what ``%load_ext traffic_lab`` calls)."""

    def cell_magic(line: str, cell: str) -> None:
        traffic_cell(shell, line, cell)

    def line_magic(line: str) -> None:
        traffic_line(shell, line)

    cell_magic.__doc__ = traffic_cell.__doc__
    line_magic.__doc__ = traffic_line.__doc__
    shell.register_magic_function(cell_magic, "cell", "traffic")
    shell.register_magic_function(line_magic, "line", "traffic")
