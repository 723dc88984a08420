"""Generate the `ImprovementCycle` CustomResourceDefinition from the pydantic models.

The models are the single source of truth: `python -m kaizen.api.crd` writes
`manifests/crd/kaizen.dev_improvementcycles.yaml`, and a test fails when the committed
file differs from what the models generate. The JSON Schema pydantic produces is turned
into a structural OpenAPI v3 schema: references inlined, `Optional[X]` as `nullable`,
titles dropped, descriptions kept.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kaizen.api.resource import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.api.status import ImprovementCycleStatus

CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"
_DROP = {"title", "$defs"}

PRINTER_COLUMNS = [
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Where the cycle stands.",
    },
    {
        "name": "Verdict",
        "type": "string",
        "jsonPath": ".status.validation.verdict",
        "description": "Promote or Reject, once validated.",
    },
    {
        "name": "Delta",
        "type": "number",
        "jsonPath": ".status.validation.overallDelta",
        "description": "Candidate minus baseline overall score.",
        "priority": 1,
    },
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _openapi(node: Any, defs: dict[str, Any], *, keep_defaults: bool) -> Any:
    """Convert one JSON Schema node (pydantic output) to structural OpenAPI v3."""
    if isinstance(node, list):
        return [_openapi(item, defs, keep_defaults=keep_defaults) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _openapi({**target, **extra}, defs, keep_defaults=keep_defaults)
    options = node.get("anyOf")
    if options and any(o == {"type": "null"} for o in options):
        rest = [o for o in options if o != {"type": "null"}]
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        inner = rest[0] if len(rest) == 1 else {"anyOf": rest}
        result = _openapi({**inner, **merged}, defs, keep_defaults=keep_defaults)
        result["nullable"] = True
        if result.get("default", 0) is None:
            del result["default"]
        return result
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and not keep_defaults):
            continue
        if key == "additionalProperties" and (
            value is False or (value is True and node.get("x-kubernetes-preserve-unknown-fields"))
        ):
            # Structural schemas forbid `false` beside `properties`; the API server prunes unknown
            # fields and `kubectl apply` (strict field validation) names them in its error. A
            # free-form object keeps its fields through x-kubernetes-preserve-unknown-fields.
            continue
        if key in ("exclusiveMaximum", "exclusiveMinimum") and not isinstance(value, bool):
            # JSON Schema 2020 puts the bound in the keyword; OpenAPI v3.0 wants a flag.
            out["maximum" if key == "exclusiveMaximum" else "minimum"] = value
            out[key] = True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {
                name: _openapi(v, defs, keep_defaults=keep_defaults) for name, v in value.items()
            }
        else:
            out[key] = _openapi(value, defs, keep_defaults=keep_defaults)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def model_schema(model: type[Any], *, keep_defaults: bool) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model (camelCase properties)."""
    raw = model.model_json_schema(
        by_alias=True, mode="serialization" if not keep_defaults else "validation"
    )
    return dict(_openapi(raw, raw.get("$defs", {}), keep_defaults=keep_defaults))


def keep_unknown_fields(node: Any) -> None:
    """Mark every object of `node` that lists its fields `x-kubernetes-preserve-unknown-fields`.

    A structural schema cannot say `additionalProperties: false`, and the API server prunes
    a field it does not know without a word (`kubectl apply` names it, other clients only get
    a warning, if that): a typo'd `lerningRate` would run the cycle with the default. Kept,
    the field reaches the operator, which refuses the spec naming it (`InvalidSpec`), as
    `kaizen check` does.
    """
    if isinstance(node, list):
        for item in node:
            keep_unknown_fields(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" and "properties" in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    for key in ("properties", "additionalProperties", "items", "anyOf"):
        value = node.get(key)
        if key == "properties" and isinstance(value, dict):
            for child in value.values():
                keep_unknown_fields(child)
        else:
            keep_unknown_fields(value)


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec_schema = model_schema(ImprovementCycleSpec, keep_defaults=True)
    keep_unknown_fields(spec_schema)
    status_schema = model_schema(ImprovementCycleStatus, keep_defaults=False)
    # Lists keyed like metav1.Condition, so server-side apply and tools merge them by key.
    for field, key in (("conditions", "type"), ("steps", "name")):
        status_schema["properties"][field]["x-kubernetes-list-type"] = "map"
        status_schema["properties"][field]["x-kubernetes-list-map-keys"] = [key]
    # The spec a cycle runs is a copy the operator wrote from a validated spec: kept whole
    # (not pruned, no defaults applied to it), without repeating the spec's schema here.
    run_spec = status_schema["properties"]["runSpec"]
    status_schema["properties"]["runSpec"] = {
        "type": "object",
        "description": run_spec.get("description", ""),
        "x-kubernetes-preserve-unknown-fields": True,
    }
    return crd_document(
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        printer_columns=PRINTER_COLUMNS,
        description=(
            "A continuous-improvement cycle: evaluate a model, analyze its "
            "weaknesses, train one LoRA adapter per priority domain, merge them, and "
            "validate the candidate against the baseline on identical items."
        ),
        spec_schema=spec_schema,
        status_schema=status_schema,
    )


def crd_document(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    printer_columns: Sequence[object],
    description: str,
    spec_schema: dict[str, Any],
    status_schema: dict[str, Any],
) -> dict[str, Any]:
    """A namespaced kaizen.dev CustomResourceDefinition with a status subresource (the
    envelope every Kaizen resource shares; the schemas and columns are its own)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kaizen", "app.kubernetes.io/part-of": "kaizen"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["kaizen"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as YAML text, exactly as committed."""
    header = "# Generated from kaizen.api by `python -m kaizen.api.crd`. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaizen.api.crd", description=__doc__)
    parser.add_argument(
        "--output",
        action="append",
        type=Path,
        help="file to write (repeatable); default: print to stdout",
    )
    args = parser.parse_args(argv)
    text = render_crd()
    if not args.output:
        sys.stdout.write(text)
        return 0
    for path in args.output:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
