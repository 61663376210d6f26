"""checks/ against a real sandbox: green when healthy, red with the right sentence when not."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import Sandbox, run_suite


def test_checks_green_on_healthy_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    run = run_suite(sandbox.path, "checks/test_health.py", "checks/test_readiness.py",
                    tmp=tmp_path)
    assert run.returncode == 0, run.output
    assert run.verdict == {"verdict": "healthy", "failures": []}
    assert run.output.rstrip().splitlines()[-1] == "verdict: healthy"
