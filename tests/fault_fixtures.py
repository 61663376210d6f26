"""A fault whose effect is a file: lets the tests watch inject/revert across processes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from playbook import config
from playbook.control.context import Context
from playbook.faults.base import Fault, Journal, injected


@dataclass
class FileFault(Fault):
    kind = "test-file"
    path: str = ""
    fail_revert: bool = False

    @property
    def description(self) -> str:
        return f"marker file {self.path}"

    def inject(self, ctx: Context) -> None:
        Path(self.path).write_text("injected")

    def revert(self, ctx: Context) -> None:
        if self.fail_revert:
            raise OSError("control plane unreachable")
        Path(self.path).unlink(missing_ok=True)


def ctx_for(profile: config.Profile, allow_production: bool = False) -> SimpleNamespace:
    return SimpleNamespace(profile=profile, allow_production=allow_production)


if __name__ == "__main__":
    # python -m tests.fault_fixtures MARKER JOURNAL PROFILE: inject, then wait to be killed.
    marker, journal_path, profile_path = sys.argv[1:4]
    profile = config.load(profile_path)
    journal = Journal.open(Path(journal_path))
    with injected(FileFault(path=marker), ctx_for(profile), journal):
        print("injected", flush=True)
        time.sleep(60)
