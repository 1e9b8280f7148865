"""The ``traffic-lab`` command group: the commands of :mod:`browse`, :mod:`files` and :mod:`net`."""

from __future__ import annotations

import click

from .._version import __version__
from ._output import EXIT_CODES_HELP, interrupted
from .browse import ls, show, stats
from .files import compact, export, import_, scan_secrets
from .net import record, replay, serve

__all__ = ["cli"]


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # click would say "Aborted!" and exit 1, which scripts read as "differences".
            raise interrupted("stopped before finishing") from None


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  traffic-lab record captures/api --upstream https://api.example.com
  traffic-lab ls captures/api
  traffic-lab serve captures/api --port 8000
  traffic-lab replay captures/api --target http://127.0.0.1:9000

A capture is a folder of Parquet files (or an object-store URL such as s3://bucket/prefix).
'traffic-lab COMMAND --help' describes each command.

"""
    + EXIT_CODES_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="traffic-lab")
def cli() -> None:
    """Record, browse, serve and replay HTTP traffic captures."""


for command in (ls, stats, show, import_, export, compact, scan_secrets, serve, record, replay):
    cli.add_command(command)
