"""The incident evidence bundle (playbook 5.1 Data Collection) with the 5.2 timeline and the 7.2
review agenda, collected through the APIs - the same clients and profile fields as the checks,
never shell commands - into reports/incidents/INC-.../:

    system-state.yaml     every object of the namespace (pods, deployments, replicasets,
                          services, endpoints, configmaps, events, Argo rollouts, network
                          policies) as YAML
    events.log            the namespace's events, oldest first
    application.log       backend pod logs of the last N hours (pods/log, --prefix style)
    frontend.log          frontend pod logs (or why there are none)
    security-events.log   backend log lines matching failed|unauthorized|breach|attack and the
    security-sources.json `authentication_failed` events; the source addresses involved
    metrics-requests.json / metrics-errors.json / metrics-uptime.json   query_range exports
    alerts.json           Prometheus' active alerts
    resource-usage.txt    `kubectl top pods` from the replicas' process metrics
    deploys.json          the production deploy workflow's last runs (GitHub, when configured)
    cloudtrail.json       CloudTrail write events of the last N hours
    timeline.md           5.2, filled from what was collected
    pir-agenda.md         7.2
    sources.json, README.md   what was collected, what failed and why (one sentence each)

A source that fails is recorded and the rest is still collected. Every file goes through
playbook.secrets before it is written: text is sanitized (no control bytes or terminal escape
sequences) and redacted - the profile's secrets (database URL, webhook URL, routing key,
tokens) and anything shaped like one (Authorization headers, bearer tokens, URL passwords,
webhook URLs, AWS keys, key=value pairs whose key names a secret). Kubernetes Secrets are never
read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from playbook import config, paths, queries
from playbook.clients import Clients, SectionMissing
from playbook.secrets import REDACTED, REDACTOR, Redactor, sanitize

STATE_KINDS = ("pods", "deployments", "replicasets", "services", "endpoints", "configmaps",
               "events", "rollouts", "networkpolicies")
SECURITY_LINE = re.compile(r"failed|unauthorized|breach|attack", re.I)
SECURITY_EVENTS = ("authentication_failed", "unauthorized_request", "forbidden_request")


# --- the bundle ------------------------------------------------------------------------------


@dataclass
class Source:
    name: str
    status: str  # collected | empty | skipped | failed
    files: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class Bundle:
    incident: str
    directory: Path
    hours: float
    started: dt.datetime
    redact: Redactor = REDACTOR
    sources: list[Source] = field(default_factory=list)
    # Collected facts the timeline is built from: (time, what)
    moments: list[tuple[dt.datetime, str]] = field(default_factory=list)
    first_alert: tuple[dt.datetime, str] | None = None
    security: dict[str, Any] = field(default_factory=dict)

    def write(self, name: str, content: Any) -> str:
        """Write one file of the bundle, redacted: text sanitized (what targets said may hold
        terminal escapes), other content as JSON (YAML for a .yaml name), its strings redacted
        before serialising, the result once more."""
        if isinstance(content, str):
            text = self.redact(sanitize(content, limit=None))
        elif name.endswith(".yaml"):
            clean = self.redact.data(json.loads(json.dumps(content, default=str)))
            text = yaml.safe_dump(clean, sort_keys=False)
            scrubbed = self.redact(text)
            # The text pass must not break the YAML; the data pass has redacted already.
            with contextlib.suppress(yaml.YAMLError):
                text = scrubbed if yaml.safe_load(scrubbed) is not None else text
        else:
            clean = self.redact.data(json.loads(json.dumps(content, default=str)))
            text = self.redact(json.dumps(clean, indent=2) + "\n")
        (self.directory / name).write_text(text)
        return name

    def record(self, name: str, status: str, files: list[str] | None = None,
               detail: str = "") -> None:
        self.sources.append(Source(name, status, list(files or []),
                                   self.redact(sanitize(detail, keep_newlines=False))))

    @property
    def failed(self) -> list[Source]:
        return [s for s in self.sources if s.status == "failed"]

    def zip(self) -> Path:
        path = self.directory.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(self.directory.iterdir()):
                z.write(f, f"{self.directory.name}/{f.name}")
        return path


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _hhmm(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def incident_time(incident: str) -> dt.datetime | None:
    """INC-202611261830 -> 2026-11-26 18:30 UTC (the playbook's `INC-$(date +%Y%m%d%H%M)`)."""
    m = re.fullmatch(r"INC-(\d{8})-?(\d{4})(?:\D.*)?", incident)
    if not m:
        return None
    try:
        return dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M").replace(
            tzinfo=dt.UTC)
    except ValueError:
        return None


