"""Moving traffic in and out of captures, and keeping them tidy: ``import``, ``export``,
``compact``, ``scan-secrets``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ._inputs import (
    Interrupt,
    capture_errors,
    count_option,
    interop_errors,
    open_stream,
    parse_tags,
    quiet_option,
    reading,
    redactor,
    tags_option,
)
from ._output import (
    EXIT_DIFFERENCES,
    BadInputError,
    command,
    interrupted,
    make_console,
    note,
    plural,
    progress,
    simple_table,
)

if TYPE_CHECKING:
    from ..exchange import Exchange
    from ..stores.parquet import ParquetStream

__all__ = ["compact", "export", "import_", "scan_secrets"]

_FORMATS = ("har", "vcr", "http4k")


def _detect_format(path: Path, *, reading: bool) -> str:
    """The file format from the path (and, for ``.json`` being read, from its content)."""
    name = path.name.lower()
    if path.is_dir() or (not reading and not path.suffix):
        return "http4k"
    if name.endswith((".har", ".har.gz", ".zhar")):
        return "har"
    if name.endswith((".yaml", ".yml")):
        return "vcr"
    if name.endswith(".json") and reading and path.is_file():
        with path.open("rb") as f:
            head = f.read(4096)
        if b'"log"' in head:
            return "har"
        if b'"interactions"' in head:
            return "vcr"
    raise BadInputError(
        f"cannot tell the format of {path} from its name; pass --format ({', '.join(_FORMATS)})"
    )


# -- import ----------------------------------------------------------------------------------------
@command(
    "import",
    """Examples:
  traffic-lab import session.har captures/api
  traffic-lab import cassettes/test_users.yaml captures/api --tag source=vcr
  traffic-lab import build/http4k-traffic captures/api --base-url https://api.example

Formats: HAR 1.2 (.har, .har.gz, .zhar), VCR.py cassettes (.yaml, .yml, .json) and http4k
DiskStream / DiskTree folders. The whole file is read and checked before anything is stored;
an entry no capture can hold is skipped and named on stderr (--strict: exit 2 instead).
""",
)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("capture")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), help="Default: from the name.")
@click.option("--base-url", help="http4k: scheme and host for requests recorded with a path only.")
@tags_option
@click.option("--no-redact", is_flag=True, help="Store secrets as they are (not recommended).")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse the whole file (exit 2) if any entry is bad, instead of skipping it.",
)
@quiet_option
def import_(
    source: Path,
    capture: str,
    fmt: str | None,
    base_url: str | None,
    tags: tuple[str, ...],
    no_redact: bool,
    strict: bool,
    quiet: bool,
) -> None:
    """Import a HAR file, a VCR.py cassette or an http4k folder into a capture (created if
    needed; an existing one is added to). Secrets are redacted first, as when recording."""
    from .. import interop

    labels = parse_tags(tags)
    if not source.exists():
        raise BadInputError(f"no such file or folder: {source}")
    kind = fmt or _detect_format(source, reading=True)
    scrub = redactor(no_redact)
    done = 0
    with Interrupt() as stop:
        with interop_errors(str(source)), progress(f"reading {source.name}", None, quiet=quiet):
            options = {"base_url": base_url} if kind == "http4k" else {}
            exchanges = getattr(interop, f"read_{kind}")(source, strict=strict, **options)
        if stop.requested:
            raise interrupted(f"nothing imported into {capture}")
        store = open_stream(capture, create=True)
        with capture_errors(capture):
            try:
                with progress("importing", len(exchanges), quiet=quiet) as advance:
                    for exchange in exchanges:
                        if stop.requested:
                            break
                        if labels:
                            exchange = exchange.replace(tags={**exchange.tags, **labels})
                        store.put(scrub.redact(exchange))
                        done += 1
                        advance()
            finally:
                store.close()
    if done < len(exchanges):
        raise interrupted(f"{done} of {len(exchanges)} exchanges imported into {capture}")
    note(f"imported {plural(done, 'exchange')} from {source} into {capture}")


# -- export ----------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised inside the exchanges a writer consumes: the writer publishes nothing."""


