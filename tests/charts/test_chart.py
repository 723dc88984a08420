"""The Helm chart, rendered by Helm's own engine for several value sets and checked by real tools.

Every rendered object validates against the Kubernetes 1.32 schemas (`kubernetes-validate`,
strict); the operator Deployment meets the Pod Security "restricted" profile field by field;
RBAC has no wildcards and is cluster-wide only when it must be; bad values fail with a message
that names the value.

The Pod Security checks are in ``test_chart_restricted.py``, the operator Deployment's in
``test_chart_deployment.py``; the value sets are in ``chart_values.py``, the fixtures in
``conftest.py``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from kaizen.api.crd import CRD_FILENAME
from kaizen.api.crd_chain import CHAIN_CRD_FILENAME
from tests.charts.chart_values import VALUE_SETS
from tests.charts.helm import (
    CHART,
    K8S_VERSION,
    NAMESPACE,
    REPO,
    container_env,
    helm,
    notes,
    of_kind,
    one,
    operator_deployment,
    render,
)

#: Kinds from CRDs that kubernetes-validate has no schema for; checked by other tests below.
CUSTOM_KINDS = {"ClusterKopfPeering", "KopfPeering", "ServiceMonitor"}


# --- Helm's own checks ------------------------------------------------------------------------


def test_chart_metadata_and_lint() -> None:
    metadata = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert metadata["apiVersion"] == "v2" and metadata["name"] == "kaizen"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{metadata["appVersion"]}"' in pyproject  # images are tagged by release
    for values in VALUE_SETS.values():
        report = helm.lint(CHART, values, strict=True, kube_version="v1.32.0")
        assert report["errors"] == [], report
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_values_validate_against_the_chart_schema(chart: Any) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(defaults, schema)
    for values in VALUE_SETS.values():
        chart.validate_schema(chart.merge_values(values))


# --- every object is valid Kubernetes ----------------------------------------------------------


def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    _, objects = rendered
    assert objects
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kv.validate(obj, K8S_VERSION, strict=True)
        # Namespaced objects say where they go, so `helm template | kubectl apply` works too.
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace"), obj["metadata"]


def test_chart_crds_are_the_generated_ones() -> None:
    crds = {p.name for p in (CHART / "crds").iterdir()}
    assert crds == {CRD_FILENAME, CHAIN_CRD_FILENAME, "kopf.dev_peerings.yaml"}
    for name in (CRD_FILENAME, CHAIN_CRD_FILENAME):
        chart_crd = (CHART / "crds" / name).read_text()
        assert chart_crd == (REPO / "manifests" / "crd" / name).read_text(), name
    peering = list(yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()))
    manifests = REPO / "manifests" / "operator" / "kopf-peering-crd.yaml"
    assert peering == list(yaml.safe_load_all(manifests.read_text()))


def test_peering_objects_match_their_crds(chart: Any) -> None:
    crds = {
        crd["spec"]["names"]["kind"]: crd
        for crd in yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text())
    }
    for values in VALUE_SETS.values():
        for obj in render(chart, values):
            if obj["kind"] in crds:
                crd = crds[obj["kind"]]
                assert obj["apiVersion"] == f"{crd['spec']['group']}/v1"
                assert ("namespace" in obj["metadata"]) == (crd["spec"]["scope"] == "Namespaced")
                schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
                jsonschema.validate({k: v for k, v in obj.items() if k == "status"}, schema)


# --- RBAC ---------------------------------------------------------------------------------------


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for o in objects if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]


def test_rbac_has_no_wildcards_and_no_escalation(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    rules = _rules(objects)
    assert rules
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(key, []), rule
        assert not set(rule["resources"]) & {
            "secrets",
            "pods/exec",
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
            "serviceaccounts/token",
        }, rule
        assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate", "deletecollection"}


def test_cluster_role_only_when_watching_all_namespaces(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    namespaces = VALUE_SETS[name].get("watchNamespaces", [])
    kinds = {o["kind"] for o in objects}
    account = one(objects, "ServiceAccount")["metadata"]
    subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    if not namespaces:
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
        assert not {"Role", "RoleBinding"} & kinds
        binding = one(objects, "ClusterRoleBinding")
        assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
        assert binding["subjects"] == [subject]
        return
    assert not {"ClusterRole", "ClusterRoleBinding"} & kinds
    roles = of_kind(objects, "Role")
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[0]["metadata"]["name"],
        }
        assert binding["subjects"] == [subject]
    # Nothing cluster-scoped is needed in a namespace: no CRD or namespace access.
    resources = {r for rule in _rules(objects) for r in rule["resources"]}
    assert not resources & {"customresourcedefinitions", "namespaces", "clusterkopfpeerings"}


def test_chart_rules_are_the_install_manifests_rules(chart: Any) -> None:
    # manifests/rbac/cluster_role.yaml is the standalone install's copy: the same permissions.
    manifest = yaml.safe_load((REPO / "manifests" / "rbac" / "cluster_role.yaml").read_text())
    expected = [r for r in manifest["rules"] if r["apiGroups"] != ["kopf.dev"]]
    assert one(render(chart), "ClusterRole")["rules"] == expected


# --- peering (leader election) --------------------------------------------------------------------


def test_one_replica_runs_standalone_with_recreate(chart: Any) -> None:
    objects = render(chart)
    deployment, container = operator_deployment(objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--standalone" in container["command"]
    assert not any(a.startswith("--peering") for a in container["command"])
    assert not of_kind(objects, "ClusterKopfPeering") + of_kind(objects, "KopfPeering")


@pytest.mark.parametrize("name", ["replicas-3", "replicas-3-namespaced"])
def test_replicas_elect_a_leader_with_kopf_peering(chart: Any, name: str) -> None:
    values = VALUE_SETS[name]
    objects = render(chart, values)
    deployment, container = operator_deployment(objects)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--standalone" not in container["command"]
    # No --priority: every replica derives its own from its pod name (equal ones would freeze).
    assert not any(a.startswith(("--priority", "-p")) for a in container["command"])
    (peering_arg,) = [a for a in container["command"] if a.startswith("--peering=")]
    peering_name = peering_arg.split("=", 1)[1]
    namespaces = values.get("watchNamespaces")
    kind = "KopfPeering" if namespaces else "ClusterKopfPeering"
    peerings = of_kind(objects, kind)
    assert {p["metadata"]["name"] for p in peerings} == {peering_name}
    if namespaces:
        assert sorted(p["metadata"]["namespace"] for p in peerings) == sorted(namespaces)
    plural = kind.lower() + "s"
    verbs: set[str] = set()
    for rule in _rules(objects):
        if rule["apiGroups"] == ["kopf.dev"] and rule["resources"] == [plural]:
            assert rule.get("resourceNames", [peering_name]) == [peering_name]
            verbs |= set(rule["verbs"])
    assert verbs >= {"get", "list", "watch", "patch"}


# --- artifacts ----------------------------------------------------------------------------------


def test_artifact_claims(chart: Any) -> None:
    (claim,) = of_kind(render(chart), "PersistentVolumeClaim")
    assert claim["metadata"]["namespace"] == NAMESPACE
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the cluster's default StorageClass

    namespaced = of_kind(render(chart, VALUE_SETS["namespaced"]), "PersistentVolumeClaim")
    assert sorted(c["metadata"]["namespace"] for c in namespaced) == ["team-a", "team-b"]

    nfs = of_kind(render(chart, VALUE_SETS["gpu-cluster"]), "PersistentVolumeClaim")
    assert sorted(c["metadata"]["namespace"] for c in nfs) == ["ml-a", "ml-b"]
    assert nfs[0]["spec"]["storageClassName"] == "nfs"
    assert nfs[0]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert nfs[0]["spec"]["resources"]["requests"]["storage"] == "500Gi"

    static = render(chart, {"artifacts": {"storageClassName": "-", "keepOnUninstall": False}})
    (claim,) = of_kind(static, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == ""
    assert "annotations" not in claim["metadata"]


def test_existing_claim_is_used_and_none_created(chart: Any) -> None:
    objects = render(chart, VALUE_SETS["existing-pvc"])
    assert not of_kind(objects, "PersistentVolumeClaim")
    assert container_env(operator_deployment(objects)[1])["KAIZEN_ARTIFACT_PVC"] == "shared-nfs"
    assert "existing claim" in notes(chart, VALUE_SETS["existing-pvc"])


# --- metrics ------------------------------------------------------------------------------------


def test_service_monitor_scrapes_the_metrics_port(chart: Any) -> None:
    assert not {"Service", "ServiceMonitor"} & {o["kind"] for o in render(chart)}
    objects = render(chart, VALUE_SETS["servicemonitor"])
    service = one(objects, "Service")
    monitor = one(objects, "ServiceMonitor")
    deployment, container = operator_deployment(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    assert "metrics" in {p["name"] for p in container["ports"]}
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [port["name"]]


# --- bad values fail at install time, saying which value ----------------------------------------

BAD_VALUES = [
    ({"replicaCount": -1}, "at '/replicaCount': minimum: got -1, want 1"),
    ({"replicaCount": "three"}, "at '/replicaCount': got string, want integer"),
    ({"image": {"repository": ""}}, "at '/image/repository': minLength: got 0, want 1"),
    ({"image": {"repository": None}}, "at '/image': missing property 'repository'"),
    (
        {"jobs": {"trainer": {"image": {"repository": None}}}},
        "at '/jobs/trainer/image': missing property 'repository'",
    ),
    ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    ({"replicaCounts": 2}, "additional properties 'replicaCounts' not allowed"),
    ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0'"),
    ({"artifacts": {"accessModes": ["ReadWriteSometimes"]}}, "at '/artifacts/accessModes/0'"),
    ({"artifacts": {"size": "lots"}}, "at '/artifacts/size'"),
    ({"jobs": {"defaultResources": {"memory": "4 GB"}}}, "at '/jobs/defaultResources/memory'"),
    ({"logFormat": "xml"}, "at '/logFormat'"),
    ({"reconcileInterval": 0}, "at '/reconcileInterval'"),
    ({"maxReconciliations": 0}, "at '/maxReconciliations'"),
    ({"listChunkSize": -1}, "at '/listChunkSize'"),
    (
        {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
        "metrics.serviceMonitor.enabled needs metrics.enabled",
    ),
    ({"health": {"port": 9090}}, "health.port and metrics.port must differ"),
    (
        {"serviceAccount": {"create": False}},
        "serviceAccount.name is required when serviceAccount.create is false",
    ),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_values_fail_with_a_clear_message(
    chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError) as failure:
        render(chart, values)
    assert message in str(failure.value)


# --- NOTES.txt ----------------------------------------------------------------------------------


def test_notes_tell_the_user_what_to_do_next(chart: Any) -> None:
    text = notes(chart)
    assert "rollout status deployment/kaizen" in text
    assert "kubectl get improvementcycles" in text
    assert "kaizen.dev_v1alpha1_improvementcycle.yaml" in text
    assert f"kubectl apply -n {NAMESPACE}" in text  # where the chart created the claim
    peered = notes(chart, VALUE_SETS["replicas-3-namespaced"])
    assert "3 replicas elected by kopf peering" in peered
    assert "kubectl apply -n team-a" in peered