def _guard(bundle: Bundle, name: str, fn: Callable[[], None]) -> None:
    """Run one source; an unexpected exception is recorded as its failure, not raised."""
    try:
        fn()
    except Exception as e:  # one broken source must not cost the others
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        bundle.record(name, "failed", detail=f"{type(e).__name__}: {text}")


def collect(profile: config.Profile, incident: str, hours: float | None = None,
            reports: Path | None = None, failures: list[dict[str, str]] | None = None,
            now: dt.datetime | None = None) -> Bundle:
    """Collect the bundle into <reports>/incidents/<incident>/ and return what happened."""
    settings = profile.evidence or config.Evidence()
    hours = hours if hours is not None else settings.hours
    now = now or dt.datetime.now(dt.UTC)
    directory = paths.incident(incident, reports)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file():
            old.unlink()
    bundle = Bundle(incident, directory, hours, now)

    with Clients(profile) as clients:
        _guard(bundle, "kubernetes", lambda: _kubernetes(bundle, clients, settings))
        _guard(bundle, "prometheus", lambda: _prometheus(bundle, clients, settings))
        _guard(bundle, "github", lambda: _github(bundle, clients))
        _guard(bundle, "cloudtrail", lambda: _cloudtrail(bundle, clients))
    if failures:
        bundle.write("failed-checks.json", failures)
        bundle.record("failed checks", "collected", ["failed-checks.json"],
                      f"{len(failures)} failed check(s) of the run that triggered the bundle")
    _timeline(bundle, failures or [])
    _agenda(bundle, failures or [])
    _index(bundle, profile)
    return bundle


# --- Kubernetes ------------------------------------------------------------------------------


def _kubernetes(bundle: Bundle, clients: Clients, settings: config.Evidence) -> None:
    try:
        kube = clients.kube
    except SectionMissing as e:
        bundle.record("kubernetes", "skipped", detail=str(e))
        return
    from kubernetes import client as k8s

    _state(bundle, kube, k8s)
    limit = settings.log_bytes_per_pod
    _logs(bundle, kube, k8s, "backend logs", "application.log", kube.section.selector, limit)
    _logs(bundle, kube, k8s, "frontend logs", "frontend.log", settings.frontend_selector, limit)


def _state(bundle: Bundle, kube: Any, k8s: Any) -> None:
    ns = kube.ns
    calls: dict[str, Callable[[Any, Any], Any]] = {
        "pods": lambda a, t: k8s.CoreV1Api(a).list_namespaced_pod(ns, _request_timeout=t),
        "deployments": lambda a, t: k8s.AppsV1Api(a).list_namespaced_deployment(
            ns, _request_timeout=t),
        "replicasets": lambda a, t: k8s.AppsV1Api(a).list_namespaced_replica_set(
            ns, _request_timeout=t),
        "services": lambda a, t: k8s.CoreV1Api(a).list_namespaced_service(
            ns, _request_timeout=t),
        "endpoints": lambda a, t: k8s.CoreV1Api(a).list_namespaced_endpoints(
            ns, _request_timeout=t),
        "configmaps": lambda a, t: k8s.CoreV1Api(a).list_namespaced_config_map(
            ns, _request_timeout=t),
        "events": lambda a, t: k8s.CoreV1Api(a).list_namespaced_event(ns, _request_timeout=t),
        "rollouts": lambda a, t: k8s.CustomObjectsApi(a).list_namespaced_custom_object(
            "argoproj.io", "v1alpha1", ns, "rollouts", _request_timeout=t),
        "networkpolicies": lambda a, t: k8s.NetworkingV1Api(
            a).list_namespaced_network_policy(ns, _request_timeout=t),
    }
    items: list[dict[str, Any]] = []
    problems, counts, events = [], {}, []
    for kind in STATE_KINDS:
        if kind == "rollouts" and not kube.section.rollout:
            continue
        result, error = kube.call(f"list {kind} in namespace {ns}", calls[kind])
        if error:
            if "(404" in error:  # a kind the cluster does not serve: nothing to collect
                counts[kind] = 0
                continue
            problems.append(f"{kind}: {error}")
            continue
        raw = result if isinstance(result, dict) else kube.api().sanitize_for_serialization(
            result)
        listed = raw.get("items") or []
        kind_name = {"pods": "Pod", "deployments": "Deployment", "replicasets": "ReplicaSet",
                     "services": "Service", "endpoints": "Endpoints", "configmaps": "ConfigMap",
                     "events": "Event", "rollouts": "Rollout",
                     "networkpolicies": "NetworkPolicy"}[kind]
        for obj in listed:
            obj.setdefault("kind", kind_name)
            obj.setdefault("apiVersion", raw.get("apiVersion", "v1"))
        counts[kind] = len(listed)
        items += listed
        if kind == "events":
            events = listed
    if not counts:
        bundle.record("kubernetes objects", "failed", detail=problems[0] if problems else "")
        bundle.record("events", "failed", detail=problems[0] if problems else "")
        return
    state = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
             "items": items}
    name = bundle.write("system-state.yaml", state)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    bundle.record("kubernetes objects", "failed" if problems else "collected", [name],
                  summary + (f"; not collected: {'; '.join(problems)}" if problems else ""))
    if "events" in counts:
        _events(bundle, events)


