"""Faults through the AWS API, exactly as on staging: stop RDS, reboot the cache cluster,
deregister load balancer targets. Each revert is idempotent and waits for the resource to be
usable again (bounded)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from playbook.faults.base import Fault, FaultRefused


def _wait(read: Any, want: set[str], timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = read()
        if state in want:
            return state
        time.sleep(0.5)
    raise TimeoutError(f"{what} is {state!r}, not {' or '.join(sorted(want))}, after "
                       f"{timeout:g} s")


def _aws_call(what: str, fn: Any, **kw: Any) -> Any:
    try:
        return fn(**kw)
    except (ClientError, BotoCoreError) as e:
        raise RuntimeError(f"AWS {what} failed: {e}") from None


@dataclass
class RdsStop(Fault):
    """The database is gone: StopDBInstance (playbook: Database Issues, P0/P1)."""

    kind = "aws-rds-stop"
    instance: str = ""
    timeout: float = 120.0

    @property
    def description(self) -> str:
        return f"RDS instance {self.instance} stopped"

    def prepare(self, ctx: Any) -> None:
        self.instance = self.instance or ctx.profile.aws.resources.rds_instance

    def _state(self, ctx: Any) -> str:
        out = _aws_call("DescribeDBInstances", ctx.aws.client("rds").describe_db_instances,
                        DBInstanceIdentifier=self.instance)
        return out["DBInstances"][0]["DBInstanceStatus"]

    def inject(self, ctx: Any) -> None:
        if self._state(ctx) != "available":
            raise FaultRefused(f"RDS {self.instance} is {self._state(ctx)}, not available")
        _aws_call("StopDBInstance", ctx.aws.client("rds").stop_db_instance,
                  DBInstanceIdentifier=self.instance)

    def revert(self, ctx: Any) -> None:
        state = _wait(lambda: self._state(ctx), {"available", "stopped"}, self.timeout,
                      f"RDS {self.instance}")
        if state == "stopped":
            _aws_call("StartDBInstance", ctx.aws.client("rds").start_db_instance,
                      DBInstanceIdentifier=self.instance)
        _wait(lambda: self._state(ctx), {"available"}, self.timeout, f"RDS {self.instance}")


@dataclass
class CacheReboot(Fault):
    """The cache is unreachable for a while: RebootCacheCluster."""

    kind = "aws-elasticache-reboot"
    cluster: str = ""
    timeout: float = 120.0

    @property
    def description(self) -> str:
        return f"ElastiCache cluster {self.cluster} rebooting"

    def prepare(self, ctx: Any) -> None:
        self.cluster = self.cluster or ctx.profile.aws.resources.elasticache_cluster

    def _state(self, ctx: Any) -> str:
        out = _aws_call("DescribeCacheClusters",
                        ctx.aws.client("elasticache").describe_cache_clusters,
                        CacheClusterId=self.cluster)
        return out["CacheClusters"][0]["CacheClusterStatus"]

    def inject(self, ctx: Any) -> None:
        client = ctx.aws.client("elasticache")
        nodes = _aws_call("DescribeCacheClusters", client.describe_cache_clusters,
                          CacheClusterId=self.cluster, ShowCacheNodeInfo=True)
        ids = [n["CacheNodeId"] for n in nodes["CacheClusters"][0].get("CacheNodes", [])]
        _aws_call("RebootCacheCluster", client.reboot_cache_cluster,
                  CacheClusterId=self.cluster, CacheNodeIdsToReboot=ids or ["0001"])

    def revert(self, ctx: Any) -> None:
        # A reboot cannot be undone, only waited out.
        _wait(lambda: self._state(ctx), {"available"}, self.timeout,
              f"ElastiCache {self.cluster}")


@dataclass
class TargetsDeregistered(Fault):
    """The load balancer loses its targets: DeregisterTargets (all, or a fraction)."""

    kind = "aws-targets-deregistered"
    target_group: str = ""
    fraction: float = 1.0
    arn: str = ""
    targets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def description(self) -> str:
        return (f"{len(self.targets)} target(s) deregistered from {self.target_group}")

    def prepare(self, ctx: Any) -> None:
        self.target_group = self.target_group or ctx.profile.aws.resources.target_group
        elb = ctx.aws.client("elbv2")
        groups = _aws_call("DescribeTargetGroups", elb.describe_target_groups,
                           Names=[self.target_group])
        self.arn = groups["TargetGroups"][0]["TargetGroupArn"]
        health = _aws_call("DescribeTargetHealth", elb.describe_target_health,
                           TargetGroupArn=self.arn)
        registered = [d["Target"] for d in health["TargetHealthDescriptions"]
                      if d["TargetHealth"]["State"] in ("healthy", "initial", "unhealthy")]
        count = max(1, round(len(registered) * self.fraction)) if registered else 0
        self.targets = registered[:count]

    def inject(self, ctx: Any) -> None:
        if not self.targets:
            raise FaultRefused(f"target group {self.target_group} has no registered target")
        _aws_call("DeregisterTargets", ctx.aws.client("elbv2").deregister_targets,
                  TargetGroupArn=self.arn, Targets=self.targets)

    def revert(self, ctx: Any) -> None:
        if self.targets:
            _aws_call("RegisterTargets", ctx.aws.client("elbv2").register_targets,
                      TargetGroupArn=self.arn, Targets=self.targets)


@dataclass
class RdsReboot(Fault):
    """RebootDBInstance: the database away for a short while (a failover in production)."""

    kind = "aws-rds-reboot"
    instance: str = ""
    timeout: float = 120.0

    @property
    def description(self) -> str:
        return f"RDS instance {self.instance} rebooting"

    def prepare(self, ctx: Any) -> None:
        self.instance = self.instance or ctx.profile.aws.resources.rds_instance

    def inject(self, ctx: Any) -> None:
        _aws_call("RebootDBInstance", ctx.aws.client("rds").reboot_db_instance,
                  DBInstanceIdentifier=self.instance)

    def revert(self, ctx: Any) -> None:
        # A reboot cannot be undone, only waited out.
        _wait(lambda: RdsStop(self.instance)._state(ctx), {"available"}, self.timeout,
              f"RDS {self.instance}")
