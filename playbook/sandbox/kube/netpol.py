"""NetworkPolicies (networking.k8s.io/v1) in the sandbox: stored by the Kubernetes API addon,
honoured by the front.

The sandbox has no CNI: every client reaches the backend's pods through the front, so the front
enforces the ingress rules of the policies that select a pod, against the client's own socket
address (never X-Forwarded-For, which a client can forge). Semantics as Kubernetes':
- a pod selected by at least one policy whose policyTypes include Ingress (the default when
  policyTypes is absent) is isolated for ingress; other pods take everything;
- an isolated pod admits a client when any ingress rule of any such policy admits it (policies
  are additive allow-lists: one cannot deny what another allows);
- a rule without `from` admits every source; an ipBlock peer admits addresses inside `cidr` and
  outside every `except`; podSelector / namespaceSelector peers match in-cluster pods only, and
  the sandbox's clients are all outside (loopback), so they admit none of them;
- a rule with `ports` applies only when one names the pod's port (`http` or its number).

The addon compiles the policies against the current pods into <state_dir>/netpol.json
({"pods": {pod URL: {"policies": [...], "allow": [...]}}}); the front re-reads it like
endpoints.json, routes a client only to pods that admit it, and answers 403 (JSON naming the
policies) when none does. A real CNI drops the packets instead: the client sees a connect
timeout. A drill therefore counts both a 403 and a failed connection as "refused".
"""

from __future__ import annotations

import copy
import ipaddress
import re
import time
from typing import TYPE_CHECKING, Any

from playbook.sandbox.kube.errors import already_exists, bad_request, invalid, not_found
from playbook.sandbox.kube.times import ts
from playbook.sandbox.state import write_json

if TYPE_CHECKING:  # the front imports this module: it must not load the API's models
    from playbook.sandbox.kube.store import Store

NETPOL_FILE = "netpol.json"
GROUP, VERSION, KIND = "networking.k8s.io", "v1", "NetworkPolicy"
NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- validation (what the API server rejects with 422) ----------------------------------------


def _network(text: Any) -> IpNet:
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{text!r} is not a CIDR")
    return ipaddress.ip_network(text, strict=False)


