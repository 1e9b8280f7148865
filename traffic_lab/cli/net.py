"""Commands that talk HTTP: ``serve`` (a capture as a mock server), ``record`` (a recording
reverse proxy) and ``replay`` (send a capture's requests again and diff the answers)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
import httpx
from rich.text import Text

from ._inputs import (
    Interrupt,
    capture_errors,
    count_option,
    open_cache,
    open_stream,
    parse_tags,
    quiet_option,
    reading,
    redactor,
    tags_option,
    validate_base_url,
)
from ._output import (
    EXIT_DIFFERENCES,
    BadInputError,
    CaptureProblemError,
    NetworkProblemError,
    command,
    interrupted,
    make_console,
    note,
    plural,
    progress,
    simple_table,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ..stores.parquet import ParquetStream
    from ..transports.requester import ReplayResult

__all__ = ["record", "replay", "serve"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _listen(host: str, port: int) -> socket.socket:
    from ..servers import ServerBindError, bind_socket

    try:
        return bind_socket(host, port)
    except ServerBindError as exc:
        raise NetworkProblemError(str(exc)) from exc


def _run(app: Any, sock: socket.socket, doing: str, store: Any, capture: str) -> None:
    """Say where the server listens, serve until a signal, then close the socket and the store."""
    from ..servers import run_server

    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    note(f"{doing} at {url}; Ctrl-C to stop")
    try:
        run_server(app, sock)
    finally:
        sock.close()
        with capture_errors(capture):
            store.close()


def _reachable(url: str, timeout: float = 3.0) -> str | None:
    """``None`` when a TCP connection to ``url``'s host and port opens, else why not."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


_host_option = click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 exposes the server to the network.",
)


def _port_option(default: int) -> Callable[[_F], _F]:
    return click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=default,
        show_default=True,
        help="Port to listen on (0: any free port; the URL is printed).",
    )


_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to connect and for each read or write.",
)


# -- serve -----------------------------------------------------------------------------------------
def _origins(store: ParquetStream) -> list[str]:
    table = store.to_arrow(columns=["request_scheme", "request_host", "request_port"])
    origins = {
        str(httpx.URL(scheme=scheme, host=host, port=port))
        for scheme, host, port in zip(*table.to_pydict().values(), strict=True)
    }
    return sorted(origins)


@command(
    "serve",
    """Examples:
  traffic-lab serve captures/api --port 8000
  traffic-lab serve captures/session --mode stream --strict
  curl -i http://127.0.0.1:8000/api/users/1

cache mode: each request gets the latest recorded response with its key (method, path,
query, body digest). A miss answers 503 naming the nearest recorded request (also in the
x-traffic-lab-nearest header); --strict: 404 and the three nearest.

stream mode: recorded responses in recorded order, whatever is asked; then 503 (--strict:
404 for a request that differs from the next recorded one).

With one origin in the capture, requests are matched as if made to it; with several, the
origin is ignored unless --origin names one. A recorded transport error answers 502 (504 for
a timeout). Responses go out as recorded (gzip stays gzip unless Accept-Encoding refuses it).
--timing recorded sends streamed bodies (server-sent events, chunked) chunk by chunk at the
recorded pace (--speed 2 twice as fast; each gap at most 10 s, a body's waits at most 5 min).
Ctrl-C or SIGTERM stops the server after the requests in flight.
""",
)
@click.argument("capture")
@click.option(
    "--mode",
    type=click.Choice(["cache", "stream"]),
    default="cache",
    show_default=True,
    help="Answer by request key, or in recorded order.",
)
@_host_option
@_port_option(8000)
@click.option("--strict", is_flag=True, help="Answer 404 with an explanation, not 503.")
@click.option("--origin", help="Match requests as if made to this origin (https://host:port).")
@click.option(
    "--ignore-query",
    multiple=True,
    metavar="NAME",
    help="Query parameter left out of matching (repeatable).",
)
@click.option(
    "--match-body",
    type=click.Choice(["digest", "json", "form", "auto", "ignore"]),
    default="digest",
    show_default=True,
    help="How request bodies are compared.",
)
@click.option(
    "--match-header",
    multiple=True,
    metavar="NAME",
    help="Request header whose value must match too (repeatable).",
)
@click.option(
    "--timing",
    type=click.Choice(["none", "recorded"]),
    default="none",
    show_default=True,
    help="Send streamed bodies at once, or chunk by chunk at the recorded pace.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True, max=1e6),
    default=1.0,
    show_default=True,
    help="With --timing recorded: how many times faster than recorded.",
)
def serve(
    capture: str,
    mode: str,
    host: str,
    port: int,
    strict: bool,
    origin: str | None,
    ignore_query: tuple[str, ...],
    match_body: str,
    match_header: tuple[str, ...],
    timing: str,
    speed: float,
) -> None:
    """Serve a capture as an HTTP mock server: requests are answered with recorded responses,
    by request key (cache mode) or in recorded order (stream mode)."""
    from ..matching import Matcher
    from ..servers import MockApp

    if origin is not None:
        origin = validate_base_url(origin, "'--origin'")
    with reading(capture) as stream:
        origins = _origins(stream)
        count = len(stream)
    if origin is None and len(origins) == 1:
        origin = origins[0]
    any_origin = origin is None and len(origins) > 1
    matcher = Matcher(
        scheme=not any_origin,
        host=not any_origin,
        port=not any_origin,
        ignore_query=ignore_query,
        headers=match_header,
        body=match_body,  # type: ignore[arg-type]
    )
    store: Any = open_cache(capture, matcher) if mode == "cache" else open_stream(capture)
    app = MockApp(
        store,
        strict=strict,
        matcher=matcher,
        origin=origin,
        timing=timing,  # type: ignore[arg-type]  # click checked the choice
        speed=speed,
    )
    sock = _listen(host, port)
    where = f"as {origin}" if origin else "any origin"
    doing = f"serving {capture} ({plural(count, 'exchange')}, {mode} mode, {where})"
    _run(app, sock, doing, store, capture)
    c = app.counts
    note(
        f"stopped: answered {c['recorded']} recorded, {c['miss']} missed, "
        f"{c['exhausted']} past the end, {c['error']} recorded errors, "
        f"{c['unservable']} unservable"
    )


