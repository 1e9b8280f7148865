"""The pytest plugin, run the way users run it: inner test sessions through ``pytester``,
against a real loopback server whose hit list shows which requests reached the network."""

from __future__ import annotations

import pytest

# Inner sessions run in this process, and pytester removes the modules they imported when they
# end; numpy (under pyarrow) cannot be imported twice in one process. Imported here, before
# any inner session, the store's modules stay.
import traffic_lab.stores.parquet  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    # ``pytest_plugins = ["pytester"]`` works only in the top-level conftest.py: pytest fails a
    # whole run that collects it from this folder. Registering the plugin here does the same.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
