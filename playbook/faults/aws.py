"""Faults through the AWS API, exactly as on staging: stop RDS, reboot it, reboot the cache
cluster, deregister load balancer targets. Each revert is idempotent and waits for the
resource to be usable again (bounded); every write is playbook.control.aws's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playbook.control import aws as control
from playbook.control.context import Context
from playbook.faults.base import Fault, FaultRefused


@dataclass
class RdsStop(Fault):
    """The database is gone: StopDBInstance (playbook: Database Issues, P0/P1)."""

    kind = "aws-rds-stop"
    instance: str = ""
    timeout: float = 120.0

    @property
    def description(self) -> str:
        return f"RDS instance {self.instance} stopped"

    def prepare(self, ctx: Context) -> None:
        self.instance = self.instance or ctx.aws.cfg.resources.rds_instance

    def inject(self, ctx: Context) -> None:
        state = control.rds_status(ctx.aws, self.instance)
        if state != "available":
            raise FaultRefused(f"RDS {self.instance} is {state}, not available")
        control.stop_rds(ctx.aws, self.instance)

    def revert(self, ctx: Context) -> None:
        def state() -> str:
            return control.rds_status(ctx.aws, self.instance)

        where = f"RDS {self.instance}"
        if control.wait_for(state, {"available", "stopped"}, self.timeout, where) == "stopped":
            control.start_rds(ctx.aws, self.instance)
        control.wait_for(state, {"available"}, self.timeout, where)


@dataclass
class RdsReboot(Fault):
    """RebootDBInstance: the database away for a short while (a failover in production)."""

    kind = "aws-rds-reboot"
    instance: str = ""
    timeout: float = 120.0

    @property
    def description(self) -> str:
        return f"RDS instance {self.instance} rebooting"

    def prepare(self, ctx: Context) -> None:
        self.instance = self.instance or ctx.aws.cfg.resources.rds_instance

    def inject(self, ctx: Context) -> None:
        control.reboot_rds(ctx.aws, self.instance)

    def revert(self, ctx: Context) -> None:
        # A reboot cannot be undone, only waited out.
        control.wait_for(lambda: control.rds_status(ctx.aws, self.instance), {"available"},
                         self.timeout, f"RDS {self.instance}")


@dataclass
class CacheReboot(Fault):
    """The cache is unreachable for a while: RebootCacheCluster."""

    kind = "aws-elasticache-reboot"
    cluster: str = ""
    timeout: float = 120.0

    @property
    def description(self) -> str:
        return f"ElastiCache cluster {self.cluster} rebooting"

    def prepare(self, ctx: Context) -> None:
        self.cluster = self.cluster or ctx.aws.cfg.resources.elasticache_cluster

    def inject(self, ctx: Context) -> None:
        control.reboot_cache(ctx.aws, self.cluster)

    def revert(self, ctx: Context) -> None:
        # A reboot cannot be undone, only waited out.
        control.wait_for(lambda: control.cache_status(ctx.aws, self.cluster), {"available"},
                         self.timeout, f"ElastiCache {self.cluster}")


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

    def prepare(self, ctx: Context) -> None:
        self.target_group = self.target_group or ctx.aws.cfg.resources.target_group
        self.arn = control.target_group_arn(ctx.aws, self.target_group)
        registered = control.registered_targets(ctx.aws, self.arn)
        count = max(1, round(len(registered) * self.fraction)) if registered else 0
        self.targets = registered[:count]

    def inject(self, ctx: Context) -> None:
        if not self.targets:
            raise FaultRefused(f"target group {self.target_group} has no registered target")
        control.deregister_targets(ctx.aws, self.arn, self.targets)

    def revert(self, ctx: Context) -> None:
        if self.targets:
            control.register_targets(ctx.aws, self.arn, self.targets)