# -- record ----------------------------------------------------------------------------------------
@command(
    "record",
    """Examples:
  traffic-lab record captures/api --upstream https://api.example.com --port 8080
  curl http://127.0.0.1:8080/users/1      # answered by api.example.com, recorded

Each exchange is recorded as the proxy's upstream client saw it, with secrets redacted
(--no-redact to keep them); the caller gets what the upstream sent. An unreachable upstream
answers 502 (504 for a timeout) and is recorded with its error. Ctrl-C or SIGTERM: stop
accepting, finish requests in flight, then flush and close the capture; every exchange
answered before the signal is in it.
""",
)
@click.argument("capture")
@click.option("--upstream", "-u", required=True, help="Base URL to forward requests to.")
@_host_option
@_port_option(8080)
@click.option("--no-redact", is_flag=True, help="Record secrets as they are (not recommended).")
@tags_option
@_timeout_option
@click.option(
    "--flush-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Publish recorded exchanges at least this often.",
)
def record(
    capture: str,
    upstream: str,
    host: str,
    port: int,
    no_redact: bool,
    tags: tuple[str, ...],
    timeout: float,
    flush_seconds: float,
) -> None:
    """Run a reverse proxy to an upstream base URL that passes traffic through and records
    every exchange into a capture (created if needed; an existing one is added to)."""
    from ..servers import ProxyApp
    from ..stores.parquet import ParquetStream

    upstream = validate_base_url(upstream, "'--upstream'")
    labels = parse_tags(tags)
    sock = _listen(host, port)
    with capture_errors(capture):
        try:
            store = ParquetStream(capture, flush_seconds=flush_seconds)
        except OSError as exc:
            sock.close()
            raise CaptureProblemError(f"cannot write to {capture}: {exc}") from exc
    app = ProxyApp(upstream, store, redactor=redactor(no_redact), tags=labels, timeout=timeout)
    down = _reachable(upstream)
    if down is not None:
        note(
            f"warning: upstream {upstream} is not reachable now ({down}); "
            "requests get 502 until it is"
        )
    _run(app, sock, f"recording {upstream} into {capture}", store, capture)
    c = app.counts
    total = c["forwarded"] + c["failed"]
    note(
        f"stopped: recorded {plural(total, 'exchange')} into {capture} "
        f"({plural(c['failed'], 'upstream error')})"
    )


# -- replay ----------------------------------------------------------------------------------------
def _difference(result: ReplayResult, ignore: frozenset[str]) -> dict[str, Any] | None:
    from ..redaction import REDACTED
    from ..transports.requester import MISSING, ResponseDiff

    recorded = result.recorded
    base = {"method": recorded.method, "url": recorded.url}
    if result.response is None:
        error = result.error
        return {
            **base,
            "status": [recorded.status_code, None],
            "changes": [f"failed: {type(error).__name__}: {error}"],
        }
    diff = result.diff(ignore_headers=ignore)
    if not diff:
        return None
    # A value redacted when it was recorded cannot equal the live one: not a difference.
    json_changes = [
        (path, old, new) for path, old, new in diff.json if not (old == REDACTED and new != MISSING)
    ]
    headers = [
        (name, old, new)
        for name, old, new in diff.headers
        if not (old and new and all(REDACTED in value for value in old))
    ]
    body = diff.body and (bool(json_changes) or not diff.json)
    diff = ResponseDiff(status=diff.status, headers=headers, json=json_changes, body=body)
    if not diff:
        return None
    changes = str(diff).splitlines()
    status = list(diff.status) if diff.status is not None else [recorded.status_code] * 2
    return {**base, "status": status, "changes": changes}


