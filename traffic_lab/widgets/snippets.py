"""An exchange as code: the request as a ``curl`` command line or an httpx call, and the whole
exchange as a respx or pytest-httpx fixture that answers the request as recorded.

Every value comes from a capture, so none is trusted: shell words go through
:func:`shlex.quote`, Python literals through :func:`repr`, and a recorded error's class is
named only when it is one of httpx's own exceptions. Nothing read from the exchange can end a
string, a comment or a command early.
"""

from __future__ import annotations

import shlex

import httpx

from ..exchange import Exchange
from ..redaction import REDACTED
from ..wire import rebase_url

__all__ = ["to_curl", "to_httpx_code", "to_pytest_httpx_code", "to_respx_code"]

# Headers a client computes for the message it sends: left out of curl and httpx code.
_COMPUTED = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


def _names(names: list[str]) -> str:
    """Header names for a comment: each as a Python literal, so a newline in a hostile name
    cannot end the comment."""
    return ", ".join(map(repr, names))


def _request_parts(
    exchange: Exchange, base_url: str | None
) -> tuple[str, list[tuple[str, str]], list[str]]:
    """The URL (rebased as replay does), the headers to send, and the redacted header names."""
    url = str(rebase_url(exchange.url, base_url)) if base_url else exchange.url
    headers, redacted = [], []
    for name, value in exchange.request_headers:
        if name.lower() in _COMPUTED:
            continue
        text_name, text_value = name.decode("latin-1"), value.decode("latin-1")
        if REDACTED in text_value:
            redacted.append(text_name)
        else:
            headers.append((text_name, text_value))
    return url, headers, redacted


def to_curl(exchange: Exchange, base_url: str | None = None) -> str:
    """The recorded request as a ``curl`` command line (every word shell-quoted).

    ``Host``, ``Content-Length``, ``Transfer-Encoding`` and ``Connection`` are left to curl;
    headers whose value was redacted are left out and named in a comment, to be filled in.
    ``base_url``: send to this base URL instead of the recorded host, as replay does.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> ex = tl.Exchange("POST", "https://api.example/items?q=a b", status_code=201,
    ...                  request_headers=[(b"Content-Type", b"application/json")],
    ...                  request_body=b'{"name": "it\\'s"}')
    >>> print(to_curl(ex))
    curl -X POST 'https://api.example/items?q=a b' \\
      -H 'Content-Type: application/json' \\
      --data-raw '{"name": "it'"'"'s"}'
    """
    url, headers, redacted = _request_parts(exchange, base_url)
    words = [f"curl -X {shlex.quote(exchange.method)} {shlex.quote(url)}"]
    accept = next((v for k, v in headers if k.lower() == "accept-encoding"), "")
    if any(c in accept for c in ("gzip", "br", "deflate")):
        words.append("--compressed")
    words.extend(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers)
    body = exchange.request_body
    prefix = ""
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and "\x00" not in text:
            words.append(f"--data-raw {shlex.quote(text)}")
        else:
            prefix = f"# the request body is {len(body)} binary bytes: save them to body.bin\n"
            words.append("--data-binary @body.bin")
    if redacted:
        prefix += f"# redacted, add your own: {_names(redacted)}\n"
    return prefix + " \\\n  ".join(words)


def to_httpx_code(exchange: Exchange, base_url: str | None = None) -> str:
    """The recorded request as a runnable Python snippet using httpx (literals via ``repr``).

    Examples
    --------
    >>> import traffic_lab as tl
    >>> print(to_httpx_code(tl.Exchange("GET", "https://api.example/users/1", status_code=200)))
    import httpx
    <BLANKLINE>
    response = httpx.request(
        'GET',
        'https://api.example/users/1',
    )
    print(response.status_code, response.headers.get('content-type'))
    print(response.text[:1000])
    """
    url, headers, redacted = _request_parts(exchange, base_url)
    lines = ["import httpx", ""]
    if redacted:
        lines.append(f"# redacted, add your own: {_names(redacted)}")
    lines += ["response = httpx.request(", f"    {exchange.method!r},", f"    {url!r},"]
    if headers:
        lines.append("    headers=[")
        lines.extend(f"        ({name!r}, {value!r})," for name, value in headers)
        lines.append("    ],")
    if exchange.request_body:
        lines.append(f"    content={exchange.request_body!r},")
    lines += [
        ")",
        "print(response.status_code, response.headers.get('content-type'))",
        "print(response.text[:1000])",
    ]
    return "\n".join(lines)


def _response_args(exchange: Exchange, indent: str, stream: bool = False) -> list[str]:
    """The recorded response as keyword-argument lines: status, headers (wire order), body
    (``stream``: as pytest-httpx's ``IteratorStream``, read once, so a gzip body is decoded
    once by the client)."""
    lines = [f"{indent}status_code={exchange.status_code!r},"]
    if exchange.response_headers:
        lines.append(f"{indent}headers=[")
        lines.extend(
            f"{indent}    ({name.decode('latin-1')!r}, {value.decode('latin-1')!r}),"
            for name, value in exchange.response_headers
        )
        lines.append(f"{indent}],")
    if exchange.response_body and stream:
        lines.append(f"{indent}stream=IteratorStream([{exchange.response_body!r}]),")
    elif exchange.response_body:
        lines.append(f"{indent}content={exchange.response_body!r},")
    return lines


