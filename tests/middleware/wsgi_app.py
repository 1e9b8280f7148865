"""The plain WSGI app the WSGI tests serve."""

from __future__ import annotations

import json
import threading

STREAM_CHUNKS = [b"chunk-0\n", b"chunk-1\n", b"chunk-2\n"]
BIG_CHUNK = b"x" * 65536


class AppState:
    """What the app saw, and the gates tests open, shared with the server threads."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.gate = threading.Event()
        self.client_gone = threading.Event()
        self.generator_closed = threading.Event()
        self.chunks_produced = 0


def make_app(state: AppState):
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        state.seen.append({k: v for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_"))})
        if path == "/json":
            payload = json.dumps({"hello": "world", "n": 1}, separators=(",", ":")).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if path == "/echo":
            data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("201 Created", [("Content-Type", "application/octet-stream")])
            return [data]
        if path == "/lines":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            stream = environ["wsgi.input"]
            lines = []
            remaining = length
            while remaining:
                # readline with a limit: never read past the body on a kept-alive socket.
                lines.append(stream.readline(remaining))
                remaining -= len(lines[-1])
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{len(lines)} lines".encode()]
        if path == "/stream":

            def chunks():
                start_response("200 OK", [("Content-Type", "text/plain")])
                yield from STREAM_CHUNKS

            return chunks()
        if path == "/gated":
            start_response("200 OK", [("Content-Type", "text/plain")])

            def gated():
                yield b"first\n"
                yield b"second\n" if state.gate.wait(10) else b"gate timed out\n"

            return gated()
        if path == "/endless":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])

            def endless():
                try:
                    yield b"only this\n"
                    state.client_gone.wait(10)
                    # Writes fail once the server notices the closed socket.
                    for _ in range(2000):
                        state.chunks_produced += 1
                        yield BIG_CHUNK
                finally:
                    state.generator_closed.set()

            return endless()
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/boom-later":
            start_response("200 OK", [("Content-Type", "text/plain")])

            def fails():
                yield b"partial\n"
                raise RuntimeError("boom later")

            return fails()
        if path == "/boom-first":
            start_response("200 OK", [("Content-Type", "text/plain")])

            def fails_at_once():
                raise RuntimeError("boom first")
                yield b"never"

            return fails_at_once()
        if path == "/cookies":
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", "11"),
                    ("Set-Cookie", "session=s3cr3t; Path=/"),
                    ("Set-Cookie", "theme=dark; Path=/"),
                    ("X-Dup", "1"),
                    ("X-Dup", "2"),
                ],
            )
            return [b"cookies set"]
        if path == "/write":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"written, ")
            return [b"then returned"]
        if path == "/list":
            # No Content-Length: wsgiref computes one for a one-item list.
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"one item"]
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]

    return app
