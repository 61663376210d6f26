"""Patches as the real API server applies them: JSON merge, strategic merge (built-in kinds only)
and JSON patch, chosen by the request's Content-Type; and `changed_paths`, the diff of two
objects that the models use to refuse changes to fields they do not model."""

from __future__ import annotations

import copy
from typing import Any

from playbook.sandbox.kube.errors import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Strategic merge: lists merged item by item on these keys (the API's patchMergeKey); every
# other list is replaced whole, as for a JSON merge patch.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "conditions": "type", "imagePullSecrets": "name",
              "ownerReferences": "uid"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch for the built-in kinds: like a merge patch, except
    that lists with a merge key (containers by name, conditions by type...) merge item by item,
    and the `$patch: replace|delete` directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise bad_request(f"unknown patch directive {directive!r} here")
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder/..., $retainKeys: ordering hints; nothing to do here
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list) and _merge_key(
                key, value, result[key]):
            result[key] = _merge_list(result[key], value, _merge_key(key, value, result[key]))
        elif isinstance(value, dict) and value.get("$patch") == "delete":
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


def _merge_key(field: str, *lists: list[Any]) -> str | None:
    if field == "ports":  # a container's ports merge on containerPort, a Service's on port
        items = [i for lst in lists for i in lst if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)


def _merge_list(old: list[Any], new: list[Any], key: str) -> list[Any]:
    out = copy.deepcopy(old)
    for item in new:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"strategic merge patch: list items must be objects with the "
                              f"merge key {key!r}")
        at = next((i for i, cur in enumerate(out)
                   if isinstance(cur, dict) and cur.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                out.pop(at)
        elif at is not None:
            out[at] = strategic_merge(out[at], item)
        else:
            out.append(strategic_merge({}, item))
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"JSON patch: invalid path {path!r} (must start with /)")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise ApiError(422, "Invalid", f"JSON patch: path {path!r} does not exist")
    return doc


def _put(doc: Any, parts: list[str], value: Any, path: str, replace: bool) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, "Invalid", f"JSON patch: replace of missing path {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise ApiError(422, "Invalid", f"JSON patch: index out of range in {path!r}")
    else:
        raise ApiError(422, "Invalid", f"JSON patch: {path!r} is not inside an object or list")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise ApiError(422, "Invalid", "JSON patch: cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise ApiError(422, "Invalid", f"JSON patch: path {path!r} does not exist")


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise bad_request("JSON patch: the body must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"JSON patch: malformed operation {op!r}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind in ("add", "replace"):
            if "value" not in op:
                raise bad_request(f"JSON patch: {kind} at {path!r} needs a value")
            doc = _put(doc, parts, copy.deepcopy(op["value"]), path, replace=kind == "replace")
        elif kind == "remove":
            _remove(doc, parts, path)
        elif kind in ("move", "copy"):
            src = op.get("from")
            if not isinstance(src, str):
                raise bad_request(f"JSON patch: {kind} needs `from`")
            value = copy.deepcopy(_walk(doc, _pointer(src), src))
            if kind == "move":
                _remove(doc, _pointer(src), src)
            doc = _put(doc, parts, value, path, replace=False)
        elif kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise ApiError(422, "Invalid", f"JSON patch: test failed at {path!r}")
        else:
            raise bad_request(f"JSON patch: unknown operation {kind!r}")
    return doc


def apply_patch(doc: dict[str, Any], content_type: str, body: Any,
                strategic_ok: bool) -> dict[str, Any]:
    kind = content_type.split(";")[0].strip().lower()
    if kind == MERGE_PATCH:
        if not isinstance(body, dict):
            raise bad_request("merge patch: the body must be a JSON object")
        return merge_patch(doc, body)
    if kind == STRATEGIC_PATCH and strategic_ok:
        if not isinstance(body, dict):
            raise bad_request("strategic merge patch: the body must be a JSON object")
        return strategic_merge(doc, body)
    if kind == JSON_PATCH:
        result = json_patch(doc, body)
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "JSON patch: the result is not an object")
        return result
    accepted = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_PATCH] if strategic_ok else [])
    what = ("server-side apply is not implemented by the sandbox" if kind == APPLY_PATCH else
            f"the body of the request was in an unknown format ({kind or 'no content type'})")
    raise ApiError(415, "UnsupportedMediaType",
                   f"{what} - accepted media types include: {', '.join(accepted)}")


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON documents differ (lists by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out += changed_paths(old[key], new[key], path)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += changed_paths(a, b, f"{prefix}[{i}]")
        return out
    return [] if old == new else [prefix]
