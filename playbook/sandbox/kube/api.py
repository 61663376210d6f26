"""The API layer of the sandbox's Kubernetes API: the ASGI app that turns HTTP requests into
calls on the cluster's models and their answers into the JSON the `kubernetes` client
deserializes (what moto calls a service's responses.py). It holds no state of its own.

A request: authenticate (rbac.py; 401) -> a GET of a document outside the resources
(/version, discovery) -> locate the resource (resources.py; 404) -> the verb (GET: get or list,
POST: create, PUT: update, PATCH: patch, DELETE: delete or deletecollection; `?watch=true`:
watch) -> authorize (403) -> `dryRun` -> the verb:
- list: label and field selectors, `limit` and `continue` paging, the list's resourceVersion;
- create: in an existing namespace, with the URL's kind;
- patch: JSON merge, strategic merge (built-in kinds only, as the real server) or JSON patch by
  Content-Type, else 415 (server-side apply is not implemented); update (PUT): apiVersion and
  kind default to the URL's;
- a write whose body carries a stale resourceVersion: 409 Conflict; another name than the
  URL's: 400;
- `dryRun=All`: validated and answered with the would-be object, nothing changed; any other
  value: 400 (as the real server: an unknown directive is never a real write);
- watch: 405 (list and poll instead); a verb a kind does not take: 405.
Every error, a bug here included, is answered as a `Status` object (400, 401, 403, 404, 405,
409, 415, 422, 500).

Extension points: `paths` (a GET document outside the resources, e.g. an OpenAPI document) and
`subresources` (a subresource answered by a handler of its own instead of as a view of its
object, as pods/log is), keyed by path and by (qualified resource, subresource).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from playbook.sandbox.kube.cluster import Cluster
from playbook.sandbox.kube.errors import ApiError, bad_request
from playbook.sandbox.kube.patch import apply_patch
from playbook.sandbox.kube.rbac import Rbac
from playbook.sandbox.kube.resources import NAMESPACES, SERVER_VERSION, Resource

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# (request, resource, namespace, name, verb, query parameters) -> the response
SubresourceHandler = Callable[[Request, Resource, str | None, str, str, dict[str, str]],
                              Awaitable[Response]]


def _status(err: ApiError) -> JSONResponse:
    return JSONResponse(err.status(), status_code=err.code)


class Api:
    """The ASGI app: authentication, routing, authorization, and the verbs."""

    def __init__(self, cluster: Cluster, rbac: Rbac) -> None:
        self.c, self.rbac = cluster, rbac
        # GET documents outside the resources; discovery is derived from the registry.
        self.paths: dict[str, Callable[[], dict[str, Any]]] = {"/version": lambda: SERVER_VERSION}
        # Subresources answered by a handler of their own rather than as a view of the object.
        self.subresources: dict[tuple[str, str], SubresourceHandler] = {
            ("pods", "log"): self.pod_log}

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

    async def handle(self, request: Request) -> Response:
        ident = self.rbac.identify(request.headers.get("authorization", ""))
        path = request.url.path.rstrip("/") or "/"
        if request.method == "GET":
            parts = path.strip("/").split("/") if path != "/" else []
            static = self.paths.get("/" + "/".join(parts))
            document = static() if static else self.c.resources.discovery(parts)
            if document is not None:
                return JSONResponse(document)
        res, ns, name, sub = self.c.resources.locate(request.method, path)
        params = dict(request.query_params)
        if name is None:
            verb = {"GET": "list", "DELETE": "deletecollection"}.get(request.method,
                                                                      VERBS.get(request.method))
        else:
            verb = VERBS.get(request.method, request.method.lower())
        if params.get("watch") in ("true", "1"):
            verb = "watch"
        self.rbac.authorize(ident, verb, res, ns, name, sub)
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
        handler = self.subresources.get((res.qualified, sub)) if sub else None
        if handler is not None:
            return await handler(request, res, ns, name, verb, params)
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

    async def pod_log(self, request: Request, res: Resource, ns: str | None, name: str,
                      verb: str, params: dict[str, str]) -> Response:
        if verb != "get":
            raise self.not_allowed(request.method, res, "log")
        return PlainTextResponse(self.c.pods.log(name, ns or "", params))
