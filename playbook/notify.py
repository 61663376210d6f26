"""Slack and PagerDuty messages from the playbook's Communication Templates.

    Incident           what the messages are rendered from
    render(kind, ...)  the playbook's text: "declared", "update" or "resolved"
    messages(...)      what would be sent: a Slack incoming-webhook message ({"text": ...}) and,
                       per the escalation matrix, a PagerDuty Events API v2 trigger or resolve
    deliver(...)       one real send, with retries (429 honouring Retry-After, 5xx, timeouts)
    announce(...)      all of the above; a dry run unless send=True
    due_steps(...)     which escalation steps are due N minutes into an incident

The webhook URL and the routing key are secrets: they are never printed, logged or put in an
exception. Dry runs and errors show the URL as scheme://host/*** and the key as ***; every text
this module shows or logs (httpx's request lines too) passes playbook.secrets' redactor, which
learns them before anything is sent, and the services' answers are sanitized.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from playbook import config as profiles
from playbook import secrets
from playbook import severity as sev
from playbook.clients import Clients
from playbook.probes.http import http_client

log = logging.getLogger("playbook.notify")

KINDS = ("declared", "update", "resolved")
PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
ACTIONS = {  # the escalation matrix's wording
    "pagerduty": "PagerDuty alert",
    "slack": "Slack notification",
    "email": "Email notification",
    "phone": "Phone call",
    "executive_briefing": "Executive briefing",
    "status_review": "Status review",
}
PLAYBOOK_URL = "https://github.com/candlefish-ai/security-dashboard/blob/main/PLAYBOOK.md"
SERVICE = "Security Dashboard"
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,120}$")
_SUMMARY_MAX = 1024  # PagerDuty truncates payload.summary at 1024 characters
_SNIPPET = 200


class NotifyError(ValueError):
    """Bad input for a notification (unknown kind, bad incident id, bad escalation matrix)."""


# --- secrets ---------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """https://hooks.slack.com/services/T.../B.../... -> https://hooks.slack.com/***"""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return "***"
    # host[:port] as written (netloc minus any user:password@), even when the port is invalid
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}/***"


class _ScrubFilter(logging.Filter):
    """httpx logs every request's full URL at INFO: scrub the secrets out of those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = secrets.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _ScrubFilter()
for _name in ("httpx", "httpcore", "playbook.notify"):
    logging.getLogger(_name).addFilter(_FILTER)


# --- the incident and the playbook's templates -------------------------------------------------


@dataclass
class Incident:
    id: str
    severity: str = "P1"
    impact: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "Investigating"  # Investigating / Identified / Fixing / Monitoring
    commander: str = ""  # default: the profile's notify.incident_commander
    team: list[str] = field(default_factory=list)  # default: notify.response_team
    # progress update
    progress: str = ""
    eta: str = ""
    next_steps: str = ""
    # resolution
    resolved: datetime | None = None
    root_cause: str = ""
    fix_applied: str = ""
    validation: str = ""
    review_at: str = ""

    def __post_init__(self) -> None:
        if not _INCIDENT_ID.match(self.id or ""):
            raise NotifyError(f"incident id {self.id!r} is not usable: letters, digits and "
                              "._:- only, e.g. INC-20240501-1200")
        if self.severity not in sev.LEVELS:
            raise NotifyError(f"severity must be one of {', '.join(sev.LEVELS)}, "
                              f"got {self.severity!r}")
        if self.started.tzinfo is None:
            self.started = self.started.replace(tzinfo=UTC)
        if self.resolved is not None and self.resolved.tzinfo is None:
            self.resolved = self.resolved.replace(tzinfo=UTC)

    @property
    def dedup_key(self) -> str:
        """The same for every event of one incident, so PagerDuty folds a re-sent trigger into
        the open alert and a resolve closes it."""
        return f"security-dashboard/{self.id}"[:255]


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(start: datetime, end: datetime) -> str:
    minutes = max(0, round((end - start).total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _handle(name: str) -> str:
    name = name.strip()
    return name if name.startswith("@") else f"@{name}"


def _settings(cfg: profiles.Notify | None) -> profiles.Notify:
    return cfg if cfg is not None else profiles.Notify()


def render(kind: str, incident: Incident, cfg: profiles.Notify | None = None,
           now: datetime | None = None) -> str:
    """The playbook's template for `kind`, filled in. Lines and wording follow PLAYBOOK.md's
    Communication Templates; the declaration also names the incident id so that updates and
    the page can be matched to it."""
    cfg = _settings(cfg)
    now = now or datetime.now(UTC)
    inc = incident
    if kind == "declared":
        commander = _handle(inc.commander or cfg.incident_commander)
        team = " ".join(_handle(t) for t in (inc.team or cfg.response_team)) or "@oncall"
        lines = [
            f"🚨 INCIDENT DECLARED - {inc.severity} {SERVICE}",
            "",
            f"Incident ID: {inc.id}",
            f"Severity: {inc.severity}",
            f"Status: {inc.status}",
            f"Impact: {inc.impact or 'Under investigation'}",
            f"Affected Services: {SERVICE}",
            f"Started: {_stamp(inc.started)}",
            f"Incident Commander: {commander}",
            f"Response Team: {team}",
            "",
            f"Incident Bridge: {cfg.bridge_url or 'to be announced'}",
            f"Status Page: {cfg.status_page_url}",
            f"Runbook: {cfg.runbook_url or PLAYBOOK_URL}",
            "",
            "Next update in 15 minutes.",
        ]
    elif kind == "update":
        lines = [
            f"📋 INCIDENT UPDATE - {inc.id}",
            "",
            f"Status: {inc.status}",
            f"Duration: {_duration(inc.started, now)}",
            f"Progress: {inc.progress or 'Investigation ongoing'}",
            f"ETA to Resolution: {inc.eta or 'Not yet known'}",
            f"Next Steps: {inc.next_steps or 'Continue investigation'}",
            "",
            "Next update in 15 minutes or when status changes.",
        ]
    elif kind == "resolved":
        lines = [
            f"✅ INCIDENT RESOLVED - {inc.id}",
            "",
            f"Duration: {_duration(inc.started, inc.resolved or now)}",
            f"Root Cause: {inc.root_cause or 'Under analysis (see the post-incident review)'}",
            f"Fix Applied: {inc.fix_applied or 'See the incident timeline'}",
            f"Validation: {inc.validation or 'Post-fix validation gate passed'}",
            "",
            "Services are now fully operational.",
            f"Post-incident review scheduled for {inc.review_at or 'a date to be announced'}.",
            "",
            "Thank you to everyone who helped resolve this incident! 👏",
        ]
    else:
        raise NotifyError(f"unknown message kind {kind!r} (known: {', '.join(KINDS)})")
    return "\n".join(lines)


# --- the escalation matrix -----------------------------------------------------------------


def escalation(severity: str, cfg: profiles.Notify | None = None) -> list[profiles.EscalationStep]:
    """The matrix rows for a severity, in time order: the profile's, else the playbook's."""
    cfg = _settings(cfg)
    if severity not in sev.LEVELS:
        raise NotifyError(f"severity must be one of {', '.join(sev.LEVELS)}, got {severity!r}")
    bad = sorted(set(cfg.escalation) - set(sev.LEVELS))
    if bad:
        raise NotifyError(f"notify.escalation: unknown severity {bad[0]!r} "
                          f"(known: {', '.join(sev.LEVELS)})")
    steps = cfg.escalation.get(severity)
    if steps is None:
        steps = profiles.default_escalation()[severity]
    for i, step in enumerate(steps):
        if step.action not in ACTIONS:
            raise NotifyError(f"notify.escalation.{severity}[{i}].action: unknown action "
                              f"{step.action!r} (known: {', '.join(ACTIONS)})")
        if step.after_minutes < 0:
            raise NotifyError(f"notify.escalation.{severity}[{i}].after_minutes must be >= 0")
    return sorted(steps, key=lambda s: s.after_minutes)


def due_steps(severity: str, minutes_elapsed: float,
              cfg: profiles.Notify | None = None) -> list[profiles.EscalationStep]:
    """The steps that are due `minutes_elapsed` minutes after the incident started (each step
    is due from its time on: at +12 minutes a P0 has had its page, Slack and email)."""
    return [s for s in escalation(severity, cfg) if s.after_minutes <= minutes_elapsed]


def next_step(severity: str, minutes_elapsed: float,
              cfg: profiles.Notify | None = None) -> profiles.EscalationStep | None:
    later = [s for s in escalation(severity, cfg) if s.after_minutes > minutes_elapsed]
    return later[0] if later else None


def describe_step(step: profiles.EscalationStep) -> str:
    when = "Immediate" if step.after_minutes == 0 else f"+{_minutes(step.after_minutes)}"
    return f"{when}: {ACTIONS.get(step.action, step.action)} -> {step.stakeholder}"


def _minutes(m: float) -> str:
    if m >= 60 and m % 60 == 0:
        h = int(m // 60)
        return f"{h} hour{'s' if h > 1 else ''}"
    return f"{m:g} minutes"


def pages(severity: str, cfg: profiles.Notify | None = None) -> bool:
    """Does this severity page right away (a pagerduty step at +0)?"""
    return any(s.action == "pagerduty" and s.after_minutes == 0
               for s in escalation(severity, cfg))


# --- messages --------------------------------------------------------------------------------


@dataclass
class Message:
    channel: str  # "slack" or "pagerduty"
    url: str  # secret for Slack
    body: dict
    text: str = ""  # the human text, for the dry run
    configured: bool = True
    why_not: str = ""  # when not configured

    @property
    def label(self) -> str:
        if self.channel == "slack":
            return "Slack webhook"
        return f"PagerDuty Events API ({self.body.get('event_action', '?')})"

    def where(self) -> str:
        return redact_url(self.url) if self.channel == "slack" else self.url

    def redacted_body(self) -> dict:
        body = json.loads(json.dumps(self.body))
        if "routing_key" in body:
            body["routing_key"] = "***"
        return body

    def payload(self) -> bytes:
        """The exact bytes that are POSTed."""
        return encode(self.body)


def encode(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _source(cfg: profiles.Notify, base_url: str) -> str:
    if cfg.source:
        return cfg.source
    host = urlsplit(base_url).hostname if base_url else None
    return host or "security-dashboard"


def messages(kind: str, incident: Incident, cfg: profiles.Notify | None = None,
             base_url: str = "", environment: str = "",
             now: datetime | None = None) -> list[Message]:
    """What `kind` sends: always the Slack message; for a declaration a PagerDuty trigger when
    the severity pages (escalation matrix: a pagerduty step at +0); for a resolution a
    PagerDuty resolve with the same dedup key. Updates go to Slack only."""
    cfg = _settings(cfg)
    text = render(kind, incident, cfg, now)
    secrets.remember_url(cfg.slack_webhook_url, path_is_secret=True)
    secrets.remember(cfg.pagerduty_routing_key)
    out = [Message("slack", cfg.slack_webhook_url, {"text": text}, text,
                   configured=bool(cfg.slack_webhook_url.strip()),
                   why_not="notify.slack_webhook_url is empty (set SLACK_INCIDENT_WEBHOOK)")]
    pd_missing = "notify.pagerduty_routing_key is empty (set PAGERDUTY_ROUTING_KEY)"
    pd_ok = bool(cfg.pagerduty_routing_key.strip())
    if kind == "declared" and pages(incident.severity, cfg):
        summary = (f"[{incident.severity}] {incident.id} {SERVICE}: "
                   f"{incident.impact or 'incident declared'}")[:_SUMMARY_MAX]
        runbook = cfg.runbook_url or PLAYBOOK_URL
        started = incident.started.isoformat(timespec="seconds")
        details = {"incident_id": incident.id, "status": incident.status,
                   "impact": incident.impact, "started": started,
                   "incident_commander": _handle(incident.commander or cfg.incident_commander),
                   "bridge": cfg.bridge_url, "status_page": cfg.status_page_url,
                   "environment": environment}
        body = {
            "routing_key": cfg.pagerduty_routing_key,
            "event_action": "trigger",
            "dedup_key": incident.dedup_key,
            "payload": {
                "summary": summary,
                "source": _source(cfg, base_url),
                "severity": PD_SEVERITY[incident.severity],
                "timestamp": started,
                "component": "security-dashboard",
                "group": environment or "security-dashboard",
                "class": "incident",
                "custom_details": {k: v for k, v in details.items() if v},
            },
            "client": "security-dashboard-playbook",
            "links": [{"href": runbook, "text": "Incident response playbook"}],
        }
        out.append(Message("pagerduty", cfg.pagerduty_url, body, summary, pd_ok, pd_missing))
    elif kind == "resolved":
        body = {"routing_key": cfg.pagerduty_routing_key, "event_action": "resolve",
                "dedup_key": incident.dedup_key}
        out.append(Message("pagerduty", cfg.pagerduty_url, body,
                           f"resolve {incident.dedup_key}", pd_ok, pd_missing))
    return out


def dry_run_text(msgs: Iterable[Message]) -> str:
    """Exactly what would be sent, secrets redacted."""
    chunks = []
    for m in msgs:
        state = "" if m.configured else f"  [not configured: {m.why_not}]"
        body = encode(m.redacted_body()).decode()
        chunk = [f"--- dry run: would POST to {m.label} {m.where()}{state}",
                 f"body: {body}"]
        if m.channel == "slack":
            chunk += ["text:", *[f"  | {line}" for line in m.text.splitlines()]]
        chunks.append("\n".join(chunk))
    return secrets.redact("\n".join(chunks))


# --- delivery --------------------------------------------------------------------------------


@dataclass
class Delivery:
    channel: str
    ok: bool
    attempts: int
    status: int | None = None
    detail: str = ""  # the service's answer ("ok", "success", an error)
    problem: str = ""  # one sentence when not ok
    dedup_key: str = ""
    skipped: bool = False  # not configured: nothing was sent

    def line(self) -> str:
        if self.skipped:
            return f"{self.channel}: skipped - {self.problem}"
        if self.ok:
            extra = f", dedup_key {self.dedup_key}" if self.dedup_key else ""
            return (f"{self.channel}: delivered (HTTP {self.status}, {self.detail}{extra}; "
                    f"{self.attempts} attempt{'s' if self.attempts > 1 else ''})")
        return f"{self.channel}: FAILED - {self.problem}"


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap)


def _answer(resp: httpx.Response) -> tuple[str, dict | None]:
    """The service's answer: a snippet safe to show (no control bytes, bounded) and its
    JSON object, if it is one."""
    text = resp.text.strip()
    try:
        data = resp.json()
    except ValueError:
        data = None
    snippet = secrets.sanitize(text, _SNIPPET, keep_newlines=False) if text else "(empty body)"
    return snippet, (data if isinstance(data, dict) else None)


_SLACK_HINTS = {
    "invalid_payload": "the message is malformed",
    "no_service": "the webhook is disabled or the URL is wrong - check SLACK_INCIDENT_WEBHOOK",
    "no_team": "the workspace is gone - check SLACK_INCIDENT_WEBHOOK",
    "channel_not_found": "the webhook's channel no longer exists",
    "channel_is_archived": "the webhook's channel is archived",
    "action_prohibited": "an admin restricted posting to this channel",
    "posting_to_general_channel_denied": "only admins may post to that channel",
    "team_disabled": "the workspace is disabled",
    "invalid_token": "the webhook was revoked - create a new one",
}


def _judge(m: Message, resp: httpx.Response) -> tuple[bool, str, str]:
    """(ok, detail, why) for an answer that will not be retried."""
    snippet, data = _answer(resp)
    if m.channel == "slack":
        if resp.status_code == 200 and snippet == "ok":
            return True, "ok", ""
        hint = _SLACK_HINTS.get(snippet)
        why = f"HTTP {resp.status_code} {snippet!r}" + (f" ({hint})" if hint else "")
        return False, snippet, why
    status = (data or {}).get("status", "")
    if resp.status_code == 202 and status == "success":
        return True, "success", ""
    message = (data or {}).get("message", "")
    errors = (data or {}).get("errors") or []
    why = f"HTTP {resp.status_code} {status or snippet!r}"
    if message:
        why += f": {message}"
    if errors:
        why += f" ({'; '.join(str(e) for e in errors[:3])})"
    if resp.status_code in (401, 403) or "routing" in why.lower():
        why += " - check PAGERDUTY_ROUTING_KEY"
    return False, status or snippet, why


def deliver(m: Message, cfg: profiles.Notify | None = None,
            client: httpx.Client | None = None,
            sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send one message. Retries 429 (after Retry-After, capped), 5xx, timeouts and refused
    connections with exponential backoff, at most 1 + cfg.retries attempts; other answers are
    final. Never raises on network trouble, and no text it returns or logs holds a secret."""
    cfg = _settings(cfg)
    if m.channel == "slack":
        secrets.remember_url(m.url, path_is_secret=True)
    else:
        secrets.remember(m.body.get("routing_key", ""))
    if not m.configured:
        return Delivery(m.channel, False, 0, problem=m.why_not, skipped=True)
    where = f"{m.label} {m.where()}"
    attempts_max = 1 + max(0, cfg.retries)
    own = client is None
    if client is None:
        client = http_client(cfg.timeout)
    last = ""
    status: int | None = None
    try:
        for attempt in range(1, attempts_max + 1):
            wait = min(cfg.backoff_seconds * 2 ** (attempt - 1), cfg.max_backoff_seconds)
            wait *= random.uniform(0.8, 1.0)  # jitter: several runners must not retry in step
            try:
                resp = client.post(m.url, content=m.payload(),
                                   headers={"content-type": "application/json"})
            except httpx.TimeoutException:
                status, last = None, f"no answer within {cfg.timeout:g} s"
            except httpx.UnsupportedProtocol:
                problem = f"{where} is not an http(s) URL; nothing was sent."
                return Delivery(m.channel, False, attempt, problem=secrets.redact(problem))
            except httpx.TransportError as e:
                status, last = None, f"could not connect ({type(e).__name__})"
            except (httpx.InvalidURL, ValueError):
                # httpx puts the URL (the secret) in this message: never show it.
                problem = f"{where} is not a valid URL; nothing was sent."
                return Delivery(m.channel, False, attempt, problem=secrets.redact(problem))
            else:
                status = resp.status_code
                if status == 429 or status >= 500:
                    snippet, _ = _answer(resp)
                    last = f"HTTP {status} {snippet!r}"
                    if status == 429:
                        after = _retry_after(resp.headers.get("retry-after"),
                                             cfg.max_backoff_seconds)
                        if after is not None:
                            wait = after
                else:
                    ok, detail, why = _judge(m, resp)
                    if ok:
                        _, data = _answer(resp)
                        key = (data or {}).get("dedup_key", "") if m.channel == "pagerduty" else ""
                        log.info("%s: delivered on attempt %d (HTTP %d)", where, attempt, status)
                        return Delivery(m.channel, True, attempt, status, detail, dedup_key=key)
                    problem = secrets.redact(f"{where} rejected the message: {why}; not retried.")
                    log.warning("%s", problem)
                    return Delivery(m.channel, False, attempt, status, detail, problem)
            last = secrets.redact(last)
            if attempt < attempts_max:
                log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", where,
                            attempt, attempts_max, last, wait)
                sleep(wait)
    finally:
        if own:
            client.close()
    problem = secrets.redact(f"{where} did not take the message after {attempts_max} "
                            f"attempt{'s' if attempts_max > 1 else ''}; last: {last}.")
    log.error("%s", problem)
    return Delivery(m.channel, False, attempts_max, status, last, problem)


def announce(kind: str, incident: Incident, profile: profiles.Profile | None = None, *,
             send: bool = False, echo: Callable[[str], None] = print,
             now: datetime | None = None) -> list[Delivery]:
    """Render and, with send=True, deliver `kind` for an incident with the profile's notify
    settings (defaults when the profile has none). A dry run returns no deliveries."""
    cfg = profile.notify if profile is not None else None
    base_url = profile.service.base_url if profile is not None else ""
    env = profile.name if profile is not None else ""
    msgs = messages(kind, incident, cfg, base_url=base_url, environment=env, now=now)
    if not send:
        echo(dry_run_text(msgs))
        return []
    results = []
    clients = Clients(profile) if profile is not None else None  # else: deliver() builds one
    try:
        for m in msgs:
            d = deliver(m, cfg, client=clients.notify if clients else None)
            echo(secrets.redact(d.line()))
            results.append(d)
    finally:
        if clients is not None:
            clients.close()
    return results
