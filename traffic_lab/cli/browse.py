"""Looking at a capture: ``ls`` (one line per exchange), ``stats`` (the figures of
``df.traffic.summary()`` and ``df.traffic.endpoints()``), ``show`` (one exchange). An exchange's
number is its position in recorded order, as ``ParquetStream.exchanges(offset=...)`` takes it.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ..wire import header_text
from ..wire.bodies import decoded, message_body_view
from ._inputs import count_option, reading
from ._output import BadInputError, command, make_console, plural, simple_table

if TYPE_CHECKING:
    import pyarrow as pa

    from ..exchange import Exchange
    from ..frames.where import Where

__all__ = ["ls", "show", "stats"]

_LS_COLUMNS = [
    "started_at",
    "elapsed",
    "request_method",
    "request_url",
    "request_host",
    "request_path",
    "response_status",
    "response_body_size",
    "request_body_size",
    "error_type",
    "truncated",
]


# -- reading and filtering -------------------------------------------------------------------------
def _where(host: str | None, method: str | None, status: str | None) -> Where | None:
    """The ``--host``/``--method``/``--status`` options as a :class:`~traffic_lab.frames.Where`
    (the one filter grammar), or ``None`` when none is given. Bad values are usage errors."""
    if host is None and method is None and status is None:
        return None
    from ..frames.where import Where

    try:
        return Where(host=host, method=method, status=status)
    except (TypeError, ValueError) as exc:
        hint = "'--status'" if status is not None and "status" in str(exc) else None
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _read(path: str, where: Where | None) -> pa.Table:
    """The listing columns of the rows of the capture at ``path`` that ``where`` selects (pushed
    down to the Parquet files), with ``index``: each row's position in the whole capture's
    recorded order, which is what ``show`` takes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    with reading(path) as store:
        if where is None:
            table = store.to_arrow(columns=_LS_COLUMNS)
            index = pa.array(np.arange(table.num_rows), pa.int64())
        else:
            table = store.to_arrow(
                columns=[*_LS_COLUMNS, "writer_id", "writer_seq"], filter=where.expression()
            )
            # A row is named by (writer_id, writer_seq); its number is where that name stands in
            # the order columns of every row (two narrow columns, no bodies).
            every = store.to_arrow(columns=["writer_id", "writer_seq"])

            def names(t: pa.Table) -> Any:
                seq = pc.cast(t.column("writer_seq"), pa.string())
                return pc.binary_join_element_wise(t.column("writer_id"), seq, ":")  # type: ignore[call-overload]

            index = pc.cast(pc.index_in(names(table), value_set=names(every)), pa.int64())
    return table.append_column("index", index)


_filter_options = [
    click.option("--host", help="Only exchanges with this request host (a glob: '*.example')."),
    click.option("--method", help="Only this request method (GET, POST...)."),
    click.option(
        "--status",
        help="Only these statuses (the grammar of Where(status=...)): codes, classes, ranges "
        "or 'failed' (no response), e.g. '404', '5xx', '500-599', '4xx,failed'.",
    ),
]


def _with_filters(function: Any) -> Any:
    for option in reversed(_filter_options):
        function = option(function)
    return function