def _print_replay(report: dict[str, Any], show: int) -> None:
    console = make_console()
    differences = report["differences"]
    same = report["sent"] - len(differences)
    console.print(
        Text(
            f"replayed {report['sent']} of {report['total']} requests to {report['target']}: "
            f"{same} same, {len(differences) - report['failed']} different, "
            f"{report['failed']} failed; live responses in {report['out']}"
        )
    )
    if not differences:
        return
    grid = simple_table("#", "request", "status", "what changed", right=["#"])
    for item in differences[:show]:
        old, new = item["status"]
        grid.add_row(
            str(item["index"]),
            Text(f"{item['method']} {item['url']}"),
            f"{old if old is not None else 'error'} -> {new if new is not None else 'error'}",
            Text("\n".join(item["changes"])),
        )
    console.print(grid)
    if len(differences) > show:
        console.print(Text(f"... and {len(differences) - show} more (--show N, or --json)"))


@command(
    "replay",
    """Examples:
  traffic-lab replay captures/api --target http://127.0.0.1:8000 --rate 50 --concurrency 4
  traffic-lab replay captures/api --target https://staging.example --json > diff.json

Requests go out in recorded order (up to --concurrency at once, at most --rate per second),
with the recorded method, path, query, headers and body; redacted credentials are left out.
Responses are compared by status, headers (less volatile ones such as Date) and body (JSON
by value). Exit 1 when any response differs or a request fails, 0 when all match.
""",
)
@click.argument("capture")
@click.option("--target", "-t", required=True, help="Base URL to send the requests to.")
@click.option("--out", "-o", help="Capture for the live responses (default: CAPTURE-replay-TIME).")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many requests per second (default: no limit).",
)
@count_option("--concurrency", "-c", default=1, minimum=1, help="Requests in flight at once.")
@_timeout_option
@click.option(
    "--ignore-header",
    multiple=True,
    metavar="NAME",
    help="Response header left out of the comparison (repeatable).",
)
@click.option("--no-redact", is_flag=True, help="Record live secrets as they are.")
@count_option("--show", default=20, minimum=0, help="Differences listed in the table.")
@click.option("--json", "as_json", is_flag=True, help="The summary and every difference as JSON.")
@quiet_option
def replay(
    capture: str,
    target: str,
    out: str | None,
    rate: float | None,
    concurrency: int,
    timeout: float,
    ignore_header: tuple[str, ...],
    no_redact: bool,
    show: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Send a capture's requests to a target base URL, record the live responses into a new
    capture, and print what differs from the recorded responses."""
    import anyio

    from ..transports.requester import VOLATILE_HEADERS

    target = validate_base_url(target, "'--target'")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out = out or f"{capture.rstrip('/')}-replay-{stamp}"
    stream = open_stream(capture)
    out_path = Path(out)
    if (
        "://" not in out
        and out_path.exists()
        and (not out_path.is_dir() or any(out_path.iterdir()))
    ):
        raise BadInputError(f"{out} already exists and is not empty; choose another --out")
    with capture_errors(capture):
        total = len(stream)
    down = _reachable(target)
    if down is not None:
        raise NetworkProblemError(f"target {target} is not reachable ({down})")
    out_store = open_stream(out, create=True)
    ignore = VOLATILE_HEADERS | {h.lower() for h in ignore_header}
    report: dict[str, Any] = {
        "target": target,
        "out": out,
        "total": total,
        "sent": 0,
        "failed": 0,
        "differences": [],
    }

    async def run(stop: Interrupt, advance: Any) -> None:
        from ..transports.record import AsyncRecordingTransport
        from ..transports.requester import areplay_requests

        # The limits go to the transport: a client given a transport does not apply its own.
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport = AsyncRecordingTransport(
            out_store,
            httpx.AsyncHTTPTransport(retries=0, limits=limits),
            redactor=redactor(no_redact),
            tags={"replay_of": target},
        )
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False
        ) as client:
            results = cast(
                "AsyncGenerator[ReplayResult, None]",
                areplay_requests(
                    stream, client, base_url=target, concurrency=concurrency, rate=rate
                ),
            )
            async with aclosing(results):
                async for result in results:
                    index = report["sent"]
                    report["sent"] += 1
                    difference = _difference(result, ignore)
                    if difference is not None:
                        report["differences"].append({"index": index, **difference})
                        if result.response is None:
                            report["failed"] += 1
                    advance()
                    if stop.requested:
                        break

    stopped = False
    try:
        with Interrupt() as stop, capture_errors(capture):
            with progress("replaying", total, quiet=quiet) as advance:
                anyio.run(run, stop, advance)
            stopped = stop.requested
    except KeyboardInterrupt:
        stopped = True
    finally:
        stream.close()
        out_store.close()
    if as_json:
        click.echo(json.dumps({**report, "interrupted": stopped}, indent=2))
    else:
        _print_replay(report, show)
    if stopped:
        raise interrupted(f"{report['sent']} of {total} requests replayed; all kept in {out}")
    if report["differences"]:
        raise click.exceptions.Exit(EXIT_DIFFERENCES)
