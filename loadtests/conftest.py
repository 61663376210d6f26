"""Options of the synthetic load gate."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("playbook-load", "synthetic load gate")
    group.addoption("--load-profile", default="smoke",
                    help="load profile of the environment profile's `load` section "
                         "(smoke, gate, stress); default smoke")
    group.addoption("--load-workers", type=int, default=0,
                    help="run Locust distributed on this machine with N worker processes")
