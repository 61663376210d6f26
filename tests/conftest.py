"""Fixtures for the suite's own tests: a real sandbox on free ports (playbook.sandbox.launch),
and a way to run the suite's checks against it as a user would (a pytest subprocess) and read
the verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from playbook.sandbox.launch import LIGHT, Sandbox, local_aws_env, start_sandbox, stop_sandbox

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of the suite's own is marked `unit` or `sandbox`, not both, not neither."""
    here = Path(__file__).parent
    wrong = [item.nodeid for item in items if here in Path(str(item.path)).parents
             and (item.get_closest_marker("unit") is None)
             == (item.get_closest_marker("sandbox") is None)]
    if wrong:
        raise pytest.UsageError("mark each test in tests/ either @pytest.mark.unit (seconds, no "
                                "sandbox) or @pytest.mark.sandbox: " + ", ".join(wrong))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One healthy sandbox for the tests that only read from it. Tests that break things use
    `fresh_sandbox` (their own) so they cannot leak a fault into their neighbours."""
    sb = start_sandbox(tmp_path_factory.mktemp("sandbox"), without=LIGHT)
    try:
        yield sb
    finally:
        stop_sandbox(sb)


@pytest.fixture
def fresh_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = start_sandbox(tmp_path, without=LIGHT)
    try:
        yield sb
    finally:
        stop_sandbox(sb)


@dataclass
class SuiteRun:
    returncode: int
    output: str
    verdict: dict[str, Any]
    junit: Path
    allure: Path

    def failure(self, test_substring: str) -> dict[str, str] | None:
        for f in self.verdict.get("failures", []):
            if test_substring in f["test"]:
                return f
        return None

    def failed_tests(self) -> list[str]:
        return [f["test"] for f in self.verdict.get("failures", [])]


def run_suite(profile_path: Path | str, *paths: str, tmp: Path, extra: list[str] | None = None,
              timeout: float = 300, env: dict[str, str] | None = None) -> SuiteRun:
    """Run the suite (checks/ by default) against a profile in a pytest subprocess."""
    reports = tmp / "reports"
    argv = [sys.executable, "-m", "pytest", *(paths or ("checks",)), "--env", str(profile_path),
            "-p", "no:cacheprovider", "-q", "--alluredir", str(reports / "allure-results"),
            "--junitxml", str(reports / "junit.xml"),
            "--verdict-file", str(reports / "verdict.json"), *(extra or [])]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PLAYBOOK_REPORTS": str(reports),
                               **local_aws_env(profile_path), **(env or {})})
    out = proc.stdout + proc.stderr
    vfile = reports / "verdict.json"
    verdict = json.loads(vfile.read_text()) if vfile.exists() else {}
    return SuiteRun(proc.returncode, out, verdict, reports / "junit.xml",
                    reports / "allure-results")
