"""Regenerate ``http4k/disk_stream`` and ``http4k/disk_tree``: folders in the layout http4k's
``Sink.DiskStream`` and ``Sink.DiskTree`` write.

No JVM build of http4k can be fetched on this project's machines, so this script transcribes
what http4k does (``org.http4k.traffic`` and ``org.http4k.core``, http4k-core):

- ``HttpMessage.writeTo(folder)`` writes ``toString().toByteArray()`` to ``request.txt`` or
  ``response.txt``;
- ``Request.toMessage()`` is ``listOf("$method $uri $version", headers.toHeaderMessage(),
  bodyString()).joinToString("\\r\\n")``, ``Response.toMessage()`` the same with
  ``"$version $status"`` (``Status.toString()`` is ``"$code $description"``);
- ``Headers.toHeaderMessage()`` is ``joinToString("\\r\\n") { "${it.first}: ${it.second}" }
  .plus("\\r\\n")``, so a message without headers gets an extra CRLF before its body, and a
  null header value is written as ``null``;
- ``Sink.DiskStream`` names each folder ``System.nanoTime().toString() + UUID.randomUUID()``;
- ``Sink.DiskTree`` puts it in ``File(File(baseDir, uri.path), base64(SHA-1(request.toString()))
  .replace(File.separatorChar, '_'))``.

It deliberately shares no code with ``traffic_lab.interop.http4k``, so the tests that read these
folders (and check that ``write_http4k`` lays out the same tree) compare two implementations.
Run from the repository root: ``.venv/bin/python data/interop/make_http4k_samples.py``.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent / "http4k"

Headers = list[tuple[str, "str | None"]]


def header_message(headers: Headers) -> str:
    return (
        "\r\n".join(f"{name}: {'null' if value is None else value}" for name, value in headers)
        + "\r\n"
    )


def request_message(
    method: str, uri: str, headers: Headers, body: str, version: str = "HTTP/1.1"
) -> str:
    return "\r\n".join([f"{method} {uri} {version}", header_message(headers), body])


def response_message(
    code: int, description: str, headers: Headers, body: str, version: str = "HTTP/1.1"
) -> str:
    return "\r\n".join([f"{version} {code} {description}", header_message(headers), body])


def write(folder: Path, request: str, response: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request.txt").write_bytes(request.encode("utf-8"))
    (folder / "response.txt").write_bytes(response.encode("utf-8"))


# Client-side traffic (ReadWriteStream.Disk behind TrafficFilters.RecordTo on a client):
# absolute request URIs, in recorded order.
STREAM = [
    (
        "15306627188833b5e7ac8-1f0e-4b43-9a0c-2c8d1d2fb0a1",
        request_message(
            "GET",
            "http://127.0.0.1:9000/users?page=2",
            [("Accept", "application/json"), ("User-Agent", "http4k")],
            "",
        ),
        response_message(
            200,
            "OK",
            [("Content-Type", "application/json"), ("Content-Length", "15")],
            '{"users":[1,2]}',
        ),
    ),
    (
        "1530662719034154a9d3c2e-77a1-4f35-bb64-5c0e8d2e91f3",
        request_message(
            "POST",
            "http://127.0.0.1:9000/users",
            [("Content-Type", "application/json; charset=utf-8")],
            '{"name":"Zoë"}',
        ),
        response_message(
            201,
            "Created",
            [
                ("Location", "/users/3"),
                ("Set-Cookie", "a=1"),
                ("X-Trace", "t1"),
                ("Set-Cookie", "b=2"),
            ],
            "",
        ),
    ),
    (
        "15306627231957770f5e2d9-03b7-4c8e-8b6a-0d4e1f2a3b4c",
        request_message("GET", "http://127.0.0.1:9000/missing", [], ""),
        response_message(404, "Not Found", [], "not here"),
    ),
    (
        "1530662726872311c4b1a0f-5d6e-4f70-8192-a3b4c5d6e7f8",
        request_message("DELETE", "http://127.0.0.1:9000/users/3", [("X-Request-Id", None)], ""),
        response_message(204, "No Content", [("X-Deleted", "users/3")], ""),
    ),
    (
        "153066273004411e9f8d7c6-b5a4-4392-8170-6f5e4d3c2b1a",
        request_message(
            "PUT",
            "http://127.0.0.1:9000/notes/1",
            [("Content-Type", "text/plain")],
            "line one\r\nline two\r\n",
        ),
        response_message(200, "OK", [("Content-Type", "text/plain")], "saved\r\n"),
    ),
]

# Server-side traffic (ReadWriteCache.Disk behind a server filter): request URIs are paths.
TREE = [
    (
        request_message(
            "GET", "/api/items/1", [("Host", "shop.example:8080"), ("Accept", "*/*")], ""
        ),
        response_message(
            200, "OK", [("Content-Type", "application/json")], '{"id":1,"name":"kettle"}'
        ),
    ),
    (
        request_message(
            "GET", "/api/items/2", [("Host", "shop.example:8080"), ("Accept", "*/*")], ""
        ),
        response_message(
            200, "OK", [("Content-Type", "application/json")], '{"id":2,"name":"teapot"}'
        ),
    ),
    (
        request_message("GET", "/", [("Host", "shop.example:8080")], ""),
        response_message(302, "Found", [("Location", "/api/items")], ""),
    ),
    (
        request_message(
            "POST",
            "/api/orders",
            [("Host", "shop.example:8080"), ("Content-Type", "application/json")],
            '{"item":1}',
            version="HTTP/2",
        ),
        response_message(
            202,
            "Accepted",
            [("Content-Type", "application/json")],
            '{"order":"o-1"}',
            version="HTTP/2",
        ),
    ),
]


def tree_folder(base: Path, request: str) -> Path:
    path = request.split(" ", 2)[1].split("?", 1)[0]
    digest = (
        base64.b64encode(hashlib.sha1(request.encode("utf-8")).digest()).decode().replace("/", "_")
    )
    return base.joinpath(*[p for p in path.split("/") if p]) / digest


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    for name, request, response in STREAM:
        write(HERE / "disk_stream" / name, request, response)
    for request, response in TREE:
        write(tree_folder(HERE / "disk_tree", request), request, response)
    print(f"wrote {HERE}")


if __name__ == "__main__":
    main()
