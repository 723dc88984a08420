"""Where the emulator and the real API server knowingly differ, each side's behaviour asserted.

docs/kube-testing.md lists these differences and what the fast tier does about each. A change
to either side that closes (or opens) a gap shows up here first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from tests.apiserver.backends import Backend, G, P, V, cycle
from tests.kube.cluster import wait_for

POD = {"containers": [{"name": "main", "image": "x"}], "restartPolicy": "Never"}


def test_deleting_a_pod_bound_to_a_node(backend: Backend) -> None:
    core, ns = backend.core, backend.namespace
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": {**POD, "nodeName": "n1"}})
    core.delete_namespaced_pod("p", ns)
    if backend.name == "emulator":
        # Removed at once.
        with pytest.raises(ApiException) as err:
            core.read_namespaced_pod("p", ns)
        assert err.value.status == 404
        return
    # Graceful: marked, and kept until the kubelet confirms (the job simulator does that).
    pod = core.read_namespaced_pod("p", ns)
    assert pod.metadata.deletion_timestamp is not None
    assert pod.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("p", ns)
    assert err.value.status == 404


def test_unknown_fields_of_a_custom_resource(backend: Backend) -> None:
    body = cycle("c1", model={"name": "m", "colour": "blue"})
    created = backend.co.create_namespaced_custom_object(G, V, backend.namespace, P, body)
    if backend.name == "emulator":
        assert created["spec"] == {"model": {"name": "m", "colour": "blue"}}  # stored as sent
    else:
        # Kept, not pruned (the spec's objects preserve unknown fields so that the operator can
        # refuse a typo naming it: docs/kube-testing.md), and the schema's defaults filled in.
        assert created["spec"]["model"]["colour"] == "blue"
        assert created["spec"]["maxStepRetries"] == 1


def test_a_value_the_schema_refuses(backend: Backend) -> None:
    body = cycle("c1", evaluation={"maxNewTokens": 0})
    if backend.name == "emulator":
        backend.co.create_namespaced_custom_object(G, V, backend.namespace, P, body)
        return  # no schema validation: the operator's own check fails the cycle (InvalidSpec)
    with pytest.raises(ApiException) as err:
        backend.co.create_namespaced_custom_object(G, V, backend.namespace, P, body)
    assert err.value.status == 422
    assert "spec.evaluation.maxNewTokens" in json.loads(err.value.body)["message"]


def test_field_selectors_on_custom_resources(backend: Backend) -> None:
    co, ns = backend.co, backend.namespace
    co.create_namespaced_custom_object(G, V, ns, P, cycle("c1", queueName="q"))
    by_name = co.list_namespaced_custom_object(G, V, ns, P, field_selector="metadata.name=c1")
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["c1"]
    if backend.name == "emulator":
        # Any dotted path.
        found = co.list_namespaced_custom_object(G, V, ns, P, field_selector="spec.queueName=q")
        assert [i["metadata"]["name"] for i in found["items"]] == ["c1"]
        return
    # Only metadata.name and metadata.namespace (selectableFields came in 1.30).
    with pytest.raises(ApiException) as err:
        co.list_namespaced_custom_object(G, V, ns, P, field_selector="spec.queueName=q")
    assert err.value.status == 400


def test_objects_in_a_namespace_that_does_not_exist(backend: Backend) -> None:
    body = {"metadata": {"name": "cm"}}
    if backend.name == "emulator":
        backend.core.create_namespaced_config_map("nowhere", body)
        return  # namespaces are just a field
    with pytest.raises(ApiException) as err:
        backend.core.create_namespaced_config_map("nowhere", body)
    assert err.value.status == 404  # NamespaceLifecycle admission


def test_pod_logs(backend: Backend) -> None:
    core, ns = backend.core, backend.namespace
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": POD})
    client = backend.api_client()
    config = client.configuration
    headers = {"Content-Type": "text/plain"}
    for auth in config.auth_settings().values():
        headers[auth["key"]] = auth["value"]
    answer = client.rest_client.pool_manager.request(
        "PUT", f"{config.host}/api/v1/namespaces/{ns}/pods/p/log", body=b"one\n", headers=headers
    )
    if backend.name == "emulator":
        assert answer.status == 200  # an emulator-only verb: the job simulator stores logs
        assert core.read_namespaced_pod_log("p", ns) == "one\n"
    else:
        assert answer.status == 405  # logs live on the node


def test_the_garbage_collector_is_asynchronous(backend: Backend) -> None:
    co, batch, ns = backend.co, backend.batch, backend.namespace
    c = co.create_namespaced_custom_object(G, V, ns, P, cycle("c1"))
    owner = {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementCycle",
        "name": "c1",
        "uid": c["metadata"]["uid"],
        "controller": True,
    }
    batch.create_namespaced_job(
        ns,
        {
            "metadata": {"name": "j1", "ownerReferences": [owner]},
            "spec": {"template": {"spec": POD}},
        },
    )
    co.delete_namespaced_custom_object(G, V, ns, P, "c1")
    if backend.name == "emulator":
        # Dependents go in the same request.
        assert batch.list_namespaced_job(ns).items == []
    else:
        # The answer comes first; the garbage collector deletes the Job after (tests wait).
        wait_for(lambda: batch.list_namespaced_job(ns).items, lambda jobs: jobs == [], what="GC")


def test_version_specific_job_fields(backend: Backend) -> None:
    job = backend.batch.create_namespaced_job(
        backend.namespace,
        {
            "metadata": {"name": "j"},
            "spec": {
                "suspend": True,
                "ttlSecondsAfterFinished": 60,
                "template": {"spec": POD},
            },
        },
    )
    stored = backend.api_client().sanitize_for_serialization(job)["spec"]
    if backend.name == "emulator":
        # The emulator keeps every field (it models a current Kubernetes).
        assert stored["suspend"] is True and stored["ttlSecondsAfterFinished"] == 60
        return
    version = backend.handle.raw("GET", "/version")
    if (int(version["major"]), int(version["minor"].rstrip("+"))) < (1, 21):
        # 1.20 drops both: suspend came in 1.21, ttlSecondsAfterFinished was alpha (off).
        assert "suspend" not in stored and "ttlSecondsAfterFinished" not in stored


def test_kubectl_validates_against_the_published_schema(backend: Backend, tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    manifest = tmp_path / "c.yaml"
    manifest.write_text(json.dumps(cycle("c1", model={"name": "m", "colour": "blue"})))
    kubectl = backend.handle.kubectl
    result = kubectl("apply", "-n", backend.namespace, "-f", str(manifest), check=False)
    if backend.name == "emulator":
        # No OpenAPI served: kubectl needs --validate=false, and then nothing is checked.
        assert result.returncode != 0
        kubectl("apply", "--validate=false", "-n", backend.namespace, "-f", str(manifest))
    else:
        # The published schema keeps unknown spec fields (x-kubernetes-preserve-unknown-fields),
        # so kubectl's validation passes them on; the operator refuses them (InvalidSpec).
        assert result.returncode == 0, result.stderr
        stored = backend.co.get_namespaced_custom_object(G, V, backend.namespace, P, "c1")
        assert stored["spec"]["model"]["colour"] == "blue"


def test_service_account_admission(backend: Backend) -> None:
    # A real server admits a pod only once its namespace's ServiceAccount exists (the
    # apiserver fixture waits for the controller that makes it); the emulator does not check.
    ns = backend.namespace
    pod = backend.core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": POD})
    if backend.name == "emulator":
        assert pod.spec.service_account_name in (None, "default")
    else:
        assert pod.spec.service_account_name == "default"
        assert any(v.secret and v.name.startswith("default-token-") for v in pod.spec.volumes or [])
