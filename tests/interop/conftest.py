"""Fixtures for the interop tests: where the committed sample files live."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir() -> Path:
    """``data/interop``: files written by mitmproxy and in http4k's layouts (see its README)."""
    return Path(__file__).resolve().parents[2] / "data" / "interop"
