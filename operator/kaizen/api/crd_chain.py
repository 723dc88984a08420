"""Generate the `ImprovementChain` CustomResourceDefinition from the pydantic models.

The same conversion as the cycle's CRD (`kaizen.api.crd.model_schema`): `python -m
kaizen.api.crd_chain --output manifests/crd/kaizen.dev_improvementchains.yaml` (`make crd`),
and a test fails when the committed file, or the chart's copy, differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from kaizen.api.chain import (
    CHAIN_KIND,
    CHAIN_PLURAL,
    CHAIN_SHORT_NAMES,
    CHAIN_SINGULAR,
    ImprovementChainSpec,
    ImprovementChainStatus,
)
from kaizen.api.crd import crd_document, model_schema
from kaizen.api.resource import GROUP

CHAIN_CRD_FILENAME = f"{GROUP}_{CHAIN_PLURAL}.yaml"

PRINTER_COLUMNS = [
    {
        "name": "Version",
        "type": "integer",
        "jsonPath": ".status.version",
        "description": "The current model version: how many cycles promoted.",
    },
    {
        "name": "Last",
        "type": "string",
        "jsonPath": ".status.lastVerdict",
        "description": "Outcome of the latest finished cycle.",
    },
    {
        "name": "Best",
        "type": "number",
        "jsonPath": ".status.bestScore",
        "description": "Best overall score of any version.",
    },
    {
        "name": "Test",
        "type": "number",
        "jsonPath": ".status.testScore",
        "description": "The current version's score on the suite's test items (what "
        "stop.targetScore reads).",
    },
    {
        "name": "Score",
        "type": "number",
        "jsonPath": ".status.score",
        "description": "Overall score of the current version.",
        "priority": 1,
    },
    {
        "name": "Current",
        "type": "string",
        "jsonPath": ".status.currentCycle",
        "description": "The cycle running now.",
    },
    {
        "name": "Next",
        "type": "string",
        "jsonPath": ".status.nextRunTime",
        "description": "When the next cycle is due (UTC).",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "priority": 1,
    },
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule.cron", "priority": 1},
    {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_chain_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object of `ImprovementChain`."""
    spec_schema = model_schema(ImprovementChainSpec, keep_defaults=True)
    status_schema = model_schema(ImprovementChainStatus, keep_defaults=False)
    # The one cross-field rule OpenAPI can state: a trigger (schedule, afterPrevious or both).
    spec_schema["anyOf"] = [
        {"required": ["schedule"]},
        {"required": ["afterPrevious"], "properties": {"afterPrevious": {"enum": [True]}}},
    ]
    status_schema["properties"]["conditions"]["x-kubernetes-list-type"] = "map"
    status_schema["properties"]["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
    return crd_document(
        kind=CHAIN_KIND,
        plural=CHAIN_PLURAL,
        singular=CHAIN_SINGULAR,
        short_names=CHAIN_SHORT_NAMES,
        printer_columns=PRINTER_COLUMNS,
        description=(
            "A model that keeps improving: an ImprovementCycle "
            "template run on a schedule or back to back, each cycle starting "
            "from the adapters promoted so far, with stop conditions, history "
            "limits and the lineage of every version."
        ),
        spec_schema=spec_schema,
        status_schema=status_schema,
    )


def render_chain_crd() -> str:
    """The CRD as YAML text, exactly as committed."""
    header = (
        "# Generated from kaizen.api by `python -m kaizen.api.crd_chain`. Do not edit by hand.\n"
    )
    return header + yaml.safe_dump(
        build_chain_crd(), sort_keys=False, width=100, allow_unicode=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaizen.api.crd_chain", description=__doc__)
    parser.add_argument(
        "--output", action="append", type=Path, help="file to write (repeatable); default: stdout"
    )
    args = parser.parse_args(argv)
    text = render_chain_crd()
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
