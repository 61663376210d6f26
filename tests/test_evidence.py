"""The evidence bundle (playbook 5.1/5.2/7.2) against the sandbox: what it collects, that no
planted secret survives in any file, that a failing source is recorded without aborting the
rest, and the scheduled run's collection on a P0/P1 failure (with the Allure attachment)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from playbook import config, evidence
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from tests.conftest import ROOT, run_suite
from tests.fake_github import TOKEN, fake_github, github_section, run

NS = "security-dashboard"
INCIDENT = "INC-202611261830"
# Known secrets planted in the sandbox (configmap data, log lines) and in the environment.
PLANTED_PASSWORD = "Pl4nted-DB-Passw0rd-771"
# Built from parts so that no secret scanner mistakes the fixtures for real ones.
PLANTED_HOOK = "https://hooks.slack.com/services/" + "T0PLANT/B0PLANT/pl4ntedW3bh00kS3cret"
PLANTED_AWS = "AKIA" + "PLANTED000000XYZ"
PLANTED_AWS_SECRET = "pl4nted/AwsSecretKey+0123456789abcdefghij"
PLANTED_BEARER = "eyPl4ntedBearerToken.abc123def456"
PLANTED_CONN = "postgresql://admin:Pl4ntedConnPass@db.internal:5432/prod"
PLANTED_REDIS = "redis://:Pl4ntedRedisPass@cache.internal:6379/0"
PLANTED_API_KEY = "sk-pl4nted-api-key-000111222333"
SECRETS = [PLANTED_PASSWORD, PLANTED_HOOK, "pl4ntedW3bh00kS3cret", PLANTED_AWS,
           PLANTED_AWS_SECRET, PLANTED_BEARER, PLANTED_CONN, "Pl4ntedConnPass",
           "Pl4ntedRedisPass", PLANTED_API_KEY, TOKEN, "sandbox-only"]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("evidence"))
    try:
        _plant(box)
        yield box
    finally:
        stop_sandbox(box)


def _plant(sb: Sandbox) -> None:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(sb.dir / "kubeconfig"), context="sandbox",
                                client_configuration=cfg)
    with k8s.ApiClient(cfg) as api:
        k8s.CoreV1Api(api).patch_namespaced_config_map("security-dashboard-config", NS, {
            "data": {"DATABASE_PASSWORD": PLANTED_PASSWORD, "SLACK_WEBHOOK_URL": PLANTED_HOOK,
                     "NOTES": f"rotate aws_access_key_id={PLANTED_AWS} "
                              f"aws_secret_access_key={PLANTED_AWS_SECRET} soon",
                     "DATABASE_DSN": PLANTED_CONN, "CACHE": PLANTED_REDIS,
                     "X_API_KEY": PLANTED_API_KEY}})
    pod_url = f"http://127.0.0.1:{sb.pods()[0]['port']}"
    front = sb.profile.service.base_url
    with httpx.Client(timeout=5) as c:
        # Failed logins: some straight to a pod from "outside" addresses, one via the front;
        # usernames carrying secrets end up in the backend's authentication_failed lines.
        for user, where, xff in [
                ("admin", pod_url, "203.0.113.7"), ("admin", pod_url, "203.0.113.7"),
                (f"Authorization: Bearer {PLANTED_BEARER}", pod_url, "198.51.100.23"),
                (PLANTED_CONN, pod_url, "198.51.100.23"), ("root", front, None)]:
            headers = {"x-forwarded-for": xff} if xff else {}
            r = c.post(f"{where}/api/auth/login", json={"username": user, "password": "x"},
                       headers=headers)
            assert r.status_code == 401
    # Prometheus needs two scrapes before a rate() has data: wait for it (bounded).
    prom = sb.profile.prometheus
    assert prom is not None
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=2) as c:
        while time.monotonic() < deadline:
            answers = [c.get(f"{prom.url}/api/v1/query", params={"query": q}).json()
                       for q in ("rate(http_requests_total[10s])",
                                 "rate(process_cpu_seconds_total[10s])")]
            if all(a["data"]["result"] for a in answers):
                break
            time.sleep(0.5)


def _profile(sb: Sandbox, tmp: Path, **sections: Any) -> Path:
    raw = yaml.safe_load(sb.path.read_text())
    for name, values in sections.items():
        raw[name] = values
    path = tmp / "profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _env(**extra: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "SLACK_INCIDENT_WEBHOOK": PLANTED_HOOK, "GITHUB_TOKEN": TOKEN, **extra}


def _no_secret_in(directory: Path) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                texts = {n: z.read(n).decode() for n in z.namelist()}
        else:
            texts = {path.name: path.read_text()}
        for name, text in texts.items():
            for secret in SECRETS:
                assert secret not in text, f"{secret!r} found in {name}"


@pytest.mark.sandbox
def test_bundle_collects_everything_and_redacts(sb: Sandbox, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in _env().items():
        monkeypatch.setenv(k, v)
    with fake_github([run(7, "failure", 10), run(6, "success", 300)]) as gh:
        path = _profile(sb, tmp_path, github=github_section(gh.url, "${GITHUB_TOKEN}"))
        profile = config.load(str(path))
        bundle = evidence.collect(profile, INCIDENT, hours=1, reports=tmp_path / "reports")
    d = tmp_path / "reports" / "incidents" / INCIDENT
    assert bundle.directory == d
    status = {s.name: s.status for s in bundle.sources}
    assert status == {
        "kubernetes objects": "collected", "events": "collected", "backend logs": "collected",
        "security events": "collected", "frontend logs": "empty",
        'metrics rate(http_requests_total[10s])': "collected",
        'metrics rate(http_requests_total{status=~"5.."}[10s])': status[
            'metrics rate(http_requests_total{status=~"5.."}[10s])'],
        'metrics up{job="security-dashboard-backend"}': "collected",
        "resource usage": "collected", "alerts": status["alerts"],
        "recent deploys": "collected", "cloudtrail": "collected"}
    assert not bundle.failed

    state = yaml.safe_load((d / "system-state.yaml").read_text())
    kinds = {o["kind"] for o in state["items"]}
    assert {"Pod", "Deployment", "ReplicaSet", "Service", "Endpoints", "ConfigMap", "Event",
            "Rollout"} <= kinds
    cm = next(o for o in state["items"] if o["kind"] == "ConfigMap")
    assert cm["data"]["DATABASE_PASSWORD"] == "***" and cm["data"]["MAINTENANCE_MODE"] == "false"
    assert cm["data"]["DATABASE_DSN"] == "***"
    assert cm["data"]["CACHE"] == "redis://:***@cache.internal:6379/0"

    app_log = (d / "application.log").read_text()
    assert "[pod/security-dashboard-backend-" in app_log and "starting" in app_log
    assert "no pod matches app=security-dashboard-frontend" in (d / "frontend.log").read_text()
    sec = (d / "security-events.log").read_text()
    assert sec.count('"event": "authentication_failed"') == 5
    sources = json.loads((d / "security-sources.json").read_text())["sources"]
    by_addr = {s["address"]: s for s in sources}
    assert set(by_addr) == {"203.0.113.7", "198.51.100.23", "127.0.0.1"}
    assert by_addr["203.0.113.7"]["kinds"] == {"authentication_failed": 2}
    assert by_addr["198.51.100.23"]["events"] == 2

    up = json.loads((d / "metrics-uptime.json").read_text())
    assert up["status"] == "success" and up["query"] == 'up{job="security-dashboard-backend"}'
    assert up["data"]["resultType"] == "matrix" and up["data"]["result"]
    assert json.loads((d / "deploys.json").read_text())[0]["run_number"] == 7
    assert isinstance(json.loads((d / "cloudtrail.json").read_text()), list)
    top = (d / "resource-usage.txt").read_text().splitlines()
    assert top[0].split() == ["INSTANCE", "CPU(cores)", "MEMORY(MiB)"] and len(top) >= 3
    events_log = (d / "events.log").read_text()
    assert events_log.startswith("LAST SEEN (UTC)")

    timeline = (d / "timeline.md").read_text()
    assert timeline.startswith(f"# Incident Timeline - {INCIDENT}\n")
    assert "- **2026-11-26 18:30:00Z** - Incident declared (from the incident id)" in timeline
    assert "deploy run #7 failure at " in timeline
    assert "failed logins (authentication_failed) from 3 source addresses" in timeline
    agenda = (d / "pir-agenda.md").read_text()
    assert agenda.startswith(f"📅 Post-Incident Review - {INCIDENT}\nDate: ")
    assert "1. Timeline review" in agenda and "5. Process improvements" in agenda
    assert "from 3 source address(es)" in agenda
    index = json.loads((d / "sources.json").read_text())
    assert index["incident"] == INCIDENT and len(index["sources"]) == len(bundle.sources)
    assert "| frontend logs | empty | frontend.log |" in (d / "README.md").read_text()

    bundle.zip()
    _no_secret_in(tmp_path / "reports")


@pytest.mark.sandbox
def test_failing_sources_are_recorded_not_fatal(sb: Sandbox, tmp_path: Path) -> None:
    """Prometheus down, GitHub refusing the token, a Kubernetes identity without rights: the
    bundle is still written, each failure with its sentence; the CLI exits 1."""
    raw = yaml.safe_load(sb.path.read_text())
    raw["prometheus"]["url"] = "http://127.0.0.1:9"
    raw["kubernetes"]["context"] = "sandbox-forbidden"
    with fake_github([]) as gh:
        raw["github"] = github_section(gh.url, "ghp_notTheRightToken000000000000000000")
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        proc = subprocess.run(
            [sys.executable, "-m", "playbook.cli", "--env", str(path), "evidence",
             "--incident", "INC-broken-1", "--hours", "0.5"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**_env(), "PLAYBOOK_REPORTS": str(tmp_path / "reports")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    d = tmp_path / "reports" / "incidents" / "INC-broken-1"
    sources = {s["name"]: s for s in json.loads((d / "sources.json").read_text())["sources"]}
    assert sources["kubernetes objects"]["status"] == "failed"
    assert "403 Forbidden" in sources["kubernetes objects"]["detail"]
    assert sources["backend logs"]["status"] == "failed"
    assert sources["metrics rate(http_requests_total[10s])"]["status"] == "failed"
    assert "127.0.0.1:9" in sources["metrics rate(http_requests_total[10s])"]["detail"]
    assert sources["recent deploys"]["detail"].endswith(
        "401 Unauthorized (Bad credentials) - the token in GITHUB_TOKEN is wrong or expired")
    assert sources["cloudtrail"]["status"] == "collected"
    assert (d / "timeline.md").exists() and (d / "pir-agenda.md").exists()
    assert "(no firing alert or Warning event was collected)" in (d / "timeline.md").read_text()
    assert "  failed    kubernetes objects - " in proc.stdout
    assert "ghp_notTheRightToken" not in proc.stdout + json.dumps(sources)


@pytest.mark.unit
def test_bad_incident_id_is_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "playbook.cli", "evidence", "--incident",
                           "../../etc"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PLAYBOOK_REPORTS": str(tmp_path)})
    assert proc.returncode == 2
    assert "expected an id like INC-202611261830" in proc.stderr


@pytest.mark.sandbox
def test_scheduled_run_collects_on_p1_failure(sb: Sandbox, tmp_path: Path) -> None:
    """--evidence-on-failure: a P1 check fails (a readiness-breaking fault is not needed: a
    pod's readiness is enough) -> the bundle is collected at session end and attached to
    Allure; a healthy run collects nothing."""
    healthy = run_suite(sb.path, "checks/test_readiness.py", tmp=tmp_path / "ok",
                        extra=["--evidence-on-failure", "--incident", "INC-sched-ok"],
                        env=_env())
    assert healthy.returncode == 0, healthy.output
    assert not (tmp_path / "ok" / "reports" / "incidents").exists()

    # The database stopped: /api/ready fails (P1 or worse).
    raw = yaml.safe_load(sb.path.read_text())
    raw["service"]["base_url"] = "http://127.0.0.1:9"  # the service unreachable: P0
    path = tmp_path / "down.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    down = run_suite(path, "checks/test_readiness.py", tmp=tmp_path / "down",
                     extra=["--evidence-on-failure", "--incident", "INC-sched-down"],
                     env=_env())
    assert down.returncode == 1 and down.verdict["verdict"] in ("P0", "P1"), down.output
    d = tmp_path / "down" / "reports" / "incidents" / "INC-sched-down"
    assert (d / "timeline.md").exists() and (d / "system-state.yaml").exists()
    failed = json.loads((d / "failed-checks.json").read_text())
    assert failed and failed[0]["test"].startswith("checks/test_readiness.py::")
    assert f"evidence: {d}" in down.output
    results = [json.loads(p.read_text()) for p in down.allure.glob("*-result.json")]
    bundle_result = next(r for r in results if r["name"] == "Evidence bundle INC-sched-down")
    names = {a["name"] for a in bundle_result["attachments"]}
    assert {"INC-sched-down.zip", "timeline.md", "sources.json"} <= names
    for a in bundle_result["attachments"]:
        assert (down.allure / a["source"]).exists()
    _no_secret_in(tmp_path / "down" / "reports")
