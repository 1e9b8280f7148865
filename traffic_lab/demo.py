"""A realistic local demo API on 127.0.0.1, and a traffic generator that exercises it.

Notebooks, the sample capture in ``data/`` and the README's main job use it, so everything
runs on a machine with no internet. The API is a small shop: users, orders, products (with PNG
images), a slow search, a login that returns a token, reports that sometimes fail, and a rate
limit. Behaviour is deterministic: the same request sequence gives the same answers.

>>> import httpx
>>> from traffic_lab.demo import DemoAPI
>>> with DemoAPI() as api, httpx.Client(base_url=api.url) as client:
...     client.get("/api/users/3").json()["name"]
'user-3'
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .testing import QuietHandler, QuietServer, ServerThread

__all__ = ["DemoAPI", "generate_traffic", "png_bytes"]

_N_USERS = 500
_FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Edsger", "Margaret", "Dennis"]
_STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled"]


def png_bytes(width: int = 16, height: int = 16, seed: int = 0) -> bytes:
    """A valid RGB PNG image of the given size (deterministic noise), for binary bodies."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _user(uid: int) -> dict[str, Any]:
    rng = random.Random(uid)
    return {
        "id": uid,
        "name": f"user-{uid}",
        "display_name": f"{rng.choice(_FIRST)} {chr(65 + uid % 26)}.",
        "email": f"user{uid}@example.test",
        "plan": rng.choice(["free", "pro", "team"]),
        "created": f"2025-{1 + uid % 12:02d}-{1 + uid % 28:02d}",
    }


def _order(oid: str) -> dict[str, Any]:
    rng = random.Random(oid)
    items: list[dict[str, Any]] = [
        {"sku": f"SKU-{rng.randrange(1000):04d}", "qty": rng.randrange(1, 4)}
        for _ in range(rng.randrange(1, 5))
    ]
    return {
        "id": oid,
        "user_id": rng.randrange(1, _N_USERS + 1),
        "status": rng.choice(_STATUSES),
        "items": items,
        "total": round(sum(int(i["qty"]) for i in items) * rng.uniform(3, 90), 2),
    }


def _order_ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


