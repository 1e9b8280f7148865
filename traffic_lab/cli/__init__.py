"""The ``traffic-lab`` command line: browse, import, export, compact and scan captures, serve
one as a mock server, record through a reverse proxy, and replay against a live server.

It needs the ``cli`` extra (click, rich): ``pip install 'traffic_lab[cli]'``. :func:`main` is
the console script; ``python -m traffic_lab.cli`` runs it too. ``--help`` lists the exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_MISSING = (
    "The traffic-lab command line needs extra packages ({name} is missing):\n"
    "    pip install 'traffic_lab[cli]'\n"
)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``traffic-lab`` command line (``argv`` defaults to ``sys.argv[1:]``)."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(_MISSING.format(name=exc.name or "a package"))
        sys.exit(2)
    from ._app import cli
    from ._output import show_warnings

    show_warnings()
    cli.main(args=list(argv) if argv is not None else None, prog_name="traffic-lab")
