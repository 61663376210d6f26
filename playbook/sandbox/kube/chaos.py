"""Chaos Mesh objects (chaos-mesh.org/v1alpha1): HTTPChaos and NetworkChaos, created, listed and
deleted through the API and applied to <state dir>/chaos.json, which the backend's replicas
honour (app.py).

- HTTPChaos with `abort: true` (-> 502), `replace.code` (Response target) or `delay` on the
  backend -> chaos.json {"error_rate", "error_status", "latency_seconds"}; the error rate is the
  share of pods the mode selects (all: 1.0, fixed-percent: value %, one: 1/replicas...).
  Deleting it, its `duration` running out or the pause annotation clears them.
- NetworkChaos, action partition only (direction to or both): the pods lose their route to the
  externalTargets (host:port) that name the database's or the cache's address -> chaos.json
  {"partition": ["database", "cache"]}; the replicas' connections then time out.
- Both share one life cycle: a lowercase RFC 1123 name (no generateName), stored, applied at
  once with an Applied event; deleting one records Recovered and forgets its resourceVersion.

The ConfigMap's MAINTENANCE_MODE goes to the same file (`merge_chaos_file`, configmaps.py).
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

from playbook.sandbox.kube.errors import already_exists, bad_request, invalid
from playbook.sandbox.kube.resources import TABLE, Resource
from playbook.sandbox.kube.store import Store
from playbook.sandbox.kube.times import parse_duration, parse_ts, ts
from playbook.sandbox.state import CHAOS_FILE, read_json, write_json
from playbook.sandbox.supervisor import DEPLOYMENT, NAMESPACE, Supervisor

GROUP = "chaos-mesh.org"
HTTP_MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")


def merge_chaos_file(directory: Path, changes: dict[str, Any]) -> None:
    """Merge into chaos.json: keys set to None are removed, the others kept."""
    path = directory / CHAOS_FILE
    current = read_json(path) or {}
    merged = {k: v for k, v in {**current, **changes}.items() if v is not None}
    if merged != current:
        write_json(path, merged)


def selects_backend(spec: dict[str, Any]) -> bool:
    """Does a chaos object's selector pick the backend's pods?"""
    selector = spec.get("selector") or {}
    namespaces = selector.get("namespaces") or [NAMESPACE]
    labels = selector.get("labelSelectors") or {}
    pod_labels = {"app": DEPLOYMENT}
    return NAMESPACE in namespaces and all(
        pod_labels.get(k) == v for k, v in labels.items() if k != "version")


class Chaos:
    """The chaos objects and their effect on the replicas."""

    def __init__(self, store: Store, sup: Supervisor) -> None:
        self.store, self.sup = store, sup
        self.objects: dict[str, dict[str, dict[str, Any]]] = {  # plural -> name -> object
            "httpchaos": {}, "networkchaos": {}}
        self.lists = {"httpchaos": self.httpchaos, "networkchaos": self.networkchaos}
        self.written: dict[str, Any] | None = None

    # --- the effect ------------------------------------------------------------------------

    def effect(self) -> dict[str, Any]:
        now = time.time()
        ok_rate, status, latency = 1.0, None, 0.0
        n_pods = max(1, len(self.sup.pods))
        for obj in self.objects["httpchaos"].values():
            spec = obj["spec"]
            started = parse_ts(obj["metadata"]["creationTimestamp"])
            duration = spec.get("duration")
            if duration and now > started + parse_duration(duration):
                continue
            if obj["metadata"].get("annotations", {}).get(
                    "experiment.chaos-mesh.org/pause") == "true":
                continue
            if not selects_backend(spec):
                continue
            mode, value = spec["mode"], float(spec.get("value") or 0)
            share = {"all": 1.0, "one": 1 / n_pods, "fixed": min(1.0, value / n_pods),
                     "fixed-percent": value / 100,
                     "random-max-percent": value / 100}[mode]
            code = 502 if spec.get("abort") else (spec.get("replace") or {}).get("code")
            if code:
                ok_rate *= 1 - share
                status = status or int(code)
            if spec.get("delay"):
                latency = max(latency, parse_duration(spec["delay"]))
        error_rate = round(1 - ok_rate, 4)
        return {"error_rate": error_rate or None, "error_status": status if error_rate else None,
                "latency_seconds": latency or None, "partition": self.partitioned() or None}

    def partitioned(self) -> list[str]:
        """The backend's dependencies cut off by a NetworkChaos partition (direction to/both)
        whose externalTargets name their address."""
        ports = self.sup.sb.ports
        deps = {f"127.0.0.1:{ports.postgres}": "database", f"127.0.0.1:{ports.redis}": "cache"}
        return sorted({deps[t] for obj in self.objects["networkchaos"].values()
                       for t in obj["spec"].get("externalTargets", []) if t in deps})

    def apply(self) -> None:
        """Write the effect to chaos.json when it changed (after a write, and every tick: a
        duration runs out)."""
        effect = self.effect()
        if effect != self.written:
            merge_chaos_file(self.sup.dir, effect)
            self.written = effect

    # --- HTTPChaos -------------------------------------------------------------------------

    def httpchaos(self, ns: str | None) -> list[dict[str, Any]]:
        out = []
        now = time.time()
        for name, obj in self.objects["httpchaos"].items():
            if ns not in (None, obj["metadata"]["namespace"]):
                continue
            started = parse_ts(obj["metadata"]["creationTimestamp"])
            duration = obj["spec"].get("duration")
            over = bool(duration) and now > started + parse_duration(duration)
            shown = copy.deepcopy(obj)
            shown["status"] = {
                "conditions": [
                    {"type": "Selected", "status": "True"},
                    {"type": "AllInjected", "status": "False" if over else "True"},
                    {"type": "AllRecovered", "status": "True" if over else "False"},
                    {"type": "Paused", "status": "False"}],
                "experiment": {"desiredPhase": "Stop" if over else "Run"}}
            out.append(self.store.stamp(f"httpchaos/{name}", shown))
        return out

    def create_httpchaos(self, ns: str, body: dict[str, Any], dry: bool) -> dict[str, Any]:
        name, meta = self._new("httpchaos", ns, body)
        spec = body.get("spec")
        problems: list[tuple[str, str]] = []
        if not isinstance(spec, dict):
            raise invalid("HTTPChaos", GROUP, name, [("spec", "Required value")])
        if spec.get("mode") not in HTTP_MODES:
            problems.append(("spec.mode", f"must be one of {', '.join(HTTP_MODES)}"))
        elif spec["mode"] != "all" and spec["mode"] != "one":
            try:
                value = float(spec.get("value"))
                if value < 0 or (spec["mode"] != "fixed" and value > 100):
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(("spec.value", f"a number is required for mode {spec['mode']}"))
        if spec.get("target") not in ("Request", "Response"):
            problems.append(("spec.target", "must be Request or Response"))
        if not isinstance(spec.get("port", 0), int):
            problems.append(("spec.port", "must be a whole number"))
        if "patch" in spec:
            problems.append(("spec.patch", "the sandbox implements abort, delay and "
                             "replace.code only"))
        replace = spec.get("replace")
        if replace is not None and not isinstance((replace or {}).get("code"), int):
            problems.append(("spec.replace.code", "the sandbox replaces the status code "
                             "only: an integer is required"))
        if not (spec.get("abort") or spec.get("delay") or replace):
            problems.append(("spec", "one of abort, delay or replace is required"))
        for key in ("delay", "duration"):
            if spec.get(key) is not None:
                try:
                    parse_duration(spec[key])
                except ValueError:
                    problems.append((f"spec.{key}", f"invalid duration {spec[key]!r}"))
        if problems:
            raise invalid("HTTPChaos", GROUP, name, problems)
        return self._store("httpchaos", name, meta, ns, spec, dry)

    def delete_httpchaos(self, name: str, ns: str, _options: dict[str, Any],
                         dry: bool) -> dict[str, Any]:
        return self._delete("httpchaos", name, ns, dry)

    # --- NetworkChaos ----------------------------------------------------------------------

    def networkchaos(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.store.stamp(f"networkchaos/{name}", {
            **copy.deepcopy(obj), "status": {"experiment": {"desiredPhase": "Run"}}})
            for name, obj in self.objects["networkchaos"].items()
            if ns in (None, obj["metadata"]["namespace"])]

    def create_networkchaos(self, ns: str, body: dict[str, Any], dry: bool) -> dict[str, Any]:
        """Action partition only: the pods lose their route to externalTargets (host:port of
        the database or the cache)."""
        name, meta = self._new("networkchaos", ns, body)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        problems = []
        if spec.get("action") != "partition":
            problems.append(("spec.action", "the sandbox implements partition only"))
        if spec.get("direction", "to") not in ("to", "both"):
            problems.append(("spec.direction", "must be to or both (the pods' outbound side)"))
        targets = spec.get("externalTargets")
        if not isinstance(targets, list) or not targets or \
                not all(isinstance(t, str) for t in targets):
            problems.append(("spec.externalTargets", "a list of host:port is required"))
        if problems:
            raise invalid("NetworkChaos", GROUP, name, problems)
        return self._store("networkchaos", name, meta, ns, spec, dry)

    def delete_networkchaos(self, name: str, ns: str, _options: dict[str, Any],
                            dry: bool) -> dict[str, Any]:
        return self._delete("networkchaos", name, ns, dry)

    # --- the shared life cycle -------------------------------------------------------------

    @staticmethod
    def _row(plural: str) -> Resource:
        return TABLE[f"{plural}.{GROUP}"]

    def _find(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.lists[plural](ns) if o["metadata"]["name"] == name), None)

    def _new(self, plural: str, ns: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Validate a new object's name and namespace; its name and metadata."""
        res = self._row(plural)
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?",
                                                         name):
            raise invalid(res.kind, res.group, str(name),
                          [("metadata.name", "a lowercase RFC 1123 name is required "
                            "(generateName is not supported by the sandbox)")])
        if meta.get("namespace", ns) != ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if name in self.objects[plural]:
            raise already_exists(plural, res.group, name)
        return name, meta

    def _store(self, plural: str, name: str, meta: dict[str, Any], ns: str,
               spec: dict[str, Any], dry: bool) -> dict[str, Any]:
        res = self._row(plural)
        obj = {"apiVersion": res.api_version, "kind": res.kind,
               "metadata": {**{k: v for k, v in meta.items() if k in ("labels", "annotations")},
                            "name": name, "namespace": ns,
                            "uid": self.store.uid(f"{res.kind}/{ns}/{name}/{time.time()}"),
                            "creationTimestamp": ts(time.time()), "generation": 1},
               "spec": copy.deepcopy(spec)}
        if dry:
            return obj
        self.objects[plural][name] = obj
        self.sup.record("Normal", "Applied", f"{res.kind}/{name}",
                        f"Successfully apply chaos for {ns}/{DEPLOYMENT}")
        self.apply()
        found = self._find(plural, ns, name)
        assert found is not None
        return found

    def _delete(self, plural: str, name: str, ns: str, dry: bool) -> dict[str, Any]:
        res = self._row(plural)
        obj = self._find(plural, ns, name)
        if obj is None:
            raise res.not_found(name)
        if not dry:
            del self.objects[plural][name]
            self.store.forget(f"{plural}/{name}")
            self.sup.record("Normal", "Recovered", f"{res.kind}/{name}",
                            f"Successfully recover chaos for {ns}/{DEPLOYMENT}")
            self.apply()
        obj["metadata"]["deletionTimestamp"] = ts(time.time())
        return obj
