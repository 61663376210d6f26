"""The cluster: the models of the sandbox's Kubernetes API bound to the rows of the resources
table they serve, and the controller loop's step. It is what moto calls a service's backend
(models.py): the API layer (api.py) only parses requests, calls it and renders what it returns.

Every model keeps the little state the supervisor does not hold and renders its objects from
the supervisor's live state on every request, so what the API shows is what runs.

Adding a kind: a model in a module of its own, its row in resources.TABLE (or a `Resource` of
its own, for a new API group), and one `serve` call below; discovery follows. Something that
must move on its own belongs in `tick`.
"""

from __future__ import annotations

from typing import Any

from playbook.sandbox.kube.chaos import Chaos
from playbook.sandbox.kube.configmaps import ConfigMaps
from playbook.sandbox.kube.netpol import NetworkPolicies
from playbook.sandbox.kube.nodes import Nodes
from playbook.sandbox.kube.pods import Pods
from playbook.sandbox.kube.resources import TABLE, Registry, UpdateFn
from playbook.sandbox.kube.services import Services
from playbook.sandbox.kube.store import Store
from playbook.sandbox.kube.workload import Workload
from playbook.sandbox.supervisor import Supervisor

SWEEP_EVERY = 40  # ticks between two sweeps of the versions of objects that are gone


class Cluster:
    """The models, the resources they serve, and the controller's step."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.store = Store(sup)
        self.nodes = Nodes(self.store, sup)
        self.pods = Pods(self.store, sup)
        self.services = Services(self.store, sup)
        self.configmaps = ConfigMaps(self.store, sup)
        self.workload = Workload(self.store, sup)
        self.chaos = Chaos(self.store, sup)
        # Stored here, enforced by the front (netpol.py).
        self.netpol = NetworkPolicies(self.store)
        self.ticks = 0

        self.resources = Registry()
        serve = self.resources.serve
        serve("namespaces", list_fn=self.nodes.namespaces)
        serve("nodes", list_fn=self.nodes.list, update_fn=self.nodes.update)
        serve("pods", list_fn=self.pods.list, delete_fn=self.pods.delete)
        serve("services", list_fn=self.services.list, update_fn=self.services.update)
        serve("endpoints", list_fn=self.services.endpoints)
        serve("configmaps", list_fn=self.configmaps.list, update_fn=self.configmaps.update)
        serve("events", list_fn=self.store.events)
        scale = {"scale": self.workload.scale}
        serve("deployments.apps", list_fn=self.workload.deployments,
              update_fn=self._workload_update("deployments.apps"), views=scale)
        serve("replicasets.apps", list_fn=self.workload.replicasets)
        serve("rollouts.argoproj.io", list_fn=self.workload.rollouts,
              update_fn=self._workload_update("rollouts.argoproj.io"), views=scale)
        serve("httpchaos.chaos-mesh.org", list_fn=self.chaos.httpchaos,
              create_fn=self.chaos.create_httpchaos, delete_fn=self.chaos.delete_httpchaos)
        serve("networkchaos.chaos-mesh.org", list_fn=self.chaos.networkchaos,
              create_fn=self.chaos.create_networkchaos,
              delete_fn=self.chaos.delete_networkchaos)
        serve("networkpolicies.networking.k8s.io", list_fn=self.netpol.list,
              create_fn=self.netpol.create, delete_fn=self.netpol.delete)

    def _workload_update(self, qualified: str) -> UpdateFn:
        res = TABLE[qualified]

        def update(name: str, _ns: str | None, old: dict[str, Any], new: dict[str, Any],
                   sub: str | None, dry: bool) -> None:
            self.workload.update(res, name, old, new, sub, dry)
            if not dry:
                self.tick()  # the status follows the write at once

        return update

    def tick(self) -> None:
        """One step of the controllers: the rollout, then chaos whose duration ran out."""
        self.workload.step()
        self.chaos.apply()
        self.ticks += 1
        if self.ticks % SWEEP_EVERY == 0:
            self.store.sweep()