def _events(bundle: Bundle, events: list[dict[str, Any]]) -> None:
    rows = []
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for e in events:
        last = _parse_time(e.get("lastTimestamp") or e.get("eventTime")
                           or (e.get("metadata") or {}).get("creationTimestamp"))
        first = _parse_time(e.get("firstTimestamp")) or last
        obj = e.get("involvedObject") or {}
        what = f"{obj.get('kind', '')}/{obj.get('name', '')}"
        rows.append((last or epoch, first or epoch, e.get("type", ""), e.get("reason", ""),
                     what, " ".join(str(e.get("message") or "").split()), e.get("count") or 1))
    rows.sort(key=lambda r: r[0])
    lines = ["LAST SEEN (UTC)       TYPE     REASON                    OBJECT  MESSAGE"]
    for last, first, type_, reason, what, message, count in rows:
        times = f" (x{count})" if count > 1 else ""
        lines.append(f"{_hhmm(last):<21} {type_:<8} {reason:<25} {what}  {message}{times}")
        if type_ == "Warning" and first is not epoch:
            bundle.moments.append((first, f"Warning event {reason} on {what}: {message}"))
            if bundle.first_alert is None or first < bundle.first_alert[0]:
                bundle.first_alert = (first, f"Warning event {reason} on {what}")
        elif reason in ("RolloutUpdated", "RolloutCompleted", "RolloutAborted",
                        "ScalingReplicaSet") and last is not epoch:
            bundle.moments.append((last, f"{reason} on {what}: {message}"))
    name = bundle.write("events.log", "\n".join(lines) + "\n")
    bundle.record("events", "collected" if rows else "empty", [name],
                  f"{len(rows)} events" if rows else "the namespace has no events")


def _logs(bundle: Bundle, kube: Any, k8s: Any, label: str, filename: str,
          selector: str, limit_bytes: int) -> None:
    ns = kube.ns
    since = max(1, int(bundle.hours * 3600))
    pods, error = kube.call(f"list pods {selector} in namespace {ns}", lambda a, t: k8s.CoreV1Api(
        a).list_namespaced_pod(ns, label_selector=selector, _request_timeout=t))
    if error:
        name = bundle.write(filename, f"# {label}: not collected - {error}\n")
        bundle.record(label, "failed", [name], error)
        return
    if not pods.items:
        note = (f"# {label}: no pod matches {selector} in namespace {ns} - there are no "
                f"logs to collect (this environment runs no such pods)\n")
        name = bundle.write(filename, note)
        bundle.record(label, "empty", [name], note[2:].strip())
        return
    chunks, problems, lines_total = [], [], 0
    for pod in pods.items:
        pod_name = pod.metadata.name
        text, error = kube.call(
            f"read the log of pod {pod_name} in namespace {ns}",
            lambda a, t, p=pod_name: k8s.CoreV1Api(a).read_namespaced_pod_log(
                p, ns, since_seconds=since, timestamps=True, limit_bytes=limit_bytes,
                _request_timeout=t))
        if error:
            problems.append(error)
            chunks.append(f"[pod/{pod_name}] # log not collected: {error}\n")
            continue
        lines = (text or "").splitlines()
        lines_total += len(lines)
        chunks.append("".join(f"[pod/{pod_name}] {line}\n" for line in lines))
        if filename == "application.log":
            _security_lines(bundle, pod_name, lines)
    name = bundle.write(filename, "".join(chunks))
    detail = f"{lines_total} lines of the last {bundle.hours:g} h from {len(pods.items)} pods"
    bundle.record(label, "failed" if problems and len(problems) == len(pods.items) else
                  "collected", [name], detail + (f"; {'; '.join(problems)}" if problems else ""))
    if filename == "application.log":
        _security_files(bundle)


