"""``python -m traffic_lab.cli``."""

from __future__ import annotations

from . import main

__all__: list[str] = []

main()
