"""HTTP servers over captures: a mock server that answers with recorded traffic, and a recording
reverse proxy. Both are plain ASGI 3 apps (:class:`MockApp`, :class:`ProxyApp`) that run under
any ASGI server; :func:`run_server` and :class:`BackgroundServer` run them under uvicorn, bound
to 127.0.0.1 unless told otherwise. The ``traffic-lab serve`` and ``traffic-lab record``
commands are built on them.

uvicorn is needed only to run them here (``pip install 'traffic_lab[cli]'``); importing this
package does not import it.

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

import importlib
from typing import TYPE_CHECKING

from ._asgi import REASON_EXTENSION, REASON_HEADER
from .mock import MOCK_HEADER, MockApp
from .proxy import PROXY_HEADER, ProxyApp

if TYPE_CHECKING:
    from ._uvicorn import (
        BackgroundServer,
        ServerBindError,
        bind_socket,
        run_server,
        uvicorn_config,
    )

__all__ = [
    "MOCK_HEADER",
    "PROXY_HEADER",
    "REASON_EXTENSION",
    "REASON_HEADER",
    "BackgroundServer",
    "MockApp",
    "ProxyApp",
    "ServerBindError",
    "bind_socket",
    "run_server",
    "uvicorn_config",
]

_NEEDS_UVICORN = frozenset(
    {"BackgroundServer", "ServerBindError", "bind_socket", "run_server", "uvicorn_config"}
)


def __getattr__(name: str) -> object:
    if name not in _NEEDS_UVICORN:
        raise AttributeError(f"module 'traffic_lab.servers' has no attribute {name!r}")
    try:
        module = importlib.import_module("traffic_lab.servers._uvicorn")
    except ImportError as exc:
        raise ImportError(
            f"traffic_lab.servers.{name} needs uvicorn: pip install 'traffic_lab[cli]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value
