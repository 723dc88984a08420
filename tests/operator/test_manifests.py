"""The install manifests: they render, validate against the Kubernetes schemas, and agree with the code.

`kubectl kustomize` renders `manifests/`; `kubernetes-validate` checks each object (both are
skipped where absent). RBAC is checked against what the operator actually calls.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.operator.settings import OperatorSettings
from tests.operator.test_jobs import _cpu_evaluator_job, _gpu_trainer_job

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
K8S_VERSION = "1.32"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    if not (MANIFESTS / "crd" / "kaizen.dev_improvementcycles.yaml").exists():
        pytest.skip("the CRD has not been generated")
    out = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def test_kustomization_installs_everything(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PersistentVolumeClaim",
        ]
    )
    crds = {d["metadata"]["name"] for d in rendered if d["kind"] == "CustomResourceDefinition"}
    assert crds == {"improvementcycles.kaizen.dev", "improvementchains.kaizen.dev"}


def test_objects_validate_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for doc in rendered:
        kv.validate(doc, K8S_VERSION, strict=True)
    for job in (_cpu_evaluator_job(), _gpu_trainer_job()):
        kv.validate(job, K8S_VERSION, strict=True)
    for doc in yaml.safe_load_all((MANIFESTS / "operator" / "kopf-peering-crd.yaml").read_text()):
        kv.validate(doc, K8S_VERSION, strict=True)


def _allowed(role: dict[str, Any], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in role["rules"]:
        if group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


def test_cluster_role_is_least_privilege_and_sufficient(rendered: list[dict[str, Any]]) -> None:
    role = _one(rendered, "ClusterRole")
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    needed = {
        ("kaizen.dev", "improvementcycles"): {"get", "list", "watch", "patch", "create", "delete"},
        ("kaizen.dev", "improvementchains"): {"get", "list", "watch", "patch"},
        ("kaizen.dev", "improvementchains/status"): {"patch"},
        ("kaizen.dev", "improvementchains/finalizers"): {"update"},
        ("", "configmaps"): {"get", "create", "patch"},
        ("kaizen.dev", "improvementcycles/status"): {"patch"},
        ("kaizen.dev", "improvementcycles/finalizers"): {"update"},
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"list"},
        ("", "events"): {"create"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
        ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    }
    for (group, resource), verbs in needed.items():
        assert verbs <= _allowed(role, group, resource), (group, resource)
    # Nothing the operator has no use for: no secrets, no pods/exec, no escalation.
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert not resources & {"secrets", "pods/exec", "roles", "clusterroles", "rolebindings"}
    binding = _one(rendered, "ClusterRoleBinding")
    account = _one(rendered, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


def test_deployment_runs_the_operator_safely(rendered: list[dict[str, Any]]) -> None:
    deployment = _one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:4] == ["kopf", "run", "-m", "kaizen.operator"]
    assert "--all-namespaces" in container["command"]
    liveness = next(a for a in container["command"] if a.startswith("--liveness="))
    assert liveness.endswith(":8080/healthz")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == _one(rendered, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Every KAIZEN_* variable names a setting, and the values parse.
    fields = {f"KAIZEN_{f.name.upper()}" for f in dataclasses.fields(OperatorSettings)}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) <= fields
    settings = OperatorSettings.from_env(env)
    pvc = _one(rendered, "PersistentVolumeClaim")
    assert settings.artifact_pvc == pvc["metadata"]["name"]


def _samples() -> dict[str, dict[str, Any]]:
    samples = {}
    for path in sorted((MANIFESTS / "samples").glob("*.yaml")):
        (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
        samples[path.name] = doc
    return samples


def test_samples_are_named_by_convention_and_cover_the_deployments() -> None:
    samples = _samples()
    for name, doc in samples.items():
        # kubebuilder: <group>_<version>_<kind>[_<variant>].yaml
        kind = re.fullmatch(r"kaizen\.dev_v1alpha1_(improvement[a-z]+)(_[a-z0-9-]+)?\.yaml", name)
        assert kind and kind.group(1) == doc["kind"].lower(), name
        assert doc["apiVersion"] == "kaizen.dev/v1alpha1"
        assert doc["kind"] in ("ImprovementCycle", "ImprovementChain")
        assert "namespace" not in doc["metadata"]  # applied into the user's namespace
    specs = [doc["spec"] for doc in samples.values() if doc["kind"] == "ImprovementCycle"]
    assert any(doc["kind"] == "ImprovementChain" for doc in samples.values())
    cpu = samples["kaizen.dev_v1alpha1_improvementcycle.yaml"]["spec"]  # the demo
    assert cpu["model"]["name"].startswith("bundled:")
    assert not any(r.get("gpus") for r in cpu["resources"].values())
    assert any(
        "7B" in s["model"]["name"] and all(r.get("gpus") == 1 for r in s["resources"].values())
        for s in specs
    )
    assert any(
        s.get("queueName")
        and s["tracking"].get("apiKeySecret")
        and s["analysis"]["maxPriorityDomains"] > 2
        for s in specs
    )


def test_samples_validate_against_the_committed_crd() -> None:
    import jsonschema

    from tests.api.test_crd import _strip_openapi

    schemas = {}
    for plural in ("improvementcycles", "improvementchains"):
        crd = yaml.safe_load((MANIFESTS / "crd" / f"kaizen.dev_{plural}.yaml").read_text())
        schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]["properties"]["spec"]
    for name, doc in _samples().items():
        schema = schemas[doc["kind"]]
        try:
            jsonschema.validate(_strip_openapi(doc["spec"]), _strip_openapi(schema))
        except jsonschema.ValidationError as error:
            raise AssertionError(f"{name}: {error.message}") from None
