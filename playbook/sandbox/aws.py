"""The sandbox's AWS: moto's real HTTP server, seeded with the playbook's resources.

It runs inside the supervisor process (a werkzeug server thread, as moto's ThreadedMotoServer
does) so that it sees the pods, PostgreSQL and Redis it stands in for. The suite talks to it
only with boto3 over HTTP, through `aws.endpoint_url` in the profile; any access key is
accepted. Seeded in us-east-1, through the API itself: EKS cluster security-dashboard-eks, RDS
instance security-dashboard-prod, ElastiCache cluster security-dashboard-redis, an ALB with the
ip target group security-dashboard-tg, two EC2 nodes tagged eks:cluster-name, and a CloudTrail
history.

moto 5.2 alone shows a world that never changes. A thin WSGI layer in front of it fills the
gaps, so that the AWS view follows the sandbox's reality and the API's writes have effects:

- Target group: the targets are the backend's pods (127.0.0.1 and the pod's port; moto keys
  targets by Id alone, so the layer keeps them). The AWS Load Balancer Controller's part is
  played here: pods that come and go are registered and deregistered. DescribeTargetHealth says
  healthy only while the pod is running and ready (its readiness probe is the health check),
  `initial` for a few seconds after registration, `draining` for DRAIN_SECONDS after a
  deregistration. DeregisterTargets takes the pod out of the front's routing
  (Supervisor.unrouted) until RegisterTargets puts it back.
- RDS: StopDBInstance stops the sandbox's PostgreSQL for real (`stopping`, then `stopped`);
  StartDBInstance starts it (`starting`, then `available` once it answers); RebootDBInstance
  restarts it (`rebooting`, then `available`), and is refused unless `available`.
- ElastiCache (no reboot in moto): RebootCacheCluster stops Redis for CACHE_REBOOT_SECONDS
  (`rebooting cache cluster nodes`), then starts it (`available`).
- EKS: UpdateClusterConfig shows UPDATING for EKS_UPDATE_SECONDS (moto stays ACTIVE).
- CloudTrail LookupEvents (a 500 in moto 5.2): answered from the events this layer recorded -
  a seeded history, every write made through this API (Username: the access key id; the
  sandbox has no IAM users), and the controller's target changes. Only writes are recorded
  (CloudTrail's ReadOnly=false), else the suite's own describes would drown them. Lookup by one
  attribute, time range, MaxResults and NextToken work as in AWS.
- EC2 needs nothing: moto's stop/start_instances and describe_instance_status follow.

moto is pinned exactly in pyproject.toml: this module reads and sets the status of moto's model
objects (moto.backends: RDS databases, EKS clusters, ElastiCache cache_clusters), an internal.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from playbook.sandbox.supervisor import Supervisor

REGION = "us-east-1"
EKS_CLUSTER = "security-dashboard-eks"
RDS_INSTANCE = "security-dashboard-prod"
CACHE_CLUSTER = "security-dashboard-redis"
TARGET_GROUP = "security-dashboard-tg"
TARGET_PORT = 8000  # the Service's port in production; each sandbox target carries its own
NODE_TAG = ("eks:cluster-name", EKS_CLUSTER)
NODE_AMI = "ami-0eks0node0sandbox0"  # an EKS-optimized image in real life
CONTROLLER = "aws-load-balancer-controller"  # who registers pods as targets
SANDBOX_KEYS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
ELB_NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"
REGISTRATION_GRACE = 3.0  # seconds a new target shows `initial` before its first health check
# A deregistered target drains before it leaves the group (AWS: the target group's
# deregistration_delay, 300 s by default; shortened for the sandbox like its back-off cap).
DRAIN_SECONDS = 20.0
# How long a cluster update (EKS: UPDATING) and a cache node reboot (ElastiCache: the node is
# down) last. Minutes in AWS; seconds here, long enough for a check to see them.
EKS_UPDATE_SECONDS = 10.0
CACHE_REBOOT_SECONDS = 10.0
CACHE_NS = "http://elasticache.amazonaws.com/doc/2015-02-02/"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")
SOURCES = {"rds": "rds.amazonaws.com", "elasticloadbalancing": "elasticloadbalancing.amazonaws"
           ".com", "ec2": "ec2.amazonaws.com", "eks": "eks.amazonaws.com", "elasticache":
           "elasticache.amazonaws.com", "cloudtrail": "cloudtrail.amazonaws.com"}
# Request parameters that name a resource, and its CloudTrail resource type.
RESOURCE_PARAMS = {"DBInstanceIdentifier": "AWS::RDS::DBInstance",
                   "TargetGroupArn": "AWS::ElasticLoadBalancingV2::TargetGroup",
                   "LoadBalancerArn": "AWS::ElasticLoadBalancingV2::LoadBalancer",
                   "CacheClusterId": "AWS::ElastiCache::CacheCluster",
                   "InstanceId": "AWS::EC2::Instance"}
LOOKUP_KEYS = {"EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName",
               "EventSource", "AccessKeyId"}


@dataclass
class Target:
    port: int
    pod: str | None  # the pod behind it; None for a target registered by hand
    registered: float


class AwsWorld:
    """moto's WSGI app behind a layer that keeps AWS in step with the sandbox."""

    def __init__(self, sup: Supervisor, loop: asyncio.AbstractEventLoop) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.sup, self.loop = sup, loop
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []  # newest last
        self.targets: dict[tuple[str, int], Target] = {}
        self.draining: dict[tuple[str, int], float] = {}  # target -> when it is gone
        self.deregistered: set[str] = set()  # pod names taken out through the API
        self.tg_arn = ""
        self.recording = False
        self.db_busy = asyncio.Lock()
        self.cache_busy = asyncio.Lock()
        self.boot_seconds = 0.0

    # --- CloudTrail -----------------------------------------------------------------------

    def record(self, name: str, source: str, user: str, resources: list[tuple[str, str]],
               params: dict[str, Any] | None = None, when: float | None = None,
               key: str = "") -> None:
        when = time.time() if when is None else when
        event_id = str(uuid.uuid4())
        detail = {"eventVersion": "1.08", "eventTime": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)), "eventSource": source, "eventName": name,
            "awsRegion": REGION, "sourceIPAddress": "127.0.0.1", "userIdentity": {
                "type": "IAMUser", "userName": user, "accessKeyId": key},
            "requestParameters": params or {}, "eventID": event_id, "readOnly": False,
            "eventType": "AwsApiCall", "recipientAccountId": _account()}
        with self.lock:
            self.events.append({
                "EventId": event_id, "EventName": name, "ReadOnly": "false",
                "AccessKeyId": key, "EventTime": when, "EventSource": source,
                "Username": user, "Resources": [{"ResourceType": t, "ResourceName": n}
                                                for t, n in resources],
                "CloudTrailEvent": json.dumps(detail)})
            self.events.sort(key=lambda e: e["EventTime"])
            del self.events[:-5000]

    def seed_history(self) -> None:
        """A plausible recent past: one change outside the playbook's 2-hour window, a few
        inside it."""
        now = time.time()
        tg = ("AWS::ElasticLoadBalancingV2::TargetGroup", self.tg_arn)
        for ago, name, source, user, res in [
            (26 * 3600, "CreateDBInstance", "rds.amazonaws.com", "terraform",
             [("AWS::RDS::DBInstance", RDS_INSTANCE)]),
            (3 * 3600, "ModifyDBInstance", "rds.amazonaws.com", "terraform",
             [("AWS::RDS::DBInstance", RDS_INSTANCE)]),
            (95 * 60, "UpdateClusterConfig", "eks.amazonaws.com", "platform-engineer",
             [("AWS::EKS::Cluster", EKS_CLUSTER)]),
            (50 * 60, "ModifyTargetGroup", "elasticloadbalancing.amazonaws.com", "terraform",
             [tg]),
        ]:
            self.record(name, source, user, res, when=now - ago)

    def lookup_events(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        attrs = body.get("LookupAttributes") or []
        if len(attrs) > 1:
            return 400, _json_error("InvalidLookupAttributesException",
                                    "You cannot specify more than one lookup attribute.")
        start = float(body.get("StartTime") or 0)
        end = float(body.get("EndTime") or time.time() + 1)
        if start > end:
            return 400, _json_error("InvalidTimeRangeException",
                                    "Start time must be before end time.")
        limit = int(body.get("MaxResults") or 50)
        if not 1 <= limit <= 50:
            return 400, _json_error("InvalidMaxResultsException",
                                    "MaxResults must be between 1 and 50.")
        want = attrs[0] if attrs else None
        if want and want.get("AttributeKey") not in LOOKUP_KEYS:
            return 400, _json_error("InvalidLookupAttributesException",
                                    f"Unknown AttributeKey {want.get('AttributeKey')!r}.")
        with self.lock:
            events = [e for e in reversed(self.events) if start <= e["EventTime"] <= end]
        if want:
            key, value = want["AttributeKey"], want.get("AttributeValue", "")
            if key in ("ResourceType", "ResourceName"):
                field = key
                events = [e for e in events
                          if any(r[field] == value for r in e["Resources"])]
            else:
                events = [e for e in events if e.get(key) == value]
        offset = int(body.get("NextToken") or 0)
        page = events[offset: offset + limit]
        out: dict[str, Any] = {"Events": page}
        if offset + limit < len(events):
            out["NextToken"] = str(offset + limit)
        return 200, out

    # --- the target group -----------------------------------------------------------------

    def sync_targets(self, sup: Supervisor) -> None:
        """on_publish: the load balancer controller registers pods and deregisters the gone."""
        pods = {p.port: p.name for p in list(sup.pods.values())}
        now = time.time()
        added, removed = [], []
        with self.lock:
            self.deregistered &= set(pods.values())
            for key, target in list(self.targets.items()):
                if target.pod is not None and pods.get(target.port) != target.pod:
                    del self.targets[key]
                    self.draining[key] = now + DRAIN_SECONDS
                    removed.append(key)
            for port, name in pods.items():
                key = ("127.0.0.1", port)
                if key not in self.targets and name not in self.deregistered:
                    self.targets[key] = Target(port, name, now)
                    self.draining.pop(key, None)
                    added.append(key)
            self._update_routing(sup)
        for action, keys in (("DeregisterTargets", removed), ("RegisterTargets", added)):
            if keys and self.tg_arn:
                self.record(action, SOURCES["elasticloadbalancing"], CONTROLLER,
                            [("AWS::ElasticLoadBalancingV2::TargetGroup", self.tg_arn)],
                            {"targetGroupArn": self.tg_arn, "targets": [
                                {"id": i, "port": p} for i, p in keys]})

    def _update_routing(self, sup: Supervisor) -> None:
        # Called with self.lock held. A new set object, swapped in at once: the supervisor's
        # loop reads it from another thread.
        sup.unrouted = frozenset(p.url for p in list(sup.pods.values())
                                 if p.name in self.deregistered)

    def _pod_on(self, port: int) -> Any:
        return next((p for p in list(self.sup.pods.values()) if p.port == port), None)

    def health(self, key: tuple[str, int]) -> tuple[str, str, str]:
        target = self.targets.get(key)
        if target is None and self.draining.get(key, 0) > time.time():
            return ("draining", "Target.DeregistrationInProgress",
                    "Target deregistration is in progress")
        if target is None:
            return ("unused", "Target.NotRegistered",
                    "Target is not registered to the target group")
        pod = self._pod_on(target.port) if target.pod else None
        if pod is not None and pod.running and pod.ready:
            return "healthy", "", ""
        if time.time() - target.registered < REGISTRATION_GRACE:
            return ("initial", "Elb.RegistrationInProgress",
                    "Target registration is in progress")
        if pod is None:
            return "unhealthy", "Target.Timeout", "Request timed out"
        # The pod's readiness probe (GET /api/ready, as the ALB's health check) fails.
        return "unhealthy", "Target.FailedHealthChecks", "Health checks failed"

    def elb_targets(self, action: str, params: dict[str, str], key: str
                    ) -> tuple[int, str]:
        asked = _members(params, "Targets")
        if action == "DescribeTargetHealth":
            with self.lock:
                now = time.time()
                self.draining = {k: t for k, t in self.draining.items() if t > now}
                keys = asked or [*self.targets, *(k for k in self.draining
                                                 if k not in self.targets)]
                rows = [(k, self.health(k)) for k in keys]
            members = "".join(
                f"<member><HealthCheckPort>traffic-port</HealthCheckPort><Target><Id>"
                f"{escape(i)}</Id><Port>{p}</Port></Target><TargetHealth><State>{s}</State>"
                + (f"<Reason>{r}</Reason><Description>{escape(d)}</Description>" if r else "")
                + "</TargetHealth></member>" for (i, p), (s, r, d) in rows)
            return 200, _elb_xml(action, f"<TargetHealthDescriptions>{members}"
                                 "</TargetHealthDescriptions>")
        if not asked:
            return 400, _query_error(ELB_NS, "ValidationError", "Targets must not be empty")
        with self.lock:
            if action == "DeregisterTargets":
                missing = [k for k in asked if k not in self.targets]
                if missing:
                    return 400, _query_error(
                        ELB_NS, "InvalidTarget", "The specified target does not exist, is not "
                        "in the same VPC as the target group, or has an unsupported instance "
                        f"type: {missing[0][0]}:{missing[0][1]}")
                for k in asked:
                    target = self.targets.pop(k)
                    self.draining[k] = time.time() + DRAIN_SECONDS
                    if target.pod:
                        self.deregistered.add(target.pod)
            else:
                for i, p in asked:
                    pod = self._pod_on(p) if i == "127.0.0.1" else None
                    if pod is not None:
                        self.deregistered.discard(pod.name)
                    self.draining.pop((i, p), None)
                    self.targets.setdefault((i, p), Target(p, pod.name if pod else None,
                                                           time.time()))
            self._update_routing(self.sup)
        self.record(action, SOURCES["elasticloadbalancing"], key or "unknown",
                    [("AWS::ElasticLoadBalancingV2::TargetGroup", self.tg_arn)],
                    {"targetGroupArn": self.tg_arn,
                     "targets": [{"id": i, "port": p} for i, p in asked]}, key=key)
        return 200, _elb_xml(action, "")

    # --- RDS ------------------------------------------------------------------------------

    def rds_model(self) -> Any:
        from moto.backends import get_backend

        return get_backend("rds")[_account()][REGION].databases[RDS_INSTANCE]

    def set_db_status(self, status: str) -> None:
        self.rds_model().status = status

    async def _stop_postgres(self) -> None:
        proc = self.sup.children.get("postgres")
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                await asyncio.to_thread(proc.wait, 30)
            except Exception:
                proc.kill()
                await asyncio.to_thread(proc.wait)

    async def db_effect(self, action: str) -> None:
        async with self.db_busy:
            try:
                if action in ("StopDBInstance", "RebootDBInstance"):
                    await self._stop_postgres()
                    if action == "StopDBInstance":
                        self.set_db_status("stopped")
                        return
                await self.sup.start_postgres()
                self.set_db_status("available")
            except Exception as e:  # PostgreSQL did not come back: that is what RDS shows
                self.set_db_status("failed")
                (self.sup.logs / "aws.log").open("a").write(f"{action} failed: {e}\n")

    # --- EKS and ElastiCache --------------------------------------------------------------

    @staticmethod
    def model(service: str, table: str, key: str) -> Any:
        from moto.backends import get_backend

        return getattr(get_backend(service)[_account()][REGION], table)[key]

    async def eks_update(self, name: str) -> None:
        await asyncio.sleep(EKS_UPDATE_SECONDS)
        self.model("eks", "clusters", name).status = "ACTIVE"

    async def cache_reboot(self) -> None:
        """The cache node is really down while it reboots, then comes back empty."""
        cluster = self.model("elasticache", "cache_clusters", CACHE_CLUSTER)
        async with self.cache_busy:
            started = time.monotonic()
            proc = self.sup.children.get("redis")
            if proc is not None and proc.poll() is None:
                proc.terminate()
                await asyncio.to_thread(proc.wait, 10)
            await asyncio.sleep(max(0.0, CACHE_REBOOT_SECONDS - (time.monotonic() - started)))
            try:
                await self.sup.start_redis()
                cluster.cache_cluster_status = "available"
            except Exception as e:
                cluster.cache_cluster_status = "incompatible-network"  # AWS: cannot recover
                (self.sup.logs / "aws.log").open("a").write(f"cache reboot failed: {e}\n")

    def reboot_cache_cluster(self, params: dict[str, str], key: str) -> tuple[int, str]:
        cluster = self.model("elasticache", "cache_clusters", CACHE_CLUSTER)
        if cluster.cache_cluster_status != "available":
            return 400, _query_error(CACHE_NS, "InvalidCacheClusterState", (
                f"Cache cluster {CACHE_CLUSTER} is not in available state (it is "
                f"{cluster.cache_cluster_status})."))
        cluster.cache_cluster_status = "rebooting cache cluster nodes"
        asyncio.run_coroutine_threadsafe(self.cache_reboot(), self.loop)
        self.record("RebootCacheCluster", SOURCES["elasticache"], key or "unknown",
                    [("AWS::ElastiCache::CacheCluster", CACHE_CLUSTER)],
                    {"cacheClusterId": CACHE_CLUSTER}, key=key)
        body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in (
            ("CacheClusterId", CACHE_CLUSTER), ("CacheClusterStatus",
                                                cluster.cache_cluster_status),
            ("Engine", cluster.engine), ("CacheNodeType", cluster.cache_node_type),
            ("NumCacheNodes", cluster.num_cache_nodes), ("ARN", cluster.arn)))
        return 200, (f'<RebootCacheClusterResponse xmlns="{CACHE_NS}"><RebootCacheClusterResult>'
                     f"<CacheCluster>{body}</CacheCluster></RebootCacheClusterResult>"
                     f"<ResponseMetadata><RequestId>{_request_id()}</RequestId>"
                     "</ResponseMetadata></RebootCacheClusterResponse>")

    # --- the WSGI layer -------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = io.BytesIO(body)
        m = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        key, service = (m.group(1), m.group(3)) if m else ("", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.endswith(".LookupEvents"):
            status, out = self.lookup_events(json.loads(body or b"{}"))
            return _respond(start_response, status, json.dumps(out).encode(),
                            "application/x-amz-json-1.1")
        params = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()} \
            if b"Action=" in body else {}
        action = params.get("Action", "")
        if service == "elasticloadbalancing" and action in (
                "DescribeTargetHealth", "RegisterTargets", "DeregisterTargets") and \
                params.get("TargetGroupArn") == self.tg_arn:
            status, xml = self.elb_targets(action, params, key)
            return _respond(start_response, status, xml.encode(), "text/xml")
        if service == "elasticache" and action == "RebootCacheCluster" and \
                params.get("CacheClusterId") == CACHE_CLUSTER:
            status, xml = self.reboot_cache_cluster(params, key)
            return _respond(start_response, status, xml.encode(), "text/xml")
        ours = service == "rds" and params.get("DBInstanceIdentifier") == RDS_INSTANCE
        if ours and action == "RebootDBInstance" and self.rds_model().status != "available":
            return _respond(start_response, 400, _query_error(
                RDS_NS, "InvalidDBInstanceState", f"Instance {RDS_INSTANCE} is not in "
                f"available state (it is {self.rds_model().status}).").encode(), "text/xml")
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        result = self.moto(environ, capture)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        ok = captured.get("status", "500").startswith("2")
        if ok and ours and action in ("StopDBInstance", "StartDBInstance", "RebootDBInstance"):
            shown = {"StopDBInstance": "stopping", "StartDBInstance": "starting",
                     "RebootDBInstance": "rebooting"}[action]
            self.set_db_status(shown)
            data = re.sub(rb"<DBInstanceStatus>[^<]*</DBInstanceStatus>",
                          f"<DBInstanceStatus>{shown}</DBInstanceStatus>".encode(), data)
            asyncio.run_coroutine_threadsafe(self.db_effect(action), self.loop)
        path = environ.get("PATH_INFO", "")
        if ok and service == "eks" and environ["REQUEST_METHOD"] == "POST" and \
                path.endswith("/update-config") and path.count("/") == 3:
            # A cluster update: UPDATING for a while (moto stays ACTIVE).
            name = path.split("/")[2]
            self.model("eks", "clusters", name).status = "UPDATING"
            data = data.replace(b'"status": "ACTIVE"', b'"status": "UPDATING"')
            asyncio.run_coroutine_threadsafe(self.eks_update(name), self.loop)
        if ok and self.recording:
            self._record_write(service, action, params, environ, key)
        headers = [(k, v) for k, v in captured.get("headers", [])
                   if k.lower() != "content-length"] + [("Content-Length", str(len(data)))]
        start_response(captured.get("status", "500 INTERNAL SERVER ERROR"), headers)
        return [data]

    def _record_write(self, service: str, action: str, params: dict[str, str],
                      environ: dict[str, Any], key: str) -> None:
        if not action and service == "eks":
            action = _eks_action(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if not action or action.startswith(("Describe", "List", "Get", "Lookup")):
            return
        resources = []
        for name, value in params.items():
            base = name.split(".")[0]
            if base in RESOURCE_PARAMS:
                resources.append((RESOURCE_PARAMS[base], value))
        if service == "eks":
            parts = environ.get("PATH_INFO", "").split("/")
            if len(parts) > 2 and parts[1] == "clusters":
                resources.append(("AWS::EKS::Cluster", parts[2]))
        # As CloudTrail does: no passwords or tokens in the recorded request.
        shown = {k: ("HIDDEN_DUE_TO_SECURITY_REASONS" if re.search(
            "password|secret|token", k, re.I) else v) for k, v in params.items()
            if k not in ("Action", "Version")}
        self.record(action, SOURCES.get(service, f"{service}.amazonaws.com"), key or "unknown",
                    resources, shown, key=key)

    # --- seeding --------------------------------------------------------------------------

    def seed(self, url: str) -> None:
        """Create the playbook's resources through the API itself, as terraform would."""
        import boto3

        s = boto3.Session(region_name=REGION, **SANDBOX_KEYS)
        ec2 = s.client("ec2", endpoint_url=url)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                                     AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
                   for i, z in ((1, "a"), (2, "b"))]
        for i, subnet in enumerate(subnets):
            ec2.run_instances(  # moto does not check AMIs (listing its 1300 takes seconds)
                ImageId=NODE_AMI, MinCount=1, MaxCount=1, InstanceType="m5.large",
                SubnetId=subnet, TagSpecifications=[{"ResourceType": "instance", "Tags": [
                    {"Key": NODE_TAG[0], "Value": NODE_TAG[1]},
                    {"Key": "Name", "Value": f"{EKS_CLUSTER}-node-{i + 1}"}]}])
        s.client("eks", endpoint_url=url).create_cluster(
            name=EKS_CLUSTER, version="1.29",
            roleArn=f"arn:aws:iam::{_account()}:role/{EKS_CLUSTER}-cluster",
            resourcesVpcConfig={"subnetIds": subnets})
        s.client("rds", endpoint_url=url).create_db_instance(
            DBInstanceIdentifier=RDS_INSTANCE, Engine="postgres", EngineVersion="15.5",
            DBInstanceClass="db.t3.medium", MasterUsername="dashboard",
            MasterUserPassword="not-the-sandbox-password", AllocatedStorage=20,
            Port=self.sup.sb.ports.postgres, DBName="security_dashboard")
        s.client("elasticache", endpoint_url=url).create_cache_cluster(
            CacheClusterId=CACHE_CLUSTER, Engine="redis", CacheNodeType="cache.t3.micro",
            NumCacheNodes=1, Port=self.sup.sb.ports.redis)
        elb = s.client("elbv2", endpoint_url=url)
        lb = elb.create_load_balancer(Name="security-dashboard-alb", Subnets=subnets)[
            "LoadBalancers"][0]["LoadBalancerArn"]
        self.tg_arn = elb.create_target_group(
            Name=TARGET_GROUP, Protocol="HTTP", Port=TARGET_PORT, VpcId=vpc, TargetType="ip",
            HealthCheckPath="/api/ready")["TargetGroups"][0]["TargetGroupArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[
            {"Type": "forward", "TargetGroupArn": self.tg_arn}])
        self.seed_history()


