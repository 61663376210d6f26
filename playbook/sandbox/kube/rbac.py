"""Who may do what on the sandbox's Kubernetes API: bearer tokens and three roles, answered as a
cluster's authentication and RBAC answer.

The kubeconfig (written by server.py to <state dir>/kubeconfig, mode 0600: it holds the tokens)
has one user and one context per role:
- `sandbox` (user sandbox-admin): may do everything;
- `sandbox-viewer`: get, list and watch only, on every resource;
- `sandbox-forbidden` (user sandbox-nobody): a valid identity bound to no role: 403 on every
  resource, worded as the real server's.
No token, or an unknown one: 401.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from playbook.sandbox.kube.errors import ApiError
from playbook.sandbox.kube.resources import Resource
from playbook.sandbox.supervisor import NAMESPACE

READ_VERBS = {"get", "list", "watch"}
# context, user, role (admin | view | none), in the kubeconfig's order
CONTEXTS = (("sandbox", "sandbox-admin", "admin"), ("sandbox-viewer", "sandbox-viewer", "view"),
            ("sandbox-forbidden", "sandbox-nobody", "none"))


@dataclass
class Identity:
    user: str
    role: str  # admin | view | none


class Rbac:
    """A fresh token per user, for the life of the sandbox."""

    def __init__(self) -> None:
        self.tokens = {secrets.token_urlsafe(24): Identity(user, role)
                       for _, user, role in CONTEXTS}

    def identify(self, authorization: str) -> Identity:
        """The identity of an Authorization header; 401 without a known bearer token."""
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        ident = self.tokens.get(token)
        if ident is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return ident

    @staticmethod
    def authorize(ident: Identity, verb: str, res: Resource, ns: str | None,
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

    def kubeconfig(self, url: str) -> dict[str, Any]:
        users = {i.user: t for t, i in self.tokens.items()}
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
            "users": [{"name": u, "user": {"token": t}} for u, t in users.items()],
            "contexts": [{"name": n, "context": {"cluster": "sandbox", "user": u,
                                                 "namespace": NAMESPACE}}
                         for n, u, _ in CONTEXTS],
            "current-context": "sandbox",
        }
