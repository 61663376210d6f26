"""Runbook action, playbook "Security Incidents (P0)" step 1, "Isolate affected systems -
network segmentation" (`kubectl apply -f emergency-network-policy.yaml`): an emergency
NetworkPolicy on the backend's pods that admits every source except the attacking addresses.

    spec:
      podSelector: {matchLabels: {app: security-dashboard-backend}}   # kubernetes.selector
      policyTypes: [Ingress]
      ingress:
        - from:
            - ipBlock: {cidr: 0.0.0.0/0, except: [203.0.113.7/32]}    # the IPv4 sources
            - ipBlock: {cidr: ::/0}                                    # IPv6 (except v6 ones)

Written through the Kubernetes API (NetworkingV1Api) with the profile's kubeconfig, so it works
against a real cluster as against the sandbox. Caveats on a real cluster:
- the CNI must enforce NetworkPolicies (Calico, Cilium, AWS VPC CNI with policies enabled);
- ipBlock sees the client's address only where it is preserved up to the pod (a Service with
  externalTrafficPolicy: Local, an NLB in IP mode); behind an L7 load balancer or ingress
  controller, block the source at the WAF instead;
- policies are additive allow-lists: another policy that already admits the source keeps it
  in. `apply_emergency_policy` reports such policies (it cannot override them).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from playbook.control import kube as control
from playbook.probes.kube import Kube

DEFAULT_NAME = "emergency-isolate"
LABELS = {"app.kubernetes.io/managed-by": "security-dashboard-playbook",
          "playbook/action": "isolate"}


def _selector(selector: str) -> dict[str, str]:
    """`app=x,tier=y` (kubernetes.selector) as matchLabels; only equality is supported."""
    labels = {}
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.endswith("!") or not key:
            raise ValueError(f"selector {selector!r}: only key=value terms can become a "
                             "NetworkPolicy podSelector")
        labels[key.strip()] = value.strip().lstrip("=")
    return labels


def manifest(name: str, namespace: str, selector: str, cidrs: list[str]) -> dict[str, Any]:
    """The emergency NetworkPolicy as a manifest (what `kubectl apply -f` would take)."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    if not nets:
        raise ValueError("no source address to isolate")
    v4 = [str(n) for n in nets if n.version == 4]
    v6 = [str(n) for n in nets if n.version == 6]
    peers: list[dict[str, Any]] = [
        {"ipBlock": {"cidr": "0.0.0.0/0", **({"except": v4} if v4 else {})}},
        {"ipBlock": {"cidr": "::/0", **({"except": v6} if v6 else {})}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS),
                         "annotations": {"playbook/isolated-sources": ",".join(map(str, nets))}},
            "spec": {"podSelector": {"matchLabels": _selector(selector)},
                     "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}}


def _admitting_others(policies: list[Any], name: str, labels: dict[str, str],
                      nets: list[Any]) -> list[str]:
    """Other policies on the same pods that already admit one of the sources."""
    found = []
    for pol in policies:
        spec = pol.spec
        if pol.metadata.name == name or spec is None:
            continue
        match = (spec.pod_selector.match_labels or {}) if spec.pod_selector else {}
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        for rule in spec.ingress or []:
            peers = rule._from or []
            if not peers:
                found.append(pol.metadata.name)
                break
            blocks = [p.ip_block for p in peers if p.ip_block is not None]
            if any(n.version == ipaddress.ip_network(b.cidr, strict=False).version
                   and n.subnet_of(ipaddress.ip_network(b.cidr, strict=False))
                   and not any(n.subnet_of(ipaddress.ip_network(e, strict=False))
                               for e in (b._except or [])
                               if ipaddress.ip_network(e, strict=False).version == n.version)
                   for b in blocks for n in nets):
                found.append(pol.metadata.name)
                break
    return found


def apply_emergency_policy(kube: Kube, cidrs: list[str], name: str = DEFAULT_NAME) -> str:
    """Create the emergency policy refusing `cidrs` (replacing one of the same name); returns
    what it did.
    Raises RuntimeError with the API's sentence when the cluster refuses."""
    s = kube.section
    where = f"NetworkPolicy {name} in namespace {s.namespace}"
    try:
        # An earlier isolation under the same name is replaced.
        control.create_network_policy(kube, manifest(name, s.namespace, s.selector, cidrs))
    except RuntimeError as e:
        raise RuntimeError(f"cannot isolate {', '.join(cidrs)}: {e}") from None
    did = (f"applied {where} at {kube.server}: ingress to pods {s.selector} from anywhere "
           f"except {', '.join(cidrs)}")
    try:
        others = control.network_policies(kube)
    except RuntimeError:
        return did  # applied; whether others admit the sources is unknown
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    admitting = _admitting_others(others, name, _selector(s.selector), nets)
    if admitting:
        did += (f" - WARNING: {', '.join(admitting)} still admit(s) these sources "
                "(policies add up; remove or narrow them)")
    return did


def remove_emergency_policy(kube: Kube, name: str = DEFAULT_NAME) -> str:
    """Delete the emergency policy; a policy already gone is fine (idempotent)."""
    where = f"NetworkPolicy {name} in namespace {kube.section.namespace}"
    try:
        removed = control.delete_network_policy(kube, name)
    except RuntimeError as e:
        raise RuntimeError(f"cannot remove {where}: {e}") from None
    return f"removed {where}" if removed else f"{where} was already gone"
