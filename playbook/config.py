"""Environment profiles: load a YAML profile, validate it strictly, interpolate ${SECRETS}.

A profile says where the service and its infrastructure are and which thresholds hold there.
Every section other than `name` and `service` is optional; a check whose section is absent is
skipped with that reason. Secrets never live in a profile: `${VAR}` (or `${VAR:-default}`) is
read from the environment when the profile is loaded. The loader tells playbook.secrets every
secret it met - the value of each ${VAR} whose name or key names a secret (GITHUB_TOKEN,
database.url ...) and of each such field of the profile - so that no output shows them.

Any problem - malformed YAML, an unknown key, a wrong type, a missing variable - raises
ProfileError with one line that names the file and the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from playbook import secrets

BUNDLED = Path(__file__).parent / "environments"
DEFAULT_ENV = "local"


class ProfileError(Exception):
    """A profile cannot be used. The message is one line naming the file and the key."""


# --- sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    health: str = "/api/health"
    ready: str = "/api/ready"
    status: str = "/api/status"


@dataclass(frozen=True)
class Slo:
    p95_seconds: float = 2.0  # playbook 1.3: P95 response time > 2 s is P1
    error_rate_p1: float = 0.10  # HTTP 5xx rate > 10 % is P1
    error_rate_p0: float = 0.50  # HTTP 5xx rate > 50 % is P0


@dataclass(frozen=True)
class RepeatedHealth:
    count: int = 10  # playbook 6.2: for i in {1..10}
    interval: float = 6.0  # sleep 6


@dataclass(frozen=True)
class Service:
    base_url: str
    endpoints: Endpoints = field(default_factory=Endpoints)
    timeout: float = 5.0  # seconds, for every request
    slo: Slo = field(default_factory=Slo)
    repeated_health: RepeatedHealth = field(default_factory=RepeatedHealth)
    tls_min_days: int = 14
    # Read endpoints a synthetic user browses (and that the status check may sample).
    read_endpoints: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True)
class Run:
    budget_seconds: float = 600.0  # the whole validation run; a hung target never hangs CI


@dataclass(frozen=True)
class SandboxPorts:
    front: int
    postgres: int
    redis: int
    replica_base: int  # replica n listens on replica_base + n (pods get fresh slots)
    kube: int | None = None  # the Kubernetes API
    aws: int | None = None  # moto's server
    prometheus: int | None = None
    alertmanager: int | None = None
    sink: int | None = None  # the webhook sink that records notifications


@dataclass(frozen=True)
class Sandbox:
    """Only in the local profile: how `playbook sandbox up` lays out the stand-in world."""

    ports: SandboxPorts
    state_dir: str = ".sandbox"
    replicas: int = 2
    version: str = "1.4.2"


@dataclass(frozen=True)
class LoadStage:
    """One step of a ramp (like k6's stages): reach `users` linearly over `duration` seconds."""

    duration: float
    users: int


@dataclass(frozen=True)
class LoadProfile:
    """One synthetic load run. Thresholds use k6's syntax (see playbook/load.py):
    {"http_req_duration": ["p(95)<2000"], "http_req_duration{name:/api/health}": [...]}."""

    users: int = 10
    spawn_rate: float = 10.0  # users started per second
    run_time: float = 60.0  # seconds; ignored when stages are given (their sum is the run)
    stages: list[LoadStage] = field(default_factory=list)
    thresholds: dict[str, list[str]] = field(default_factory=dict)
    abort_on_fail: bool = True  # k6's abortOnFail: stop as soon as a threshold is breached
    abort_grace_seconds: float = 10.0  # k6's delayAbortEval: no early abort before this

    def duration(self) -> float:
        return sum(s.duration for s in self.stages) if self.stages else self.run_time


@dataclass(frozen=True)
class LoadCapacity:
    """`playbook load --find-capacity`: users stepped up until a threshold breaks; bounded."""

    start_users: int = 5
    step_users: int = 5
    step_seconds: float = 30.0  # each step's length; its thresholds are judged on it alone
    max_users: int = 100
    max_steps: int = 20
    max_seconds: float = 600.0  # the whole search


@dataclass(frozen=True)
class Load:
    """`playbook load`: Locust runs of the synthetic user journeys, with pass/fail thresholds."""

    locustfile: str = "loadtests/locustfile.py"  # relative to the project, or absolute
    profiles: dict[str, LoadProfile] = field(default_factory=dict)
    # The journeys' HTTP client: the playbook's (playbook/loadclient.py, k6's CPU cost) or
    # Locust's FastHttpSession.
    client: typing.Literal["playbook", "fasthttp"] = "playbook"
    tls_verify: bool = True  # false: load an https:// target without checking its certificate
    ca_file: str = ""  # a CA bundle to trust for an https:// target instead of the system's
    capacity: LoadCapacity = field(default_factory=LoadCapacity)
    progress_every: float = 5.0  # seconds between live progress lines
    stop_timeout: float = 5.0  # seconds a stopping run may take before it is cut


@dataclass(frozen=True)
class AwsResources:
    """The playbook's AWS resources (3.2), by name."""

    eks_cluster: str = "security-dashboard-eks"
    rds_instance: str = "security-dashboard-prod"
    elasticache_cluster: str = "security-dashboard-redis"
    target_group: str = "security-dashboard-tg"
    # EC2 instances to check: those carrying this tag (the EKS nodes).
    ec2_tag_key: str = "eks:cluster-name"
    ec2_tag_value: str = "security-dashboard-eks"


@dataclass(frozen=True)
class Aws:
    """AWS access. Credentials come from boto3's chain (environment, ~/.aws, instance role),
    never from the profile; `endpoint_url` points every client elsewhere (the sandbox)."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    resources: AwsResources = field(default_factory=AwsResources)
    cloudtrail_lookback_hours: float = 2.0  # playbook 3.3: --start-time '2 hours ago'
    # Fewer healthy targets than this in the target group is a finding even when every
    # registered one is healthy (targets deregistered, or draining with no replacement).
    min_healthy_targets: int = 1
    connect_timeout: float = 3.0  # seconds, per API call
    read_timeout: float = 5.0
    max_attempts: int = 2  # botocore's retries (standard mode), first try included


@dataclass(frozen=True)
class Database:
    """The service's PostgreSQL. `url` comes from ${DATABASE_URL}; it holds the password, so
    the suite only ever shows it redacted."""

    url: str
    connection_limit: int = 50  # active connections above this are a finding
    lock_wait_limit_seconds: float = 5.0  # a session waiting longer on a lock is a finding
    replication_lag_limit_seconds: float = 10.0
    statement_timeout_seconds: float = 5.0  # for the suite's own queries
    connect_timeout: float = 3.0
    slow_statements: int = 10  # pg_stat_statements rows attached to the report


@dataclass(frozen=True)
class Kubernetes:
    """The cluster that runs the service. Credentials come from the kubeconfig (or the pod's
    service account when `in_cluster`), never from the profile."""

    namespace: str = "security-dashboard"
    kubeconfig: str | None = None  # a path; None: $KUBECONFIG or ~/.kube/config
    context: str | None = None  # None: the kubeconfig's current-context
    in_cluster: bool = False  # use the service account of the pod the suite runs in
    deployment: str = "security-dashboard-backend"
    rollout: str | None = "security-dashboard-backend"  # Argo Rollout; None: no Argo
    service: str = "security-dashboard-backend"
    configmap: str = "security-dashboard-config"
    selector: str = "app=security-dashboard-backend"  # the backend's pods (label selector)
    restart_budget: int = 3  # container restarts per pod before it is a finding
    warning_events_minutes: float = 30.0  # Warning events younger than this are findings
    timeout: float = 5.0  # seconds, per API request


DEFAULT_REQUIRED_ALERTS = ["BackendDown", "BackendAbsent", "HighErrorRate", "HighLatencyP95",
                           "HighMemoryUsage", "DatabaseConnectionsNearLimit"]


@dataclass(frozen=True)
class Prometheus:
    """Where the service's metrics are, and the thresholds the metrics checks hold them to
    (the 5xx and p95 thresholds are service.slo's)."""

    url: str
    bearer_token: str | None = None  # "${PROMETHEUS_TOKEN}"; sent as Authorization: Bearer
    timeout: float = 5.0  # seconds, per API request
    job: str = "security-dashboard-backend"  # the backend's scrape job (playbook: up{job=...})
    rate_window: str = "5m"  # range window of the rate() queries (playbook: [5m])
    db_connections_limit: int = 200  # the database's max_connections
    db_connections_warn_ratio: float = 0.8  # above this share of the limit: P2
    memory_limit_bytes: int = 536870912  # a replica's container memory limit (512 MiB)
    memory_warn_ratio: float = 0.9  # a replica above this share of its limit: P2
    # Alert rules that must be loaded (monitoring/rules); a missing one is a finding.
    required_alerts: list[str] = field(default_factory=lambda: list(DEFAULT_REQUIRED_ALERTS))


@dataclass(frozen=True)
class Alertmanager:
    """Where alerts are routed. `sink_url`: a receiver the suite can read back (the sandbox's
    webhook sink: GET /received); without it, delivery cannot be observed end to end."""

    url: str
    bearer_token: str | None = None  # "${ALERTMANAGER_TOKEN}"
    timeout: float = 5.0  # seconds, per API request
    sink_url: str | None = None
    delivery_timeout: float = 60.0  # seconds for a synthetic alert to reach the receiver
    synthetic_severity: str = "P0"  # routes the synthetic alert (P0: the pager)


@dataclass(frozen=True)
class EscalationStep:
    """One row of the playbook's escalation matrix: `after_minutes` after the incident started,
    `action` (pagerduty, slack, email, phone, executive_briefing, status_review) for
    `stakeholder`."""

    after_minutes: float
    action: str
    stakeholder: str


def default_escalation() -> dict[str, list[EscalationStep]]:
    """The playbook's Escalation Matrix (P0, P1). It gives none for P2/P3: there, Slack to the
    incident commander of 2.2 (on-call engineer for P2, any team member for P3)."""
    s = EscalationStep
    return {
        "P0": [s(0, "pagerduty", "On-call Engineer"), s(5, "slack", "Engineering Team"),
               s(10, "email", "Engineering Manager"), s(20, "phone", "Director of Engineering"),
               s(30, "executive_briefing", "CTO/CEO")],
        "P1": [s(0, "pagerduty", "On-call Engineer"), s(15, "slack", "Engineering Team"),
               s(60, "email", "Engineering Manager"),
               s(240, "status_review", "Director of Engineering")],
        "P2": [s(0, "slack", "On-call Engineer")],
        "P3": [s(0, "slack", "Any available team member")],
    }


@dataclass(frozen=True)
class Notify:
    """`playbook notify`: Slack incoming webhook and PagerDuty Events API v2. The webhook URL and
    the routing key are secrets (${VAR}); an empty value means "not configured"."""

    # Secrets: kept out of repr(), which tracebacks and reports show.
    slack_webhook_url: str = field(default="", repr=False)
    pagerduty_routing_key: str = field(default="", repr=False)
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    bridge_url: str = ""  # the incident bridge (meeting link)
    status_page_url: str = "https://status.candlefish.ai"
    runbook_url: str = ""  # default: the playbook's URL
    incident_commander: str = "oncall-engineer"
    response_team: list[str] = field(default_factory=list)
    source: str = ""  # PagerDuty payload.source; default: the service's host
    timeout: float = 5.0  # seconds, per request
    retries: int = 3  # further attempts after the first, on 429, 5xx, timeouts
    backoff_seconds: float = 1.0  # first pause; doubles each retry
    max_backoff_seconds: float = 30.0  # cap on a pause, Retry-After included
    escalation: dict[str, list[EscalationStep]] = field(default_factory=default_escalation)


@dataclass(frozen=True)
class GameDay:
    """Limits and clocks of game-day drills. Faults refuse a `production: true` profile unless
    the run passes --allow-production, whatever this section says."""

    max_pod_percent: float = 50.0  # blast radius: at most this share of pods per fault
    # The playbook's response times (P0 < 5 min, P1 < 15 min) divided by this; the sandbox's
    # alert rules run 60 times faster than production's, so its drills may too.
    time_scale: float = 1.0
    # The playbook's response times (P0 < 5 min, P1 < 15 min: injection to mitigation, or to
    # the page when the drill has no mitigation) divided by this.
    response_scale: float = 1.0
    blast_error_budget: float = 0.5  # user-facing failures tolerated ...
    blast_limit_seconds: float = 300.0  # ... for at most this long, then revert and fail
    detect_within: float = 300.0  # deadlines per stage, seconds (before time_scale)
    notify_within: float = 360.0
    recover_within: float = 600.0
    no_page_window: float = 120.0  # a self-healing fault: no page may go out for this long


@dataclass(frozen=True)
class Github:
    """The deploy workflow's runs through the GitHub REST API (playbook 1.2 / 3.3 `gh run list
    --workflow=security-dashboard-production-deploy.yml`). `token` comes from ${GITHUB_TOKEN};
    an empty one means "not configured": the recent-deploys check is skipped with that reason."""

    repo: str  # owner/name
    api_url: str = "https://api.github.com"
    workflow: str = "security-dashboard-production-deploy.yml"
    token: str = field(default="", repr=False)
    runs: int = 10  # the last N runs attached as context
    failed_window_minutes: float = 60.0  # a failed run younger than this is a P2 finding
    timeout: float = 5.0  # seconds, per request


@dataclass(frozen=True)
class Evidence:
    """`playbook evidence` (playbook 5.1): what the bundle collects, and whether a scheduled run
    collects it by itself when a P0 or P1 check fails (like pytest --evidence-on-failure)."""

    hours: float = 4.0  # logs and metrics of the last N hours (playbook: --since=4h)
    step_seconds: float = 60.0  # query_range step (playbook: step=60s)
    on_failure: bool = False
    frontend_selector: str = "app=security-dashboard-frontend"
    log_bytes_per_pod: int = 20_000_000  # pods/log limitBytes: a noisy pod cannot fill the disk


@dataclass(frozen=True)
class Security:
    """Security incidents (playbook "Security Incidents (P0)"): the failed-login signal, the
    backend's security log lines, admin endpoints that must demand a token, and the headers the
    public endpoints send. A burst of failed logins or an open admin endpoint is P0."""

    # Failed logins per second (sum over the backend) above which it is a security incident.
    # Keep in step with the AuthFailureSpike rule in monitoring/rules/security.yml.
    failed_login_rate: float = 1.0
    rate_window: str = "5m"  # range window of the rate() query (the sandbox: 10s)
    admin_endpoints: list[str] = field(
        default_factory=lambda: ["/api/admin/users", "/api/admin/audit"])
    public_endpoints: list[str] = field(default_factory=lambda: ["/api/health", "/api/status"])
    login_endpoint: str = "/api/auth/login"
    # The playbook's `kubectl logs ... --since=1h | grep -E '(failed|unauthorized|breach|attack)'`
    log_window_hours: float = 1.0
    log_pattern: str = "(failed|unauthorized|breach|attack)"
    # A burst: at least `burst_lines` matching lines within any `burst_seconds` (the suite's own
    # admin-endpoint probes add two `unauthorized` lines per run, far from a burst).
    burst_lines: int = 20
    burst_seconds: float = 60.0
    attach_lines: int = 100  # the most recent matching lines attached as security-events.log
    log_tail_lines: int = 20000  # per pod: a bound on what one check reads
    # The credential-stuffing drill: a real account proves that normal users still get in
    # while the attack is isolated (the password is a secret: ${VAR}); the emergency
    # NetworkPolicy's name (playbook/actions/isolate.py).
    drill_username: str = ""
    drill_password: str = field(default="", repr=False)
    isolation_policy: str = "emergency-isolate"


@dataclass(frozen=True)
class Profile:
    name: str
    service: Service
    production: bool = False
    run: Run = field(default_factory=Run)
    sandbox: Sandbox | None = None
    kubernetes: Kubernetes | None = None
    aws: Aws | None = None
    database: Database | None = None
    load: Load | None = None
    prometheus: Prometheus | None = None
    alertmanager: Alertmanager | None = None
    notify: Notify | None = None
    github: Github | None = None
    evidence: Evidence | None = None
    gameday: GameDay | None = None
    security: Security | None = None
    source: str = ""  # the file it came from (set by the loader, not by the YAML)

    def section(self, name: str) -> Any:
        return getattr(self, name)


def loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: where load, drills and dummy credentials may go."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_aws_credentials(aws: Aws | None, environ: typing.Mapping[str, str]) -> dict[str, str]:
    """The dummy keys the sandbox's AWS (moto) accepts - only when the profile's endpoint_url is
    on loopback and the environment holds no credentials of its own (real ones are never
    replaced, and a profile pointing at real AWS never gets these). Standard library only: the
    load runner calls it before gevent patches ssl."""
    host = urlsplit(aws.endpoint_url or "").hostname or "" if aws is not None else ""
    if not host or not loopback_host(host) or environ.get("AWS_ACCESS_KEY_ID") or \
            environ.get("AWS_PROFILE"):
        return {}
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


# --- loading --------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_path(env: str | None) -> Path:
    """`--env NAME`: a bundled profile; `--env path.yaml`: a file; default PLAYBOOK_ENV, local."""
    env = env or os.environ.get("PLAYBOOK_ENV") or DEFAULT_ENV
    if env.endswith((".yaml", ".yml")) or os.sep in env:
        path = Path(env)
        if not path.is_file():
            raise ProfileError(f"{env}: profile file not found")
        return path
    path = BUNDLED / f"{env}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
        raise ProfileError(f"--env {env}: no such bundled profile (known: {known}; or pass a path)")
    return path


def load(env: str | None = None, environ: typing.Mapping[str, str] | None = None) -> Profile:
    path = resolve_path(env)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ProfileError(f"{path}:{where} malformed YAML: {problem}") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level, got {_kind(raw)}")
    data = _interpolate(raw, environ if environ is not None else os.environ, str(path), "")
    data["source"] = str(path)
    profile = _build(Profile, data, str(path), "")
    _remember_secrets(profile, "")
    return profile


def _remember_secrets(value: Any, key: str) -> None:
    """Tell the redactor every string field whose key names a secret (a URL's password too)."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _remember_secrets(getattr(value, f.name), _join(key, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            _remember_secrets(v, _join(key, str(k)))
    elif isinstance(value, list):
        for v in value:
            _remember_secrets(v, key)
    elif isinstance(value, str) and value and secrets.names_a_secret(key):
        if "://" in value:
            secrets.remember_url(value)
        else:
            secrets.remember(value)


def _interpolate(value: Any, environ: typing.Mapping[str, str], file: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, environ, file, _join(key, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            value = environ[name]
        elif default is not None:
            value = default
        else:
            raise ProfileError(f"{file}: {key}: environment variable {name} is not set")
        if secrets.names_a_secret(name) or secrets.names_a_secret(key):
            secrets.remember(value)
        return value

    return _VAR.sub(sub, value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value),
                                                                          type(value).__name__)


def _build(cls: type, data: Any, file: str, key: str) -> Any:
    if not isinstance(data, dict):
        raise ProfileError(f"{file}: {key or 'top level'}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(n for n in fields if n != "source")
        raise ProfileError(
            f"{file}: {_join(key, str(unknown[0]))}: unknown key (known here: {known})")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProfileError(f"{file}: {sub}: required key is missing")
            continue
        kwargs[name] = _coerce(hints[name], data[name], file, sub)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, file, key)
    if origin is list:
        if not isinstance(value, list):
            raise ProfileError(f"{file}: {key}: expected a list, got {_kind(value)}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProfileError(f"{file}: {key}: expected a mapping, got {_kind(value)}")
        _, item = typing.get_args(tp)
        return {str(k): _coerce(item, v, file, _join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, file, key)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ProfileError(f"{file}: {key}: expected one of {', '.join(map(str, allowed))}, "
                               f"got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ProfileError(f"{file}: {key}: expected true or false, got {value!r}")
    if tp is float:
        # A number may come as a string after ${VAR} interpolation.
        if isinstance(value, bool):
            raise ProfileError(f"{file}: {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{file}: {key}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ProfileError(f"{file}: {key}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{file}: {key}: expected a whole number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ProfileError(f"{file}: {key}: expected a string, got {_kind(value)}")
        return str(value)
    return value
