"""Label and field selectors (`?labelSelector=`, `?fieldSelector=`), parsed and matched as the real
API server does (to the extent the sandbox needs): =, ==, !=, in, notin and exists for labels;
=, ==, != on the fields a kind supports."""

from __future__ import annotations

import re
from typing import Any

from playbook.sandbox.kube.errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def label_matcher(selector: str | None) -> Any:
    """A predicate over a labels dict, for a label selector (=, ==, !=, in, notin, exists)."""
    reqs = []
    for part in _split(selector or ""):
        if m := _SET.match(part):
            values = {v.strip() for v in m.group(4).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(3), values))
        elif m := _EQ.match(part):
            op = "!=" if m.group(3) == "!=" else "="
            reqs.append((m.group(1), op, {m.group(4)}))
        elif m := _EXISTS.match(part):
            reqs.append((m.group(2), "!" if m.group(1) else "exists", set()))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r} in label "
                              f"selector {selector!r}")

    def match(labels: dict[str, str]) -> bool:
        for key, op, values in reqs:
            has, value = key in labels, labels.get(key)
            ok = {"=": has and value in values, "in": has and value in values,
                  "!=": not has or value not in values, "notin": not has or value not in values,
                  "exists": has, "!": not has}[op]
            if not ok:
                return False
        return True

    return match


def field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return str(cur).lower()
    return "" if cur is None else str(cur)


def field_matcher(selector: str | None, supported: frozenset[str], kind: str) -> Any:
    """A predicate over an object, for a field selector (=, ==, != on supported fields)."""
    reqs = []
    for part in _split(selector or ""):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid field selector: {part.strip()!r}")
        if m.group(1) not in supported:
            raise bad_request(f'field label not supported: {m.group(1)} (for {kind}: '
                              f'{", ".join(sorted(supported))})')
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))

    def match(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == want) == equal for path, equal, want in reqs)

    return match
