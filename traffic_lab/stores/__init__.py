"""Stores: implementations of the traffic concepts (memory here; Parquet in ``stores.parquet``)."""

from .memory import FROM_CACHE, REPLAYED, MemoryCache, MemoryStream

__all__ = ["FROM_CACHE", "REPLAYED", "MemoryCache", "MemoryStream"]