# -- ls --------------------------------------------------------------------------------------------
@command(
    "ls",
    """Examples:
  traffic-lab ls captures/api
  traffic-lab ls captures/api --status 5xx,failed --host api.example.com
  traffic-lab ls captures/api --json | jq .url
""",
)
@click.argument("capture")
@_with_filters
@count_option("--limit", default=100, minimum=1, help="At most this many lines (the first ones).")
@click.option("--all", "show_all", is_flag=True, help="Every exchange (no --limit).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead.")
def ls(
    capture: str,
    host: str | None,
    method: str | None,
    status: str | None,
    limit: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """List a capture's exchanges in recorded order: number, time, method, status, duration,
    response size and URL. The number is what 'traffic-lab show' takes."""
    table = _read(capture, _where(host, method, status))
    total = table.num_rows
    if not show_all:
        table = table.slice(0, limit)
    rows = _ls_rows(table)
    console = make_console()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    # Fit the terminal: short columns never wrap, the URL folds onto more lines instead of
    # being cut, and the note column appears only when some row has a note.
    notes = [row["error"] or ("truncated" if row["truncated"] else "") for row in rows]
    columns = ["#", "time (UTC)", "method", "status", "ms", "bytes", "url"]
    if any(notes):
        columns.append("note")
    grid = simple_table(
        *columns, right=["#", "status", "ms", "bytes"], fold=["url", "note"], collapse_padding=True
    )
    for row, row_note in zip(rows, notes, strict=True):
        cells = [
            str(row["index"]),
            (row["started_at"] or "").replace("T", " ").replace("+00:00", ""),
            row["method"],
            "-" if row["status"] is None else str(row["status"]),
            f"{row['elapsed_ms']:.1f}",
            "-" if row["response_bytes"] is None else str(row["response_bytes"]),
            Text(row["url"]),
        ]
        if any(notes):
            cells.append(Text(row_note))
        grid.add_row(*cells)
    console.print(grid)
    shown = len(rows)
    if shown < total:
        console.print(Text(f"{shown} of {total} exchanges shown; --limit N or --all for more"))
    else:
        console.print(Text(plural(total, "exchange")))


def _ls_rows(table: pa.Table) -> list[dict[str, Any]]:
    return [
        {
            "index": row["index"],
            "started_at": row["started_at"].isoformat(timespec="milliseconds"),
            "method": row["request_method"],
            "url": row["request_url"],
            "status": row["response_status"],
            "elapsed_ms": round(row["elapsed"] // timedelta(microseconds=1) / 1000, 3),
            "response_bytes": (
                None if row["response_status"] is None else row["response_body_size"]
            ),
            "error": row["error_type"],
            "truncated": bool(row["truncated"]),
        }
        for row in table.to_pylist()
    ]


# -- stats -------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A pandas / numpy scalar as JSON: timestamps in ISO 8601, durations in seconds, NaN null."""
    import math

    import pandas as pd

    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float):
        return round(value, 3)
    return value


_ENDPOINT_COLUMNS = (
    "count",
    "errors_4xx",
    "errors_5xx",
    "failed",
    "error_rate",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "response_bytes_total",
)


def _summarise(frame: Any, by_host: bool) -> dict[str, Any]:
    """``df.traffic.summary()`` and ``df.traffic.endpoints()`` as plain data."""
    summary = {name: _plain(value) for name, value in frame.traffic.summary().items()}
    table = frame.traffic.endpoints(by_host=by_host) if len(frame) else None
    rows = []
    if table is not None:
        for keys, record in zip(table.index, table.to_dict("records"), strict=True):
            names = table.index.names
            row = {str(n): _plain(k) for n, k in zip(names, keys, strict=True)}
            row.update({c: _plain(record[c]) for c in _ENDPOINT_COLUMNS})
            rows.append(row)
    return {"summary": summary, "endpoints": rows}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@command(
    "stats",
    """Examples:
  traffic-lab stats captures/api
  traffic-lab stats captures/api --by-host --status 2xx --top 10
  traffic-lab stats captures/api --json

The figures are those of df.traffic.summary() and df.traffic.endpoints() in traffic_lab.frames.
""",
)
@click.argument("capture")
@_with_filters
@click.option("--by-host", is_flag=True, help="Split endpoints by request host too.")
@count_option(
    "--top", default=20, minimum=0, help="Endpoints listed in the table (most requested first)."
)
@click.option("--json", "as_json", is_flag=True, help="Summary and every endpoint as JSON.")
def stats(
    capture: str,
    host: str | None,
    method: str | None,
    status: str | None,
    by_host: bool,
    top: int,
    as_json: bool,
) -> None:
    """Summarise a capture: counts, time span, status classes, transport errors, error rate,
    latency percentiles and bytes; then per endpoint (method and path template, ids folded
    into {id}, {uuid}, {hash})."""
    from ..frames import to_pandas

    where = _where(host, method, status)
    with reading(capture) as store:
        frame = to_pandas(store, where=where)
    result = _summarise(frame, by_host)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console = make_console()
    s = result["summary"]
    classes = "  ".join(
        f"{c}xx {s[f'status_{c}xx']}" for c in range(1, 6) if s.get(f"status_{c}xx")
    )
    lines = [
        f"exchanges  {s['exchanges']}",
        f"from       {s['start'] or '-'}",
        f"to         {s['end'] or '-'}",
        f"hosts      {s['hosts']}, {plural(s['endpoints'], 'endpoint')}",
        f"statuses   {classes or '-'}",
        f"errors     {plural(s['failed'], 'transport error')}, {s['truncated']} truncated, "
        f"error rate {s['error_rate']:.1%}",
        f"latency    p50 {_ms(s['p50_ms'])} ms  p90 {_ms(s['p90_ms'])} ms  "
        f"p99 {_ms(s['p99_ms'])} ms  max {_ms(s['max_ms'])} ms",
        f"bytes      {s['request_bytes']} sent, {s['response_bytes']} received",
        f"repeated   {plural(s['repeated_requests'], 'request')} with an earlier twin",
    ]
    for line in lines:
        console.print(Text(line))
    rows = result["endpoints"][:top]
    if not rows:
        return
    keys = ["host", "method", "endpoint"] if by_host else ["method", "endpoint"]
    numbers = ["count", "4xx", "5xx", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms", "bytes"]
    grid = simple_table(*keys, *numbers, right=numbers)
    for row in rows:
        grid.add_row(
            *(Text(str(row[k])) for k in keys),
            *(str(row[k]) for k in ("count", "errors_4xx", "errors_5xx", "failed")),
            *(_ms(row[f"{k}_ms"]) for k in ("p50", "p90", "p99", "max")),
            str(row["response_bytes_total"]),
        )
    console.print()
    console.print(grid)
    if len(result["endpoints"]) > top:
        console.print(Text(f"{len(result['endpoints']) - top} more endpoints (--top N, --json)"))


# -- show ------------------------------------------------------------------------------------------
#: ``show --raw`` and ``--json`` decode a response body up to this size (a decompression bomb
#: stops here and is refused); the terminal view stops at ``wire.bodies.MAX_DECODED``.
MAX_RAW_DECODED = 1 << 30


def _decoded_response(exchange: Exchange) -> tuple[bytes | None, str | None]:
    """The decoded response body, or ``(None, why)`` when it cannot be decoded."""
    if exchange.status_code is None:
        return None, None
    encoding = header_text(exchange.response_headers, "content-encoding")
    data, note = decoded(exchange.response_body, encoding, limit=MAX_RAW_DECODED)
    if note is not None and note.endswith("shown as stored"):
        return None, f"the body cannot be decoded: {note.removesuffix(': shown as stored')}"
    return data, None


def _headers(headers: Any) -> list[list[str]]:
    return [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers]


def _body_json(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {"body": None}
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body": None, "body_base64": base64.b64encode(body).decode("ascii")}


def _exchange_json(index: int, ex: Exchange) -> dict[str, Any]:
    body, why = _decoded_response(ex)
    out: dict[str, Any] = {
        "index": index,
        "started_at": ex.started_at.isoformat(timespec="microseconds"),
        "elapsed_ms": round(ex.elapsed.total_seconds() * 1000, 3),
        "tags": dict(ex.tags),
        "truncated": ex.truncated,
        "request": {
            "method": ex.method,
            "url": ex.url,
            "headers": _headers(ex.request_headers),
            **_body_json(ex.request_body),
        },
        "response": None,
        "error": None if ex.error is None else {"type": ex.error.type, "message": ex.error.message},
    }
    if ex.status_code is not None:
        out["response"] = {
            "status": ex.status_code,
            "reason": ex.reason_phrase,
            "http_version": ex.http_version,
            "headers": _headers(ex.response_headers),
            "wire_bytes": len(ex.response_body),
            **_body_json(body),
        }
        if why is not None:
            out["response"]["undecodable"] = why
    return out


def _print_message(console: Any, first: str, headers: Any, body: bytes | None) -> None:
    """A request or a response: its first line, headers, and body (decoded, bounded and cut as
    :func:`traffic_lab.wire.bodies.body_view` shows it, saying what it did)."""
    from rich.syntax import Syntax

    console.print(Text(first, style="bold"))
    for pair in _headers(headers):
        console.print(Text(": ".join(pair)))
    if not body:
        return
    view = message_body_view(headers, body)
    console.print()
    if view.note and not view.note.startswith("decoded from "):  # a cut, or why not decoded
        console.print(Text(f"({view.note})"))
    if view.kind in ("binary", "image"):
        what = f"{view.mime} image" if view.kind == "image" else "binary body"
        console.print(Text(f"({what}, {view.size:,} bytes; --raw writes it to stdout)"))
    elif view.kind == "json" and console.is_terminal:
        console.print(Syntax(view.text, "json", theme="ansi_dark", word_wrap=True))
    else:
        console.print(Text(view.text))


@command(
    "show",
    """Examples:
  traffic-lab show captures/api 0
  traffic-lab show captures/api -1 --json
  traffic-lab show captures/api 12 --raw > body.png
""",
    # "-1" is a number, not an option.
    context_settings={"ignore_unknown_options": True},
)
@click.argument("capture")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="The exchange as one JSON object.")
@click.option("--raw", is_flag=True, help="Write only the decoded response body, as bytes.")
def show(capture: str, number: int, as_json: bool, raw: bool) -> None:
    """Show one exchange: request line, headers and body; status line, headers and body
    (decoded; JSON pretty-printed). NUMBER is its place in recorded order, as 'ls' lists it;
    negative numbers count from the end (-1 is the last)."""
    with reading(capture) as store:
        total = len(store)
        index = number + total if number < 0 else number
        if not 0 <= index < total:
            raise BadInputError(
                f"{capture} holds {plural(total, 'exchange')}; there is no number {number}"
            )
        exchange = next(iter(store.exchanges(offset=index)))
    if as_json:
        click.echo(json.dumps(_exchange_json(index, exchange), indent=2, ensure_ascii=False))
        return
    if raw:
        body, why = _decoded_response(exchange)
        if why is not None:
            raise BadInputError(f"exchange {number}: {why}; --json shows the stored bytes")
        click.echo(body or b"", nl=False)
        return
    console = make_console()
    ms = exchange.elapsed.total_seconds() * 1000
    head = f"#{index}  {exchange.started_at.isoformat(timespec='milliseconds')}  {ms:.1f} ms"
    if exchange.tags:
        head += "  " + " ".join(f"{k}={v}" for k, v in exchange.tags.items())
    console.print(Text(head))
    console.print()
    first = f"{exchange.method} {exchange.url}"
    _print_message(console, first, exchange.request_headers, exchange.request_body)
    console.print()
    if exchange.status_code is None:
        assert exchange.error is not None
        console.print(
            Text(
                f"transport error: {exchange.error.type}: {exchange.error.message}",
                style="bold red",
            )
        )
        return
    status = f"{exchange.http_version} {exchange.status_code} {exchange.reason_phrase}".rstrip()
    if exchange.truncated:
        status += "  (truncated: the client stopped reading)"
    _print_message(console, status, exchange.response_headers, exchange.response_body)
