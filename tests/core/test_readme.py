"""The README's quickstart runs as written, on a machine with no internet."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_quickstart_runs_offline():
    first = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert first is not None
    out = subprocess.run(
        [sys.executable, "-c", first.group(1)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "user-1\n"
