"""Server-side ``RecordTo``: ASGI and WSGI middleware that record every exchange a Python web app
serves into any Sink, without changing what the client receives.

Both record the request as the app reads it and the response as the app sends it, and put a
redacted copy (redaction is on by default) into the Sink when the exchange is over. Outcomes:

- a complete response: a plain exchange (``truncated=False``, ``error=None``);
- a response cut off (the client went away, or the app stopped early): ``truncated=True`` with
  the body handed to the server;
- the app raised: ``error`` records the exception, which propagates unchanged; with no
  response started the exchange has no status (the server sends its own 500);
- the app returned without a response: no status, ``error.type``
  ``"traffic_lab.middleware.NoResponse"``; the client left before any response:
  ``"traffic_lab.middleware.ClientDisconnected"`` (``truncated=True``). Replaying either raises
  :class:`~traffic_lab.errors.RecordedTransportError`.

A Sink that raises never reaches the app's code: its error propagates to the server once the
response is sent, or is added as a note to the app's own exception.

==============================  =========================================================
:class:`RecordingASGIMiddleware`  Starlette, FastAPI, Quart... under uvicorn, hypercorn...
:class:`RecordingWSGIMiddleware`  Flask, Django (WSGI), Pyramid... under gunicorn, uWSGI...
==============================  =========================================================

Each class's documentation has a complete example.
"""

from __future__ import annotations

from .asgi import RecordingASGIMiddleware
from .wsgi import RecordingWSGIMiddleware

__all__ = ["RecordingASGIMiddleware", "RecordingWSGIMiddleware"]
