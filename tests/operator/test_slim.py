"""No API object the operator holds keeps its `managedFields`, nor a Job its pod template
(kaizen.operator.slim)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from kubernetes import client

from kaizen.operator.kube import Kube
from kaizen.operator.slim import slim, slim_all

MANAGED = [
    {
        "manager": "kube-controller-manager",
        "operation": "Update",
        "apiVersion": "batch/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {"f:conditions": {}, "f:succeeded": {}}},
    }
]


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"kaizen.dev/cycle": "c"},
            "managedFields": copy.deepcopy(MANAGED),
        },
        "spec": {"suspend": False, "backoffLimit": 0, "template": {"spec": {"containers": []}}},
        "status": {"succeeded": 1},
    }


def cycle(name: str) -> dict[str, Any]:
    return {**job(name), "apiVersion": "kaizen.dev/v1alpha1", "kind": "ImprovementCycle"}


def slimmed(obj: dict[str, Any], *, job: bool) -> dict[str, Any]:
    expected = copy.deepcopy(obj)
    del expected["metadata"]["managedFields"]
    if job:
        del expected["spec"]["template"]
    return expected


def test_slim_removes_managed_fields_and_a_job_s_pod_template_and_nothing_else() -> None:
    obj = job("a")
    expected = slimmed(obj, job=True)
    assert slim(obj) is obj and obj == expected
    assert expected["spec"] == {"suspend": False, "backoffLimit": 0}
    assert slim(cycle("c")) == slimmed(cycle("c"), job=False)  # a cycle keeps its spec whole
    listed = {k: v for k, v in job("b").items() if k not in ("kind", "apiVersion")}
    assert slim(copy.deepcopy(listed)) == slimmed(listed, job=False)  # not known to be a Job
    assert slim(copy.deepcopy(listed), job=True) == slimmed(listed, job=True)
    assert slim({"metadata": {"name": "b"}}) == {"metadata": {"name": "b"}}
    for other in (None, "text", {"metadata": None}, {"kind": "List"}, [job("c")]):
        assert slim(copy.deepcopy(other)) == other  # not an object with metadata: untouched
    expected_items = [slimmed(listed, job=True)] * 2
    assert slim_all([copy.deepcopy(listed), listed], job=True) == expected_items


class _Response:
    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode()


class _CustomObjects:
    """Stands in for the client's CustomObjectsApi: answers as the server does."""

    def get_namespaced_custom_object(self, *args: Any, **_: Any) -> dict[str, Any]:
        return cycle(args[-1])

    def patch_namespaced_custom_object_status(self, *args: Any, **_: Any) -> dict[str, Any]:
        return cycle(args[4])

    def list_namespaced_custom_object(self, *args: Any, **_: Any) -> dict[str, Any]:
        # As the server lists built-in kinds: items without kind and apiVersion.
        items = [{k: v for k, v in job(n).items() if k not in ("kind", "apiVersion")} for n in "ab"]
        return {"kind": "List", "metadata": {}, "items": items}

    def create_namespaced_custom_object(self, *args: Any, **_: Any) -> dict[str, Any]:
        return job(args[-1]["metadata"]["name"])


class _Core:
    def list_namespaced_pod(self, *args: Any, **_: Any) -> _Response:
        pod = {k: v for k, v in job("p").items() if k not in ("kind", "apiVersion")}
        return _Response({"kind": "PodList", "metadata": {}, "items": [pod]})

    def read_namespaced_config_map(self, name: str, *args: Any, **_: Any) -> _Response:
        return _Response({**job(name), "apiVersion": "v1", "kind": "ConfigMap"})


def test_every_object_the_kube_client_returns_is_slimmed() -> None:
    kube = Kube(client.ApiClient(client.Configuration()))
    kube.custom = _CustomObjects()  # type: ignore[assignment]
    kube.core = _Core()  # type: ignore[assignment]

    async def calls() -> dict[str, list[dict[str, Any]]]:
        manifest = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "new", "namespace": "ns"},
        }
        return {
            "get_cycle": [await kube.get_cycle("ns", "c")],
            "patch_cycle_status": [await kube.patch_cycle_status("ns", "c", {"phase": "Running"})],
            "list_cycles": await kube.list_cycles("ns", "x=y"),
            "list_jobs": await kube.list_jobs("ns", "x=y"),
            "list_trainjobs": await kube.list_trainjobs("ns", "x=y"),
            "list_pods": await kube.list_pods("ns", "x=y"),
            "list_job_pods": await kube.list_job_pods("ns", "j"),
            "create_job": [await kube.create_job(manifest, "uid")],
            "get_config_map": [await kube.get_config_map("ns", "lineage")],
        }

    returned = asyncio.run(calls())
    assert sum(len(objects) for objects in returned.values()) == 12
    for objects in returned.values():
        for obj in objects:
            assert obj["metadata"]["uid"].startswith("uid-")
            assert "managedFields" not in obj["metadata"]
    # Jobs (listed, created) lose their pod template; cycles, TrainJobs and pods keep their spec.
    without_template = {
        call
        for call, objects in returned.items()
        if any("template" not in o["spec"] for o in objects)
    }
    assert without_template == {"list_jobs", "create_job"}
