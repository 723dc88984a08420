"""kubectl against the emulator (skipped where kubectl is not installed)."""

from __future__ import annotations

import json
import shutil

import kubernetes
import pytest

from tests.kube.cluster import CYCLES

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")

CYCLE_YAML = """
apiVersion: kaizen.dev/v1alpha1
kind: ImprovementCycle
metadata:
  name: from-kubectl
  labels: {team: a}
spec:
  model: tiny
"""


def test_kubectl_apply_get_and_patch(cluster, namespace):
    out = cluster.kubectl("apply", "--validate=false", "-n", namespace, "-f", "-", input=CYCLE_YAML)
    assert "created" in out.stdout
    stored = cluster.get(CYCLES, namespace, "from-kubectl")
    assert stored["spec"] == {"model": "tiny"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]

    out = cluster.kubectl(
        "apply",
        "--validate=false",
        "-n",
        namespace,
        "-f",
        "-",
        input=CYCLE_YAML.replace("tiny", "small"),
    )
    assert "configured" in out.stdout
    assert cluster.get(CYCLES, namespace, "from-kubectl")["metadata"]["generation"] == 2

    listed = json.loads(
        cluster.kubectl(
            "get", "improvementcycles", "-n", namespace, "-l", "team=a", "-o", "json"
        ).stdout
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["from-kubectl"]
    cluster.kubectl(
        "patch",
        "improvementcycle",
        "from-kubectl",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running"}}',
    )
    got = cluster.kubectl(
        "get", "improvementcycle", "from-kubectl", "-n", namespace, "-o", "jsonpath={.status.phase}"
    )
    assert got.stdout == "Running"
    cluster.kubectl("delete", "improvementcycle", "from-kubectl", "-n", namespace)
    assert cluster.get(CYCLES, namespace, "from-kubectl") is None


def test_kubectl_get_jobs(cluster, namespace):
    batch = kubernetes.client.BatchV1Api(cluster.api_client())
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "j1"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                }
            },
        },
    )
    out = cluster.kubectl("get", "jobs", "-n", namespace)
    assert out.stdout.splitlines()[0].split()[0] == "NAME"
    assert "j1" in out.stdout
    assert cluster.kubectl("get", "jobs", "-n", "other").stderr.startswith("No resources found")