@command(
    "export",
    """Examples:
  traffic-lab export captures/api session.har
  traffic-lab export captures/api cassette.yaml --overwrite
  traffic-lab export captures/api build/traffic --format http4k --layout tree

VCR.py cassettes and http4k folders cannot hold exchanges without a complete response
(transport errors, truncated bodies): they are left out, and counted.
""",
)
@click.argument("capture")
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    help="Default: from the name (.har, .yaml/.yml, a name without suffix: http4k).",
)
@click.option(
    "--layout",
    type=click.Choice(["stream", "tree"]),
    default="stream",
    show_default=True,
    help="http4k: DiskStream or DiskTree layout.",
)
@click.option("--overwrite", is_flag=True, help="Replace TARGET if it exists.")
@quiet_option
def export(
    capture: str,
    target: Path,
    fmt: str | None,
    layout: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Export a capture as a HAR file, a VCR.py cassette or an http4k folder. The file
    appears whole or not at all."""
    from .. import interop

    kind = fmt or _detect_format(target, reading=False)
    if target.exists() and not overwrite:
        raise BadInputError(f"{target} exists; pass --overwrite to replace it")
    skipped = 0

    def exchanges(store: ParquetStream, stop: Interrupt, advance: Any) -> Iterator[Exchange]:
        nonlocal skipped
        for exchange in store.exchanges():
            if stop.requested:
                raise _Stop
            advance()
            if kind != "har" and not exchange.ok:
                skipped += 1
                continue
            yield exchange

    with reading(capture) as store, Interrupt() as stop, interop_errors(str(target)):
        try:
            with progress("exporting", len(store), quiet=quiet) as advance:
                options = {"layout": layout} if kind == "http4k" else {}
                write = getattr(interop, f"write_{kind}")
                written = write(
                    exchanges(store, stop, advance), target, overwrite=overwrite, **options
                )
        except _Stop:
            raise interrupted(f"nothing written to {target}") from None
    message = f"exported {plural(written, 'exchange')} to {target}"
    if skipped:
        message += f"; left out {skipped} without a complete response (no {kind} form)"
    note(message)


# -- compact ---------------------------------------------------------------------------------------
@command(
    "compact",
    """Example:
  traffic-lab compact captures/api --target-mb 128

Readers (and writers) of the capture keep working while it runs: a small file is deleted
only after the merged file that replaces it is in place. Interrupting it leaves a readable
capture.
""",
)
@click.argument("capture")
@count_option(
    "--target-mb", default=256, minimum=1, help="Merged files grow up to about this size."
)
@quiet_option
def compact(capture: str, target_mb: int, quiet: bool) -> None:
    """Merge a capture's small files (one per flush) into large ones, per day partition,
    without changing what readers see; also removes temporaries left by crashed writers."""
    try:
        with reading(capture) as store, progress(f"compacting {capture}", None, quiet=quiet):
            report = store.compact(target_bytes=target_mb * 1024 * 1024)
    except KeyboardInterrupt:
        raise interrupted(f"{capture} is readable; some files may be left unmerged") from None
    note(
        f"merged {plural(report.files_merged, 'file')} into {report.files_written} "
        f"({report.rows} exchanges); removed "
        f"{plural(len(report.temporaries_removed), 'temporary file')}"
    )


# -- scan-secrets ----------------------------------------------------------------------------
@command(
    "scan-secrets",
    """Examples:
  traffic-lab scan-secrets captures/api
  traffic-lab scan-secrets captures/api --json || echo "secrets found"

Findings: known token formats anywhere (GitHub, Slack, Stripe, AWS, JWT, private keys, URL
credentials...), Basic credentials and password fields, and high-entropy values in auth-like
headers, query parameters and JSON or form fields; see traffic_lab.frames.scan_secrets.
Exit 1 means secrets were found; 0 means none.
""",
)
@click.argument("capture")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding instead.")
@quiet_option
def scan_secrets(capture: str, as_json: bool, quiet: bool) -> None:
    """Look for credentials a capture still holds (recorded with --no-redact, imported, or
    written by other tools). Only a masked preview of each value is shown, with the number of
    the exchange in recorded order ('#', as 'ls' and 'show' use it)."""
    from ..frames import scan_secrets as scan

    with reading(capture) as store, progress(f"scanning {capture}", None, quiet=quiet):
        ids = store.to_arrow(columns=["writer_id", "writer_seq"])
        report = scan(store)
    # An exchange's number is where its (writer_id, writer_seq) stands in recorded order.
    number = {key: i for i, key in enumerate(zip(*ids.to_pydict().values(), strict=True))}
    found = [
        {
            "index": number[(row["writer_id"], row["writer_seq"])],
            # Not the URL: its query may hold the very secret found (previews are masked).
            "method": row["request_method"],
            **{key: row[key] for key in ("location", "name", "kind", "preview")},
        }
        for row in report.to_dict("records")
    ]
    total = ids.num_rows
    if as_json:
        for item in found:
            click.echo(json.dumps(item, ensure_ascii=False))
    elif found:
        grid = simple_table("#", "location", "name", "kind", "preview", right=["#"])
        for item in found:
            grid.add_row(
                str(item["index"]),
                item["location"],
                Text(item["name"] or ""),
                item["kind"],
                Text(item["preview"]),
            )
        make_console().print(grid)
    exchanges = len({item["index"] for item in found})
    note(f"{plural(len(found), 'secret')} found in {exchanges} of {plural(total, 'exchange')}")
    if found:
        raise click.exceptions.Exit(EXIT_DIFFERENCES)
