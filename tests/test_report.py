"""`playbook report`: Allure 3 turns a real run's results (checks against a failing fake target)
into an HTML report; headless Chromium shows the suites, the failed checks, their severities,
the categories and the links to the playbook; a screenshot is kept."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from playbook import plugin, report
from tests.conftest import ROOT, run_suite
from tests.fakes import serve

JSON = "application/json"
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
ROUTES = {
    "/api/health": (502, "text/html", HTML_502, 0),  # P0: a product defect
    "/api/status": (200, JSON, json.dumps({"status": "operational"}), 1.0),  # P1: no answer
    "/api/ready": (200, JSON, json.dumps({"status": "ok"}), 0),
}
SHOTS = ROOT / "reports" / "screenshots"
DOCS_SHOT = ROOT / "docs" / "report.png"


@dataclass
class Generated:
    reports: Path
    results: Path
    report: report.Report
    url: str
    target: str


def chromium(*args: str, timeout: float = 60) -> str:
    """Headless Chromium with a fresh profile, kept on loopback (no other host resolves)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed: run `make install` (Debian package chromium)"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile_dir:
        proc = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--window-size=1400,1000", "--virtual-time-budget=8000", *args],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc.stdout


def visible_text(dom: str) -> str:
    body = dom.split("<body", 1)[-1]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    tmp = tmp_path_factory.mktemp("report")
    with serve(ROUTES) as target:
        profile = tmp / "target.yaml"
        profile.write_text(
            f"name: fake\nservice:\n  base_url: {target}\n  timeout: 0.5\n"
            "  repeated_health: {count: 2, interval: 0.05}\nrun: {budget_seconds: 60}\n")
        run = run_suite(profile, "checks/test_health.py", "checks/test_readiness.py", tmp=tmp)
    assert run.verdict.get("verdict") == "P0", run.output
    reports = tmp / "reports"
    out = reports / "allure-report"
    for name, text in [("load/gate/summary.json", '{"passed": true}'),
                       ("gameday/scorecard.md", "# Game day scorecard\n"),
                       ("incidents/INC-1/timeline.md", "# Incident Timeline - INC-1\n"),
                       ("incidents/INC-1/core.bin", "not attached")]:
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text(text)
    report.generate(run.allure, out)  # the previous run of the trend
    made = report.generate(run.allure, out)
    server, url = report.serve(out)
    try:
        yield Generated(reports, run.allure, made, url, target)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.sandbox
def test_report_files(generated: Generated) -> None:
    rep = generated.report
    assert rep.index.is_file() and rep.results >= 5
    page = rep.index.read_text()
    assert "googletagmanager" not in page and "gtag(" not in page  # no analytics
    assert "allureReportDataReady" in page  # ...and the rest of the page is intact
    cats = json.loads((generated.results / "categories.json").read_text())
    assert [c["name"] for c in cats] == ["Target unreachable", "Product defects", "Suite errors"]
    assert cats[2]["matchedStatuses"] == ["broken"]
    # History: one line per generate, kept outside the report directory that is replaced.
    history = generated.reports / "allure-history.jsonl"
    assert len(history.read_text().splitlines()) == 2
    charts = json.loads((rep.index.parent / "widgets" / "charts.json").read_text())["general"]
    (trend,) = [c for c in charts.values() if c["type"] == "statusDynamics"]
    assert len(trend["data"]) == 2  # the trend (Graphs: "Status dynamics"): previous + current
    (by_sev,) = [c for c in charts.values() if c["type"] == "testResultSeverities"]
    failed = {row["id"]: row["failed"] for row in by_sev["data"]}
    assert (failed["blocker"], failed["critical"]) == (1, 2)
    globals_ = json.loads((rep.index.parent / "widgets" / "globals.json").read_text())
    assert sorted(a["name"] for a in globals_["attachments"]) == [
        "gameday_scorecard.md", "incidents_INC-1_timeline.md", "load_gate_summary.json"]
    env = (generated.results / "environment.properties").read_text()
    assert "Profile=fake" in env and f"Target={generated.target}" in env


@pytest.mark.unit
@pytest.mark.parametrize("message, category", [
    ("GET http://x/api/health: connection refused - nothing is listening there", 0),
    ("GET http://x/api/status: no answer within 0.5 s (timeout)", 0),
    ("Kubernetes API https://k is unreachable: its host name does not resolve", 0),
    ("GET http://x/api/health: expected HTTP 200, got 502 Bad Gateway", 1),
])
def test_unreachable_category_pattern(message: str, category: int) -> None:
    matches = re.fullmatch(report.UNREACHABLE, f"AssertionError: {message}\nassert ...")
    assert bool(matches) == (category == 0)


