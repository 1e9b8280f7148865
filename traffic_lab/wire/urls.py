"""URLs: a recorded request's URL moved onto another server."""

from __future__ import annotations

import functools

import httpx

__all__ = ["rebase_url", "rebased_text"]


def rebase_url(url: str | httpx.URL, base_url: str | httpx.URL) -> httpx.URL:
    """``url``'s path and query under ``base_url``: its scheme, host, port and path prefix.

    What replay sends when it targets another server (a staging host, a local build). The base's
    own query and fragment are dropped, and so is ``url``'s fragment, which no request carries.
    Raises ``httpx.InvalidURL`` for text httpx cannot parse.

    >>> str(rebase_url("https://api.example/v1/users?page=2", "http://localhost:8000/staging/"))
    'http://localhost:8000/staging/v1/users?page=2'
    """
    return httpx.URL(rebased_text(url, base_url))


def rebased_text(url: str | httpx.URL, base_url: str | httpx.URL) -> str:
    """:func:`rebase_url` as text, for a caller that hands it to httpx (which parses it once)."""
    target = url.raw_path.decode("ascii") if isinstance(url, httpx.URL) else _path_and_query(url)
    return _base_prefix(str(base_url)) + target


@functools.lru_cache(maxsize=64)
def _base_prefix(base_url: str) -> str:
    """``base_url`` without its query, fragment and trailing ``/``: what paths are appended to."""
    base = httpx.URL(base_url)
    path = base.raw_path.partition(b"?")[0].rstrip(b"/")
    return str(base.copy_with(raw_path=path, fragment=None))


def _path_and_query(url: str) -> str:
    """The path and query of an absolute URL's text (parsed once, by the caller's httpx.URL)."""
    rest = url.partition("#")[0]
    scheme_end = rest.find("://")
    if scheme_end < 0:
        return httpx.URL(url).raw_path.decode("ascii")
    start = scheme_end + 3
    ends = [i for i in (rest.find("/", start), rest.find("?", start)) if i >= 0]
    if not ends:
        return "/"
    target = rest[min(ends) :]
    return target if target.startswith("/") else "/" + target