def _account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return DEFAULT_ACCOUNT_ID


def _members(params: dict[str, str], name: str) -> list[tuple[str, int]]:
    out = []
    for n in range(1, 1000):
        ident = params.get(f"{name}.member.{n}.Id")
        if ident is None:
            break
        out.append((ident, int(params.get(f"{name}.member.{n}.Port") or TARGET_PORT)))
    return out


def _eks_action(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts[:1] != ["clusters"] or method == "GET":
        return ""
    if len(parts) == 1:
        return "CreateCluster"
    if len(parts) == 2:
        return "DeleteCluster" if method == "DELETE" else ""
    return {"update-config": "UpdateClusterConfig", "updates": "UpdateClusterVersion",
            "node-groups": "CreateNodegroup"}.get(parts[2], "")


def _json_error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


def _request_id() -> str:
    return str(uuid.uuid4())


def _elb_xml(action: str, result: str) -> str:
    return (f'<{action}Response xmlns="{ELB_NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{_request_id()}</RequestId></ResponseMetadata>"
            f"</{action}Response>")


def _query_error(ns: str, code: str, message: str) -> str:
    return (f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{_request_id()}"
            "</RequestId></ErrorResponse>")


def _respond(start_response: Any, status: int, body: bytes, ctype: str) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", ctype),
                                          ("Content-Length", str(len(body))),
                                          ("x-amzn-RequestId", _request_id())])
    return [body]


