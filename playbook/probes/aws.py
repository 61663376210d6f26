"""AWS observations for playbook 1.1 and 3.2-3.3: EKS, RDS, ElastiCache, the load balancer's
targets, EC2 instance status and CloudTrail's recent changes. Read-only; never asserts.

One boto3 Session per run (`AwsClients`, built once by the `aws` fixture); every client has
the profile's connect/read timeouts and a bounded number of attempts (botocore standard retry
mode). Credentials come from boto3's usual chain - environment, ~/.aws, an instance or IRSA role
- never from the profile. Any failure of a call (AccessDenied, an expired token, throttling, an
unreachable endpoint, a missing resource) becomes an observation whose `error` is one sentence
naming the API call and the resource.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from playbook import config
from playbook.config import loopback_host as is_loopback_host
from playbook.probes.http import USER_AGENT

MAX_PAGES = 10  # every paginated listing is bounded

DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
          "AuthorizationError", "UnauthorizedException", "Forbidden"}
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
UNKNOWN_KEY = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
               "AuthFailure", "InvalidAccessKeyId", "IncompleteSignature"}
THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
             "TooManyRequestsException", "RequestThrottled", "RequestThrottledException",
             "SlowDown", "ProvisionedThroughputExceededException"}
NOT_FOUND = {"DBInstanceNotFound", "DBInstanceNotFoundFault", "ResourceNotFoundException",
             "CacheClusterNotFound", "CacheClusterNotFoundFault", "TargetGroupNotFound",
             "InvalidInstanceID.NotFound", "NotFoundException"}


def is_loopback(url: str | None) -> bool:
    return is_loopback_host(urlsplit(url or "").hostname or "")


def local_credentials_env(cfg: config.Aws | None, environ: dict[str, str]) -> dict[str, str]:
    """The dummy keys a local AWS stand-in (the sandbox's moto) accepts, for runs that start it.

    Only when the profile's endpoint_url is on loopback and the environment holds no keys: real
    credentials in the environment are never replaced, and a profile pointing at real AWS never
    gets these. `playbook demo` and the suite's own tests use it; a user running checks against
    the sandbox by hand exports the same two variables (the failure sentence says so)."""
    return config.local_aws_credentials(cfg, environ)


class AwsClients:
    """One boto3 Session and one client per service, with the profile's timeouts and retries."""

    def __init__(self, cfg: config.Aws) -> None:
        self.cfg = cfg
        self.session = boto3.Session(region_name=cfg.region)
        self.config = Config(connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout,
                             # total_max_attempts counts the first try (max_attempts not)
                             retries={"total_max_attempts": cfg.max_attempts,
                                      "mode": "standard"},
                             user_agent_extra=USER_AGENT)
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.cfg.endpoint_url, config=self.config)
        return self._clients[service]

    @property
    def where(self) -> str:
        at = f" at {self.cfg.endpoint_url}" if self.cfg.endpoint_url else ""
        return f"{self.cfg.region}{at}"

    @property
    def budget(self) -> float:
        """The longest one call may take: every attempt timing out, plus backoff."""
        c = self.cfg
        return c.max_attempts * (c.connect_timeout + c.read_timeout) + 2.0 * (c.max_attempts - 1)


@dataclass(frozen=True)
class Observation:
    call: str  # e.g. "rds:DescribeDBInstances"
    resource: str  # what it was about, e.g. "DB instance security-dashboard-prod"
    where: str  # region (and endpoint)
    status: str | None = None  # the resource's status as AWS reports it
    data: Any = None  # the raw answer (evidence)
    error: str | None = None  # one sentence; None when AWS answered
    elapsed: float = 0.0

    def problem(self, expect: str) -> str | None:
        """None when the status is `expect`, else one sentence: expected, seen, where."""
        if self.error:
            return self.error
        if self.status != expect:
            return (f"{self.resource} is {self.status!r}, expected {expect!r} "
                    f"({self.call}, {self.where})")
        return None


