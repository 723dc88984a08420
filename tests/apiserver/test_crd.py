"""The generated CRD on a real API server: installed, published, printer columns, status subresource."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.apiserver.server import CRD_MANIFEST, ApiServer

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
CRD_NAME = f"{P}.{G}"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def cycle(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementCycle",
        "metadata": {"name": name},
        "spec": spec if spec is not None else {"model": {"name": "m"}},
    }


@pytest.fixture
def co(apiserver: ApiServer) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(apiserver.api_client())


def test_the_server_is_the_expected_release(apiserver: ApiServer) -> None:
    version = apiserver.raw("GET", "/version")
    assert (version["major"], version["minor"]) >= ("1", "20"), version


def test_the_generated_crd_is_established_and_served(apiserver: ApiServer) -> None:
    crd = apiserver.raw(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    )
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    # A structural schema: no NonStructuralSchema condition.
    assert "NonStructuralSchema" not in conditions
    committed = yaml.safe_load(CRD_MANIFEST.read_text())
    assert crd["status"]["acceptedNames"]["shortNames"] == committed["spec"]["names"]["shortNames"]
    resources = apiserver.kubectl("api-resources", f"--api-group={G}", "-o", "wide").stdout
    assert "ImprovementCycle" in resources and "true" in resources  # namespaced
    # The category and short names work with kubectl.
    apiserver.kubectl("get", "kaizen", "-A")
    for short in committed["spec"]["names"]["shortNames"]:
        apiserver.kubectl("get", short, "-A")


def test_the_schema_descriptions_are_published(apiserver: ApiServer) -> None:
    explained = apiserver.kubectl("explain", "improvementcycle.status").stdout
    assert "artifactsPath" in explained and "Adapters trained in this cycle" in explained
    # The spec's objects keep unknown fields (x-kubernetes-preserve-unknown-fields, so the
    # operator can refuse a typo by name); OpenAPI v2, which this release's kubectl explain
    # reads, publishes such an object without its fields: only the description is shown.
    # (A known cost of that choice: docs/kube-testing.md.)
    explained = apiserver.kubectl("explain", "improvementcycle.spec").stdout
    assert "One evaluate" in explained and "learningRate" not in explained


def test_printer_columns_are_served(apiserver: ApiServer, co, namespace: str) -> None:
    co.create_namespaced_custom_object(
        G, V, namespace, P, cycle("c1", {"model": {"name": "org/m"}})
    )
    co.patch_namespaced_custom_object_status(
        G,
        V,
        namespace,
        P,
        "c1",
        {
            "status": {
                "phase": "Succeeded",
                "validation": {"verdict": "Promote", "overallDelta": 0.25, "pValue": 0.01},
            }
        },
    )
    table = apiserver.raw("GET", f"/apis/{G}/{V}/namespaces/{namespace}/{P}", accept=TABLE)
    assert table["kind"] == "Table"
    columns = [(c["name"], c.get("priority", 0)) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Phase", 0),
        ("Verdict", 0),
        ("Delta", 1),
        ("Model", 1),
        ("Age", 0),
    ]
    (row,) = table["rows"]
    assert row["cells"][:5] == ["c1", "Succeeded", "Promote", 0.25, "org/m"]

    out = apiserver.kubectl("get", "improvementcycles", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "VERDICT", "AGE"]
    assert out[1].split()[:3] == ["c1", "Succeeded", "Promote"]
    wide = apiserver.kubectl("get", "ic", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "PHASE", "VERDICT", "DELTA", "MODEL", "AGE"]
    assert wide[1].split()[:5] == ["c1", "Succeeded", "Promote", "0.25", "org/m"]


def test_status_is_a_subresource(apiserver: ApiServer, co, namespace: str) -> None:
    created = co.create_namespaced_custom_object(
        G, V, namespace, P, {**cycle("c1"), "status": {"phase": "Hacked"}}
    )
    assert "status" not in created  # create drops status
    assert created["metadata"]["generation"] == 1

    # The main resource ignores status; metadata-only changes keep the generation.
    patched = co.patch_namespaced_custom_object(
        G, V, namespace, P, "c1", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "No"}}
    )
    assert "status" not in patched and patched["metadata"]["generation"] == 1
    patched = co.patch_namespaced_custom_object(
        G, V, namespace, P, "c1", {"spec": {"model": {"name": "other"}}}
    )
    assert patched["metadata"]["generation"] == 2

    # /status changes only status, and never the generation.
    patched = co.patch_namespaced_custom_object_status(
        G,
        V,
        namespace,
        P,
        "c1",
        {"status": {"phase": "Evaluating"}, "spec": {"model": {"name": "ignored"}}},
    )
    assert patched["status"]["phase"] == "Evaluating"
    assert patched["spec"]["model"]["name"] == "other"
    assert patched["metadata"]["generation"] == 2

    # kubectl's --subresource=status reaches the same subresource.
    apiserver.kubectl(
        "patch",
        "ic",
        "c1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Training"}}),
    )
    assert (
        co.get_namespaced_custom_object(G, V, namespace, P, "c1")["status"]["phase"] == "Training"
    )


def test_undeclared_status_fields_are_pruned(co, namespace: str) -> None:
    # What the operator writes into status must be declared in the CRD, or it is lost: the
    # emulator keeps anything, a real server prunes (tests/api/test_crd.py checks the models).
    co.create_namespaced_custom_object(G, V, namespace, P, cycle("c1"))
    patched = co.patch_namespaced_custom_object_status(
        G, V, namespace, P, "c1", {"status": {"phase": "Evaluating", "notDeclared": 1}}
    )
    assert patched["status"] == {"phase": "Evaluating"}


def test_the_server_applies_the_schema_defaults(co, namespace: str) -> None:
    # Structural defaulting: absent fields inside objects that are present get the schema's
    # defaults when written (and read). The emulator stores what it is given; the operator
    # applies the same defaults itself (they come from the same models).
    created = co.create_namespaced_custom_object(
        G, V, namespace, P, cycle("c1", {"model": {}, "evaluation": {"suite": "s"}})
    )
    spec = created["spec"]
    assert spec["model"]["name"] == "bundled:smollm2-135m-instruct"
    assert spec["evaluation"]["suite"] == "s"
    assert spec["evaluation"]["maxNewTokens"] == 32
    assert "training" not in spec  # objects that are absent stay absent (no default of their own)
    assert spec["maxStepRetries"] == 1  # a top-level field of spec


def test_a_crd_cannot_forbid_unknown_fields(apiserver: ApiServer, tmp_path: Path) -> None:
    # Why the generated CRD has no `additionalProperties: false`: a structural schema may not
    # combine it with `properties`, so pruning (never an error) is all a CRD can ask for; the
    # error for an unknown field comes from the client (kubectl's validation, `kaizen check`)
    # or, from Kubernetes 1.25 on, the server's strict field validation.
    crd = yaml.safe_load(CRD_MANIFEST.read_text())
    probe = copy.deepcopy(crd)
    probe["metadata"]["name"] = "probes.strict.kaizen.dev"
    probe["spec"]["group"] = "strict.kaizen.dev"
    probe["spec"]["names"] = {
        "kind": "Probe",
        "plural": "probes",
        "singular": "probe",
        "listKind": "ProbeList",
    }
    version = probe["spec"]["versions"][0]
    version.pop("additionalPrinterColumns")
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["additionalProperties"] = False
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(probe))
    result = apiserver.kubectl("create", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "additionalProperties" in result.stderr and "properties" in result.stderr
