"""What every fault and runbook action receives: the profile, the production guard's switch,
and one client per control plane. playbook.faults.context.GameDay implements it for a game
day and an incident alike; tests may pass anything with these attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the kubernetes client and boto3 are slow to import: only the types
    from playbook.config import Profile
    from playbook.probes.alertmanager import Alertmanager
    from playbook.probes.aws import AwsClients
    from playbook.probes.kube import Kube


class Context(Protocol):
    @property
    def profile(self) -> Profile: ...

    @property
    def allow_production(self) -> bool:
        """Faults refuse a `production: true` profile unless this is set explicitly."""
        ...

    @property
    def kube(self) -> Kube:
        """The Kubernetes API: read through its observations, written through control.kube."""
        ...

    @property
    def aws(self) -> AwsClients: ...

    @property
    def alertmanager(self) -> Alertmanager: ...
