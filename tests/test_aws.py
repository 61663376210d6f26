"""checks/test_aws.py against the sandbox's moto server (boto3 over HTTP), and against a fake
AWS endpoint that answers AccessDenied, ExpiredToken or throttling, or does not answer at all.

The faults go through the AWS API, as a game day's would: StopDBInstance really stops the
sandbox's PostgreSQL, DeregisterTargets takes the pod out of the front's routing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest

from playbook import config
from playbook.probes import aws as aws_probe
from playbook.probes.aws import local_credentials_env
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox, write_sandbox_profile
from tests.conftest import run_suite

CHECKS = "checks/test_aws.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """This module's own sandbox: its faults (reverted by each test) stay out of the others."""
    sb = start_sandbox(tmp_path_factory.mktemp("aws-sandbox"), without=("monitoring",))
    try:
        yield sb
    finally:
        stop_sandbox(sb)


_CLIENTS: dict[tuple[str, str], Any] = {}


def client(sb: Sandbox, service: str) -> Any:
    """A boto3 client on the sandbox's endpoint, made once (creating one costs ~0.3 s)."""
    key = (str(sb.path), service)
    if key not in _CLIENTS:
        _CLIENTS[key] = _new_client(sb, service)
    return _CLIENTS[key]


def _new_client(sb: Sandbox, service: str) -> Any:
    assert sb.profile.aws is not None
    env = local_credentials_env(sb.profile.aws, {}) or {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    session = boto3.Session(region_name=sb.profile.aws.region,
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    return session.client(service, endpoint_url=sb.profile.aws.endpoint_url)


def wait_for(what: str, probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def db_status(sb: Sandbox) -> str:
    rds = client(sb, "rds")
    return rds.describe_db_instances(DBInstanceIdentifier="security-dashboard-prod")[
        "DBInstances"][0]["DBInstanceStatus"]


def pg_up(sb: Sandbox) -> bool:
    assert sb.profile.database is not None
    try:
        with psycopg.connect(sb.profile.database.url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def target_group(sb: Sandbox) -> str:
    key = (str(sb.path), "tg-arn")
    if key not in _CLIENTS:
        _CLIENTS[key] = client(sb, "elbv2").describe_target_groups(
            Names=["security-dashboard-tg"])["TargetGroups"][0]["TargetGroupArn"]
    return _CLIENTS[key]


def health(sb: Sandbox) -> dict[int, str]:
    answer = client(sb, "elbv2").describe_target_health(TargetGroupArn=target_group(sb))
    return {d["Target"]["Port"]: d["TargetHealth"]["State"]
            for d in answer["TargetHealthDescriptions"]}


def attachment(run: Any, test: str, prefix: str) -> Any:
    for result in run.allure.glob("*-result.json"):
        data = json.loads(result.read_text())
        if data.get("name") != test:
            continue
        for att in data.get("attachments", []):
            if att["name"].startswith(prefix):
                return json.loads((run.allure / att["source"]).read_text())
    raise AssertionError(f"no attachment {prefix!r} on {test}")


# --- the healthy sandbox -------------------------------------------------------------------


@pytest.mark.sandbox
def test_green_on_healthy_sandbox(world: Sandbox, tmp_path: Path) -> None:
    run = run_suite(world.path, CHECKS, tmp=tmp_path)
    assert run.returncode == 0, run.output
    assert run.verdict == {"verdict": "healthy", "failures": []}
    assert "6 passed" in run.output
    # CloudTrail: context, not a failure - the seeded changes inside the 2 h window, newest
    # first, and the load balancer controller's registration of the pods at start.
    events = attachment(run, "test_cloudtrail_recent_changes", "CloudTrail changes")
    actions = [(e["action"], e["user"]) for e in events]
    assert ("UpdateClusterConfig", "platform-engineer") in actions
    assert ("RegisterTargets", "aws-load-balancer-controller") in actions
    assert "ModifyDBInstance" not in [a for a, _ in actions]  # 3 h ago: outside the window
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True)
    targets = attachment(run, "test_targets_healthy", "targets of security-dashboard-tg")
    ports = sorted(int(t["target"].split(":")[1]) for t in targets)
    assert ports == sorted(p["port"] for p in world.pods())  # one target per pod


# --- RDS through the API -------------------------------------------------------------------


@pytest.mark.sandbox
def test_rds_stop_really_stops_postgres_and_start_brings_it_back(world: Sandbox,
                                                                 tmp_path: Path) -> None:
    rds = client(world, "rds")
    answer = rds.stop_db_instance(DBInstanceIdentifier="security-dashboard-prod")
    assert answer["DBInstance"]["DBInstanceStatus"] == "stopping"
    try:
        wait_for("RDS stopped", lambda: db_status(world) == "stopped")
        assert not pg_up(world), "PostgreSQL still answers after StopDBInstance"
        with pytest.raises(rds.exceptions.ClientError, match="InvalidDBInstanceState"):
            rds.reboot_db_instance(DBInstanceIdentifier="security-dashboard-prod")
        # The AWS view and the database itself agree.
        run = run_suite(world.path, f"{CHECKS}::test_resource_status[rds]",
                        "checks/test_database.py::test_select_one", tmp=tmp_path)
        failure = run.failure("test_resource_status[rds]")
        assert failure is not None, run.output
        assert failure["severity"] == "P0"
        assert failure["message"] == (
            "RDS instance security-dashboard-prod is 'stopped', expected 'available' "
            f"(rds:DescribeDBInstances, us-east-1 at {world.profile.aws.endpoint_url}) - the "
            "database cannot serve: a complete outage")
        failure = run.failure("test_select_one")
        assert failure is not None and "connection refused" in failure["message"]
    finally:
        if db_status(world) in ("stopping", "stopped"):
            wait_for("RDS stopped", lambda: db_status(world) == "stopped")
            rds.start_db_instance(DBInstanceIdentifier="security-dashboard-prod")
    wait_for("RDS available", lambda: db_status(world) == "available")
    assert pg_up(world)
    # Reboot: `rebooting` while PostgreSQL restarts, then `available` with it answering.
    answer = rds.reboot_db_instance(DBInstanceIdentifier="security-dashboard-prod")
    assert answer["DBInstance"]["DBInstanceStatus"] == "rebooting"
    wait_for("RDS available after reboot", lambda: db_status(world) == "available")
    assert pg_up(world)
    # The writes are in CloudTrail, with who made them.
    trail = client(world, "cloudtrail").lookup_events(LookupAttributes=[
        {"AttributeKey": "ResourceName", "AttributeValue": "security-dashboard-prod"}])
    names = [e["EventName"] for e in trail["Events"]]
    assert names[:3] == ["RebootDBInstance", "StartDBInstance", "StopDBInstance"]
    assert trail["Events"][0]["Username"] == "testing"
    # The service is back: the pods reconnect to the restarted database.
    wait_for("pods ready", lambda: all(p["ready"] for p in world.pods()))


# --- EKS, ElastiCache and EC2 through the API ----------------------------------------------


def redis_up(sb: Sandbox) -> bool:
    assert sb.profile.sandbox is not None
    try:
        with socket.create_connection(("127.0.0.1", sb.profile.sandbox.ports.redis), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.sandbox
def test_cluster_update_cache_reboot_and_stopped_node(world: Sandbox, tmp_path: Path) -> None:
    """Three writes at once, one suite run: EKS UPDATING (P1), the cache node rebooting -
    Redis really down meanwhile - (P1), one EC2 node stopped (P2). Then all come back."""
    eks, cache, ec2 = client(world, "eks"), client(world, "elasticache"), client(world, "ec2")
    node = ec2.describe_instances(Filters=[{"Name": "tag:eks:cluster-name", "Values": [
        "security-dashboard-eks"]}])["Reservations"][0]["Instances"][0]["InstanceId"]
    eks.update_cluster_config(name="security-dashboard-eks",
                              logging={"clusterLogging": [{"types": ["api"], "enabled": True}]})
    answer = cache.reboot_cache_cluster(CacheClusterId="security-dashboard-redis",
                                        CacheNodeIdsToReboot=["0001"])
    assert answer["CacheCluster"]["CacheClusterStatus"] == "rebooting cache cluster nodes"
    ec2.stop_instances(InstanceIds=[node])
    try:
        wait_for("Redis down during the cache reboot", lambda: not redis_up(world), 5)
        # Without its cache no pod is ready (/api/ready checks it): no healthy target at all.
        wait_for("every target unhealthy", lambda: set(health(world).values()) == {
            "unhealthy"}, 10)
        run = run_suite(world.path, *(f"{CHECKS}::{t}" for t in (
            "test_resource_status[eks]", "test_resource_status[elasticache]",
            "test_ec2_instance_status", "test_targets_healthy")), tmp=tmp_path)
    finally:
        ec2.start_instances(InstanceIds=[node])
    where = f"us-east-1 at {world.profile.aws.endpoint_url}"
    expected = {
        "test_resource_status[eks]": (
            "P1", "EKS cluster security-dashboard-eks is 'UPDATING', expected 'ACTIVE' "
            f"(eks:DescribeCluster, {where}) - the control plane cannot scale, heal or roll "
            "back"),
        "test_resource_status[elasticache]": (
            "P1", "ElastiCache cluster security-dashboard-redis is 'rebooting cache cluster "
            f"nodes', expected 'available' (elasticache:DescribeCacheClusters, {where}) - "
            "replicas lose their cache and fail readiness"),
        "test_ec2_instance_status": (
            "P2", "1 of 2 EC2 instances tagged eks:cluster-name=security-dashboard-eks "
            f"({where}) not ok: {node} (security-dashboard-eks-node-1) state stopped, instance "
            "status not-applicable, system status not-applicable"),
    }
    for test, (severity, message) in expected.items():
        failure = run.failure(test)
        assert failure is not None, run.output
        assert (failure["severity"], failure["message"]) == (severity, message)
    failure = run.failure("test_targets_healthy")
    assert failure is not None, run.output
    assert failure["severity"] == "P0"
    assert failure["message"].startswith(
        f"no healthy target in target group security-dashboard-tg ({where}): 127.0.0.1:")
    assert failure["message"].count("unhealthy (Target.FailedHealthChecks: Health checks "
                                    "failed)") == 2
    # Back: the node runs with status ok, the cluster is ACTIVE, the cache node answers.
    wait_for("cluster ACTIVE", lambda: eks.describe_cluster(name="security-dashboard-eks")[
        "cluster"]["status"] == "ACTIVE")
    wait_for("cache available", lambda: cache.describe_cache_clusters(
        CacheClusterId="security-dashboard-redis")["CacheClusters"][0][
        "CacheClusterStatus"] == "available")
    assert redis_up(world)
    status = ec2.describe_instance_status(InstanceIds=[node])["InstanceStatuses"][0]
    assert (status["InstanceState"]["Name"], status["InstanceStatus"]["Status"]) == (
        "running", "ok")
    wait_for("pods ready", lambda: all(p["ready"] for p in world.pods()))


# --- the target group ----------------------------------------------------------------------


def served_pods(sb: Sandbox, n: int = 8) -> set[str]:
    base = sb.profile.service.base_url
    return {httpx.get(base + "/api/health", timeout=2).json()["pod"] for _ in range(n)}


@pytest.mark.sandbox
def test_deregistered_target_is_red_and_out_of_routing(world: Sandbox, tmp_path: Path) -> None:
    pods = world.pods()
    victim, other = pods[0], pods[1]
    elb, arn = client(world, "elbv2"), target_group(world)
    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1",
                                                         "Port": victim["port"]}])
    try:
        assert health(world)[victim["port"]] == "draining"
        # The load balancer stops routing to it: only the other pod answers.
        wait_for("front routes around the deregistered pod",
                 lambda: served_pods(world) == {other["name"]}, timeout=5)
        run = run_suite(world.path, f"{CHECKS}::test_targets_healthy", tmp=tmp_path)
        failure = run.failure("test_targets_healthy")
        assert failure is not None, run.output
        assert failure["severity"] == "P1"
        assert failure["message"] == (
            "only 1 healthy target(s) in target group security-dashboard-tg (us-east-1 at "
            f"{world.profile.aws.endpoint_url}), below the minimum of 2; deregistered: "
            f"127.0.0.1:{victim['port']} draining (Target.DeregistrationInProgress: Target "
            "deregistration is in progress)")
    finally:
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1",
                                                           "Port": victim["port"]}])
    assert health(world)[victim["port"]] == "healthy"
    wait_for("front routes to both again",
             lambda: served_pods(world, 12) == {victim["name"], other["name"]}, timeout=5)
    users = [e["Username"] for e in client(world, "cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName",
                           "AttributeValue": "DeregisterTargets"}])["Events"]]
    assert users[0] == "testing"


