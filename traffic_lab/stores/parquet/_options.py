"""The settings of a Parquet store, documented once: :class:`ParquetOptions`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .schema import DEFAULT_BLOB_THRESHOLD

__all__ = ["ParquetOptions"]


@dataclass(frozen=True, slots=True)
class ParquetOptions:
    """How a :class:`ParquetCache` or :class:`ParquetStream` reads and writes its capture.

    Pass one as ``options=``, or pass its fields as keyword arguments of the store (which build
    one); not both. ``docs/capture-format.md`` describes what the files look like.

    Examples
    --------
    >>> import tempfile, traffic_lab as tl
    >>> from traffic_lab.stores.parquet import ParquetOptions
    >>> fast = ParquetOptions(flush_rows=100, flush_seconds=None)
    >>> store = tl.ParquetStream(tempfile.mkdtemp(), options=fast)
    >>> store.options.flush_rows, tl.ParquetStream(tempfile.mkdtemp(), flush_rows=100).options == (
    ...     ParquetOptions(flush_rows=100))
    (100, True)
    """

    #: A ``pyarrow.fs.FileSystem`` or an fsspec filesystem to use instead of the path's (the
    #: path is then inside it). Default: from the path (a local folder, ``s3://...``). The
    #: standard AWS environment variables are honoured.
    filesystem: Any = None
    #: Log every ``put()`` to disk before it returns, so it survives a crash (``kill -9``) of
    #: the process; the next store to open the capture publishes it. On an object store every
    #: ``put()`` is published as its own file instead (slow). Default False.
    durable: bool = False
    #: Publish the buffer when it holds this many exchanges (default 20,000).
    flush_rows: int = 20_000
    #: ... or this many bytes of bodies (default 32 MiB).
    flush_bytes: int = 32 * 1024 * 1024
    #: ... or when its oldest exchange is this many seconds old (default 10; ``None``: only on
    #: ``flush()``/``close()``, the other limits and at exit).
    flush_seconds: float | None = 10.0
    #: Bodies larger than this many bytes go to content-addressed blob files (default 1 MiB).
    blob_threshold: int = DEFAULT_BLOB_THRESHOLD
    #: Rows per Parquet row group of the files written, at most (default 65,536; a file
    #: written by a flush holds at most ``flush_rows``).
    row_group_size: int = 65_536
    #: ... and about this many bytes of row data (Arrow's in-memory size, bodies included) per
    #: group: fewer rows when rows are large (default 8 MiB; ``None``: rows only). Reading one
    #: exchange back (a cache hit, the browser's detail) decodes at most its group.
    row_group_bytes: int | None = 8 * 1024 * 1024
    #: Parquet compression codec of the files written (default ``"zstd"``).
    compression: str = "zstd"
    #: Raise :class:`~traffic_lab.errors.CorruptCaptureError` on an unreadable file or row
    #: instead of skipping it with a warning (default False).
    strict: bool = False
    #: Allow a folder that does not exist yet (created on the first write); False raises
    #: :class:`~traffic_lab.errors.StoreNotFoundError` (default True).
    create: bool = True
    #: Fold the logs of crashed ``durable`` writers into Parquet when opening (default True).
    recover: bool = True
    #: ParquetCache: bytes of row groups kept in memory for repeated hits (default 64 MiB).
    cache_bytes: int = 64 * 1024 * 1024
    #: ParquetCache: decoded exchanges kept in memory for repeated hits (default 4,096).
    cache_exchanges: int = 4096

    def __post_init__(self) -> None:
        if self.flush_rows < 1 or self.flush_bytes < 1:
            raise ValueError("flush_rows and flush_bytes must be positive")
        if self.row_group_size < 1 or (
            self.row_group_bytes is not None and self.row_group_bytes < 1
        ):
            raise ValueError("row_group_size and row_group_bytes must be positive")
        if self.flush_seconds is not None and self.flush_seconds <= 0:
            raise ValueError("flush_seconds must be positive (or None)")

    @classmethod
    def of(cls, options: ParquetOptions | None, settings: dict[str, Any]) -> ParquetOptions:
        """``options``, or the options ``settings`` (keyword arguments of a store) describe.

        Raises ``TypeError`` for both at once, and for a name that is not a field.
        """
        if options is None:
            return cls(**settings)
        if settings:
            names = ", ".join(f"{name}=" for name in settings)
            raise TypeError(f"pass either options= or {names}, not both")
        if not isinstance(options, cls):
            raise TypeError(f"options must be a ParquetOptions, not {type(options).__name__}")
        return options

    def replace(self, **changes: Any) -> ParquetOptions:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)
