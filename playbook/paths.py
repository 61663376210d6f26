"""Where the suite's files live: the one place that knows.

    reports/                      $PLAYBOOK_REPORTS, else <project>/reports
      allure-results/             one run's Allure results (the plugin)
      allure-report/              the HTML report (`playbook report`)
      junit.xml, verdict.json     one run's JUnit XML and verdict (the plugin)
      incidents/INC-.../          evidence bundles (`playbook evidence`)
      gameday/journal.json        every injected fault, until it is reverted
      gameday/<run>/              game-day scorecards
      load/<run>/                 load reports (`playbook load`)
    <sandbox.state_dir>           the sandbox's processes, logs and data (local profile)

Standard library only: the load runner imports it before gevent patches the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playbook.config import Profile

ROOT = Path(__file__).resolve().parent.parent  # the project: checks/, loadtests/, gameday/


def reports(root: Path | None = None) -> Path:
    """$PLAYBOOK_REPORTS, else `reports/` of the project (or of `root`, pytest's rootdir)."""
    return Path(os.environ.get("PLAYBOOK_REPORTS") or (root or ROOT) / "reports")


def allure_results(base: Path | None = None) -> Path:
    return (base or reports()) / "allure-results"


def allure_report(base: Path | None = None) -> Path:
    return (base or reports()) / "allure-report"


def junit(base: Path | None = None) -> Path:
    return (base or reports()) / "junit.xml"


def verdict(base: Path | None = None) -> Path:
    return (base or reports()) / "verdict.json"


def incident(incident_id: str, base: Path | None = None) -> Path:
    """The evidence bundle of one incident: reports/incidents/INC-..."""
    return (base or reports()) / "incidents" / incident_id


def gameday_journal(base: Path | None = None) -> Path:
    """The journal of injected faults that `playbook gameday revert` replays."""
    return (base or reports()) / "gameday" / "journal.json"


def gameday_run(run: str, base: Path | None = None) -> Path:
    """One game day's scorecard (JSON, Markdown, SVG timeline)."""
    return (base or reports()) / "gameday" / run


def load_run(run_id: str, base: Path | None = None) -> Path:
    """One `playbook load` run's CSV, HTML and summary.json."""
    return (base or reports()) / "load" / run_id


def sandbox_state(profile: Profile) -> Path:
    """The sandbox's state directory (profile `sandbox.state_dir`), absolute. The profile must
    have a `sandbox` section (playbook.sandbox.control says so in a sentence when not)."""
    assert profile.sandbox is not None
    return Path(profile.sandbox.state_dir).resolve()
