"""What the mock server and the proxy share: ASGI types, reading a request, framing a response.

Hop-by-hop headers (RFC 9110 7.6.1) are never forwarded, and a response's framing is decided
here, once, so that it never carries both ``Content-Length`` and ``Transfer-Encoding``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Headers that describe one connection, never the message (RFC 9110 7.6.1, RFC 9112 7).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

#: Scope extension of a server that sends a response's own reason phrase (ASGI has no field for
#: it): the app puts the phrase, as bytes, in the ``reason`` key of ``http.response.start``
#: (empty: the standard phrase). traffic_lab's server (``traffic_lab.servers.run_server``)
#: offers it.
REASON_EXTENSION = "traffic_lab.reason_phrase"

# Statuses whose responses never have a body (RFC 9110 6.4.1).
_NO_BODY = frozenset({204, 304})


def strip_hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop ones, nor those the ``Connection`` header names."""
    pairs = list(headers)
    named = set(HOP_BY_HOP)
    for name, value in pairs:
        if name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return [(name, value) for name, value in pairs if name.lower() not in named]


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def request_target(scope: Scope) -> bytes:
    """The request's path and query as they came over the wire (percent-encoding kept)."""
    raw_path = scope.get("raw_path")
    if not raw_path:
        from urllib.parse import quote

        raw_path = quote(scope.get("root_path", "") + scope["path"]).encode("ascii")
    query = scope.get("query_string", b"")
    return bytes(raw_path) + (b"?" + bytes(query) if query else b"")


async def send_start(
    scope: Scope,
    send: Send,
    status: int,
    headers: Sequence[tuple[bytes, bytes]],
    reason: str = "",
) -> None:
    """Send ``http.response.start`` (with the reason phrase when the server can send it)."""
    message: Message = {"type": "http.response.start", "status": status, "headers": headers}
    if REASON_EXTENSION in (scope.get("extensions") or ()):
        message["reason"] = reason.encode("latin-1", "replace")
    await send(message)


def wire_headers(
    method: str, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
) -> list[tuple[bytes, bytes]]:
    """``headers`` less hop-by-hop ones, with the body framed by ``Content-Length``.

    The length is the body's, except where there is no body to measure: a response to HEAD,
    and 304, keep the ``Content-Length`` they were given (it describes the full response);
    1xx and 204 responses get none. A ``Content-Length`` that is already right keeps its place
    and spelling.
    """
    out = strip_hop_by_hop(headers)
    no_body = status < 200 or status in _NO_BODY
    if method != "HEAD" and status != 304:
        length = str(len(body)).encode("ascii")
        given = [value for name, value in out if name.lower() == b"content-length"]
        if no_body or given != [length]:
            # Missing, wrong (a de-chunked recording) or repeated: replaced by the body's.
            out = [(name, value) for name, value in out if name.lower() != b"content-length"]
            if not no_body:
                out.append((b"content-length", length))
    return out


async def send_prepared(
    scope: Scope,
    send: Send,
    status: int,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    reason: str = "",
) -> None:
    """Send a whole response whose headers :func:`wire_headers` prepared."""
    await send_start(scope, send, status, headers, reason)
    no_body = status < 200 or status in _NO_BODY
    await send({"type": "http.response.body", "body": b"" if no_body else body})


def error_answer(
    error_type: str, message: str, header: tuple[bytes, bytes], **extra: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A gateway's answer naming a transport error: 504 for a timeout, else 502, and a JSON
    body; ``header`` says who answered."""
    name = error_type.rpartition(".")[2]
    status = 504 if name.endswith("Timeout") or name == "TimeoutException" else 502
    body = json.dumps({"error": error_type, "message": message, **extra}).encode("utf-8")
    return status, [(b"content-type", b"application/json"), header], body


async def lifespan(
    receive: Receive,
    send: Send,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answer the lifespan protocol: nothing to start; ``on_shutdown`` when the server stops."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
