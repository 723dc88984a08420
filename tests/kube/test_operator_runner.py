"""The runner starts the real kopf operator against the emulator and the job simulator."""

from __future__ import annotations

import kubernetes

from tests.kube.cluster import CYCLES, JOBS, PODS, running_operator, wait_for


def test_tiny_operator_reaches_its_goal(cluster, jobsim, namespace):
    co = kubernetes.client.CustomObjectsApi(cluster.api_client())
    with running_operator(cluster, "tests.kube.tiny_operator", namespace, check_errors=True) as op:
        co.create_namespaced_custom_object(
            "kaizen.dev",
            "v1alpha1",
            namespace,
            "improvementcycles",
            {
                "apiVersion": "kaizen.dev/v1alpha1",
                "kind": "ImprovementCycle",
                "metadata": {"name": "c1"},
                "spec": {"model": "m"},
            },
        )
        done = wait_for(
            lambda: cluster.get(CYCLES, namespace, "c1"),
            lambda c: (c.get("status") or {}).get("phase") == "Succeeded",
            what="the cycle to succeed",
        )
        assert done["status"]["summary"] == {"overall": 0.7}
        assert done["metadata"]["finalizers"]  # kopf added its finalizer (JSON-patch with test ops)
        [job] = cluster.objects(JOBS, namespace)
        assert job["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]

        co.delete_namespaced_custom_object(
            "kaizen.dev", "v1alpha1", namespace, "improvementcycles", "c1"
        )
        wait_for(
            lambda: cluster.get(CYCLES, namespace, "c1"),
            lambda c: c is None,
            what="the cycle to go",
        )
        assert cluster.objects(JOBS, namespace) == [] and cluster.objects(PODS, namespace) == []
    assert any("Handler 'created' succeeded" in m for m in op.messages())
