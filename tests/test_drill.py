"""The drill runner's stages, deadlines, timeline and scorecard, with a file fault and watchers
that the test controls (the sandbox drills in gameday/ exercise the real chain)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from playbook import drill
from playbook.control.context import Context
from playbook.faults.base import FaultRefused, Journal
from tests.fault_fixtures import FileFault, ctx_for
from tests.test_faults_base import profile

pytestmark = pytest.mark.unit


class World:
    """Alert fires `detect_after` s after the marker appears; service heals on mitigation."""

    def __init__(self, marker: Path, detect_after: float = 0.2, notify: bool = True) -> None:
        self.marker, self.detect_after, self.notify = marker, detect_after, notify
        self.injected_at: float | None = None
        self.mitigated = False

    def alert_state(self, name: str) -> tuple[str, str]:
        if not self.marker.exists():
            return "inactive", name
        self.injected_at = self.injected_at or time.time()
        late = time.time() - self.injected_at > self.detect_after
        return ("firing" if late else "pending"), name

    def notifications(self, receiver: str, alert: str, since: float) -> list[dict[str, Any]]:
        ok = self.notify and self.alert_state(alert)[0] == "firing" and receiver == "pagerduty"
        return [{"receiver": receiver, "alert": alert}] if ok else []

    def healthy(self) -> str | None:
        return None if (self.mitigated or not self.marker.exists()) else "health is 503"

    def watchers(self) -> drill.Watchers:
        return drill.Watchers(self.alert_state, self.notifications, self.healthy,
                              lambda: self.healthy() is not None)


def make(tmp: Path, world: World, **expect: Any) -> drill.Drill:
    def mitigate(ctx: Context) -> str:
        world.mitigated = True
        return "scaled up"

    return drill.Drill("outage", FileFault(path=str(world.marker)),
                       drill.Expect(alert="BackendDown", severity="P0", receiver="pagerduty",
                                    **{"detect_within": 2, "notify_within": 2,
                                       "recover_within": 2, **expect}),
                       mitigate=mitigate)


def test_a_drill_that_passes_has_a_full_timeline(tmp_path: Path) -> None:
    world = World(tmp_path / "m")
    journal = Journal.open(tmp_path / "j.json")
    result = drill.run(make(tmp_path, world), ctx_for(profile(tmp_path)), journal,
                       world.watchers())
    assert result.passed, result.message
    stages = [e["stage"] for e in result.timeline.events]
    assert stages == ["steady state", "injected", "alert pending", "alert firing",
                      "notification delivered", "mitigation applied", "recovered", "reverted"]
    assert 0.2 <= result.metrics["time_to_detect"] < 1.5
    assert result.metrics["time_to_recover"] >= result.metrics["time_to_mitigate"]
    assert not world.marker.exists() and journal.pending() == []

    paths = drill.scorecard([result], tmp_path / "card", time.time() - 3)
    card = json.loads(paths["json"].read_text())
    assert card["passed"] and card["drills"][0]["metrics"]["time_to_detect"] > 0
    assert "| outage | PASS |" in paths["md"].read_text()
    assert paths["svg"].read_text().startswith("<svg")


def test_missed_detection_names_the_stage_and_reverts(tmp_path: Path) -> None:
    world = World(tmp_path / "m", detect_after=10)
    journal = Journal.open(tmp_path / "j.json")
    result = drill.run(make(tmp_path, world, detect_within=0.5),
                       ctx_for(profile(tmp_path)), journal, world.watchers())
    assert not result.passed
    assert result.failed_stage == "detection"
    assert result.message == "detection: BackendDown did not fire within 0.5 s"
    assert not world.marker.exists() and journal.pending() == []


def test_missing_notification_fails_at_notification(tmp_path: Path) -> None:
    world = World(tmp_path / "m", notify=False)
    result = drill.run(make(tmp_path, world, notify_within=0.5), ctx_for(profile(tmp_path)),
                       Journal.open(tmp_path / "j.json"), world.watchers())
    assert result.message == ("notification: no pagerduty notification for BackendDown "
                              "arrived within 0.5 s")


def test_broken_mitigation_fails_at_mitigation(tmp_path: Path) -> None:
    world = World(tmp_path / "m")
    d = make(tmp_path, world)

    def broken(ctx: Context) -> str:
        raise RuntimeError("rollout undo rejected")

    d.mitigate = broken
    result = drill.run(d, ctx_for(profile(tmp_path)), Journal.open(tmp_path / "j.json"),
                       world.watchers())
    assert result.failed_stage == "mitigation"
    assert "RuntimeError: rollout undo rejected" in result.message
    assert not world.marker.exists()


def test_unhealthy_steady_state_injects_nothing(tmp_path: Path) -> None:
    world = World(tmp_path / "m")
    world.marker.write_text("already broken")
    journal = Journal.open(tmp_path / "j.json")
    with pytest.raises(FaultRefused, match=r"steady state does not hold.*health is 503"):
        drill.run(make(tmp_path, world), ctx_for(profile(tmp_path)), journal,
                  world.watchers())
    assert journal.entries == []


def test_blast_guard_aborts_and_reverts(tmp_path: Path) -> None:
    world = World(tmp_path / "m", detect_after=30)
    d = make(tmp_path, world, detect_within=20)
    d.blast_error_budget, d.blast_limit = 0.5, 0.5
    start = time.monotonic()
    result = drill.run(d, ctx_for(profile(tmp_path)), Journal.open(tmp_path / "j.json"),
                       world.watchers())
    assert result.failed_stage == "detection"
    assert "aborted: user-facing errors exceeded the blast budget" in result.message
    assert time.monotonic() - start < 5
    assert not world.marker.exists()
