"""The sandbox's Kubernetes API: the real REST paths and JSON of the `kubernetes` client, backed
by the supervisor's live state. Started by the supervisor as an addon (server.py).

What it serves (namespace security-dashboard unless said):
- namespaces, nodes (+ nodes/status), pods (list/get/delete/deletecollection, pods/log),
  services and their endpoints, configmaps, events (core v1);
- deployments (+ scale), replicasets (apps/v1);
- Argo Rollouts `rollouts` (+ status, scale; argoproj.io/v1alpha1);
- Chaos Mesh `httpchaos` and `networkchaos` (chaos-mesh.org/v1alpha1): create/get/list/delete;
- `networkpolicies` (networking.k8s.io/v1): create/get/list/delete, enforced by the front
  against the client's address.

The layout follows moto's split of a service into models (state), responses (HTTP) and urls
(which paths exist):
- resources.py  the resources table: kinds, API groups/versions, namespaced or not, field
                selectors, subresources, patch types, paths, discovery (moto: urls.py)
- store.py      what every object shares: uid, resourceVersion, metadata rules; the events
- nodes.py, pods.py, workload.py, services.py, configmaps.py, chaos.py, netpol.py
                the models, one per part of the cluster; each module says how its objects
                map onto the sandbox's processes and files (moto: models.py)
- cluster.py    the models bound to the rows they serve, and the controllers' step
- api.py        the ASGI app: verbs, selectors, paging, patch types, dryRun, conflicts,
                `Status` errors (moto: responses.py); rbac.py: tokens, roles, the kubeconfig
- errors.py, patch.py, selectors.py, times.py
                the pure parts: `Status` errors, patches, selectors, time formats
- server.py     the supervisor addon: uvicorn in the supervisor's loop, the controller loop

Adding to it: a kind or an API group is a model in a module of its own, a `Resource` row and
one `serve` call in cluster.py (discovery follows); a subresource with its own response or a
document outside the resources registers with the `Api` (api.py); how it is served (address,
TLS, kubeconfig) is server.py's and rbac.py's.
"""
