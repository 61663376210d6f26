"""Writes to AWS through its API, exactly as the CLI would make them on staging: stop, start
and reboot the RDS instance, reboot the ElastiCache cluster, deregister and register the load
balancer's targets - with the reads a write needs (statuses, the target group's targets).

Every call uses the run's AwsClients (playbook.probes.aws: boto3's credential chain, the
profile's timeouts and retries) and raises RuntimeError("AWS <Call> failed: ...") when AWS
refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from playbook.probes.aws import AwsClients


def _call(what: str, fn: Callable[..., Any], **kw: Any) -> Any:
    try:
        return fn(**kw)
    except (ClientError, BotoCoreError) as e:
        raise RuntimeError(f"AWS {what} failed: {e}") from None


def wait_for(read: Callable[[], str], want: set[str], timeout: float, what: str) -> str:
    """Poll `read` until it answers one of `want` (bounded): the state it reached."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = read()
        if state in want:
            return state
        time.sleep(0.5)
    raise TimeoutError(f"{what} is {state!r}, not {' or '.join(sorted(want))}, after "
                       f"{timeout:g} s")


# --- RDS -------------------------------------------------------------------------------------


def rds_status(aws: AwsClients, instance: str) -> str:
    out = _call("DescribeDBInstances", aws.client("rds").describe_db_instances,
                DBInstanceIdentifier=instance)
    return out["DBInstances"][0]["DBInstanceStatus"]


def stop_rds(aws: AwsClients, instance: str) -> None:
    _call("StopDBInstance", aws.client("rds").stop_db_instance, DBInstanceIdentifier=instance)


def start_rds(aws: AwsClients, instance: str) -> None:
    _call("StartDBInstance", aws.client("rds").start_db_instance, DBInstanceIdentifier=instance)


def reboot_rds(aws: AwsClients, instance: str) -> None:
    _call("RebootDBInstance", aws.client("rds").reboot_db_instance,
          DBInstanceIdentifier=instance)


# --- ElastiCache -----------------------------------------------------------------------------


def cache_status(aws: AwsClients, cluster: str) -> str:
    out = _call("DescribeCacheClusters", aws.client("elasticache").describe_cache_clusters,
                CacheClusterId=cluster)
    return out["CacheClusters"][0]["CacheClusterStatus"]


def reboot_cache(aws: AwsClients, cluster: str) -> None:
    """RebootCacheCluster, every node of it."""
    client = aws.client("elasticache")
    nodes = _call("DescribeCacheClusters", client.describe_cache_clusters,
                  CacheClusterId=cluster, ShowCacheNodeInfo=True)
    ids = [n["CacheNodeId"] for n in nodes["CacheClusters"][0].get("CacheNodes", [])]
    _call("RebootCacheCluster", client.reboot_cache_cluster, CacheClusterId=cluster,
          CacheNodeIdsToReboot=ids or ["0001"])


# --- the load balancer's targets -------------------------------------------------------------


def target_group_arn(aws: AwsClients, name: str) -> str:
    groups = _call("DescribeTargetGroups", aws.client("elbv2").describe_target_groups,
                   Names=[name])
    return groups["TargetGroups"][0]["TargetGroupArn"]


def registered_targets(aws: AwsClients, arn: str) -> list[dict[str, Any]]:
    """The targets in service (healthy, initial or unhealthy; not draining)."""
    health = _call("DescribeTargetHealth", aws.client("elbv2").describe_target_health,
                   TargetGroupArn=arn)
    return [d["Target"] for d in health["TargetHealthDescriptions"]
            if d["TargetHealth"]["State"] in ("healthy", "initial", "unhealthy")]


def deregister_targets(aws: AwsClients, arn: str, targets: list[dict[str, Any]]) -> None:
    _call("DeregisterTargets", aws.client("elbv2").deregister_targets, TargetGroupArn=arn,
          Targets=targets)


def register_targets(aws: AwsClients, arn: str, targets: list[dict[str, Any]]) -> None:
    _call("RegisterTargets", aws.client("elbv2").register_targets, TargetGroupArn=arn,
          Targets=targets)