def describe_error(exc: Exception, call: str, resource: str, aws: AwsClients) -> str:
    """One sentence for the on-call engineer: what failed, on what, and what to do."""
    where = aws.where
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        code, message = str(err.get("Code", "")), str(err.get("Message", "")).strip()
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        said = f"{code}: {message}" if message else code
        if code in DENIED:
            return (f"AWS denied {call} on {resource} ({said}, {where}): the credentials in use "
                    "lack this permission - grant it to the suite's role or use another role")
        if code in EXPIRED:
            return (f"AWS rejected {call} on {resource}: the credentials have expired ({said}, "
                    f"{where}) - refresh them (new STS session, `aws sso login`)")
        if code in UNKNOWN_KEY:
            return (f"AWS did not accept the credentials for {call} on {resource} ({said}, "
                    f"{where}): wrong key or secret for this account")
        if code in THROTTLED:
            return (f"AWS throttled {call} on {resource} ({said}, {where}) and was still "
                    f"throttling after {_attempts(aws)} - retry later or lower "
                    "the call rate")
        if code in NOT_FOUND:
            return f"{resource} was not found by {call} in {where} ({said})"
        return f"{call} on {resource} failed in {where}: {said} (HTTP {http})"
    if isinstance(exc, bex.NoCredentialsError):
        hint = (" - for the local sandbox export AWS_ACCESS_KEY_ID=testing "
                "AWS_SECRET_ACCESS_KEY=testing" if is_loopback(aws.cfg.endpoint_url) else "")
        return (f"no AWS credentials for {call} on {resource}: boto3's chain (environment, "
                f"~/.aws, instance role) found none{hint}")
    if isinstance(exc, bex.ConnectTimeoutError):
        return (f"{call} on {resource}: could not connect to the AWS endpoint "
                f"{_endpoint(exc, aws)} within {aws.cfg.connect_timeout:g} s "
                f"({_attempts(aws)})")
    if isinstance(exc, bex.ReadTimeoutError):
        return (f"{call} on {resource}: the AWS endpoint {_endpoint(exc, aws)} did not answer "
                f"within {aws.cfg.read_timeout:g} s ({_attempts(aws)})")
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionClosedError)):
        return (f"{call} on {resource}: cannot reach the AWS endpoint {_endpoint(exc, aws)} "
                f"(connection refused or closed, {_attempts(aws)}) - is it up, "
                "is the URL right?")
    if isinstance(exc, bex.BotoCoreError):
        return f"{call} on {resource} failed in {where}: {exc}"
    return f"{call} on {resource} failed in {where}: {type(exc).__name__}: {exc}"


def _endpoint(exc: Exception, aws: AwsClients) -> str:
    return str(aws.cfg.endpoint_url or getattr(exc, "kwargs", {}).get("endpoint_url")
               or aws.where)


def _attempts(aws: AwsClients) -> str:
    n = aws.cfg.max_attempts
    return f"{n} attempt{'s' if n != 1 else ''}"


def _call(aws: AwsClients, service: str, op: str, resource: str,
          read: Callable[[Any], tuple[str | None, Any]], **kwargs: Any) -> Observation:
    start = time.perf_counter()
    call = f"{service}:{''.join(w.title() for w in op.split('_'))}"
    try:
        client = aws.client(service)
        call = f"{service}:{client.meta.method_to_api_mapping.get(op, call)}"
        answer = getattr(client, op)(**kwargs)
        status, data = read(answer)
    except Exception as exc:  # every failure is an observation with its sentence
        return Observation(call, resource, aws.where, error=describe_error(
            exc, call, resource, aws), elapsed=time.perf_counter() - start)
    return Observation(call, resource, aws.where, status=status, data=data,
                       elapsed=time.perf_counter() - start)


def eks_cluster(aws: AwsClients, name: str) -> Observation:
    def read(a: Any) -> tuple[str | None, Any]:
        c = a["cluster"]
        return c.get("status"), {k: c.get(k) for k in ("name", "status", "version",
                                                        "endpoint", "platformVersion")}

    return _call(aws, "eks", "describe_cluster", f"EKS cluster {name}", read, name=name)


def rds_instance(aws: AwsClients, ident: str) -> Observation:
    def read(a: Any) -> tuple[str | None, Any]:
        db = next((d for d in a["DBInstances"] if d["DBInstanceIdentifier"] == ident), None)
        if db is None:
            return "missing", None
        return db.get("DBInstanceStatus"), {k: db.get(k) for k in (
            "DBInstanceIdentifier", "DBInstanceStatus", "Engine", "EngineVersion",
            "DBInstanceClass", "Endpoint", "MultiAZ")}

    return _call(aws, "rds", "describe_db_instances", f"RDS instance {ident}", read,
                 DBInstanceIdentifier=ident)


def elasticache_cluster(aws: AwsClients, ident: str) -> Observation:
    def read(a: Any) -> tuple[str | None, Any]:
        c = next((c for c in a["CacheClusters"] if c["CacheClusterId"] == ident), None)
        if c is None:
            return "missing", None
        return c.get("CacheClusterStatus"), {k: c.get(k) for k in (
            "CacheClusterId", "CacheClusterStatus", "Engine", "EngineVersion",
            "CacheNodeType", "NumCacheNodes")}

    return _call(aws, "elasticache", "describe_cache_clusters",
                 f"ElastiCache cluster {ident}", read, CacheClusterId=ident)


@dataclass(frozen=True)
class TargetHealth:
    target: str  # "id:port"
    state: str
    reason: str = ""
    description: str = ""


