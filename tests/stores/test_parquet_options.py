"""ParquetOptions: one object for the settings of both Parquet stores; keywords still work.
And traffic_lab.files.write_atomic, the one atomic file write."""

from __future__ import annotations

import os

import pytest

import traffic_lab as tl
from traffic_lab.files import write_atomic
from traffic_lab.stores.parquet import ParquetOptions


@pytest.mark.parametrize("store", [tl.ParquetStream, tl.ParquetCache])
def test_options_or_keywords_build_the_same_store(tmp_path, store):
    opts = ParquetOptions(flush_rows=7, flush_seconds=None, durable=True)
    a = store(tmp_path / "a", options=opts)
    b = store(tmp_path / "b", flush_rows=7, flush_seconds=None, durable=True)
    assert a.options == b.options == opts
    assert a._writer.options is opts
    a.put(tl.Exchange("GET", "https://a.example/", status_code=200))
    a.close()
    b.close()
    assert len(store(tmp_path / "a")) == 1


@pytest.mark.parametrize("store", [tl.ParquetStream, tl.ParquetCache])
def test_options_and_keywords_together_are_refused(tmp_path, store):
    with pytest.raises(TypeError, match=r"either options= or durable=, strict=, not both"):
        store(tmp_path, options=ParquetOptions(), durable=True, strict=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'flush_row'"):
        store(tmp_path, flush_row=3)
    with pytest.raises(TypeError, match="options must be a ParquetOptions, not dict"):
        store(tmp_path, options={"durable": True})


def test_options_are_checked_and_frozen():
    with pytest.raises(ValueError, match="flush_rows and flush_bytes must be positive"):
        ParquetOptions(flush_rows=0)
    with pytest.raises(ValueError, match="flush_seconds must be positive"):
        ParquetOptions(flush_seconds=0)
    opts = ParquetOptions()
    with pytest.raises(AttributeError):
        opts.durable = True  # type: ignore[misc]
    assert opts.replace(durable=True).durable and not opts.durable


def test_the_cache_settings_reach_the_cache(tmp_path):
    cache = tl.ParquetCache(tmp_path, cache_bytes=1000, cache_exchanges=3)
    assert (cache._cache_bytes, cache._cache_exchanges) == (1000, 3)


def test_write_atomic(tmp_path):
    target = tmp_path / "f"
    assert write_atomic(target, b"one")
    assert not write_atomic(target, b"two")  # never replaced without overwrite
    assert target.read_bytes() == b"one"
    assert write_atomic(target, b"three", overwrite=True)
    assert target.read_bytes() == b"three"
    assert write_atomic(tmp_path / "g", lambda temp: open(temp, "wb").close())
    assert (tmp_path / "g").read_bytes() == b""
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(outside)
    assert not write_atomic(link, b"x")  # a symlink counts as a file: not written through
    assert write_atomic(link, b"x", overwrite=True)  # replaced, not followed
    assert outside.read_bytes() == b"keep" and not link.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["f", "g", "link", "outside"]  # no temporaries