def _security_lines(bundle: Bundle, pod: str, lines: list[str]) -> None:
    sec = bundle.security.setdefault("lines", [])
    sources = bundle.security.setdefault("sources", {})
    for line in lines:
        stamp, _, rest = line.partition(" ")
        event = None
        if "{" in rest:
            try:
                event = json.loads(rest[rest.index("{"):])
            except ValueError:
                event = None
        kind = event.get("event") if isinstance(event, dict) else None
        if not (SECURITY_LINE.search(rest) or kind in SECURITY_EVENTS):
            continue
        sec.append(f"[pod/{pod}] {line}")
        if kind in SECURITY_EVENTS:
            address = str(event.get("source") or "unknown")
            s = sources.setdefault(address, {"address": address, "events": 0, "kinds": {},
                                              "users": set(), "first": None, "last": None})
            s["events"] += 1
            s["kinds"][kind] = s["kinds"].get(kind, 0) + 1
            if event.get("user"):
                s["users"].add(str(event["user"]))
            when = _parse_time(event.get("time")) or _parse_time(stamp)
            if when is not None:
                s["first"] = min(filter(None, (s["first"], when)))
                s["last"] = max(filter(None, (s["last"], when)))
            if kind == "authentication_failed" and when is not None:
                first = bundle.security.get("first_failed")
                if first is None or when < first:
                    bundle.security["first_failed"] = when


def _security_files(bundle: Bundle) -> None:
    lines = bundle.security.get("lines", [])
    sources = sorted(bundle.security.get("sources", {}).values(),
                     key=lambda s: -s["events"])
    header = (f"# Backend log lines of the last {bundle.hours:g} h matching failed|"
              "unauthorized|breach|attack or a security event (authentication_failed, "
              "unauthorized_request, forbidden_request)\n")
    a = bundle.write("security-events.log", header + "".join(f"{x}\n" for x in lines))
    b = bundle.write("security-sources.json", {"sources": [
        {**s, "users": sorted(s["users"]),
         "first": s["first"].isoformat().replace("+00:00", "Z") if s["first"] else None,
         "last": s["last"].isoformat().replace("+00:00", "Z") if s["last"] else None}
        for s in sources]})
    failed = sum(s["kinds"].get("authentication_failed", 0) for s in sources)
    bundle.record("security events", "collected" if lines else "empty", [a, b],
                  f"{len(lines)} matching lines, {failed} failed logins from "
                  f"{len(sources)} source addresses" if lines else "no matching log line")
    if failed and bundle.security.get("first_failed"):
        bundle.moments.append((bundle.security["first_failed"],
                               f"first of {failed} failed logins (authentication_failed) from "
                               f"{len(sources)} source addresses"))


# --- Prometheus ------------------------------------------------------------------------------