def _error_class(exchange: Exchange) -> str:
    """``httpx.<Name>`` for the recorded error when that is one of httpx's transport errors,
    else ``httpx.TransportError`` (a recorded type name is never trusted as code)."""
    error = exchange.error
    module, _, name = (error.type if error else "").rpartition(".")
    klass = getattr(httpx, name, None) if module == "httpx" and name.isidentifier() else None
    if isinstance(klass, type) and issubclass(klass, httpx.TransportError):
        return f"httpx.{name}"
    return "httpx.TransportError"


def _example_test(exchange: Exchange, fixture: str, annotation: str) -> list[str]:
    """A test that sends the recorded request and checks the recorded answer comes back."""
    call = f"httpx.request({exchange.method!r}, {exchange.url!r}"
    call += f", content={exchange.request_body!r})" if exchange.request_body else ")"
    lines = ["", "", f"def test_{fixture}({fixture}{annotation}) -> None:"]
    if exchange.status_code is None:
        lines += [
            f"    with pytest.raises({_error_class(exchange)}):",
            f"        {call}",
        ]
    else:
        lines += [
            f"    response = {call}",
            f"    assert response.status_code == {exchange.status_code!r}",
        ]
    return lines


def to_respx_code(exchange: Exchange, fixture: str = "recorded_api") -> str:
    """The exchange as a pytest fixture built on `respx <https://lundberg.github.io/respx/>`_:
    while it is active, httpx clients get the recorded response (status, headers in wire order,
    the body as stored) for the recorded method and URL; a recorded transport error is raised
    again. A test using it follows.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> ex = tl.Exchange("GET", "https://api.example/users/1", status_code=200,
    ...                  response_headers=[(b"content-type", b"application/json")],
    ...                  response_body=b'{"id": 1}')
    >>> print(to_respx_code(ex))
    import httpx
    import pytest
    import respx
    <BLANKLINE>
    <BLANKLINE>
    @pytest.fixture
    def recorded_api():
        with respx.mock(assert_all_called=False) as mock:
            mock.route(method='GET', url='https://api.example/users/1').mock(
                return_value=httpx.Response(
                    status_code=200,
                    headers=[
                        ('content-type', 'application/json'),
                    ],
                    content=b'{"id": 1}',
                )
            )
            yield mock
    <BLANKLINE>
    <BLANKLINE>
    def test_recorded_api(recorded_api) -> None:
        response = httpx.request('GET', 'https://api.example/users/1')
        assert response.status_code == 200
    """
    if not fixture.isidentifier():
        raise ValueError(f"not a Python name: {fixture!r}")
    route = f"mock.route(method={exchange.method!r}, url={exchange.url!r})"
    lines = [
        "import httpx",
        "import pytest",
        "import respx",
        "",
        "",
        "@pytest.fixture",
        f"def {fixture}():",
        "    with respx.mock(assert_all_called=False) as mock:",
    ]
    if exchange.status_code is None:
        message = exchange.error.message if exchange.error else ""
        lines.append(f"        {route}.mock(side_effect={_error_class(exchange)}({message!r}))")
    else:
        lines += [
            f"        {route}.mock(",
            "            return_value=httpx.Response(",
            *_response_args(exchange, " " * 16),
            "            )",
            "        )",
        ]
    lines.append("        yield mock")
    lines += _example_test(exchange, fixture, "")
    return "\n".join(lines)


def to_pytest_httpx_code(exchange: Exchange, fixture: str = "recorded_api") -> str:
    """The exchange as a pytest fixture built on `pytest-httpx
    <https://colin-b.github.io/pytest_httpx/>`_'s ``httpx_mock``: the recorded method and URL
    answer the recorded response (status, headers in wire order, the body as stored), or raise
    the recorded transport error again. A test using it follows.

    Examples
    --------
    >>> import traffic_lab as tl
    >>> ex = tl.Exchange("DELETE", "https://api.example/users/1", status_code=204)
    >>> print(to_pytest_httpx_code(ex))
    import httpx
    import pytest
    from pytest_httpx import HTTPXMock, IteratorStream
    <BLANKLINE>
    <BLANKLINE>
    @pytest.fixture
    def recorded_api(httpx_mock: HTTPXMock) -> HTTPXMock:
        httpx_mock.add_response(
            method='DELETE',
            url='https://api.example/users/1',
            status_code=204,
        )
        return httpx_mock
    <BLANKLINE>
    <BLANKLINE>
    def test_recorded_api(recorded_api: HTTPXMock) -> None:
        response = httpx.request('DELETE', 'https://api.example/users/1')
        assert response.status_code == 204
    """
    if not fixture.isidentifier():
        raise ValueError(f"not a Python name: {fixture!r}")
    lines = [
        "import httpx",
        "import pytest",
        "from pytest_httpx import HTTPXMock, IteratorStream",
        "",
        "",
        "@pytest.fixture",
        f"def {fixture}(httpx_mock: HTTPXMock) -> HTTPXMock:",
    ]
    where = [f"        method={exchange.method!r},", f"        url={exchange.url!r},"]
    if exchange.status_code is None:
        message = exchange.error.message if exchange.error else ""
        lines += [
            "    httpx_mock.add_exception(",
            f"        {_error_class(exchange)}({message!r}),",
            *where,
            "    )",
        ]
    else:
        args = _response_args(exchange, " " * 8, stream=True)
        if exchange.http_version != "HTTP/1.1":
            args.insert(1, f"        http_version={exchange.http_version!r},")
        lines += ["    httpx_mock.add_response(", *where, *args, "    )"]
    lines.append("    return httpx_mock")
    lines += _example_test(exchange, fixture, ": HTTPXMock")
    return "\n".join(lines)
