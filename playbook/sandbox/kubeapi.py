"""The sandbox's Kubernetes API: the real REST paths and JSON of the `kubernetes` client, backed
by the supervisor's live state. A supervisor addon (see ADDONS in supervisor.py).

What it serves (namespace security-dashboard unless said):
- namespaces, nodes (+ nodes/status), pods (list/get/delete/deletecollection, pods/log),
  services and their endpoints, configmaps, events (core v1);
- deployments (+ scale), replicasets (apps/v1);
- Argo Rollouts `rollouts` (+ status, scale; argoproj.io/v1alpha1);
- Chaos Mesh `httpchaos` and `networkchaos` (partition to the database or cache address)
  (chaos-mesh.org/v1alpha1): create/get/list/delete;
- `networkpolicies` (networking.k8s.io/v1): create/get/list/delete, enforced by the front
  against the client's address (playbook/sandbox/kube/netpol.py).

How the objects map onto the sandbox:
- Pods are the backend's replica processes. Deleting one kills its process (SIGTERM, SIGKILL
  after the grace period) and the controller starts a new one; a container that keeps dying is
  `waiting: CrashLoopBackOff` with a growing restartCount.
- The Deployment and the Rollout are two views of one workload (spec.replicas -> the number of
  processes, the image tag -> APP_VERSION). Changing the image rolls the pods one at a time
  (maxSurge 1, maxUnavailable 0). Tags ending in `bad-5xx`, `bad-slow` or `bad-crash` make a
  bad build (see app.py). Rollout status: Healthy once every pod runs the spec's version and
  is ready (that version becomes stableRS); Progressing meanwhile; Degraded after
  progressDeadlineSeconds or after an abort (`status.abort: true` through rollouts/status; the
  pods go back to the stable version; patching the image back to the stable one - `undo` -
  makes it Healthy again); Paused with spec.paused.
  History: like a cluster that has deployed before, a fresh sandbox has two revisions - the
  previous version (1.4.2 -> 1.4.1, an old ReplicaSet scaled to zero) as revision 1 and the
  running one as revision 2 - so a rollback has a target from the start; revisionHistoryLimit
  prunes old ReplicaSets (0 leaves none). Patches and deletes take `dryRun=All`: validated and
  answered with the would-be object, nothing changed.
- Nodes: sandbox-node-1 and -2 (pods are placed by slot). A node is made NotReady by patching
  nodes/<name>/status with a Ready condition of status "False" (as `kubectl` would for a
  status subresource) and Ready again the same way. Scheduling is not modelled: pods on a
  NotReady node keep running.
- Service selector -> which pods the front routes to. ConfigMap security-dashboard-config:
  MAINTENANCE_MODE "true"/"false" -> `maintenance` in chaos.json, which the replicas honour.
- HTTPChaos with `abort: true` (-> 502), `replace.code` (Response target) or `delay` on the
  backend -> chaos.json {"error_rate", "error_status", "latency_seconds"}; the error rate is the
  share of pods the mode selects (all: 1.0, fixed-percent: value %, one: 1/replicas...).
  Deleting it (or its `duration` running out) clears them.

Semantics: every object has a resourceVersion that changes whenever it changes; a write whose
body carries a stale one fails with 409 Conflict. PATCH takes JSON merge, strategic merge
(built-in kinds only, as the real server) and JSON patch; errors are `Status` objects (400, 401,
403, 404, 405, 409, 415, 422). Fields the sandbox does not model cannot be changed (422 saying
which); verbs and paths it does not serve answer 405 or 404, and `watch` answers 405.

Authentication: a bearer token from the kubeconfig the addon writes to <state dir>/kubeconfig.
Contexts: `sandbox` (may do everything), `sandbox-viewer` (get/list only) and
`sandbox-forbidden` (a valid identity bound to no role: 403 on every resource, as RBAC does).
No token, or an unknown one: 401.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from playbook.sandbox.kube.cluster import Cluster
from playbook.sandbox.kube.errors import ApiError, bad_request
from playbook.sandbox.kube.patch import apply_patch
from playbook.sandbox.kube.resources import (
    NAMESPACES,
    SERVER_VERSION,
    Resource,
)
from playbook.sandbox.supervisor import NAMESPACE, Supervisor

KUBECONFIG_FILE = "kubeconfig"
TICK = 0.25  # seconds between two steps of the rollout controller


@dataclass
class Identity:
    user: str
    role: str  # admin | view | none


def new_tokens() -> dict[str, Identity]:
    return {
        secrets.token_urlsafe(24): Identity("sandbox-admin", "admin"),
        secrets.token_urlsafe(24): Identity("sandbox-viewer", "view"),
        secrets.token_urlsafe(24): Identity("sandbox-nobody", "none"),
    }


# --- HTTP -----------------------------------------------------------------------------------

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
READ_VERBS = {"get", "list", "watch"}


def _status(err: ApiError) -> JSONResponse:
    return JSONResponse(err.status(), status_code=err.code)


class Api:
    """The ASGI app: routing, authentication, authorization, and the verbs."""

    def __init__(self, cluster: Cluster, tokens: dict[str, Identity]) -> None:
        self.c, self.tokens = cluster, tokens

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except ApiError as e:
            response = _status(e)
        except Exception as e:  # a bug here must still answer as the API would
            response = _status(ApiError(500, "InternalError",
                                        f"sandbox API error: {type(e).__name__}: {e}"))
        await response(scope, receive, send)

    def identity(self, request: Request) -> Identity:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        ident = self.tokens.get(token)
        if ident is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return ident

    async def handle(self, request: Request) -> Response:
        ident = self.identity(request)
        path = request.url.path.rstrip("/") or "/"
        parts = path.strip("/").split("/") if path != "/" else []
        if request.method == "GET":
            discovery = SERVER_VERSION if parts == ["version"] else \
                self.c.resources.discovery(parts)
            if discovery is not None:
                return JSONResponse(discovery)
        res, ns, name, sub = self.c.resources.locate(request.method, path)
        params = dict(request.query_params)
        if name is None:
            verb = {"GET": "list", "DELETE": "deletecollection"}.get(request.method,
                                                                      VERBS.get(request.method))
        else:
            verb = VERBS.get(request.method, request.method.lower())
        if params.get("watch") in ("true", "1"):
            verb = "watch"
        self.authorize(ident, verb, res, ns, name, sub)
        if verb == "watch":
            raise ApiError(405, "MethodNotAllowed", "watch is not supported by the sandbox's "
                           "Kubernetes API; list and poll instead")
        dry = params.get("dryRun") == "All"
        if "dryRun" in params and not dry:
            # As the real server: an unknown directive is an error, never a real write.
            raise bad_request(f"invalid dry run directive {params['dryRun']!r}: the only "
                              "valid value is All")
        if name is None:
            return await self.collection(request, res, ns, verb, params, dry)
        return await self.item(request, res, ns, name, sub, verb, params, dry)

    def authorize(self, ident: Identity, verb: str, res: Resource, ns: str | None,
                  name: str | None, sub: str | None) -> None:
        if ident.role == "admin" or (ident.role == "view" and verb in READ_VERBS):
            return
        resource = f"{res.plural}/{sub}" if sub else res.plural
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        named = f' "{name}"' if name else ""
        raise ApiError(403, "Forbidden", f'{res.qualified}{named} is forbidden: User '
                       f'"{ident.user}" cannot {verb} resource "{resource}" in API group '
                       f'"{res.group}"{where}',
                       {"name": name or "", "group": res.group, "kind": res.plural})

    async def collection(self, request: Request, res: Resource, ns: str | None, verb: str,
                         params: dict[str, str], dry: bool) -> Response:
        if verb == "list":
            items = res.select(res.objects(ns), params)
            total = len(items)
            meta: dict[str, Any] = {"resourceVersion": str(self.c.store.counter)}
            try:
                start = int(base64.b64decode(params["continue"]).decode()) \
                    if params.get("continue") else 0
                limit = int(params.get("limit") or 0)
            except ValueError:
                raise bad_request("invalid limit or continue token") from None
            items = items[start:]
            if limit and len(items) > limit:
                items = items[:limit]
                meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
                meta["remainingItemCount"] = total - start - limit
            return JSONResponse({"kind": res.list_kind, "apiVersion": res.api_version,
                                 "metadata": meta, "items": items})
        if verb == "create" and res.create_fn is not None:
            if ns is None:
                raise ApiError(405, "MethodNotAllowed", f"create {res.plural} in a namespace")
            if ns not in NAMESPACES:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                               {"name": ns, "kind": "namespaces"})
            body = await self.body(request)
            if body.get("kind") not in (None, res.kind):
                raise bad_request(f"expected kind {res.kind}, got {body.get('kind')!r}")
            return JSONResponse(res.create_fn(ns, body, dry), status_code=201)
        if verb == "deletecollection" and res.delete_fn is not None and ns is not None:
            options = await self.body(request, optional=True)
            victims = res.select(res.objects(ns), params)
            deleted = [res.delete_fn(o["metadata"]["name"], ns, options, dry) for o in victims]
            return JSONResponse({"kind": res.list_kind, "apiVersion": res.api_version,
                                 "metadata": {"resourceVersion": str(self.c.store.counter)},
                                 "items": deleted})
        raise self.not_allowed(request.method, res, None)

    @staticmethod
    def not_allowed(method: str, res: Resource, sub: str | None) -> ApiError:
        what = f"{res.qualified}/{sub}" if sub else res.qualified
        return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on "
                        f"the requested resource: the sandbox does not implement {method} "
                        f"on {what}", {"kind": res.plural, "group": res.group})

    async def body(self, request: Request, optional: bool = False) -> dict[str, Any] | Any:
        raw = await request.body()
        if not raw.strip():
            if optional:
                return {}
            raise bad_request("the request body is empty")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise bad_request(f"the request body is not JSON: {e}") from None

    def view(self, res: Resource, ns: str | None, name: str, sub: str | None) -> dict[str, Any]:
        obj = res.get(ns, name)
        view = res.views.get(sub) if sub else None
        return view(obj) if view else obj

    async def item(self, request: Request, res: Resource, ns: str | None, name: str,
                   sub: str | None, verb: str, params: dict[str, str], dry: bool) -> Response:
        if sub == "log":
            if verb != "get":
                raise self.not_allowed(request.method, res, sub)
            text = self.c.pods.log(name, ns or "", params)
            return PlainTextResponse(text)
        if verb == "get":
            return JSONResponse(self.view(res, ns, name, sub))
        if verb == "delete" and sub is None and res.delete_fn is not None:
            options = await self.body(request, optional=True)
            if params.get("gracePeriodSeconds"):
                options["gracePeriodSeconds"] = int(params["gracePeriodSeconds"])
            return JSONResponse(res.delete_fn(name, ns, options, dry))
        if verb in ("patch", "update") and res.update_fn is not None:
            old = self.view(res, ns, name, sub)
            body = await self.body(request)
            if verb == "patch":
                new = apply_patch(old, request.headers.get("content-type", ""), body,
                                  res.strategic)
            else:
                if not isinstance(body, dict):
                    raise bad_request("the body must be a JSON object")
                new = body
                # What the URL says need not be in the body (the client leaves it out).
                for key in ("apiVersion", "kind"):
                    if new.setdefault(key, old[key]) != old[key]:
                        raise bad_request(f"{key} {new[key]!r} does not match the URL's "
                                          f"{old[key]!r}")
                if ns is not None:
                    new.setdefault("metadata", {}).setdefault("namespace", ns)
            want = (new.get("metadata") or {}).get("resourceVersion")
            if want is not None and want != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                               f'{res.qualified} "{name}": the object has been modified; '
                               "please apply your changes to the latest version and try again",
                               {"name": name, "group": res.group, "kind": res.plural})
            if (new.get("metadata") or {}).get("name", name) != name:
                raise bad_request(f"the name of the object ({new['metadata']['name']}) does not "
                                  f"match the name on the URL ({name})")
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"][
                "resourceVersion"]
            res.update_fn(name, ns, old, new, sub, dry)
            if dry:
                return JSONResponse(new)
            return JSONResponse(self.view(res, ns, name, sub))
        raise self.not_allowed(request.method, res, sub)


# --- the addon ------------------------------------------------------------------------------


def kubeconfig(tokens: dict[str, Identity], url: str) -> dict[str, Any]:
    users = {i.user: t for t, i in tokens.items()}
    contexts = [("sandbox", "sandbox-admin"), ("sandbox-viewer", "sandbox-viewer"),
                ("sandbox-forbidden", "sandbox-nobody")]
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
        "users": [{"name": u, "user": {"token": t}} for u, t in users.items()],
        "contexts": [{"name": n, "context": {"cluster": "sandbox", "user": u,
                                             "namespace": NAMESPACE}} for n, u in contexts],
        "current-context": "sandbox",
    }


class _Server(uvicorn.Server):
    """uvicorn inside the supervisor's loop: the supervisor owns the signals."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def _controller(cluster: Cluster, sup: Supervisor) -> None:
    while not sup.stopping.is_set():
        cluster.tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sup.stopping.wait(), TICK)


