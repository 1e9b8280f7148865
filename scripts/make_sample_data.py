"""Record the sample capture in ``data/sample-capture/`` from the local demo API.

Two shop environments run as :class:`traffic_lab.demo.DemoAPI` servers on 127.0.0.1:
``api.shop.test`` (production) and ``staging.shop.test`` (a slower staging build). A small
transport maps those host names to the local servers, so the capture has stable, readable URLs
whatever ports the servers get; ``payments.shop.test`` maps to a closed port, so a few
exchanges record a connection error. Everything passes through
:class:`traffic_lab.RecordingTransport` into a :class:`traffic_lab.ParquetStream`, with the
default redaction (the login token is scrubbed).

The request mix is deterministic (``--seed``); times and latencies are real.

    python scripts/make_sample_data.py                    # data/sample-capture, 3000 exchanges
    python scripts/make_sample_data.py --out out/capture --n 600 --slowness 0.3 --force
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import traffic_lab as tl
from traffic_lab.demo import DemoAPI, generate_traffic
from traffic_lab.testing import free_port

__all__ = ["HostMapTransport", "main", "record_sample"]

ROOT = Path(__file__).resolve().parent.parent
PROD, STAGING, PAYMENTS = "api.shop.test", "staging.shop.test", "payments.shop.test"


class HostMapTransport(httpx.BaseTransport):
    """Sends requests for some host names to local ``host:port`` addresses (a tiny DNS)."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self._hosts = hosts
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self._hosts.get(request.url.host)
        if target is None:
            raise httpx.ConnectError(f"unknown host {request.url.host}", request=request)
        host, _, port = target.partition(":")
        routed = httpx.Request(
            request.method,
            request.url.copy_with(host=host, port=int(port)),
            headers=request.headers,
            content=request.content,
            extensions=request.extensions,
        )
        return self._inner.handle_request(routed)

    def close(self) -> None:
        self._inner.close()


def _session(
    stream: tl.ParquetStream, hosts: dict[str, str], host: str, env: str, n: int, seed: int
) -> None:
    transport = tl.RecordingTransport(
        stream, HostMapTransport(hosts), tags={"env": env, "seed": str(seed)}
    )
    with httpx.Client(transport=transport, base_url=f"http://{host}", timeout=30) as client:
        generate_traffic(client, n, seed=seed)


def _payments(stream: tl.ParquetStream, hosts: dict[str, str], n: int) -> None:
    transport = tl.RecordingTransport(stream, HostMapTransport(hosts), tags={"env": "payments"})
    with httpx.Client(transport=transport, base_url=f"http://{PAYMENTS}", timeout=2) as client:
        for i in range(n):
            try:
                client.post("/api/charges", json={"order": i, "amount": 10 + i})
            except httpx.TransportError:
                pass  # recorded with its error; the sample keeps it
            time.sleep(0.05)


def record_sample(out: Path, n: int = 3000, seed: int = 7, slowness: float = 1.0) -> int:
    """Record about ``n`` exchanges into a new capture at ``out``; returns the count."""
    prod_n, staging_n = int(n * 0.72), int(n * 0.27)
    failures = max(3, n - prod_n - staging_n)
    with DemoAPI(slowness=slowness) as prod, DemoAPI(slowness=slowness * 2) as staging:
        hosts = {
            PROD: prod.url.removeprefix("http://"),
            STAGING: staging.url.removeprefix("http://"),
            PAYMENTS: f"127.0.0.1:{free_port()}",  # nothing listens there
        }
        with tl.ParquetStream(out, flush_rows=1_000_000, flush_seconds=None) as stream:
            runs = [
                threading.Thread(target=_session, args=(stream, hosts, PROD, "prod", prod_n, seed)),
                threading.Thread(
                    target=_session, args=(stream, hosts, STAGING, "staging", staging_n, seed + 1)
                ),
                threading.Thread(target=_payments, args=(stream, hosts, failures)),
            ]
            for run in runs:
                run.start()
            for run in runs:
                run.join()
        return len(tl.ParquetStream(out, create=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "sample-capture")
    parser.add_argument("--n", type=int, default=3000, help="exchanges to record (about)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--slowness", type=float, default=1.0, help="scales the slow endpoints")
    parser.add_argument("--force", action="store_true", help="replace an existing capture")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.force:
            parser.error(f"{out} exists; pass --force to replace it")
        shutil.rmtree(out)
    started = time.perf_counter()
    count = record_sample(out, args.n, args.seed, args.slowness)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    seconds = time.perf_counter() - started
    print(f"{out}: {count} exchanges, {size / 1e6:.2f} MB, recorded in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
