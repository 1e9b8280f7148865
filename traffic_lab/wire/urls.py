"""URLs: a recorded request's URL moved onto another server."""

from __future__ import annotations

import httpx

__all__ = ["rebase_url"]


def rebase_url(url: str | httpx.URL, base_url: str | httpx.URL) -> httpx.URL:
    """``url``'s path and query under ``base_url``: its scheme, host, port and path prefix.

    What replay sends when it targets another server (a staging host, a local build). The base's
    own query and fragment are dropped, and so is ``url``'s fragment, which no request carries.
    Raises ``httpx.InvalidURL`` for text httpx cannot parse.

    >>> str(rebase_url("https://api.example/v1/users?page=2", "http://localhost:8000/staging/"))
    'http://localhost:8000/staging/v1/users?page=2'
    """
    original = httpx.URL(url)
    base = httpx.URL(base_url)
    prefix = base.raw_path.partition(b"?")[0].rstrip(b"/")
    return base.copy_with(raw_path=prefix + original.raw_path, fragment=None)
