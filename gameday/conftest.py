"""Game-day fixtures: the control planes (GameDay context), the journal, the watchers that time
detection and recovery, and the scorecard written when the drills are done.

Drills never run in parallel with each other (they share one target): under pytest-xdist this
directory refuses to run with more than one worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from playbook import drill, paths
from playbook.config import Profile
from playbook.faults.base import FaultRefused, Journal
from playbook.faults.context import GameDay
from playbook.plugin import attach_json, attach_text


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("playbook").addoption(
        "--allow-production", action="store_true", default=False,
        help="let game-day faults act on a profile marked production: true")


def pytest_configure(config: pytest.Config) -> None:
    workers = getattr(config.option, "numprocesses", None)
    if workers not in (None, 0, 1) and any("gameday" in str(a) for a in config.args):
        raise pytest.UsageError("game-day drills share one target and never run in parallel: "
                                "run gameday/ without -n")


@pytest.fixture(scope="session")
def gameday(profile: Profile, pytestconfig: pytest.Config) -> Iterator[GameDay]:
    ctx = GameDay(profile, allow_production=pytestconfig.getoption("allow_production"))
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def journal() -> Journal:
    j = Journal.open(paths.gameday_journal())
    if j.pending():
        kinds = ", ".join(e["description"] for e in j.pending())
        pytest.exit(f"{len(j.pending())} fault(s) of an earlier game day are still injected "
                    f"({kinds}): run `playbook gameday revert` first", returncode=3)
    return j


@pytest.fixture(scope="session")
def timing(profile: Profile) -> drill.Timing:
    if profile.gameday is None:
        pytest.skip(f"profile {profile.name} has no `gameday` section")
    return drill.Timing(profile.gameday)


@pytest.fixture(scope="session")
def watchers(gameday: GameDay) -> drill.Watchers:
    return gameday.watchers()


@pytest.fixture(scope="session")
def scorecard(pytestconfig: pytest.Config) -> Iterator[list[drill.Result]]:
    results: list[drill.Result] = []
    started = time.time()
    yield results
    if not results:
        return
    run = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    out = paths.gameday_run(run, paths.reports(Path(str(pytestconfig.rootpath))))
    written = drill.scorecard(results, out, started)
    for kind, path in written.items():
        try:
            import allure

            kinds = {"json": allure.attachment_type.JSON, "md": allure.attachment_type.TEXT,
                     "svg": allure.attachment_type.SVG}
            allure.attach.file(str(path), name=f"game-day scorecard ({kind})",
                               attachment_type=kinds[kind])
        except Exception:
            pass
    _written.append(written["md"])


_written: list[Path] = []  # scorecards of this session, announced in the terminal summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in _written:
        terminalreporter.write_line(f"game-day scorecard: {path}")
        summary = path.read_text().splitlines()
        terminalreporter.write_line("\n".join(summary[2:3] + summary[4:]).split("\n## ")[0])


@pytest.fixture
def run_drill(gameday: GameDay, journal: Journal, watchers: drill.Watchers,
              scorecard: list[drill.Result]) -> Callable[[drill.Drill], drill.Result]:
    """Run a drill, record it on the scorecard, and fail naming the stage that missed."""

    def run(d: drill.Drill) -> drill.Result:
        if os.environ.get("PLAYBOOK_GAMEDAY_DRY_RUN"):
            pytest.skip("PLAYBOOK_GAMEDAY_DRY_RUN is set: nothing injected")
        try:
            result = drill.run(d, gameday, journal, watchers)
        except FaultRefused as e:
            pytest.skip(str(e))
        scorecard.append(result)
        attach_json(f"timeline of {d.name}", result.to_dict())
        attach_text("timeline", "\n".join(f"{e['t']:7.2f} s {e['stage']} {e['detail']}"
                                          for e in result.timeline.events))
        assert result.passed, result.message
        return result

    return run