def _prometheus(bundle: Bundle, clients: Clients, settings: config.Evidence) -> None:
    try:
        prom = clients.prometheus
    except SectionMissing as e:
        bundle.record("prometheus", "skipped", detail=str(e))
        return
    cfg = prom.cfg
    end = bundle.started.timestamp()
    start = end - bundle.hours * 3600
    # Prometheus refuses more than 11,000 points per series: widen the step for long windows.
    step = max(settings.step_seconds, (end - start) / 10_000)
    for filename, promql in queries.evidence(cfg).items():
        obs = prom.data("/api/v1/query_range", {"query": promql, "start": f"{start:.3f}",
                                                "end": f"{end:.3f}", "step": f"{step:g}s"})
        if not obs.ok:
            name = bundle.write(filename, {"status": "error", "query": promql,
                                           "error": obs.problem()})
            bundle.record(f"metrics {promql}", "failed", [name], obs.problem() or "")
            continue
        result = (obs.body or {}).get("result") or []
        name = bundle.write(filename, {"status": "success", "query": promql,
                                       "start": start, "end": end, "step": step,
                                       "data": obs.body})
        bundle.record(f"metrics {promql}", "collected" if result else "empty", [name],
                      f"{len(result)} series" if result else
                      f"no data for {promql} over the last {bundle.hours:g} h")
    _resource_usage(bundle, prom, cfg)
    alerts = prom.alerts()
    if not alerts.ok:
        bundle.record("alerts", "failed", detail=alerts.problem() or "")
        return
    active = (alerts.body or {}).get("alerts") or []
    name = bundle.write("alerts.json", active)
    bundle.record("alerts", "collected" if active else "empty", [name],
                  f"{len(active)} active alerts" if active else "no active alert")
    for a in active:
        when = _parse_time(a.get("activeAt"))
        label = (a.get("labels") or {}).get("alertname", "?")
        sev = (a.get("labels") or {}).get("severity", "")
        if when is None:
            continue
        bundle.moments.append((when, f"alert {label} ({a.get('state')}"
                                     f"{', ' + sev if sev else ''}) active"))
        if a.get("state") == "firing" and (bundle.first_alert is None
                                           or when < bundle.first_alert[0]):
            bundle.first_alert = (when, f"alert {label} firing")


def _resource_usage(bundle: Bundle, prom: Any, cfg: config.Prometheus) -> None:
    """Playbook 5.1's `kubectl top pods`, from the replicas' own process metrics."""
    mem = prom.query(queries.memory(cfg.job))
    cpu = prom.query(queries.cpu(cfg.job, cfg.rate_window))
    problem = mem.problem()
    if problem:
        bundle.record("resource usage", "failed" if mem.error else "empty", detail=problem)
        return
    cores = {s.describe(): s.value for s in cpu.samples}
    lines = [f"{'INSTANCE':<40} {'CPU(cores)':>11} {'MEMORY(MiB)':>12}"]
    for s in sorted(mem.samples, key=lambda x: x.describe()):
        c = cores.get(s.describe())
        lines.append(f"{s.describe():<40} {'?' if c is None else f'{c:.3f}':>11} "
                     f"{s.value / 2**20:>12.1f}")
    name = bundle.write("resource-usage.txt", "\n".join(lines) + "\n")
    bundle.record("resource usage", "collected", [name], f"{len(mem.samples)} instances" + (
        f"; CPU unknown: {cpu.problem()}" if cpu.problem() else ""))


# --- GitHub and CloudTrail -------------------------------------------------------------------


def _github(bundle: Bundle, clients: Clients) -> None:
    profile = clients.profile
    gh = profile.github
    if gh is None or not gh.token:
        why = "no `github` section" if gh is None else "github.token is empty (GITHUB_TOKEN)"
        bundle.record("recent deploys", "skipped", detail=f"profile {profile.name}: {why}")
        return
    from playbook.probes.deploys import recent_runs

    obs = recent_runs(gh, clients.github)
    if obs.error:
        bundle.record("recent deploys", "failed", detail=obs.error)
        return
    name = bundle.write("deploys.json", [asdict(r) for r in obs.runs])
    since = bundle.started - dt.timedelta(hours=bundle.hours)
    for r in obs.runs:
        if r.created_at is not None and r.created_at >= since:
            bundle.moments.append((r.created_at, f"deploy {r.describe()}"))
    bundle.record("recent deploys", "collected" if obs.runs else "empty", [name],
                  f"{len(obs.runs)} runs of {gh.workflow}")


def _cloudtrail(bundle: Bundle, clients: Clients) -> None:
    try:
        aws = clients.aws
    except SectionMissing as e:
        bundle.record("cloudtrail", "skipped", detail=str(e))
        return
    from playbook.probes.aws import cloudtrail_changes

    obs, events = cloudtrail_changes(aws, bundle.hours, now=bundle.started)
    if obs.error:
        bundle.record("cloudtrail", "failed", detail=obs.error)
        return
    name = bundle.write("cloudtrail.json", [asdict(e) for e in events])
    for e in events:
        bundle.moments.append((_parse_time(e.time) or bundle.started,
                               f"AWS {e.event} by {e.user or '?'} on "
                               f"{', '.join(r for r in e.resources if r) or e.source}"))
    bundle.record("cloudtrail", "collected" if events else "empty", [name],
                  f"{len(events)} write events" if events else
                  f"no write event in the last {bundle.hours:g} h")


