"""The Helm chart, rendered by Helm's own engine for several value sets and checked by real tools.

Every rendered object validates against the Kubernetes 1.32 schemas (`kubernetes-validate`,
strict); the operator Deployment meets the Pod Security "restricted" profile field by field;
RBAC has no wildcards and is cluster-wide only when it must be; bad values fail with a message
that names the value.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jsonschema
import pytest
import yaml

from kaizen.api.crd import CRD_FILENAME
from kaizen.operator.settings import OperatorSettings
from tests.charts.helm import (
    CHART,
    K8S_VERSION,
    NAMESPACE,
    REPO,
    helm,
    load_chart,
    notes,
    of_kind,
    one,
    render,
)

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "replicas-3": {"replicaCount": 3},
    "replicas-3-namespaced": {"replicaCount": 3, "watchNamespaces": ["team-a"]},
    "existing-pvc": {"artifacts": {"existingClaim": "shared-nfs"}},
    "servicemonitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}
    },
    "gpu-cluster": {
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "regcred"}],
        "jobs": {
            "trainer": {"image": {"repository": "registry.local/kaizen-trainer", "tag": "cu124"}},
            "defaultResources": {"cpu": "4", "memory": "32Gi"},
            "queueName": "gpu-queue",
            "wandbApiKeySecret": {"name": "wandb", "key": "api-key"},
            "hubTokenSecret": {"name": "hf", "key": "token"},
        },
        "artifacts": {
            "storageClassName": "nfs",
            "accessModes": ["ReadWriteMany"],
            "size": "500Gi",
            "namespaces": ["ml-a", "ml-b"],
        },
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kaizen"}},
                        },
                    }
                ]
            }
        },
    },
}
#: Kinds from CRDs that kubernetes-validate has no schema for; checked by other tests below.
CUSTOM_KINDS = {"ClusterKopfPeering", "KopfPeering", "ServiceMonitor"}


@pytest.fixture(scope="module")
def chart() -> Any:
    return load_chart()


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: Any) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(chart, VALUE_SETS[request.param])


def _deployment(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return deployment, container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


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
    assert crds == {CRD_FILENAME, "kopf.dev_peerings.yaml"}
    chart_crd = (CHART / "crds" / CRD_FILENAME).read_text()
    assert chart_crd == (REPO / "manifests" / "crd" / CRD_FILENAME).read_text()
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


# --- the Pod Security "restricted" profile, field by field --------------------------------------

_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def restricted_violations(template: dict[str, Any]) -> list[str]:
    """What in a pod template breaks the Pod Security Standard "restricted" (v1.32), check by check."""
    pod = template["spec"]
    annotations = template.get("metadata", {}).get("annotations") or {}
    pod_sc = pod.get("securityContext") or {}
    problems: list[str] = []
    # Baseline: host namespaces, host ports, hostPath, privileged, procMount, sysctls, AppArmor, SELinux.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"spec.{field}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']}")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    if any(v == "unconfined" for v in annotations.values()):
        problems.append("AppArmor unconfined annotation")
    containers = (
        pod.get("initContainers", []) + pod["containers"] + pod.get("ephemeralContainers", [])
    )
    for c in containers:
        sc = c.get("securityContext") or {}
        where = f"container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{where}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount")
        for ctx in (pod_sc, sc):
            if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
                problems.append(f"{where}: AppArmor Unconfined")
            selinux = ctx.get("seLinuxOptions") or {}
            if selinux.get("type", "") not in (
                "",
                "container_t",
                "container_init_t",
                "container_kvm_t",
            ):
                problems.append(f"{where}: SELinux type")
            if selinux.get("user") or selinux.get("role"):
                problems.append(f"{where}: SELinux user/role")
            if (ctx.get("windowsOptions") or {}).get("hostProcess"):
                problems.append(f"{where}: hostProcess")
        # Restricted: no escalation, non-root, a seccomp profile, only NET_BIND_SERVICE added.
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile {seccomp}")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities added")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    return problems


def test_operator_pod_meets_the_restricted_profile(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    deployment, container = _deployment(objects)
    assert restricted_violations(deployment["spec"]["template"]) == [], name
    # And beyond the profile: nothing writable but /tmp.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_restricted_check_catches_violations(chart: Any) -> None:
    deployment, _ = _deployment(render(chart))
    template = deployment["spec"]["template"]
    pod = template["spec"]
    pod["hostNetwork"] = True
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["securityContext"] = {}
    sc = pod["containers"][0]["securityContext"]
    sc.update(privileged=True, allowPrivilegeEscalation=True, capabilities={"add": ["SYS_ADMIN"]})
    del sc["runAsNonRoot"], sc["seccompProfile"]
    problems = " | ".join(restricted_violations(template))
    for expected in (
        "hostNetwork",
        "volume host",
        "privileged",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile",
        "drop ALL",
        "capabilities added",
    ):
        assert expected in problems


# --- the operator Deployment ------------------------------------------------------------------


def test_operator_runs_kopf_with_probes_on_its_health_endpoint(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    deployment, container = _deployment(objects)
    command = container["command"]
    assert command[:4] == ["kopf", "run", "-m", "kaizen.operator"]
    liveness = next(a for a in command if a.startswith("--liveness="))
    port = next(p for p in container["ports"] if p["name"] == "health")["containerPort"]
    assert liveness == f"--liveness=http://0.0.0.0:{port}/healthz"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    account = one(objects, "ServiceAccount")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_operator_env_names_settings_that_parse(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    _, container = _deployment(objects)
    env = _env(container)
    fields = {f"KAIZEN_{f.name.upper()}" for f in dataclasses.fields(OperatorSettings)}
    assert set(env) <= fields, set(env) - fields
    settings = OperatorSettings.from_env(env)
    values = VALUE_SETS[name]
    claim = values.get("artifacts", {}).get("existingClaim", "kaizen-artifacts")
    assert settings.artifact_pvc == claim
    metrics_port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    assert settings.metrics_port == metrics_port == 9090
    namespaces = tuple(values.get("watchNamespaces", ()))
    assert settings.namespaces == namespaces
    assert settings.scanning is not bool(namespaces)


def test_default_job_images_and_resources_are_the_operators_defaults(chart: Any) -> None:
    # One source of truth: the chart's defaults say what the operator would do without it.
    _, container = _deployment(render(chart))
    defaults = OperatorSettings()
    settings = OperatorSettings.from_env(_env(container))
    for field in (
        "evaluator_image",
        "trainer_image",
        "artifact_root",
        "artifact_pvc",
        "image_pull_policy",
        "job_service_account",
        "job_ttl_seconds",
        "default_cpu",
        "default_memory",
        "reconcile_interval",
    ):
        assert getattr(settings, field) == getattr(defaults, field), field


def test_images_tags_and_digests(chart: Any) -> None:
    _, container = _deployment(render(chart, VALUE_SETS["gpu-cluster"]))
    assert container["image"] == "ghcr.io/kaizen-dev/kaizen-operator:0.1.0@sha256:" + "a" * 64
    env = _env(container)
    assert env["KAIZEN_TRAINER_IMAGE"] == "registry.local/kaizen-trainer:cu124"
    assert env["KAIZEN_EVALUATOR_IMAGE"] == "ghcr.io/kaizen-dev/kaizen-evaluator:0.1.0"
    assert (env["KAIZEN_DEFAULT_CPU"], env["KAIZEN_DEFAULT_MEMORY"]) == ("4", "32Gi")
    assert env["KAIZEN_DEFAULT_QUEUE_NAME"] == "gpu-queue"
    assert env["KAIZEN_WANDB_API_KEY_SECRET"] == "wandb/api-key"
    assert env["KAIZEN_HUB_TOKEN_SECRET"] == "hf/token"
    # The operator parses what the chart renders.
    from kaizen.operator.settings import OperatorSettings

    settings = OperatorSettings.from_env({k: v for k, v in env.items() if k.startswith("KAIZEN_")})
    assert (settings.default_queue_name, settings.hub_token_secret) == ("gpu-queue", "hf/token")
    default_env = _env(_deployment(render(chart))[1])
    assert not {"KAIZEN_DEFAULT_QUEUE_NAME", "KAIZEN_WANDB_API_KEY_SECRET"} & set(default_env)


def test_scheduling_values_reach_the_pod(chart: Any) -> None:
    values = VALUE_SETS["gpu-cluster"]
    deployment, _ = _deployment(render(chart, values))
    pod = deployment["spec"]["template"]["spec"]
    for key in ("priorityClassName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert pod[key] == values[key], key
    default_pod = _deployment(render(chart))[0]["spec"]["template"]["spec"]
    assert not {"priorityClassName", "nodeSelector", "tolerations", "affinity"} & set(default_pod)


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
    deployment, container = _deployment(objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--standalone" in container["command"]
    assert not any(a.startswith("--peering") for a in container["command"])
    assert not of_kind(objects, "ClusterKopfPeering") + of_kind(objects, "KopfPeering")


@pytest.mark.parametrize("name", ["replicas-3", "replicas-3-namespaced"])
def test_replicas_elect_a_leader_with_kopf_peering(chart: Any, name: str) -> None:
    values = VALUE_SETS[name]
    objects = render(chart, values)
    deployment, container = _deployment(objects)
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
    assert _env(_deployment(objects)[1])["KAIZEN_ARTIFACT_PVC"] == "shared-nfs"
    assert "existing claim" in notes(chart, VALUE_SETS["existing-pvc"])


# --- metrics ------------------------------------------------------------------------------------


def test_service_monitor_scrapes_the_metrics_port(chart: Any) -> None:
    assert not {"Service", "ServiceMonitor"} & {o["kind"] for o in render(chart)}
    objects = render(chart, VALUE_SETS["servicemonitor"])
    service = one(objects, "Service")
    monitor = one(objects, "ServiceMonitor")
    deployment, container = _deployment(objects)
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
