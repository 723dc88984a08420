"""A step Job deleted with orphan propagation: its pod outlives it (issue 11, item 11).

Relaunching at once ran two pods of the same step in the same folder. The reconciler waits
for the old pod, adopts its result when it succeeded, and relaunches only when nothing of
the old Job is left or it failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.settings import OperatorSettings
from tests.operator.test_reconciler import NAME, NS, FakeKube, baseline_summary, cycle_body


def _pod(job: str, phase: str, exit_code: int | None = None, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "message": message}}
    return {
        "metadata": {"name": f"{job}-abcde", "creationTimestamp": "2026-11-25T10:00:00Z"},
        "status": {"phase": phase, "containerStatuses": [{"name": "step", "state": state}]},
    }


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.cycles[(NS, NAME)] = cycle_body()
    return fake


@pytest.fixture
async def reconciler(kube: FakeKube) -> AsyncIterator[CycleReconciler]:
    settings = OperatorSettings.from_env({"KAIZEN_ARTIFACT_ROOT": "/artifacts"})
    reconciler = CycleReconciler(kube, settings, post_event=lambda *_: None)
    yield reconciler
    await reconciler.retries.close()


async def _running_baseline(kube: FakeKube, reconciler: CycleReconciler) -> str:
    await reconciler.reconcile(NS, NAME)
    ((_, job),) = kube.jobs
    kube.start(job)
    kube.pods[job] = [_pod(job, "Running")]
    await reconciler.reconcile(NS, NAME)
    assert kube.cycles[(NS, NAME)]["status"]["steps"][0]["state"] == "Running"
    del kube.jobs[(NS, job)]  # kubectl delete --cascade=orphan: the pod stays
    return job


def _creations(kube: FakeKube) -> list[str]:
    return [name for call, name in kube.calls if call == "create_job"]


async def test_no_relaunch_while_the_orphaned_pod_runs_then_its_result_is_adopted(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    job = await _running_baseline(kube, reconciler)
    kube.calls.clear()
    for _ in range(2):
        await reconciler.reconcile(NS, NAME)
    assert _creations(kube) == [], "relaunched while the old pod still runs"
    (step,) = kube.cycles[(NS, NAME)]["status"]["steps"]
    assert (step["state"], step["reason"], step["attempt"]) == ("Running", "OrphanedPod", 1)
    assert job in step["message"] and "still runs" in step["message"]
    # No event announces the pod's end (the operator watches Jobs): a look is scheduled.
    assert reconciler.retries.pending == 1

    kube.pods[job] = [_pod(job, "Succeeded", 0, baseline_summary())]
    await reconciler.reconcile(NS, NAME)
    steps = kube.cycles[(NS, NAME)]["status"]["steps"]
    assert [(s["name"], s["state"], s["attempt"]) for s in steps] == [
        ("evaluate-baseline", "Succeeded", 1),
        ("analyze", "Pending", 1),
    ]
    assert len(_creations(kube)) == 1 and job not in _creations(kube)


async def test_a_failed_orphaned_pod_is_relaunched_once_it_ended(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    job = await _running_baseline(kube, reconciler)
    kube.pods[job] = [_pod(job, "Failed", 1, "Traceback ...")]
    kube.calls.clear()
    await reconciler.reconcile(NS, NAME)
    (step,) = kube.cycles[(NS, NAME)]["status"]["steps"]
    assert (step["state"], step["attempt"]) == ("Pending", 2)
    assert _creations(kube) == [step["jobName"]] and step["jobName"] != job


async def test_a_job_deleted_with_its_pods_is_relaunched(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    job = await _running_baseline(kube, reconciler)
    kube.pods[job] = []  # background propagation: the pods went too
    await reconciler.reconcile(NS, NAME)
    (step,) = kube.cycles[(NS, NAME)]["status"]["steps"]
    assert step["attempt"] == 2 and step["jobName"] != job