@dataclass(frozen=True)
class TargetGroupObservation:
    group: Observation  # describe_target_groups (status: the ARN's presence)
    health: Observation | None = None  # describe_target_health
    targets: list[TargetHealth] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return self.group.error or (self.health.error if self.health else None)


def target_health(aws: AwsClients, name: str) -> TargetGroupObservation:
    """`aws elbv2 describe-target-health --target-group-arn $(... security-dashboard-tg ...)`."""
    group = _call(aws, "elbv2", "describe_target_groups", f"target group {name}",
                  lambda a: ("found", a["TargetGroups"][0]), Names=[name])
    if group.error:
        return TargetGroupObservation(group)
    arn = group.data["TargetGroupArn"]

    def read(a: Any) -> tuple[str | None, Any]:
        return None, a["TargetHealthDescriptions"]

    health = _call(aws, "elbv2", "describe_target_health", f"target group {name}", read,
                   TargetGroupArn=arn)
    targets = [TargetHealth(f"{d['Target']['Id']}:{d['Target'].get('Port', '')}",
                            d["TargetHealth"]["State"], d["TargetHealth"].get("Reason", ""),
                            d["TargetHealth"].get("Description", ""))
               for d in (health.data or [])]
    return TargetGroupObservation(group, health, targets)


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    name: str
    state: str
    instance_status: str  # ok | impaired | initializing | insufficient-data | not-applicable
    system_status: str

    @property
    def ok(self) -> bool:
        return self.state == "running" and self.instance_status == "ok" and \
            self.system_status == "ok"


def ec2_instances(aws: AwsClients, tag_key: str, tag_value: str
                  ) -> tuple[Observation, list[InstanceStatus]]:
    """`aws ec2 describe-instance-status` for the instances tagged tag_key=tag_value."""
    where = f"EC2 instances tagged {tag_key}={tag_value}"
    filters = [{"Name": f"tag:{tag_key}", "Values": [tag_value]},
               {"Name": "instance-state-name", "Values": [
                   "pending", "running", "stopping", "stopped", "shutting-down"]}]

    def read_instances(a: Any) -> tuple[str | None, Any]:
        found = {}
        for page in _pages(a, aws.client("ec2"), "describe_instances", Filters=filters):
            for res in page["Reservations"]:
                for i in res["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                    found[i["InstanceId"]] = (tags.get("Name", ""), i["State"]["Name"])
        return None, found

    listing = _call(aws, "ec2", "describe_instances", where, read_instances, Filters=filters)
    if listing.error or not listing.data:
        return listing, []
    ids = sorted(listing.data)

    def read_status(a: Any) -> tuple[str | None, Any]:
        return None, {s["InstanceId"]: s for s in a["InstanceStatuses"]}

    status = _call(aws, "ec2", "describe_instance_status", where, read_status,
                   InstanceIds=ids[:100], IncludeAllInstances=True)
    if status.error:
        return status, []
    out = []
    for iid in ids[:100]:
        name, state = listing.data[iid]
        s = status.data.get(iid, {})
        out.append(InstanceStatus(
            iid, name, s.get("InstanceState", {}).get("Name", state),
            s.get("InstanceStatus", {}).get("Status", "not-applicable"),
            s.get("SystemStatus", {}).get("Status", "not-applicable")))
    return status, out


def _pages(first: Any, client: Any, op: str, **kwargs: Any) -> Any:
    """The first answer, then at most MAX_PAGES - 1 more by NextToken."""
    page, n = first, 1
    yield page
    while page.get("NextToken") and n < MAX_PAGES:
        page = getattr(client, op)(**kwargs, NextToken=page["NextToken"])
        n += 1
        yield page


@dataclass(frozen=True)
class TrailEvent:
    time: dt.datetime
    user: str
    event: str
    source: str
    resources: list[str]


def cloudtrail_changes(aws: AwsClients, hours: float, now: dt.datetime | None = None
                       ) -> tuple[Observation, list[TrailEvent]]:
    """Playbook 3.3: `aws cloudtrail lookup-events --start-time '2 hours ago'`, writes only."""
    end = now or dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(hours=hours)
    args = {"StartTime": start, "EndTime": end, "MaxResults": 50,
            "LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "false"}]}

    def read(a: Any) -> tuple[str | None, Any]:
        events = []
        for page in _pages(a, aws.client("cloudtrail"), "lookup_events", **args):
            for e in page.get("Events", []):
                events.append(TrailEvent(
                    e["EventTime"], e.get("Username", ""), e["EventName"],
                    e.get("EventSource", ""), [r.get("ResourceName", "")
                                               for r in e.get("Resources", [])]))
        return None, events

    obs = _call(aws, "cloudtrail", "lookup_events", f"CloudTrail events of the last {hours:g} h",
                read, **args)
    return obs, list(obs.data or [])
