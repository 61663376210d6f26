"""Playbook 6.2, post-fix validation: the synthetic load run and its thresholds.

Replaces `k6 run security-dashboard-production-load-test.js --vus 10 --duration 5m`: the load
profile (--load-profile, default smoke; `gate` is the playbook's 10 users for 5 minutes) runs
through `playbook load` in its own process (Locust patches the interpreter with gevent, which
must not happen inside pytest), and every threshold becomes its own Allure step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import allure
import pytest

from playbook.config import Profile
from playbook.plugin import attach_json, attach_text

ROOT = Path(__file__).resolve().parent.parent
ATTACH = {".html": allure.attachment_type.HTML, ".csv": allure.attachment_type.CSV,
          ".json": allure.attachment_type.JSON, ".svg": allure.attachment_type.SVG}


def _run_load(profile: Profile, name: str, workers: int, echo: Any) -> tuple[int, str, Path | None]:
    section = profile.load
    assert section is not None
    lp = section.profiles.get(name)
    planned = lp.duration() if lp else 0.0
    # The runner bounds itself; this is the outer fence in case the process hangs.
    limit = planned + section.stop_timeout + 60 + (30 if workers else 0)
    argv = [sys.executable, "-m", "playbook.cli", "--env", profile.source, "load",
            "--profile", name, "--workers", str(workers)]
    lines: list[str] = []
    run_dir = None
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=os.environ.copy())
    watchdog = threading.Timer(limit, proc.kill)  # reading lines must not wait forever
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # live progress: the runner prints a line every few seconds
            line = line.rstrip("\n")
            lines.append(line)
            echo(line)
            if line.startswith("load: reports in "):
                run_dir = Path(line.removeprefix("load: reports in ").strip())
        code = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code < 0:
        lines.append(f"load: the run did not finish within {limit:.0f} s and was killed")
        code = 2
    return code, "\n".join(lines), run_dir


@pytest.mark.severity("P1")
@pytest.mark.incident_type("performance")
@pytest.mark.requires("load")
def test_synthetic_load(profile: Profile, pytestconfig: pytest.Config) -> None:
    """The load profile's thresholds hold (playbook 6.2: k6 run ... --vus 10 --duration 5m)."""
    name = pytestconfig.getoption("load_profile")
    workers = pytestconfig.getoption("load_workers")
    tr = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def echo(line: str) -> None:
        if tr is not None:
            tr.write_line(line)

    allure.dynamic.title(f"synthetic load: profile {name}"
                         + (f" with {workers} workers" if workers else ""))
    code, output, run_dir = _run_load(profile, name, workers, echo)
    attach_text("playbook load output", output)
    summary: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text())
        for f in sorted(run_dir.iterdir()):
            if f.suffix in ATTACH and f.stat().st_size:
                allure.attach.file(str(f), name=f.name, attachment_type=ATTACH[f.suffix])
    if code == 2 or not summary:
        last = [ln for ln in output.splitlines() if ln.startswith("load: ")]
        reason = last[-1].removeprefix("load: ") if last else output.strip()[-300:]
        pytest.fail(f"synthetic load profile {name} against {profile.service.base_url} could "
                    f"not run: {reason}", pytrace=False)
    attach_json("load totals", summary["totals"])

    failed: list[str] = []
    for t in summary["thresholds"]:
        try:
            with allure.step(t["message"]):
                assert t["passed"], t["message"]
        except AssertionError:
            failed.append(t["message"])
    if summary.get("aborted"):
        with allure.step(f"run aborted: {summary['abort_reason']}"):
            pass
    if failed:
        more = f" (+{len(failed) - 1} more failed thresholds)" if len(failed) > 1 else ""
        aborted = (f", run aborted after {summary['duration_seconds']:.1f} s of "
                   f"{summary['planned_seconds']:g} s") if summary.get("aborted") else ""
        raise AssertionError(f"synthetic load profile {name} against "
                             f"{profile.service.base_url}{aborted}: threshold {failed[0]}{more}")
    assert code == 0, f"playbook load exited {code} although every threshold passed:\n{output}"
