"""Playbook 1.1 and 3.2-3.3: the AWS infrastructure under the service.

Severities (playbook "Severity Levels" and 1.3; the shared rules are playbook/severity.py's):
- RDS not available is P0 when the instance cannot serve (stopped, failed, rebooting...): the
  backend's readiness needs the database, so every request fails - a complete outage. A status
  under which it still serves (backing-up, modifying, maintenance...) is P2.
- A load balancer target that is not healthy is P1 (partial degradation: the others carry the
  traffic); no healthy target at all is P0 (every request fails at the load balancer).
- EKS not ACTIVE is P1: running pods keep serving, but the control plane cannot scale, heal or
  roll back - the playbook's mitigations are out of reach.
- ElastiCache not available is P1: readiness checks the cache, so replicas drop out and
  responses slow down - a partial degradation.
- An EC2 node whose status checks fail is P2 (Kubernetes reschedules its pods); no healthy node
  at all is P1.
- CloudTrail is context for the investigation (3.3): attached, never a failure unless it cannot
  be read at all (P3).
- When AWS cannot be asked (AccessDenied, an expired token, throttling, an unreachable
  endpoint) the check fails with that sentence at P1, as every unobserved system does (the
  suite is blind; the health checks say whether users are affected), or at its own level when
  that is lower.
"""

from __future__ import annotations

from typing import Any

import pytest

from playbook import severity as sev
from playbook.config import Profile
from playbook.plugin import attach_json
from playbook.probes import aws as aws_probe
from playbook.severity import CheckFailed

pytestmark = [pytest.mark.incident_type("infrastructure"), pytest.mark.requires("aws")]

RDS_SERVING = {"available", "backing-up", "modifying", "maintenance", "upgrading",
               "configuring-enhanced-monitoring", "configuring-iam-database-auth",
               "configuring-log-exports", "storage-optimization", "renaming",
               "resetting-master-credentials", "converting-to-vpc", "moving-to-vpc"}


def _observed(obs: aws_probe.Observation, level: str) -> None:
    """Attach the answer; fail with its sentence when AWS could not be asked."""
    attach_json(f"{obs.call} {obs.resource}", {"status": obs.status, "error": obs.error,
                                               "elapsed_s": round(obs.elapsed, 3),
                                               "answer": obs.data})
    if obs.error:
        raise CheckFailed(obs.error, sev.unobserved(level))


def _level(request: pytest.FixtureRequest) -> str:
    """The check's own severity (its marker; a parametrized check has one per case)."""
    marker = request.node.get_closest_marker("severity")
    assert marker is not None
    return str(marker.args[0])


@pytest.mark.parametrize("probe, resource, expect, still_serving, impact", [
    pytest.param(aws_probe.eks_cluster, "eks_cluster", "ACTIVE", (),
                 "the control plane cannot scale, heal or roll back",
                 marks=pytest.mark.severity("P1"), id="eks"),
    pytest.param(aws_probe.rds_instance, "rds_instance", "available", RDS_SERVING,
                 "the database cannot serve: a complete outage",
                 marks=pytest.mark.severity("P0"), id="rds"),
    pytest.param(aws_probe.elasticache_cluster, "elasticache_cluster", "available", (),
                 "replicas lose their cache and fail readiness",
                 marks=pytest.mark.severity("P1"), id="elasticache"),
])
def test_resource_status(probe: Any, resource: str, expect: str, still_serving: Any,
                         impact: str, profile: Profile, aws: aws_probe.AwsClients,
                         request: pytest.FixtureRequest) -> None:
    """Playbook 3.2: `aws eks describe-cluster ... cluster.status` is ACTIVE, `aws rds
    describe-db-instances ... DBInstanceStatus` and `aws elasticache describe-cache-clusters
    ... CacheClusterStatus` are `available`."""
    assert profile.aws is not None
    obs = probe(aws, getattr(profile.aws.resources, resource))
    _observed(obs, _level(request))
    problem = obs.problem(expect)
    if problem and obs.status in still_serving:
        raise CheckFailed(f"{problem} - it still serves; watch it", "P2")
    assert problem is None, f"{problem} - {impact}"


