"""The sandbox's monitoring: Prometheus, Alertmanager (Debian's binaries) and a webhook sink.

An addon of the supervisor (ADDONS). Everything runs as its children on 127.0.0.1 with its own
config and data under <state_dir>/monitoring, never the system services:
- Prometheus scrapes every backend pod (job security-dashboard-backend; the target list is a
  file_sd file rewritten whenever pods come and go), the front (/-/metrics), itself and
  Alertmanager, every second, and evaluates monitoring/rules every second.
- The rules are a rendered copy of monitoring/rules: every `for` and every range window is
  divided by TIME_SCALE (60: one production minute is one sandbox second; windows no shorter
  than MIN_WINDOW), so detection takes seconds. Thresholds, labels and annotations are as
  deployed.
- Alertmanager runs a rendered copy of monitoring/alertmanager.yml: the same routes, inhibit
  rules and templates; every receiver's URL points at the sink (PagerDuty:
  /pagerduty/<receiver>/v2/enqueue, Slack: /slack/<receiver>) and the timings are short.
- The sink (playbook/sandbox/sink.py) records what it receives; GET /received reads it back.

Prometheus's discovery hands new targets to its scrapers on a fixed 5 s tick (not configurable
in 2.42), so the first scrape comes about 6 s after it starts: `prestart` launches everything
before PostgreSQL and the pods, and `start` waits until every pod has been scraped, Prometheus
has found Alertmanager and the rules are loaded. The same tick delays a new pod's first
scrape by up to ~5-10 s. Until then up{} is absent by construction, so every sandbox alert is
silenced in Alertmanager during the start, and the silence expired once the pods are scraped:
the sink starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from playbook.probes.prometheus import parse_duration
from playbook.sandbox.state import write_json

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "monitoring"  # the deployable rules, alertmanager.yml and templates
TIME_SCALE = 60
MIN_WINDOW = 10.0  # seconds: ten 1 s scrapes; the sandbox's traffic is thin (~8 requests/s)
MIN_FOR = 1.0
SCRAPE_INTERVAL, SCRAPE_TIMEOUT, EVALUATION_INTERVAL = "1s", "800ms", "1s"
# Alertmanager timings in the sandbox (production: monitoring/alertmanager.yml).
ROUTE_TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
BACKEND_JOB = "security-dashboard-backend"
FRONT_JOB = "security-dashboard-front"
FRONT_METRICS_PATH = "/-/metrics"
SANDBOX_ROUTING_KEY = "sandbox-routing-key-0000000000000"  # dummy; the sink accepts anything
READY_TIMEOUT = 45.0

_RANGE = re.compile(r"\[(\w+)(:\w*)?\]")


def enabled(sup: Any) -> bool:
    p = sup.sb.ports
    return None not in (p.prometheus, p.alertmanager, p.sink)


# --- rendering ---------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scale(text: str, floor: float) -> str:
    return format_duration(max(floor, parse_duration(text) / TIME_SCALE))


def scale_expr(expr: str) -> str:
    """Every range window in a PromQL expression divided by TIME_SCALE ([5m] -> [5s])."""

    def sub(m: re.Match[str]) -> str:
        rng = scale(m.group(1), MIN_WINDOW)
        step = m.group(2) or ""
        if len(step) > 1:
            step = ":" + scale(step[1:], 1.0)
        return f"[{rng}{step}]"

    return _RANGE.sub(sub, expr)


def render_rules(src: Path, dst: Path) -> list[Path]:
    """monitoring/rules/*.yml with `for` and range windows scaled down, into dst."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    out = []
    for path in sorted(src.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc.get("groups", []):
            if "interval" in group:
                group["interval"] = EVALUATION_INTERVAL
            for rule in group.get("rules", []):
                rule["expr"] = scale_expr(rule["expr"])
                if "for" in rule:
                    rule["for"] = scale(rule["for"], MIN_FOR)
        target = dst / path.name
        target.write_text(f"# Rendered by playbook.sandbox.monitoring from {path}: every `for` "
                          f"and range window divided by {TIME_SCALE}.\n"
                          + yaml.safe_dump(doc, sort_keys=False, width=1000))
        out.append(target)
    return out


def render_alertmanager(src: Path, sink_url: str) -> dict[str, Any]:
    """monitoring/alertmanager.yml with the same routes, receivers at the sink, short timings."""
    doc = yaml.safe_load(src.read_text())
    doc["templates"] = [str((src.parent / t).resolve()) for t in doc.get("templates", [])]
    for key in [k for k in doc.get("global", {}) if k.endswith(("_url_file", "_key_file"))]:
        del doc["global"][key]

    def routes(route: dict[str, Any], root: bool) -> None:
        for key in ROUTE_TIMINGS:
            route.pop(key, None)
        if root:
            route.update(ROUTE_TIMINGS)
        for child in route.get("routes", []):
            routes(child, False)

    routes(doc["route"], True)
    for receiver in doc.get("receivers", []):
        name = receiver["name"]
        for cfg in receiver.get("pagerduty_configs", []):
            for key in ("routing_key_file", "service_key_file", "service_key"):
                cfg.pop(key, None)
            cfg["routing_key"] = SANDBOX_ROUTING_KEY
            cfg["url"] = f"{sink_url}/pagerduty/{name}/v2/enqueue"
        for cfg in receiver.get("slack_configs", []):
            cfg.pop("api_url_file", None)
            cfg["api_url"] = f"{sink_url}/slack/{name}"
        for cfg in receiver.get("webhook_configs", []):
            cfg.pop("url_file", None)
            cfg["url"] = f"{sink_url}/webhook/{name}"
        other = set(receiver) - {"name", "pagerduty_configs", "slack_configs", "webhook_configs"}
        if other:
            raise ValueError(f"{src}: receiver {name}: the sandbox cannot redirect "
                             f"{', '.join(sorted(other))} to its sink")
    return doc


def render_prometheus(sup: Any, mdir: Path) -> dict[str, Any]:
    p = sup.sb.ports
    local = "127.0.0.1"
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_TIMEOUT,
                   "evaluation_interval": EVALUATION_INTERVAL,
                   "external_labels": {"environment": "sandbox"}},
        "rule_files": [str(mdir / "rules" / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"{local}:{p.alertmanager}"]}]}]},
        "scrape_configs": [
            {"job_name": BACKEND_JOB, "file_sd_configs": [
                {"files": [str(mdir / "targets" / "backend.json")], "refresh_interval": "1s"}]},
            {"job_name": FRONT_JOB, "metrics_path": FRONT_METRICS_PATH,
             "static_configs": [{"targets": [f"{local}:{p.front}"]}]},
            {"job_name": "prometheus",
             "static_configs": [{"targets": [f"{local}:{p.prometheus}"]}]},
            {"job_name": "alertmanager",
             "static_configs": [{"targets": [f"{local}:{p.alertmanager}"]}]},
        ],
    }


def _listed(pod: Any) -> bool:
    """A pod is a target once its container has started (was ready once, or has restarted),
    like a pod with an IP in kubernetes_sd: ready or not after that, so a pod that cannot be
    scraped is up == 0 rather than gone. A pod still starting its first container is not a
    target yet (else a cold start would read as every replica down)."""
    return not pod.deleting and (pod.ready_since > 0 or pod.restart_count > 0)


def write_targets(sup: Any) -> None:
    """The backend's pods as file_sd targets (see _listed)."""
    from playbook.sandbox.supervisor import NAMESPACE

    groups = [{"targets": [f"127.0.0.1:{pod.port}"],
               "labels": {"pod": pod.name, "namespace": NAMESPACE, "version": pod.version}}
              for pod in sorted(sup.pods.values(), key=lambda p: p.slot) if _listed(pod)]
    write_json(sup.dir / "monitoring" / "targets" / "backend.json", groups)


# --- lifecycle -----------------------------------------------------------------------------------


async def prestart(sup: Any) -> None:
    """Render the configs and start the sink, Alertmanager and Prometheus (not waiting)."""
    if not enabled(sup) or "prometheus" in sup.children:
        return
    sup.monitoring_started = time.monotonic()
    p = sup.sb.ports
    mdir = sup.dir / "monitoring"
    for data in ("prometheus-data", "alertmanager-data"):
        shutil.rmtree(mdir / data, ignore_errors=True)
    (mdir / "targets").mkdir(parents=True, exist_ok=True)
    render_rules(SOURCE / "rules", mdir / "rules")
    sink_url = f"http://127.0.0.1:{p.sink}"
    (mdir / "alertmanager.yml").write_text(yaml.safe_dump(
        render_alertmanager(SOURCE / "alertmanager.yml", sink_url), sort_keys=False, width=1000))
    (mdir / "prometheus.yml").write_text(yaml.safe_dump(render_prometheus(sup, mdir),
                                                        sort_keys=False))
    write_targets(sup)
    sup.on_publish.append(write_targets)
    sup.children["sink"] = sup.spawn("sink", [
        sys.executable, "-m", "uvicorn",
        "playbook.sandbox.sink:app", "--host", "127.0.0.1", "--port", str(p.sink),
        "--no-access-log", "--log-level", "warning",
    ], env={"SINK_LOG": str(mdir / "notifications.jsonl"), "PYTHONPATH": str(ROOT)})
    sup.children["alertmanager"] = sup.spawn("alertmanager", [
        "/usr/bin/prometheus-alertmanager", f"--config.file={mdir / 'alertmanager.yml'}",
        f"--storage.path={mdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{p.alertmanager}",
        f"--web.external-url=http://127.0.0.1:{p.alertmanager}/",
        "--cluster.listen-address=",  # else it gossips on 0.0.0.0:9094
    ])
    sup.children["prometheus"] = sup.spawn("prometheus", [
        "/usr/bin/prometheus", f"--config.file={mdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={mdir / 'prometheus-data'}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{p.prometheus}",
        f"--web.external-url=http://127.0.0.1:{p.prometheus}/",
        "--web.enable-lifecycle",  # POST /-/reload after a rule change (tests, game days)
    ])
    sup.monitoring_silence = asyncio.create_task(_silence_startup(sup))
    # Described at once, so that state.json lists their pids even if the supervisor dies
    # before `start` (then `sandbox down` still finds them).
    urls = _urls(sup)
    sup.extra_components["prometheus"] = {
        "url": urls["prometheus"], "port": p.prometheus, "config": str(mdir / "prometheus.yml"),
        "rules": str(mdir / "rules"), "time_scale": TIME_SCALE}
    sup.extra_components["alertmanager"] = {"url": urls["alertmanager"], "port": p.alertmanager,
                                            "config": str(mdir / "alertmanager.yml")}
    sup.extra_components["sink"] = {"url": urls["sink"], "port": p.sink,
                                    "log": str(mdir / "notifications.jsonl")}


async def _silence_startup(sup: Any) -> str | None:
    """Silence every sandbox alert while the sandbox starts: until Prometheus has scraped the
    pods, up{} is absent (BackendAbsent) by construction, and that is no incident. `start`
    expires the silence; Alertmanager then sends nothing for alerts it never notified."""
    url = _urls(sup)["alertmanager"]
    now = time.time()
    silence = {"matchers": [{"name": "environment", "value": "sandbox", "isRegex": False}],
               "startsAt": _iso(now), "endsAt": _iso(now + 600), "createdBy": "sandbox",
               "comment": "sandbox cold start: the pods are not scraped yet"}
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                r = await client.post(url + "/api/v2/silences", json=silence)
                if r.status_code == 200:
                    return str(r.json()["silenceID"])
            await asyncio.sleep(0.1)
    return None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


async def _quiet(client: httpx.AsyncClient, prom: str) -> bool:
    """No startup artefact left: no Backend* alert pending or firing."""
    try:
        alerts = (await client.get(prom + "/api/v1/alerts")).json()["data"]["alerts"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return not [a for a in alerts if a["labels"].get("alertname", "").startswith("Backend")]


def _urls(sup: Any) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{getattr(sup.sb.ports, name)}"
            for name in ("prometheus", "alertmanager", "sink")}


async def start(sup: Any) -> None:
    """Wait until the monitoring chain works: ready, every pod scraped, Alertmanager found."""
    if not enabled(sup):
        return
    entered = time.monotonic()
    await prestart(sup)  # a no-op when the supervisor already called it
    urls = _urls(sup)
    async with httpx.AsyncClient(timeout=1.0) as client:
        for name in ("sink", "alertmanager", "prometheus"):
            await _until(sup, name, lambda n=name: _ok(client, urls[n] + "/-/ready"))
        await _until(sup, "prometheus", lambda: _scraped(client, urls["prometheus"], sup),
                     what="every pod scraped and Alertmanager discovered")
        silence = await sup.monitoring_silence
        with contextlib.suppress(RuntimeError):  # a real outage at start: it will page
            await _until(sup, "prometheus", lambda: _quiet(client, urls["prometheus"]),
                         what="clear of startup alerts", timeout=10)
        if silence:
            await client.delete(f"{urls['alertmanager']}/api/v2/silence/{silence}")
    sup.extra_components["prometheus"].update({
        # From its start to every pod scraped; and how long `start` held up the sandbox.
        "ready_seconds": round(time.monotonic() - sup.monitoring_started, 2),
        "added_seconds": round(time.monotonic() - entered, 2)})


async def _ok(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _scraped(client: httpx.AsyncClient, prom: str, sup: Any) -> bool:
    try:
        targets = (await client.get(prom + "/api/v1/targets?state=active")).json()["data"]
        ams = (await client.get(prom + "/api/v1/alertmanagers")).json()["data"]
        rules = (await client.get(prom + "/api/v1/rules")).json()["data"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    backend = [t for t in targets["activeTargets"] if t["labels"].get("job") == BACKEND_JOB]
    pods = {f"127.0.0.1:{pod.port}" for pod in sup.pods.values() if _listed(pod)}
    scraped = {t["labels"].get("instance") for t in backend if t.get("health") == "up"}
    return bool(pods) and pods <= scraped and bool(ams.get("activeAlertmanagers")) and bool(
        rules.get("groups"))


async def _until(sup: Any, name: str, probe: Any, what: str = "ready",
                 timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await probe():
            return
        proc = sup.children.get(name)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}; "
                               f"see {sup.logs / (name + '.log')}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name}: not {what} within {timeout:.0f} s; "
                       f"see {sup.logs / (name + '.log')}")