async def start(sup: Supervisor) -> None:
    port = sup.sb.ports.kube
    if port is None:
        return  # a profile without sandbox.ports.kube: no Kubernetes API
    cluster = Cluster(sup)
    tokens = new_tokens()
    url = f"http://127.0.0.1:{port}"
    path = sup.dir / KUBECONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(kubeconfig(tokens, url), f, sort_keys=False)
    server = _Server(uvicorn.Config(Api(cluster, tokens), host="127.0.0.1", port=port,
                                    log_level="warning", access_log=False, lifespan="off"))
    tasks = [asyncio.create_task(server.serve()), asyncio.create_task(_controller(cluster, sup))]

    async def stop() -> None:
        await sup.stopping.wait()
        server.should_exit = True

    tasks.append(asyncio.create_task(stop()))
    deadline = time.monotonic() + 10
    while not server.started:
        if tasks[0].done() or time.monotonic() > deadline:
            raise RuntimeError(f"the Kubernetes API did not start on 127.0.0.1:{port}"
                               + (f": {tasks[0].exception()}" if tasks[0].done() else ""))
        await asyncio.sleep(0.02)
    sup.extra_components["kubernetes"] = {"url": url, "port": port, "kubeconfig": str(path),
                                          "pid": os.getpid()}
    sup.kube_tasks = tasks  # type: ignore[attr-defined] - keeps the tasks referenced
    sup.write_state()
