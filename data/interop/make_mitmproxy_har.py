"""Regenerate ``mitmproxy.har``: real traffic to traffic_lab's LoopbackServer through ``mitmdump``.

Run from the repository root with the project's interpreter, passing the ``mitmdump`` of an
environment where mitmproxy is installed (kept apart from the project's own environment, whose
dependencies it would downgrade)::

    python -m venv /tmp/mitmvenv && /tmp/mitmvenv/bin/pip install mitmproxy
    .venv/bin/python data/interop/make_mitmproxy_har.py /tmp/mitmvenv/bin/mitmdump

The script starts a LoopbackServer and ``mitmdump --set hardump=...`` on free 127.0.0.1 ports,
sends the requests below through the proxy with httpx, then stops mitmdump with SIGINT so that
its ``hardump`` option writes the HAR on exit. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from traffic_lab.testing import LoopbackServer, free_port

HERE = Path(__file__).resolve().parent
#: The server's port in the committed file: regenerating then changes only dates and timings.
SERVER_PORT = 44327
#: The binary request body: mitmproxy writes it as ``postData.text`` with one character per
#: byte (Latin-1, its fallback charset) and no ``encoding``.
BINARY_BODY = random.Random(16384).randbytes(16384)


def main(mitmdump: str, out: Path = HERE / "mitmproxy.har") -> None:
    port = free_port()
    tmp = out.with_suffix(".har.partial")
    tmp.unlink(missing_ok=True)
    with LoopbackServer(port=SERVER_PORT) as server:
        proc = subprocess.Popen(
            [
                mitmdump,
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(port),
                "--set",
                f"hardump={tmp}",
                "--set",
                "connection_strategy=lazy",
                "-q",
            ]
        )
        try:
            proxy = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:  # wait until the proxy accepts connections
                try:
                    httpx.get(server.url + "/status/204", proxy=proxy, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            with httpx.Client(base_url=server.url, proxy=proxy, timeout=10) as client:
                client.get("/json?size=200")
                client.get("/gzip?size=300")
                client.get("/bytes?n=64&seed=7")
                client.get("/headers")
                client.get("/status/404")
                client.get("/reason")
                client.post("/echo?x=1", json={"name": "traffic", "n": 3})
                client.put("/echo", data={"a": "1", "b": "two words"})
                client.get("/redirect/1")
                client.get("/stream?chunks=3&size=8")
                client.post(
                    "/echo?binary=1",
                    content=BINARY_BODY,
                    headers={"Content-Type": "application/octet-stream"},
                )
                client.get("/close")  # the server hangs up: mitmproxy records an error
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