# --- timeline, agenda, index -----------------------------------------------------------------

TBD = "[to be filled]"


def _timeline(bundle: Bundle, failures: list[dict[str, str]]) -> None:
    declared = incident_time(bundle.incident)
    first = bundle.first_alert
    fixes = sorted(t for t, what in bundle.moments if what.startswith(
        ("RolloutCompleted", "deploy run")) and first is not None and t >= first[0])

    def at(t: dt.datetime | None) -> str:
        return _hhmm(t) if t else TBD

    key = [
        f"- **{at(first[0] if first else None)}** - First alert received"
        + (f" ({first[1]})" if first else " (no firing alert or Warning event was collected)"),
        f"- **{at(declared)}** - Incident declared" + (
            " (from the incident id)" if declared else ""),
        f"- **{TBD}** - Investigation started",
        f"- **{TBD}** - Root cause identified",
        f"- **{at(fixes[-1] if fixes else None)}** - Fix deployed" + (
            " (last rollout completed / deploy run after the first alert)" if fixes else ""),
        f"- **{TBD}** - Service restored (when `playbook gate --incident "
        f"{bundle.incident}` passed)",
    ]
    events = sorted(bundle.moments, key=lambda m: m[0])[-200:]
    lines = [f"# Incident Timeline - {bundle.incident}", "",
             f"Collected {_hhmm(bundle.started)} from the last {bundle.hours:g} h "
             "(see sources.json for what could not be collected).", "",
             "## Key Events", *key, "", "## Collected Events (UTC)"]
    lines += [f"- {_hhmm(t)} - {what}" for t, what in events] or ["- none collected"]
    if failures:
        lines += ["", "## Failed Checks (the run that collected this bundle)"]
        lines += [f"- {f['severity']} {f['test']}: {f['message']}" for f in failures]
    lines += ["", "## Root Cause", TBD, "", "## Contributing Factors", TBD, "",
              "## Lessons Learned", TBD, ""]
    bundle.write("timeline.md", "\n".join(lines))


def _agenda(bundle: Bundle, failures: list[dict[str, str]]) -> None:
    tomorrow = (bundle.started + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    failed = bundle.failed
    sec = bundle.security.get("sources") or {}
    lines = [f"📅 Post-Incident Review - {bundle.incident}", f"Date: {tomorrow}",
             "Time: 2:00 PM PST", "", "Agenda:",
             "1. Timeline review (timeline.md)",
             "2. Root cause analysis" + (
                 f" - start from the {len(failures)} failed check(s) in timeline.md"
                 if failures else ""),
             "3. Response effectiveness" + (
                 f" - first alert at {_hhmm(bundle.first_alert[0])}" if bundle.first_alert
                 else ""),
             "4. Action items",
             "5. Process improvements" + (
                 f" - evidence that could not be collected: "
                 f"{', '.join(s.name for s in failed)}" if failed else ""), ""]
    if sec:
        lines += [f"Security: failed logins or refused requests from {len(sec)} source "
                  "address(es) - see security-sources.json", ""]
    bundle.write("pir-agenda.md", "\n".join(lines))


def _index(bundle: Bundle, profile: config.Profile) -> None:
    bundle.write("sources.json", {"incident": bundle.incident, "profile": profile.name,
                                  "collected_at": _hhmm(bundle.started), "hours": bundle.hours,
                                  "sources": [asdict(s) for s in bundle.sources]})
    lines = [f"# Evidence bundle {bundle.incident}", "",
             f"Profile {profile.name}, collected {_hhmm(bundle.started)}, last "
             f"{bundle.hours:g} h, through the APIs (playbook 5.1). Secrets are redacted "
             f"({REDACTED}); Kubernetes Secrets are never read.", "",
             "| source | status | files | detail |", "|---|---|---|---|"]
    for s in bundle.sources:
        detail = s.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {s.name} | {s.status} | {', '.join(s.files)} | {detail} |")
    bundle.write("README.md", "\n".join(lines) + "\n")


def summary(bundle: Bundle) -> list[str]:
    out = [f"evidence: {bundle.directory}"]
    for s in bundle.sources:
        out.append(f"  {s.status:<9} {s.name}" + (f" - {s.detail}" if s.detail else ""))
    return out