@pytest.mark.sandbox
def test_report_in_chromium(generated: Generated) -> None:
    home = visible_text(chromium("--dump-dom", generated.url))
    # The suites and every failed check, with the environment.
    for text in ("Security Dashboard - playbook checks", "test_health", "test_readiness",
                 "test_endpoint_answers[health]", "test_endpoint_answers[status]",
                 "test_repeated_health", "Profile fake", f"Target {generated.target}"):
        assert text in home, f"{text!r} not shown on the report's front page"
    assert re.search(r"Failed 3\b", home), home[:800]
    assert "Global Attachments 3" in home  # the load, game-day and incident files

    cats = visible_text(chromium("--dump-dom", generated.url + "#/categories"))
    # Categories split by cause, each grouped by severity (P0 blocker, P1 critical).
    unreachable = cats.split("Target unreachable", 1)[1].split("Product defects", 1)[0]
    assert "Critical" in unreachable and "test_endpoint_answers[status]" in unreachable
    defects = cats.split("Product defects", 1)[1]
    assert "Blocker" in defects and "test_endpoint_answers[health]" in defects
    assert "Critical" in defects and "test_repeated_health" in defects

    tree = json.loads((generated.report.index.parent / "widgets" / "tree.json").read_text())
    ids = {leaf["name"]: key for key, leaf in tree["leavesById"].items()}
    page = visible_text(chromium("--dump-dom",
                                 generated.url + "#/" + ids["test_endpoint_answers[health]"]))
    for text in ("Failed", "Blocker", "Category: Product defects", "tag P0",
                 "Playbook: 6.2 Validation", "expected HTTP 200, got 502 Bad Gateway"):
        assert text in page, f"{text!r} not on the failed check's page"

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "report.png"
    chromium(f"--screenshot={shot}", generated.url + "#/categories")
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if not DOCS_SHOT.exists() or os.environ.get("PLAYBOOK_UPDATE_DOCS"):
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOT)


@pytest.mark.unit
def test_links_point_at_playbook_sections() -> None:
    sections = set(plugin.SECTION_BY_MODULE.values()) | set(
        plugin.SECTION_BY_INCIDENT_TYPE.values()) | {
        "Phase 4: Immediate Mitigation (30-60 minutes)", "Incident Response Procedures"}
    assert plugin.playbook_anchor("1.2 Quick Assessment") == "12-quick-assessment"
    assert plugin.playbook_anchor("Phase 4: Immediate Mitigation (30-60 minutes)") == \
        "phase-4-immediate-mitigation-30-60-minutes"
    playbook = next((p for p in (ROOT / "PLAYBOOK.md", ROOT.parent / "shared" / "PLAYBOOK.md")
                     if p.is_file()), None)
    if playbook is None:
        pytest.skip("PLAYBOOK.md is not beside the project")
    headings = {re.sub(r"^#+\s*", "", line).strip()
                for line in playbook.read_text().splitlines() if line.startswith("#")}
    missing = sorted(s for s in sections if s not in headings)
    assert not missing, f"not a PLAYBOOK.md heading: {missing}"


@pytest.mark.unit
def test_report_without_results_or_allure(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match=r"no Allure results at .* run the checks"):
        report.generate(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(report.ReportError, match="holds no test results"):
        report.generate(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(report.ReportError, match=r"Allure is not installed .*make install"):
        report.allure_command(tmp_path)
    env = {**os.environ, "PLAYBOOK_REPORTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "playbook.cli", "report"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("playbook: report: no Allure results at ")


@pytest.mark.sandbox
def test_report_open_serves_on_loopback(generated: Generated, tmp_path: Path) -> None:
    results = tmp_path / "allure-results"
    shutil.copytree(generated.results, results)
    env = {**os.environ, "PLAYBOOK_REPORTS": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "playbook.cli", "report", "--open"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Allure report (") and "allure-report/index.html" in first
        serving = proc.stdout.readline()
        m = re.match(r"serving the report at (http://127\.0\.0\.1:\d+/) - Ctrl-C to stop",
                     serving)
        assert m, serving
        resp = httpx.get(m.group(1), timeout=5)
        assert resp.status_code == 200 and "<html" in resp.text.lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
