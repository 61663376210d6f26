"""Writes to the cluster through the Kubernetes API, exactly as kubectl would make them on
staging: the backend's image (Argo Rollout, else Deployment), its replicas, its pods, the
maintenance switch in its configmap, its Service's selector, aborting an Argo update, Chaos
Mesh objects and NetworkPolicies - with the few reads a write needs (what to restore).

Every call goes through the run's `Kube` client (playbook.probes.kube: its credentials,
timeout and one-sentence errors) and raises RuntimeError with that sentence when the API
refuses. Deletes are idempotent: a 404 means "already gone" and returns False.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from playbook.probes.kube import Kube

ARGO = ("argoproj.io", "v1alpha1", "rollouts")
CHAOS_MESH = ("chaos-mesh.org", "v1alpha1")
CHAOS_PLURAL = {"HTTPChaos": "httpchaos", "NetworkChaos": "networkchaos"}
GAMEDAY_LABELS = {"app.kubernetes.io/managed-by": "playbook-gameday"}
MAINTENANCE_KEY = "MAINTENANCE_MODE"  # playbook 4.3: the configmap's maintenance switch

Call = Callable[[k8s.ApiClient, Any], Any]


def _do(kube: Kube, what: str, fn: Call, access: str = "write") -> Any:
    """One request; the API's sentence becomes the exception."""
    result, error = kube.call(what, fn, access=access)
    if error:
        raise RuntimeError(error)
    return result


def _delete(kube: Kube, what: str, fn: Call) -> bool:
    """One delete: True when deleted, False when it was already gone (a revert run twice)."""
    _, error = kube.call(what, fn, access="write")
    if error and "not found (404" in error:
        return False
    if error:
        raise RuntimeError(error)
    return True


# --- the workload: image and replicas ------------------------------------------------------


def image(kube: Kube) -> str:
    """The backend's image as the Rollout (or else the Deployment) specifies it."""
    s = kube.section
    if s.rollout:
        obs = kube.rollout()
        if obs.error:
            raise RuntimeError(obs.error)
        return obs.image
    dep = _do(kube, f"read deployment {s.deployment}", lambda api, t: k8s.AppsV1Api(
        api).read_namespaced_deployment(s.deployment, s.namespace, _request_timeout=t),
        access="read")
    return dep.spec.template.spec.containers[0].image


def set_image(kube: Kube, new_image: str) -> None:
    """`kubectl argo rollouts set image` / `kubectl set image deployment/...`."""
    s = kube.section
    body = {"spec": {"template": {"spec": {"containers": [{"name": "backend",
                                                           "image": new_image}]}}}}
    if s.rollout:
        _do(kube, f"set the image of rollout {s.rollout}", lambda api, t: k8s.CustomObjectsApi(
            api).patch_namespaced_custom_object(*ARGO[:2], s.namespace, ARGO[2], s.rollout,
                                                body, _request_timeout=t))
    else:
        _do(kube, f"set the image of deployment {s.deployment}", lambda api, t: k8s.AppsV1Api(
            api).patch_namespaced_deployment(s.deployment, s.namespace, body,
                                             _request_timeout=t))


def abort_rollout(kube: Kube) -> None:
    """`kubectl argo rollouts abort`: back to the stable ReplicaSet's pods."""
    s = kube.section
    _do(kube, f"abort rollout {s.rollout}", lambda api, t: k8s.CustomObjectsApi(
        api).patch_namespaced_custom_object_status(
            *ARGO[:2], s.namespace, ARGO[2], s.rollout, {"status": {"abort": True}},
            _request_timeout=t))


def replicasets(kube: Kube) -> list[Any]:
    """The backend's ReplicaSets (kubernetes.selector): the revisions a rollback can go to."""
    s = kube.section
    result = _do(kube, f"list replicasets {s.selector}", lambda api, t: k8s.AppsV1Api(
        api).list_namespaced_replica_set(s.namespace, label_selector=s.selector,
                                         _request_timeout=t), access="read")
    return list(result.items)


def replicas(kube: Kube) -> int:
    """The Deployment's desired replicas (its scale subresource)."""
    s = kube.section
    current = _do(kube, f"read the scale of deployment {s.deployment}", lambda api, t:
                  k8s.AppsV1Api(api).read_namespaced_deployment_scale(
                      s.deployment, s.namespace, _request_timeout=t), access="read")
    return int(current.spec.replicas or 0)


def scale(kube: Kube, n: int) -> None:
    """`kubectl scale deployment ... --replicas=N`."""
    s = kube.section
    _do(kube, f"scale deployment {s.deployment} to {n}", lambda api, t: k8s.AppsV1Api(
        api).patch_namespaced_deployment_scale(s.deployment, s.namespace,
                                               {"spec": {"replicas": n}}, _request_timeout=t))


