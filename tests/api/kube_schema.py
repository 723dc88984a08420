"""What a kube-apiserver does with a custom resource, from the CRD's structural schema alone.

The fast tier's stand-in for the `apiserver` tier (tests/apiserver/test_bad_inputs.py runs the
same table against a real server): in the server's order,

1. nulls of fields that are not `nullable` are dropped (and their `default` applied);
2. fields the schema does not declare are pruned, unless the object keeps unknown fields
   (`x-kubernetes-preserve-unknown-fields`);
3. what is left is validated: OpenAPI v3.0 (JSON Schema draft 4 with `nullable`, and
   `x-kubernetes-int-or-string` as its `anyOf` of integer and string).

`admit` returns the object as stored, or the validation errors (the server's 422).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

ABSENT = object()


def _draft4(node: Any) -> Any:
    """The node as plain draft-4 JSON Schema: `nullable` turned into a `null` alternative."""
    if isinstance(node, list):
        return [_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _draft4(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "properties" in node:
        out["properties"] = {k: _draft4(v) for k, v in node["properties"].items()}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _default_and_prune(value: Any, schema: dict[str, Any]) -> Any:
    """Steps 1 and 2 on `value` (a copy), recursively."""
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep = schema.get("x-kubernetes-preserve-unknown-fields", False)
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = (properties or {}).get(key)
            if child is None and isinstance(extra, dict):
                child = extra
            if child is None:
                if keep or (properties is None and extra is None):
                    out[key] = item
                continue  # pruned
            if item is None and not child.get("nullable", False):
                if "default" in child:
                    out[key] = copy.deepcopy(child["default"])
                continue
            out[key] = _default_and_prune(item, child)
        for key, child in (properties or {}).items():
            if key not in out and key not in value and "default" in child:
                out[key] = _default_and_prune(copy.deepcopy(child["default"]), child)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_default_and_prune(item, schema["items"]) for item in value]
    return value


def admit(crd: dict[str, Any], obj: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """`(stored object, [])` when the server would create `obj`, else `(None, errors)`.

    Each error names the field as the server does (`spec.training.rank`).
    """
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    stored = _default_and_prune(copy.deepcopy(obj), schema)
    validator = jsonschema.Draft4Validator(_draft4(schema))
    errors = []
    for error in validator.iter_errors(stored):
        path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
        errors.append(f"{path.replace('.[', '[')}: {error.message}")
    return (None, sorted(errors)) if errors else (stored, [])


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path, or :data:`ABSENT`."""
    node = obj
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node
