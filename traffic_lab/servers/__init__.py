"""HTTP servers over captures: a mock server that answers with recorded traffic, and a recording
reverse proxy. Both are plain ASGI 3 apps (:class:`MockApp`, :class:`ProxyApp`) that run under
any ASGI server; :func:`run_server` and :class:`BackgroundServer` run them on traffic_lab's own
small HTTP/1.1 server (asyncio and h11: any status 200-999 with its recorded reason phrase, which
uvicorn cannot send), bound to 127.0.0.1 unless told otherwise. The ``traffic-lab serve`` and
``traffic-lab record`` commands are built on them.

Examples
--------
>>> import httpx, traffic_lab as tl
>>> from traffic_lab.servers import BackgroundServer, MockApp
>>> cache = tl.MemoryCache()
>>> cache.put(tl.Exchange("GET", "https://api.example/users/1", status_code=200,
...                       response_body=b'{"id": 1}'))
>>> with BackgroundServer(MockApp(cache, origin="https://api.example")) as server:
...     httpx.get(server.url + "/users/1").json()
{'id': 1}
"""

from __future__ import annotations

from ._asgi import REASON_EXTENSION
from ._server import BackgroundServer, ServerBindError, bind_socket, run_server
from .mock import MOCK_HEADER, NEAREST_HEADER, MockApp
from .proxy import PROXY_HEADER, ProxyApp

__all__ = [
    "MOCK_HEADER",
    "NEAREST_HEADER",
    "PROXY_HEADER",
    "REASON_EXTENSION",
    "BackgroundServer",
    "MockApp",
    "ProxyApp",
    "ServerBindError",
    "bind_socket",
    "run_server",
]