def _selector_problems(sel: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(sel, dict):
        return [(path, "must be a label selector (matchLabels / matchExpressions)")]
    problems = []
    labels = sel.get("matchLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        problems.append((f"{path}.matchLabels", "must be a map of strings"))
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        op = expr.get("operator") if isinstance(expr, dict) else None
        if op not in ("In", "NotIn", "Exists", "DoesNotExist") or not expr.get("key"):
            problems.append((f"{path}.matchExpressions[{i}]",
                             "needs a key and an operator In, NotIn, Exists or DoesNotExist"))
    return problems


def validate(name: Any, spec: Any) -> list[tuple[str, str]]:
    """The problems the API server would report (field, message); empty when valid."""
    problems: list[tuple[str, str]] = []
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > 253:
        problems.append(("metadata.name", "a lowercase RFC 1123 name is required "
                         "(generateName is not supported by the sandbox)"))
    if not isinstance(spec, dict):
        return [*problems, ("spec", "Required value")]
    if "podSelector" not in spec:
        problems.append(("spec.podSelector", "Required value"))
    else:
        problems += _selector_problems(spec["podSelector"], "spec.podSelector")
    types = spec.get("policyTypes", ["Ingress"])
    if not isinstance(types, list) or any(t not in ("Ingress", "Egress") for t in types):
        problems.append(("spec.policyTypes", "must be a list of Ingress and Egress"))
    for i, rule in enumerate(spec.get("ingress") or []):
        where = f"spec.ingress[{i}]"
        if not isinstance(rule, dict):
            problems.append((where, "must be an object"))
            continue
        for j, peer in enumerate(rule.get("from") or []):
            problems += _peer_problems(peer, f"{where}.from[{j}]")
        for j, port in enumerate(rule.get("ports") or []):
            if not isinstance(port, dict) or port.get("protocol", "TCP") not in (
                    "TCP", "UDP", "SCTP") or not isinstance(port.get("port", 0), int | str):
                problems.append((f"{where}.ports[{j}]", "needs a protocol TCP, UDP or SCTP "
                                 "and a port number or name"))
    return problems


def _peer_problems(peer: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(peer, dict) or not peer:
        return [(where, "must have an ipBlock, podSelector or namespaceSelector")]
    if "ipBlock" in peer:
        if set(peer) != {"ipBlock"}:
            return [(where, "may not specify more than 1 peer type when ipBlock is given")]
        block = peer["ipBlock"]
        try:
            cidr = _network(block.get("cidr") if isinstance(block, dict) else None)
        except ValueError as e:
            return [(f"{where}.ipBlock.cidr", f"Invalid value: {e}")]
        problems = []
        for k, text in enumerate(block.get("except") or []):
            try:
                exc = _network(text)
            except ValueError as e:
                problems.append((f"{where}.ipBlock.except[{k}]", f"Invalid value: {e}"))
                continue
            if exc.version != cidr.version or not exc.subnet_of(cidr):  # type: ignore[arg-type]
                problems.append((f"{where}.ipBlock.except[{k}]",
                                 f"Invalid value: {text!r}: must be a strict subset of "
                                 f"{block['cidr']}"))
        return problems
    problems = []
    for key in ("podSelector", "namespaceSelector"):
        if key in peer:
            problems += _selector_problems(peer[key], f"{where}.{key}")
    if not set(peer) & {"podSelector", "namespaceSelector"}:
        problems.append((where, "must have an ipBlock, podSelector or namespaceSelector"))
    return problems


# --- evaluation --------------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector against a pod's labels ({} selects every pod)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _port_applies(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (
        None, "http", port) for p in ports)


def compile_rules(policies: list[dict[str, Any]], pods: list[tuple[str, int, dict[str, str]]]
                  ) -> dict[str, Any]:
    """What the front needs: for each isolated pod (url, port, labels), the policies isolating
    it and the sources they admit ({"all": true} or {"blocks": [[cidr, [except...]]]})."""
    out: dict[str, Any] = {}
    for url, port, labels in pods:
        names, allow = [], []
        for pol in policies:
            spec = pol["spec"]
            if "Ingress" not in spec.get("policyTypes", ["Ingress"]) or not selects(
                    spec.get("podSelector") or {}, labels):
                continue
            names.append(pol["metadata"]["name"])
            for rule in spec.get("ingress") or []:
                if not _port_applies(rule, port):
                    continue
                peers = rule.get("from") or []
                if not peers:
                    allow.append({"all": True})
                    continue
                blocks = [[p["ipBlock"]["cidr"], list(p["ipBlock"].get("except") or [])]
                          for p in peers if "ipBlock" in p]
                if blocks:
                    allow.append({"blocks": blocks})
        if names:
            out[url] = {"policies": names, "allow": allow}
    return {"pods": out}


def admits(entry: dict[str, Any] | None, address: str) -> bool:
    """Does a pod's compiled entry (None: not isolated) admit a client at `address`?"""
    if entry is None:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for rule in entry.get("allow", []):
        if rule.get("all"):
            return True
        for cidr, excepts in rule.get("blocks", []):
            net = ipaddress.ip_network(cidr, strict=False)
            if ip.version == net.version and ip in net and not any(
                    ip in ipaddress.ip_network(e, strict=False) for e in excepts):
                return True
    return False


# --- the API's store -------------------------------------------------------------------------


class NetworkPolicies:
    """The networkpolicies of the sandbox's Kubernetes API (create/get/list/delete), written
    through to netpol.json whenever they or the pods change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.items: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> object
        self.written: dict[str, Any] | None = None
        store.sup.on_publish.append(lambda _sup: self.write())
        self.write()

    def list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.store.stamp(f"netpol/{n}/{name}", copy.deepcopy(obj))
                for (n, name), obj in sorted(self.items.items()) if ns in (None, n)]

    def create(self, ns: str, body: dict[str, Any], dry: bool) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if meta.get("namespace", ns) != ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        problems = validate(name, body.get("spec"))
        if problems:
            raise invalid(KIND, GROUP, str(name), problems)
        if (ns, name) in self.items:
            raise already_exists("networkpolicies", GROUP, name)
        spec = copy.deepcopy(body["spec"])
        spec.setdefault("policyTypes", ["Ingress"] + (["Egress"] if "egress" in spec else []))
        now = time.time()
        obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
               "metadata": {**{k: v for k, v in meta.items() if k in ("labels", "annotations")},
                            "name": name, "namespace": ns,
                            "uid": self.store.uid(f"{KIND}/{ns}/{name}/{now}"),
                            "creationTimestamp": ts(now), "generation": 1},
               "spec": spec}
        if dry:
            return obj
        self.items[(ns, name)] = obj
        self.store.sup.record("Normal", "Created", f"NetworkPolicy/{name}",
                          f"NetworkPolicy {ns}/{name} created")
        self.write()
        return self.store.stamp(f"netpol/{ns}/{name}", copy.deepcopy(obj))

    def delete(self, name: str, ns: str, _options: dict[str, Any], dry: bool) -> dict[str, Any]:
        obj = self.items.get((ns, name))
        if obj is None:
            raise not_found("networkpolicies", GROUP, name)
        if not dry:
            del self.items[(ns, name)]
            self.store.forget(f"netpol/{ns}/{name}")
            self.store.sup.record("Normal", "Deleted", f"NetworkPolicy/{name}",
                              f"NetworkPolicy {ns}/{name} deleted")
            self.write()
        # As the API server answers the delete of an object without graceful deletion.
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": GROUP, "kind": "networkpolicies",
                            "uid": obj["metadata"]["uid"]}}

    def write(self) -> None:
        from playbook.sandbox.supervisor import NAMESPACE

        sup = self.store.sup
        pods = [(p.url, p.port, p.labels) for p in sup.pods.values()]
        policies = [o for (ns, _), o in self.items.items() if ns == NAMESPACE]
        compiled = compile_rules(policies, pods)
        if compiled != self.written:
            write_json(sup.dir / NETPOL_FILE, compiled)
            self.written = compiled
