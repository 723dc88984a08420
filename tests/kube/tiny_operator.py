"""A tiny kopf operator for the runner's end-to-end test (not the Kaizen operator).

On create of an ImprovementCycle it sets ``status.phase: Running`` and creates an owned Job
whose step writes a JSON summary; when that Job completes, it copies the Pod's termination
message into ``status.summary`` and sets ``phase: Succeeded``. It has no login handler on
purpose: the runner adds one that reads $KUBECONFIG.
"""

from __future__ import annotations

import json
import os
from typing import Any

import kopf
import kubernetes

STEP = "import json, os; json.dump({'overall': 0.7}, open(os.environ['KAIZEN_SUMMARY_PATH'], 'w'))"


def _client() -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=os.environ["KUBECONFIG"])


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kaizen.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kaizen.dev", key="last-handled-configuration"
    )


@kopf.on.create("kaizen.dev", "v1alpha1", "improvementcycles")
def created(body: kopf.Body, name: str, namespace: str, patch: kopf.Patch, **_: Any) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-baseline", "labels": {"kaizen.dev/cycle": name}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "step", "image": "x", "command": ["python", "-c", STEP]}
                    ],
                }
            },
        },
    }
    kopf.adopt(job, owner=body)
    kubernetes.client.BatchV1Api(_client()).create_namespaced_job(namespace, job)
    patch.status["phase"] = "Running"


@kopf.on.delete("kaizen.dev", "v1alpha1", "improvementcycles")
def deleted(**_: Any) -> None:
    pass  # only to make kopf put a finalizer on the cycle


@kopf.on.event("batch", "v1", "jobs", labels={"kaizen.dev/cycle": kopf.PRESENT})
def job_event(
    body: kopf.Body, namespace: str, labels: kopf.Labels, type: str | None, **_: Any
) -> None:
    if type == "DELETED":
        return
    conditions = {
        c["type"]
        for c in (body.get("status") or {}).get("conditions") or []
        if c["status"] == "True"
    }
    if "Complete" not in conditions:
        return
    core = kubernetes.client.CoreV1Api(_client())
    [pod] = core.list_namespaced_pod(
        namespace, label_selector=f"job-name={body['metadata']['name']}"
    ).items
    message = pod.status.container_statuses[0].state.terminated.message
    kubernetes.client.CustomObjectsApi(_client()).patch_namespaced_custom_object_status(
        "kaizen.dev",
        "v1alpha1",
        namespace,
        "improvementcycles",
        labels["kaizen.dev/cycle"],
        {"status": {"phase": "Succeeded", "summary": json.loads(message)}},
    )