def _boot(sup: Supervisor, loop: asyncio.AbstractEventLoop, port: int) -> tuple[AwsWorld, Any]:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    started = time.monotonic()
    world = AwsWorld(sup, loop)
    server = make_server("127.0.0.1", port, world, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, name="aws", daemon=True).start()
    imported = time.monotonic()
    world.seed(f"http://127.0.0.1:{port}")
    world.recording = True
    world.boot_seconds = round(time.monotonic() - started, 2)  # moto's import and the seeding
    sup.logs.mkdir(parents=True, exist_ok=True)
    with (sup.logs / "aws.log").open("a") as log:
        log.write(f"moto up on 127.0.0.1:{port}: import {imported - started:.2f} s, seed "
                  f"{time.monotonic() - imported:.2f} s\n")
    return world, server


async def prestart(sup: Supervisor) -> None:
    """Import moto and seed it in a thread while PostgreSQL and the pods start (4-10 s on a
    busy 2-core machine: moto's EC2 backend alone takes ~2.5 s to initialise)."""
    if sup.sb.ports.aws is not None:
        sup.aws_boot = asyncio.create_task(asyncio.to_thread(
            _boot, sup, asyncio.get_running_loop(), sup.sb.ports.aws))


async def start(sup: Supervisor) -> None:
    port = sup.sb.ports.aws
    if port is None:
        return  # a profile without an AWS port: no AWS in this sandbox
    boot = getattr(sup, "aws_boot", None)
    world, server = await (boot if boot is not None else asyncio.to_thread(
        _boot, sup, asyncio.get_running_loop(), port))
    sup.aws = world  # for tests and other addons in this process
    world.sync_targets(sup)
    sup.on_publish.append(world.sync_targets)
    sup.extra_components["aws"] = {"url": f"http://127.0.0.1:{port}", "port": port,
                                   "region": REGION, "pid": os.getpid(),
                                   "boot_seconds": world.boot_seconds}

    async def stop_on_exit() -> None:
        await sup.stopping.wait()
        await asyncio.to_thread(server.shutdown)

    sup.aws_task = asyncio.create_task(stop_on_exit())
