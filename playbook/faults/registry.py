"""Every fault kind the journal may name, in one explicit table: `playbook gameday revert`
rebuilds the faults a killed game day left behind from it. A new fault class goes here too -
tests/test_faults_registry.py fails for any Fault subclass under playbook/faults/ that is
missing (a fault it cannot rebuild would silently survive a SIGKILL)."""

from __future__ import annotations

from playbook.faults.alerting import SyntheticAlert
from playbook.faults.aws import CacheReboot, RdsReboot, RdsStop, TargetsDeregistered
from playbook.faults.base import Fault
from playbook.faults.kube import (
    BadDeploy,
    HttpChaos,
    Maintenance,
    NetworkPartition,
    PodsDeleted,
    ScaledToZero,
)
from playbook.faults.security import CredentialStuffing

FAULTS: tuple[type[Fault], ...] = (
    PodsDeleted, ScaledToZero, BadDeploy, HttpChaos, Maintenance, NetworkPartition,
    RdsStop, RdsReboot, CacheReboot, TargetsDeregistered,
    SyntheticAlert,
    CredentialStuffing,
)
REGISTRY: dict[str, type[Fault]] = {cls.kind: cls for cls in FAULTS}