def delete_pod(kube: Kube, name: str) -> bool:
    """`kubectl delete pod NAME`; False when it was already gone."""
    s = kube.section
    return _delete(kube, f"delete pod {name}", lambda api, t: k8s.CoreV1Api(
        api).delete_namespaced_pod(name, s.namespace, _request_timeout=t))


# --- configuration and routing ---------------------------------------------------------------


def configmap_value(kube: Kube, key: str) -> str | None:
    """One key of the backend's configmap (kubernetes.configmap); None when it is not set."""
    s = kube.section
    cm = _do(kube, f"read configmap {s.configmap}", lambda api, t: k8s.CoreV1Api(
        api).read_namespaced_config_map(s.configmap, s.namespace, _request_timeout=t),
        access="read")
    return (cm.data or {}).get(key)


def patch_configmap(kube: Kube, data: dict[str, str]) -> None:
    s = kube.section
    _do(kube, f"patch configmap {s.configmap}", lambda api, t: k8s.CoreV1Api(
        api).patch_namespaced_config_map(s.configmap, s.namespace, {"data": data},
                                         _request_timeout=t))


def maintenance_mode(kube: Kube) -> str | None:
    return configmap_value(kube, MAINTENANCE_KEY)


def set_maintenance_mode(kube: Kube, value: str) -> None:
    patch_configmap(kube, {MAINTENANCE_KEY: value})


def patch_service_selector(kube: Kube, selector: dict[str, str]) -> None:
    """Merge `selector` into the backend Service's spec.selector (playbook 4.3)."""
    s = kube.section
    _do(kube, f"patch service {s.service}", lambda api, t: k8s.CoreV1Api(
        api).patch_namespaced_service(s.service, s.namespace, {"spec": {"selector": selector}},
                                      _request_timeout=t))


# --- Chaos Mesh ------------------------------------------------------------------------------


def backend_selector(kube: Kube) -> dict[str, Any]:
    """Chaos Mesh's selector for the backend's pods (kubernetes.selector, key=value terms)."""
    s = kube.section
    return {"namespaces": [s.namespace],
            "labelSelectors": dict(kv.split("=", 1) for kv in s.selector.split(","))}


def create_chaos(kube: Kube, kind: str, name: str, spec: dict[str, Any]) -> None:
    """Create a Chaos Mesh object (HTTPChaos, NetworkChaos) labelled as the game day's."""
    s = kube.section
    plural = CHAOS_PLURAL[kind]
    body = {"apiVersion": "/".join(CHAOS_MESH), "kind": kind,
            "metadata": {"name": name, "namespace": s.namespace, "labels": dict(GAMEDAY_LABELS)},
            "spec": spec}
    _do(kube, f"create {kind} {name}", lambda api, t: k8s.CustomObjectsApi(
        api).create_namespaced_custom_object(*CHAOS_MESH, s.namespace, plural, body,
                                             _request_timeout=t))


def delete_chaos(kube: Kube, kind: str, name: str) -> bool:
    """Delete a Chaos Mesh object; False when it was already gone."""
    s = kube.section
    plural = CHAOS_PLURAL[kind]
    return _delete(kube, f"delete {kind} {name}", lambda api, t: k8s.CustomObjectsApi(
        api).delete_namespaced_custom_object(*CHAOS_MESH, s.namespace, plural, name,
                                             _request_timeout=t))


# --- NetworkPolicies ------------------------------------------------------------------------


def network_policies(kube: Kube) -> list[Any]:
    s = kube.section
    result = _do(kube, f"list NetworkPolicies in namespace {s.namespace}", lambda api, t:
                 k8s.NetworkingV1Api(api).list_namespaced_network_policy(
                     s.namespace, _request_timeout=t), access="read")
    return list(result.items)


def create_network_policy(kube: Kube, manifest: dict[str, Any]) -> None:
    """`kubectl apply -f policy.yaml`: create it, replacing one of the same name (delete +
    create: a moment without it; the sandbox's API has no PUT for networkpolicies)."""
    s = kube.section
    name = manifest["metadata"]["name"]
    model = k8s.V1NetworkPolicy.from_dict(manifest)
    where = f"create NetworkPolicy {name} in namespace {s.namespace}"

    def create(api: k8s.ApiClient, t: Any) -> Any:
        return k8s.NetworkingV1Api(api).create_namespaced_network_policy(
            s.namespace, model, _request_timeout=t)

    _, error = kube.call(where, create, access="write")
    if error and "already exists" in error:
        delete_network_policy(kube, name)
        _, error = kube.call(where, create, access="write")
    if error:
        raise RuntimeError(error)


def delete_network_policy(kube: Kube, name: str) -> bool:
    """Delete a NetworkPolicy; False when it was already gone."""
    s = kube.section
    return _delete(kube, f"delete NetworkPolicy {name} in namespace {s.namespace}",
                   lambda api, t: k8s.NetworkingV1Api(api).delete_namespaced_network_policy(
                       name, s.namespace, _request_timeout=t))
