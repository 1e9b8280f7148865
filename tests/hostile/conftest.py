"""Hypothesis profiles for the property and fuzz tests in ``tests/hostile``.

``ci`` (the default) runs a few dozen examples per test so the whole folder stays well under a
minute on a 2-core machine; ``fuzz`` runs thousands. Pick one with ``HYPOTHESIS_PROFILE``::

    HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/hostile -q    # or: scripts/fuzz

Neither profile has a per-example deadline (a loaded 2-core box makes timings noisy); the fuzz
tests bound time and memory themselves. No example database is kept (``database=None``): CI
starts clean, and a finding is reproduced from the falsifying example Hypothesis prints.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

# ci draws the same examples on every run (derandomize): a CI result is reproducible, and new
# ground is broken by the fuzz profile, whose findings become explicit examples.
settings.register_profile(
    "ci", max_examples=30, report_multiple_bugs=False, derandomize=True, **_COMMON
)
settings.register_profile("fuzz", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