class _Handler(QuietHandler):
    server: _Server
    server_version = "traffic-lab-demo/1.0"

    def end_headers(self) -> None:
        self.send_header("X-Request-Id", hashlib.sha1(self.path.encode()).hexdigest()[:12])
        super().end_headers()

    def _json(self, status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> None:
        body = json.dumps(doc).encode()
        extra = list(headers or [])
        accepts_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
        if accepts_gzip and len(body) > 1024:
            body = gzip.compress(body, mtime=0)
            extra.append(("Content-Encoding", "gzip"))
        self._send(status, body, [("Content-Type", "application/json"), *extra])

    def _route(self) -> None:
        parts = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seg = [s for s in parts.path.split("/") if s]
        with self.server.lock:
            self.server.count += 1
            count = self.server.count
        if seg[:1] == ["v1"] and self.command == "POST":
            return self._llm(seg[1:], body)
        if seg[:1] != ["api"]:
            return self._json(404, {"error": "not found", "path": parts.path})
        seg = seg[1:]
        if seg == ["health"]:
            return self._send(200, b"ok", [("Content-Type", "text/plain")])
        if seg == ["login"] and self.command == "POST":
            try:
                creds = json.loads(body or b"{}")
            except ValueError:
                return self._json(400, {"error": "invalid JSON"})
            if creds.get("password") != "demo":
                return self._json(401, {"error": "bad credentials"})
            token = hashlib.sha256(str(creds.get("username")).encode()).hexdigest()
            return self._json(
                200,
                {"access_token": token, "token_type": "Bearer", "expires_in": 3600},
                [("Set-Cookie", f"session={token[:16]}; Path=/; HttpOnly")],
            )
        if self.server.require_auth and not (self.headers.get("Authorization") or "").startswith(
            "Bearer "
        ):
            return self._json(401, {"error": "missing bearer token"})
        if seg == ["users"] and self.command == "GET":
            page, per_page = int(q.get("page", "1")), min(int(q.get("per_page", "20")), 100)
            start = (page - 1) * per_page + 1
            users = [_user(i) for i in range(start, min(start + per_page, _N_USERS + 1))]
            return self._json(200, {"page": page, "per_page": per_page, "users": users})
        if seg == ["users"] and self.command == "POST":
            try:
                doc = json.loads(body)
            except ValueError:
                return self._json(422, {"error": "body must be JSON"})
            if not isinstance(doc, dict) or "name" not in doc:
                return self._json(422, {"error": "name is required"})
            return self._json(201, {"id": _N_USERS + count, **doc})
        if len(seg) == 2 and seg[0] == "users":
            if not seg[1].isdigit() or not 1 <= int(seg[1]) <= _N_USERS:
                return self._json(404, {"error": "no such user", "id": seg[1]})
            return self._json(200, _user(int(seg[1])))
        if seg == ["orders"]:
            orders = [_order(o) for o in _order_ids(60)]
            if "status" in q:
                orders = [o for o in orders if o["status"] == q["status"]]
            return self._json(200, {"orders": orders})
        if len(seg) == 2 and seg[0] == "orders":
            return self._json(200, _order(seg[1]))
        if len(seg) == 3 and seg[0] == "products" and seg[2] == "image.png":
            pid = int(seg[1]) if seg[1].isdigit() else 0
            return self._send(
                200,
                png_bytes(16, 16, pid),
                [("Content-Type", "image/png"), ("Cache-Control", "max-age=3600")],
            )
        if seg == ["search"]:
            term = q.get("q", "")
            delay = 0.05 + (int(hashlib.md5(term.encode()).hexdigest(), 16) % 250) / 1000
            time.sleep(delay * self.server.slowness)
            hits = [_user(1 + (len(term) * 7 + i) % _N_USERS) for i in range(len(term) % 6)]
            return self._json(200, {"q": term, "hits": hits})
        if len(seg) == 2 and seg[0] == "reports":
            time.sleep(0.12 * self.server.slowness)
            if int(hashlib.md5(seg[1].encode()).hexdigest(), 16) % 5 == 0:
                return self._json(500, {"error": "report generation failed"})
            return self._json(200, {"report": seg[1], "rows": list(range(50))})
        if seg == ["limited"]:
            if count % 4 == 0:
                return self._json(429, {"error": "slow down"}, [("Retry-After", "1")])
            return self._json(200, {"ok": True})
        return self._json(404, {"error": "not found", "path": parts.path})

    # -- the LLM endpoints: OpenAI's chat completions and Anthropic's messages, shapes only ----
    def _llm(self, seg: list[str], body: bytes) -> None:
        try:
            doc = json.loads(body or b"{}")
            messages = doc["messages"]
            prompt = str(messages[-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            return self._json(400, {"error": {"message": "messages are required"}})
        model = str(doc.get("model", "demo-model"))
        words = _reply(prompt)
        ident = hashlib.sha256(body).hexdigest()[:24]
        usage_in, usage_out = len(prompt.split()), len(words)
        if seg == ["chat", "completions"]:
            head = {"id": f"chatcmpl-{ident}", "created": 1_767_225_600, "model": model}
            if doc.get("stream"):
                return self._sse(_openai_events(head, words))
            message = {"role": "assistant", "content": " ".join(words), "refusal": None}
            return self._json(
                200,
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
                    ],
                    "usage": {
                        "prompt_tokens": usage_in,
                        "completion_tokens": usage_out,
                        "total_tokens": usage_in + usage_out,
                    },
                },
            )
        if seg == ["messages"]:
            head = {"id": f"msg_{ident}", "type": "message", "role": "assistant", "model": model}
            if doc.get("stream"):
                return self._sse(_anthropic_events(head, words, usage_in))
            return self._json(
                200,
                {
                    **head,
                    "content": [{"type": "text", "text": " ".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
                },
            )
        return self._json(404, {"error": {"message": f"no endpoint /v1/{'/'.join(seg)}"}})

    def _sse(self, events: Iterator[tuple[str | None, str]]) -> None:
        """Server-sent events, one chunk of the chunked body per event."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for name, data in events:
                text = (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
                chunk = text.encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(0.005 * self.server.slowness)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _reply(prompt: str) -> list[str]:
    """The demo model's answer: deterministic, a few words about the prompt."""
    seed = int(hashlib.md5(prompt.encode()).hexdigest(), 16)
    rng = random.Random(seed)
    picked = [rng.choice(_FIRST) for _ in range(3)]
    return ["You", "asked", f"{len(prompt.split())}", "words;", "ask", *picked, "instead."]


def _openai_events(head: dict[str, Any], words: list[str]) -> Iterator[tuple[str | None, str]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, str]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return None, json.dumps({**head, "object": "chat.completion.chunk", "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, "stop")
    yield None, "[DONE]"


def _anthropic_events(
    head: dict[str, Any], words: list[str], usage_in: int
) -> Iterator[tuple[str | None, str]]:
    def event(name: str, doc: dict[str, Any]) -> tuple[str, str]:
        return name, json.dumps({"type": name, **doc})

    usage = {"input_tokens": usage_in, "output_tokens": 0}
    message = {**head, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    yield event("message_start", {"message": message})
    yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for i, word in enumerate(words):
        delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
        yield event("content_block_delta", {"index": 0, "delta": delta})
    yield event("content_block_stop", {"index": 0})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": len(words)},
        },
    )
    yield event("message_stop", {})


class _Server(QuietServer):
    def __init__(self, address: tuple[str, int], require_auth: bool, slowness: float) -> None:
        super().__init__(address, _Handler)
        self.count = 0
        self.require_auth = require_auth
        self.slowness = slowness


class DemoAPI(ServerThread):
    """The demo shop API, served from a background thread on 127.0.0.1.

    ``port`` 0 picks a free one; ``require_auth`` asks for ``Authorization: Bearer ...`` on
    everything but ``/api/login`` and ``/api/health``; ``slowness`` scales the deliberate delays
    of ``/api/search`` and ``/api/reports`` (0 removes them).

    Endpoints: ``GET /api/health``, ``POST /api/login`` (password ``demo``), ``GET /api/users``
    (``page``, ``per_page``), ``GET /api/users/{id}`` (404 past 500), ``POST /api/users`` (422
    without ``name``), ``GET /api/orders`` (gzip when accepted), ``GET /api/orders/{uuid}``,
    ``GET /api/products/{id}/image.png``, ``GET /api/search?q=`` (50-300 ms),
    ``GET /api/reports/{hash}`` (120 ms, one in five fails with 500), ``GET /api/limited``
    (every fourth call answers 429). For LLM SDKs pointed at it (``base_url=api.url + "/v1"``
    for OpenAI's, ``api.url`` for Anthropic's): ``POST /v1/chat/completions`` and
    ``POST /v1/messages`` in the shapes of those APIs, ``"stream": true`` as server-sent events
    (5 ms apart); the answer is a deterministic function of the last message.
    """

    def __init__(self, port: int = 0, *, require_auth: bool = False, slowness: float = 1.0):
        super().__init__(_Server(("127.0.0.1", port), require_auth, slowness))


def _plan(n: int, seed: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The request mix a generated session sends: (method, path, httpx kwargs)."""
    rng = random.Random(seed)
    orders = _order_ids(60)
    yield "POST", "/api/login", {"json": {"username": "ada", "password": "demo"}}
    for i in range(n - 1):
        roll = rng.random()
        if roll < 0.30:
            uid = rng.randrange(1, _N_USERS + 40)  # a few past the end: 404s
            yield "GET", f"/api/users/{uid}", {}
        elif roll < 0.42:
            yield "GET", "/api/users", {"params": {"page": rng.randrange(1, 6), "per_page": 20}}
        elif roll < 0.54:
            yield "GET", f"/api/orders/{rng.choice(orders)}", {}
        elif roll < 0.60:
            params = {"status": rng.choice(_STATUSES)} if rng.random() < 0.5 else {}
            yield "GET", "/api/orders", {"params": params}
        elif roll < 0.70:
            yield "GET", f"/api/products/{rng.randrange(1, 40)}/image.png", {}
        elif roll < 0.78:
            yield (
                "GET",
                "/api/search",
                {"params": {"q": rng.choice(_FIRST).lower()[: rng.randrange(2, 6)]}},
            )
        elif roll < 0.83:
            token = hashlib.md5(f"r{rng.randrange(30)}".encode()).hexdigest()[:10]
            yield "GET", f"/api/reports/{token}", {}
        elif roll < 0.90:
            doc: dict[str, Any] = {"name": f"new-{i}"} if rng.random() < 0.85 else {"nick": "x"}
            yield "POST", "/api/users", {"json": doc}
        elif roll < 0.97:
            yield "GET", "/api/limited", {}
        else:
            yield "GET", f"/api/unknown/{i}", {}


def generate_traffic(client: Any, n: int = 200, *, seed: int = 0) -> int:
    """Send ``n`` requests of a realistic mix through an ``httpx.Client`` based at a DemoAPI.

    Logs in first and uses the token it gets, so captures hold credentials to redact. Returns
    the number of requests sent.
    """
    token = None
    sent = 0
    for method, path, kwargs in _plan(n, seed):
        headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.request(method, path, headers=headers, **kwargs)
        sent += 1
        if path == "/api/login" and response.status_code == 200:
            token = response.json()["access_token"]
    return sent
