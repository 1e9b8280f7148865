"""The Starlette app the ASGI tests serve (and a tiny raw-ASGI one)."""

from __future__ import annotations

import threading

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from traffic_lab.middleware import RecordingASGIMiddleware

STREAM_CHUNKS = [b"chunk-0\n", b"chunk-1\n", b"chunk-2\n"]
BIG_TEXT = "traffic " * 300  # 2400 bytes: above GZipMiddleware's minimum_size


class AppState:
    """What the app saw, and the gates tests open, shared with the server thread."""

    def __init__(self) -> None:
        self.seen_headers: list[list[tuple[bytes, bytes]]] = []
        self.gate = threading.Event()
        self.stream_cancelled = threading.Event()
        self.lifespan_events: list[str] = []


def make_app(state: AppState, sink=None, *, record_inside: bool = True, **recording) -> object:
    """The Starlette app; with ``sink``, recording as a Starlette middleware (``record_inside``)
    or wrapping the whole app."""

    async def json_route(request: Request) -> Response:
        state.seen_headers.append(list(request.headers.raw))
        return JSONResponse({"hello": "world", "n": 1})

    async def echo(request: Request) -> Response:
        state.seen_headers.append(list(request.headers.raw))
        body = await request.body()
        return Response(body, media_type="application/octet-stream")

    async def upload(request: Request) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return PlainTextResponse(f"{total} bytes")

    async def ignore_body(request: Request) -> Response:
        return PlainTextResponse("not read")

    async def stream(request: Request) -> Response:
        async def chunks():
            for chunk in STREAM_CHUNKS:
                yield chunk

        return StreamingResponse(chunks(), media_type="text/plain")

    def gated_chunks():
        # A sync iterator: Starlette runs it in a worker thread, so waiting here blocks no loop.
        yield b"first\n"
        yield b"second\n" if state.gate.wait(10) else b"gate timed out\n"

    async def gated(request: Request) -> Response:
        return StreamingResponse(gated_chunks(), media_type="text/plain")

    async def endless(request: Request) -> Response:
        async def chunks():
            yield b"only this\n"
            try:
                with anyio.fail_after(10):
                    await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                state.stream_cancelled.set()
                raise
            yield b"never\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def big(request: Request) -> Response:
        return PlainTextResponse(BIG_TEXT)

    async def big_stream(request: Request) -> Response:
        async def chunks():
            yield BIG_TEXT[:1000].encode()
            yield BIG_TEXT[1000:].encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def cookies(request: Request) -> Response:
        state.seen_headers.append(list(request.headers.raw))
        response = Response(b"cookies set", media_type="text/plain")
        response.set_cookie("session", "s3cr3t")
        response.set_cookie("theme", "dark")
        response.raw_headers.append((b"x-dup", b"1"))
        response.raw_headers.append((b"x-dup", b"2"))
        return response

    async def status(request: Request) -> Response:
        return Response(status_code=int(request.path_params["code"]))

    routes = [
        Route("/json", json_route, methods=["GET", "HEAD"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/ignore", ignore_body, methods=["POST"]),
        Route("/stream", stream),
        Route("/gated", gated),
        Route("/endless", endless),
        Route("/boom", boom),
        Route("/big", big),
        Route("/big-stream", big_stream),
        Route("/cookies", cookies),
        Route("/status/{code}", status),
    ]

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        state.lifespan_events.append("startup")
        yield
        state.lifespan_events.append("shutdown")

    middleware = [Middleware(GZipMiddleware, minimum_size=500)]
    if sink is not None and record_inside:
        middleware.insert(0, Middleware(RecordingASGIMiddleware, sink=sink, **recording))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    if sink is not None and not record_inside:
        return RecordingASGIMiddleware(app, sink, **recording)
    return app