@pytest.mark.severity("P1")
def test_targets_healthy(profile: Profile, aws: aws_probe.AwsClients) -> None:
    """`aws elbv2 describe-target-health`: every registered target of the group is healthy,
    and at least `min_healthy_targets` are. Draining targets (deregistered, on their way out)
    are not registered any more: they count only as the reason for too few healthy ones."""
    assert profile.aws is not None
    name, minimum = profile.aws.resources.target_group, profile.aws.min_healthy_targets
    obs = aws_probe.target_health(aws, name)
    for part in (obs.group, obs.health):
        if part is not None:
            _observed(part, "P1")
    attach_json(f"targets of {name}", [vars(t) for t in obs.targets])
    where = f"target group {name} ({aws.where})"

    def listed(targets: list[aws_probe.TargetHealth]) -> str:
        return "; ".join(f"{t.target} {t.state}" + (f" ({t.reason}: {t.description})"
                                                    if t.reason else "") for t in targets)

    draining = [t for t in obs.targets if t.state == "draining"]
    registered = [t for t in obs.targets if t.state != "draining"]
    healthy = [t for t in registered if t.state == "healthy"]
    bad = [t for t in registered if t.state != "healthy"]
    level = sev.targets_healthy(len(healthy), len(registered), minimum)
    if level and not registered:
        gone = f": {listed(draining)}" if draining else ""
        raise CheckFailed(f"{where} has no registered targets{gone} - the load balancer "
                          "answers 503 to every request", level)
    if level and not healthy:
        raise CheckFailed(f"no healthy target in {where}: {listed(bad + draining)}", level)
    if level and bad:
        raise CheckFailed(f"{len(bad)} of {len(registered)} registered targets not healthy "
                          f"in {where}: {listed(bad)}", level)
    if level:
        raise CheckFailed(
            f"only {len(healthy)} healthy target(s) in {where}, below the minimum of {minimum}"
            + (f"; deregistered: {listed(draining)}" if draining else ""), level)


@pytest.mark.severity("P2")
def test_ec2_instance_status(profile: Profile, aws: aws_probe.AwsClients) -> None:
    """`aws ec2 describe-instance-status`: the cluster's instances are running, status ok."""
    assert profile.aws is not None
    res = profile.aws.resources
    obs, instances = aws_probe.ec2_instances(aws, res.ec2_tag_key, res.ec2_tag_value)
    _observed(obs, "P2")
    attach_json("instance status", [vars(i) for i in instances])
    where = f"EC2 instances tagged {res.ec2_tag_key}={res.ec2_tag_value} ({aws.where})"
    bad = [i for i in instances if not i.ok]
    level = sev.instances_ok(len(instances) - len(bad), len(instances))
    if level and not instances:
        raise CheckFailed(f"no {where}: the cluster has no nodes, or the tag is wrong", level)
    listed = "; ".join(f"{i.instance_id} ({i.name or 'no Name'}) state {i.state}, instance "
                       f"status {i.instance_status}, system status {i.system_status}"
                       for i in bad)
    if level and len(bad) == len(instances):
        raise CheckFailed(f"none of the {where} is running with status ok: {listed}", level)
    if level:
        raise CheckFailed(f"{len(bad)} of {len(instances)} {where} not ok: {listed}", level)


@pytest.mark.severity("P3")
def test_cloudtrail_recent_changes(profile: Profile, aws: aws_probe.AwsClients) -> None:
    """Playbook 3.3: the infrastructure changes of the last N hours, attached as context."""
    assert profile.aws is not None
    hours = profile.aws.cloudtrail_lookback_hours
    obs, events = aws_probe.cloudtrail_changes(aws, hours)
    rows = [{"time": e.time.isoformat(), "user": e.user, "action": e.event,
             "source": e.source, "resources": e.resources} for e in events]
    attach_json(f"CloudTrail changes, last {hours:g} h ({len(rows)})", rows)
    if obs.error:
        raise CheckFailed(obs.error + " - recent changes are unknown for this investigation",
                          sev.unobserved("P3"))