@pytest.mark.sandbox
def test_targets_follow_pod_replacement(world: Sandbox, tmp_path: Path) -> None:
    """A pod deleted through the Kubernetes API: the controller deregisters its target (it
    drains) and registers the replacement; with enough healthy targets the check stays green."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    assert world.profile.kubernetes is not None
    before = {p["name"]: p["port"] for p in world.pods()}
    victim = sorted(before)[0]
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=world.profile.kubernetes.kubeconfig,
                                context=world.profile.kubernetes.context,
                                client_configuration=cfg)
    with k8s.ApiClient(cfg) as api:
        k8s.CoreV1Api(api).delete_namespaced_pod(victim, "security-dashboard")
    new = wait_for("replacement ready", lambda: [
        p for p in world.pods() if p["name"] not in before and p["ready"]])
    wait_for("replacement healthy", lambda: health(world).get(new[0]["port"]) == "healthy")
    states = health(world)
    if new[0]["port"] != before[victim]:
        assert states[before[victim]] == "draining"
    run = run_suite(world.path, f"{CHECKS}::test_targets_healthy", tmp=tmp_path)
    assert run.verdict == {"verdict": "healthy", "failures": []}, run.output
    events = client(world, "cloudtrail").lookup_events(LookupAttributes=[
        {"AttributeKey": "Username", "AttributeValue": "aws-load-balancer-controller"}])
    names = [e["EventName"] for e in events["Events"]]
    assert names[:2] == ["RegisterTargets", "DeregisterTargets"] or names[:2] == [
        "DeregisterTargets", "RegisterTargets"]


@pytest.mark.sandbox
def test_target_unhealthy_when_its_pod_is_not_ready(world: Sandbox, tmp_path: Path) -> None:
    """A hung pod (SIGSTOP) fails its readiness probe: its target turns unhealthy (P1). (No
    healthy target at all, P0: see the cache reboot above.)"""
    pods = world.pods()
    stopped: list[int] = []
    try:
        os.kill(pods[0]["pid"], signal.SIGSTOP)
        stopped.append(pods[0]["pid"])
        wait_for("target unhealthy", lambda: health(world)[pods[0]["port"]] == "unhealthy")
        run = run_suite(world.path, f"{CHECKS}::test_targets_healthy", tmp=tmp_path)
        failure = run.failure("test_targets_healthy")
        assert failure is not None, run.output
        assert failure["severity"] == "P1"
        assert failure["message"].startswith("1 of 2 registered targets not healthy in "
                                             "target group security-dashboard-tg")
        assert failure["message"].endswith(
            f"127.0.0.1:{pods[0]['port']} unhealthy (Target.FailedHealthChecks: Health "
            "checks failed)")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    wait_for("target healthy again", lambda: health(world)[pods[0]["port"]] == "healthy")


# --- AWS saying no, or not answering ---------------------------------------------------------

ALL_CHECKS = ("test_resource_status[eks]", "test_resource_status[rds]",
              "test_resource_status[elasticache]", "test_targets_healthy",
              "test_ec2_instance_status",
              "test_cloudtrail_recent_changes")
# service (from the request's credential scope) -> protocol
PROTOCOLS = {"rds": "query", "elasticloadbalancing": "query", "elasticache": "query",
             "ec2": "ec2", "eks": "rest-json", "cloudtrail": "json"}
ERRORS = {  # mode -> (HTTP status, query code, EC2 code, JSON code, message)
    "denied": (403, "AccessDenied", "UnauthorizedOperation", "AccessDeniedException",
               "User: arn:aws:iam::123456789012:user/ci is not authorized to perform this "
               "action"),
    "expired": (403, "ExpiredToken", "RequestExpired", "ExpiredTokenException",
                "The security token included in the request is expired"),
    "throttled": (400, "Throttling", "RequestLimitExceeded", "ThrottlingException",
                  "Rate exceeded"),
}


@contextmanager
def fake_aws(mode: str) -> Iterator[tuple[str, Counter[str]]]:
    """A local endpoint answering every AWS call with `mode`'s error in each protocol's
    format; counts the requests per service:action."""
    seen: Counter[str] = Counter()
    status, query_code, ec2_code, json_code, message = ERRORS[mode]

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/",
                          self.headers.get("authorization", ""))
            service = m.group(1) if m else "?"
            action = (re.search(r"Action=(\w+)", body) or re.search(
                r"\.(\w+)$", self.headers.get("x-amz-target", "")))
            seen[f"{service}:{action.group(1) if action else self.path}"] += 1
            proto = PROTOCOLS.get(service, "query")
            headers = {"x-amzn-RequestId": "fake-request"}
            if proto == "query":
                data = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{query_code}</Code>"
                        f"<Message>{message}</Message></Error><RequestId>fake</RequestId>"
                        "</ErrorResponse>")
                ctype = "text/xml"
            elif proto == "ec2":
                data = (f"<Response><Errors><Error><Code>{ec2_code}</Code><Message>{message}"
                        "</Message></Error></Errors><RequestID>fake</RequestID></Response>")
                ctype = "text/xml"
            else:
                data = json.dumps({"__type": json_code, "message": message})
                ctype = "application/x-amz-json-1.1"
                headers["x-amzn-ErrorType"] = json_code
            raw = data.encode()
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(raw)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def aws_profile(tmp: Path, endpoint: str, **aws: Any) -> Path:
    """A sandbox-shaped profile whose AWS section points at `endpoint` (nothing started)."""
    settings = {"endpoint_url": endpoint, "connect_timeout": 1.0, "read_timeout": 1.0,
                "max_attempts": 2, **aws}
    tmp.mkdir(parents=True, exist_ok=True)
    path = write_sandbox_profile(tmp, aws=settings)
    shutil.rmtree(config.load(str(path)).sandbox.state_dir, ignore_errors=True)  # unused
    return path


@pytest.mark.sandbox
@pytest.mark.parametrize("mode, expect", [
    ("denied", "AWS denied {call} on {res} (AccessDenied: User: arn:aws:iam::123456789012:"
               "user/ci is not authorized to perform this action, us-east-1 at {url}): the "
               "credentials in use lack this permission"),
    ("throttled", "AWS throttled {call} on {res} (Throttling: Rate exceeded, us-east-1 at "
                  "{url}) and was still throttling after 2 attempts"),
])
def test_aws_errors_are_one_sentence(mode: str, expect: str, tmp_path: Path) -> None:
    # Denied: every check; throttled (slower: backoff between attempts): one per protocol.
    tests = ["test_resource_status[rds]", "test_resource_status[eks]",
             "test_cloudtrail_recent_changes"] if mode == "throttled" else list(ALL_CHECKS)
    with fake_aws(mode) as (url, seen):
        start = time.monotonic()
        run = run_suite(aws_profile(tmp_path, url), *(f"{CHECKS}::{t}" for t in tests),
                        tmp=tmp_path)
        took = time.monotonic() - start
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output
    assert sorted(run.failed_tests()) == sorted(f"{CHECKS}::{t}" for t in tests), run.output
    rds = run.failure("test_resource_status[rds]")
    assert rds is not None
    # AWS cannot be asked: the suite is blind (P1, as for every unobserved system), which
    # is not an outage by itself; a check of lower level keeps its own.
    assert rds["severity"] == "P1"
    if mode == "denied":
        assert run.failure("test_ec2_instance_status")["severity"] == "P2"
    assert rds["message"].startswith(expect.format(
        call="rds:DescribeDBInstances", res="RDS instance security-dashboard-prod", url=url))
    calls = {"test_resource_status[eks]": ("eks:DescribeCluster", "EKS cluster "
                                           "security-dashboard-eks"),
             "test_resource_status[elasticache]": ("elasticache:DescribeCacheClusters",
                                                   "ElastiCache cluster "
                                                   "security-dashboard-redis"),
             "test_targets_healthy": ("elbv2:DescribeTargetGroups",
                                      "target group security-dashboard-tg"),
             "test_cloudtrail_recent_changes": ("cloudtrail:LookupEvents",
                                                "CloudTrail events of the last 2 h")}
    for test, (call, res) in calls.items():
        if test not in tests:
            continue
        failure = run.failure(test)
        assert failure is not None
        assert f"{call} on {res}" in failure["message"], failure["message"]
        assert "\n" not in failure["message"]
    assert run.failure("test_cloudtrail_recent_changes")["severity"] == "P3"
    # Bounded: throttling is retried up to max_attempts, a denial is final at once.
    attempts = 2 if mode == "throttled" else 1
    assert seen["rds:DescribeDBInstances"] == attempts
    assert sum(seen.values()) == len(tests) * attempts
    assert took < 30, f"{took:.1f} s"


@pytest.mark.sandbox
def test_unreachable_endpoint_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    run = run_suite(aws_profile(tmp_path / "dead", dead), CHECKS, tmp=tmp_path / "dead")
    rds = run.failure("test_resource_status[rds]")
    assert rds is not None, run.output
    assert rds["message"] == (
        "rds:DescribeDBInstances on RDS instance security-dashboard-prod: cannot reach the AWS "
        f"endpoint {dead} (connection refused or closed, 2 attempts) - is it up, is the URL "
        "right?")
    assert len(run.verdict["failures"]) == 6


def probe_clients(endpoint: str, **settings: Any) -> aws_probe.AwsClients:
    cfg = config.Aws(endpoint_url=endpoint, **{"connect_timeout": 1.0, "read_timeout": 1.0,
                                               "max_attempts": 2, **settings})
    clients = aws_probe.AwsClients(cfg)
    clients.session = boto3.Session(region_name=cfg.region, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")
    return clients


@pytest.mark.unit
def test_hanging_endpoint_is_bounded_by_the_read_timeout() -> None:
    """An endpoint that accepts connections and never answers (probe level)."""
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(16)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}"
        clients = probe_clients(url, read_timeout=0.5, max_attempts=2)
        start = time.monotonic()
        obs = aws_probe.rds_instance(clients, "security-dashboard-prod")
        took = time.monotonic() - start
    assert obs.error == (
        "rds:DescribeDBInstances on RDS instance security-dashboard-prod: the AWS endpoint "
        f"{url} did not answer within 0.5 s (2 attempts)")
    assert took < clients.budget, f"{took:.1f} s, budget {clients.budget:.1f} s"


@pytest.mark.unit
def test_expired_token_is_one_sentence() -> None:
    """ExpiredToken in the query protocol (RDS) and in JSON (CloudTrail), probe level."""
    with fake_aws("expired") as (url, seen):
        clients = probe_clients(url)
        rds = aws_probe.rds_instance(clients, "security-dashboard-prod")
        trail, _ = aws_probe.cloudtrail_changes(clients, 2)
    assert rds.error == (
        "AWS rejected rds:DescribeDBInstances on RDS instance security-dashboard-prod: the "
        "credentials have expired (ExpiredToken: The security token included in the request is "
        f"expired, us-east-1 at {url}) - refresh them (new STS session, `aws sso login`)")
    assert trail.error is not None and trail.error.startswith(
        "AWS rejected cloudtrail:LookupEvents on CloudTrail events of the last 2 h: the "
        "credentials have expired (ExpiredTokenException: ")
    assert seen == {"rds:DescribeDBInstances": 1, "cloudtrail:LookupEvents": 1}  # no retry


@pytest.mark.unit
def test_no_credentials_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's chain finds nothing (and asks no metadata service: loopback only)."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cfg = config.Aws(endpoint_url="http://127.0.0.1:9", connect_timeout=0.5, read_timeout=0.5)
    obs = aws_probe.eks_cluster(aws_probe.AwsClients(cfg), "security-dashboard-eks")
    assert obs.error == (
        "no AWS credentials for eks:DescribeCluster on EKS cluster security-dashboard-eks: "
        "boto3's chain (environment, ~/.aws, instance role) found none - for the local sandbox "
        "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")


@pytest.mark.unit
def test_dummy_keys_only_for_a_loopback_endpoint_without_keys() -> None:
    local = config.Aws(endpoint_url="http://127.0.0.1:18500")
    assert aws_probe.local_credentials_env(local, {}) == {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    assert aws_probe.local_credentials_env(local, {"AWS_ACCESS_KEY_ID": "AKIA..."}) == {}
    assert aws_probe.local_credentials_env(local, {"AWS_PROFILE": "ci"}) == {}
    assert aws_probe.local_credentials_env(config.Aws(), {}) == {}  # real AWS
    assert aws_probe.local_credentials_env(
        config.Aws(endpoint_url="https://vpce-1.rds.us-east-1.vpce.amazonaws.com"), {}) == {}
    assert aws_probe.local_credentials_env(None, {}) == {}
