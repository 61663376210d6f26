"""The promise of every fault: journaled before injection, reverted whatever happens -
pass, failure, exception, Ctrl-C, SIGTERM, and after SIGKILL through the journal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook import config
from playbook.faults.base import FaultRefused, Journal, injected, revert_pending
from tests.conftest import ROOT
from tests.fault_fixtures import FileFault, ctx_for

pytestmark = pytest.mark.unit

PROFILE = "name: t\nproduction: {prod}\nservice:\n  base_url: http://127.0.0.1:1\n"


def profile(tmp: Path, prod: bool = False) -> config.Profile:
    path = tmp / "p.yaml"
    path.write_text(PROFILE.format(prod=str(prod).lower()))
    return config.load(str(path))


def test_reverted_on_pass_and_on_exception(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    journal = Journal.open(tmp_path / "journal.json")
    ctx = ctx_for(profile(tmp_path))
    with injected(FileFault(path=str(marker)), ctx, journal):
        assert marker.read_text() == "injected"
        assert Journal.open(journal.path).entries[0]["status"] == "injected"
    assert not marker.exists()
    with pytest.raises(ZeroDivisionError), injected(FileFault(path=str(marker)), ctx, journal):
        1 / 0  # noqa: B018
    assert not marker.exists()
    assert [e["status"] for e in Journal.open(journal.path).entries] == ["reverted"] * 2
    assert journal.pending() == []


def test_production_profile_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    journal = Journal.open(tmp_path / "journal.json")
    prod = profile(tmp_path, prod=True)
    with pytest.raises(FaultRefused, match=r"marked production: true.*--allow-production"), \
            injected(FileFault(path=str(marker)), ctx_for(prod), journal):
        pass
    assert not marker.exists() and journal.entries == []
    with injected(FileFault(path=str(marker)), ctx_for(prod, allow_production=True), journal):
        assert marker.exists()


def test_a_revert_that_keeps_failing_stays_in_the_journal(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    journal = Journal.open(tmp_path / "journal.json")
    with pytest.raises(RuntimeError, match=r"could not revert.*playbook gameday revert"), \
            injected(FileFault(path=str(marker), fail_revert=True), ctx_for(profile(tmp_path)),
                     journal):
        pass
    (entry,) = journal.pending()
    assert entry["status"] == "revert-failed"
    assert "control plane unreachable" in entry["error"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_signals_leave_nothing_injected(tmp_path: Path, sig: signal.Signals) -> None:
    marker, jpath = tmp_path / "m", tmp_path / "journal.json"
    p = profile(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "tests.fault_fixtures", str(marker),
                             str(jpath), p.source], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "injected"
        assert marker.exists()
        proc.send_signal(sig)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    journal = Journal.open(jpath)
    if sig == signal.SIGKILL:
        # Nothing could run in the process: the journal knows, and `gameday revert` finishes.
        assert marker.exists() and journal.pending()[0]["status"] == "injected"
        lines: list[str] = []
        assert revert_pending(ctx_for(p), journal, {FileFault.kind: FileFault},
                              echo=lines.append) == 0
        assert lines == [f"reverted: marker file {marker}"]
    assert not marker.exists()
    assert Journal.open(jpath).pending() == []


def test_unreadable_journal_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "journal.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable game-day journal"):
        Journal.open(bad)


def test_journal_write_is_atomic(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.json")
    ctx = ctx_for(profile(tmp_path))
    start = time.monotonic()
    for i in range(20):
        with injected(FileFault(path=str(tmp_path / f"m{i}")), ctx, journal):
            pass
    assert len(Journal.open(journal.path).entries) == 20
    assert not list(tmp_path.glob(".journal.*"))
    assert time.monotonic() - start < 5
