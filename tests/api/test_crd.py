"""The CRD is generated from the API models: the committed YAML must not drift."""

from __future__ import annotations

from pathlib import Path

import yaml

from kaizen.api.crd import CRD_FILENAME, build_crd, render_crd

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "manifests" / "crd" / CRD_FILENAME


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == render_crd(), (
        "manifests/crd is stale: run `python -m kaizen.api.crd --output manifests/crd/kaizen.dev_improvementcycles.yaml`"
    )


def test_chart_crd_copy_matches_when_the_chart_exists() -> None:
    chart_copy = REPO / "charts" / "kaizen" / "crds" / CRD_FILENAME
    if chart_copy.exists():
        assert chart_copy.read_text() == COMMITTED.read_text()


def _walk(schema: dict, path: str = ""):  # type: ignore[no-untyped-def]
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural_and_described() -> None:
    version = build_crd()["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(root["properties"]["spec"], "spec"):
        assert "$ref" not in node and "title" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            # The one `anyOf` a structural schema allows (resource quantities).
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node, path
        else:
            assert "anyOf" not in node and "type" in node, path
        if node.get("type") == "object" and "properties" in node:
            # Kept so that the operator can refuse a misspelt field (pruning would hide it).
            assert node.get("x-kubernetes-preserve-unknown-fields") is True, path
        if path.count(".") >= 1 and not path.endswith("[]") and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description"
    for path, node in _walk(root["properties"]["status"], "status"):
        assert "$ref" not in node and "anyOf" not in node, path
        assert node.get("additionalProperties") is not False, path


def test_status_subresource_and_printer_columns() -> None:
    version = build_crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Verdict"] == ".status.validation.verdict"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_every_status_field_the_operator_writes_is_declared() -> None:
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    declared = set(status["properties"])
    for key in (
        "observedGeneration",
        "phase",
        "conditions",
        "steps",
        "baseline",
        "plan",
        "adapters",
        "merged",
        "candidate",
        "validation",
        "promotedAdapters",
        "failureReason",
        "message",
    ):
        assert key in declared
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_samples_validate_against_the_crd_schema() -> None:
    import jsonschema

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    samples = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
    assert samples, "manifests/samples/ holds no sample cycles"
    for sample in samples:
        for doc in yaml.safe_load_all(sample.read_text()):
            if doc["kind"] == "ImprovementCycle":  # chains: tests/api/test_crd_chain.py
                jsonschema.validate(_strip_openapi(doc["spec"]), _strip_openapi(schema))


def _strip_openapi(node):  # type: ignore[no-untyped-def]
    """OpenAPI v3.0 to JSON Schema for jsonschema: `nullable` as a type union, exclusive bounds as numbers."""
    if isinstance(node, list):
        return [_strip_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strip_openapi(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    for flag, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
        if out.get(flag) is True:
            out[flag] = out.pop(bound)
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def test_the_crd_validates_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    kubernetes_validate.validate(build_crd(), "1.32", strict=True)
