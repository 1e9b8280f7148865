"""HTTP helpers for wire-form messages: one home for each concern, after httpx's split.

=======================  ==========================================================================
``wire.codings``         content codings (gzip, deflate, br, zstd): :func:`content_codings`,
                         :func:`decode_body` (bounded, decodes as httpx does), :func:`encode_body`,
                         :func:`supports`, :class:`BodyTooLargeError`
``wire.headers``         :func:`header_value` / :func:`header_values` / :func:`header_text`,
                         :func:`content_charset`, :func:`reason_phrase` / :func:`response_reason`,
                         :func:`with_content_length`, :func:`body_consistent_headers`
``wire.urls``            :func:`rebase_url` (and its text, :func:`rebased_text`): a recorded URL
                         moved onto another base URL
``wire.bodies``          a body ready to show (:func:`~traffic_lab.wire.bodies.body_view`):
                         bounded decoding, indented JSON, text, image or hex dump; the notebook
                         widgets and ``traffic-lab show`` both use it
=======================  ==========================================================================

Part of the core layer: it imports the standard library and httpx only (``brotli`` and
``zstandard`` when installed), never pandas, pyarrow or ipywidgets. Everything else in
traffic_lab that decodes a body, reads a header or rebases a URL imports it from here.
"""

from .codings import BodyTooLargeError, content_codings, decode_body, encode_body, supports
from .headers import (
    body_consistent_headers,
    content_charset,
    header_text,
    header_value,
    header_values,
    reason_phrase,
    response_reason,
    with_content_length,
)
from .urls import rebase_url, rebased_text

__all__ = [
    "BodyTooLargeError",
    "body_consistent_headers",
    "content_charset",
    "content_codings",
    "decode_body",
    "encode_body",
    "header_text",
    "header_value",
    "header_values",
    "reason_phrase",
    "rebase_url",
    "rebased_text",
    "response_reason",
    "supports",
    "with_content_length",
]
