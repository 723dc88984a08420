"""The ImprovementChain CRD is generated from the API models, like the cycle's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kaizen.api.chain import parse_chain
from kaizen.api.crd_chain import CHAIN_CRD_FILENAME, build_chain_crd, render_chain_crd
from kaizen.api.resource import SpecError
from tests.api.test_crd import _strip_openapi, _walk

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "manifests" / "crd" / CHAIN_CRD_FILENAME


def _version() -> dict[str, Any]:
    return dict(build_chain_crd()["spec"]["versions"][0])


def _spec_schema() -> dict[str, Any]:
    return dict(_version()["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == render_chain_crd(), "manifests/crd is stale: run `make crd`"
    assert (REPO / "charts" / "kaizen" / "crds" / CHAIN_CRD_FILENAME).read_text() == (
        COMMITTED.read_text()
    ), "the chart's copy is stale: run `make crd`"


def test_schema_is_structural_and_described() -> None:
    root = _version()["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    # The one x-of: at least one trigger, with value validations only (structural).
    for option in spec["anyOf"]:
        assert set(option) <= {"required", "properties"}
        for name, inner in option.get("properties", {}).items():
            assert name in spec["properties"] and set(inner) == {"enum"}
    for path, node in _walk({k: v for k, v in spec.items() if k != "anyOf"}, "spec"):
        assert "$ref" not in node and "title" not in node, path
        if "x-kubernetes-int-or-string" not in node:
            assert "type" in node and "anyOf" not in node, path
        if path.count(".") >= 1 and not path.endswith("[]") and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description"
    for path, node in _walk(root["properties"]["status"], "status"):
        assert "$ref" not in node and "anyOf" not in node, path


def test_printer_columns_and_status_subresource() -> None:
    version = _version()
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Version"] == ".status.version"
    assert columns["Last"] == ".status.lastVerdict"
    assert columns["Best"] == ".status.bestScore"
    assert columns["Test"] == ".status.testScore"  # what stop.targetScore reads
    assert columns["Current"] == ".status.currentCycle"
    assert columns["Next"] == ".status.nextRunTime"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == ".metadata.creationTimestamp"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for path in {c["jsonPath"] for c in version["additionalPrinterColumns"]}:
        if path.startswith(".status."):
            assert path.split(".")[2].split("[")[0] in status, path


def test_the_crd_validates_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(build_chain_crd(), "1.32", strict=True)


BAD = [
    ({}, "no trigger"),
    ({"afterPrevious": False}, "no trigger"),
    ({"afterPrevious": True, "concurrencyPolicy": "Allow"}, "concurrencyPolicy"),
    ({"afterPrevious": True, "stop": {"maxCycles": 0}}, "stop.maxCycles"),
    ({"afterPrevious": True, "stop": {"targetScore": 1.5}}, "stop.targetScore"),
    ({"afterPrevious": True, "failedCyclesHistoryLimit": -1}, "failedCyclesHistoryLimit"),
    ({"schedule": {"cron": "0 2 * *"}}, "schedule.cron"),
    ({"schedule": {"timeZone": "UTC"}}, "schedule.cron"),
    (
        {"afterPrevious": True, "template": {"spec": {"training": {"rank": 0}}}},
        "template.spec.training.rank",
    ),
]


@pytest.mark.parametrize(("spec", "what"), BAD, ids=[b[1] for b in BAD])
def test_bad_specs_are_refused_by_the_schema_and_by_kaizen_check(
    spec: dict[str, Any], what: str
) -> None:
    schema = _strip_openapi(_spec_schema())
    defaulted = {"afterPrevious": False, **spec}  # the API server applies defaults first
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(defaulted, schema)
    with pytest.raises(SpecError) as error:
        parse_chain(
            {
                "apiVersion": "kaizen.dev/v1alpha1",
                "kind": "ImprovementChain",
                "metadata": {"name": "c"},
                "spec": spec,
            }
        )
    field = "spec: " if what == "no trigger" else f"spec.{what}"
    assert field in str(error.value)


def test_chain_samples_validate_against_the_schema_and_the_models() -> None:
    schema = _strip_openapi(_spec_schema())
    found = 0
    for path in sorted((REPO / "manifests").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ImprovementChain":
                jsonschema.validate(doc["spec"], schema)
                parse_chain(doc)
                found += 1
    assert found >= 2, "a nightly chain sample and a GitOps chain"
