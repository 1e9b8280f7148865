"""Import and export of other tools' traffic files: HAR, VCR.py cassettes, http4k disk stores.

Readers return a ``list`` of :class:`~traffic_lab.Exchange` in the file's order, after reading
and checking the whole file, which is untrusted: a file that cannot be read raises
:class:`~traffic_lab.errors.InteropError` naming it (a missing one ``FileNotFoundError``), and
nothing else escapes. An entry that is invalid, or holds a value no store can hold
(:func:`~traffic_lab.exchange.check_storable`), is **skipped** with a
:class:`~traffic_lab.errors.SkippedEntryWarning` naming the file, the entry index and the field;
``strict=True`` raises the :class:`~traffic_lab.errors.InteropError` instead. Writers write
atomically, refuse an existing path unless ``overwrite=True``, and return how many entries they
wrote. ``docs/interop.md`` maps each format and lists every limit.

=====================  =====================  ===============================================
format                 read                   write
=====================  =====================  ===============================================
HAR 1.2                :func:`read_har`       :func:`write_har`
VCR.py cassette        :func:`read_vcr`       :func:`write_vcr` (YAML needs PyYAML)
http4k DiskTree /      :func:`read_http4k`    :func:`write_http4k`
DiskStream
=====================  =====================  ===============================================

Examples
--------
>>> import tempfile, pathlib
>>> import traffic_lab as tl
>>> from traffic_lab import interop
>>> from traffic_lab.testing import make_exchange
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> interop.write_har([make_exchange(json={"id": 1})], folder / "capture.har")
1
>>> stream = tl.MemoryStream()
>>> for exchange in interop.read_har(folder / "capture.har"):
...     stream.put(exchange)
>>> [r.json() for r in stream.responses()]
[{'id': 1}]
"""

from __future__ import annotations

from .har import read_har, write_har
from .http4k import read_http4k, write_http4k
from .vcr import read_vcr, write_vcr

__all__ = ["read_har", "read_http4k", "read_vcr", "write_har", "write_http4k", "write_vcr"]
